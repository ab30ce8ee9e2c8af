//! Hadamard rotations as QuaRot and SpinQuant apply them online: the FWHT for n = 2^m and
//! `had_K ⊗ H_{2^m}` for n = K·2^m.
//!
//! Reproduces `get_hadK` / `matmul_hadU` of QuaRot
//! (<https://github.com/spcl/QuaRot> `fake_quant/hadamard_utils.py`) and SpinQuant
//! (<https://github.com/facebookresearch/SpinQuant> `utils/hadamard_utils.py`):
//!
//! - K is the first of 172, 156, 140, 108, 60, 52, 36, 28, 44, 40, 20, 12 that divides n
//!   (44 is SpinQuant's addition), and n/K must then be a power of two; otherwise n must be a
//!   power of two (K = 1). [`get_hadk`] makes exactly that choice.
//! - `H_n = (had_K ⊗ H_{n/K}) / sqrt(n)` with `H_{n/K}` the Sylvester matrix in natural order
//!   (`scipy.linalg.hadamard`) and had_K acting on the **slow** index: x is viewed as `[K, n/K]`
//!   row-major, each row gets the FWHT, then had_K mixes the rows.
//! - had_K is **not symmetric**, so `H_n` and `H_nᵀ = (had_Kᵀ ⊗ H_{n/K}) / sqrt(n)` differ;
//!   `transpose = true` applies `H_nᵀ` (QuaRot's `get_hadK(n, transpose=True)`).
//! - A weight folded offline for an online `x ← H_n x` is stored as `W' = W·H_nᵀ`; that is
//!   `H_n` applied to each row of W (see [`crate::rotation::fold`]).
//!
//! The had_K tables (Sloane's library, as shipped by QuaRot/SpinQuant) are embedded from
//! `data/hadamard/hadK.txt`: K lines of K `+`/`-` characters, row-major.

use std::sync::OnceLock;

use crate::error::QuantError;

/// The orders of the had_K tables, in QuaRot/SpinQuant `get_hadK` test order.
pub const HADK_ORDERS: [usize; 12] = [172, 156, 140, 108, 60, 52, 36, 28, 44, 40, 20, 12];

const TABLE_TEXT: [(usize, &str); 12] = [
    (172, include_str!("../data/hadamard/had172.txt")),
    (156, include_str!("../data/hadamard/had156.txt")),
    (140, include_str!("../data/hadamard/had140.txt")),
    (108, include_str!("../data/hadamard/had108.txt")),
    (60, include_str!("../data/hadamard/had60.txt")),
    (52, include_str!("../data/hadamard/had52.txt")),
    (36, include_str!("../data/hadamard/had36.txt")),
    (28, include_str!("../data/hadamard/had28.txt")),
    (44, include_str!("../data/hadamard/had44.txt")),
    (40, include_str!("../data/hadamard/had40.txt")),
    (20, include_str!("../data/hadamard/had20.txt")),
    (12, include_str!("../data/hadamard/had12.txt")),
];

/// One parsed had_K table: `signs[a·K + b] = had_K[a][b] ∈ {+1, −1}`.
#[derive(Debug)]
struct HadK {
    k: usize,
    signs: Vec<i8>,
}

fn parse_table(k: usize, text: &str) -> Result<HadK, String> {
    let mut signs = Vec::with_capacity(k * k);
    let rows: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if rows.len() != k {
        return Err(format!("had{k}.txt has {} rows", rows.len()));
    }
    for (r, row) in rows.iter().enumerate() {
        if row.len() != k {
            return Err(format!("had{k}.txt row {r} has {} entries", row.len()));
        }
        for c in row.chars() {
            signs.push(match c {
                '+' => 1,
                '-' => -1,
                other => {
                    return Err(format!(
                        "had{k}.txt row {r}: unexpected character {other:?}"
                    ))
                }
            });
        }
    }
    Ok(HadK { k, signs })
}

