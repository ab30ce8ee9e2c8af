//! Text-level template expansion: snippet splicing with renaming, then constant filling.
//!
//! A spliced snippet lands on the line of its hole (KIR newlines are insignificant and comments
//! are dropped), so every line after it keeps its number from the template file.

use crate::error::KernelError;
use crate::template::{eval, terr, ArgValue, Args, Library};

const MAX_DEPTH: usize = 8;

/// The `{{ … }}` holes of `text`: (start, end, inner text) with byte offsets of the braces.
fn holes(text: &str) -> Vec<(usize, usize, String)> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(s) = text[from..].find("{{").map(|p| p + from) {
        let Some(e) = text[s + 2..].find("}}").map(|p| p + s + 2) else { break };
        out.push((s, e + 2, text[s + 2..e].trim().to_string()));
        from = e + 2;
    }
    out
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset].matches('\n').count() + 1
}

/// Splice every snippet hole, recursively.
pub(crate) fn splice(name: &str, body: &str, args: &Args, lib: &Library) -> Result<String, KernelError> {
    let mut text = body.to_string();
    let mut counter = 0usize;
    let mut aliases: Vec<(String, String)> = Vec::new();
    for _ in 0..MAX_DEPTH {
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        let mut changed = false;
        for (s, e, inner) in holes(&text) {
            let hole = inner.split_whitespace().next().unwrap_or("");
            let Some(ArgValue::Snippet(snip)) = args.0.get(hole) else { continue };
            let (code, alias) = call(hole, snip, &inner, counter, lib)
                .map_err(|m| terr(name, format!("line {}: {m}", line_of(&text, s))))?;
            aliases.extend(alias);
            counter += 1;
            out.push_str(&text[last..s]);
            out.push_str(&code);
            last = e;
            changed = true;
        }
        out.push_str(&text[last..]);
        text = out;
        if !changed {
            return Ok(apply_aliases(&text, &aliases));
        }
    }
    Err(terr(name, format!("snippets nest deeper than {MAX_DEPTH}")))
}

/// Replace the caller names that aliased snippet outputs stand for (`%res` → `%acc`),
/// following chains of aliases.
fn apply_aliases(text: &str, aliases: &[(String, String)]) -> String {
    if aliases.is_empty() {
        return text.to_string();
    }
    let resolve = |id: &str| -> String {
        let mut cur = format!("%{id}");
        for _ in 0..=aliases.len() {
            match aliases.iter().find(|(out, _)| *out == cur) {
                Some((_, to)) => cur = to.clone(),
                None => break,
            }
        }
        cur
    };
    text.lines().map(|l| rename_locals(l, &resolve) + "\n").collect()
}

/// The spliced text of `{{hole in, ... -> out, ...}}` bound to snippet `snip`, and the
/// (caller output, caller input) pairs of its aliased outputs.
fn call(
    hole: &str,
    snip: &str,
    inner: &str,
    n: usize,
    lib: &Library,
) -> Result<(String, Vec<(String, String)>), String> {
    let t = lib.get(snip).filter(|t| t.snippet).ok_or_else(|| format!("no snippet `{snip}`"))?;
    let sig = inner[hole.len()..].trim();
    let (ins, outs) = sig.split_once("->").unwrap_or((sig, ""));
    let split = |s: &str| -> Vec<String> {
        s.split(',').map(|x| x.trim().to_string()).filter(|x| !x.is_empty()).collect()
    };
    let (ins, outs) = (split(ins), split(outs));
    if ins.len() != t.ins.len() || outs.len() != t.outs.len() {
        return Err(format!(
            "hole `{hole}` passes {} input(s) and {} output(s); snippet `{snip}` takes {} and gives {}",
            ins.len(),
            outs.len(),
            t.ins.len(),
            t.outs.len()
        ));
    }
    let mut aliases = Vec::new();
    for (out, input) in &t.aliases {
        let (Some(o), Some(i)) =
            (t.outs.iter().position(|x| x == out), t.ins.iter().position(|x| x == input))
        else {
            return Err(format!("snippet `{snip}`: alias `%{out} = %{input}` names no output and input"));
        };
        if !outs[o].starts_with('%') {
            return Err(format!(
                "hole `{hole}`: output `{}` of an aliased snippet output must be a `%name`",
                outs[o]
            ));
        }
        aliases.push((outs[o].clone(), ins[i].clone()));
    }
    let rename = |id: &str| -> String {
        if let Some(k) = t.ins.iter().position(|x| x == id) {
            ins[k].clone()
        } else if let Some(k) = t.outs.iter().position(|x| x == id) {
            outs[k].clone()
        } else {
            format!("%{hole}.{n}.{id}")
        }
    };
    let mut code = String::new();
    for line in t.body.lines() {
        let line = line.split("//").next().unwrap_or("").trim();
        if !line.is_empty() {
            code.push_str(&rename_locals(line, &rename));
            code.push_str("  ");
        }
    }
    Ok((code.trim_end().to_string(), aliases))
}

/// Replace each `%ident` in a line by `f(ident)` (also inside nested snippet holes, whose
/// operands are this snippet's values).
fn rename_locals(line: &str, f: &dyn Fn(&str) -> String) -> String {
    let b = line.as_bytes();
    let mut out = String::with_capacity(line.len() + 16);
    let mut i = 0;
    while i < b.len() {
        let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'.';
        if b[i] == b'%' && b.get(i + 1).is_some_and(|&c| ident(c)) {
            let s = i + 1;
            let mut e = s;
            while e < b.len() && ident(b[e]) {
                e += 1;
            }
            out.push_str(&f(&line[s..e]));
            i = e;
            continue;
        }
        let ch = line[i..].chars().next().unwrap_or(' ');
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

/// Fill every remaining `{{ … }}` with its constant.
pub(crate) fn fill(name: &str, text: &str, args: &Args) -> Result<String, KernelError> {
    let ints = args.ints();
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (s, e, inner) in holes(text) {
        let value = match args.0.get(inner.as_str()) {
            Some(ArgValue::Type(t)) => t.to_string(),
            Some(ArgValue::Float(x)) => format!("{x:?}"),
            Some(ArgValue::Snippet(_)) => unreachable_snippet(name, &inner)?,
            Some(ArgValue::Int(_)) | None => eval(&inner, &ints)
                .map_err(|m| terr(name, format!("line {}: {{{{{inner}}}}}: {m}", line_of(text, s))))?
                .to_string(),
        };
        out.push_str(&text[last..s]);
        out.push_str(&value);
        last = e;
    }
    out.push_str(&text[last..]);
    Ok(out)
}

fn unreachable_snippet(name: &str, inner: &str) -> Result<String, KernelError> {
    Err(terr(name, format!("snippet hole `{inner}` was not spliced")))
}
