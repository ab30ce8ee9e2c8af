//! Non-uniform quantization with one look-up table per output row (SqueezeLLM, Kim et al. 2023,
//! <https://arxiv.org/abs/2306.07629>, code <https://github.com/SqueezeAILab/SqueezeLLM>
//! `squeezellm/quant.py`, `quant_cuda_kernel.cu`; FORMATS.md §3).
//!
//! Maths: `W[n, j] = lut[n, q[n, j]]`, no scale and no zero.
//!
//! Quantizer: weighted k-means in 1-D per row (SqueezeLLM's sensitivity-weighted k-means, with
//! [`QuantOptions::weight_importance`] as the weights, e.g. the Fisher diagonal; uniform weights
//! otherwise). The row is sorted once; each Lloyd step then costs O(2^bits · log k) with prefix
//! sums (clusters of sorted 1-D data are contiguous). Initialization: weighted quantiles.
//! Codes pick the nearest stored (f16) table entry, so the stored table is what they fit.
//!
//! qkc storage layout:
//! - `qweight`: U32 `[n, ceil(k·bits/32)]`, per-row bit stream along K ([`crate::pack`]); this is
//!   SqueezeLLM's `[K·bits/32, N]` GPTQ-style packing with rows kept contiguous.
//! - `lut`: F16 `[n, 2^bits]`, ascending (the quantizer writes F16; F32, SqueezeLLM's own
//!   dtype, is accepted on load).
//!
//! Bits per weight: `bits + 16·2^bits/k`.

use half::f16;

use crate::error::QuantError;
use crate::pack::{self, words_per_row};
use crate::tensor::{Part, PartDtype, QuantOptions, QuantTensor};

/// Part names this scheme stores.
pub const PARTS: &[&str] = &["qweight", "lut"];

/// Lloyd iterations per row.
const ITERS: usize = 30;

/// Storage bits per weight of the layout above.
pub fn bits_estimate(bits: u8, k: usize) -> f64 {
    (words_per_row(k, bits) * 32 + 16 * (1usize << bits)) as f64 / k as f64
}

/// Weighted 1-D k-means of `x` (weights `wt`) into `m` sorted centroids.
pub fn kmeans_1d(x: &[f32], wt: Option<&[f32]>, m: usize) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..x.len()).collect();
    idx.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let xs: Vec<f64> = idx.iter().map(|&i| f64::from(x[i])).collect();
    let mut ws: Vec<f64> = idx
        .iter()
        .map(|&i| wt.map_or(1.0, |w| f64::from(w[i])))
        .collect();
    if ws.iter().sum::<f64>() <= 0.0 {
        ws.fill(1.0);
    }
    // Prefix sums of w and w·x.
    let (mut p0, mut p1) = (vec![0f64; xs.len() + 1], vec![0f64; xs.len() + 1]);
    for i in 0..xs.len() {
        p0[i + 1] = p0[i] + ws[i];
        p1[i + 1] = p1[i] + ws[i] * xs[i];
    }
    let total = p0[xs.len()];
    // Weighted quantile initialization.
    let mut c: Vec<f64> = (0..m)
        .map(|i| {
            let target = (i as f64 + 0.5) / m as f64 * total;
            let at = p0
                .partition_point(|&v| v < target)
                .saturating_sub(1)
                .min(xs.len() - 1);
            xs[at]
        })
        .collect();
    let mut bounds = vec![0usize; m + 1];
    for _ in 0..ITERS {
        c.sort_by(f64::total_cmp);
        bounds[0] = 0;
        bounds[m] = xs.len();
        for i in 1..m {
            let t = 0.5 * (c[i - 1] + c[i]);
            bounds[i] = xs.partition_point(|&v| v < t);
        }
        let mut moved = false;
        for i in 0..m {
            let (a, b) = (bounds[i], bounds[i + 1]);
            let w = p0[b] - p0[a];
            if b > a && w > 0.0 {
                let nc = (p1[b] - p1[a]) / w;
                moved |= nc != c[i];
                c[i] = nc;
            }
        }
        if !moved {
            break;
        }
    }
    c.sort_by(f64::total_cmp);
    c
}

/// Index of the entry of ascending `table` nearest to `v`.
#[inline]
pub fn nearest_sorted(table: &[f64], v: f64) -> usize {
    let i = table.partition_point(|&t| t < v);
    if i == 0 {
        0
    } else if i == table.len() || v - table[i - 1] <= table[i] - v {
        i - 1
    } else {
        i
    }
}

/// Per-row weighted k-means, rows in parallel.
pub fn quantize(
    bits: u8,
    w: &[f32],
    n: usize,
    k: usize,
    opts: &QuantOptions<'_>,
) -> Result<QuantTensor, QuantError> {
    let m = 1usize << bits;
    let wpr = words_per_row(k, bits);
    // One output row: wpr words, then m table entries as f16 bits.
    let row_len = wpr + m;
    let mut out = vec![0u32; n * row_len];
    let progress = opts.progress_tracker(n);
    crate::par::for_each_row_chunk(&mut out, row_len, |first, chunk| {
        let mut codes = vec![0u8; k];
        for (r, buf) in chunk.chunks_exact_mut(row_len).enumerate() {
            let i = first + r;
            let row = &w[i * k..(i + 1) * k];
            let wt = opts.weight_importance.map(|v| &v[i * k..(i + 1) * k]);
            let c = kmeans_1d(row, wt, m);
            let mut table: Vec<f64> = c.iter().map(|&v| f16::from_f64(v).to_f64()).collect();
            table.sort_by(f64::total_cmp);
            for (code, &v) in codes.iter_mut().zip(row) {
                *code = nearest_sorted(&table, f64::from(v)) as u8;
            }
            let (words, tab) = buf.split_at_mut(wpr);
            pack::pack_row(&codes, bits, words);
            for (t, &v) in tab.iter_mut().zip(&table) {
                *t = u32::from(f16::from_f64(v).to_bits());
            }
        }
        progress.add(chunk.len() / row_len);
        Ok(())
    })?;
    let mut qweight = Vec::with_capacity(n * wpr);
    let mut lut = Vec::with_capacity(n * m);
    for buf in out.chunks_exact(row_len) {
        qweight.extend_from_slice(&buf[..wpr]);
        lut.extend(buf[wpr..].iter().map(|&b| f16::from_bits(b as u16)));
    }
    let mut q = QuantTensor::new(crate::Scheme::Lut { bits }, n, k);
    q.parts
        .insert("qweight".into(), Part::from_u32(vec![n, wpr], &qweight));
    q.parts
        .insert("lut".into(), Part::from_f16(vec![n, m], &lut));
    Ok(q)
}

/// Exact reference dequantization to row-major `[n, k]` f32.
pub fn dequant(bits: u8, q: &QuantTensor) -> Result<Vec<f32>, QuantError> {
    let (n, k) = (q.n, q.k);
    let (m, wpr) = (1usize << bits, words_per_row(k, bits));
    let qweight = q
        .expect_part("qweight", PartDtype::U32, &[n, wpr])?
        .to_u32();
    let lut = q
        .expect_part_of("lut", &[PartDtype::F16, PartDtype::F32], &[n, m])?
        .to_f32();
    let mut out = vec![0f32; n * k];
    for i in 0..n {
        let row = &qweight[i * wpr..(i + 1) * wpr];
        for j in 0..k {
            out[i * k + j] = lut[i * m + pack::get(row, bits, j) as usize];
        }
    }
    Ok(out)
}