fn tables() -> Result<&'static [HadK], QuantError> {
    static TABLES: OnceLock<Result<Vec<HadK>, String>> = OnceLock::new();
    TABLES
        .get_or_init(|| TABLE_TEXT.iter().map(|&(k, t)| parse_table(k, t)).collect())
        .as_deref()
        .map_err(|e| QuantError::Invalid(format!("embedded Hadamard table is corrupt: {e}")))
}

fn table(k: usize) -> Result<&'static HadK, QuantError> {
    tables()?
        .iter()
        .find(|t| t.k == k)
        .ok_or_else(|| QuantError::Unsupported(format!("no had_K table of order {k}")))
}

/// The had_K table of order `k` (one of [`HADK_ORDERS`]) as row-major ±1 entries, for code
/// generators that bake it in.
pub fn had_k_table(k: usize) -> Result<Vec<i8>, QuantError> {
    Ok(table(k)?.signs.clone())
}

/// QuaRot's `get_hadK(n)`: the K with `n = K·2^m` (1 for a power of two).
pub fn get_hadk(n: usize) -> Result<usize, QuantError> {
    if n == 0 {
        return Err(QuantError::Unsupported("Hadamard of size 0".into()));
    }
    for &k in &HADK_ORDERS {
        if n % k == 0 {
            return if (n / k).is_power_of_two() {
                Ok(k)
            } else {
                Err(QuantError::Unsupported(format!(
                    "Hadamard of size {n}: divisible by {k} but {n}/{k} = {} is not a power of two",
                    n / k
                )))
            };
        }
    }
    if n.is_power_of_two() {
        Ok(1)
    } else {
        Err(QuantError::Unsupported(format!(
            "Hadamard of size {n}: not a power of two times one of {HADK_ORDERS:?}"
        )))
    }
}

/// Whether a Hadamard of size `n` is supported (n = K·2^m with a known had_K, or 2^m).
pub fn supported(n: usize) -> bool {
    get_hadk(n).is_ok()
}

/// Every supported size up to and including `max`, ascending.
pub fn supported_sizes(max: usize) -> Vec<usize> {
    let mut v: Vec<usize> = (1..=max).filter(|&n| n.is_power_of_two()).collect();
    for &k in &HADK_ORDERS {
        let mut n = k;
        while n <= max {
            if get_hadk(n).ok() == Some(k) {
                v.push(n);
            }
            n *= 2;
        }
    }
    v.sort_unstable();
    v.dedup();
    v
}

mod kernels;

/// Scalar types the transform runs in (f32 for speed, f64 for the reference interpreter).
pub trait Real:
    Copy
    + PartialEq
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + Default
    + Send
    + Sync
{
    /// Conversion from f64 (for the normalization constant).
    fn from_f64(v: f64) -> Self;

    /// Run a plan on one vector; f32 picks an AVX2 build of the same code when the CPU has it.
    fn run(plan: &mut Plan<Self>, x: &mut [Self]) {
        plan.run_generic(x);
    }
}

impl Real for f32 {
    fn from_f64(v: f64) -> Self {
        v as f32
    }

    fn run(plan: &mut Plan<Self>, x: &mut [Self]) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU supports AVX2 and FMA (checked just above), the only requirement
            // of a `#[target_feature]` function; it has no other preconditions.
            unsafe { run_avx2(plan, x) };
            return;
        }
        plan.run_generic(x);
    }
}

impl Real for f64 {
    fn from_f64(v: f64) -> Self {
        v
    }
}

/// [`Plan::run_generic`] compiled with AVX2 + FMA (everything below it is `#[inline(always)]`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn run_avx2(plan: &mut Plan<f32>, x: &mut [f32]) {
    plan.run_generic(x);
}

/// In-place unnormalized Sylvester FWHT (natural order) of a power-of-two length slice.
pub fn fwht<T: Real>(x: &mut [T]) {
    kernels::fwht_scaled(x, T::from_f64(1.0));
}

