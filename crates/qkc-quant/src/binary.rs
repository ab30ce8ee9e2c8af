//! Binary, ternary and BiLLM residual-binary weights.
//!
//! - `bin:gG`: `w = α·b`, `b ∈ {−1, +1}`, α per row and group = mean |w| (the L2-optimal scale
//!   for fixed signs; XNOR-Net, FBI-LLM <https://arxiv.org/abs/2407.07093>).
//! - `tern:gG`: `w = α·t`, `t ∈ {−1, 0, +1}`; per group, the support is the top-c magnitudes with
//!   c maximizing `(Σ_top-c |w|)² / c` (the exact L2-optimal ternary fit; TWN's threshold is its
//!   approximation), α their mean (ternary LMs, BitNet b1.58 <https://arxiv.org/abs/2402.17764>
//!   store the same `{−1, 0, 1}·α`).
//! - `billm:gG`: BiLLM (Huang et al. 2024, <https://arxiv.org/abs/2402.04291>, code
//!   <https://github.com/Aaronhuang-778/BiLLM>): per group of G columns, the salient columns (by
//!   `Σ_i w_ij² · h_j`, h = [`QuantOptions::input_importance`] or 1) get residual binarization
//!   `w ≈ α1·b1 + α2·b2`, the others `w ≈ α·b1`. The salient count per group is searched over
//!   {0, 1, 2, 4, …, G/8} for the lowest squared error. BiLLM's bell-shaped split of the
//!   non-salient weights (a further bitmap) is not reproduced.
//!
//! qkc storage layout (bit rows are LSB-first streams along K, [`crate::pack`]):
//! - bin: `signs` U32 `[n, ceil(k/32)]` (bit set = +1), `scales` F16 `[n, groups]`.
//! - tern: `qweight` U32 `[n, ceil(2k/32)]` 2-bit codes, `t = code − 1` (code 3 is invalid),
//!   `scales` F16 `[n, groups]`.
//! - billm: `mask` U32 `[ceil(k/32)]` salient columns; `signs` U32 `[n, ceil(k/32)]` (b1);
//!   `res_signs` U32 `[n, ceil(s/32)]` (b2 of the s salient columns, in column order);
//!   `scales` F16 `[n, groups, 3]` = (α, α1, α2).
//!
//! Bits per weight: bin `1 + 16/G`; tern `2 + 16/G`; billm `1 + s/k + 48/G + 1/n` (at most
//! `1 + 1/8 + 48/G + 1/n`; the estimate uses that bound).

use half::f16;

use crate::error::QuantError;
use crate::pack::{self, words_per_row};
use crate::scheme::{Binary, BinaryKind};
use crate::tensor::{Part, PartDtype, QuantOptions, QuantTensor};

/// Part names these schemes may store.
pub const PARTS: &[&str] = &["signs", "scales", "qweight", "mask", "res_signs"];

/// Storage bits per weight of the layouts above (billm: upper bound).
pub fn bits_estimate(b: Binary, n: usize, k: usize) -> f64 {
    let g = b.group.len(k) as f64;
    let kf = k as f64;
    match b.kind {
        BinaryKind::Binary => (words_per_row(k, 1) * 32) as f64 / kf + 16.0 / g,
        BinaryKind::Ternary => (words_per_row(k, 2) * 32) as f64 / kf + 16.0 / g,
        BinaryKind::Residual => {
            let mask = (words_per_row(k, 1) * 32) as f64 / (n * k) as f64;
            (words_per_row(k, 1) * 32) as f64 / kf
                + (words_per_row(k / 8, 1) * 32) as f64 / kf
                + 48.0 / g
                + mask
        }
    }
}

fn mean_abs(it: impl Iterator<Item = f32>) -> f32 {
    let (s, c) = it.fold((0f64, 0usize), |(s, c), v| (s + f64::from(v.abs()), c + 1));
    if c == 0 {
        0.0
    } else {
        (s / c as f64) as f32
    }
}

fn f16_scale(v: f32) -> f16 {
    f16::from_f32(v)
}

/// Optimal ternary scale of a group (see the module doc).
fn ternary_scale(x: &[f32]) -> f32 {
    let mut a: Vec<f32> = x.iter().map(|v| v.abs()).collect();
    a.sort_by(|p, q| q.total_cmp(p));
    let (mut best, mut best_c, mut sum) = (0f64, 1usize, 0f64);
    for (c, &v) in a.iter().enumerate() {
        sum += f64::from(v);
        let score = sum * sum / (c + 1) as f64;
        if score > best {
            (best, best_c) = (score, c + 1);
        }
    }
    (a[..best_c].iter().map(|&v| f64::from(v)).sum::<f64>() / best_c as f64) as f32
}

