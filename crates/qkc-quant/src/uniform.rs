//! Uniform integer quantization: GPTQ / AWQ / RTN style, 2/3/4/8 bits, groups, sym/asym,
//! act-order.
//!
//! Maths (GPTQ, <https://github.com/IST-DASLab/gptq> `quant.py`):
//! `w = scale[g] · (q − zero[g])` with `q ∈ [0, 2^bits − 1]`. Symmetric: `zero = 2^(bits−1)`
//! (implicit), `scale = 2·absmax / (2^bits − 1)`. Asymmetric: `scale = (max − min)/(2^bits − 1)`,
//! `zero = round(−min/scale)`.
//!
//! qkc storage layout (parts of a [`QuantTensor`]):
//! - `qweight`: U32 `[n, ceil(k·bits/32)]`. Each row's codes form one little-endian bit stream
//!   along K, code `j` at bits `[j·bits, (j+1)·bits)`, so 3-bit codes straddle words exactly as
//!   GPTQ packs them (GPTQ packs the same stream column-wise; qkc keeps rows contiguous).
//! - `scales`: F16 `[n, groups]`.
//! - `zeros`: F16 `[n, groups]`, asymmetric only, in code units.
//! - `g_idx`: I32 `[k]`, act-order only: the group of input column `j`.

use half::f16;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

use crate::error::QuantError;
use crate::scheme::{Group, UniformInt};
use crate::tensor::{PartDtype, QuantTensor};

/// `len` Gaussian samples with standard deviation `std`, deterministic for `seed`.
pub fn gaussian(len: usize, std: f32, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let normal = Normal::new(0.0f32, std.max(f32::MIN_POSITIVE)).unwrap_or_else(|_| unreachable!());
    (0..len).map(|_| normal.sample(&mut rng)).collect()
}

/// Pack `codes` (each `< 2^bits`) of one row into a little-endian bit stream of u32 words.
pub fn pack_row(codes: &[u8], bits: u8, out: &mut [u32]) {
    out.fill(0);
    let bits = bits as usize;
    for (j, &c) in codes.iter().enumerate() {
        let pos = j * bits;
        let (w, o) = (pos / 32, pos % 32);
        out[w] |= u32::from(c) << o;
        if o + bits > 32 {
            out[w + 1] |= u32::from(c) >> (32 - o);
        }
    }
}

/// Unpack code `j` of a row packed by [`pack_row`].
#[inline]
pub fn unpack_code(row: &[u32], bits: u8, j: usize) -> u8 {
    let bits = bits as usize;
    let pos = j * bits;
    let (w, o) = (pos / 32, pos % 32);
    let mut v = u64::from(row[w]) >> o;
    if o + bits > 32 {
        v |= u64::from(row[w + 1]) << (32 - o);
    }
    (v & ((1u64 << bits) - 1)) as u8
}

/// Words per packed row.
pub fn words_per_row(k: usize, bits: u8) -> usize {
    (k * bits as usize).div_ceil(32)
}

/// Round-to-nearest quantization of row-major `w` (`[n, k]`).
pub fn quantize(u: UniformInt, w: &[f32], n: usize, k: usize) -> Result<QuantTensor, QuantError> {
    let g = u.group.len(k);
    let groups = u.group.count(k);
    let maxq = ((1u32 << u.bits) - 1) as f32;
    // Act-order without a Hessian: order columns by decreasing energy (the diagonal of XᵀX is
    // unknown here, so column norms of W stand in for it), then group in that order.
    let g_idx: Vec<i32> = if u.act_order {
        let mut order: Vec<usize> = (0..k).collect();
        let norm = |j: usize| (0..n).map(|i| w[i * k + j] * w[i * k + j]).sum::<f32>();
        let norms: Vec<f32> = (0..k).map(norm).collect();
        order.sort_by(|&a, &b| norms[b].total_cmp(&norms[a]).then(a.cmp(&b)));
        let mut gi = vec![0i32; k];
        for (rank, &j) in order.iter().enumerate() {
            gi[j] = (rank / g) as i32;
        }
        gi
    } else {
        (0..k).map(|j| (j / g) as i32).collect()
    };
    let wpr = words_per_row(k, u.bits);
    let mut qweight = vec![0u32; n * wpr];
    let mut scales = vec![f16::ZERO; n * groups];
    let mut zeros = vec![f16::ZERO; n * groups];
    let mut codes = vec![0u8; k];
    let mut lo = vec![f32::INFINITY; groups];
    let mut hi = vec![f32::NEG_INFINITY; groups];
    for i in 0..n {
        let row = &w[i * k..(i + 1) * k];
        lo.fill(f32::INFINITY);
        hi.fill(f32::NEG_INFINITY);
        for (j, &v) in row.iter().enumerate() {
            let gi = g_idx[j] as usize;
            lo[gi] = lo[gi].min(v);
            hi[gi] = hi[gi].max(v);
        }
        for gi in 0..groups {
            let (s, z) = if u.sym {
                let amax = lo[gi].abs().max(hi[gi].abs());
                (2.0 * amax / maxq, ((maxq + 1.0) / 2.0).floor())
            } else {
                let (mn, mx) = (lo[gi].min(0.0), hi[gi].max(0.0));
                let s = (mx - mn) / maxq;
                (s, if s > 0.0 { (-mn / s).round() } else { 0.0 })
            };
            // Store the f16 scale and quantize against the stored value, so dequant is exact.
            let s16 = f16::from_f32(if s > 0.0 { s } else { 1.0 });
            scales[i * groups + gi] = s16;
            zeros[i * groups + gi] = f16::from_f32(z);
        }
        for (j, &v) in row.iter().enumerate() {
            let gi = g_idx[j] as usize;
            let s = scales[i * groups + gi].to_f32();
            let z = zeros[i * groups + gi].to_f32();
            codes[j] = ((v / s).round() + z).clamp(0.0, maxq) as u8;
        }
        pack_row(&codes, u.bits, &mut qweight[i * wpr..(i + 1) * wpr]);
    }
    let mut q = QuantTensor { scheme: crate::Scheme::Uniform(u), n, k, parts: Default::default() };
    q.parts.insert("qweight".into(), crate::Part::from_u32(vec![n, wpr], &qweight));
    q.parts.insert("scales".into(), crate::Part::from_f16(vec![n, groups], &scales));
    if !u.sym {
        q.parts.insert("zeros".into(), crate::Part::from_f16(vec![n, groups], &zeros));
    }
    if u.act_order {
        q.parts.insert("g_idx".into(), crate::Part::from_i32(vec![k], &g_idx));
    }
    Ok(q)
}

