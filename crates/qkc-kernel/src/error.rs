//! The crate's one error type.

use crate::verify::VerifyError;

/// Everything that can go wrong in qkc-kernel.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// KIR text did not parse; the diagnostic has the span.
    #[error("parse error: {0}")]
    Parse(qkc_ir::Diag),
    /// The verifier found broken invariants (a bug in whatever built the kernel).
    #[error("kernel `{kernel}` failed verification with {} error(s):\n{}", errors.len(), list(errors))]
    Verify {
        /// The kernel's name.
        kernel: String,
        /// Every error found.
        errors: Vec<VerifyError>,
    },
    /// Misuse of the builder API.
    #[error("builder: {0}")]
    Builder(String),
    /// The interpreter hit undefined or unsupported behaviour.
    #[error("interpreter: {0}")]
    Interp(String),
    /// A template could not be instantiated.
    #[error("template `{template}`: {message}")]
    Template {
        /// The template's name.
        template: String,
        /// What is wrong.
        message: String,
    },
    /// A template instance failed to parse or verify; `rendered` shows the instantiated text
    /// with line, column and caret.
    #[error("template `{template}` instance is invalid:\n{rendered}")]
    Instance {
        /// The template's name.
        template: String,
        /// The rendered diagnostics.
        rendered: String,
    },
    /// A feature a user can ask for that is not supported (yet).
    #[error("unsupported: {0}")]
    Unsupported(String),
}

fn list(errors: &[VerifyError]) -> String {
    errors.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n")
}
