//! The fast paths behind [`super::Plan`]: a radix-4 FWHT with an unrolled 8-point base, and the
//! had_K step `y = had_K · X` (X viewed as `[K, m]`) by the "four Russians" method.
//!
//! had_K step: the K input rows are cut into chunks of c rows. For each chunk, a table holds
//! every signed sum `x_b0 ± x_b1 ± … ± x_b(c−1)` (2^(c−1) entries, built by Gray-style
//! increments of `2·x_bt`); any output row's pattern over the chunk is one table entry or its
//! negation. So each output row costs K/c vector adds instead of K, plus the tables:
//! `2^(c−1)/c + K/c` adds per element instead of K (K = 172: 34 instead of 172). Columns are
//! processed in tiles of [`TILE`] so the table and the accumulators stay in L1.
//!
//! Everything here is `#[inline(always)]` and generic, so the AVX2 entry point in the parent
//! module compiles the same code with 8-wide vectors.

use super::Real;

/// Column tile width of the had_K step's general path.
pub const TILE: usize = 64;

/// Column tile width of the register-tiled path (m a multiple of it): the accumulator of one
/// output row is a `[T; W]` kept in registers while it sums its chunks' table entries.
const W: usize = 16;

/// Bytes the register-tiled path may spend on the tables of one column tile (L1/L2-resident;
/// 40–256 KiB measured the same within noise on a Zen 4).
const TABLE_BYTES: usize = 64 << 10;

/// The chunking and per-(output, chunk) table picks of one had_K (or had_Kᵀ).
#[derive(Debug, Clone)]
pub struct HadKSteps {
    k: usize,
    /// (first row, rows) of each chunk.
    chunks: Vec<(usize, usize)>,
    /// `picks[a · chunks + j]` = (table index, negate) for output row a and chunk j.
    picks: Vec<(u16, bool)>,
    max_entries: usize,
    /// Register-tiled path: chunking with full ± tables (2^c entries each, so a pick is one
    /// index and the accumulation is a pure add).
    tiled: Tiled,
}

#[derive(Debug, Clone)]
struct Tiled {
    chunks: Vec<(usize, usize)>,
    /// `picks[a · chunks + j]` = absolute entry of chunk j's table for output row a.
    picks: Vec<u32>,
    entries: usize,
}

impl Tiled {
    fn new(k: usize, signs: &[i8]) -> Self {
        let fits = |c: usize| k.div_ceil(c) * (1 << c) * W * 4 <= TABLE_BYTES;
        let cost = |c: usize| k.div_ceil(c) * (1 << c) + k * k.div_ceil(c);
        let c = (1..=8)
            .filter(|&c| fits(c))
            .min_by_key(|&c| cost(c))
            .unwrap_or(1);
        let chunks: Vec<(usize, usize)> = (0..k).step_by(c).map(|b0| (b0, c.min(k - b0))).collect();
        let mut picks = Vec::with_capacity(k * chunks.len());
        for a in 0..k {
            for (j, &(b0, len)) in chunks.iter().enumerate() {
                // bit t set ⇔ row b0+t enters with +1
                let mask: u32 = (0..len)
                    .filter(|&t| signs[a * k + b0 + t] > 0)
                    .map(|t| 1 << t)
                    .sum();
                picks.push((j << c) as u32 + mask);
            }
        }
        Tiled {
            entries: chunks.len() << c,
            chunks,
            picks,
        }
    }
}

impl HadKSteps {
    /// Plan the step for the row-major ±1 matrix `signs` (`k × k`).
    pub fn new(k: usize, signs: &[i8]) -> Self {
        // Chunk size minimizing table builds + accumulations per column.
        let cost = |c: usize| -> usize {
            let full = k / c;
            let rest = k % c;
            full * (1 << (c - 1)) + if rest > 0 { 1 << (rest - 1) } else { 0 } + k * k.div_ceil(c)
        };
        let c = (1..=8).min_by_key(|&c| cost(c)).unwrap_or(1);
        let chunks: Vec<(usize, usize)> = (0..k).step_by(c).map(|b0| (b0, c.min(k - b0))).collect();
        let mut picks = Vec::with_capacity(k * chunks.len());
        for a in 0..k {
            for &(b0, len) in &chunks {
                let row = &signs[a * k..(a + 1) * k];
                let neg = row[b0] < 0;
                let mut mask = 0u16;
                for t in 1..len {
                    // bit t−1 set ⇔ row b0+t enters with the same sign as row b0
                    if (row[b0 + t] < 0) == neg {
                        mask |= 1 << (t - 1);
                    }
                }
                picks.push((mask, neg));
            }
        }
        HadKSteps {
            k,
            chunks,
            picks,
            max_entries: 1 << (c - 1),
            tiled: Tiled::new(k, signs),
        }
    }

