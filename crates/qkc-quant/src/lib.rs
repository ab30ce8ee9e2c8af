//! qkc-quant: the single source of truth for every quantization scheme qkc supports.
//!
//! - [`scheme`]: descriptors ([`Scheme`]) with a serde form and a short spelling (`int4:g128`).
//! - [`tensor`]: [`QuantTensor`], a quantized weight in qkc's own storage layout (named parts,
//!   one safetensors tensor each), with exact scalar reference dequantization.
//! - [`sparse`]: CSR sparse outliers ([`Csr`]), the "S" of dense-and-sparse; [`outliers`]:
//!   extracting them from a dense weight.
//! - [`gguf`]: a GGUF (llama.cpp) reader: metadata, tensors, ggml dequant, and the exact
//!   mapping of Q4_0/Q4_1/Q5_0/Q5_1/Q8_0/Q4_K/Q5_K/Q6_K onto uniform-int schemes.
//! - [`io`]: safetensors reading and writing of qkc's layout ([`io::SafetensorsWriter`]).
//! - One module per scheme family, each with its layout, reference dequant, quantizer and a
//!   link to what it reproduces: [`uniform`] (GPTQ/AWQ/RTN), [`spqr`], [`lut`] (SqueezeLLM),
//!   [`fixed`] (NF4/FP4), [`aqlm`], [`binary`] (binary, ternary, BiLLM); shared [`pack`] (bit
//!   streams) and [`kmeans`].
//! - [`hadamard`]: FWHT and the `had_K` tables of QuaRot/SpinQuant.
//! - [`rotation`]: Hadamard, randomized Hadamard and dense rotations, and the offline fold `W·Rᵀ`.
//! - [`par`]: deterministic row-parallelism for big quantize jobs.
//!
//! The reference interpreter in `qkc-ir` and every backend rely on these functions.
#![deny(missing_docs)]

pub mod aqlm;
pub mod binary;
pub mod error;
pub mod fixed;
pub mod gguf;
pub mod hadamard;
pub mod hf;
pub mod io;
pub mod kmeans;
pub mod lut;
pub mod outliers;
pub mod pack;
pub mod par;
pub mod rotation;
pub mod scheme;
pub mod sparse;
pub mod spqr;
pub mod tensor;
pub mod uniform;

pub use error::QuantError;
pub use scheme::{Scheme, SchemeParseError};
pub use sparse::Csr;
pub use tensor::{Part, PartDtype, QuantOptions, QuantTensor};
