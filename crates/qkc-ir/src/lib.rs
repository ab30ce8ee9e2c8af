//! qkc-ir: the graph IR of qkc.
//!
//! - [`types`]: dtypes, shapes (with the symbolic token dim `T`), quantized and sparse types.
//! - [`ops`]: the op set, operand roles and typed attributes.
//! - [`graph`]: the graph over petgraph's `StableGraph`, behind typed [`NodeId`]s.
//! - [`parser`] / [`printer`]: the canonical `.qir` text form, which round-trips.
//! - [`json`]: the serde JSON form, for tools.
//! - [`verify`]: the verifier and shape inference (reports every broken invariant).
//! - [`interp`]: the reference interpreter (f64), which defines what a graph means.
//! - [`diag`]: diagnostics with `file:line:col` and a caret.
#![deny(missing_docs)]

pub mod diag;
pub mod graph;
pub mod interp;
pub mod json;
pub mod ops;
pub mod parser;
pub mod printer;
pub mod types;
pub mod verify;

pub use diag::Diag;
pub use graph::{Graph, Node, NodeId, Span};
pub use ops::{Attr, Op};
pub use parser::{parse, parse_type};
pub use types::{DType, Dim, Shape, Type};