/// (α, α1, α2) of one row's group and its squared error, for salient flags `sal`.
fn billm_group(x: &[f32], sal: &[bool]) -> ([f16; 3], f64) {
    let a = f16_scale(mean_abs(x.iter().zip(sal).filter(|p| !*p.1).map(|p| *p.0)));
    let a1 = f16_scale(mean_abs(x.iter().zip(sal).filter(|p| *p.1).map(|p| *p.0)));
    let r1 = |v: f32| v - a1.to_f32() * if v >= 0.0 { 1.0 } else { -1.0 };
    let a2 = f16_scale(mean_abs(
        x.iter().zip(sal).filter(|p| *p.1).map(|p| r1(*p.0)),
    ));
    let mut err = 0f64;
    for (&v, &s) in x.iter().zip(sal) {
        let b1 = if v >= 0.0 { 1.0 } else { -1.0 };
        let e = if s {
            let r = r1(v);
            r - a2.to_f32() * if r >= 0.0 { 1.0 } else { -1.0 }
        } else {
            v - a.to_f32() * b1
        };
        err += f64::from(e) * f64::from(e);
    }
    ([a, a1, a2], err)
}

/// Salient-column mask of one column group `[c0, c0+g)`, chosen by the error search.
fn billm_mask(w: &[f32], n: usize, k: usize, c0: usize, g: usize, h: Option<&[f32]>) -> Vec<bool> {
    let score: Vec<f64> = (c0..c0 + g)
        .map(|j| {
            (0..n).map(|i| f64::from(w[i * k + j]).powi(2)).sum::<f64>()
                * h.map_or(1.0, |h| f64::from(h[j]))
        })
        .collect();
    let mut order: Vec<usize> = (0..g).collect();
    order.sort_by(|&a, &b| score[b].total_cmp(&score[a]).then(a.cmp(&b)));
    let mut best = (f64::INFINITY, vec![false; g]);
    let mut count = 0;
    while count <= g / 8 {
        let mut sal = vec![false; g];
        order[..count].iter().for_each(|&j| sal[j] = true);
        let err: f64 = (0..n)
            .map(|i| billm_group(&w[i * k + c0..i * k + c0 + g], &sal).1)
            .sum();
        if err < best.0 {
            best = (err, sal);
        }
        count = if count == 0 { 1 } else { count * 2 };
    }
    best.1
}

/// Quantize into bin / tern / billm, rows in parallel.
pub fn quantize(
    b: Binary,
    w: &[f32],
    n: usize,
    k: usize,
    opts: &QuantOptions<'_>,
) -> Result<QuantTensor, QuantError> {
    let (g, groups) = (b.group.len(k), b.group.count(k));
    let mask: Vec<bool> = if b.kind == BinaryKind::Residual {
        let h = opts.input_importance;
        crate::par::map_chunks(groups, 1, |r| Ok(billm_mask(w, n, k, r.start * g, g, h)))?.concat()
    } else {
        vec![false; k]
    };
    let salient: Vec<usize> = (0..k).filter(|&j| mask[j]).collect();
    let (wb, wr, nsc) = match b.kind {
        BinaryKind::Ternary => (words_per_row(k, 2), 0, 1),
        BinaryKind::Binary => (words_per_row(k, 1), 0, 1),
        BinaryKind::Residual => (words_per_row(k, 1), words_per_row(salient.len(), 1), 3),
    };
    let row_len = wb + wr + nsc * groups;
    let mut out = vec![0u32; n * row_len];
    let progress = opts.progress_tracker(n);
    crate::par::for_each_row_chunk(&mut out, row_len, |first, chunk| {
        for (r, buf) in chunk.chunks_exact_mut(row_len).enumerate() {
            let row = &w[(first + r) * k..(first + r + 1) * k];
            let (bits, rest) = buf.split_at_mut(wb);
            let (res, sc) = rest.split_at_mut(wr);
            let mut tern = vec![0u8; if b.kind == BinaryKind::Ternary { k } else { 0 }];
            let mut res_bits = Vec::with_capacity(salient.len());
            for gi in 0..groups {
                let x = &row[gi * g..(gi + 1) * g];
                let scales: Vec<f16> = match b.kind {
                    BinaryKind::Binary => vec![f16_scale(mean_abs(x.iter().copied()))],
                    BinaryKind::Ternary => {
                        let a = f16_scale(ternary_scale(x));
                        let half = 0.5 * a.to_f32();
                        for (j, &v) in x.iter().enumerate() {
                            tern[gi * g + j] = if v.abs() > half {
                                if v > 0.0 {
                                    2
                                } else {
                                    0
                                }
                            } else {
                                1
                            };
                        }
                        vec![a]
                    }
                    BinaryKind::Residual => {
                        let (s, _) = billm_group(x, &mask[gi * g..(gi + 1) * g]);
                        for (&v, _) in x.iter().zip(&mask[gi * g..]).filter(|p| *p.1) {
                            let r1 = v - s[1].to_f32() * if v >= 0.0 { 1.0 } else { -1.0 };
                            res_bits.push(r1 >= 0.0);
                        }
                        s.to_vec()
                    }
                };
                for (t, s) in scales.iter().enumerate() {
                    sc[gi * nsc + t] = u32::from(s.to_bits());
                }
            }
            if b.kind == BinaryKind::Ternary {
                pack::pack_row(&tern, 2, bits);
            } else {
                pack::pack_bits(row.iter().map(|&v| v >= 0.0), bits);
                pack::pack_bits(res_bits, res);
            }
        }
        progress.add(chunk.len() / row_len);
        Ok(())
    })?;
    let mut q = QuantTensor::new(crate::Scheme::Binary(b), n, k);
    let col = |a: usize, len: usize| -> Vec<u32> {
        out.chunks_exact(row_len)
            .flat_map(|r| r[a..a + len].iter().copied())
            .collect()
    };
    let scales: Vec<f16> = col(wb + wr, nsc * groups)
        .into_iter()
        .map(|v| f16::from_bits(v as u16))
        .collect();
    let sshape = if nsc == 1 {
        vec![n, groups]
    } else {
        vec![n, groups, nsc]
    };
    q.parts
        .insert("scales".into(), Part::from_f16(sshape, &scales));
    match b.kind {
        BinaryKind::Ternary => {
            q.parts
                .insert("qweight".into(), Part::from_u32(vec![n, wb], &col(0, wb)));
        }
        BinaryKind::Binary => {
            q.parts
                .insert("signs".into(), Part::from_u32(vec![n, wb], &col(0, wb)));
        }
        BinaryKind::Residual => {
            q.parts
                .insert("signs".into(), Part::from_u32(vec![n, wb], &col(0, wb)));
            q.parts.insert(
                "res_signs".into(),
                Part::from_u32(vec![n, wr], &col(wb, wr)),
            );
            let mut m = vec![0u32; words_per_row(k, 1)];
            pack::pack_bits(mask.iter().copied(), &mut m);
            q.parts
                .insert("mask".into(), Part::from_u32(vec![m.len()], &m));
        }
    }
    Ok(q)
}

