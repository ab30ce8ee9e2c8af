//! The parser's cursor over tokens: peeking, expecting, and value definitions and uses.

use qkc_ir::{Diag, Span};

use crate::builder::Builder;
use crate::entities::Value;
use crate::kernel::Target;
use crate::lexer::Tok;
use crate::parser::{PResult, Parser, SourceMap};

impl Parser {
    pub(crate) fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|t| &t.tok)
    }
    pub(crate) fn span(&self) -> Span {
        self.toks.get(self.pos).map_or(Span::new(self.end, 0), |t| t.span)
    }
    pub(crate) fn prev_span(&self) -> Span {
        self.toks.get(self.pos.wrapping_sub(1)).map_or(Span::new(self.end, 0), |t| t.span)
    }
    pub(crate) fn err_here(&self, expected: &str) -> Diag {
        match self.toks.get(self.pos) {
            None => Diag::error(format!("unexpected end of input, expected {expected}"))
                .at(Span::new(self.end, 0))
                .label("input ends here"),
            Some(t) => Diag::error(format!("expected {expected}, found {}", describe(&t.tok)))
                .at(t.span)
                .label(format!("expected {expected}")),
        }
    }
    pub(crate) fn bump(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).map(|t| t.tok.clone());
        self.pos += 1;
        t
    }
    pub(crate) fn eat_punct(&mut self, c: char) -> bool {
        if self.peek() == Some(&Tok::Punct(c)) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    pub(crate) fn expect_punct(&mut self, c: char) -> PResult<()> {
        if self.eat_punct(c) {
            Ok(())
        } else {
            Err(self.err_here(&format!("`{c}`")))
        }
    }
    pub(crate) fn eat_word(&mut self, w: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Ident(s)) if s == w) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    pub(crate) fn expect_word(&mut self, w: &str) -> PResult<()> {
        if self.eat_word(w) {
            Ok(())
        } else {
            Err(self.err_here(&format!("`{w}`")))
        }
    }
    pub(crate) fn ident(&mut self, what: &str) -> PResult<String> {
        match self.peek() {
            Some(Tok::Ident(s)) => {
                let s = s.clone();
                self.pos += 1;
                Ok(s)
            }
            _ => Err(self.err_here(what)),
        }
    }
    pub(crate) fn uint(&mut self, what: &str) -> PResult<u64> {
        let span = self.span();
        match self.peek() {
            Some(Tok::Num(s)) => {
                let v = parse_uint(s)
                    .ok_or_else(|| Diag::error(format!("`{s}` is not a valid {what}")).at(span))?;
                self.pos += 1;
                Ok(v)
            }
            _ => Err(self.err_here(what)),
        }
    }
    pub(crate) fn u32_in(&mut self, what: &str) -> PResult<u32> {
        let span = self.span();
        let v = self.uint(what)?;
        u32::try_from(v).map_err(|_| Diag::error(format!("{what} {v} is too large")).at(span))
    }
    pub(crate) fn builder(&mut self) -> &mut Builder {
        // `b` is set before any statement is parsed.
        self.b.get_or_insert_with(|| Builder::new("", Target::Cpu { chunks: 1, simd_bits: 128 }))
    }

    /// Is the next token a value spelling?
    pub(crate) fn at_value(&self) -> bool {
        match self.peek() {
            Some(Tok::Local(_)) => true,
            Some(Tok::Ident(s)) => is_unnamed(s),
            _ => false,
        }
    }

    /// A value definition: its name (`None` for `vN`), its label and span.
    pub(crate) fn def_name(&mut self) -> PResult<(Option<String>, String, Span)> {
        let span = self.span();
        match self.peek().cloned() {
            Some(Tok::Local(n)) => {
                self.pos += 1;
                self.check_fresh(&format!("%{n}"), span)?;
                Ok((Some(n.clone()), format!("%{n}"), span))
            }
            Some(Tok::Ident(s)) if is_unnamed(&s) => {
                self.pos += 1;
                self.check_fresh(&s, span)?;
                Ok((None, s, span))
            }
            _ => Err(self.err_here("a value (`%name` or `vN`)")),
        }
    }

    fn check_fresh(&self, label: &str, span: Span) -> PResult<()> {
        if self.names.contains_key(label) {
            return Err(Diag::error(format!("value `{label}` is defined twice"))
                .at(span)
                .label("redefined here")
                .help("SSA values are defined once per kernel; pick a fresh name"));
        }
        Ok(())
    }

    /// Record a defined value under its label.
    pub(crate) fn bind(&mut self, label: String, v: Value, span: Span) {
        SourceMap::set(&mut self.map.values, v.index(), span);
        self.names.insert(label, v);
    }

    /// A value use.
    pub(crate) fn use_value(&mut self) -> PResult<Value> {
        let span = self.span();
        let label = match self.peek() {
            Some(Tok::Local(n)) => format!("%{n}"),
            Some(Tok::Ident(s)) if is_unnamed(s) => s.clone(),
            _ => return Err(self.err_here("a value (`%name` or `vN`)")),
        };
        self.pos += 1;
        self.names.get(&label).copied().ok_or_else(|| {
            Diag::error(format!("use of undefined value `{label}`"))
                .at(span)
                .label("not defined before this use")
                .help("values must be defined above their uses")
        })
    }

    /// Comma-separated value uses (possibly none).
    pub(crate) fn value_list(&mut self) -> PResult<Vec<Value>> {
        let mut vs = Vec::new();
        if !self.at_value() {
            return Ok(vs);
        }
        vs.push(self.use_value()?);
        while self.eat_punct(',') {
            vs.push(self.use_value()?);
        }
        Ok(vs)
    }
}

/// Is `s` an unnamed value spelling `vN`?
pub(crate) fn is_unnamed(s: &str) -> bool {
    s.len() > 1 && s.starts_with('v') && s[1..].bytes().all(|c| c.is_ascii_digit())
}

pub(crate) fn parse_uint(s: &str) -> Option<u64> {
    let s = s.replace('_', "");
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

pub(crate) fn describe(t: &Tok) -> String {
    match t {
        Tok::Ident(s) => format!("`{s}`"),
        Tok::Local(s) => format!("`%{s}`"),
        Tok::Global(s) => format!("`@{s}`"),
        Tok::Num(s) => format!("`{s}`"),
        Tok::Punct(c) => format!("`{c}`"),
    }
}
