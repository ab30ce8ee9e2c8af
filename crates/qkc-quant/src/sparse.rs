//! Sparse outliers in CSR form: the "S" of dense-and-sparse (SqueezeLLM, SpQR).
//!
//! `S` is a CSR matrix over the `[n, k]` weight: row = output channel, column = input index,
//! as SqueezeLLM's `rows/cols/vals` (<https://github.com/SqueezeAILab/SqueezeLLM>
//! `squeezellm/quant.py`, `SPMV_ATOMIC`) and SpQR's CSR outliers. `y = (dequant(Wq) + S)·x`.
//!
//! Stored parts of outliers `name` ([`Csr::to_parts`], [`Csr::from_safetensors`]):
//! - `name.row_ptr`: I32 `[n+1]`, non-decreasing, `row_ptr[0] = 0`, `row_ptr[n] = nnz`;
//! - `name.col`: I16 `[nnz]` holding u16 bits when `k ≤ 65536`, else I32 `[nnz]`; strictly
//!   increasing within a row and `< k`;
//! - `name.val`: F16 `[nnz]` when every value is exactly an f16 (e.g. after
//!   [`Csr::round_values_f16`]), else F32 `[nnz]`.
//!
//! The reader accepts either column width and either value type.

use half::f16;

use crate::error::QuantError;
use crate::tensor::{Part, PartDtype};
/// A CSR matrix `[n, k]` of outliers.
#[derive(Debug, Clone, PartialEq)]
pub struct Csr {
    /// Rows.
    pub n: usize,
    /// Columns.
    pub k: usize,
    /// Row pointers, `n + 1` entries, non-decreasing, last = nnz.
    pub row_ptr: Vec<u32>,
    /// Column of each non-zero, strictly increasing within a row, `< k`.
    pub col: Vec<u32>,
    /// Value of each non-zero (widened to f32; the stored dtype may be f16).
    pub val: Vec<f32>,
}

impl Csr {
    /// Check every CSR invariant; the error names the broken one.
    pub fn validate(&self) -> Result<(), QuantError> {
        self.validate_named("csr")
    }