/// Exact reference dequantization to row-major `[n, k]` f32.
pub fn dequant(b: Binary, q: &QuantTensor) -> Result<Vec<f32>, QuantError> {
    let (n, k) = (q.n, q.k);
    let (g, groups) = (b.group.len(k), b.group.count(k));
    let wb = words_per_row(k, 1);
    let sign = |row: &[u32], j: usize| if pack::bit(row, j) { 1.0f64 } else { -1.0 };
    let mut out = vec![0f32; n * k];
    match b.kind {
        BinaryKind::Binary => {
            let signs = q.expect_part("signs", PartDtype::U32, &[n, wb])?.to_u32();
            let scales = q
                .expect_part("scales", PartDtype::F16, &[n, groups])?
                .to_f64();
            for i in 0..n {
                for j in 0..k {
                    out[i * k + j] =
                        (scales[i * groups + j / g] * sign(&signs[i * wb..], j)) as f32;
                }
            }
        }
        BinaryKind::Ternary => {
            let w2 = words_per_row(k, 2);
            let qw = q.expect_part("qweight", PartDtype::U32, &[n, w2])?.to_u32();
            let scales = q
                .expect_part("scales", PartDtype::F16, &[n, groups])?
                .to_f64();
            for i in 0..n {
                for j in 0..k {
                    let c = pack::get(&qw[i * w2..], 2, j);
                    if c == 3 {
                        return Err(QuantError::BadTensor {
                            tensor: "qweight".into(),
                            reason: format!(
                                "ternary code 3 at [{i}, {j}] (valid codes are 0, 1, 2)"
                            ),
                        });
                    }
                    out[i * k + j] = (scales[i * groups + j / g] * (f64::from(c) - 1.0)) as f32;
                }
            }
        }
        BinaryKind::Residual => {
            let mask = q.expect_part("mask", PartDtype::U32, &[wb])?.to_u32();
            let s = (0..k).filter(|&j| pack::bit(&mask, j)).count();
            let wr = words_per_row(s, 1);
            let signs = q.expect_part("signs", PartDtype::U32, &[n, wb])?.to_u32();
            let res = q
                .expect_part("res_signs", PartDtype::U32, &[n, wr])?
                .to_u32();
            let scales = q
                .expect_part("scales", PartDtype::F16, &[n, groups, 3])?
                .to_f64();
            for i in 0..n {
                let mut t = 0;
                for j in 0..k {
                    let sc = &scales[(i * groups + j / g) * 3..][..3];
                    let b1 = sign(&signs[i * wb..], j);
                    out[i * k + j] = if pack::bit(&mask, j) {
                        t += 1;
                        (sc[1] * b1 + sc[2] * sign(&res[i * wr..], t - 1)) as f32
                    } else {
                        (sc[0] * b1) as f32
                    };
                }
            }
        }
    }
    Ok(out)
}