/// Exact reference dequantization to row-major `[n, k]` f32.
pub fn dequant(u: UniformInt, q: &QuantTensor) -> Result<Vec<f32>, QuantError> {
    let (n, k) = (q.n, q.k);
    if let Group::Size(g) = u.group {
        if k % g as usize != 0 {
            return Err(QuantError::Invalid(format!("K = {k} is not a multiple of group size {g}")));
        }
    }
    let groups = u.group.count(k);
    let wpr = words_per_row(k, u.bits);
    let qweight = q.expect_part("qweight", PartDtype::U32, &[n, wpr])?.to_u32();
    let scales = q.expect_part("scales", PartDtype::F16, &[n, groups])?.to_f64();
    let zeros = if u.sym {
        vec![f64::from(1u32 << (u.bits - 1)); n * groups]
    } else {
        q.expect_part("zeros", PartDtype::F16, &[n, groups])?.to_f64()
    };
    let g = u.group.len(k);
    let g_idx: Vec<usize> = if u.act_order {
        let gi = q.expect_part("g_idx", PartDtype::I32, &[k])?.to_f64();
        let mut out = Vec::with_capacity(k);
        for (j, v) in gi.into_iter().enumerate() {
            if v < 0.0 || v as usize >= groups {
                return Err(QuantError::BadTensor {
                    tensor: "g_idx".into(),
                    reason: format!("entry {j} is {v}, outside [0, {groups})"),
                });
            }
            out.push(v as usize);
        }
        out
    } else {
        (0..k).map(|j| j / g).collect()
    };
    let mut out = vec![0f32; n * k];
    for i in 0..n {
        let row = &qweight[i * wpr..(i + 1) * wpr];
        for j in 0..k {
            let gi = i * groups + g_idx[j];
            let c = f64::from(unpack_code(row, u.bits, j));
            out[i * k + j] = (scales[gi] * (c - zeros[gi])) as f32;
        }
    }
    Ok(out)
}

/// A random permutation of `0..k` (used to synthesize act-order `g_idx` in tests).
pub fn random_permutation(k: usize, seed: u64) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut p: Vec<usize> = (0..k).collect();
    for i in (1..k).rev() {
        let j = rng.gen_range(0..=i);
        p.swap(i, j);
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Scheme;

    #[test]
    fn pack_unpack_identity_3bit_straddles() {
        let codes: Vec<u8> = (0..37).map(|i| (i * 5 % 8) as u8).collect();
        let mut words = vec![0u32; words_per_row(37, 3)];
        pack_row(&codes, 3, &mut words);
        for (j, &c) in codes.iter().enumerate() {
            assert_eq!(unpack_code(&words, 3, j), c, "code {j}");
        }
    }

    #[test]
    fn quantize_error_is_within_half_a_step() {
        for spelling in ["int4:g128", "int4:g32:asym", "int3:g64", "int2:g32:asym", "int8:pc", "int4:g64:act"] {
            let s: Scheme = spelling.parse().expect("scheme");
            let Scheme::Uniform(u) = s else { unreachable!() };
            let (n, k) = (5, 256);
            let w = gaussian(n * k, 0.1, 7);
            let q = QuantTensor::quantize(s, &w, n, k).expect("quantize");
            let d = q.dequant().expect("dequant");
            let scales = q.parts["scales"].to_f64();
            let groups = u.group.count(k);
            let gidx: Vec<usize> = match q.parts.get("g_idx") {
                Some(p) => p.to_f64().into_iter().map(|v| v as usize).collect(),
                None => (0..k).map(|j| j / u.group.len(k)).collect(),
            };
            for i in 0..n {
                for j in 0..k {
                    let s = scales[i * groups + gidx[j]];
                    let e = f64::from((w[i * k + j] - d[i * k + j]).abs());
                    // sym 4-bit clips the top of the range to 7 steps: allow one step there.
                    assert!(e <= s * 1.0 + 1e-6, "{spelling} [{i},{j}] err {e} step {s}");
                }
            }
        }
    }
}
