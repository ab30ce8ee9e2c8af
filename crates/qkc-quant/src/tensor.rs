//! [`QuantTensor`]: one quantized weight `[n, k]` (HF orientation: n output rows, k inputs) in
//! qkc's own storage layout.
//!
//! A quantized weight is a scheme plus a few named *parts* (packed codes, scales, zeros, tables,
//! codebooks, ...). Each part is one plain little-endian array, so the layout maps 1:1 onto a
//! safetensors file: part `scales` of weight `layers.0.down` is the tensor
//! `layers.0.down.scales`, and the scheme spelling is stored in the header metadata under
//! `layers.0.down.scheme`. Which parts a scheme has is documented by each scheme's module.

use std::collections::BTreeMap;

use half::f16;

use crate::error::QuantError;
use crate::scheme::Scheme;

/// Element type of a [`Part`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PartDtype {
    /// unsigned 8-bit
    U8,
    /// signed 8-bit
    I8,
    /// signed 16-bit
    I16,
    /// signed 32-bit
    I32,
    /// unsigned 32-bit
    U32,
    /// IEEE half
    F16,
    /// IEEE single
    F32,
}

impl PartDtype {
    /// Size of one element in bytes.
    pub fn size(self) -> usize {
        match self {
            PartDtype::U8 | PartDtype::I8 => 1,
            PartDtype::I16 | PartDtype::F16 => 2,
            PartDtype::I32 | PartDtype::U32 | PartDtype::F32 => 4,
        }
    }
}

/// One stored array of a quantized weight: dtype, shape and little-endian bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    /// Element type.
    pub dtype: PartDtype,
    /// Shape (row-major).
    pub shape: Vec<usize>,
    /// Raw little-endian bytes, `shape.product() * dtype.size()` long.
    pub bytes: Vec<u8>,
}

