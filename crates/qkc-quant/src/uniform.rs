//! Uniform integer quantization: GPTQ / AWQ / RTN style, 2/3/4/8 bits, groups, sym/asym,
//! act-order.
//!
//! Maths (GPTQ, <https://github.com/IST-DASLab/gptq> `quant.py`):
//! `w = scale[g] · (q − zero[g])` with `q ∈ [0, 2^bits − 1]`. Symmetric: `zero = 2^(bits−1)`
//! (implicit), `scale = 2·absmax / (2^bits − 1)`. Asymmetric: `scale = (max − min)/(2^bits − 1)`,
//! `zero = round(−min/scale)`. With [`QuantOptions::mse_clip`] the range is shrunk by the factor
//! in {1, 0.95, …, 0.25} that minimizes the group's squared error (GPTQ's `find_params(mse=True)`
//! grid search).
//!
//! qkc storage layout (parts of a [`QuantTensor`]):
//! - `qweight`: U32 `[n, words]`. Each row's codes form one little-endian bit stream along K
//!   ([`crate::pack`]), so 3-bit codes straddle words exactly as GPTQ packs them (GPTQ packs the
//!   same stream column-wise; qkc keeps rows contiguous). `:awq` permutes codes inside each word
//!   with AWQ's `[0, 2, 4, 6, 1, 3, 5, 7]` order (generalized per [`crate::pack`]); AWQ itself
//!   packs along N, which an importer transposes.
//! - `scales`: F16 `[n, groups]`.
//! - `zeros`: F16 `[n, groups]`, asymmetric only, integer-valued, in code units.
//! - `g_idx`: I32 `[k]`, act-order only: the group of input column `j` (GPTQ `desc_act`).
//!
//! The `:min` form (GGUF Q4_1, Q5_1, Q4_K, Q5_K, Q6_K; see [`crate::gguf`]) is
//! `w = scale[g]·q + min[g]` with a float offset instead of an integer zero point:
//! - `scales`: F32 `[n, groups]` (GGUF K-quant scales are `d·sc` products that f16 cannot hold);
//! - `mins`: F32 `[n, groups]` (no `zeros`).
//!
//! Dequant computes `s·q + m` in f32 (a multiply, then an add, no fused multiply-add). For every
//! GGUF format `s·q` is exact in f32 (at most 11 + 7 + 6 significant bits), so this is one
//! rounding of the exact value, bit-identical to ggml. The RTN quantizer takes `min` = the group
//! minimum and `scale = (max − min)/(2^bits − 1)`, codes `round((w − min)/scale)` clamped;
//! `:min` combines with act-order (`g_idx` decides group membership, as for zero points).
//!
//! Bits per weight: `bits + 16·groups/k` (sym), `bits + 32·groups/k` (asym) or
//! `bits + 64·groups/k` (`:min`), `+ 32/n` with `g_idx`.

use half::f16;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

use crate::error::QuantError;
use crate::pack::{self, words_per_row_packed};
use crate::scheme::{Group, UniformInt};
use crate::tensor::{Part, PartDtype, QuantOptions, QuantTensor};

pub use crate::pack::{pack_row, words_per_row};

/// Part names this scheme may store.
pub const PARTS: &[&str] = &["qweight", "scales", "zeros", "mins", "g_idx"];

/// `len` Gaussian samples with standard deviation `std`, deterministic for `seed`.
pub fn gaussian(len: usize, std: f32, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let normal = Normal::new(0.0f32, std.max(f32::MIN_POSITIVE)).unwrap_or_else(|_| unreachable!());
    (0..len).map(|_| normal.sample(&mut rng)).collect()
}

/// Unpack code `j` of a row packed by [`pack_row`] (natural order).
#[inline]
pub fn unpack_code(row: &[u32], bits: u8, j: usize) -> u8 {
    pack::get(row, bits, j) as u8
}

/// Storage bits per weight of the layout above.
pub fn bits_estimate(u: UniformInt, n: usize, k: usize) -> f64 {
    let groups = u.group.count(k) as f64;
    let mut bits = (words_per_row_packed(k, u.bits, u.packing) * 32) as f64 / k as f64;
    bits += groups / k as f64
        * if u.min {
            64.0
        } else if u.sym {
            16.0
        } else {
            32.0
        };
    if u.act_order {
        bits += 32.0 / n as f64;
    }
    bits
}

