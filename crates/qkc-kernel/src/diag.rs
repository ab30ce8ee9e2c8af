//! User-facing diagnostics for KIR text: parse and verifier errors rendered with
//! `file:line:col` and a caret, in the style of the graph IR ([`qkc_ir::diag`]).

use qkc_ir::Diag;

use crate::kernel::Kernel;
use crate::parser::{parse_with_spans, SourceMap};
use crate::verify::{diagnostics, verify_all};

/// Parse and verify KIR text. On failure, returns every diagnostic (one for a parse error, all of
/// the verifier's otherwise).
pub fn check(src: &str) -> Result<(Kernel, SourceMap), Vec<Diag>> {
    let (k, map) = parse_with_spans(src).map_err(|d| vec![d])?;
    let errors = verify_all(&k);
    if errors.is_empty() {
        Ok((k, map))
    } else {
        Err(diagnostics(&errors, &map))
    }
}

/// Render diagnostics against their source: `error: path:line:col: message` plus a snippet.
pub fn render(path: &str, src: &str, diags: &[Diag]) -> String {
    qkc_ir::diag::render(path, src, diags)
}

/// Parse and verify, rendering any failure.
pub fn check_rendered(path: &str, src: &str) -> Result<(Kernel, SourceMap), String> {
    check(src).map_err(|d| render(path, src, &d))
}