/// A prepared transform of one size: which K, the had_K step plan, and scratch space.
#[derive(Debug, Clone)]
pub struct Plan<T> {
    n: usize,
    k: usize,
    steps: Option<kernels::HadKSteps>,
    scale: T,
    /// `[n]` output of the had_K step, then the step's tables and accumulators.
    scratch: Vec<T>,
}

impl<T: Real> Plan<T> {
    /// Plan `H_n` (or `H_nᵀ` when `transpose`).
    pub fn new(n: usize, transpose: bool) -> Result<Self, QuantError> {
        let k = get_hadk(n)?;
        let steps = if k == 1 {
            None
        } else {
            let t = table(k)?;
            let mut s = t.signs.clone();
            if transpose {
                for a in 0..k {
                    for b in 0..k {
                        s[a * k + b] = t.signs[b * k + a];
                    }
                }
            }
            Some(kernels::HadKSteps::new(k, &s))
        };
        let scratch = steps.as_ref().map_or(0, |s| n + s.scratch_len());
        Ok(Plan {
            n,
            k,
            steps,
            scale: T::from_f64(1.0 / (n as f64).sqrt()),
            scratch: vec![T::default(); scratch],
        })
    }

    /// The size n.
    pub fn n(&self) -> usize {
        self.n
    }

    /// The had_K order (1 for powers of two).
    pub fn k(&self) -> usize {
        self.k
    }

    /// FWHT of each length-n/K row, then had_K across rows with the 1/sqrt(n) folded in.
    #[inline(always)]
    fn run_generic(&mut self, x: &mut [T]) {
        let m = self.n / self.k;
        match &self.steps {
            None => kernels::fwht_scaled(x, self.scale),
            Some(steps) => {
                for row in x.chunks_exact_mut(m) {
                    kernels::fwht_scaled(row, T::from_f64(1.0));
                }
                let (out, rest) = self.scratch.split_at_mut(self.n);
                steps.apply(x, out, m, self.scale, rest);
                x.copy_from_slice(out);
            }
        }
    }

    /// Apply the planned transform to one vector of length n, in place.
    pub fn apply(&mut self, x: &mut [T]) -> Result<(), QuantError> {
        if x.len() != self.n {
            return Err(QuantError::Invalid(format!(
                "Hadamard planned for n = {} applied to a vector of length {}",
                self.n,
                x.len()
            )));
        }
        T::run(self, x);
        Ok(())
    }

    /// Apply the planned transform to each length-n row of `x` (a batch, row-major).
    pub fn apply_rows(&mut self, x: &mut [T]) -> Result<(), QuantError> {
        if self.n == 0 || x.len() % self.n != 0 {
            return Err(QuantError::Invalid(format!(
                "a batch of {} values is not a whole number of length-{} vectors",
                x.len(),
                self.n
            )));
        }
        for row in x.chunks_exact_mut(self.n) {
            T::run(self, row);
        }
        Ok(())
    }
}

/// Apply the normalized Hadamard `H_n = (had_K ⊗ H_{n/K}) / sqrt(n)` (or its transpose) in place
/// to `x` of length n, choosing K as QuaRot's `get_hadK` does.
pub fn apply(x: &mut [f64], transpose: bool) -> Result<(), QuantError> {
    Plan::new(x.len(), transpose)?.apply(x)
}

/// [`apply`] in f32.
pub fn apply_f32(x: &mut [f32], transpose: bool) -> Result<(), QuantError> {
    Plan::new(x.len(), transpose)?.apply(x)
}

/// Apply `H_n` (or `H_nᵀ`) to every length-`n` row of the row-major batch `x`.
pub fn apply_rows_f32(x: &mut [f32], n: usize, transpose: bool) -> Result<(), QuantError> {
    Plan::new(n, transpose)?.apply_rows(x)
}

