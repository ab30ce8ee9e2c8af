//! Integer expressions inside template holes and `#require` lines: `K / 8`, `cdiv(N, 4)`,
//! `K % GROUP == 0`. Operators `+ - * / %` (floor division on non-negative values; division by
//! zero is an error), parentheses, `min`, `max`, `cdiv` (ceiling division), and comparisons
//! `== != < <= > >=` at the top of a `#require`.

use std::collections::BTreeMap;

/// Evaluate an integer expression with `vars`.
pub fn eval(src: &str, vars: &BTreeMap<String, i64>) -> Result<i64, String> {
    let toks = tokens(src)?;
    let mut p = P { t: &toks, i: 0, vars };
    let v = p.sum()?;
    if p.i != toks.len() {
        return Err(format!("unexpected `{}` in `{src}`", toks[p.i]));
    }
    Ok(v)
}

/// Evaluate `a OP b` with a comparison operator.
pub fn eval_cond(src: &str, vars: &BTreeMap<String, i64>) -> Result<bool, String> {
    for op in ["==", "!=", "<=", ">=", "<", ">"] {
        if let Some((a, b)) = src.split_once(op) {
            let (x, y) = (eval(a, vars)?, eval(b, vars)?);
            return Ok(match op {
                "==" => x == y,
                "!=" => x != y,
                "<=" => x <= y,
                ">=" => x >= y,
                "<" => x < y,
                _ => x > y,
            });
        }
    }
    Err(format!("`{src}` has no comparison (== != < <= > >=)"))
}

fn tokens(src: &str) -> Result<Vec<String>, String> {
    let b = src.as_bytes();
    let (mut out, mut i) = (Vec::new(), 0);
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c.is_ascii_alphanumeric() || c == b'_' {
            let s = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            out.push(src[s..i].to_string());
        } else if "+-*/%(),".contains(c as char) {
            out.push((c as char).to_string());
            i += 1;
        } else {
            return Err(format!("unexpected `{}` in `{src}`", c as char));
        }
    }
    Ok(out)
}

struct P<'a> {
    t: &'a [String],
    i: usize,
    vars: &'a BTreeMap<String, i64>,
}

impl P<'_> {
    fn peek(&self) -> Option<&str> {
        self.t.get(self.i).map(String::as_str)
    }
    fn expect(&mut self, s: &str) -> Result<(), String> {
        if self.peek() == Some(s) {
            self.i += 1;
            Ok(())
        } else {
            Err(format!("expected `{s}`"))
        }
    }
    fn sum(&mut self) -> Result<i64, String> {
        let mut v = self.product()?;
        while let Some(op @ ("+" | "-")) = self.peek() {
            let add = op == "+";
            self.i += 1;
            let r = self.product()?;
            v = if add { v.checked_add(r) } else { v.checked_sub(r) }.ok_or("overflow")?;
        }
        Ok(v)
    }
    fn product(&mut self) -> Result<i64, String> {
        let mut v = self.atom()?;
        while let Some(op @ ("*" | "/" | "%")) = self.peek() {
            let op = op.to_string();
            self.i += 1;
            let r = self.atom()?;
            v = match op.as_str() {
                "*" => v.checked_mul(r).ok_or("overflow")?,
                _ if r == 0 => return Err("division by zero".into()),
                "/" => v.div_euclid(r),
                _ => v.rem_euclid(r),
            };
        }
        Ok(v)
    }
    fn atom(&mut self) -> Result<i64, String> {
        let tok = self.peek().ok_or("unexpected end of expression")?.to_string();
        self.i += 1;
        if tok == "(" {
            let v = self.sum()?;
            self.expect(")")?;
            return Ok(v);
        }
        if tok == "-" {
            return Ok(-self.atom()?);
        }
        if let Ok(n) = tok.parse::<i64>() {
            return Ok(n);
        }
        if matches!(tok.as_str(), "min" | "max" | "cdiv") {
            self.expect("(")?;
            let a = self.sum()?;
            self.expect(",")?;
            let b = self.sum()?;
            self.expect(")")?;
            return match tok.as_str() {
                "min" => Ok(a.min(b)),
                "max" => Ok(a.max(b)),
                _ if b == 0 => Err("division by zero".into()),
                _ => Ok((a + b - 1).div_euclid(b)),
            };
        }
        self.vars.get(&tok).copied().ok_or_else(|| format!("unknown integer parameter `{tok}`"))
    }
}
