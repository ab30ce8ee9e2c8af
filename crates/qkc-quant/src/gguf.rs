//! A small GGUF reader (llama.cpp / ggml checkpoints): header, metadata, tensor infos, reference
//! dequantization of the common ggml block formats, and the exact mapping of those formats onto
//! qkc's uniform-int schemes.
//!
//! Format (ggml `docs/gguf.md`, `src/gguf.cpp`; all little-endian): magic `GGUF`, `u32` version
//! (2 or 3 here; version 1 used 32-bit counts and is not read), `u64` tensor count, `u64`
//! metadata count, then the metadata key/values (`string` key, `u32` value type, value; strings
//! are a `u64` length and UTF-8 bytes; arrays a `u32` element type, a `u64` count and the
//! elements), then one info per tensor (`string` name, `u32` n_dims, `u64 ne[n_dims]` with
//! `ne[0]` the fastest dimension, `u32` ggml type, `u64` offset relative to the data section).
//! The data section starts at the end of the infos rounded up to `general.alignment`
//! (default 32).
//!
//! Block formats (ggml `src/ggml-common.h`, `dequantize_row_*` in `src/ggml-quants.c`), `d`,
//! `m`, `dmin` are f16:
//!
//! | type | bytes / elements | layout | value |
//! |---|---|---|---|
//! | Q4_0 | 18 / 32 | `d, qs[16]` (low nibble j, high nibble j+16) | `(q − 8)·d` |
//! | Q4_1 | 20 / 32 | `d, m, qs[16]` | `d·q + m` |
//! | Q5_0 | 22 / 32 | `d, qh: u32, qs[16]`; bit 4 of j is `(qh >> j) & 1`, of j+16 `(qh >> (j+16)) & 1` | `(q − 16)·d` |
//! | Q5_1 | 24 / 32 | `d, m, qh: u32, qs[16]` | `d·q + m` |
//! | Q8_0 | 34 / 32 | `d, qs: i8[32]` | `q·d` |
//! | Q4_K | 144 / 256 | `d, dmin, scales[12], qs[128]` | `d·sc·q − dmin·m` per 32 |
//! | Q5_K | 176 / 256 | `d, dmin, scales[12], qh[32], qs[128]` | `d·sc·q − dmin·m` per 32 |
//! | Q6_K | 210 / 256 | `ql[128], qh[64], scales: i8[16], d` | `d·sc·(q − 32)` per 16 |
//!
//! Mapping onto qkc ([`GgufFile::to_quant`]; a weight with `ne = [K, N]` becomes `[n = N, k = K]`):
//!
//! | ggml | qkc scheme | codes | statistics |
//! |---|---|---|---|
//! | Q4_0 | `int4:g32` | `q` (implicit zero 8) | f16 scale `d` |
//! | Q8_0 | `int8:g32` | `q + 128` (implicit zero 128) | f16 scale `d` |
//! | Q5_0 | `int8:g32:asym` | `q` (0..31) | f16 scale `d`, zero 16 |
//! | Q4_1 | `int4:g32:min` | `q` | scale `d`, min `m` (f32) |
//! | Q5_1 | `int8:g32:min` | `q` (0..31) | scale `d`, min `m` |
//! | Q4_K | `int4:g32:min` | `q` | scale `d·sc`, min `−dmin·m` |
//! | Q5_K | `int8:g32:min` | `q` (0..31) | scale `d·sc`, min `−dmin·m` |
//! | Q6_K | `int8:g16:min` | `q` (0..63) | scale `d·sc`, min `−32·d·sc` |
//!
//! Every mapping is bit-exact against ggml's f32 dequant for finite `d`/`dmin`: the products
//! `d·sc` and `d·sc·q` need at most 11 + 7 + 6 = 24 significant bits, so they are exact in f32
//! and `scale·q + min` rounds once, as ggml does. (Q6_K has no exact zero-point form, because
//! `d·sc` is not an f16; `min = −32·scale` is exact, so `scale·q + min = d·sc·(q − 32)` exactly,
//! up to the sign of zero: code 32 gives `+0` where ggml's `d·sc·0` gives `−0` when `d·sc < 0`.)
//! F32, F16 and BF16 tensors, and quantized tensors of rank other than 2, map to
//! [`GgufWeight::Dense`].
//!
//! Untrusted input never panics: every read is bounds-checked and every error names the file
//! and what was being read.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use half::{bf16, f16};

use crate::pack;
use crate::scheme::{Group, Packing, Scheme, UniformInt};
use crate::tensor::{Part, QuantTensor};

/// The default data alignment when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;

/// Deepest nesting of arrays accepted in metadata.
const MAX_ARRAY_DEPTH: usize = 4;

/// Errors from reading a GGUF file. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    /// The file could not be opened or mapped.
    #[error("{file}: {source}")]
    Io {
        /// The file.
        file: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The first four bytes are not `GGUF`.
    #[error("{file}: bad magic {found:02x?} (expected \"GGUF\"): not a GGUF file")]
    BadMagic {
        /// The file.
        file: String,
        /// The bytes found.
        found: [u8; 4],
    },
    /// A version other than 2 or 3.
    #[error("{file}: unsupported GGUF version {version} (qkc reads versions 2 and 3)")]
    UnsupportedVersion {
        /// The file.
        file: String,
        /// The version found.
        version: u32,
    },
    /// The file ends before `what` does.
    #[error("{file}: truncated: {what} at offset {offset} needs bytes up to {end}, but the file has {len} bytes")]
    Truncated {
        /// The file.
        file: String,
        /// What was being read (a header field, a metadata key, a tensor's data).
        what: String,
        /// Where it starts.
        offset: u64,
        /// Where it would end.
        end: u64,
        /// The file length.
        len: u64,
    },
    /// A structurally invalid field (bad UTF-8, unknown value type, duplicate key, absurd
    /// dimensions, bad alignment).
    #[error("{file}: malformed: {reason}")]
    Malformed {
        /// The file.
        file: String,
        /// What is wrong.
        reason: String,
    },
    /// A tensor whose ggml type id has no known layout.
    #[error("{file}: tensor `{tensor}` has unknown ggml type id {type_id}")]
    UnknownType {
        /// The file.
        file: String,
        /// The tensor.
        tensor: String,
        /// The type id.
        type_id: u32,
    },
    /// A known ggml type this reader cannot dequantize.
    #[error("{file}: tensor `{tensor}` has ggml type {type_name} (id {type_id}), which qkc cannot dequantize (supported: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K)")]
    UnsupportedType {
        /// The file.
        file: String,
        /// The tensor.
        tensor: String,
        /// The type name.
        type_name: &'static str,
        /// The type id.
        type_id: u32,
    },
    /// A tensor whose shape does not fit its type (a row not a multiple of the block size).
    #[error("{file}: tensor `{tensor}`: {reason}")]
    BadTensor {
        /// The file.
        file: String,
        /// The tensor.
        tensor: String,
        /// What is wrong.
        reason: String,
    },
    /// A metadata key that is not present.
    #[error("{file}: metadata key `{key}` is missing")]
    MissingKey {
        /// The file.
        file: String,
        /// The key.
        key: String,
    },
    /// A metadata key of a type (or value) the getter cannot convert.
    #[error("{file}: metadata key `{key}` is {found}, expected {expected}")]
    WrongKeyType {
        /// The file.
        file: String,
        /// The key.
        key: String,
        /// What the getter wanted.
        expected: &'static str,
        /// What is stored.
        found: String,
    },
    /// No tensor of that name.
    #[error("{file}: tensor `{name}` not found")]
    TensorNotFound {
        /// The file.
        file: String,
        /// The name asked for.
        name: String,
    },
}