/// Apply `H_n` (or `H_nᵀ`) to every length-`n` row of the row-major batch `x`, in f64.
pub fn apply_rows(x: &mut [f64], n: usize, transpose: bool) -> Result<(), QuantError> {
    Plan::new(n, transpose)?.apply_rows(x)
}

/// The dense normalized matrix `H_n` (or `H_nᵀ`), row-major `[n, n]`, built from the Kronecker
/// formula directly (not through the transform). For tests and small n (refuses n > 8192).
pub fn dense(n: usize, transpose: bool) -> Result<Vec<f64>, QuantError> {
    if n > 8192 {
        return Err(QuantError::Unsupported(format!(
            "dense Hadamard of size {n} (> 8192) is too large"
        )));
    }
    let (k, m) = (get_hadk(n)?, n / get_hadk(n)?);
    let had = if k == 1 {
        vec![1i8]
    } else {
        table(k)?.signs.clone()
    };
    let s = 1.0 / (n as f64).sqrt();
    let mut h = vec![0f64; n * n];
    for i in 0..n {
        for j in 0..n {
            let (a, b, c, d) = (i / m, i % m, j / m, j % m);
            let hk = f64::from(had[a * k + c]);
            let hm = if (b & d).count_ones() % 2 == 0 {
                1.0
            } else {
                -1.0
            };
            let (r, cc) = if transpose { (j, i) } else { (i, j) };
            h[r * n + cc] = hk * hm * s;
        }
    }
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_hadamard() {
        for &k in &HADK_ORDERS {
            let t = table(k).expect("table");
            for a in 0..k {
                for b in 0..k {
                    let dot: i32 = (0..k)
                        .map(|c| i32::from(t.signs[a * k + c]) * i32::from(t.signs[b * k + c]))
                        .sum();
                    assert_eq!(
                        dot,
                        if a == b { k as i32 } else { 0 },
                        "had{k} rows {a},{b}"
                    );
                }
            }
        }
    }

    #[test]
    fn get_hadk_follows_quarot_order() {
        assert_eq!(get_hadk(11008).ok(), Some(172));
        assert_eq!(get_hadk(14336).ok(), Some(28));
        assert_eq!(get_hadk(13824).ok(), Some(108));
        assert_eq!(get_hadk(5120).ok(), Some(40));
        assert_eq!(get_hadk(4096).ok(), Some(1));
        assert_eq!(get_hadk(20).ok(), Some(20));
        assert_eq!(get_hadk(40).ok(), Some(40));
        assert!(get_hadk(100).is_err()); // divisible by 20, 100/20 = 5
        assert!(get_hadk(14).is_err());
        assert!(get_hadk(0).is_err());
        assert!(!supported(6));
    }

    #[test]
    fn had12_is_not_symmetric_and_transpose_matters() {
        let h = dense(12, false).expect("dense");
        assert!((0..12).any(|i| (0..12).any(|j| (h[i * 12 + j] - h[j * 12 + i]).abs() > 0.1)));
        let mut x: Vec<f64> = (0..12).map(|i| f64::from(i as u32) - 3.5).collect();
        let y0 = x.clone();
        apply(&mut x, false).expect("apply");
        apply(&mut x, true).expect("apply T");
        for (a, b) in x.iter().zip(&y0) {
            assert!((a - b).abs() < 1e-12);
        }
    }

    #[test]
    fn transform_matches_dense_small() {
        for n in [1, 2, 8, 12, 48, 40, 80, 28, 172] {
            for t in [false, true] {
                let h = dense(n, t).expect("dense");
                let x: Vec<f64> = (0..n).map(|i| ((i * 7919) % 13) as f64 - 6.0).collect();
                let mut y = x.clone();
                apply(&mut y, t).expect("apply");
                for i in 0..n {
                    let want: f64 = (0..n).map(|j| h[i * n + j] * x[j]).sum();
                    assert!((want - y[i]).abs() < 1e-9, "n={n} t={t} i={i}");
                }
            }
        }
    }
}