/// The group of each input column: act-order sorts columns by decreasing importance
/// (`input_importance`, GPTQ's `diag(H)`; column energy of W when absent) and groups them in
/// that order, so `g_idx[k] = invperm[k] / g` as GPTQ stores it.
fn group_index(u: UniformInt, w: &[f32], n: usize, k: usize, opts: &QuantOptions<'_>) -> Vec<i32> {
    let g = u.group.len(k);
    if !u.act_order {
        return (0..k).map(|j| (j / g) as i32).collect();
    }
    let score: Vec<f32> = match opts.input_importance {
        Some(h) => h.to_vec(),
        None => (0..k)
            .map(|j| (0..n).map(|i| w[i * k + j] * w[i * k + j]).sum::<f32>())
            .collect(),
    };
    let mut order: Vec<usize> = (0..k).collect();
    order.sort_by(|&a, &b| score[b].total_cmp(&score[a]).then(a.cmp(&b)));
    let mut gi = vec![0i32; k];
    for (rank, &j) in order.iter().enumerate() {
        gi[j] = (rank / g) as i32;
    }
    gi
}

/// (f16 scale, zero) for one group with value range [lo, hi], shrunk by `p`.
fn params(u: UniformInt, lo: f32, hi: f32, p: f32) -> (f16, f32) {
    let maxq = ((1u32 << u.bits) - 1) as f32;
    let (s, z) = if u.sym {
        let amax = lo.abs().max(hi.abs()) * p;
        (2.0 * amax / maxq, ((maxq + 1.0) / 2.0).floor())
    } else {
        let (mn, mx) = (lo.min(0.0) * p, hi.max(0.0) * p);
        let s = (mx - mn) / maxq;
        (s, if s > 0.0 { (-mn / s).round() } else { 0.0 })
    };
    // Quantize against the stored f16 scale, so dequant is exact.
    let s16 = f16::from_f32(s);
    (if s16.to_f32() > 0.0 { s16 } else { f16::ONE }, z)
}

#[inline]
fn code(v: f32, s: f32, z: f32, maxq: f32) -> f32 {
    ((v / s).round() + z).clamp(0.0, maxq)
}

/// `:min` form: (f32 scale, f32 min) for one group with value range [lo, hi], shrunk by `p`.
fn min_params(lo: f32, hi: f32, p: f32, maxq: f32) -> (f32, f32) {
    let (mn, mx) = (lo * p, hi * p);
    let s = (mx - mn) / maxq;
    (if s > 0.0 && s.is_finite() { s } else { 0.0 }, mn)
}

/// `:min` form: the code of `v` for scale `s` and offset `m`.
#[inline]
fn min_code(v: f32, s: f32, m: f32, maxq: f32) -> f32 {
    if s > 0.0 {
        ((v - m) / s).round().clamp(0.0, maxq)
    } else {
        0.0
    }
}

/// `:min` form dequant of one code: `s·q + m` in f32 (multiply, then add).
#[inline]
pub fn min_value(s: f32, q: u32, m: f32) -> f32 {
    (s * q as f32) + m
}