/// A ggml tensor type id (`enum ggml_type`), with the ids of the known types as constants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GgmlType(pub u32);

/// (id, name, elements per block, bytes per block) of every ggml type with a known layout.
const TYPES: &[(u32, &str, u64, u64)] = &[
    (0, "F32", 1, 4),
    (1, "F16", 1, 2),
    (2, "Q4_0", 32, 18),
    (3, "Q4_1", 32, 20),
    (6, "Q5_0", 32, 22),
    (7, "Q5_1", 32, 24),
    (8, "Q8_0", 32, 34),
    (9, "Q8_1", 32, 36),
    (10, "Q2_K", 256, 84),
    (11, "Q3_K", 256, 110),
    (12, "Q4_K", 256, 144),
    (13, "Q5_K", 256, 176),
    (14, "Q6_K", 256, 210),
    (15, "Q8_K", 256, 292),
    (16, "IQ2_XXS", 256, 66),
    (17, "IQ2_XS", 256, 74),
    (18, "IQ3_XXS", 256, 98),
    (19, "IQ1_S", 256, 50),
    (20, "IQ4_NL", 32, 18),
    (21, "IQ3_S", 256, 110),
    (22, "IQ2_S", 256, 82),
    (23, "IQ4_XS", 256, 136),
    (24, "I8", 1, 1),
    (25, "I16", 1, 2),
    (26, "I32", 1, 4),
    (27, "I64", 1, 8),
    (28, "F64", 1, 8),
    (29, "IQ1_M", 256, 56),
    (30, "BF16", 1, 2),
    (34, "TQ1_0", 256, 54),
    (35, "TQ2_0", 256, 66),
    (39, "MXFP4", 32, 17),
];

impl GgmlType {
    /// f32
    pub const F32: GgmlType = GgmlType(0);
    /// f16
    pub const F16: GgmlType = GgmlType(1);
    /// 4-bit, 32 per block, f16 scale
    pub const Q4_0: GgmlType = GgmlType(2);
    /// 4-bit, 32 per block, f16 scale and min
    pub const Q4_1: GgmlType = GgmlType(3);
    /// 5-bit, 32 per block, f16 scale
    pub const Q5_0: GgmlType = GgmlType(6);
    /// 5-bit, 32 per block, f16 scale and min
    pub const Q5_1: GgmlType = GgmlType(7);
    /// 8-bit, 32 per block, f16 scale
    pub const Q8_0: GgmlType = GgmlType(8);
    /// 4-bit K-quant, 256 per super-block
    pub const Q4_K: GgmlType = GgmlType(12);
    /// 5-bit K-quant, 256 per super-block
    pub const Q5_K: GgmlType = GgmlType(13);
    /// 6-bit K-quant, 256 per super-block
    pub const Q6_K: GgmlType = GgmlType(14);
    /// bfloat16
    pub const BF16: GgmlType = GgmlType(30);

    fn entry(self) -> Option<&'static (u32, &'static str, u64, u64)> {
        TYPES.iter().find(|t| t.0 == self.0)
    }

    /// The type's ggml name (`Q4_K`, ...), or `None` for an unknown id.
    pub fn name(self) -> Option<&'static str> {
        self.entry().map(|t| t.1)
    }

    /// (elements per block, bytes per block), or `None` for an unknown id.
    pub fn block(self) -> Option<(u64, u64)> {
        self.entry().map(|t| (t.2, t.3))
    }

    /// Whether [`dequantize_row`] decodes this type.
    pub fn can_dequantize(self) -> bool {
        matches!(
            self,
            GgmlType::F32
                | GgmlType::F16
                | GgmlType::BF16
                | GgmlType::Q4_0
                | GgmlType::Q4_1
                | GgmlType::Q5_0
                | GgmlType::Q5_1
                | GgmlType::Q8_0
                | GgmlType::Q4_K
                | GgmlType::Q5_K
                | GgmlType::Q6_K
        )
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "type#{}", self.0),
        }
    }
}

/// The type of a metadata value (`enum gguf_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GgufValueType {
    /// 0
    U8,
    /// 1
    I8,
    /// 2
    U16,
    /// 3
    I16,
    /// 4
    U32,
    /// 5
    I32,
    /// 6
    F32,
    /// 7
    Bool,
    /// 8
    String,
    /// 9
    Array,
    /// 10
    U64,
    /// 11
    I64,
    /// 12
    F64,
}

impl GgufValueType {
    /// From the on-disk id.
    pub fn from_id(id: u32) -> Option<Self> {
        use GgufValueType::*;
        Some(match id {
            0 => U8,
            1 => I8,
            2 => U16,
            3 => I16,
            4 => U32,
            5 => I32,
            6 => F32,
            7 => Bool,
            8 => String,
            9 => Array,
            10 => U64,
            11 => I64,
            12 => F64,
            _ => return None,
        })
    }

    /// The on-disk id.
    pub fn id(self) -> u32 {
        self as u32
    }

    /// Smallest encoded size of one value (used to reject absurd array counts early).
    fn min_size(self) -> u64 {
        use GgufValueType::*;
        match self {
            U8 | I8 | Bool => 1,
            U16 | I16 => 2,
            U32 | I32 | F32 => 4,
            U64 | I64 | F64 | String => 8,
            Array => 12,
        }
    }
}

/// A metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum GgufValue {
    /// u8
    U8(u8),
    /// i8
    I8(i8),
    /// u16
    U16(u16),
    /// i16
    I16(i16),
    /// u32
    U32(u32),
    /// i32
    I32(i32),
    /// f32
    F32(f32),
    /// bool
    Bool(bool),
    /// UTF-8 string
    String(String),
    /// array of one element type
    Array(GgufValueType, Vec<GgufValue>),
    /// u64
    U64(u64),
    /// i64
    I64(i64),
    /// f64
    F64(f64),
}