    /// Scratch floats [`HadKSteps::apply`] needs.
    pub fn scratch_len(&self) -> usize {
        ((self.max_entries + self.k) * TILE).max(self.tiled.entries * W)
    }

    /// The register-tiled had_K step for m a multiple of [`W`]. Written with fixed-size arrays
    /// and index loops, which LLVM turns into straight vector code.
    #[inline(always)]
    fn apply_tiled<T: Real>(&self, x: &[T], out: &mut [T], m: usize, scale: T, tables: &mut [T]) {
        let t = &self.tiled;
        let nchunks = t.chunks.len();
        let c_entries = t.entries / nchunks.max(1);
        let two = T::from_f64(2.0);
        for t0 in (0..m).step_by(W) {
            for (j, &(b0, len)) in t.chunks.iter().enumerate() {
                let base = j * c_entries * W;
                // Entry 0: every row enters with −1; entry e = entry (e without its lowest set
                // bit t) + 2·x_(b0+t).
                let mut e0 = [T::default(); W];
                let mut rows = [[T::default(); W]; 8];
                for (r, row) in rows.iter_mut().enumerate().take(len) {
                    let v = load(x, (b0 + r) * m + t0);
                    for w in 0..W {
                        e0[w] = e0[w] - v[w];
                        row[w] = two * v[w];
                    }
                }
                store(tables, base, &e0);
                for e in 1..1usize << len {
                    let bit = e.trailing_zeros() as usize;
                    let prev = load(tables, base + (e & (e - 1)) * W);
                    let mut cur = [T::default(); W];
                    for w in 0..W {
                        cur[w] = prev[w] + rows[bit][w];
                    }
                    store(tables, base + e * W, &cur);
                }
            }
            for a in 0..self.k {
                let mut acc = [T::default(); W];
                for &p in &t.picks[a * nchunks..(a + 1) * nchunks] {
                    let e = load(tables, p as usize * W);
                    for w in 0..W {
                        acc[w] = acc[w] + e[w];
                    }
                }
                for v in acc.iter_mut() {
                    *v = *v * scale;
                }
                store(out, a * m + t0, &acc);
            }
        }
    }

    /// `out[a, :] = scale · Σ_b had[a][b] · x[b, :]` for `x`, `out` of shape `[k, m]`.
    #[inline(always)]
    pub fn apply<T: Real>(&self, x: &[T], out: &mut [T], m: usize, scale: T, scratch: &mut [T]) {
        if m % W == 0 {
            return self.apply_tiled(x, out, m, scale, scratch);
        }
        let (table, acc) = scratch.split_at_mut(self.max_entries * TILE);
        let nchunks = self.chunks.len();
        let two = T::from_f64(2.0);
        let mut t0 = 0;
        while t0 < m {
            let tw = TILE.min(m - t0);
            for (j, &(b0, len)) in self.chunks.iter().enumerate() {
                // table[0] = x_b0 − Σ_{t≥1} x_bt; table[mask | bit t] = table[mask] + 2·x_b(t+1).
                let first = &mut table[..tw];
                first.copy_from_slice(&x[b0 * m + t0..b0 * m + t0 + tw]);
                for t in 1..len {
                    let src = &x[(b0 + t) * m + t0..(b0 + t) * m + t0 + tw];
                    first.iter_mut().zip(src).for_each(|(o, &v)| *o = *o - v);
                }
                for t in 0..len - 1 {
                    let src = &x[(b0 + 1 + t) * m + t0..(b0 + 1 + t) * m + t0 + tw];
                    let half = 1usize << t;
                    let (lo, hi) = table.split_at_mut(half * TILE);
                    for e in 0..half {
                        let (s, d) = (
                            &lo[e * TILE..e * TILE + tw],
                            &mut hi[e * TILE..e * TILE + tw],
                        );
                        d.iter_mut()
                            .zip(s.iter().zip(src))
                            .for_each(|(o, (&p, &v))| *o = p + two * v);
                    }
                }
                for a in 0..self.k {
                    let (idx, neg) = self.picks[a * nchunks + j];
                    let src = &table[idx as usize * TILE..idx as usize * TILE + tw];
                    let dst = &mut acc[a * TILE..a * TILE + tw];
                    match (j == 0, neg) {
                        (true, false) => dst.copy_from_slice(src),
                        (true, true) => dst
                            .iter_mut()
                            .zip(src)
                            .for_each(|(o, &v)| *o = T::default() - v),
                        (false, false) => dst.iter_mut().zip(src).for_each(|(o, &v)| *o = *o + v),
                        (false, true) => dst.iter_mut().zip(src).for_each(|(o, &v)| *o = *o - v),
                    }
                }
            }
            for a in 0..self.k {
                let dst = &mut out[a * m + t0..a * m + t0 + tw];
                dst.iter_mut()
                    .zip(&acc[a * TILE..a * TILE + tw])
                    .for_each(|(o, &v)| *o = v * scale);
            }
            t0 += tw;
        }
    }
}

