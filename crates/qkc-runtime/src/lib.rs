//! qkc-runtime: executes a compiled graph.
//!
//! - [`cpu`]: every kernel node of a fused graph lowered ([`qkc_kernel::lower`]), JIT-compiled
//!   through Cranelift once per distinct kernel, its weights packed once at load, and its chunks
//!   spread over a thread pool at run time.
//! - [`cuda`] (feature `cuda`, on by default): the same on an NVIDIA GPU through cudarc, loaded
//!   at run time so qkc builds and runs without CUDA; PTX from the LLVM backend.
//! - [`ceiling`]: the machine's read bandwidth, measured by a plain read loop, the denominator of
//!   every "fraction of the read ceiling" qkc reports.
//! - [`buffer`]: aligned host buffers and dtype encoding.
#![deny(missing_docs)]

pub mod buffer;
pub mod ceiling;
pub mod cpu;
#[cfg(feature = "cuda")]
pub mod cuda;
mod plan;
pub mod spin;

pub use cpu::{CpuOptions, CpuProgram};
pub use plan::{CompiledKernel, LaunchInfo};

use qkc_kernel::lower::LowerError;

/// Why a graph cannot be compiled or run.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A node has no kernel for this target, or its weights do not fit the kernel.
    #[error("cannot lower {0}")]
    Lower(#[from] LowerError),
    /// The code generator failed (a bug in qkc: the kernel verified).
    #[error("code generation failed for kernel `{kernel}`: {message}")]
    Codegen {
        /// Kernel name.
        kernel: String,
        /// The backend's message.
        message: String,
    },
    /// Weights could not be bound (see the interpreter's message).
    #[error("{0}")]
    Weights(#[from] qkc_ir::interp::InterpError),
    /// An input is missing or has the wrong shape.
    #[error("input `{name}`: {reason}")]
    Input {
        /// Binding name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A KV cache would overflow.
    #[error("KV cache `{cache}` holds {len} of {max} tokens; {more} more do not fit")]
    CacheFull {
        /// Cache name.
        cache: String,
        /// Tokens held.
        len: usize,
        /// Capacity.
        max: usize,
        /// Tokens this run adds.
        more: usize,
    },
    /// No CUDA driver or device (the message says which).
    #[error("{0}")]
    NoCuda(String),
    /// A CUDA call failed.
    #[error("CUDA: {0}")]
    Cuda(String),
    /// The graph is not something this runtime runs.
    #[error("{0}")]
    Graph(String),
}
