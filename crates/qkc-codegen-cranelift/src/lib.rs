//! qkc-codegen-cranelift: qkc's CPU code generator, KIR → CLIF → x86-64 machine code.
//!
//! - [`lower`]: the translation (KIR.md's Cranelift column), one CLIF function per kernel.
//! - [`module`]: the one driver, generic over `cranelift_module::Module`.
//! - [`jit`]: `JITModule` → callable code in this process ([`JitKernel`]).
//! - [`object`]: `ObjectModule` → a relocatable `.o` for C/Rust programs.
//! - [`clif`]: normalized CLIF text for review and snapshots.
//! - [`isa`]: the host ISA (cranelift-native; 128-bit SIMD via SSE4.1/AVX encodings).
//!
//! Calling convention: `extern "C" fn NAME(params..., chunk_lo: u32, chunk_hi: u32)` runs the
//! chunks `chunk_lo..chunk_hi` (see [`lower`]). What does not translate is a
//! [`CodegenError::Unsupported`], never a panic.
#![deny(missing_docs)]

pub mod clif;
pub mod error;
pub mod isa;
pub mod jit;
pub mod lower;
pub mod module;
pub mod object;

pub use clif::clif_text;
pub use error::{CodegenError, Result};
pub use isa::Options;
pub use jit::{call_entry, JitKernel, MAX_PARAMS};
pub use object::compile_object;
