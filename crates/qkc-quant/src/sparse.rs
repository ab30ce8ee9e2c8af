//! Sparse outliers in CSR form: the "S" of dense-and-sparse (SqueezeLLM, SpQR).
//!
//! Stored parts of outlier weight `name`: `name.row_ptr` (I32 `[n+1]`), `name.col` (I32, or U16
//! stored as I16 bits, `[nnz]`), `name.val` (F16 or F32 `[nnz]`).

use crate::error::QuantError;

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
        let bad = |reason: String| QuantError::BadTensor { tensor: "csr".into(), reason };
        if self.row_ptr.len() != self.n + 1 {
            return Err(bad(format!("row_ptr has {} entries, expected n+1 = {}", self.row_ptr.len(), self.n + 1)));
        }
        let nnz = self.col.len();
        if self.val.len() != nnz {
            return Err(bad(format!("{} values for {} column indices", self.val.len(), nnz)));
        }
        if self.row_ptr[0] != 0 || self.row_ptr[self.n] as usize != nnz {
            return Err(bad(format!("row_ptr must start at 0 and end at nnz = {nnz}")));
        }
        for r in 0..self.n {
            let (a, b) = (self.row_ptr[r] as usize, self.row_ptr[r + 1] as usize);
            if a > b || b > nnz {
                return Err(bad(format!("row_ptr decreases at row {r}")));
            }
            for t in a..b {
                if self.col[t] as usize >= self.k {
                    return Err(bad(format!("row {r}: column {} is out of range [0, {})", self.col[t], self.k)));
                }
                if t > a && self.col[t] <= self.col[t - 1] {
                    return Err(bad(format!("row {r}: columns are not strictly increasing at entry {t}")));
                }
                if !self.val[t].is_finite() {
                    return Err(bad(format!("row {r}: value {} is not finite", self.val[t])));
                }
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
        Csr { n, k, row_ptr, col, val }
    }

    /// Dense row-major `[n, k]` form.
    pub fn to_dense(&self) -> Vec<f32> {
        let mut d = vec![0f32; self.n * self.k];
        for r in 0..self.n {
            for t in self.row_ptr[r] as usize..self.row_ptr[r + 1] as usize {
                d[r * self.k + self.col[t] as usize] += self.val[t];
            }
        }
        d
    }
}