impl GgufValue {
    /// The value's type.
    pub fn value_type(&self) -> GgufValueType {
        match self {
            GgufValue::U8(_) => GgufValueType::U8,
            GgufValue::I8(_) => GgufValueType::I8,
            GgufValue::U16(_) => GgufValueType::U16,
            GgufValue::I16(_) => GgufValueType::I16,
            GgufValue::U32(_) => GgufValueType::U32,
            GgufValue::I32(_) => GgufValueType::I32,
            GgufValue::F32(_) => GgufValueType::F32,
            GgufValue::Bool(_) => GgufValueType::Bool,
            GgufValue::String(_) => GgufValueType::String,
            GgufValue::Array(..) => GgufValueType::Array,
            GgufValue::U64(_) => GgufValueType::U64,
            GgufValue::I64(_) => GgufValueType::I64,
            GgufValue::F64(_) => GgufValueType::F64,
        }
    }

    /// The value as an integer, if it is one (any width, signed or not).
    pub fn as_i128(&self) -> Option<i128> {
        Some(match *self {
            GgufValue::U8(v) => v.into(),
            GgufValue::I8(v) => v.into(),
            GgufValue::U16(v) => v.into(),
            GgufValue::I16(v) => v.into(),
            GgufValue::U32(v) => v.into(),
            GgufValue::I32(v) => v.into(),
            GgufValue::U64(v) => v.into(),
            GgufValue::I64(v) => v.into(),
            _ => return None,
        })
    }

    /// The value as a float, if it is a number (integers convert).
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            GgufValue::F32(v) => Some(v.into()),
            GgufValue::F64(v) => Some(v),
            _ => self.as_i128().map(|v| v as f64),
        }
    }

    /// A short description for error messages (`u32 7`, `a string`, `an array of 3 i32`).
    fn describe(&self) -> String {
        match self {
            GgufValue::String(_) => "a string".into(),
            GgufValue::Array(t, v) => format!("an array of {} {t:?}", v.len()),
            GgufValue::Bool(b) => format!("bool {b}"),
            GgufValue::F32(v) => format!("f32 {v}"),
            GgufValue::F64(v) => format!("f64 {v}"),
            other => format!(
                "{:?} {}",
                other.value_type(),
                other.as_i128().unwrap_or_default()
            ),
        }
    }
}

/// One tensor's info record.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    /// Name.
    pub name: String,
    /// Dimensions, `ne[0]` (the fastest, K of a weight) first.
    pub dims: Vec<u64>,
    /// The ggml type.
    pub ggml_type: GgmlType,
    /// Offset of the data relative to the data section.
    pub offset: u64,
}

impl TensorInfo {
    /// Number of elements (the product of `dims`; checked at parse time not to overflow).
    pub fn n_elements(&self) -> u64 {
        self.dims.iter().product()
    }

    /// Number of bytes of the data, or `None` for an unknown type or a row that is not a
    /// multiple of the block size.
    pub fn n_bytes(&self) -> Option<u64> {
        let (be, bb) = self.ggml_type.block()?;
        let ne0 = self.dims.first().copied().unwrap_or(1);
        if ne0 % be != 0 {
            return None;
        }
        (self.n_elements() / be).checked_mul(bb)
    }

    /// `(n, k)` of the tensor viewed as a matrix of rows of `ne[0]`: `k = ne[0]`, `n` the
    /// product of the other dims (1 for a vector).
    pub fn rows_cols(&self) -> (usize, usize) {
        let k = self.dims.first().copied().unwrap_or(1);
        let n = self.dims.iter().skip(1).product::<u64>();
        (n as usize, k as usize)
    }
}

/// A weight converted for qkc.
#[derive(Debug, Clone, PartialEq)]
pub enum GgufWeight {
    /// Dense row-major `[n, k]` f32 (F32/F16/BF16 tensors, and quantized tensors of rank ≠ 2).
    Dense {
        /// Rows (the product of `ne[1..]`; 1 for a vector).
        n: usize,
        /// Row length `ne[0]`.
        k: usize,
        /// The values.
        data: Vec<f32>,
    },
    /// A quantized weight in qkc's layout, `[n = ne[1], k = ne[0]]`.
    Quant(QuantTensor),
}

enum Data<'a> {
    Borrowed(&'a [u8]),
    Mapped(memmap2::Mmap),
}

/// A parsed GGUF file over its bytes (borrowed, or memory-mapped by [`GgufFile::open`]).
pub struct GgufFile<'a> {
    data: Data<'a>,
    file: String,
    /// The format version (2 or 3).
    pub version: u32,
    /// Metadata in file order.
    pub metadata: Vec<(String, GgufValue)>,
    key_index: HashMap<String, usize>,
    /// Tensor infos in file order.
    pub tensors: Vec<TensorInfo>,
    tensor_index: HashMap<String, usize>,
    /// Data alignment (`general.alignment`, default 32).
    pub alignment: u64,
    /// Absolute offset of the data section.
    pub data_start: u64,
}

impl fmt::Debug for GgufFile<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GgufFile")
            .field("file", &self.file)
            .field("version", &self.version)
            .field("metadata", &self.metadata.len())
            .field("tensors", &self.tensors.len())
            .field("alignment", &self.alignment)
            .field("data_start", &self.data_start)
            .finish()
    }
}

struct Cursor<'b> {
    bytes: &'b [u8],
    pos: usize,
    file: &'b str,
}

impl<'b> Cursor<'b> {
    fn truncated(&self, what: &dyn fmt::Display, n: u64) -> GgufError {
        GgufError::Truncated {
            file: self.file.to_string(),
            what: what.to_string(),
            offset: self.pos as u64,
            end: (self.pos as u64).saturating_add(n),
            len: self.bytes.len() as u64,
        }
    }

