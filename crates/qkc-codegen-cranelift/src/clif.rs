//! CLIF text for review and snapshots: the function before Cranelift's optimizations, with
//! value and block numbers renumbered in order of first appearance (`v0, v1, …`, `block0, …`),
//! so a snapshot diff shows real changes, not id churn.

use qkc_kernel::Kernel;

use crate::error::Result;
use crate::isa::{host_isa, Options};
use crate::lower;

/// The CLIF of `k` (as the JIT and the object path get it), ids normalized.
pub fn clif_text(k: &Kernel) -> Result<String> {
    qkc_kernel::verify(k)?;
    let isa = host_isa(Options::default())?;
    let mut func = cranelift_codegen::ir::Function::new();
    func.signature = lower::signature(k, isa.default_call_conv())?;
    lower::lower_kernel(k, &mut func, isa.frontend_config())?;
    Ok(normalize(&func.display().to_string()))
}

/// Renumber `vN`, `blockN`, `ssN` and `constN` tokens in order of first appearance.
pub fn normalize(text: &str) -> String {
    let prefixes = ["block", "const", "ss", "v"];
    let mut maps: Vec<std::collections::HashMap<String, usize>> =
        vec![Default::default(); prefixes.len()];
    let mut out = String::with_capacity(text.len());
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let word_start = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        let hit = word_start
            .then(|| {
                prefixes.iter().enumerate().find_map(|(n, p)| {
                    let rest = &text[i..];
                    let digits = rest
                        .strip_prefix(p)?
                        .bytes()
                        .take_while(u8::is_ascii_digit)
                        .count();
                    let end = i + p.len() + digits;
                    let boundary = bytes
                        .get(end)
                        .is_none_or(|c| !(c.is_ascii_alphanumeric() || *c == b'_'));
                    (digits > 0 && boundary).then_some((n, end))
                })
            })
            .flatten();
        match hit {
            Some((n, end)) => {
                let m = &mut maps[n];
                let next = m.len();
                let id = *m.entry(text[i..end].to_string()).or_insert(next);
                out.push_str(prefixes[n]);
                out.push_str(&id.to_string());
                i = end;
            }
            None => {
                let c = text[i..].chars().next().unwrap_or(' ');
                out.push(c);
                i += c.len_utf8();
            }
        }
    }
    out
}
