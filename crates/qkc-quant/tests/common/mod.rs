//! Shared helpers of the qkc-quant integration tests: data generators and an independent,
//! formula-level re-implementation of every scheme's dequant, written from the layout docs
//! (bit-by-bit stream reads, raw little-endian decoding). It shares no code with the crate's
//! decoders.
#![allow(dead_code, reason = "each test binary uses a different subset")]

use half::f16;
use qkc_quant::scheme::{BinaryKind, FixedTable, Group, Packing};
use qkc_quant::{QuantTensor, Scheme};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, StudentT};

pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// Gaussian weights, std 0.02.
pub fn gaussian(len: usize, seed: u64) -> Vec<f32> {
    let mut r = rng(seed);
    let d = Normal::new(0.0f32, 0.02).expect("normal");
    (0..len).map(|_| d.sample(&mut r)).collect()
}

/// Heavy-tailed weights: Student-t with 3 degrees of freedom, scaled by 0.02.
pub fn heavy_tailed(len: usize, seed: u64) -> Vec<f32> {
    let mut r = rng(seed);
    let d = StudentT::new(3.0f32).expect("t");
    (0..len).map(|_| 0.02 * d.sample(&mut r)).collect()
}

/// ‖w − d‖² / ‖w‖².
pub fn rel_mse(w: &[f32], d: &[f32]) -> f64 {
    let num: f64 = w.iter().zip(d).map(|(a, b)| f64::from(a - b).powi(2)).sum();
    let den: f64 = w.iter().map(|a| f64::from(*a).powi(2)).sum();
    num / den
}

// ---- raw decoding --------------------------------------------------------------------------

pub fn u32s(b: &[u8]) -> Vec<u32> {
    b.chunks(4)
        .map(|c| {
            u32::from(c[0]) | u32::from(c[1]) << 8 | u32::from(c[2]) << 16 | u32::from(c[3]) << 24
        })
        .collect()
}
pub fn f16s(b: &[u8]) -> Vec<f64> {
    b.chunks(2)
        .map(|c| f16::from_bits(u16::from(c[0]) | u16::from(c[1]) << 8).to_f64())
        .collect()
}
pub fn f32s(b: &[u8]) -> Vec<f64> {
    u32s(b)
        .into_iter()
        .map(|v| f64::from(f32::from_bits(v)))
        .collect()
}
pub fn i32s(b: &[u8]) -> Vec<i64> {
    u32s(b).into_iter().map(|v| i64::from(v as i32)).collect()
}

/// Bit `p` of a little-endian word stream.
pub fn stream_bit(words: &[u32], p: usize) -> u32 {
    (words[p / 32] >> (p % 32)) & 1
}

/// `width` bits starting at stream bit `p`, read one bit at a time.
pub fn stream_get(words: &[u32], p: usize, width: usize) -> u32 {
    (0..width).map(|t| stream_bit(words, p + t) << t).sum()
}

/// Write `width` bits of `v` at stream bit `p`, one bit at a time.
pub fn stream_put(words: &mut [u32], p: usize, width: usize, v: u32) {
    for t in 0..width {
        if (v >> t) & 1 == 1 {
            words[(p + t) / 32] |= 1 << ((p + t) % 32);
        }
    }
}

/// Stream slot of element `j`: natural for GPTQ; AWQ: within units of `u` codes (8 for 4-bit,
/// 16 for 2-bit, 4 for 8-bit, 32 for 3-bit) the slot order is evens then odds. For 4-bit that
/// must equal AutoAWQ's AWQ_ORDER = [0, 2, 4, 6, 1, 3, 5, 7] (slot p holds element ORDER[p]).
pub fn slot(j: usize, bits: usize, packing: Packing) -> usize {
    match packing {
        Packing::Gptq => j,
        Packing::Awq => {
            if bits == 4 {
                const AWQ_ORDER: [usize; 8] = [0, 2, 4, 6, 1, 3, 5, 7];
                let p = AWQ_ORDER.iter().position(|&e| e == j % 8).unwrap_or(0);
                return j / 8 * 8 + p;
            }
            let u = match bits {
                2 => 16,
                8 => 4,
                _ => 32,
            };
            let e = j % u;
            j / u * u + if e % 2 == 0 { e / 2 } else { u / 2 + e / 2 }
        }
    }
}

pub fn words(k: usize, bits: usize, packing: Packing) -> usize {
    match packing {
        Packing::Gptq => (k * bits).div_ceil(32),
        Packing::Awq => {
            let u = if bits == 3 { 32 } else { 32 / bits };
            k.div_ceil(u) * u * bits / 32
        }
    }
}