    fn take(&mut self, n: u64, what: &dyn fmt::Display) -> Result<&'b [u8], GgufError> {
        let rest = self.bytes.len() - self.pos;
        if n > rest as u64 {
            return Err(self.truncated(what, n));
        }
        let out = &self.bytes[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, what: &dyn fmt::Display) -> Result<[u8; N], GgufError> {
        let s = self.take(N as u64, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn u32(&mut self, what: &dyn fmt::Display) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &dyn fmt::Display) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    fn malformed(&self, reason: String) -> GgufError {
        GgufError::Malformed {
            file: self.file.to_string(),
            reason,
        }
    }

    fn string(&mut self, what: &dyn fmt::Display) -> Result<String, GgufError> {
        let len = self.u64(&format_args!("length of {what}"))?;
        let start = self.pos;
        let b = self.take(len, what)?;
        String::from_utf8(b.to_vec())
            .map_err(|e| self.malformed(format!("{what} at offset {start} is not UTF-8 ({e})")))
    }

    fn value(
        &mut self,
        t: GgufValueType,
        what: &dyn fmt::Display,
        depth: usize,
    ) -> Result<GgufValue, GgufError> {
        use GgufValueType as T;
        Ok(match t {
            T::U8 => GgufValue::U8(u8::from_le_bytes(self.array(what)?)),
            T::I8 => GgufValue::I8(i8::from_le_bytes(self.array(what)?)),
            T::U16 => GgufValue::U16(u16::from_le_bytes(self.array(what)?)),
            T::I16 => GgufValue::I16(i16::from_le_bytes(self.array(what)?)),
            T::U32 => GgufValue::U32(u32::from_le_bytes(self.array(what)?)),
            T::I32 => GgufValue::I32(i32::from_le_bytes(self.array(what)?)),
            T::F32 => GgufValue::F32(f32::from_le_bytes(self.array(what)?)),
            T::U64 => GgufValue::U64(u64::from_le_bytes(self.array(what)?)),
            T::I64 => GgufValue::I64(i64::from_le_bytes(self.array(what)?)),
            T::F64 => GgufValue::F64(f64::from_le_bytes(self.array(what)?)),
            T::Bool => {
                let [b] = self.array(what)?;
                match b {
                    0 => GgufValue::Bool(false),
                    1 => GgufValue::Bool(true),
                    _ => {
                        return Err(self.malformed(format!("{what}: bool byte is {b}, not 0 or 1")))
                    }
                }
            }
            T::String => GgufValue::String(self.string(what)?),
            T::Array => {
                if depth >= MAX_ARRAY_DEPTH {
                    return Err(self.malformed(format!(
                        "{what}: arrays nested deeper than {MAX_ARRAY_DEPTH}"
                    )));
                }
                let id = self.u32(&format_args!("element type of {what}"))?;
                let et = GgufValueType::from_id(id).ok_or_else(|| {
                    self.malformed(format!("{what}: unknown array element type {id}"))
                })?;
                let count = self.u64(&format_args!("element count of {what}"))?;
                let rest = (self.bytes.len() - self.pos) as u64;
                if count.saturating_mul(et.min_size()) > rest {
                    return Err(self.truncated(
                        &format_args!("{count} elements of {what}"),
                        count.saturating_mul(et.min_size()),
                    ));
                }
                let mut items = Vec::with_capacity(count as usize);
                for i in 0..count {
                    items.push(self.value(et, &format_args!("{what}[{i}]"), depth + 1)?);
                }
                GgufValue::Array(et, items)
            }
        })
    }
}

fn align_up(x: u64, a: u64) -> Option<u64> {
    x.checked_add(a - 1).map(|v| v / a * a)
}

impl GgufFile<'static> {
    /// Memory-map and parse the file at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, GgufError> {
        let path = path.as_ref();
        let name = path.display().to_string();
        let io = |source| GgufError::Io {
            file: name.clone(),
            source,
        };
        let f = std::fs::File::open(path).map_err(io)?;
        // SAFETY: the map is read-only and private to this value; like every mmap reader (and
        // llama.cpp), we rely on the file not being truncated or rewritten while it is mapped.
        let map = unsafe { memmap2::Mmap::map(&f) }.map_err(io)?;
        let GgufFile {
            data: _,
            file,
            version,
            metadata,
            key_index,
            tensors,
            tensor_index,
            alignment,
            data_start,
        } = GgufFile::parse_named(&map, &name)?;
        Ok(GgufFile {
            data: Data::Mapped(map),
            file,
            version,
            metadata,
            key_index,
            tensors,
            tensor_index,
            alignment,
            data_start,
        })
    }
}

impl<'a> GgufFile<'a> {
    /// Parse a GGUF file held in memory (errors call it `<memory>`).
    pub fn parse(bytes: &'a [u8]) -> Result<Self, GgufError> {
        Self::parse_named(bytes, "<memory>")
    }

    /// Parse a GGUF file held in memory; errors name it `file`.
    pub fn parse_named(bytes: &'a [u8], file: &str) -> Result<Self, GgufError> {
        let mut g = GgufFile {
            data: Data::Borrowed(bytes),
            file: file.to_string(),
            version: 0,
            metadata: Vec::new(),
            key_index: HashMap::new(),
            tensors: Vec::new(),
            tensor_index: HashMap::new(),
            alignment: DEFAULT_ALIGNMENT,
            data_start: 0,
        };
        g.read_header(bytes)?;
        Ok(g)
    }

    fn read_header(&mut self, bytes: &[u8]) -> Result<(), GgufError> {
        let file = self.file.clone();
        let mut c = Cursor {
            bytes,
            pos: 0,
            file: &file,
        };
        let magic: [u8; 4] = c.array(&"magic")?;
        if &magic != b"GGUF" {
            return Err(GgufError::BadMagic {
                file: file.clone(),
                found: magic,
            });
        }
        self.version = c.u32(&"version")?;
        if !matches!(self.version, 2 | 3) {
            return Err(GgufError::UnsupportedVersion {
                file: file.clone(),
                version: self.version,
            });
        }
        let n_tensors = c.u64(&"tensor count")?;
        let n_kv = c.u64(&"metadata count")?;
        // No allocation is sized by these counts: each entry consumes bytes or fails.
        for i in 0..n_kv {
            let key = c.string(&format_args!("metadata key #{i}"))?;
            let id = c.u32(&format_args!("value type of `{key}`"))?;
            let t = GgufValueType::from_id(id)
                .ok_or_else(|| c.malformed(format!("metadata `{key}`: unknown value type {id}")))?;
            let v = c.value(t, &format_args!("value of `{key}`"), 0)?;
            if self.key_index.contains_key(&key) {
                return Err(c.malformed(format!("duplicate metadata key `{key}`")));
            }
            self.key_index.insert(key.clone(), self.metadata.len());
            self.metadata.push((key, v));
        }
        for i in 0..n_tensors {
            let name = c.string(&format_args!("name of tensor #{i}"))?;
            let n_dims = c.u32(&format_args!("n_dims of tensor `{name}`"))?;
            if n_dims > 4 {
                return Err(c.malformed(format!(
                    "tensor `{name}` has {n_dims} dimensions (ggml allows at most 4)"
                )));
            }
            let mut dims = Vec::with_capacity(n_dims as usize);
            for d in 0..n_dims {
                dims.push(c.u64(&format_args!("ne[{d}] of tensor `{name}`"))?);
            }
            let total = dims.iter().try_fold(1u64, |a, &d| a.checked_mul(d));
            if total.is_none_or(|t| t > i64::MAX as u64) {
                return Err(c.malformed(format!("tensor `{name}` dimensions {dims:?} overflow")));
            }
            let ggml_type = GgmlType(c.u32(&format_args!("type of tensor `{name}`"))?);
            let offset = c.u64(&format_args!("offset of tensor `{name}`"))?;
            if self.tensor_index.contains_key(&name) {
                return Err(c.malformed(format!("duplicate tensor name `{name}`")));
            }
            self.tensor_index.insert(name.clone(), self.tensors.len());
            self.tensors.push(TensorInfo {
                name,
                dims,
                ggml_type,
                offset,
            });
        }
        if let Some(v) = self.get("general.alignment") {
            match v.as_i128() {
                Some(a) if a > 0 && a <= 1 << 30 && (a as u64).is_power_of_two() => {
                    self.alignment = a as u64;
                }
                _ => {
                    return Err(c.malformed(format!(
                        "general.alignment is {}, not a power of two",
                        v.describe()
                    )))
                }
            }
        }
        self.data_start = align_up(c.pos as u64, self.alignment)
            .ok_or_else(|| c.malformed("data section offset overflows".into()))?;
        Ok(())
    }

