//! qkc: a compiler that turns quantized LLM graphs into fused, specialized kernels.
//!
//! This umbrella crate re-exports the workspace crates so that the top-level `tests/` and
//! `benches/` can use them through one dependency. See `README.md` and the crates' docs.

pub use qkc_ir as ir;
pub use qkc_kernel as kernel;
pub use qkc_passes as passes;
pub use qkc_quant as quant;
