//! Tokens of KIR text, each with its byte span. Newlines are not significant; `//` comments run
//! to the end of the line and are dropped.

use qkc_ir::{Diag, Span};

/// A token kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tok {
    /// A word: keywords, mnemonics, types, axis names, unnamed values (`v12`).
    Ident(String),
    /// `%name`.
    Local(String),
    /// `@name`.
    Global(String),
    /// A number as written (`-12`, `0x6400`, `1.5e-3`).
    Num(String),
    /// One punctuation character.
    Punct(char),
}

/// A token and where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    /// The token.
    pub tok: Tok,
    /// Its span.
    pub span: Span,
}

fn ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_'
}
fn ident_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'.'
}

/// Split `src` into tokens.
pub fn lex(src: &str) -> Result<Vec<Token>, Diag> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if c == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        let start = i;
        let word_end = |mut j: usize| {
            while j < b.len() && ident_char(b[j]) {
                j += 1;
            }
            j
        };
        let tok = if ident_start(c) {
            i = word_end(i);
            Tok::Ident(src[start..i].to_string())
        } else if (c == b'%' || c == b'@')
            && b.get(i + 1).is_some_and(|&d| ident_start(d) || d.is_ascii_digit())
        {
            i = word_end(i + 1);
            let name = src[start + 1..i].to_string();
            if c == b'%' {
                Tok::Local(name)
            } else {
                Tok::Global(name)
            }
        } else if c.is_ascii_digit()
            || (c == b'-' && b.get(i + 1).is_some_and(|d| d.is_ascii_digit() || *d == b'i'))
        {
            i = number_end(b, i + 1);
            Tok::Num(src[start..i].to_string())
        } else if "(){}[]<>,=:".contains(c as char) {
            i += 1;
            Tok::Punct(c as char)
        } else {
            let ch = src[i..].chars().next().unwrap_or('?');
            return Err(Diag::error(format!("unexpected character `{ch}`"))
                .at(Span::new(i, ch.len_utf8()))
                .label("not part of KIR"));
        };
        out.push(Token { tok, span: Span::new(start, i - start) });
    }
    Ok(out)
}

fn number_end(b: &[u8], mut j: usize) -> usize {
    let hex = b.get(j.saturating_sub(1)) == Some(&b'0') && matches!(b.get(j), Some(b'x' | b'X'));
    while j < b.len() {
        let c = b[j];
        let exp_sign = !hex && (c == b'+' || c == b'-') && matches!(b[j - 1], b'e' | b'E');
        if c.is_ascii_alphanumeric() || c == b'.' || c == b'_' || exp_sign {
            j += 1;
        } else {
            break;
        }
    }
    j
}
