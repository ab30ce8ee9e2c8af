//! The conformance suite on every CPU backend: the KIR interpreter (checking itself against the
//! f64 reference) and the Cranelift JIT (against the reference and the interpreter).

mod common;

// The suite expands into a module per backend, so backends are named from inside it.
use common::{CraneliftJit, Interp};

conformance_suite!(interp, super::Interp);
conformance_suite!(cranelift_jit, super::CraneliftJit);
