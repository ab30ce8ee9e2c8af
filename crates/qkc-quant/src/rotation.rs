//! Rotations applied to activations online and folded into weights offline: the Hadamard of
//! [`crate::hadamard`], QuaRot's randomized Hadamard `R1`, and dense learned orthogonal matrices
//! (SpinQuant `R1`/`R2`, <https://github.com/facebookresearch/SpinQuant>; KurTail).
//!
//! Convention (the one QuaRot's `rotate_model` and DESIGN.md's fused op use): the online
//! rotation is `x ← R·x`, and a weight `W [rows, n]` consuming the rotated input is stored as
//! `W' = W·Rᵀ`, so that `W'·(R·x) = W·x` for orthogonal R. [`fold`] computes `W'`: it applies
//! R to each row of W (QuaRot's `apply_exact_had_to_linear(W, had_dim=-1, output=False)`).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::QuantError;
use crate::hadamard;

/// An orthogonal `n × n` rotation.
#[derive(Debug, Clone, PartialEq)]
pub enum Rotation {
    /// `H_n` of [`hadamard::apply`] (had_K ⊗ Sylvester, normalized).
    Hadamard {
        /// Size.
        n: usize,
    },
    /// QuaRot's random Hadamard: `R = H_n · diag(signs)`, signs ∈ {±1}.
    SignedHadamard {
        /// Size.
        n: usize,
        /// ±1 per input coordinate.
        signs: Vec<f64>,
    },
    /// A dense orthogonal matrix, row-major `[n, n]` (learned, e.g. SpinQuant's R1).
    Dense {
        /// Size.
        n: usize,
        /// Entries, row-major.
        r: Vec<f64>,
    },
}

impl Rotation {
    /// `H_n`, if that size is supported.
    pub fn hadamard(n: usize) -> Result<Self, QuantError> {
        hadamard::get_hadk(n)?;
        Ok(Rotation::Hadamard { n })
    }

    /// QuaRot's random Hadamard `H_n · diag(±1)`, deterministic for `seed`.
    pub fn random_hadamard(n: usize, seed: u64) -> Result<Self, QuantError> {
        hadamard::get_hadk(n)?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let signs = (0..n)
            .map(|_| if rng.gen_bool(0.5) { 1.0 } else { -1.0 })
            .collect();
        Ok(Rotation::SignedHadamard { n, signs })
    }

    /// A dense rotation; checks `R·Rᵀ = I` within `tol` (max abs entry error).
    pub fn dense(n: usize, r: Vec<f64>, tol: f64) -> Result<Self, QuantError> {
        if r.len() != n * n {
            return Err(QuantError::BadTensor {
                tensor: "rotation".into(),
                reason: format!("{} entries for a [{n}, {n}] matrix", r.len()),
            });
        }
        if let Some(i) = r.iter().position(|v| !v.is_finite()) {
            return Err(QuantError::BadTensor {
                tensor: "rotation".into(),
                reason: format!("entry {i} is not finite"),
            });
        }
        let err = orthogonality_error(&r, n);
        if err > tol {
            return Err(QuantError::BadTensor {
                tensor: "rotation".into(),
                reason: format!("not orthogonal: max |R·Rᵀ − I| = {err:.3e} > {tol:.1e}"),
            });
        }
        Ok(Rotation::Dense { n, r })
    }

    /// A random orthogonal matrix (QR of a Gaussian matrix by modified Gram–Schmidt, as
    /// SpinQuant's `random_orthogonal_matrix` initializes R); O(n³), for tests and small n.
    pub fn random_orthogonal(n: usize, seed: u64) -> Self {
        let g = crate::uniform::gaussian(n * n, 1.0, seed);
        let mut r: Vec<f64> = g.iter().map(|&v| f64::from(v)).collect();
        for i in 0..n {
            for j in 0..i {
                let dot: f64 = (0..n).map(|c| r[i * n + c] * r[j * n + c]).sum();
                for c in 0..n {
                    r[i * n + c] -= dot * r[j * n + c];
                }
            }
            let norm = (0..n)
                .map(|c| r[i * n + c] * r[i * n + c])
                .sum::<f64>()
                .sqrt()
                .max(1e-300);
            for c in 0..n {
                r[i * n + c] /= norm;
            }
        }
        Rotation::Dense { n, r }
    }