/// Round-to-nearest quantization of row-major `w` (`[n, k]`), rows in parallel.
pub fn quantize(
    u: UniformInt,
    w: &[f32],
    n: usize,
    k: usize,
    opts: &QuantOptions<'_>,
) -> Result<QuantTensor, QuantError> {
    let groups = u.group.count(k);
    let maxq = ((1u32 << u.bits) - 1) as f32;
    let g_idx = group_index(u, w, n, k, opts);
    let members: Vec<Vec<usize>> = {
        let mut m = vec![Vec::new(); groups];
        for (j, &g) in g_idx.iter().enumerate() {
            m[g as usize].push(j);
        }
        m
    };
    let wpr = words_per_row_packed(k, u.bits, u.packing);
    // One output row = wpr words + groups scales + groups zeros.
    let row_len = wpr + 2 * groups;
    let mut out = vec![0u32; n * row_len];
    let progress = opts.progress_tracker(n);
    crate::par::for_each_row_chunk(&mut out, row_len, |first, chunk| {
        let mut codes = vec![0u8; k];
        for (r, rowbuf) in chunk.chunks_exact_mut(row_len).enumerate() {
            let i = first + r;
            let row = &w[i * k..(i + 1) * k];
            let (words, stats) = rowbuf.split_at_mut(wpr);
            for (gi, cols) in members.iter().enumerate() {
                let lo = cols.iter().map(|&j| row[j]).fold(f32::INFINITY, f32::min);
                let hi = cols
                    .iter()
                    .map(|&j| row[j])
                    .fold(f32::NEG_INFINITY, f32::max);
                if u.min {
                    let err = |(s, m): (f32, f32)| -> f32 {
                        cols.iter()
                            .map(|&j| {
                                let c = min_code(row[j], s, m, maxq) as u32;
                                (row[j] - min_value(s, c, m)).powi(2)
                            })
                            .sum()
                    };
                    let mut best = min_params(lo, hi, 1.0, maxq);
                    if opts.mse_clip {
                        let mut best_err = err(best);
                        for step in 1..16 {
                            let cand = min_params(lo, hi, 1.0 - 0.05 * step as f32, maxq);
                            let e = err(cand);
                            if e < best_err {
                                (best, best_err) = (cand, e);
                            }
                        }
                    }
                    let (s, m) = best;
                    for &j in cols {
                        codes[j] = min_code(row[j], s, m, maxq) as u8;
                    }
                    stats[gi] = s.to_bits();
                    stats[groups + gi] = m.to_bits();
                    continue;
                }
                let mut best = params(u, lo, hi, 1.0);
                if opts.mse_clip {
                    let err = |(s16, z): (f16, f32)| -> f32 {
                        let s = s16.to_f32();
                        cols.iter()
                            .map(|&j| (row[j] - s * (code(row[j], s, z, maxq) - z)).powi(2))
                            .sum()
                    };
                    let mut best_err = err(best);
                    for step in 1..16 {
                        let cand = params(u, lo, hi, 1.0 - 0.05 * step as f32);
                        let e = err(cand);
                        if e < best_err {
                            (best, best_err) = (cand, e);
                        }
                    }
                }
                let (s16, z) = best;
                let s = s16.to_f32();
                for &j in cols {
                    codes[j] = code(row[j], s, z, maxq) as u8;
                }
                stats[gi] = u32::from(s16.to_bits());
                stats[groups + gi] = u32::from(f16::from_f32(z).to_bits());
            }
            pack::pack_row_with(&codes, u.bits, u.packing, words);
        }
        progress.add(chunk.len() / row_len);
        Ok(())
    })?;
    let mut qweight = Vec::with_capacity(n * wpr);
    let (mut scales, mut zeros) = (
        Vec::with_capacity(n * groups),
        Vec::with_capacity(n * groups),
    );
    let mut q = QuantTensor::new(crate::Scheme::Uniform(u), n, k);
    if u.min {
        let (mut scales, mut mins) = (
            Vec::with_capacity(n * groups),
            Vec::with_capacity(n * groups),
        );
        for rowbuf in out.chunks_exact(row_len) {
            qweight.extend_from_slice(&rowbuf[..wpr]);
            scales.extend(rowbuf[wpr..wpr + groups].iter().map(|&b| f32::from_bits(b)));
            mins.extend(rowbuf[wpr + groups..].iter().map(|&b| f32::from_bits(b)));
        }
        q.parts
            .insert("qweight".into(), Part::from_u32(vec![n, wpr], &qweight));
        q.parts
            .insert("scales".into(), Part::from_f32(vec![n, groups], &scales));
        q.parts
            .insert("mins".into(), Part::from_f32(vec![n, groups], &mins));
        if u.act_order {
            q.parts
                .insert("g_idx".into(), Part::from_i32(vec![k], &g_idx));
        }
        return Ok(q);
    }
    for rowbuf in out.chunks_exact(row_len) {
        qweight.extend_from_slice(&rowbuf[..wpr]);
        scales.extend(
            rowbuf[wpr..wpr + groups]
                .iter()
                .map(|&b| f16::from_bits(b as u16)),
        );
        zeros.extend(
            rowbuf[wpr + groups..]
                .iter()
                .map(|&b| f16::from_bits(b as u16)),
        );
    }
    q.parts
        .insert("qweight".into(), Part::from_u32(vec![n, wpr], &qweight));
    q.parts
        .insert("scales".into(), Part::from_f16(vec![n, groups], &scales));
    if !u.sym {
        q.parts
            .insert("zeros".into(), Part::from_f16(vec![n, groups], &zeros));
    }
    if u.act_order {
        q.parts
            .insert("g_idx".into(), Part::from_i32(vec![k], &g_idx));
    }
    Ok(q)
}

