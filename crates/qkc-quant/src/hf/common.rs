//! Shared plumbing of the SqueezeLLM, SpQR, AQLM and bitsandbytes importers: one error type whose
//! messages name the file and the tensor at fault, and checked accessors of [`RawTensor`]s.

use half::{bf16, f16};

use super::{RawDtype, RawTensor, TensorSource};
use crate::error::QuantError;

/// Why a module could not be imported. Every variant about a stored tensor names its file and
/// the tensor.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// A tensor the format needs is absent.
    #[error("{file}: tensor `{tensor}` is missing")]
    Missing {
        /// The file that should hold it (as the source reports).
        file: String,
        /// Full tensor name.
        tensor: String,
    },
    /// A tensor has the wrong dtype, shape, size or contents.
    #[error("{file}: tensor `{tensor}`: {reason}")]
    BadTensor {
        /// The file holding it.
        file: String,
        /// Full tensor name.
        tensor: String,
        /// What is wrong.
        reason: String,
    },
    /// A file that cannot be read at all (I/O, corrupt zip or pickle, ...).
    #[error("{file}: {reason}")]
    BadFile {
        /// The file.
        file: String,
        /// What is wrong.
        reason: String,
    },
    /// Valid input that qkc cannot represent (yet); the message says what and why.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// Import parameters (from the config) that the format does not allow.
    #[error("invalid import parameters: {0}")]
    BadParams(String),
    /// The imported tensor failed qkc's own checks (a bug if it happens).
    #[error(transparent)]
    Quant(#[from] QuantError),
}

/// Bytes per element of a stored dtype.
pub fn dtype_size(d: RawDtype) -> usize {
    match d {
        RawDtype::U8 | RawDtype::I8 => 1,
        RawDtype::I16 | RawDtype::F16 | RawDtype::BF16 => 2,
        RawDtype::I32 | RawDtype::U32 | RawDtype::F32 => 4,
        RawDtype::I64 | RawDtype::F64 => 8,
    }
}

/// One named tensor of a source, with its error helpers.
#[derive(Clone, Copy)]
pub struct Named<'a> {
    /// Full tensor name.
    pub name: &'a str,
    /// The tensor.
    pub t: RawTensor<'a>,
    src: &'a dyn TensorSource,
}

impl<'a> Named<'a> {
    /// A [`ImportError::BadTensor`] about this tensor.
    pub fn bad(&self, reason: impl Into<String>) -> ImportError {
        ImportError::BadTensor {
            file: self.src.file_of(self.name),
            tensor: self.name.to_string(),
            reason: reason.into(),
        }
    }

    /// Number of elements of the shape.
    pub fn numel(&self) -> usize {
        self.t.shape.iter().product()
    }

    /// Check the dtype is one of `dtypes` and the shape is `shape`.
    pub fn expect(self, dtypes: &[RawDtype], shape: &[usize]) -> Result<Self, ImportError> {
        self.expect_dtype(dtypes)?;
        if self.t.shape != shape {
            return Err(self.bad(format!(
                "expected shape {shape:?}, found {:?}",
                self.t.shape
            )));
        }
        Ok(self)
    }

    /// Check the dtype is one of `dtypes` (and the byte size matches the shape).
    pub fn expect_dtype(self, dtypes: &[RawDtype]) -> Result<Self, ImportError> {
        if !dtypes.contains(&self.t.dtype) {
            let want = dtypes
                .iter()
                .map(|d| format!("{d:?}"))
                .collect::<Vec<_>>()
                .join(" or ");
            return Err(self.bad(format!("expected dtype {want}, found {:?}", self.t.dtype)));
        }
        let need = self.numel() * dtype_size(self.t.dtype);
        if self.t.data.len() != need {
            return Err(self.bad(format!(
                "holds {} bytes, its shape {:?} of {:?} needs {need}",
                self.t.data.len(),
                self.t.shape,
                self.t.dtype
            )));
        }
        Ok(self)
    }

    /// Integer values widened to i64 (U8/I8/I16/I32/U32/I64).
    pub fn ints(&self) -> Result<Vec<i64>, ImportError> {
        let d = self.t.data;
        Ok(match self.t.dtype {
            RawDtype::U8 => d.iter().map(|&v| i64::from(v)).collect(),
            RawDtype::I8 => d.iter().map(|&v| i64::from(v as i8)).collect(),
            RawDtype::I16 => d
                .chunks_exact(2)
                .map(|c| i64::from(i16::from_le_bytes([c[0], c[1]])))
                .collect(),
            RawDtype::I32 => d
                .chunks_exact(4)
                .map(|c| i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                .collect(),
            RawDtype::U32 => d
                .chunks_exact(4)
                .map(|c| i64::from(u32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                .collect(),
            RawDtype::I64 => d
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                .collect(),
            other => return Err(self.bad(format!("expected an integer dtype, found {other:?}"))),
        })
    }

    /// The raw 32-bit words (I32/U32) as u32 bit patterns.
    pub fn words32(&self) -> Vec<u32> {
        self.t
            .data
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    }

    /// The raw 64-bit words (I64) as u64 bit patterns.
    pub fn words64(&self) -> Vec<u64> {
        self.t
            .data
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
            .collect()
    }

    /// Float values as f32 (F16/BF16/F32 exactly; F64 rounded).
    pub fn floats(&self) -> Result<Vec<f32>, ImportError> {
        let d = self.t.data;
        Ok(match self.t.dtype {
            RawDtype::F16 => d
                .chunks_exact(2)
                .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            RawDtype::BF16 => d
                .chunks_exact(2)
                .map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            RawDtype::F32 => d
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            RawDtype::F64 => d
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f32)
                .collect(),
            other => return Err(self.bad(format!("expected a float dtype, found {other:?}"))),
        })
    }
}

/// The tensor `name` of `src`, or [`ImportError::Missing`].
pub fn get<'a>(src: &'a dyn TensorSource, name: &'a str) -> Result<Named<'a>, ImportError> {
    match src.get(name) {
        Some(t) => Ok(Named { name, t, src }),
        None => Err(ImportError::Missing {
            file: src.file_of(name),
            tensor: name.to_string(),
        }),
    }
}

/// The tensor `name` of `src`, if stored.
pub fn get_opt<'a>(src: &'a dyn TensorSource, name: &'a str) -> Option<Named<'a>> {
    src.get(name).map(|t| Named { name, t, src })
}

/// Attribute a qkc error (from validating the imported tensor) to module `prefix`.
pub fn in_module(prefix: &str) -> impl Fn(QuantError) -> ImportError + '_ {
    move |e| ImportError::Quant(e.in_tensor(prefix))
}
