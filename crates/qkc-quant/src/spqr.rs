//! SpQR-style small groups with second-level quantized statistics (Dettmers et al. 2023,
//! <https://arxiv.org/abs/2306.03078>, code <https://github.com/Vahe1994/SpQR>
//! `spqr_engine.py`, `quant_groups.py`; FORMATS.md §4).
//!
//! Maths, as SpQR's reference `dequantize_compressed`: every row r and group g of `G` consecutive
//! weights along K has a scale and a zero (in code units, not rounded) that are themselves
//! quantized to `stat_bits` codes, asymmetrically, over blocks of 16 consecutive rows
//! (SpQR's `qq_groupsize = 16`) with fp16 second-level scale and zero:
//!
//! ```text
//! s = scale_scale · (s_code − scale_zero)      z = zero_scale · (z_code − zero_zero)
//! w = s · (q − z)                              q ∈ [0, 2^bits)
//! ```
//!
//! Outliers are not part of this tensor: pair it with a [`crate::Csr`] (dense-and-sparse, see
//! [`crate::outliers`]); their columns are always in the original order.
//!
//! **`:perm`** (SpQR's act-order `in_perm`): the codes and statistics are stored in a permuted
//! column order and the part `in_perm` says which original column each stored column is:
//! `W[:, in_perm[i]] = W_stored[:, i]`, i.e. the layer computes `W_stored · x̃` with
//! `x̃[i] = x[in_perm[i]]` (the kernels read x through `in_perm` in their prologue; no gather
//! kernel). [`dequant`] returns the weight in the original column order. The quantizer orders
//! the columns by decreasing importance (`input_importance`, SpQR's `diag(H)`; the column energy
//! of W when absent), ties by index, as act-order does.
//!
//! qkc storage layout:
//! - `qweight`: U32 `[n, ceil(k·bits/32)]`, per-row bit stream of the codes along K ([`crate::pack`]).
//! - `stats`: U32 `[n, ceil(2·groups·stat_bits/32)]`, per-row bit stream: code `2g` is the scale
//!   code of group g, code `2g+1` its zero code (SpQR keeps the pair together in each tile row).
//! - `stats2`: F16 `[ceil(n/16), groups, 4]` = (scale_scale, scale_zero, zero_scale, zero_zero)
//!   of each 16-row block and group.
//! - `in_perm`: I32 `[k]`, `:perm` only: a permutation of `0..k`, the original column of each
//!   stored column (the other parts are in stored order).
//!
//! Bits per weight ≈ `bits + 2·stat_bits/G + 64/(16·G)` = 3.625 for `spqr3:g16`, `+ 32/n` with
//! `:perm`.

use half::f16;

use crate::error::QuantError;
use crate::pack::{self, words_per_row};
use crate::scheme::Spqr;
use crate::tensor::{Part, PartDtype, QuantOptions, QuantTensor};

/// Part names this scheme stores.
pub const PARTS: &[&str] = &["qweight", "stats", "stats2", "in_perm"];

/// Rows per second-level block (SpQR's `qq_groupsize`).
pub const ROW_BLOCK: usize = 16;

/// Storage bits per weight of the layout above.
pub fn bits_estimate(s: Spqr, n: usize, k: usize) -> f64 {
    let groups = k.div_ceil(s.group as usize);
    let per_row = (words_per_row(k, s.bits) + words_per_row(2 * groups, s.stat_bits)) * 32;
    let stats2 = n.div_ceil(ROW_BLOCK) * groups * 64;
    let perm = if s.perm { 32 * k } else { 0 };
    (n * per_row + stats2 + perm) as f64 / (n * k) as f64
}

/// `:perm`'s column order: decreasing importance (`input_importance`, else the column energy
/// of `w`), ties by index. Entry i is the original column stored at position i.
fn column_order(w: &[f32], n: usize, k: usize, opts: &QuantOptions<'_>) -> Vec<usize> {
    let score: Vec<f64> = match opts.input_importance {
        Some(h) => h.iter().map(|&v| f64::from(v)).collect(),
        None => (0..k)
            .map(|j| {
                (0..n)
                    .map(|i| f64::from(w[i * k + j]) * f64::from(w[i * k + j]))
                    .sum()
            })
            .collect(),
    };
    let mut order: Vec<usize> = (0..k).collect();
    order.sort_by(|&a, &b| score[b].total_cmp(&score[a]).then(a.cmp(&b)));
    order
}

