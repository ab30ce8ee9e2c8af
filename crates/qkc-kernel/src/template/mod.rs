//! KIR templates: kernel text with typed holes, instantiated once per specialization.
//!
//! A template file is KIR text plus directive lines that start with `#`:
//!
//! ```text
//! #template gemv_u4_cpu                     the name (or `#snippet NAME` for a snippet)
//! #param K: int                             holes: int, float, type or snippet
//! #param decode: snippet
//! #let WT: type = <4 x i32>                 fixed by the template (ints take expressions)
//! #require K % GROUP == 0 | K must be a multiple of the group size
//! #in %w                                    snippets only: inputs and outputs, in order
//! #out %c0, %c1                            (`#out %r = %x`: output r is input x, for identities)
//! kernel @gemv_k{{K}}(...) cpu chunks({{CHUNKS}}) {
//!   %n = const {{K / 8}} : i32              int holes take expressions
//!   {{decode %word -> %c0, %c1}}            a snippet hole, spliced with fresh names
//! }
//! ```
//!
//! Instantiation checks the arguments against the declared holes (missing, extra and mistyped
//! arguments are errors), checks every `#require`, splices snippets (their local values renamed
//! `%HOLE.N.name`, inputs and outputs bound to the call site), fills constants, then parses and
//! verifies the result. Directive lines stay in the instance as `//` comments so line numbers in
//! diagnostics match the template file's.

mod expr;
mod library;
mod splice;

use std::collections::BTreeMap;

pub use expr::{eval, eval_cond};
pub use library::{builtin, builtin_files, Library};

use crate::diag::render;
use crate::error::KernelError;
use crate::kernel::Kernel;
use crate::parser::parse_with_spans;
use crate::types::Type;
use crate::verify::{diagnostics, verify_all};

/// The kind of a hole.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HoleKind {
    /// An integer (may appear in expressions).
    Int,
    /// A float literal.
    Float,
    /// A KIR type.
    Type,
    /// A snippet.
    Snippet,
}

/// An argument for a hole.
#[derive(Clone, Debug, PartialEq)]
pub enum ArgValue {
    /// For `int` holes.
    Int(i64),
    /// For `float` holes.
    Float(f64),
    /// For `type` holes.
    Type(Type),
    /// For `snippet` holes: the snippet's name in the library.
    Snippet(String),
}

/// The arguments of one instantiation.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Args(pub BTreeMap<String, ArgValue>);

impl Args {
    /// No arguments.
    pub fn new() -> Self {
        Args::default()
    }
    /// Add an int.
    pub fn int(mut self, k: &str, v: i64) -> Self {
        self.0.insert(k.into(), ArgValue::Int(v));
        self
    }
    /// Add a float.
    pub fn float(mut self, k: &str, v: f64) -> Self {
        self.0.insert(k.into(), ArgValue::Float(v));
        self
    }
    /// Add a type.
    pub fn ty(mut self, k: &str, t: Type) -> Self {
        self.0.insert(k.into(), ArgValue::Type(t));
        self
    }
    /// Bind a snippet hole.
    pub fn snippet(mut self, k: &str, name: &str) -> Self {
        self.0.insert(k.into(), ArgValue::Snippet(name.into()));
        self
    }
    fn ints(&self) -> BTreeMap<String, i64> {
        self.0
            .iter()
            .filter_map(|(k, v)| if let ArgValue::Int(i) = v { Some((k.clone(), *i)) } else { None })
            .collect()
    }
}

/// A `#require` line: a condition and the message shown when it fails.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Require {
    /// The condition.
    pub cond: String,
    /// Why it must hold.
    pub message: String,
}

/// A parsed template or snippet file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    /// Its name.
    pub name: String,
    /// Is it a snippet (spliced into templates) rather than a kernel template?
    pub snippet: bool,
    /// Declared holes, in order.
    pub params: Vec<(String, HoleKind)>,
    /// Conditions on the arguments.
    pub requires: Vec<Require>,
    /// Values the template fixes itself: (name, kind, text), evaluated in order.
    pub lets: Vec<(String, HoleKind, String)>,
    /// Snippet inputs (names without `%`).
    pub ins: Vec<String>,
    /// Snippet outputs (names without `%`).
    pub outs: Vec<String>,
    /// Outputs that are one of the inputs (`#out %res = %acc`): the snippet defines nothing for
    /// them and the caller's output name is bound to the caller's input value.
    pub aliases: Vec<(String, String)>,
    /// The text, with directive lines turned into comments.
    pub body: String,
}

