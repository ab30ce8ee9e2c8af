//! Value types of the graph IR: dtypes, shapes with one symbolic token dimension, and the
//! quantized-weight and sparse-outlier types that carry their scheme.
//!
//! Text spellings: `f32[T, 576]`, `i32[T]`, `f32[]` (a scalar), `q<int4:g128>[1536, 576]`,
//! `csr<f16, u16>[1536, 576]`.

use std::fmt;

use qkc_quant::Scheme;
use serde::{Deserialize, Serialize};

/// Element types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    /// IEEE single
    F32,
    /// IEEE half
    F16,
    /// bfloat16
    BF16,
    /// signed 8-bit integer
    I8,
    /// unsigned 8-bit integer
    U8,
    /// signed 16-bit integer
    I16,
    /// unsigned 16-bit integer
    U16,
    /// signed 32-bit integer
    I32,
    /// unsigned 32-bit integer
    U32,
}

impl DType {
    /// All dtypes, in spelling order.
    pub const ALL: [DType; 9] = [
        DType::F32,
        DType::F16,
        DType::BF16,
        DType::I8,
        DType::U8,
        DType::I16,
        DType::U16,
        DType::I32,
        DType::U32,
    ];

    /// The text spelling.
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
            DType::I8 => "i8",
            DType::U8 => "u8",
            DType::I16 => "i16",
            DType::U16 => "u16",
            DType::I32 => "i32",
            DType::U32 => "u32",
        }
    }

    /// Parse a spelling.
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.name() == s)
    }

    /// Floating point?
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F16 | DType::BF16)
    }

    /// Integer?
    pub fn is_int(self) -> bool {
        !self.is_float()
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One dimension: a static size, or the graph's one symbolic token/batch dimension `T`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Dim {
    /// A fixed size.
    Static(u64),
    /// The symbolic token (batch × sequence) dimension, spelled `T`; bound at run time.
    Tokens,
}

impl Dim {
    /// Resolve with `T = tokens`.
    pub fn resolve(self, tokens: usize) -> usize {
        match self {
            Dim::Static(n) => n as usize,
            Dim::Tokens => tokens,
        }
    }

    /// The static size, if any.
    pub fn as_static(self) -> Option<u64> {
        match self {
            Dim::Static(n) => Some(n),
            Dim::Tokens => None,
        }
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Static(n) => write!(f, "{n}"),
            Dim::Tokens => f.write_str("T"),
        }
    }
}

/// A shape: a list of dims, outermost first.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Shape(pub Vec<Dim>);

impl Shape {
    /// Shape from static sizes.
    pub fn of(dims: &[u64]) -> Self {
        Shape(dims.iter().map(|&d| Dim::Static(d)).collect())
    }

    /// Rank.
    pub fn rank(&self) -> usize {
        self.0.len()
    }

    /// Last dim.
    pub fn last(&self) -> Option<Dim> {
        self.0.last().copied()
    }

    /// Resolve all dims with `T = tokens`.
    pub fn resolve(&self, tokens: usize) -> Vec<usize> {
        self.0.iter().map(|d| d.resolve(tokens)).collect()
    }

    /// All dims but the last.
    pub fn prefix(&self) -> &[Dim] {
        &self.0[..self.0.len().saturating_sub(1)]
    }

    /// Same shape with the last dim replaced.
    pub fn with_last(&self, d: Dim) -> Shape {
        let mut v = self.0.clone();
        if let Some(l) = v.last_mut() {
            *l = d;
        }
        Shape(v)
    }

    /// Number of elements if fully static.
    pub fn static_numel(&self) -> Option<u64> {
        self.0.iter().map(|d| d.as_static()).product()
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{d}")?;
        }
        f.write_str("]")
    }
}

/// The type of a value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Type {
    /// A dense tensor.
    Tensor {
        /// element type
        dtype: DType,
        /// shape
        shape: Shape,
    },
    /// A quantized weight `[N, K]` in a scheme: `q<int4:g128>[N, K]`.
    Quant {
        /// the scheme
        scheme: Scheme,
        /// shape `[N, K]`
        shape: Shape,
    },
    /// Sparse outliers in CSR form `[N, K]`: `csr<f16, u16>[N, K]`.
    Sparse {
        /// dtype of the values (f16 or f32)
        val: DType,
        /// dtype of the column indices (u16 or u32)
        index: DType,
        /// shape `[N, K]`
        shape: Shape,
    },
}

impl Type {
    /// A dense tensor type.
    pub fn tensor(dtype: DType, shape: Shape) -> Self {
        Type::Tensor { dtype, shape }
    }

    /// The shape, whatever the kind.
    pub fn shape(&self) -> &Shape {
        match self {
            Type::Tensor { shape, .. } | Type::Quant { shape, .. } | Type::Sparse { shape, .. } => {
                shape
            }
        }
    }

    /// The dtype of a dense tensor.
    pub fn dtype(&self) -> Option<DType> {
        match self {
            Type::Tensor { dtype, .. } => Some(*dtype),
            _ => None,
        }
    }

    /// Is this a dense tensor?
    pub fn is_tensor(&self) -> bool {
        matches!(self, Type::Tensor { .. })
    }

    /// Is this a dense floating-point tensor?
    pub fn is_float_tensor(&self) -> bool {
        matches!(self, Type::Tensor { dtype, .. } if dtype.is_float())
    }

    /// A short description of the kind, for diagnostics.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Type::Tensor { .. } => "tensor",
            Type::Quant { .. } => "quantized weight",
            Type::Sparse { .. } => "sparse matrix",
        }
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Type::Tensor { dtype, shape } => write!(f, "{dtype}{shape}"),
            Type::Quant { scheme, shape } => write!(f, "q<{scheme}>{shape}"),
            Type::Sparse { val, index, shape } => write!(f, "csr<{val}, {index}>{shape}"),
        }
    }
}

impl Serialize for Type {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Type {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        crate::parser::parse_type(&s).map_err(serde::de::Error::custom)
    }
}