/// The stored `in_perm` of a `:perm` tensor, checked to be a permutation of `0..k` (errors
/// name the part), or `None` without `:perm` (then the part must be absent).
pub fn in_perm(s: Spqr, q: &QuantTensor) -> Result<Option<Vec<usize>>, QuantError> {
    let k = q.k;
    if !s.perm {
        if q.parts.contains_key("in_perm") {
            return Err(QuantError::BadTensor {
                tensor: "in_perm".into(),
                reason: format!(
                    "is only a part of `:perm` SpQR schemes, not of `{}`",
                    crate::Scheme::Spqr(s)
                ),
            });
        }
        return Ok(None);
    }
    let p = q.expect_part("in_perm", PartDtype::I32, &[k])?.to_f64();
    let mut seen = vec![false; k];
    let mut out = Vec::with_capacity(k);
    for (i, v) in p.into_iter().enumerate() {
        let j = v as i64;
        if j < 0 || j as usize >= k || seen[j as usize] {
            return Err(QuantError::BadTensor {
                tensor: "in_perm".into(),
                reason: format!(
                    "is not a permutation of 0..{k}: entry {i} is {j} (out of range or repeated)"
                ),
            });
        }
        seen[j as usize] = true;
        out.push(j as usize);
    }
    Ok(Some(out))
}

/// Asymmetric min-max quantization of `vals` to `bits` codes with an unrounded f16 zero:
/// returns (f16 scale, f16 zero, codes). Dequant: `scale · (code − zero)`.
fn quantize_stats(vals: &[f64], bits: u8) -> (f16, f16, Vec<u8>) {
    let maxq = f64::from((1u32 << bits) - 1);
    let lo = vals.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = vals.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let sc = if hi > lo {
        (hi - lo) / maxq
    } else if lo != 0.0 {
        lo.abs()
    } else {
        1.0
    };
    let sc16 = f16::from_f64(sc);
    let sc16 = if sc16.to_f64() > 0.0 {
        sc16
    } else {
        f16::MIN_POSITIVE_SUBNORMAL
    };
    let z16 = f16::from_f64(-lo / sc16.to_f64());
    let (s, z) = (sc16.to_f64(), z16.to_f64());
    let codes = vals
        .iter()
        .map(|&v| (v / s + z).round().clamp(0.0, maxq) as u8)
        .collect();
    (sc16, z16, codes)
}

/// Best code for `w` under `s·(q − z)`.
fn weight_code(w: f64, s: f64, z: f64, maxq: u32) -> u8 {
    if s > 1e-30 {
        return (w / s + z).round().clamp(0.0, f64::from(maxq)) as u8;
    }
    (0..=maxq)
        .min_by(|&a, &b| {
            (w - s * (f64::from(a) - z))
                .abs()
                .total_cmp(&(w - s * (f64::from(b) - z)).abs())
        })
        .unwrap_or(0) as u8
}

struct Block {
    qweight: Vec<u32>,
    stats: Vec<u32>,
    stats2: Vec<f16>,
}

fn quantize_block(s: Spqr, w: &[f32], k: usize, rows: std::ops::Range<usize>) -> Block {
    let g = s.group as usize;
    let groups = k / g;
    let maxq = (1u32 << s.bits) - 1;
    let nr = rows.len();
    let (wq, ws) = (
        words_per_row(k, s.bits),
        words_per_row(2 * groups, s.stat_bits),
    );
    let mut codes = vec![0u8; nr * k];
    let mut stat_codes = vec![0u8; nr * 2 * groups];
    let mut stats2 = Vec::with_capacity(groups * 4);
    let mut sv = vec![0f64; nr];
    let mut zv = vec![0f64; nr];
    for gi in 0..groups {
        // First level: per-row min-max scale and unrounded zero.
        for (r, i) in rows.clone().enumerate() {
            let x = &w[i * k + gi * g..i * k + (gi + 1) * g];
            let mut lo = f64::from(x.iter().copied().fold(f32::INFINITY, f32::min));
            let mut hi = f64::from(x.iter().copied().fold(f32::NEG_INFINITY, f32::max));
            if hi <= lo {
                (lo, hi) = (lo.min(0.0), hi.max(0.0));
                if hi <= lo {
                    hi = lo + 1e-8;
                }
            }
            sv[r] = (hi - lo) / f64::from(maxq);
            zv[r] = -lo / sv[r];
        }
        // Second level over the block's rows.
        let (ss, sz, sc) = quantize_stats(&sv, s.stat_bits);
        let (zs, zz, zc) = quantize_stats(&zv, s.stat_bits);
        stats2.extend_from_slice(&[ss, sz, zs, zz]);
        for (r, i) in rows.clone().enumerate() {
            stat_codes[r * 2 * groups + 2 * gi] = sc[r];
            stat_codes[r * 2 * groups + 2 * gi + 1] = zc[r];
            let sh = ss.to_f64() * (f64::from(sc[r]) - sz.to_f64());
            let zh = zs.to_f64() * (f64::from(zc[r]) - zz.to_f64());
            for j in gi * g..(gi + 1) * g {
                codes[r * k + j] = weight_code(f64::from(w[i * k + j]), sh, zh, maxq);
            }
        }
    }
    let mut qweight = vec![0u32; nr * wq];
    let mut stats = vec![0u32; nr * ws];
    for r in 0..nr {
        pack::pack_row(
            &codes[r * k..(r + 1) * k],
            s.bits,
            &mut qweight[r * wq..(r + 1) * wq],
        );
        pack::pack_row(
            &stat_codes[r * 2 * groups..(r + 1) * 2 * groups],
            s.stat_bits,
            &mut stats[r * ws..(r + 1) * ws],
        );
    }
    Block {
        qweight,
        stats,
        stats2,
    }
}

