//! The `.qir` text parser: a hand-written recursive-descent parser over the source bytes, with
//! byte spans on every error so diagnostics can point at `file:line:col` with a caret.
//!
//! ```text
//! file  := comment* 'graph' '@' NAME '{' stmt* 'return' [value (',' value)*] '}'
//! stmt  := value '=' OP [STRING] ['(' operand (',' operand)* ')'] ['{' attr (',' attr)* '}'] ':' type
//! operand := value | ROLE '=' value
//! attr  := KEY '=' ('true' | 'false' | NUMBER | STRING | IDENT | '[' attr-value, ... ']')
//! type  := DTYPE shape | 'q' '<' SCHEME '>' shape | 'csr' '<' DTYPE ',' DTYPE '>' shape
//! shape := '[' [dim (',' dim)*] ']'          dim := INTEGER | 'T'
//! ```
//! Comments run from `//` to the end of the line; they are kept as docs of the op that follows.

use std::collections::HashMap;

use crate::diag::{clip, Diag};
use crate::graph::{Graph, Node, NodeId, Span};
use crate::ops::{Attr, AttrMap, Op};
use crate::types::{DType, Dim, Shape, Type};

/// Parse a whole `.qir` file.
pub fn parse(src: &str) -> Result<Graph, Diag> {
    let mut p = Parser { src, pos: 0 };
    p.file()
}

/// Parse a type spelling such as `f32[T, 576]` or `q<int4:g128>[1536, 576]`.
pub fn parse_type(src: &str) -> Result<Type, String> {
    let mut p = Parser { src, pos: 0 };
    let t = p.ty().map_err(|d| d.message)?;
    p.skip_trivia();
    if p.pos < src.len() {
        return Err(format!("unexpected `{}` after type", &src[p.pos..]));
    }
    Ok(t)
}

struct Parser<'a> {
    src: &'a str,
    pos: usize,
}

type PResult<T> = Result<T, Diag>;

