//! Additive codebooks (AQLM, Egiazarian et al. 2024, <https://arxiv.org/abs/2401.06118>, code
//! <https://github.com/Vahe1994/AQLM> `inference_lib/src/aqlm/inference.py`, `utils.py`;
//! FORMATS.md §6). `aqlm:1x16` is one codebook of 2^16 entries, `aqlm:2x8` two of 2^8, each
//! entry an `og × ig` block (1 × 8 by default).
//!
//! Maths: `W[o·og + a, i·ig + b] = scales[o] · Σ_c codebooks[c, codes[o, i, c], a, b]`.
//!
//! qkc storage layout (AQLM's own tensors, so an AQLM checkpoint loads as is):
//! - `codes`: `[n/og, k/ig, C]`, I8 when bits ≤ 8 else I16, **stored signed**: the code is the
//!   stored value mod 2^bits (AQLM's `unpack_int_data`).
//! - `codebooks`: F16 `[C, 2^bits, og, ig]`.
//! - `scales`: F16 `[n/og, 1, 1, 1]`.
//!
//! Quantizer (a simple fit, no beam search): the scale of each output group is the RMS of its
//! rows; the normalized `og·ig` vectors are fitted codebook by codebook on the residual
//! (residual k-means). A codebook of ≤ 2^8 entries is Lloyd's k-means run on a sample of
//! `16·2^bits` vectors (8 steps), then one assignment of every vector and one mean update. A
//! larger codebook (1x16) is built cheaply as the sum of two half-width codebooks fitted the same
//! way (entry `a·2^b2 + b = A[a] + B[b]`, found by greedy residual search), then each entry that
//! has vectors moves to their mean, which makes it a plain unstructured 2^16 table. So no
//! 65536-way search ever runs; the error is at most that of the two half codebooks.
//!
//! Bits per weight: `C·code_bits/(og·ig) + 16·C·2^bits·og·ig/(n·k) + 16/(og·k)` with code_bits the
//! stored width (8 or 16).

use half::f16;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::error::QuantError;
use crate::kmeans;
use crate::scheme::Codebook;
use crate::tensor::{Part, PartDtype, QuantOptions, QuantTensor};

/// Part names this scheme stores.
pub const PARTS: &[&str] = &["codes", "codebooks", "scales"];

/// Codebooks above this many bits are fitted as two half-width codebooks.
const DIRECT_MAX_BITS: u8 = 8;
/// Lloyd steps on the sample.
const ITERS: usize = 8;

fn stored_bits(c: Codebook) -> usize {
    if c.bits <= 8 {
        8
    } else {
        16
    }
}

/// Storage bits per weight of the layout above.
pub fn bits_estimate(c: Codebook, n: usize, k: usize) -> f64 {
    let (cb, og, ig) = (
        c.codebooks as usize,
        c.out_group as usize,
        c.in_group as usize,
    );
    let codes = (n / og) * (k / ig) * cb * stored_bits(c);
    let books = 16 * cb * (1usize << c.bits) * og * ig;
    let scales = 16 * (n / og);
    (codes + books + scales) as f64 / (n * k) as f64
}

/// Fit a codebook of `2^bits` entries to the `d`-dim vectors `x`; returns (entries, codes).
fn fit_codebook(
    x: &[f32],
    d: usize,
    bits: u8,
    rng: &mut ChaCha8Rng,
) -> Result<(Vec<f32>, Vec<u32>), QuantError> {
    let m = 1usize << bits;
    if bits <= DIRECT_MAX_BITS {
        let s = kmeans::sample(x, d, 16 * m, rng);
        let mut c = kmeans::fit(&s, d, m, ITERS, rng)?;
        let codes = kmeans::assign(x, d, &c)?;
        kmeans::update(x, d, &codes, &mut c, None);
        return Ok((c, codes));
    }
    let b1 = bits.div_ceil(2);
    let b2 = bits - b1;
    let (a, ca) = fit_codebook(x, d, b1, rng)?;
    let mut resid = x.to_vec();
    for (v, &i) in resid.chunks_exact_mut(d).zip(&ca) {
        v.iter_mut()
            .zip(&a[i as usize * d..])
            .for_each(|(r, &t)| *r -= t);
    }
    let (b, cb) = fit_codebook(&resid, d, b2, rng)?;
    let m2 = 1usize << b2;
    let mut c = vec![0f32; m * d];
    for (e, v) in c.chunks_exact_mut(d).enumerate() {
        let (i, j) = (e / m2, e % m2);
        for t in 0..d {
            v[t] = a[i * d + t] + b[j * d + t];
        }
    }
    let codes: Vec<u32> = ca
        .iter()
        .zip(&cb)
        .map(|(&i, &j)| i * m2 as u32 + j)
        .collect();
    kmeans::update(x, d, &codes, &mut c, None);
    Ok((c, codes))
}