/// Min-max RTN with quantized statistics, 16-row blocks in parallel.
pub fn quantize(
    s: Spqr,
    w: &[f32],
    n: usize,
    k: usize,
    opts: &QuantOptions<'_>,
) -> Result<QuantTensor, QuantError> {
    let groups = k / s.group as usize;
    let order = s.perm.then(|| column_order(w, n, k, opts));
    // `:perm`: quantize the weight in stored order, W_stored[:, i] = W[:, order[i]]
    let permuted: Option<Vec<f32>> = order
        .as_ref()
        .map(|o| (0..n * k).map(|t| w[(t / k) * k + o[t % k]]).collect());
    let w = permuted.as_deref().unwrap_or(w);
    let progress = opts.progress_tracker(n);
    let blocks = crate::par::map_chunks(n, ROW_BLOCK, |rows| {
        let nr = rows.len();
        let b = quantize_block(s, w, k, rows);
        progress.add(nr);
        Ok(b)
    })?;
    let (wq, ws) = (
        words_per_row(k, s.bits),
        words_per_row(2 * groups, s.stat_bits),
    );
    let mut q = QuantTensor::new(crate::Scheme::Spqr(s), n, k);
    let qweight: Vec<u32> = blocks
        .iter()
        .flat_map(|b| b.qweight.iter().copied())
        .collect();
    let stats: Vec<u32> = blocks
        .iter()
        .flat_map(|b| b.stats.iter().copied())
        .collect();
    let stats2: Vec<f16> = blocks
        .iter()
        .flat_map(|b| b.stats2.iter().copied())
        .collect();
    q.parts
        .insert("qweight".into(), Part::from_u32(vec![n, wq], &qweight));
    q.parts
        .insert("stats".into(), Part::from_u32(vec![n, ws], &stats));
    q.parts.insert(
        "stats2".into(),
        Part::from_f16(vec![n.div_ceil(ROW_BLOCK), groups, 4], &stats2),
    );
    if let Some(o) = order {
        let p: Vec<i32> = o.iter().map(|&j| j as i32).collect();
        q.parts
            .insert("in_perm".into(), Part::from_i32(vec![k], &p));
    }
    Ok(q)
}

/// Exact reference dequantization to row-major `[n, k]` f32, in the original column order
/// (`:perm`: `out[:, in_perm[i]]` = stored column i).
pub fn dequant(s: Spqr, q: &QuantTensor) -> Result<Vec<f32>, QuantError> {
    let (n, k) = (q.n, q.k);
    let g = s.group as usize;
    let groups = k / g;
    let (wq, ws) = (
        words_per_row(k, s.bits),
        words_per_row(2 * groups, s.stat_bits),
    );
    let qweight = q.expect_part("qweight", PartDtype::U32, &[n, wq])?.to_u32();
    let stats = q.expect_part("stats", PartDtype::U32, &[n, ws])?.to_u32();
    let stats2 = q
        .expect_part(
            "stats2",
            PartDtype::F16,
            &[n.div_ceil(ROW_BLOCK), groups, 4],
        )?
        .to_f64();
    let perm = in_perm(s, q)?;
    let mut out = vec![0f32; n * k];
    for i in 0..n {
        let (qrow, srow) = (&qweight[i * wq..(i + 1) * wq], &stats[i * ws..(i + 1) * ws]);
        for gi in 0..groups {
            let st = &stats2[((i / ROW_BLOCK) * groups + gi) * 4..][..4];
            let sc = f64::from(pack::get(srow, s.stat_bits, 2 * gi));
            let zc = f64::from(pack::get(srow, s.stat_bits, 2 * gi + 1));
            let sh = st[0] * (sc - st[1]);
            let zh = st[2] * (zc - st[3]);
            for j in gi * g..(gi + 1) * g {
                let col = perm.as_ref().map_or(j, |p| p[j]);
                out[i * k + col] = (sh * (f64::from(pack::get(qrow, s.bits, j)) - zh)) as f32;
            }
        }
    }
    Ok(out)
}