/// The longest piece of user text (a name, a number) quoted in a message, in bytes.
const NAME_MAX: usize = 40;

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_'
}
fn is_ident_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'.'
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.src.as_bytes().get(self.pos).copied()
    }

    fn err_at(&self, span: Span, msg: impl Into<String>) -> Diag {
        Diag::error(msg).at(span)
    }

    /// An error at the current token (or at end of file).
    fn err_here(&self, expected: &str) -> Diag {
        match self.peek() {
            None => Diag::error(format!("unexpected end of file, expected {expected}"))
                .at(Span::new(self.src.len(), 0))
                .label("file ends here")
                .help("the file looks truncated"),
            Some(_) => {
                let tok = self.token_text();
                Diag::error(format!("expected {expected}, found `{tok}`"))
                    .at(Span::new(self.pos, tok.len().max(1)))
            }
        }
    }

    /// The text of the token at `pos`, for messages (at most 24 chars, one line).
    fn token_text(&self) -> String {
        let rest = &self.src[self.pos..];
        let b = rest.as_bytes();
        let len = if b
            .first()
            .is_some_and(|&c| is_ident_char(c) || c == b'%' || c == b'@' || c == b'-')
        {
            1 + b[1..].iter().take_while(|&&c| is_ident_char(c)).count()
        } else {
            rest.chars().next().map_or(0, char::len_utf8)
        };
        let mut end = len.min(24);
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        rest[..end].to_string()
    }

    /// Skip whitespace and comments.
    fn skip_trivia(&mut self) {
        let _ = self.trivia();
    }

    /// Skip whitespace and comments, returning doc lines: comments verbatim (`// ...`) and `""`
    /// for a blank line (at most one in a row).
    fn trivia(&mut self) -> Vec<String> {
        let mut doc: Vec<String> = Vec::new();
        let mut newlines_since_code = 0usize;
        while let Some(c) = self.peek() {
            match c {
                b'\n' => {
                    newlines_since_code += 1;
                    if newlines_since_code >= 2 && doc.last().is_none_or(|l| !l.is_empty()) {
                        doc.push(String::new());
                    }
                    self.pos += 1;
                }
                b' ' | b'\t' | b'\r' => self.pos += 1,
                b'/' if self.src[self.pos..].starts_with("//") => {
                    let end = self.src[self.pos..]
                        .find('\n')
                        .map_or(self.src.len(), |e| self.pos + e);
                    doc.push(self.src[self.pos..end].trim_end().to_string());
                    // the comment's own line ends with its newline
                    newlines_since_code = 1;
                    self.pos = end;
                    // the newline ending a comment does not count towards a blank line
                    if self.peek() == Some(b'\n') {
                        self.pos += 1;
                    }
                }
                _ => break,
            }
        }
        doc
    }

    fn eat(&mut self, s: &str) -> bool {
        self.skip_trivia();
        if self.src[self.pos..].starts_with(s) {
            self.pos += s.len();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, s: &str) -> PResult<()> {
        if self.eat(s) {
            Ok(())
        } else {
            Err(self.err_here(&format!("`{s}`")))
        }
    }

    fn ident(&mut self, what: &str) -> PResult<(String, Span)> {
        self.skip_trivia();
        let start = self.pos;
        if !self.peek().is_some_and(is_ident_start) {
            return Err(self.err_here(what));
        }
        while self.peek().is_some_and(is_ident_char) {
            self.pos += 1;
        }
        Ok((
            self.src[start..self.pos].to_string(),
            Span::new(start, self.pos - start),
        ))
    }

    /// `%name`
    fn value(&mut self) -> PResult<(String, Span)> {
        self.skip_trivia();
        let start = self.pos;
        if self.peek() != Some(b'%') {
            return Err(self.err_here("a value such as `%x`"));
        }
        self.pos += 1;
        let n = self.src.as_bytes()[self.pos..]
            .iter()
            .take_while(|&&c| is_ident_char(c))
            .count();
        if n == 0 {
            return Err(self.err_at(Span::new(start, 1), "expected a value name after `%`"));
        }
        self.pos += n;
        Ok((
            self.src[start + 1..self.pos].to_string(),
            Span::new(start, self.pos - start),
        ))
    }

    fn string(&mut self) -> PResult<(String, Span)> {
        self.skip_trivia();
        let start = self.pos;
        if self.peek() != Some(b'"') {
            return Err(self.err_here("a quoted string"));
        }
        self.pos += 1;
        let mut out = String::new();
        loop {
            let Some(c) = self.src[self.pos..].chars().next() else {
                return Err(self
                    .err_at(Span::new(start, 1), "unterminated string")
                    .label("string starts here"));
            };
            self.pos += c.len_utf8();
            match c {
                '"' => break,
                '\n' => {
                    return Err(self
                        .err_at(
                            Span::new(start, self.pos - start - 1),
                            "unterminated string",
                        )
                        .label("string starts here and runs to the end of the line"))
                }
                '\\' => {
                    let Some(e) = self.src[self.pos..].chars().next() else {
                        continue;
                    };
                    self.pos += e.len_utf8();
                    match e {
                        'n' => out.push('\n'),
                        't' => out.push('\t'),
                        '"' | '\\' => out.push(e),
                        _ => {
                            return Err(self.err_at(
                                Span::new(self.pos - 2, 2),
                                format!("unknown escape `\\{e}`"),
                            ))
                        }
                    }
                }
                c => out.push(c),
            }
        }
        Ok((out, Span::new(start, self.pos - start)))
    }

    fn number(&mut self) -> PResult<(Attr, Span)> {
        self.skip_trivia();
        let start = self.pos;
        let b = self.src.as_bytes();
        let mut end = self.pos;
        if matches!(b.get(end), Some(b'-' | b'+')) {
            end += 1;
        }
        let mut is_float = false;
        while let Some(&c) = b.get(end) {
            if c.is_ascii_digit() {
                end += 1;
            } else if c == b'.' || c == b'e' || c == b'E' {
                is_float = true;
                end += 1;
                if (c == b'e' || c == b'E') && matches!(b.get(end), Some(b'-' | b'+')) {
                    end += 1;
                }
            } else if c.is_ascii_alphabetic() || c == b'_' {
                // `inf`/`NaN` and friends: take the word, reject below
                end += 1;
                is_float = true;
            } else {
                break;
            }
        }
        let text = &self.src[start..end];
        let span = Span::new(start, end - start);
        self.pos = end;
        let attr = if is_float {
            match text.parse::<f64>() {
                Ok(x) if x.is_finite() => Attr::Float(x),
                _ => {
                    return Err(self.err_at(
                        span,
                        format!("`{}` is not a finite number", clip(text, NAME_MAX)),
                    ))
                }
            }
        } else {
            Attr::Int(text.parse().map_err(|_| {
                self.err_at(
                    span,
                    format!("`{}` is not a valid integer", clip(text, NAME_MAX)),
                )
            })?)
        };
        Ok((attr, span))
    }

    fn attr_value(&mut self, depth: usize) -> PResult<(Attr, Span)> {
        self.skip_trivia();
        let start = self.pos;
        match self.peek() {
            Some(b'"') => self.string().map(|(s, sp)| (Attr::Str(s), sp)),
            Some(b'[') if depth < 8 => {
                self.pos += 1;
                let mut items = Vec::new();
                if !self.eat("]") {
                    loop {
                        items.push(self.attr_value(depth + 1)?.0);
                        if self.eat("]") {
                            break;
                        }
                        self.expect(",")?;
                    }
                }
                Ok((Attr::List(items), Span::new(start, self.pos - start)))
            }
            Some(c) if c.is_ascii_digit() || c == b'-' || c == b'+' => self.number(),
            Some(c) if is_ident_start(c) => {
                let (id, sp) = self.ident("a value")?;
                Ok((
                    match id.as_str() {
                        "true" => Attr::Bool(true),
                        "false" => Attr::Bool(false),
                        _ => Attr::Ident(id),
                    },
                    sp,
                ))
            }
            _ => Err(self
                .err_here("an attribute value (number, string, identifier, true/false or a list)")),
        }
    }

    fn dim(&mut self) -> PResult<Dim> {
        self.skip_trivia();
        let start = self.pos;
        if self.peek() == Some(b'T')
            && !self
                .src
                .as_bytes()
                .get(self.pos + 1)
                .is_some_and(|&c| is_ident_char(c))
        {
            self.pos += 1;
            return Ok(Dim::Tokens);
        }
        let n = self.src.as_bytes()[self.pos..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        if n == 0 {
            return Err(self.err_here("a dimension (an integer or `T`)"));
        }
        self.pos += n;
        let text = &self.src[start..self.pos];
        text.parse::<u64>().map(Dim::Static).map_err(|_| {
            self.err_at(
                Span::new(start, n),
                format!("dimension `{}` is too large", clip(text, NAME_MAX)),
            )
        })
    }

    fn shape(&mut self) -> PResult<Shape> {
        self.expect("[")?;
        let mut dims = Vec::new();
        if !self.eat("]") {
            loop {
                dims.push(self.dim()?);
                if self.eat("]") {
                    break;
                }
                self.expect(",")?;
            }
        }
        Ok(Shape(dims))
    }

    fn dtype(&mut self) -> PResult<DType> {
        let (name, span) = self.ident("a dtype")?;
        DType::from_name(&name).ok_or_else(|| {
            self.err_at(span, format!("unknown dtype `{}`", clip(&name, NAME_MAX)))
                .help("dtypes are f32, f16, bf16, i8, u8, i16, u16, i32, u32")
        })
    }

    fn ty(&mut self) -> PResult<Type> {
        self.skip_trivia();
        let start = self.pos;
        let (head, span) = self.ident("a type such as `f32[T, 576]`")?;
        match head.as_str() {
            "q" => {
                self.expect("<")?;
                let s0 = self.pos;
                let len = self.src[s0..]
                    .find(['>', '\n'])
                    .unwrap_or(self.src.len() - s0);
                self.pos = s0 + len;
                let spelling = self.src[s0..self.pos].trim();
                let sspan = Span::new(s0, len.max(1));
                self.expect(">")?;
                let scheme = spelling.parse().map_err(|e: qkc_quant::SchemeParseError| {
                    self.err_at(sspan, format!("unknown scheme `{}`", clip(spelling, NAME_MAX)))
                        .label(e.reason)
                        .help("schemes are spelled like int4:g128, int4:g128:asym, spqr3:g16, lut3, nf4:b64, aqlm:2x8, bin:g128")
                })?;
                Ok(Type::Quant {
                    scheme,
                    shape: self.shape()?,
                })
            }
            "csr" => {
                self.expect("<")?;
                let val = self.dtype()?;
                self.expect(",")?;
                let index = self.dtype()?;
                self.expect(">")?;
                Ok(Type::Sparse {
                    val,
                    index,
                    shape: self.shape()?,
                })
            }
            _ => {
                self.pos = start;
                let dtype = self.dtype().map_err(|d| {
                    d.at(span).label("not a type").help(
                        "types look like f32[T, 576], q<int4:g128>[N, K] or csr<f16, u16>[N, K]",
                    )
                })?;
                Ok(Type::Tensor {
                    dtype,
                    shape: self.shape()?,
                })
            }
        }
    }

    fn file(&mut self) -> PResult<Graph> {
        let mut doc = self.trivia();
        while doc.first().is_some_and(String::is_empty) {
            doc.remove(0);
        }
        if self.pos >= self.src.len() {
            let d = if self.src.trim().is_empty() {
                Diag::error("empty file: expected `graph @name { ... }`").at(Span::new(0, 0))
            } else {
                Diag::error("no graph in the file, only comments: expected `graph @name { ... }`")
                    .at(Span::new(self.src.len(), 0))
                    .label("file ends here")
            };
            return Err(d.help("a .qir file holds one graph; see ir/ for examples"));
        }
        let (kw, kspan) = self
            .ident("`graph`")
            .map_err(|d| d.help("a .qir file starts with `graph @name {`"))?;
        if kw != "graph" {
            return Err(self.err_at(
                kspan,
                format!("expected `graph`, found `{}`", clip(&kw, NAME_MAX)),
            ));
        }
        self.expect("@")?;
        let (name, _) = self.ident("a graph name")?;
        self.expect("{")?;
        let mut g = Graph::new(name);
        g.doc = doc;
        let mut names: HashMap<String, (NodeId, Span)> = HashMap::new();
        let mut first = true;
        loop {
            let mut doc = self.trivia();
            if first {
                while doc.first().is_some_and(String::is_empty) {
                    doc.remove(0);
                }
                first = false;
            }
            match self.peek() {
                Some(b'%') => {
                    let id = self.stmt(&mut g, &names, doc)?;
                    let node = g.node(id);
                    let span = node.span.unwrap_or_default();
                    if let Some((_, prev)) = names.get(&node.name) {
                        let (line, _) = line_col(self.src, prev.offset);
                        return Err(self
                            .err_at(Span::new(span.offset, node.name.len() + 1), format!("value `%{}` is defined twice", clip(&node.name, NAME_MAX)))
                            .label("second definition")
                            .help(format!("first defined on line {line}; every value has one definition (SSA)")));
                    }
                    names.insert(node.name.clone(), (id, span));
                }
                _ => {
                    let (kw, kspan) = self.ident("an op `%name = ...` or `return`")?;
                    if kw != "return" {
                        return Err(self.err_at(
                            kspan,
                            format!(
                                "expected `%name = op(...)` or `return`, found `{}`",
                                clip(&kw, NAME_MAX)
                            ),
                        ));
                    }
                    g.return_doc = doc;
                    let mut outs = Vec::new();
                    self.skip_trivia();
                    let start = kspan.offset;
                    if self.peek() == Some(b'%') {
                        loop {
                            let (v, vspan) = self.value()?;
                            let (id, _) =
                                names.get(&v).ok_or_else(|| undefined(self, &v, vspan))?;
                            outs.push(*id);
                            if !self.eat(",") {
                                break;
                            }
                        }
                    }
                    g.outputs_span = Some(Span::new(start, self.pos - start));
                    g.set_outputs(outs);
                    self.expect("}")?;
                    self.skip_trivia();
                    if self.pos < self.src.len() {
                        return Err(self.err_here("end of file after the graph's closing `}`"));
                    }
                    return Ok(g);
                }
            }
        }
    }

    fn stmt(
        &mut self,
        g: &mut Graph,
        names: &HashMap<String, (NodeId, Span)>,
        doc: Vec<String>,
    ) -> PResult<NodeId> {
        let (name, vspan) = self.value()?;
        self.expect("=")?;
        let (opname, ospan) = self.ident("an op name")?;
        let Some(roles) = Op::roles_of(&opname) else {
            let mut d = self
                .err_at(ospan, format!("unknown op `{}`", clip(&opname, NAME_MAX)))
                .label("not an op");
            if let Some(s) = suggest(&opname) {
                d = d.help(format!("did you mean `{s}`?"));
            } else {
                d = d.help(format!("ops are: {}", Op::NAMES.join(", ")));
            }
            return Err(d);
        };
        self.skip_trivia();
        let symbol = if self.peek() == Some(b'"') {
            Some(self.string()?.0)
        } else {
            None
        };
        let mut operands: Vec<(usize, NodeId)> = Vec::new();
        if self.eat("(") {
            let mut next_positional = 0usize;
            loop {
                self.skip_trivia();
                let (role, rspan) = if self.peek().is_some_and(is_ident_start) {
                    let (r, rspan) = self.ident("a role")?;
                    self.expect("=")?;
                    let idx = roles.iter().position(|x| x.name == r).ok_or_else(|| {
                        let names: Vec<_> = roles
                            .iter()
                            .filter(|x| x.optional)
                            .map(|x| x.name)
                            .collect();
                        self.err_at(
                            rspan,
                            format!("op `{opname}` has no operand `{}`", clip(&r, NAME_MAX)),
                        )
                        .help(if names.is_empty() {
                            format!("`{opname}` takes no named operands")
                        } else {
                            format!("named operands of `{opname}`: {}", names.join(", "))
                        })
                    })?;
                    (idx, rspan)
                } else {
                    let sp = Span::new(self.pos, 1);
                    while roles.get(next_positional).is_some_and(|r| !r.optional)
                        && operands.iter().any(|(r, _)| *r == next_positional)
                    {
                        next_positional += 1;
                    }
                    if roles.get(next_positional).is_none_or(|r| r.optional) {
                        let req = roles.iter().filter(|r| !r.optional).count();
                        return Err(self
                            .err_at(
                                sp,
                                format!(
                                    "op `{opname}` takes {req} positional operand{}",
                                    if req == 1 { "" } else { "s" }
                                ),
                            )
                            .label("one too many")
                            .help(named_help(roles)));
                    }
                    next_positional += 1;
                    (next_positional - 1, sp)
                };
                let (v, vsp) = self.value()?;
                let (id, _) = names.get(&v).ok_or_else(|| undefined(self, &v, vsp))?;
                if operands.iter().any(|(r, _)| *r == role) {
                    return Err(self.err_at(
                        rspan,
                        format!("operand `{}` of `{opname}` given twice", roles[role].name),
                    ));
                }
                operands.push((role, *id));
                if self.eat(")") {
                    break;
                }
                self.expect(",")?;
            }
        }
        for (i, r) in roles.iter().enumerate() {
            if !r.optional && !operands.iter().any(|(x, _)| *x == i) {
                return Err(self
                    .err_at(
                        ospan,
                        format!("op `{opname}` is missing its operand `{}`", r.name),
                    )
                    .help(signature(&opname, roles)));
            }
        }
        let mut attrs = AttrMap::new();
        let mut attr_spans: HashMap<String, Span> = HashMap::new();
        if self.eat("{") {
            loop {
                let (k, kspan) = self.ident("an attribute name")?;
                self.expect("=")?;
                let (v, vspan) = self.attr_value(0)?;
                if attrs.insert(k.clone(), v).is_some() {
                    return Err(self.err_at(
                        kspan,
                        format!("attribute `{}` given twice", clip(&k, NAME_MAX)),
                    ));
                }
                attr_spans.insert(
                    k,
                    Span::new(kspan.offset, vspan.offset + vspan.len - kspan.offset),
                );
                if self.eat("}") {
                    break;
                }
                self.expect(",")?;
            }
        }
        let op = Op::from_generic(&opname, symbol, &mut attrs).map_err(|(key, msg)| {
            let span = attr_spans.get(&key).copied().unwrap_or(ospan);
            self.err_at(span, msg)
        })?;
        self.expect(":")?;
        let ty = self.ty()?;
        let span = Span::new(vspan.offset, self.pos - vspan.offset);
        Ok(g.add_node(
            Node {
                name,
                op,
                ty,
                span: Some(span),
                doc,
            },
            &operands,
        ))
    }
}

fn undefined(p: &Parser<'_>, v: &str, span: Span) -> Diag {
    p.err_at(
        span,
        format!("use of undefined value `%{}`", clip(v, NAME_MAX)),
    )
    .label("not defined above")
    .help("values must be defined before they are used")
}

fn signature(op: &str, roles: &[crate::ops::Role]) -> String {
    let parts: Vec<String> = roles
        .iter()
        .map(|r| {
            if r.optional {
                format!("{} = %v?", r.name)
            } else {
                format!("%{}", r.name)
            }
        })
        .collect();
    format!("usage: {op}({})", parts.join(", "))
}

fn named_help(roles: &[crate::ops::Role]) -> String {
    let names: Vec<_> = roles
        .iter()
        .filter(|r| r.optional)
        .map(|r| r.name)
        .collect();
    if names.is_empty() {
        "this op has no optional operands".to_string()
    } else {
        format!(
            "optional operands are passed by name: {}",
            names
                .iter()
                .map(|n| format!("{n} = %v"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

/// The closest op name, by edit distance ≤ 2.
fn suggest(name: &str) -> Option<&'static str> {
    fn dist(a: &str, b: &str) -> usize {
        let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
        let mut prev: Vec<usize> = (0..=b.len()).collect();
        for i in 1..=a.len() {
            let mut cur = vec![i; b.len() + 1];
            for j in 1..=b.len() {
                let c = usize::from(a[i - 1] != b[j - 1]);
                cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + c);
            }
            prev = cur;
        }
        prev[b.len()]
    }
    // every op name is short: a long word is no typo of one (and the distance is O(len²))
    if name.len() > 24 {
        return None;
    }
    Op::NAMES
        .iter()
        .map(|n| (dist(name, n), *n))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, n)| n)
}

/// 1-based line and column (in chars) of a byte offset.
pub fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(src.len());
    let before = &src.as_bytes()[..offset];
    let line = before.iter().filter(|&&c| c == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&c| c == b'\n')
        .map_or(0, |p| p + 1);
    let col = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count()
        + 1;
    (line, col)
}