    /// The whole file.
    pub fn bytes(&self) -> &[u8] {
        match &self.data {
            Data::Borrowed(b) => b,
            Data::Mapped(m) => m,
        }
    }

    /// The file name used in errors.
    pub fn file_name(&self) -> &str {
        &self.file
    }

    // ---- metadata ----

    /// A metadata value, if present.
    pub fn get(&self, key: &str) -> Option<&GgufValue> {
        self.key_index
            .get(key)
            .and_then(|&i| self.metadata.get(i))
            .map(|kv| &kv.1)
    }

    /// A metadata value, or a `MissingKey` error naming it.
    pub fn value(&self, key: &str) -> Result<&GgufValue, GgufError> {
        self.get(key).ok_or_else(|| GgufError::MissingKey {
            file: self.file.clone(),
            key: key.to_string(),
        })
    }

    fn wrong(&self, key: &str, expected: &'static str, v: &GgufValue) -> GgufError {
        GgufError::WrongKeyType {
            file: self.file.clone(),
            key: key.to_string(),
            expected,
            found: v.describe(),
        }
    }

    fn int<T: TryFrom<i128>>(&self, key: &str, expected: &'static str) -> Result<T, GgufError> {
        let v = self.value(key)?;
        v.as_i128()
            .and_then(|i| T::try_from(i).ok())
            .ok_or_else(|| self.wrong(key, expected, v))
    }

    /// An integer key of any width whose value fits a u32.
    pub fn get_u32(&self, key: &str) -> Result<u32, GgufError> {
        self.int(key, "an integer fitting u32")
    }

    /// An integer key of any width whose value fits an i32.
    pub fn get_i32(&self, key: &str) -> Result<i32, GgufError> {
        self.int(key, "an integer fitting i32")
    }

    /// An integer key of any width whose value fits a u64.
    pub fn get_u64(&self, key: &str) -> Result<u64, GgufError> {
        self.int(key, "an integer fitting u64")
    }

    /// An integer key of any width whose value fits an i64.
    pub fn get_i64(&self, key: &str) -> Result<i64, GgufError> {
        self.int(key, "an integer fitting i64")
    }

    /// An integer key of any width whose value fits a usize.
    pub fn get_usize(&self, key: &str) -> Result<usize, GgufError> {
        self.int(key, "an integer fitting usize")
    }

    /// A number (f32, f64 or an integer) as f32.
    pub fn get_f32(&self, key: &str) -> Result<f32, GgufError> {
        let v = self.value(key)?;
        match *v {
            GgufValue::F32(x) => Ok(x),
            _ => v
                .as_f64()
                .map(|x| x as f32)
                .ok_or_else(|| self.wrong(key, "a number", v)),
        }
    }

    /// A number (f32, f64 or an integer) as f64.
    pub fn get_f64(&self, key: &str) -> Result<f64, GgufError> {
        let v = self.value(key)?;
        v.as_f64().ok_or_else(|| self.wrong(key, "a number", v))
    }

    /// A bool.
    pub fn get_bool(&self, key: &str) -> Result<bool, GgufError> {
        match self.value(key)? {
            GgufValue::Bool(b) => Ok(*b),
            v => Err(self.wrong(key, "a bool", v)),
        }
    }

    /// A string.
    pub fn get_str(&self, key: &str) -> Result<&str, GgufError> {
        match self.value(key)? {
            GgufValue::String(s) => Ok(s),
            v => Err(self.wrong(key, "a string", v)),
        }
    }

    fn array(&self, key: &str, expected: &'static str) -> Result<&[GgufValue], GgufError> {
        match self.value(key)? {
            GgufValue::Array(_, items) => Ok(items),
            v => Err(self.wrong(key, expected, v)),
        }
    }

    /// An array of strings.
    pub fn get_str_array(&self, key: &str) -> Result<Vec<&str>, GgufError> {
        const E: &str = "an array of strings";
        let v = self.value(key)?;
        self.array(key, E)?
            .iter()
            .map(|x| match x {
                GgufValue::String(s) => Ok(s.as_str()),
                _ => Err(self.wrong(key, E, v)),
            })
            .collect()
    }

    fn int_array<T: TryFrom<i128>>(
        &self,
        key: &str,
        expected: &'static str,
    ) -> Result<Vec<T>, GgufError> {
        let v = self.value(key)?;
        self.array(key, expected)?
            .iter()
            .map(|x| {
                x.as_i128()
                    .and_then(|i| T::try_from(i).ok())
                    .ok_or_else(|| self.wrong(key, expected, v))
            })
            .collect()
    }

    /// An array of integers (any width) that fit i32.
    pub fn get_i32_array(&self, key: &str) -> Result<Vec<i32>, GgufError> {
        self.int_array(key, "an array of integers fitting i32")
    }

    /// An array of integers (any width) that fit u32.
    pub fn get_u32_array(&self, key: &str) -> Result<Vec<u32>, GgufError> {
        self.int_array(key, "an array of integers fitting u32")
    }

    /// An array of numbers (floats or integers) as f32.
    pub fn get_f32_array(&self, key: &str) -> Result<Vec<f32>, GgufError> {
        const E: &str = "an array of numbers";
        let v = self.value(key)?;
        self.array(key, E)?
            .iter()
            .map(|x| match *x {
                GgufValue::F32(f) => Ok(f),
                _ => x
                    .as_f64()
                    .map(|f| f as f32)
                    .ok_or_else(|| self.wrong(key, E, v)),
            })
            .collect()
    }

    // ---- tensors ----

    /// A tensor's info.
    pub fn tensor(&self, name: &str) -> Result<&TensorInfo, GgufError> {
        self.tensor_index
            .get(name)
            .and_then(|&i| self.tensors.get(i))
            .ok_or_else(|| GgufError::TensorNotFound {
                file: self.file.clone(),
                name: name.to_string(),
            })
    }

    fn bad_tensor(&self, t: &TensorInfo, reason: String) -> GgufError {
        GgufError::BadTensor {
            file: self.file.clone(),
            tensor: t.name.clone(),
            reason,
        }
    }