impl Part {
    /// A part from u32 words.
    pub fn from_u32(shape: Vec<usize>, data: &[u32]) -> Self {
        Part {
            dtype: PartDtype::U32,
            shape,
            bytes: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }
    /// A part from i32 values.
    pub fn from_i32(shape: Vec<usize>, data: &[i32]) -> Self {
        Part {
            dtype: PartDtype::I32,
            shape,
            bytes: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }
    /// A part from f16 values.
    pub fn from_f16(shape: Vec<usize>, data: &[f16]) -> Self {
        Part {
            dtype: PartDtype::F16,
            shape,
            bytes: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }
    /// A part from f32 values.
    pub fn from_f32(shape: Vec<usize>, data: &[f32]) -> Self {
        Part {
            dtype: PartDtype::F32,
            shape,
            bytes: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }
    /// A part from u8 values.
    pub fn from_u8(shape: Vec<usize>, data: &[u8]) -> Self {
        Part {
            dtype: PartDtype::U8,
            shape,
            bytes: data.to_vec(),
        }
    }
    /// A part from i8 values.
    pub fn from_i8(shape: Vec<usize>, data: &[i8]) -> Self {
        Part {
            dtype: PartDtype::I8,
            shape,
            bytes: data.iter().map(|&v| v as u8).collect(),
        }
    }
    /// A part from i16 values.
    pub fn from_i16(shape: Vec<usize>, data: &[i16]) -> Self {
        Part {
            dtype: PartDtype::I16,
            shape,
            bytes: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// The values widened to f64, whatever the dtype.
    pub fn to_f64(&self) -> Vec<f64> {
        let b = &self.bytes;
        match self.dtype {
            PartDtype::U8 => b.iter().map(|&v| f64::from(v)).collect(),
            PartDtype::I8 => b.iter().map(|&v| f64::from(v as i8)).collect(),
            PartDtype::I16 => b
                .chunks_exact(2)
                .map(|c| f64::from(i16::from_le_bytes([c[0], c[1]])))
                .collect(),
            PartDtype::I32 => b
                .chunks_exact(4)
                .map(|c| f64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                .collect(),
            PartDtype::U32 => b
                .chunks_exact(4)
                .map(|c| f64::from(u32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                .collect(),
            PartDtype::F16 => b
                .chunks_exact(2)
                .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f64())
                .collect(),
            PartDtype::F32 => b
                .chunks_exact(4)
                .map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                .collect(),
        }
    }

    /// The values as u32 words (only for U32 parts).
    pub fn to_u32(&self) -> Vec<u32> {
        self.bytes
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    }

    /// The raw 16-bit little-endian words (I16 / F16 parts), as unsigned bit patterns.
    pub fn to_u16_bits(&self) -> Vec<u16> {
        self.bytes
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect()
    }

    /// The values widened to f32 (exact for every dtype but large I32/U32).
    pub fn to_f32(&self) -> Vec<f32> {
        match self.dtype {
            PartDtype::F32 => self
                .bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            PartDtype::F16 => self
                .bytes
                .chunks_exact(2)
                .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            _ => self.to_f64().into_iter().map(|v| v as f32).collect(),
        }
    }
}

/// Knobs of the quantizers. `QuantOptions::default()` is what [`QuantTensor::quantize`] uses.
#[derive(Clone, Copy, Default)]
pub struct QuantOptions<'a> {
    /// Seed of every randomized step (k-means initialization, sampling). Same seed, same output,
    /// whatever the thread count.
    pub seed: u64,
    /// Uniform int: search a clipping ratio per group that minimizes the squared error.
    pub mse_clip: bool,
    /// Per-weight importance `[n, k]` (e.g. diagonal Fisher): weights of SqueezeLLM's weighted
    /// k-means for LUT schemes.
    pub weight_importance: Option<&'a [f32]>,
    /// Per-input-channel importance `[k]` (e.g. the Hessian diagonal `‖X_j‖²`): act-order's
    /// column order, BiLLM's salient-column choice.
    pub input_importance: Option<&'a [f32]>,
    /// Called with (rows done, rows total) as rows finish, from worker threads (for a progress bar).
    pub progress: Option<&'a (dyn Fn(usize, usize) + Sync)>,
}

impl std::fmt::Debug for QuantOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuantOptions")
            .field("seed", &self.seed)
            .field("mse_clip", &self.mse_clip)
            .field(
                "weight_importance",
                &self.weight_importance.map(<[f32]>::len),
            )
            .field("input_importance", &self.input_importance.map(<[f32]>::len))
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

impl<'a> QuantOptions<'a> {
    /// A progress tracker over `rows` rows.
    pub fn progress_tracker(&self, rows: usize) -> crate::par::Progress<'a> {
        crate::par::Progress::new(rows, self.progress)
    }

    fn check(&self, n: usize, k: usize) -> Result<(), QuantError> {
        for (name, v, want) in [
            ("weight_importance", self.weight_importance, n * k),
            ("input_importance", self.input_importance, k),
        ] {
            let Some(v) = v else { continue };
            if v.len() != want {
                return Err(QuantError::BadTensor {
                    tensor: name.into(),
                    reason: format!(
                        "has {} entries, expected {want} for a [{n}, {k}] weight",
                        v.len()
                    ),
                });
            }
            if let Some(i) = v.iter().position(|x| !x.is_finite() || *x < 0.0) {
                return Err(QuantError::BadTensor {
                    tensor: name.into(),
                    reason: format!("entry {i} is {} (must be finite and ≥ 0)", v[i]),
                });
            }
        }
        Ok(())
    }
}

/// A quantized weight `[n, k]` in qkc's storage layout.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantTensor {
    /// The scheme.
    pub scheme: Scheme,
    /// Output rows.
    pub n: usize,
    /// Inputs (the reduction dimension).
    pub k: usize,
    /// Named parts (`qweight`, `scales`, `zeros`, `g_idx`, ...), see the scheme modules.
    pub parts: BTreeMap<String, Part>,
}

impl QuantTensor {
    /// An empty tensor of `scheme` (parts are added by the quantizers).
    pub fn new(scheme: Scheme, n: usize, k: usize) -> Self {
        QuantTensor {
            scheme,
            n,
            k,
            parts: BTreeMap::new(),
        }
    }

    /// Quantize dense row-major weights `w` (`n·k` values) into `scheme` with the default
    /// quantizer of that scheme (see each scheme module). Rejects NaN/Inf and shapes the scheme
    /// cannot hold.
    pub fn quantize(scheme: Scheme, w: &[f32], n: usize, k: usize) -> Result<Self, QuantError> {
        Self::quantize_with(scheme, w, n, k, &QuantOptions::default())
    }

    /// [`QuantTensor::quantize`] with explicit options.
    pub fn quantize_with(
        scheme: Scheme,
        w: &[f32],
        n: usize,
        k: usize,
        opts: &QuantOptions<'_>,
    ) -> Result<Self, QuantError> {
        if w.len() != n * k {
            return Err(QuantError::Invalid(format!(
                "{} weights given for a [{n}, {k}] tensor",
                w.len()
            )));
        }
        if n == 0 || k == 0 {
            return Err(QuantError::Invalid(format!(
                "cannot quantize an empty [{n}, {k}] tensor"
            )));
        }
        if let Some(i) = w.iter().position(|v| !v.is_finite()) {
            return Err(QuantError::Invalid(format!(
                "weight [{}, {}] is {} (NaN/Inf weights cannot be quantized)",
                i / k,
                i % k,
                w[i]
            )));
        }
        scheme
            .check_params()
            .map_err(|e| QuantError::Invalid(e.to_string()))?;
        scheme.check_shape(n, k).map_err(QuantError::Invalid)?;
        opts.check(n, k)?;
        match scheme {
            Scheme::Uniform(u) => crate::uniform::quantize(u, w, n, k, opts),
            Scheme::Spqr(s) => crate::spqr::quantize(s, w, n, k, opts),
            Scheme::Lut { bits } => crate::lut::quantize(bits, w, n, k, opts),
            Scheme::Fixed(f) => crate::fixed::quantize(f, w, n, k, opts),
            Scheme::Codebook(c) => crate::aqlm::quantize(c, w, n, k, opts),
            Scheme::Binary(b) => crate::binary::quantize(b, w, n, k, opts),
        }
    }

    /// Synthesize a quantized weight from a seed: random Gaussian weights with standard
    /// deviation `1/sqrt(k)` (so a linear layer keeps activations O(1)), quantized to `scheme`.
    /// Used by demos and tests, so quantized graphs run with no checkpoint at hand.
    pub fn synthesize(scheme: Scheme, n: usize, k: usize, seed: u64) -> Result<Self, QuantError> {
        let w = crate::uniform::gaussian(n * k, 1.0 / (k.max(1) as f32).sqrt(), seed);
        Self::quantize_with(
            scheme,
            &w,
            n,
            k,
            &QuantOptions {
                seed,
                ..Default::default()
            },
        )
    }

    /// Exact scalar reference dequantization to row-major `[n, k]` f32. Checks every part's
    /// dtype and shape first; errors name the part at fault.
    pub fn dequant(&self) -> Result<Vec<f32>, QuantError> {
        self.scheme
            .check_params()
            .map_err(|e| QuantError::Invalid(e.to_string()))?;
        self.scheme
            .check_shape(self.n, self.k)
            .map_err(QuantError::Invalid)?;
        let known: &[&str] = match self.scheme {
            Scheme::Uniform(_) => crate::uniform::PARTS,
            Scheme::Spqr(_) => crate::spqr::PARTS,
            Scheme::Lut { .. } => crate::lut::PARTS,
            Scheme::Fixed(_) => crate::fixed::PARTS,
            Scheme::Codebook(_) => crate::aqlm::PARTS,
            Scheme::Binary(_) => crate::binary::PARTS,
        };
        if let Some(p) = self.parts.keys().find(|p| !known.contains(&p.as_str())) {
            return Err(QuantError::BadTensor {
                tensor: p.clone(),
                reason: format!(
                    "is not a part of scheme `{}` (expected some of {known:?})",
                    self.scheme
                ),
            });
        }
        match self.scheme {
            Scheme::Uniform(u) => crate::uniform::dequant(u, self),
            Scheme::Spqr(s) => crate::spqr::dequant(s, self),
            Scheme::Lut { bits } => crate::lut::dequant(bits, self),
            Scheme::Fixed(f) => crate::fixed::dequant(f, self),
            Scheme::Codebook(c) => crate::aqlm::dequant(c, self),
            Scheme::Binary(b) => crate::binary::dequant(b, self),
        }
    }

    /// Storage cost in bits per weight: every stored bit of every part (codes, scales, zeros,
    /// tables, codebooks, masks, padding) over `n·k`. Outliers are a separate [`crate::Csr`].
    pub fn bits_per_weight(&self) -> f64 {
        let bits: usize = self.parts.values().map(|p| p.bytes.len() * 8).sum();
        bits as f64 / (self.n * self.k).max(1) as f64
    }

    /// A named part, or a `Missing` error naming `prefix.part`.
    pub fn part(&self, name: &str) -> Result<&Part, QuantError> {
        self.parts
            .get(name)
            .ok_or_else(|| QuantError::Missing(name.to_string()))
    }

    /// Check that part `name` has the given dtype and shape.
    pub fn expect_part(
        &self,
        name: &str,
        dtype: PartDtype,
        shape: &[usize],
    ) -> Result<&Part, QuantError> {
        self.expect_part_of(name, &[dtype], shape)
    }

    /// Check that part `name` has one of the given dtypes and the given shape.
    pub fn expect_part_of(
        &self,
        name: &str,
        dtypes: &[PartDtype],
        shape: &[usize],
    ) -> Result<&Part, QuantError> {
        let p = self.part(name)?;
        if !dtypes.contains(&p.dtype) || p.shape != shape {
            let want = dtypes
                .iter()
                .map(|d| format!("{d:?}"))
                .collect::<Vec<_>>()
                .join(" or ");
            return Err(QuantError::BadTensor {
                tensor: name.to_string(),
                reason: format!(
                    "expected {want} {shape:?} for scheme `{}` on a [{}, {}] weight, found {:?} {:?}",
                    self.scheme, self.n, self.k, p.dtype, p.shape
                ),
            });
        }
        if p.bytes.len() != p.numel() * p.dtype.size() {
            return Err(QuantError::BadTensor {
                tensor: name.to_string(),
                reason: format!(
                    "holds {} bytes, shape needs {}",
                    p.bytes.len(),
                    p.numel() * p.dtype.size()
                ),
            });
        }
        Ok(p)
    }

    /// The parts as safetensors tensors named `name.part` (the inverse of
    /// [`QuantTensor::from_safetensors`]; the scheme spelling goes in the metadata, see
    /// [`crate::io::SafetensorsWriter`]).
    pub fn to_safetensors_parts(&self, name: &str) -> Vec<(String, Part)> {
        self.parts
            .iter()
            .map(|(p, part)| (format!("{name}.{p}"), part.clone()))
            .collect()
    }

    /// Load weight `name` from a safetensors file in qkc's layout (`name.part` tensors).
    pub fn from_safetensors(
        st: &safetensors::SafeTensors<'_>,
        name: &str,
        scheme: Scheme,
        n: usize,
        k: usize,
    ) -> Result<Self, QuantError> {
        let prefix = format!("{name}.");
        let mut parts = BTreeMap::new();
        for (tname, view) in st.iter() {
            // `name.part` only: `name.outliers.col` belongs to the outliers, not to this weight.
            let Some(part) = tname.strip_prefix(&prefix).filter(|p| !p.contains('.')) else {
                continue;
            };
            parts.insert(part.to_string(), crate::io::part_from_view(tname, &view)?);
        }
        if parts.is_empty() {
            return Err(QuantError::Missing(format!(
                "{name}.* (no parts of quantized weight `{name}`)"
            )));
        }
        let q = QuantTensor {
            scheme,
            n,
            k,
            parts,
        };
        q.dequant().map_err(|e| e.in_tensor(name))?;
        Ok(q)
    }
}