/// Residual k-means fit (see the module doc), deterministic for `opts.seed`.
pub fn quantize(
    c: Codebook,
    w: &[f32],
    n: usize,
    k: usize,
    opts: &QuantOptions<'_>,
) -> Result<QuantTensor, QuantError> {
    let (ncb, og, ig) = (
        c.codebooks as usize,
        c.out_group as usize,
        c.in_group as usize,
    );
    let (no, ni, d, m) = (n / og, k / ig, og * ig, 1usize << c.bits);
    let progress = opts.progress_tracker(n);
    let mut rng =
        ChaCha8Rng::seed_from_u64(opts.seed ^ 0xA91A_0000 ^ (u64::from(c.bits) << 8) ^ ncb as u64);
    // Per output group RMS scale, stored in f16; vectors are normalized by the stored value.
    let scales: Vec<f16> = (0..no)
        .map(|o| {
            let rows = &w[o * og * k..(o + 1) * og * k];
            let rms = (rows
                .iter()
                .map(|&v| f64::from(v) * f64::from(v))
                .sum::<f64>()
                / rows.len() as f64)
                .sqrt();
            let s = f16::from_f64(rms);
            if s.to_f64() > 0.0 && s.is_finite() {
                s
            } else {
                f16::ONE
            }
        })
        .collect();
    let mut x = vec![0f32; no * ni * d];
    for o in 0..no {
        let inv = 1.0 / scales[o].to_f32();
        for i in 0..ni {
            let v = &mut x[(o * ni + i) * d..(o * ni + i + 1) * d];
            for a in 0..og {
                for b in 0..ig {
                    v[a * ig + b] = w[(o * og + a) * k + i * ig + b] * inv;
                }
            }
        }
    }
    let mut codes = vec![0u32; no * ni * ncb];
    let mut books: Vec<f16> = Vec::with_capacity(ncb * m * d);
    for cbi in 0..ncb {
        let (entries, assign) = fit_codebook(&x, d, c.bits, &mut rng)?;
        let entries: Vec<f16> = entries.iter().map(|&v| f16::from_f32(v)).collect();
        for (vi, (v, &a)) in x.chunks_exact_mut(d).zip(&assign).enumerate() {
            codes[vi * ncb + cbi] = a;
            v.iter_mut()
                .zip(&entries[a as usize * d..])
                .for_each(|(r, t)| *r -= t.to_f32());
        }
        books.extend_from_slice(&entries);
        progress.add(n / ncb);
    }
    let mut q = QuantTensor::new(crate::Scheme::Codebook(c), n, k);
    let shape = vec![no, ni, ncb];
    let part = if c.bits <= 8 {
        Part::from_i8(
            shape,
            &codes.iter().map(|&v| v as u8 as i8).collect::<Vec<_>>(),
        )
    } else {
        Part::from_i16(
            shape,
            &codes.iter().map(|&v| v as u16 as i16).collect::<Vec<_>>(),
        )
    };
    q.parts.insert("codes".into(), part);
    q.parts.insert(
        "codebooks".into(),
        Part::from_f16(vec![ncb, m, og, ig], &books),
    );
    q.parts
        .insert("scales".into(), Part::from_f16(vec![no, 1, 1, 1], &scales));
    Ok(q)
}

/// Exact reference dequantization to row-major `[n, k]` f32.
pub fn dequant(c: Codebook, q: &QuantTensor) -> Result<Vec<f32>, QuantError> {
    let (n, k) = (q.n, q.k);
    let (ncb, og, ig) = (
        c.codebooks as usize,
        c.out_group as usize,
        c.in_group as usize,
    );
    let (no, ni, m) = (n / og, k / ig, 1usize << c.bits);
    let dtype = if c.bits <= 8 {
        PartDtype::I8
    } else {
        PartDtype::I16
    };
    let codes_p = q.expect_part("codes", dtype, &[no, ni, ncb])?;
    let mask = (m - 1) as u32;
    let codes: Vec<u32> = if c.bits <= 8 {
        codes_p.bytes.iter().map(|&b| u32::from(b) & mask).collect()
    } else {
        codes_p
            .to_u16_bits()
            .into_iter()
            .map(|v| u32::from(v) & mask)
            .collect()
    };
    let books = q
        .expect_part("codebooks", PartDtype::F16, &[ncb, m, og, ig])?
        .to_f64();
    let scales = q
        .expect_part("scales", PartDtype::F16, &[no, 1, 1, 1])?
        .to_f64();
    let mut out = vec![0f32; n * k];
    for o in 0..no {
        for i in 0..ni {
            for a in 0..og {
                for b in 0..ig {
                    let mut acc = 0f64;
                    for cb in 0..ncb {
                        let e = codes[(o * ni + i) * ncb + cb] as usize;
                        acc += books[((cb * m + e) * og + a) * ig + b];
                    }
                    out[(o * og + a) * k + i * ig + b] = (scales[o] * acc) as f32;
                }
            }
        }
    }
    Ok(out)
}