    /// [`Csr::validate`], naming the outlier tensor `name` in errors.
    pub fn validate_named(&self, name: &str) -> Result<(), QuantError> {
        let bad = |part: &str, reason: String| QuantError::BadTensor {
            tensor: format!("{name}.{part}"),
            reason,
        };
        if self.row_ptr.len() != self.n + 1 {
            return Err(bad(
                "row_ptr",
                format!(
                    "has {} entries, expected n+1 = {}",
                    self.row_ptr.len(),
                    self.n + 1
                ),
            ));
        }
        let nnz = self.col.len();
        if self.val.len() != nnz {
            return Err(bad(
                "val",
                format!("{} values for {} column indices", self.val.len(), nnz),
            ));
        }
        if self.row_ptr[0] != 0 {
            return Err(bad(
                "row_ptr",
                format!("must start at 0, starts at {}", self.row_ptr[0]),
            ));
        }
        if let Some(r) = (0..self.n).find(|&r| self.row_ptr[r] > self.row_ptr[r + 1]) {
            return Err(bad("row_ptr", format!("decreases at row {r}")));
        }
        if self.row_ptr[self.n] as usize != nnz {
            return Err(bad(
                "row_ptr",
                format!("must end at nnz = {nnz}, ends at {}", self.row_ptr[self.n]),
            ));
        }
        for r in 0..self.n {
            let (a, b) = (self.row_ptr[r] as usize, self.row_ptr[r + 1] as usize);
            for t in a..b {
                if self.col[t] as usize >= self.k {
                    return Err(bad(
                        "col",
                        format!(
                            "row {r}: column {} is out of range [0, {})",
                            self.col[t], self.k
                        ),
                    ));
                }
                if t > a && self.col[t] <= self.col[t - 1] {
                    return Err(bad(
                        "col",
                        format!("row {r}: columns are not strictly increasing at entry {t}"),
                    ));
                }
                if !self.val[t].is_finite() {
                    return Err(bad(
                        "val",
                        format!("row {r}: value {} is not finite", self.val[t]),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Number of stored non-zeros.
    pub fn nnz(&self) -> usize {
        self.col.len()
    }

    /// Round every value to the nearest f16 (so [`Csr::to_parts`] stores them as F16).
    pub fn round_values_f16(&mut self) {
        self.val
            .iter_mut()
            .for_each(|v| *v = f16::from_f32(*v).to_f32());
    }

    /// Build from parts `name.row_ptr`, `name.col`, `name.val` (see the module doc) and validate.
    pub fn from_parts(
        name: &str,
        row_ptr: &Part,
        col: &Part,
        val: &Part,
        n: usize,
        k: usize,
    ) -> Result<Self, QuantError> {
        let bad = |part: &str, reason: String| QuantError::BadTensor {
            tensor: format!("{name}.{part}"),
            reason,
        };
        if row_ptr.dtype != PartDtype::I32 || row_ptr.shape != [n + 1] {
            return Err(bad(
                "row_ptr",
                format!(
                    "expected I32 [{}], found {:?} {:?}",
                    n + 1,
                    row_ptr.dtype,
                    row_ptr.shape
                ),
            ));
        }
        let rp = row_ptr.to_f64();
        if let Some(i) = rp.iter().position(|&v| v < 0.0) {
            return Err(bad("row_ptr", format!("entry {i} is negative")));
        }
        let nnz = val.numel();
        if col.shape != [nnz] || val.shape != [nnz] {
            return Err(bad(
                "col",
                format!(
                    "shape {:?} does not match val shape {:?}",
                    col.shape, val.shape
                ),
            ));
        }
        let cols: Vec<u32> = match col.dtype {
            // u16 column indices stored in an I16 tensor: reinterpret the bits.
            PartDtype::I16 => col
                .bytes
                .chunks_exact(2)
                .map(|c| u32::from(u16::from_le_bytes([c[0], c[1]])))
                .collect(),
            PartDtype::I32 => {
                let v = col.to_f64();
                if let Some(i) = v.iter().position(|&c| c < 0.0) {
                    return Err(bad("col", format!("entry {i} is negative")));
                }
                v.into_iter().map(|c| c as u32).collect()
            }
            other => {
                return Err(bad(
                    "col",
                    format!("expected I16 (u16 bits) or I32, found {other:?}"),
                ))
            }
        };
        let vals: Vec<f32> = match val.dtype {
            PartDtype::F16 | PartDtype::F32 => val.to_f64().into_iter().map(|v| v as f32).collect(),
            other => return Err(bad("val", format!("expected F16 or F32, found {other:?}"))),
        };
        if cols.len() != nnz || vals.len() != nnz {
            return Err(bad("col", "byte length does not match the shape".into()));
        }
        let csr = Csr {
            n,
            k,
            row_ptr: rp.into_iter().map(|v| v as u32).collect(),
            col: cols,
            val: vals,
        };
        csr.validate_named(name)?;
        Ok(csr)
    }

    /// Load outliers `name` (`name.row_ptr`, `name.col`, `name.val`) of a `[n, k]` weight.
    pub fn from_safetensors(
        st: &safetensors::SafeTensors<'_>,
        name: &str,
        n: usize,
        k: usize,
    ) -> Result<Self, QuantError> {
        let get = |p: &str| crate::io::read_part(st, &format!("{name}.{p}"));
        Self::from_parts(name, &get("row_ptr")?, &get("col")?, &get("val")?, n, k)
    }

    /// The stored parts `name.row_ptr`, `name.col`, `name.val` (dtypes chosen as the module doc says).
    pub fn to_parts(&self, name: &str) -> Vec<(String, Part)> {
        let nnz = self.nnz();
        let rp: Vec<i32> = self.row_ptr.iter().map(|&v| v as i32).collect();
        let col = if self.k <= 1 << 16 {
            let bytes = self
                .col
                .iter()
                .flat_map(|&c| (c as u16).to_le_bytes())
                .collect();
            Part {
                dtype: PartDtype::I16,
                shape: vec![nnz],
                bytes,
            }
        } else {
            Part::from_i32(
                vec![nnz],
                &self.col.iter().map(|&c| c as i32).collect::<Vec<_>>(),
            )
        };
        let f16_exact = self.val.iter().all(|&v| f16::from_f32(v).to_f32() == v);
        let val = if f16_exact {
            Part::from_f16(
                vec![nnz],
                &self
                    .val
                    .iter()
                    .map(|&v| f16::from_f32(v))
                    .collect::<Vec<_>>(),
            )
        } else {
            Part::from_f32(vec![nnz], &self.val)
        };
        vec![
            (
                format!("{name}.row_ptr"),
                Part::from_i32(vec![self.n + 1], &rp),
            ),
            (format!("{name}.col"), col),
            (format!("{name}.val"), val),
        ]
    }

    /// Storage cost in bits (row pointers, columns and values as [`Csr::to_parts`] stores them).
    pub fn storage_bits(&self) -> u64 {
        self.to_parts("s")
            .iter()
            .map(|(_, p)| p.bytes.len() as u64 * 8)
            .sum()
    }

    /// `y += S·x` in f64 (x has k entries, y has n). Validates S first.
    pub fn matvec_add(&self, x: &[f64], y: &mut [f64]) -> Result<(), QuantError> {
        self.validate()?;
        if x.len() != self.k || y.len() != self.n {
            return Err(QuantError::Invalid(format!(
                "CSR [{}, {}] times a vector of {} into {} outputs",
                self.n,
                self.k,
                x.len(),
                y.len()
            )));
        }
        for (r, yr) in y.iter_mut().enumerate().take(self.n) {
            for t in self.row_ptr[r] as usize..self.row_ptr[r + 1] as usize {
                *yr += f64::from(self.val[t]) * x[self.col[t] as usize];
            }
        }
        Ok(())
    }

    /// Add S into a dense row-major `[n, k]` matrix. Validates S first.
    pub fn add_to_dense(&self, d: &mut [f32]) -> Result<(), QuantError> {
        self.validate()?;
        if d.len() != self.n * self.k {
            return Err(QuantError::Invalid(format!(
                "CSR [{}, {}] added to {} values",
                self.n,
                self.k,
                d.len()
            )));
        }
        for r in 0..self.n {
            for t in self.row_ptr[r] as usize..self.row_ptr[r + 1] as usize {
                d[r * self.k + self.col[t] as usize] += self.val[t];
            }
        }
        Ok(())
    }

    /// Synthesize random outliers: about `density · n · k` non-zeros with values of magnitude
    /// around `scale`, deterministic for `seed`.
    pub fn synthesize(n: usize, k: usize, density: f64, scale: f32, seed: u64) -> Self {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut row_ptr = vec![0u32];
        let (mut col, mut val) = (Vec::new(), Vec::new());
        for _ in 0..n {
            for j in 0..k {
                if rng.gen_bool(density.clamp(0.0, 1.0)) {
                    col.push(j as u32);
                    let sign = if rng.gen_bool(0.5) { 1.0 } else { -1.0 };
                    let v: f32 = sign * scale * rng.gen_range(1.0f32..4.0);
                    // values are stored as f16: keep them representable.
                    val.push(half::f16::from_f32(v).to_f32());
                }
            }
            row_ptr.push(col.len() as u32);
        }
        Csr {
            n,
            k,
            row_ptr,
            col,
            val,
        }
    }

    /// Dense row-major `[n, k]` form.
    /// Entries that break the invariants (see [`Csr::validate`]) are skipped.
    pub fn to_dense(&self) -> Vec<f32> {
        let mut d = vec![0f32; self.n * self.k];
        for r in 0..self.n.min(self.row_ptr.len().saturating_sub(1)) {
            let (a, b) = (self.row_ptr[r] as usize, self.row_ptr[r + 1] as usize);
            for t in a..b.min(self.col.len()).min(self.val.len()) {
                if let Some(v) = d
                    .get_mut(r * self.k + self.col[t] as usize)
                    .filter(|_| (self.col[t] as usize) < self.k)
                {
                    *v += self.val[t];
                }
            }
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::SafetensorsWriter;

    #[test]
    fn csr_round_trips_through_safetensors() {
        for (k, density) in [(300, 0.05), (70000, 0.0003)] {
            let mut csr = Csr::synthesize(7, k, density, 0.5, 3);
            if k > 1000 {
                csr.val[0] = 0.1; // not an f16: forces F32 values
            }
            let mut w = SafetensorsWriter::new();
            for (name, part) in csr.to_parts("l.outliers") {
                w.add_part(&name, part).expect("add");
            }
            let bytes = w.to_bytes().expect("bytes");
            let st = safetensors::SafeTensors::deserialize(&bytes).expect("st");
            let back = Csr::from_safetensors(&st, "l.outliers", 7, k).expect("load");
            assert_eq!(back, csr);
            let col = st.tensor("l.outliers.col").expect("col");
            assert_eq!(
                col.dtype(),
                if k <= 65536 {
                    safetensors::Dtype::I16
                } else {
                    safetensors::Dtype::I32
                }
            );
        }
    }
}