    /// The raw bytes of a tensor's data (bounds-checked against the file).
    pub fn tensor_bytes(&self, name: &str) -> Result<&[u8], GgufError> {
        let t = self.tensor(name)?;
        let Some((be, _)) = t.ggml_type.block() else {
            return Err(GgufError::UnknownType {
                file: self.file.clone(),
                tensor: t.name.clone(),
                type_id: t.ggml_type.0,
            });
        };
        let ne0 = t.dims.first().copied().unwrap_or(1);
        if ne0 % be != 0 {
            return Err(self.bad_tensor(
                t,
                format!(
                    "row length ne[0] = {ne0} is not a multiple of the {} block size {be}",
                    t.ggml_type
                ),
            ));
        }
        let size = t
            .n_bytes()
            .ok_or_else(|| self.bad_tensor(t, "data size overflows".into()))?;
        let bytes = self.bytes();
        let start = self.data_start.checked_add(t.offset);
        let end = start.and_then(|s| s.checked_add(size));
        match (start, end) {
            (Some(s), Some(e)) if e <= bytes.len() as u64 => Ok(&bytes[s as usize..e as usize]),
            _ => Err(GgufError::Truncated {
                file: self.file.clone(),
                what: format!("data of tensor `{}` ({size} bytes)", t.name),
                offset: start.unwrap_or(u64::MAX),
                end: end.unwrap_or(u64::MAX),
                len: bytes.len() as u64,
            }),
        }
    }

    /// Dequantize a tensor to f32, in storage order (`ne[0]` fastest), exactly as ggml's
    /// `dequantize_row_*` do.
    pub fn dequantize(&self, name: &str) -> Result<Vec<f32>, GgufError> {
        let t = self.tensor(name)?;
        let bytes = self.tensor_bytes(name)?;
        self.check_dequantizable(t)?;
        let mut out = vec![0f32; t.n_elements() as usize];
        dequantize_row(t.ggml_type, bytes, &mut out).map_err(|r| self.bad_tensor(t, r))?;
        Ok(out)
    }

    fn check_dequantizable(&self, t: &TensorInfo) -> Result<(), GgufError> {
        if t.ggml_type.can_dequantize() {
            return Ok(());
        }
        Err(match t.ggml_type.name() {
            None => GgufError::UnknownType {
                file: self.file.clone(),
                tensor: t.name.clone(),
                type_id: t.ggml_type.0,
            },
            Some(type_name) => GgufError::UnsupportedType {
                file: self.file.clone(),
                tensor: t.name.clone(),
                type_name,
                type_id: t.ggml_type.0,
            },
        })
    }

    /// Convert tensor `name` for qkc: a quantized rank-2 tensor of a mappable type becomes a
    /// [`QuantTensor`] `[n = ne[1], k = ne[0]]` (see the module table), everything else a dense
    /// f32 matrix.
    pub fn to_quant(&self, name: &str) -> Result<GgufWeight, GgufError> {
        let t = self.tensor(name)?;
        let bytes = self.tensor_bytes(name)?;
        self.check_dequantizable(t)?;
        let (n, k) = t.rows_cols();
        let dense = matches!(t.ggml_type, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16)
            || t.dims.len() != 2;
        if dense {
            let mut data = vec![0f32; n * k];
            dequantize_row(t.ggml_type, bytes, &mut data).map_err(|r| self.bad_tensor(t, r))?;
            return Ok(GgufWeight::Dense { n, k, data });
        }
        map_quant(t.ggml_type, bytes, n, k)
            .map(GgufWeight::Quant)
            .map_err(|r| self.bad_tensor(t, r))
    }
}

// ---- ggml reference dequantization ----

#[inline]
fn h(b: [u8; 2]) -> f32 {
    f16::from_bits(u16::from_le_bytes(b)).to_f32()
}

#[inline]
fn h_at<const N: usize>(blk: &[u8; N], i: usize) -> f32 {
    h([blk[i], blk[i + 1]])
}

/// ggml's `get_scale_min_k4`: the 6-bit (scale, min) of sub-block `j` (0..8) of a Q4_K/Q5_K
/// `scales[12]`.
#[inline]
pub fn scale_min_k4(j: usize, s: &[u8; 12]) -> (u8, u8) {
    if j < 4 {
        (s[j] & 63, s[j + 4] & 63)
    } else {
        (
            (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4),
            (s[j + 4] >> 4) | ((s[j] >> 6) << 4),
        )
    }
}

fn blocks<const N: usize>(
    bytes: &[u8],
    out_len: usize,
    per: usize,
) -> Result<impl Iterator<Item = &[u8; N]>, String> {
    if bytes.len() % N != 0 || (bytes.len() / N).checked_mul(per) != Some(out_len) {
        return Err(format!(
            "{} data bytes do not hold {out_len} elements in blocks of {per} ({N} bytes each)",
            bytes.len()
        ));
    }
    Ok(bytes
        .chunks_exact(N)
        .filter_map(|c| <&[u8; N]>::try_from(c).ok()))
}

fn sub12(blk: &[u8], at: usize) -> [u8; 12] {
    let mut s = [0u8; 12];
    s.copy_from_slice(&blk[at..at + 12]);
    s
}

