//! The crate's one error enum. `Unsupported` is a gap a user can hit (a verified KIR construct
//! this backend does not translate); `Llvm` carries LLVM's own message (parser, verifier, pass
//! pipeline or code generator); `Kernel` is a kernel that does not verify.

use thiserror::Error;

/// What can go wrong translating or compiling a kernel.
#[derive(Debug, Error)]
pub enum LlvmError {
    /// The kernel failed KIR verification: a bug in whatever built it.
    #[error("llvm backend: kernel @{kernel} does not verify: {source}")]
    Kernel {
        /// The kernel's name.
        kernel: String,
        /// The verifier's errors.
        source: Box<qkc_kernel::KernelError>,
    },
    /// A KIR construct (or type) this backend does not translate for the kernel's target.
    #[error("llvm backend: kernel @{kernel}: `{inst}`: unsupported: {reason}")]
    Unsupported {
        /// The kernel's name.
        kernel: String,
        /// The instruction, as KIR text (or the construct's description).
        inst: String,
        /// Why.
        reason: String,
    },
    /// The options name something this backend cannot target (e.g. `sm_75`).
    #[error("llvm backend: bad options: {0}")]
    Options(String),
    /// LLVM rejected the module or failed to compile it.
    #[error("llvm: kernel @{kernel}: {stage}: {message}")]
    Llvm {
        /// The kernel's name.
        kernel: String,
        /// Where it failed: `parse`, `verify`, `passes`, `codegen`, `target`.
        stage: &'static str,
        /// LLVM's message.
        message: String,
    },
    /// A value was used before it was defined, or a similar broken invariant: a bug in this crate.
    #[error("llvm backend internal error: kernel @{kernel}: {message}")]
    Internal {
        /// The kernel's name.
        kernel: String,
        /// What went wrong.
        message: String,
    },
}

/// Results of this crate.
pub type Result<T> = std::result::Result<T, LlvmError>;