    /// Size n.
    pub fn n(&self) -> usize {
        match self {
            Rotation::Hadamard { n }
            | Rotation::SignedHadamard { n, .. }
            | Rotation::Dense { n, .. } => *n,
        }
    }

    fn check_len(&self, len: usize) -> Result<(), QuantError> {
        if len != self.n() {
            return Err(QuantError::Invalid(format!(
                "rotation of size {} applied to length {len}",
                self.n()
            )));
        }
        Ok(())
    }

    /// `x ← R·x`.
    pub fn apply(&self, x: &mut [f64]) -> Result<(), QuantError> {
        self.check_len(x.len())?;
        match self {
            Rotation::Hadamard { .. } => hadamard::apply(x, false),
            Rotation::SignedHadamard { signs, .. } => {
                x.iter_mut().zip(signs).for_each(|(v, s)| *v *= s);
                hadamard::apply(x, false)
            }
            Rotation::Dense { n, r } => {
                let y: Vec<f64> = (0..*n)
                    .map(|i| (0..*n).map(|j| r[i * n + j] * x[j]).sum())
                    .collect();
                x.copy_from_slice(&y);
                Ok(())
            }
        }
    }

    /// `x ← Rᵀ·x` (the inverse).
    pub fn apply_transpose(&self, x: &mut [f64]) -> Result<(), QuantError> {
        self.check_len(x.len())?;
        match self {
            Rotation::Hadamard { .. } => hadamard::apply(x, true),
            Rotation::SignedHadamard { signs, .. } => {
                hadamard::apply(x, true)?;
                x.iter_mut().zip(signs).for_each(|(v, s)| *v *= s);
                Ok(())
            }
            Rotation::Dense { n, r } => {
                let y: Vec<f64> = (0..*n)
                    .map(|j| (0..*n).map(|i| r[i * n + j] * x[i]).sum())
                    .collect();
                x.copy_from_slice(&y);
                Ok(())
            }
        }
    }

    /// The dense matrix R, row-major (built by rotating unit vectors).
    pub fn to_dense(&self) -> Result<Vec<f64>, QuantError> {
        let n = self.n();
        let mut out = vec![0f64; n * n];
        let mut e = vec![0f64; n];
        for j in 0..n {
            e.fill(0.0);
            e[j] = 1.0;
            self.apply(&mut e)?;
            for i in 0..n {
                out[i * n + j] = e[i];
            }
        }
        Ok(out)
    }
}

/// Max |R·Rᵀ − I| over all entries of a row-major `[n, n]` matrix.
pub fn orthogonality_error(r: &[f64], n: usize) -> f64 {
    let mut worst = 0f64;
    for i in 0..n {
        for j in 0..n {
            let dot: f64 = (0..n).map(|c| r[i * n + c] * r[j * n + c]).sum();
            worst = worst.max((dot - if i == j { 1.0 } else { 0.0 }).abs());
        }
    }
    worst
}

/// The offline fold: `W ← W·Rᵀ` for row-major `w` of shape `[rows, R.n()]`, so that the folded
/// weight applied to the rotated input `R·x` gives `W·x`. Rows are processed in parallel.
pub fn fold(w: &mut [f32], rows: usize, rot: &Rotation) -> Result<(), QuantError> {
    let n = rot.n();
    if w.len() != rows * n {
        return Err(QuantError::Invalid(format!(
            "fold: {} weights for a [{rows}, {n}] matrix",
            w.len()
        )));
    }
    if let Some(i) = w.iter().position(|v| !v.is_finite()) {
        return Err(QuantError::Invalid(format!(
            "fold: weight [{}, {}] is not finite",
            i / n,
            i % n
        )));
    }
    crate::par::for_each_row_chunk(w, n, |_, chunk| {
        let mut buf = vec![0f64; n];
        for row in chunk.chunks_exact_mut(n) {
            buf.iter_mut()
                .zip(row.iter())
                .for_each(|(b, &v)| *b = f64::from(v));
            rot.apply(&mut buf)?;
            row.iter_mut().zip(&buf).for_each(|(v, &b)| *v = b as f32);
        }
        Ok(())
    })
}

/// [`fold`] with the Hadamard `H_n` of the given size.
pub fn fold_hadamard(w: &mut [f32], rows: usize, n: usize) -> Result<(), QuantError> {
    fold(w, rows, &Rotation::hadamard(n)?)
}
