//! The crate's one error enum. `Unsupported` is a gap a user can hit (a KIR construct or type
//! this backend does not translate yet, or one Cranelift cannot lower on this ISA); the rest are
//! failures of Cranelift or of the host, carried with their message.

use thiserror::Error;

/// What can go wrong translating or compiling a kernel.
#[derive(Debug, Error)]
pub enum CodegenError {
    /// A KIR construct this backend does not translate.
    #[error("cranelift backend: kernel @{kernel}: `{inst}`: unsupported: {reason}")]
    Unsupported {
        /// The kernel's name.
        kernel: String,
        /// The instruction, as KIR text (or the construct's description).
        inst: String,
        /// Why.
        reason: String,
    },
    /// The kernel failed KIR verification: a bug in whatever built it.
    #[error("kernel does not verify: {0}")]
    Kernel(#[from] qkc_kernel::KernelError),
    /// Cranelift rejected the function (verifier or lowering), or the module failed.
    #[error("cranelift: kernel @{kernel}: {message}")]
    Cranelift {
        /// The kernel's name.
        kernel: String,
        /// Cranelift's message (for verifier errors, the annotated function).
        message: String,
    },
    /// The host ISA could not be set up (unknown CPU, missing SIMD features).
    #[error("cranelift host ISA: {0}")]
    Isa(String),
    /// A value was used before the lowering defined it: a bug in this crate.
    #[error("cranelift backend internal error: {0}")]
    Internal(String),
}

/// Results of this crate.
pub type Result<T> = std::result::Result<T, CodegenError>;