#[inline(always)]
fn load<T: Real>(s: &[T], at: usize) -> [T; W] {
    let mut a = [T::default(); W];
    a.copy_from_slice(&s[at..at + W]);
    a
}

#[inline(always)]
fn store<T: Real>(d: &mut [T], at: usize, a: &[T; W]) {
    d[at..at + W].copy_from_slice(a);
}

/// 8-point unnormalized Sylvester butterfly.
#[inline(always)]
fn fwht8<T: Real>(v: &mut [T]) {
    let [a0, a1, a2, a3, a4, a5, a6, a7] = [v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]];
    let (b0, b1, b2, b3, b4, b5, b6, b7) = (
        a0 + a1,
        a0 - a1,
        a2 + a3,
        a2 - a3,
        a4 + a5,
        a4 - a5,
        a6 + a7,
        a6 - a7,
    );
    let (c0, c1, c2, c3, c4, c5, c6, c7) = (
        b0 + b2,
        b1 + b3,
        b0 - b2,
        b1 - b3,
        b4 + b6,
        b5 + b7,
        b4 - b6,
        b5 - b7,
    );
    v[0] = c0 + c4;
    v[1] = c1 + c5;
    v[2] = c2 + c6;
    v[3] = c3 + c7;
    v[4] = c0 - c4;
    v[5] = c1 - c5;
    v[6] = c2 - c6;
    v[7] = c3 - c7;
}

/// In-place unnormalized Sylvester FWHT of a power-of-two slice, then `· scale`.
#[inline(always)]
pub fn fwht_scaled<T: Real>(x: &mut [T], scale: T) {
    let n = x.len();
    let mut h = 1;
    if n >= 8 {
        for i in (0..n).step_by(8) {
            fwht8(&mut x[i..i + 8]);
        }
        h = 8;
    }
    // Radix-4: two stages (h, 2h) per pass over contiguous quarter blocks.
    while 4 * h <= n {
        for blk in x.chunks_exact_mut(4 * h) {
            let (ab, cd) = blk.split_at_mut(2 * h);
            let (a, b) = ab.split_at_mut(h);
            let (c, d) = cd.split_at_mut(h);
            for i in 0..h {
                let (p, q, r, s) = (a[i] + b[i], a[i] - b[i], c[i] + d[i], c[i] - d[i]);
                a[i] = p + r;
                b[i] = q + s;
                c[i] = p - r;
                d[i] = q - s;
            }
        }
        h *= 4;
    }
    while h < n {
        for blk in x.chunks_exact_mut(2 * h) {
            let (lo, hi) = blk.split_at_mut(h);
            for (a, b) in lo.iter_mut().zip(hi.iter_mut()) {
                let (u, v) = (*a, *b);
                *a = u + v;
                *b = u - v;
            }
        }
        h *= 2;
    }
    if scale != T::from_f64(1.0) {
        for v in x.iter_mut() {
            *v = *v * scale;
        }
    }
}