/// Dequantize `bytes` of ggml type `ty` into `out` (whose length is the element count),
/// following ggml's `dequantize_row_*` exactly (f32 arithmetic in ggml's order). Errors are a
/// reason string (the caller names the tensor).
pub fn dequantize_row(ty: GgmlType, bytes: &[u8], out: &mut [f32]) -> Result<(), String> {
    let n = out.len();
    match ty {
        GgmlType::F32 => {
            for (o, b) in out.iter_mut().zip(blocks::<4>(bytes, n, 1)?) {
                *o = f32::from_le_bytes(*b);
            }
        }
        GgmlType::F16 => {
            for (o, b) in out.iter_mut().zip(blocks::<2>(bytes, n, 1)?) {
                *o = h(*b);
            }
        }
        GgmlType::BF16 => {
            for (o, b) in out.iter_mut().zip(blocks::<2>(bytes, n, 1)?) {
                *o = bf16::from_bits(u16::from_le_bytes(*b)).to_f32();
            }
        }
        GgmlType::Q4_0 => {
            for (y, b) in out.chunks_exact_mut(32).zip(blocks::<18>(bytes, n, 32)?) {
                let d = h_at(b, 0);
                for j in 0..16 {
                    let x0 = i32::from(b[2 + j] & 0x0F) - 8;
                    let x1 = i32::from(b[2 + j] >> 4) - 8;
                    y[j] = x0 as f32 * d;
                    y[j + 16] = x1 as f32 * d;
                }
            }
        }
        GgmlType::Q4_1 => {
            for (y, b) in out.chunks_exact_mut(32).zip(blocks::<20>(bytes, n, 32)?) {
                let (d, m) = (h_at(b, 0), h_at(b, 2));
                for j in 0..16 {
                    y[j] = f32::from(b[4 + j] & 0x0F) * d + m;
                    y[j + 16] = f32::from(b[4 + j] >> 4) * d + m;
                }
            }
        }
        GgmlType::Q5_0 => {
            for (y, b) in out.chunks_exact_mut(32).zip(blocks::<22>(bytes, n, 32)?) {
                let d = h_at(b, 0);
                let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
                for j in 0..16 {
                    let xh0 = (((qh >> j) << 4) & 0x10) as u8;
                    let xh1 = ((qh >> (j + 12)) & 0x10) as u8;
                    let x0 = i32::from((b[6 + j] & 0x0F) | xh0) - 16;
                    let x1 = i32::from((b[6 + j] >> 4) | xh1) - 16;
                    y[j] = x0 as f32 * d;
                    y[j + 16] = x1 as f32 * d;
                }
            }
        }
        GgmlType::Q5_1 => {
            for (y, b) in out.chunks_exact_mut(32).zip(blocks::<24>(bytes, n, 32)?) {
                let (d, m) = (h_at(b, 0), h_at(b, 2));
                let qh = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
                for j in 0..16 {
                    let xh0 = (((qh >> j) << 4) & 0x10) as u8;
                    let xh1 = ((qh >> (j + 12)) & 0x10) as u8;
                    let x0 = (b[8 + j] & 0x0F) | xh0;
                    let x1 = (b[8 + j] >> 4) | xh1;
                    y[j] = f32::from(x0) * d + m;
                    y[j + 16] = f32::from(x1) * d + m;
                }
            }
        }
        GgmlType::Q8_0 => {
            for (y, b) in out.chunks_exact_mut(32).zip(blocks::<34>(bytes, n, 32)?) {
                let d = h_at(b, 0);
                for j in 0..32 {
                    y[j] = f32::from(b[2 + j] as i8) * d;
                }
            }
        }
        GgmlType::Q4_K => {
            for (y, b) in out.chunks_exact_mut(256).zip(blocks::<144>(bytes, n, 256)?) {
                let (d, min) = (h_at(b, 0), h_at(b, 2));
                let sc = sub12(b, 4);
                for c in 0..4 {
                    let (s1, m1) = scale_min_k4(2 * c, &sc);
                    let (s2, m2) = scale_min_k4(2 * c + 1, &sc);
                    let (d1, m1) = (d * f32::from(s1), min * f32::from(m1));
                    let (d2, m2) = (d * f32::from(s2), min * f32::from(m2));
                    let q = &b[16 + 32 * c..16 + 32 * c + 32];
                    for l in 0..32 {
                        y[64 * c + l] = d1 * f32::from(q[l] & 0xF) - m1;
                        y[64 * c + 32 + l] = d2 * f32::from(q[l] >> 4) - m2;
                    }
                }
            }
        }
        GgmlType::Q5_K => {
            for (y, b) in out.chunks_exact_mut(256).zip(blocks::<176>(bytes, n, 256)?) {
                let (d, min) = (h_at(b, 0), h_at(b, 2));
                let sc = sub12(b, 4);
                let qh = &b[16..48];
                for c in 0..4 {
                    let (s1, m1) = scale_min_k4(2 * c, &sc);
                    let (s2, m2) = scale_min_k4(2 * c + 1, &sc);
                    let (d1, m1) = (d * f32::from(s1), min * f32::from(m1));
                    let (d2, m2) = (d * f32::from(s2), min * f32::from(m2));
                    let (u1, u2) = (1u8 << (2 * c), 2u8 << (2 * c));
                    let ql = &b[48 + 32 * c..48 + 32 * c + 32];
                    for l in 0..32 {
                        let hi1 = if qh[l] & u1 != 0 { 16 } else { 0 };
                        let hi2 = if qh[l] & u2 != 0 { 16 } else { 0 };
                        y[64 * c + l] = d1 * f32::from((ql[l] & 0xF) + hi1) - m1;
                        y[64 * c + 32 + l] = d2 * f32::from((ql[l] >> 4) + hi2) - m2;
                    }
                }
            }
        }
        GgmlType::Q6_K => {
            for (y, b) in out.chunks_exact_mut(256).zip(blocks::<210>(bytes, n, 256)?) {
                let d = h_at(b, 208);
                for half in 0..2 {
                    let ql = &b[64 * half..64 * half + 64];
                    let qh = &b[128 + 32 * half..128 + 32 * half + 32];
                    let sc = &b[192 + 8 * half..192 + 8 * half + 8];
                    let y = &mut y[128 * half..128 * half + 128];
                    for l in 0..32 {
                        let is = l / 16;
                        let q1 = i32::from((ql[l] & 0xF) | ((qh[l] & 3) << 4)) - 32;
                        let q2 = i32::from((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                        let q3 = i32::from((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                        let q4 = i32::from((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                        let s = |i: usize| f32::from(sc[i] as i8);
                        y[l] = d * s(is) * q1 as f32;
                        y[l + 32] = d * s(is + 2) * q2 as f32;
                        y[l + 64] = d * s(is + 4) * q3 as f32;
                        y[l + 96] = d * s(is + 6) * q4 as f32;
                    }
                }
            }
        }
        other => {
            return Err(format!("ggml type {other} cannot be dequantized by qkc"));
        }
    }
    Ok(())
}

// ---- mapping onto qkc schemes ----

/// Per-group statistics of a mapped tensor.
enum Stats {
    /// f16 scales, implicit zero (sym).
    Sym(Vec<f16>),
    /// f16 scales and f16 zeros (asym).
    Asym(Vec<f16>, Vec<f16>),
    /// f32 scales and mins (`:min`).
    Min(Vec<f32>, Vec<f32>),
}

/// Decompose the blocks of one GGUF quantized tensor `[n, k]` into codes and statistics of the
/// qkc scheme in the module table, and pack them.
fn map_quant(ty: GgmlType, bytes: &[u8], n: usize, k: usize) -> Result<QuantTensor, String> {
    let (bits, group, mut stats) = match ty {
        GgmlType::Q4_0 => (4u8, 32usize, Stats::Sym(Vec::new())),
        GgmlType::Q8_0 => (8, 32, Stats::Sym(Vec::new())),
        GgmlType::Q5_0 => (8, 32, Stats::Asym(Vec::new(), Vec::new())),
        GgmlType::Q4_1 | GgmlType::Q4_K => (4, 32, Stats::Min(Vec::new(), Vec::new())),
        GgmlType::Q5_1 | GgmlType::Q5_K => (8, 32, Stats::Min(Vec::new(), Vec::new())),
        GgmlType::Q6_K => (8, 16, Stats::Min(Vec::new(), Vec::new())),
        other => return Err(format!("ggml type {other} has no qkc scheme")),
    };
    let total = n * k;
    let mut codes = vec![0u8; total];
    let groups = total / group;
    match &mut stats {
        Stats::Sym(s) => s.reserve(groups),
        Stats::Asym(s, z) => {
            s.reserve(groups);
            z.reserve(groups);
        }
        Stats::Min(s, m) => {
            s.reserve(groups);
            m.reserve(groups);
        }
    }
    let f16_bits = |b: &[u8], i: usize| f16::from_bits(u16::from_le_bytes([b[i], b[i + 1]]));
    match (ty, &mut stats) {
        (GgmlType::Q4_0, Stats::Sym(s)) => {
            for (c, b) in codes
                .chunks_exact_mut(32)
                .zip(blocks::<18>(bytes, total, 32)?)
            {
                s.push(f16_bits(b, 0));
                for j in 0..16 {
                    c[j] = b[2 + j] & 0xF;
                    c[j + 16] = b[2 + j] >> 4;
                }
            }
        }
        (GgmlType::Q8_0, Stats::Sym(s)) => {
            for (c, b) in codes
                .chunks_exact_mut(32)
                .zip(blocks::<34>(bytes, total, 32)?)
            {
                s.push(f16_bits(b, 0));
                for j in 0..32 {
                    c[j] = b[2 + j] ^ 0x80; // i8 q + 128
                }
            }
        }
        (GgmlType::Q5_0, Stats::Asym(s, z)) => {
            for (c, b) in codes
                .chunks_exact_mut(32)
                .zip(blocks::<22>(bytes, total, 32)?)
            {
                s.push(f16_bits(b, 0));
                z.push(f16::from_f32(16.0));
                let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
                for j in 0..16 {
                    c[j] = (b[6 + j] & 0xF) | ((((qh >> j) & 1) as u8) << 4);
                    c[j + 16] = (b[6 + j] >> 4) | ((((qh >> (j + 16)) & 1) as u8) << 4);
                }
            }
        }
        (GgmlType::Q4_1, Stats::Min(s, m)) => {
            for (c, b) in codes
                .chunks_exact_mut(32)
                .zip(blocks::<20>(bytes, total, 32)?)
            {
                s.push(h_at(b, 0));
                m.push(h_at(b, 2));
                for j in 0..16 {
                    c[j] = b[4 + j] & 0xF;
                    c[j + 16] = b[4 + j] >> 4;
                }
            }
        }
        (GgmlType::Q5_1, Stats::Min(s, m)) => {
            for (c, b) in codes
                .chunks_exact_mut(32)
                .zip(blocks::<24>(bytes, total, 32)?)
            {
                s.push(h_at(b, 0));
                m.push(h_at(b, 2));
                let qh = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
                for j in 0..16 {
                    c[j] = (b[8 + j] & 0xF) | ((((qh >> j) & 1) as u8) << 4);
                    c[j + 16] = (b[8 + j] >> 4) | ((((qh >> (j + 16)) & 1) as u8) << 4);
                }
            }
        }
        (GgmlType::Q4_K | GgmlType::Q5_K, Stats::Min(s, m)) => {
            let five = ty == GgmlType::Q5_K;
            let bb = if five { 176 } else { 144 };
            let chunks = bytes.chunks_exact(bb);
            if !chunks.remainder().is_empty() || bytes.len() / bb * 256 != total {
                return Err(format!(
                    "{} data bytes do not hold {total} elements in blocks of 256 ({bb} bytes each)",
                    bytes.len()
                ));
            }
            for (c, b) in codes.chunks_exact_mut(256).zip(chunks) {
                let (d, dmin) = (h([b[0], b[1]]), h([b[2], b[3]]));
                let sc = sub12(b, 4);
                for j in 0..8 {
                    let (sj, mj) = scale_min_k4(j, &sc);
                    s.push(d * f32::from(sj));
                    m.push(-(dmin * f32::from(mj)));
                }
                let qs_at = if five { 48 } else { 16 };
                for ch in 0..4 {
                    for l in 0..32 {
                        let q = b[qs_at + 32 * ch + l];
                        let (mut lo, mut hi) = (q & 0xF, q >> 4);
                        if five {
                            let qh = b[16 + l];
                            lo |= ((qh >> (2 * ch)) & 1) << 4;
                            hi |= ((qh >> (2 * ch + 1)) & 1) << 4;
                        }
                        c[64 * ch + l] = lo;
                        c[64 * ch + 32 + l] = hi;
                    }
                }
            }
        }
        (GgmlType::Q6_K, Stats::Min(s, m)) => {
            for (c, b) in codes
                .chunks_exact_mut(256)
                .zip(blocks::<210>(bytes, total, 256)?)
            {
                let d = h_at(b, 208);
                for i in 0..16 {
                    let scale = d * f32::from(b[192 + i] as i8);
                    s.push(scale);
                    m.push(-32.0 * scale);
                }
                for half in 0..2 {
                    for l in 0..32 {
                        let (ql0, ql1) = (b[64 * half + l], b[64 * half + l + 32]);
                        let qh = b[128 + 32 * half + l];
                        let c = &mut c[128 * half..128 * half + 128];
                        c[l] = (ql0 & 0xF) | ((qh & 3) << 4);
                        c[l + 32] = (ql1 & 0xF) | (((qh >> 2) & 3) << 4);
                        c[l + 64] = (ql0 >> 4) | (((qh >> 4) & 3) << 4);
                        c[l + 96] = (ql1 >> 4) | (((qh >> 6) & 3) << 4);
                    }
                }
            }
        }
        _ => return Err(format!("ggml type {ty} has no qkc scheme")),
    }
    let u = UniformInt {
        bits,
        group: Group::Size(group as u32),
        sym: matches!(stats, Stats::Sym(_)),
        act_order: false,
        packing: Packing::Gptq,
        min: matches!(stats, Stats::Min(..)),
    };
    let groups_per_row = k / group;
    let wpr = pack::words_per_row_packed(k, bits, Packing::Gptq);
    let mut words = vec![0u32; n * wpr];
    for (row, w) in codes
        .chunks_exact(k.max(1))
        .zip(words.chunks_exact_mut(wpr.max(1)))
    {
        pack::pack_row_with(row, bits, Packing::Gptq, w);
    }
    let mut q = QuantTensor::new(Scheme::Uniform(u), n, k);
    q.parts
        .insert("qweight".into(), Part::from_u32(vec![n, wpr], &words));
    let shape = vec![n, groups_per_row];
    match stats {
        Stats::Sym(s) => {
            q.parts.insert("scales".into(), Part::from_f16(shape, &s));
        }
        Stats::Asym(s, z) => {
            q.parts
                .insert("scales".into(), Part::from_f16(shape.clone(), &s));
            q.parts.insert("zeros".into(), Part::from_f16(shape, &z));
        }
        Stats::Min(s, m) => {
            q.parts
                .insert("scales".into(), Part::from_f32(shape.clone(), &s));
            q.parts.insert("mins".into(), Part::from_f32(shape, &m));
        }
    }
    Ok(q)
}
