//! Importers for quantized checkpoints of the HF ecosystem (../shared/FORMATS.md): each maps one
//! module's stored tensors onto a [`QuantTensor`] in qkc's layout (plus CSR outliers and an
//! input permutation where the format has them), bit-exactly, with no per-format kernel.
//!
//! - [`squeezellm`] (per-row LUT + CSR outliers, `.pt` through [`pt`] or safetensors), [`spqr`]
//!   (inference format), [`aqlm`] (1x16, 2x8), [`bnb`] (NF4/FP4, double quant).
//! - [`gptq`] (v1/v2 zero points, 2/3/4/8-bit, act-order `g_idx`, static groups), [`awq`] (GEMM
//!   and GEMV packings) and [`compressed`] (compressed-tensors `pack-quantized`), all onto qkc's
//!   uniform int ([`crate::uniform`]).
//! - [`folder`]: an HF model folder (config.json, `quantization_config` / `quantize_config.json`,
//!   safetensors single file or index + shards, memory-mapped), method detection
//!   ([`folder::QuantMethod`]) and [`folder::dequant_module`].

use crate::{Csr, QuantTensor};

pub mod aqlm;
pub mod awq;
pub mod bnb;
pub mod common;
pub mod compressed;
pub mod folder;
pub mod gptq;
pub mod pt;
pub mod spqr;
pub mod squeezellm;

/// The error of every HF importer and of [`folder::HfFolder`]: messages name the file and the
/// tensor at fault (one type shared with the SqueezeLLM/SpQR/AQLM/bnb importers).
pub type HfError = common::ImportError;

pub use folder::{dequant_module, import_module, HfFolder, ModelConfig, Module, QuantMethod};

/// Element type of a stored tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawDtype {
    /// bool / u8
    U8,
    /// i8
    I8,
    /// i16
    I16,
    /// i32
    I32,
    /// i64
    I64,
    /// u32 (rare)
    U32,
    /// f16
    F16,
    /// bf16
    BF16,
    /// f32
    F32,
    /// f64
    F64,
}

/// One stored tensor, borrowed from its (memory-mapped) file.
#[derive(Debug, Clone, Copy)]
pub struct RawTensor<'a> {
    /// Element type.
    pub dtype: RawDtype,
    /// Shape, row-major.
    pub shape: &'a [usize],
    /// Little-endian bytes.
    pub data: &'a [u8],
}

/// Where an importer finds a module's tensors (`{prefix}.qweight`, `{prefix}.scales`, ...).
pub trait TensorSource {
    /// The tensor `name`, if stored.
    fn get(&self, name: &str) -> Option<RawTensor<'_>>;
    /// Which file holds `name` (for error messages).
    fn file_of(&self, name: &str) -> String;
}

/// One imported linear layer `[n, k]` (HF orientation: n outputs, k inputs).
#[derive(Debug, Clone)]
pub struct Imported {
    /// The quantized weight in qkc's layout (act-order, when the format has it, is expressed in
    /// the scheme: qkc's own `g_idx` for uniform int, the `in_perm` part of `spqr…:perm`).
    /// `q.dequant()` is in the original column order.
    pub q: QuantTensor,
    /// Sparse outliers to add (SqueezeLLM, SpQR), already in absolute values and in the
    /// original column order.
    pub outliers: Option<Csr>,
}
