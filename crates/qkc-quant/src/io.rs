//! safetensors input/output of qkc's storage layout.
//!
//! A file written by [`SafetensorsWriter`] holds, for each quantized weight `name`:
//! - one tensor `name.<part>` per part of the [`QuantTensor`] (see each scheme module);
//! - header metadata `name.scheme` = the scheme spelling (`int4:g128`) and
//!   `name.shape` = `"n,k"`;
//! - optionally outliers as `name.outliers.row_ptr` / `.col` / `.val` ([`Csr::to_parts`]), with
//!   metadata `name.outliers` = `"csr"`.
//!
//! Dense tensors (norms, embeddings, biases) can be added as plain parts. Metadata key
//! `format` = `"qkc"` and `qkc.version` = `"1"` mark the file.

use std::collections::{BTreeMap, HashMap};

use crate::error::QuantError;
use crate::sparse::Csr;
use crate::tensor::{Part, PartDtype, QuantTensor};

impl PartDtype {
    /// The safetensors dtype.
    pub fn to_safetensors(self) -> safetensors::Dtype {
        match self {
            PartDtype::U8 => safetensors::Dtype::U8,
            PartDtype::I8 => safetensors::Dtype::I8,
            PartDtype::I16 => safetensors::Dtype::I16,
            PartDtype::I32 => safetensors::Dtype::I32,
            PartDtype::U32 => safetensors::Dtype::U32,
            PartDtype::F16 => safetensors::Dtype::F16,
            PartDtype::F32 => safetensors::Dtype::F32,
        }
    }

    /// From a safetensors dtype (`None` for dtypes no qkc part uses).
    pub fn from_safetensors(d: safetensors::Dtype) -> Option<Self> {
        Some(match d {
            safetensors::Dtype::U8 => PartDtype::U8,
            safetensors::Dtype::I8 => PartDtype::I8,
            safetensors::Dtype::I16 => PartDtype::I16,
            safetensors::Dtype::I32 => PartDtype::I32,
            safetensors::Dtype::U32 => PartDtype::U32,
            safetensors::Dtype::F16 => PartDtype::F16,
            safetensors::Dtype::F32 => PartDtype::F32,
            _ => return None,
        })
    }
}