fn terr(t: &str, m: impl Into<String>) -> KernelError {
    KernelError::Template { template: t.into(), message: m.into() }
}

fn names(list: &str) -> Vec<String> {
    list.split(',').map(|s| s.trim().trim_start_matches('%').to_string()).filter(|s| !s.is_empty()).collect()
}

impl Template {
    /// Parse a template or snippet file.
    pub fn parse(src: &str) -> Result<Template, KernelError> {
        let mut t = Template {
            name: String::new(),
            snippet: false,
            params: Vec::new(),
            requires: Vec::new(),
            lets: Vec::new(),
            ins: Vec::new(),
            outs: Vec::new(),
            aliases: Vec::new(),
            body: String::new(),
        };
        for line in src.lines() {
            let Some(d) = line.trim_start().strip_prefix('#') else {
                t.body.push_str(line);
                t.body.push('\n');
                continue;
            };
            t.body.push_str(&format!("// #{d}\n"));
            let (word, rest) = d.split_once(char::is_whitespace).unwrap_or((d, ""));
            let rest = rest.trim();
            match word {
                "template" | "snippet" => {
                    t.name = rest.to_string();
                    t.snippet = word == "snippet";
                }
                "param" => t.params.push(param(&t.name, rest)?),
                "require" => {
                    let (cond, message) = rest.split_once('|').unwrap_or((rest, ""));
                    t.requires.push(Require { cond: cond.trim().into(), message: message.trim().into() });
                }
                "let" => {
                    let (decl, value) = rest.split_once('=').ok_or_else(|| {
                        terr(&t.name, format!("`#let {rest}`: expected `NAME: KIND = VALUE`"))
                    })?;
                    let (name, kind) = param(&t.name, decl)?;
                    t.lets.push((name, kind, value.trim().to_string()));
                }
                "in" => t.ins.extend(names(rest)),
                "out" => {
                    for entry in rest.split(',') {
                        let (out, alias) = entry.split_once('=').unwrap_or((entry, ""));
                        let out = out.trim().trim_start_matches('%').to_string();
                        let alias = alias.trim().trim_start_matches('%');
                        if !alias.is_empty() {
                            t.aliases.push((out.clone(), alias.to_string()));
                        }
                        if !out.is_empty() {
                            t.outs.push(out);
                        }
                    }
                }
                "doc" => {}
                _ => return Err(terr(&t.name, format!("unknown directive `#{word}`"))),
            }
        }
        if t.name.is_empty() {
            return Err(terr("?", "missing `#template NAME` or `#snippet NAME`"));
        }
        Ok(t)
    }

    /// Check `args` against the holes of this template and of the snippets it binds.
    fn check_args(&self, args: &Args, lib: &Library) -> Result<(), KernelError> {
        let mut declared: BTreeMap<String, HoleKind> = self.params.iter().cloned().collect();
        declared.extend(self.lets.iter().map(|(n, k, _)| (n.clone(), *k)));
        // Snippets declare holes too (also snippet holes): grow the set to a fixed point.
        let mut grew = true;
        while grew {
            grew = false;
            for (k, v) in &args.0 {
                if let (Some(HoleKind::Snippet), ArgValue::Snippet(s)) = (declared.get(k), v) {
                    let snip = lib
                        .get(s)
                        .filter(|t| t.snippet)
                        .ok_or_else(|| terr(&self.name, format!("no snippet `{s}` for hole `{k}`")))?;
                    for (n, kind) in &snip.params {
                        grew |= declared.insert(n.clone(), *kind).is_none();
                    }
                }
            }
        }
        for (k, kind) in &declared {
            let ok = match (kind, args.0.get(k)) {
                (_, None) => {
                    return Err(terr(&self.name, format!("missing argument for hole `{k}` ({kind:?})")))
                }
                (HoleKind::Int, Some(ArgValue::Int(_)))
                | (HoleKind::Float, Some(ArgValue::Float(_)))
                | (HoleKind::Type, Some(ArgValue::Type(_)))
                | (HoleKind::Snippet, Some(ArgValue::Snippet(_))) => true,
                _ => false,
            };
            if !ok {
                return Err(terr(&self.name, format!("hole `{k}` is {kind:?}, got {:?}", args.0[k])));
            }
        }
        if let Some(extra) = args.0.keys().find(|k| !declared.contains_key(*k)) {
            return Err(terr(&self.name, format!("argument `{extra}` matches no hole")));
        }
        Ok(())
    }

