//! qkc-kernel: the kernel IR (KIR) that both code generators translate, and everything around it.
//!
//! - [`types`], [`entities`], [`ops`], [`kernel`]: typed SSA with scalar and vector types,
//!   pointers into memory spaces, structured control flow (`for`, `if`), parallel axes and
//!   target intrinsics.
//! - [`builder`]: builds kernels with ids in text order.
//! - [`printer`] / [`parser`]: the canonical text form; `parse(print(k)) == k`.
//! - [`verify`]: every broken invariant, with `line:col` when the kernel came from text.
//! - [`interp`]: runs a kernel on the CPU (blocks in sequence, the threads of a block in lockstep),
//!   so templates are tested without a backend.
//! - [`template`]: KIR templates with typed holes and snippets, from `templates/kir` at the repo root.
//! - [`lower`]: one fused graph node → one specialized kernel, and how its weights are packed.
//! - [`artifact`]: what a backend returns: code, entry, launch shape, parameter layout, key.
#![deny(missing_docs)]

pub mod artifact;
pub mod builder;
pub mod diag;
pub mod entities;
pub mod error;
pub mod hash;
pub mod interp;
pub mod kernel;
pub mod lexer;
pub mod lower;
pub mod ops;
pub mod parser;
pub mod printer;
pub mod template;
pub mod types;
pub mod verify;
mod verify_ops;

pub use artifact::{Artifact, Code, LaunchConfig, ParamLayout, SpecKey};
pub use builder::Builder;
pub use entities::{Block, Inst, Value};
pub use error::KernelError;
pub use kernel::{BlockData, InstData, Kernel, Param, ParamAttrs, Target, ValueData, ValueDef};
pub use ops::{Axis, BinaryOp, CacheHint, CastOp, FloatCC, IntCC, MemFlags, Op, ReduceOp, ShflMode, UnaryOp};
pub use parser::{parse, parse_with_spans, SourceMap};
pub use printer::print;
pub use types::{MemSpace, Scalar, Type};
pub use verify::{verify, VerifyError};