impl safetensors::View for &Part {
    fn dtype(&self) -> safetensors::Dtype {
        self.dtype.to_safetensors()
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        std::borrow::Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

/// Read tensor `name` of a safetensors file as a [`Part`].
pub fn read_part(st: &safetensors::SafeTensors<'_>, name: &str) -> Result<Part, QuantError> {
    let view = st
        .tensor(name)
        .map_err(|_| QuantError::Missing(name.to_string()))?;
    part_from_view(name, &view)
}

pub(crate) fn part_from_view(
    name: &str,
    view: &safetensors::tensor::TensorView<'_>,
) -> Result<Part, QuantError> {
    let dtype = PartDtype::from_safetensors(view.dtype()).ok_or_else(|| QuantError::BadTensor {
        tensor: name.to_string(),
        reason: format!("dtype {:?} is not used by any qkc scheme", view.dtype()),
    })?;
    Ok(Part {
        dtype,
        shape: view.shape().to_vec(),
        bytes: view.data().to_vec(),
    })
}

/// The header metadata of a safetensors buffer (empty when it has none).
pub fn read_metadata(bytes: &[u8]) -> Result<HashMap<String, String>, QuantError> {
    let (_, meta) = safetensors::SafeTensors::read_metadata(bytes)
        .map_err(|e| QuantError::Invalid(format!("not a safetensors file: {e}")))?;
    Ok(meta.metadata().clone().unwrap_or_default())
}

/// Collects quantized weights, outliers and dense tensors, then writes one safetensors file.
#[derive(Debug, Default, Clone)]
pub struct SafetensorsWriter {
    parts: BTreeMap<String, Part>,
    metadata: BTreeMap<String, String>,
}

impl SafetensorsWriter {
    /// An empty writer.
    pub fn new() -> Self {
        let mut w = Self::default();
        w.metadata.insert("format".into(), "qkc".into());
        w.metadata.insert("qkc.version".into(), "1".into());
        w
    }

    fn insert(&mut self, name: String, part: Part) -> Result<(), QuantError> {
        if self.parts.contains_key(&name) {
            return Err(QuantError::BadTensor {
                tensor: name,
                reason: "written twice".into(),
            });
        }
        self.parts.insert(name, part);
        Ok(())
    }

    /// Add quantized weight `name` (its parts plus `name.scheme` and `name.shape` metadata).
    pub fn add_quant(&mut self, name: &str, q: &QuantTensor) -> Result<&mut Self, QuantError> {
        for (pname, part) in q.to_safetensors_parts(name) {
            self.insert(pname, part)?;
        }
        self.metadata
            .insert(format!("{name}.scheme"), q.scheme.to_string());
        self.metadata
            .insert(format!("{name}.shape"), format!("{},{}", q.n, q.k));
        Ok(self)
    }

    /// Add the sparse outliers of weight `name` as `name.outliers.{row_ptr,col,val}`.
    pub fn add_outliers(&mut self, name: &str, csr: &Csr) -> Result<&mut Self, QuantError> {
        csr.validate_named(&format!("{name}.outliers"))?;
        for (pname, part) in csr.to_parts(&format!("{name}.outliers")) {
            self.insert(pname, part)?;
        }
        self.metadata
            .insert(format!("{name}.outliers"), "csr".into());
        Ok(self)
    }

    /// Add a plain tensor.
    pub fn add_part(&mut self, name: &str, part: Part) -> Result<&mut Self, QuantError> {
        self.insert(name.to_string(), part)?;
        Ok(self)
    }

    /// Add a metadata entry.
    pub fn add_metadata(&mut self, key: &str, value: &str) -> &mut Self {
        self.metadata.insert(key.to_string(), value.to_string());
        self
    }

    /// Serialize to bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>, QuantError> {
        let meta: HashMap<String, String> = self.metadata.clone().into_iter().collect();
        safetensors::serialize(self.parts.iter().map(|(k, v)| (k.as_str(), v)), Some(meta))
            .map_err(|e| QuantError::Invalid(format!("safetensors serialization failed: {e}")))
    }

    /// Write to `path`.
    pub fn write(&self, path: &std::path::Path) -> Result<(), QuantError> {
        let meta: HashMap<String, String> = self.metadata.clone().into_iter().collect();
        safetensors::serialize_to_file(
            self.parts.iter().map(|(k, v)| (k.as_str(), v)),
            Some(meta),
            path,
        )
        .map_err(|e| QuantError::Invalid(format!("writing {}: {e}", path.display())))
    }
}

/// One quantized weight read back from a qkc file, with its outliers when present.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedWeight {
    /// The dense quantized part.
    pub quant: QuantTensor,
    /// Sparse outliers (`name.outliers.*`), if the file has them.
    pub outliers: Option<Csr>,
}

/// Load weight `name` from a qkc safetensors buffer, taking scheme and shape from the metadata.
pub fn load_weight(bytes: &[u8], name: &str) -> Result<LoadedWeight, QuantError> {
    let meta = read_metadata(bytes)?;
    let st = safetensors::SafeTensors::deserialize(bytes)
        .map_err(|e| QuantError::Invalid(format!("not a safetensors file: {e}")))?;
    let spelling = meta
        .get(&format!("{name}.scheme"))
        .ok_or_else(|| QuantError::Missing(format!("{name}.scheme (metadata)")))?;
    let scheme: crate::Scheme =
        spelling
            .parse()
            .map_err(|e: crate::SchemeParseError| QuantError::BadTensor {
                tensor: name.into(),
                reason: e.to_string(),
            })?;
    let shape = meta
        .get(&format!("{name}.shape"))
        .ok_or_else(|| QuantError::Missing(format!("{name}.shape (metadata)")))?;
    let dims: Vec<usize> = shape
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let [n, k] = dims[..] else {
        return Err(QuantError::BadTensor {
            tensor: name.into(),
            reason: format!("shape metadata `{shape}` is not `n,k`"),
        });
    };
    let quant = QuantTensor::from_safetensors(&st, name, scheme, n, k)?;
    let outliers = if meta.contains_key(&format!("{name}.outliers")) {
        Some(Csr::from_safetensors(
            &st,
            &format!("{name}.outliers"),
            n,
            k,
        )?)
    } else {
        None
    };
    Ok(LoadedWeight { quant, outliers })
}
