//! Outlier extraction: split a weight into a dense remainder and a sparse CSR of its most
//! salient entries (dense-and-sparse, SqueezeLLM §4.2 <https://arxiv.org/abs/2306.07629>;
//! SpQR's unstructured outliers <https://arxiv.org/abs/2306.03078>).
//!
//! Selection keeps the `fraction · n · k` entries with the highest score (ties broken by the
//! lower flat index, so the set is unique and deterministic):
//! - [`Saliency::Magnitude`]: `|w|` (SqueezeLLM's outlier percentile);
//! - [`Saliency::PerWeight`]: `s_ij · w_ij²` with `s` a per-weight sensitivity (diagonal Fisher,
//!   as SqueezeLLM's sensitive values; or an OBS-style `1/[H⁻¹]_jj`), `[n, k]`;
//! - [`Saliency::PerInput`]: `s_j · w_ij²` with `s` per input channel, `[k]` (the Hessian diagonal
//!   `‖X_j‖²` from calibration activations).
//!
//! The remainder has the outliers zeroed. [`quantize_dense_and_sparse`] quantizes it and then sets
//! each stored outlier to `w − dequant(Wq)` at its position, so dense + sparse reproduces the
//! outlier exactly (up to the value dtype): SqueezeLLM's `outlier − c0`, generalized to every scheme.

use crate::error::QuantError;
use crate::scheme::Scheme;
use crate::sparse::Csr;
use crate::tensor::QuantTensor;

/// How outliers are scored.
#[derive(Debug, Clone, Copy)]
pub enum Saliency<'a> {
    /// `|w|`.
    Magnitude,
    /// `s_ij · w_ij²`, `s` row-major `[n, k]`.
    PerWeight(&'a [f32]),
    /// `s_j · w_ij²`, `s` of length k.
    PerInput(&'a [f32]),
}

fn check_inputs(
    w: &[f32],
    n: usize,
    k: usize,
    fraction: f64,
    sal: Saliency<'_>,
) -> Result<(), QuantError> {
    if w.len() != n * k {
        return Err(QuantError::Invalid(format!(
            "{} weights given for a [{n}, {k}] tensor",
            w.len()
        )));
    }
    if let Some(i) = w.iter().position(|v| !v.is_finite()) {
        return Err(QuantError::Invalid(format!(
            "weight [{}, {}] is {} (not finite)",
            i / k.max(1),
            i % k.max(1),
            w[i]
        )));
    }
    if !(0.0..=1.0).contains(&fraction) {
        return Err(QuantError::Invalid(format!(
            "outlier fraction {fraction} is outside [0, 1]"
        )));
    }
    let (s, want) = match sal {
        Saliency::Magnitude => return Ok(()),
        Saliency::PerWeight(s) => (s, n * k),
        Saliency::PerInput(s) => (s, k),
    };
    if s.len() != want {
        return Err(QuantError::BadTensor {
            tensor: "sensitivity".into(),
            reason: format!(
                "has {} entries, expected {want} for a [{n}, {k}] weight",
                s.len()
            ),
        });
    }
    if let Some(i) = s.iter().position(|v| !v.is_finite() || *v < 0.0) {
        return Err(QuantError::BadTensor {
            tensor: "sensitivity".into(),
            reason: format!("entry {i} is {} (must be finite and ≥ 0)", s[i]),
        });
    }
    Ok(())
}

/// Split `w` (`[n, k]` row-major) into (dense remainder with outliers zeroed, outliers as CSR
/// holding the full outlier weights in f32). `fraction` is in [0, 1] (1% = 0.01).
pub fn extract(
    w: &[f32],
    n: usize,
    k: usize,
    fraction: f64,
    sal: Saliency<'_>,
) -> Result<(Vec<f32>, Csr), QuantError> {
    check_inputs(w, n, k, fraction, sal)?;
    let total = n * k;
    let count = ((fraction * total as f64).round() as usize).min(total);
    let score = |i: usize| -> f32 {
        let v = w[i];
        match sal {
            Saliency::Magnitude => v.abs(),
            Saliency::PerWeight(s) => s[i] * v * v,
            Saliency::PerInput(s) => s[i % k] * v * v,
        }
    };
    let mut keep = vec![false; total];
    if count > 0 {
        let mut scores: Vec<f32> = (0..total).map(score).collect();
        let (_, &mut thr, _) = scores.select_nth_unstable_by(count - 1, |a, b| b.total_cmp(a));
        // Everything strictly above the threshold, then ties in index order.
        let mut taken = 0;
        for (i, kp) in keep.iter_mut().enumerate() {
            if score(i) > thr {
                *kp = true;
                taken += 1;
            }
        }
        for (i, kp) in keep.iter_mut().enumerate() {
            if taken == count {
                break;
            }
            if !*kp && score(i) == thr {
                *kp = true;
                taken += 1;
            }
        }
    }
    let mut dense = w.to_vec();
    let mut row_ptr = Vec::with_capacity(n + 1);
    row_ptr.push(0u32);
    let (mut col, mut val) = (Vec::with_capacity(count), Vec::with_capacity(count));
    for r in 0..n {
        for j in 0..k {
            let i = r * k + j;
            if keep[i] {
                col.push(j as u32);
                val.push(w[i]);
                dense[i] = 0.0;
            }
        }
        row_ptr.push(col.len() as u32);
    }
    Ok((
        dense,
        Csr {
            n,
            k,
            row_ptr,
            col,
            val,
        },
    ))
}

/// Extract outliers, quantize the remainder into `scheme`, and store each outlier as
/// `w − dequant(Wq)` at its position, so `dequant(Wq) + S` equals `w` there. With `f16_values`
/// the outlier values are rounded to f16 (SpQR's fp16 values) instead of kept in f32
/// (SqueezeLLM's fp32 values).
pub fn quantize_dense_and_sparse(
    scheme: Scheme,
    w: &[f32],
    n: usize,
    k: usize,
    fraction: f64,
    sal: Saliency<'_>,
    f16_values: bool,
) -> Result<(QuantTensor, Csr), QuantError> {
    let (dense, mut csr) = extract(w, n, k, fraction, sal)?;
    let q = QuantTensor::quantize(scheme, &dense, n, k)?;
    let d = q.dequant()?;
    for r in 0..n {
        for t in csr.row_ptr[r] as usize..csr.row_ptr[r + 1] as usize {
            let i = r * k + csr.col[t] as usize;
            csr.val[t] = w[i] - d[i];
        }
    }
    if f16_values {
        csr.round_values_f16();
    }
    Ok((q, csr))
}
