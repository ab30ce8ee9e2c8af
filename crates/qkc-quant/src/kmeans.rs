//! Vector k-means (Lloyd) on small dimensions, for codebook fits (AQLM-style schemes).
//!
//! Assignment is the expensive step; it runs in parallel over fixed chunks of vectors and uses
//! `argmin_c ‖c‖² − 2·x·c`. Results do not depend on the thread count.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::error::QuantError;

/// Vectors per parallel chunk.
const CHUNK: usize = 2048;

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn assign_chunk<const D: usize>(x: &[f32], c: &[f32], half_norm: &[f32], out: &mut [u32]) {
    for (v, o) in x.chunks_exact(D).zip(out.iter_mut()) {
        let Ok(v): Result<&[f32; D], _> = v.try_into() else {
            continue;
        };
        let (mut best, mut bi) = (f32::INFINITY, 0u32);
        for (ci, (cv, &hn)) in c.chunks_exact(D).zip(half_norm).enumerate() {
            let mut s = 0f32;
            for t in 0..D {
                s += v[t] * cv[t];
            }
            let score = hn - s;
            if score < best {
                (best, bi) = (score, ci as u32);
            }
        }
        *o = bi;
    }
}

fn assign_chunk_dyn(x: &[f32], d: usize, c: &[f32], half_norm: &[f32], out: &mut [u32]) {
    for (v, o) in x.chunks_exact(d).zip(out.iter_mut()) {
        let (mut best, mut bi) = (f32::INFINITY, 0u32);
        for (ci, (cv, &hn)) in c.chunks_exact(d).zip(half_norm).enumerate() {
            let score = hn - dot(v, cv);
            if score < best {
                (best, bi) = (score, ci as u32);
            }
        }
        *o = bi;
    }
}

/// The nearest centroid (squared distance) of each vector of `x` (`[nvec, d]`) among `c` (`[m, d]`).
pub fn assign(x: &[f32], d: usize, c: &[f32]) -> Result<Vec<u32>, QuantError> {
    let nvec = x.len() / d;
    let half_norm: Vec<f32> = c.chunks_exact(d).map(|v| 0.5 * dot(v, v)).collect();
    let parts = crate::par::map_chunks(nvec, CHUNK, |r| {
        let xs = &x[r.start * d..r.end * d];
        let mut out = vec![0u32; r.len()];
        match d {
            8 => assign_chunk::<8>(xs, c, &half_norm, &mut out),
            16 => assign_chunk::<16>(xs, c, &half_norm, &mut out),
            4 => assign_chunk::<4>(xs, c, &half_norm, &mut out),
            _ => assign_chunk_dyn(xs, d, c, &half_norm, &mut out),
        }
        Ok(out)
    })?;
    Ok(parts.concat())
}

/// Move each centroid to the mean of its assigned vectors; centroids with none are re-seeded
/// from a random vector when `rng` is given, else kept. Returns how many were empty.
pub fn update(
    x: &[f32],
    d: usize,
    codes: &[u32],
    c: &mut [f32],
    rng: Option<&mut ChaCha8Rng>,
) -> usize {
    let m = c.len() / d;
    let mut sum = vec![0f64; m * d];
    let mut cnt = vec![0usize; m];
    for (v, &a) in x.chunks_exact(d).zip(codes) {
        let a = a as usize;
        cnt[a] += 1;
        sum[a * d..(a + 1) * d]
            .iter_mut()
            .zip(v)
            .for_each(|(s, &t)| *s += f64::from(t));
    }
    let nvec = x.len() / d;
    let mut empty = 0;
    let mut rng = rng;
    for ci in 0..m {
        let dst = &mut c[ci * d..(ci + 1) * d];
        if cnt[ci] > 0 {
            let inv = 1.0 / cnt[ci] as f64;
            dst.iter_mut()
                .zip(&sum[ci * d..(ci + 1) * d])
                .for_each(|(o, &s)| *o = (s * inv) as f32);
        } else {
            empty += 1;
            if let (Some(r), true) = (rng.as_deref_mut(), nvec > 0) {
                let src = r.gen_range(0..nvec);
                dst.copy_from_slice(&x[src * d..(src + 1) * d]);
            }
        }
    }
    empty
}

/// Lloyd's k-means with `m` centroids: initialized from random vectors of `x`, `iters` steps.
pub fn fit(
    x: &[f32],
    d: usize,
    m: usize,
    iters: usize,
    rng: &mut ChaCha8Rng,
) -> Result<Vec<f32>, QuantError> {
    let nvec = x.len() / d;
    let mut c = vec![0f32; m * d];
    if nvec == 0 {
        return Ok(c);
    }
    if nvec <= m {
        // Every vector gets its own centroid; the rest repeat random vectors.
        for ci in 0..m {
            let src = if ci < nvec {
                ci
            } else {
                rng.gen_range(0..nvec)
            };
            c[ci * d..(ci + 1) * d].copy_from_slice(&x[src * d..(src + 1) * d]);
        }
        return Ok(c);
    }
    // Distinct initial vectors: a partial Fisher–Yates shuffle of the indices.
    let mut idx: Vec<usize> = (0..nvec).collect();
    for ci in 0..m {
        let j = rng.gen_range(ci..nvec);
        idx.swap(ci, j);
        c[ci * d..(ci + 1) * d].copy_from_slice(&x[idx[ci] * d..(idx[ci] + 1) * d]);
    }
    for _ in 0..iters {
        let codes = assign(x, d, &c)?;
        update(x, d, &codes, &mut c, Some(rng));
    }
    Ok(c)
}

/// `count` random vectors of `x` (with replacement), deterministic for `rng`.
pub fn sample(x: &[f32], d: usize, count: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let nvec = x.len() / d;
    if count >= nvec {
        return x.to_vec();
    }
    let mut out = Vec::with_capacity(count * d);
    for _ in 0..count {
        let i = rng.gen_range(0..nvec);
        out.extend_from_slice(&x[i * d..(i + 1) * d]);
    }
    out
}