    /// Check the `#require` lines of this template (and of bound snippets).
    fn check_requires(&self, args: &Args, lib: &Library) -> Result<(), KernelError> {
        let ints = args.ints();
        let mut reqs: Vec<(&str, &Require)> = self.requires.iter().map(|r| (self.name.as_str(), r)).collect();
        for v in args.0.values() {
            if let ArgValue::Snippet(s) = v {
                if let Some(t) = lib.get(s) {
                    reqs.extend(t.requires.iter().map(|r| (t.name.as_str(), r)));
                }
            }
        }
        for (owner, r) in reqs {
            let ok =
                eval_cond(&r.cond, &ints).map_err(|e| terr(owner, format!("#require {}: {e}", r.cond)))?;
            if !ok {
                let vals: Vec<String> = ints
                    .iter()
                    .filter(|(k, _)| r.cond.contains(k.as_str()))
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                let why = if r.message.is_empty() { String::new() } else { format!(": {}", r.message) };
                return Err(KernelError::Unsupported(format!(
                    "{owner}: requirement `{}` fails for {}{why}",
                    r.cond,
                    vals.join(", ")
                )));
            }
        }
        Ok(())
    }

    /// Instantiate: check arguments and requirements, splice snippets, fill constants, then
    /// parse and verify.
    pub fn instantiate(&self, args: &Args, lib: &Library) -> Result<Instance, KernelError> {
        if self.snippet {
            return Err(terr(&self.name, "a snippet is spliced into templates, not instantiated"));
        }
        let args = &self.with_lets(args)?;
        self.check_args(args, lib)?;
        self.check_requires(args, lib)?;
        let spliced = splice::splice(&self.name, &self.body, args, lib)?;
        let source = splice::fill(&self.name, &spliced, args)?;
        let path = format!("{} (instance)", self.name);
        let (kernel, map) = parse_with_spans(&source).map_err(|d| KernelError::Instance {
            template: self.name.clone(),
            rendered: render(&path, &source, &[d]),
        })?;
        let errors = verify_all(&kernel);
        if !errors.is_empty() {
            return Err(KernelError::Instance {
                template: self.name.clone(),
                rendered: render(&path, &source, &diagnostics(&errors, &map)),
            });
        }
        Ok(Instance { template: self.name.clone(), source, kernel })
    }
}

impl Template {
    /// The caller's arguments plus the template's `#let` values.
    fn with_lets(&self, args: &Args) -> Result<Args, KernelError> {
        let mut full = args.clone();
        for (name, kind, text) in &self.lets {
            if args.0.contains_key(name) {
                return Err(terr(
                    &self.name,
                    format!("`{name}` is fixed by the template (#let); do not pass it"),
                ));
            }
            let v = match kind {
                HoleKind::Int => ArgValue::Int(
                    eval(text, &full.ints()).map_err(|m| terr(&self.name, format!("#let {name}: {m}")))?,
                ),
                HoleKind::Float => ArgValue::Float(
                    text.parse()
                        .map_err(|_| terr(&self.name, format!("#let {name}: `{text}` is not a float")))?,
                ),
                HoleKind::Type => ArgValue::Type(
                    crate::parser::parse_type(text)
                        .map_err(|d| terr(&self.name, format!("#let {name}: {}", d.message)))?,
                ),
                HoleKind::Snippet => ArgValue::Snippet(text.clone()),
            };
            full.0.insert(name.clone(), v);
        }
        Ok(full)
    }
}

fn param(t: &str, rest: &str) -> Result<(String, HoleKind), KernelError> {
    let (name, kind) =
        rest.split_once(':').ok_or_else(|| terr(t, format!("`#param {rest}`: expected `NAME: KIND`")))?;
    let kind = match kind.split("//").next().unwrap_or("").trim() {
        "int" => HoleKind::Int,
        "float" => HoleKind::Float,
        "type" => HoleKind::Type,
        "snippet" => HoleKind::Snippet,
        k => return Err(terr(t, format!("hole kind `{k}`: expected int, float, type or snippet"))),
    };
    Ok((name.trim().to_string(), kind))
}

/// An instantiated template.
#[derive(Clone, Debug)]
pub struct Instance {
    /// The template it came from.
    pub template: String,
    /// The instantiated KIR text.
    pub source: String,
    /// The verified kernel.
    pub kernel: Kernel,
}