/// The test's own packer.
pub fn pack(codes: &[u32], bits: usize, packing: Packing) -> Vec<u32> {
    let mut w = vec![0u32; words(codes.len(), bits, packing)];
    for (j, &c) in codes.iter().enumerate() {
        stream_put(&mut w, slot(j, bits, packing) * bits, bits, c);
    }
    w
}

fn part<'a>(q: &'a QuantTensor, name: &str) -> &'a [u8] {
    &q.parts
        .get(name)
        .unwrap_or_else(|| panic!("part {name}"))
        .bytes
}

/// bitsandbytes' signed dynamic map, recomputed in f64 from its definition (not bit-exact).
pub fn dynamic_map_f64() -> Vec<f64> {
    let mut v = vec![0.0, 1.0];
    for i in 0..7 {
        let items = (1usize << i) + 1;
        let b: Vec<f64> = (0..items)
            .map(|t| 0.1 + 0.9 * t as f64 / (items - 1) as f64)
            .collect();
        for w in b.windows(2) {
            let m = 10f64.powi(i - 6) * (w[0] + w[1]) / 2.0;
            v.push(m);
            v.push(-m);
        }
    }
    v.sort_by(f64::total_cmp);
    v
}

/// NF4 as printed in FORMATS.md (rounded to 5 decimals).
pub const NF4_ROUNDED: [f64; 16] = [
    -1.0, -0.69619, -0.52507, -0.39492, -0.28444, -0.18477, -0.09105, 0.0, 0.07958, 0.16093,
    0.24611, 0.33792, 0.44071, 0.56262, 0.72296, 1.0,
];