/// Exact reference dequantization to row-major `[n, k]` f32.
pub fn dequant(u: UniformInt, q: &QuantTensor) -> Result<Vec<f32>, QuantError> {
    let (n, k) = (q.n, q.k);
    if let Group::Size(g) = u.group {
        if k % g as usize != 0 {
            return Err(QuantError::Invalid(format!(
                "K = {k} is not a multiple of group size {g}"
            )));
        }
    }
    let groups = u.group.count(k);
    let wpr = words_per_row_packed(k, u.bits, u.packing);
    let qweight = q
        .expect_part("qweight", PartDtype::U32, &[n, wpr])?
        .to_u32();
    if u.min {
        if q.parts.contains_key("zeros") {
            return Err(QuantError::BadTensor {
                tensor: "zeros".into(),
                reason: format!(
                    "scheme `{}` stores `mins`, not zero points",
                    crate::Scheme::Uniform(u)
                ),
            });
        }
        let scales = q
            .expect_part("scales", PartDtype::F32, &[n, groups])?
            .to_f32();
        let mins = q
            .expect_part("mins", PartDtype::F32, &[n, groups])?
            .to_f32();
        let g_idx = dequant_group_index(u, q, groups)?;
        let pos: Vec<usize> = (0..k)
            .map(|j| pack::position(j, u.bits, u.packing))
            .collect();
        let mut out = vec![0f32; n * k];
        for i in 0..n {
            let row = &qweight[i * wpr..(i + 1) * wpr];
            for j in 0..k {
                let gi = i * groups + g_idx[j];
                out[i * k + j] = min_value(scales[gi], pack::get(row, u.bits, pos[j]), mins[gi]);
            }
        }
        return Ok(out);
    }
    if q.parts.contains_key("mins") {
        return Err(QuantError::BadTensor {
            tensor: "mins".into(),
            reason: format!(
                "is a part of `:min` schemes only, not of `{}`",
                crate::Scheme::Uniform(u)
            ),
        });
    }
    let scales = q
        .expect_part("scales", PartDtype::F16, &[n, groups])?
        .to_f64();
    let zeros = if u.sym {
        vec![f64::from(1u32 << (u.bits - 1)); n * groups]
    } else {
        q.expect_part("zeros", PartDtype::F16, &[n, groups])?
            .to_f64()
    };
    let g_idx = dequant_group_index(u, q, groups)?;
    let pos: Vec<usize> = (0..k)
        .map(|j| pack::position(j, u.bits, u.packing))
        .collect();
    let mut out = vec![0f32; n * k];
    for i in 0..n {
        let row = &qweight[i * wpr..(i + 1) * wpr];
        for j in 0..k {
            let gi = i * groups + g_idx[j];
            let c = f64::from(pack::get(row, u.bits, pos[j]));
            out[i * k + j] = (scales[gi] * (c - zeros[gi])) as f32;
        }
    }
    Ok(out)
}

/// The group of each input column for dequant: the stored `g_idx` (checked) or `j / g`.
fn dequant_group_index(
    u: UniformInt,
    q: &QuantTensor,
    groups: usize,
) -> Result<Vec<usize>, QuantError> {
    let k = q.k;
    if !u.act_order {
        let g = u.group.len(k);
        return Ok((0..k).map(|j| j / g).collect());
    }
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
        for spelling in [
            "int4:g128",
            "int4:g32:asym",
            "int3:g64",
            "int2:g32:asym",
            "int8:pc",
            "int4:g64:act",
            "int4:g32:awq",
            "int4:g32:min",
            "int8:g16:min:act",
            "int3:g64:min",
        ] {
            let s: Scheme = spelling.parse().expect("scheme");
            let Scheme::Uniform(u) = s else {
                unreachable!()
            };
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