/// The formula-level reference dequant of every scheme, in f64.
pub fn reference_dequant(q: &QuantTensor) -> Vec<f64> {
    let (n, k) = (q.n, q.k);
    let mut out = vec![0f64; n * k];
    match q.scheme {
        Scheme::Uniform(u) => {
            let (b, g) = (u.bits as usize, u.group.len(k));
            let groups = k / g;
            let wpr = words(k, b, u.packing);
            let qw = u32s(part(q, "qweight"));
            let sc = f16s(part(q, "scales"));
            let zeros = if u.sym {
                vec![(1u32 << (b - 1)) as f64; n * groups]
            } else {
                f16s(part(q, "zeros"))
            };
            let gidx: Vec<usize> = if u.act_order {
                i32s(part(q, "g_idx"))
                    .into_iter()
                    .map(|v| v as usize)
                    .collect()
            } else {
                (0..k).map(|j| j / g).collect()
            };
            for i in 0..n {
                for j in 0..k {
                    let c = stream_get(&qw[i * wpr..(i + 1) * wpr], slot(j, b, u.packing) * b, b);
                    let gi = i * groups + gidx[j];
                    out[i * k + j] = sc[gi] * (f64::from(c) - zeros[gi]);
                }
            }
        }
        Scheme::Spqr(s) => {
            let (b, sb, g) = (s.bits as usize, s.stat_bits as usize, s.group as usize);
            let groups = k / g;
            let (wq, ws) = ((k * b).div_ceil(32), (2 * groups * sb).div_ceil(32));
            let qw = u32s(part(q, "qweight"));
            let st = u32s(part(q, "stats"));
            let s2 = f16s(part(q, "stats2"));
            // `:perm`: stored column j is original column in_perm[j]
            let col: Vec<usize> = if s.perm {
                i32s(part(q, "in_perm"))
                    .into_iter()
                    .map(|v| v as usize)
                    .collect()
            } else {
                (0..k).collect()
            };
            for i in 0..n {
                for gi in 0..groups {
                    let sc = f64::from(stream_get(&st[i * ws..], 2 * gi * sb, sb));
                    let zc = f64::from(stream_get(&st[i * ws..], (2 * gi + 1) * sb, sb));
                    let t = &s2[((i / 16) * groups + gi) * 4..];
                    let (sh, zh) = (t[0] * (sc - t[1]), t[2] * (zc - t[3]));
                    for j in gi * g..(gi + 1) * g {
                        out[i * k + col[j]] =
                            sh * (f64::from(stream_get(&qw[i * wq..], j * b, b)) - zh);
                    }
                }
            }
        }
        Scheme::Lut { bits } => {
            let (b, m) = (bits as usize, 1usize << bits);
            let wq = (k * b).div_ceil(32);
            let qw = u32s(part(q, "qweight"));
            let lut = if q.parts["lut"].dtype == qkc_quant::PartDtype::F16 {
                f16s(part(q, "lut"))
            } else {
                f32s(part(q, "lut"))
            };
            for i in 0..n {
                for j in 0..k {
                    out[i * k + j] = lut[i * m + stream_get(&qw[i * wq..], j * b, b) as usize];
                }
            }
        }
        Scheme::Fixed(f) => {
            let table: Vec<f64> = match f.table {
                FixedTable::Nf4 => NF4_ROUNDED.to_vec(),
                FixedTable::Fp4 => [
                    0.0, 0.0625, 8.0, 12.0, 4.0, 6.0, 2.0, 3.0, -0.0, -0.0625, -8.0, -12.0, -4.0,
                    -6.0, -2.0, -3.0,
                ]
                .iter()
                .map(|v| v / 12.0)
                .collect(),
            };
            let block = f.block as usize;
            let absmax: Vec<f64> = if f.double_quant {
                let map = dynamic_map_f64();
                let nested = f32s(part(q, "nested_absmax"));
                let off = f32s(part(q, "nested_offset"))[0];
                part(q, "absmax_q")
                    .iter()
                    .enumerate()
                    .map(|(b, &c)| map[c as usize] * nested[b / 256] + off)
                    .collect()
            } else {
                f32s(part(q, "absmax"))
            };
            let bytes = part(q, "qweight");
            for (j, o) in out.iter_mut().enumerate() {
                let c = if j % 2 == 0 {
                    bytes[j / 2] >> 4
                } else {
                    bytes[j / 2] & 15
                };
                *o = table[c as usize] * absmax[j / block];
            }
        }
        Scheme::Codebook(c) => {
            let (cb, bits, og, ig) = (
                c.codebooks as usize,
                c.bits as usize,
                c.out_group as usize,
                c.in_group as usize,
            );
            let m = 1usize << bits;
            let raw = part(q, "codes");
            let code = |t: usize| -> usize {
                // signed storage, decode mod 2^bits
                let v: i64 = if bits <= 8 {
                    i64::from(raw[t] as i8)
                } else {
                    i64::from(i16::from_le_bytes([raw[2 * t], raw[2 * t + 1]]))
                };
                v.rem_euclid(m as i64) as usize
            };
            let books = f16s(part(q, "codebooks"));
            let sc = f16s(part(q, "scales"));
            for r in 0..n {
                for col in 0..k {
                    let (o, a, i, b) = (r / og, r % og, col / ig, col % ig);
                    let s: f64 = (0..cb)
                        .map(|ci| {
                            books[((ci * m + code((o * (k / ig) + i) * cb + ci)) * og + a) * ig + b]
                        })
                        .sum();
                    out[r * k + col] = sc[o] * s;
                }
            }
        }
        Scheme::Binary(bz) => {
            let g = match bz.group {
                Group::Size(g) => g as usize,
                Group::PerChannel => k,
            };
            let groups = k / g;
            let wb = k.div_ceil(32);
            let sign = |w: &[u32], p: usize| if stream_bit(w, p) == 1 { 1.0 } else { -1.0 };
            match bz.kind {
                BinaryKind::Binary => {
                    let (s, sc) = (u32s(part(q, "signs")), f16s(part(q, "scales")));
                    for i in 0..n {
                        for j in 0..k {
                            out[i * k + j] = sc[i * groups + j / g] * sign(&s[i * wb..], j);
                        }
                    }
                }
                BinaryKind::Ternary => {
                    let w2 = (2 * k).div_ceil(32);
                    let (qw, sc) = (u32s(part(q, "qweight")), f16s(part(q, "scales")));
                    for i in 0..n {
                        for j in 0..k {
                            let t = f64::from(stream_get(&qw[i * w2..], 2 * j, 2)) - 1.0;
                            out[i * k + j] = sc[i * groups + j / g] * t;
                        }
                    }
                }
                BinaryKind::Residual => {
                    let mask = u32s(part(q, "mask"));
                    let sal: Vec<usize> = (0..k).filter(|&j| stream_bit(&mask, j) == 1).collect();
                    let wr = sal.len().div_ceil(32);
                    let (s, r, sc) = (
                        u32s(part(q, "signs")),
                        u32s(part(q, "res_signs")),
                        f16s(part(q, "scales")),
                    );
                    for i in 0..n {
                        for j in 0..k {
                            let t = &sc[(i * groups + j / g) * 3..];
                            out[i * k + j] = match sal.iter().position(|&c| c == j) {
                                Some(rank) => {
                                    t[1] * sign(&s[i * wb..], j) + t[2] * sign(&r[i * wr..], rank)
                                }
                                None => t[0] * sign(&s[i * wb..], j),
                            };
                        }
                    }
                }
            }
        }
    }
    out
}

/// Random f16 values in [lo, hi).
pub fn rand_f16(r: &mut ChaCha8Rng, len: usize, lo: f32, hi: f32) -> Vec<f16> {
    (0..len)
        .map(|_| f16::from_f32(r.gen_range(lo..hi)))
        .collect()
}

pub fn f16_bytes(v: &[f16]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub fn u32_bytes(v: &[u32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}
