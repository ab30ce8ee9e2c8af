//! Kernel forms of quantized weights and the load-time packing into them.
//!
//! Every scheme is re-expressed, exactly (up to f32 rounding of expanded statistics), in one of
//! three forms the generators know (see the parent module). Packed buffers, per weight role:
//!
//! | buffer | form | dtype, shape | content |
//! |---|---|---|---|
//! | `codes` | affine, table | i32 `[N, K·cb/32]` | codes in `cb`-bit containers (cb = 4 or 8), LSB first along K |
//! | `scale` | affine, scaled table | f32 `[N, K/G]` | `s` per (row, group) |
//! | `offset` | affine | f32 `[N, K/G]` | `m` per (row, group), `w = s·q + m` |
//! | `table` | table | f32 `[tables, E]` | one table (global), per row, or per (row, group) |
//! | `perm` | act-order, `spqr…:perm` | i32 `[K]` | column of x at permuted position i (groups contiguous) |
//! | `cb_codes` | codebook | i8/i16 `[N/og, K/ig, C]` | AQLM codes (masked to `bits`) |
//! | `codebooks` | codebook | f32 `[C, 2^bits, og·ig]` | |
//! | `scale` | codebook | f32 `[N/og]` | |
//!
//! Outliers: `row_ptr` i32 `[N+1]`, `col` i32 `[max(nnz,1)]`, `val` f32 `[max(nnz,1)]`.

use half::f16;
use qkc_quant::scheme::{BinaryKind, Group, Packing};
use qkc_quant::{pack as qpack, Csr, PartDtype, QuantTensor, Scheme};

use crate::lower::PackedBuffer;
use crate::types::Scalar;

/// Where the tables of a table form come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tab {
    /// One table for the whole weight (NF4, FP4).
    Global,
    /// One table per output row (SqueezeLLM).
    PerRow,
    /// One table per (row, group) (BiLLM).
    PerGroup,
}

/// How codes become weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dq {
    /// `w = s·q + m`.
    Affine,
    /// `w = T[q]`, times `s` when `scaled`.
    Table {
        /// Entries per table.
        entries: usize,
        /// Table granularity.
        tab: Tab,
        /// Scaled by a per-(row, group) `scale`.
        scaled: bool,
    },
}

/// A weight's kernel form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Form {
    /// Codes in `cb`-bit containers with per-group stats.
    Codes {
        /// Container bits (4 or 8).
        cb: u32,
        /// Stats group along K (in permuted order for act-order).
        group: usize,
        /// Dequant rule.
        dq: Dq,
        /// Act-order (uniform `:act`, SpQR `:perm`): x is read through `perm`.
        perm: bool,
    },
    /// AQLM additive codebooks.
    Codebook {
        /// Codebooks C.
        c: usize,
        /// Bits per code.
        bits: u32,
        /// Input group.
        ig: usize,
        /// Output group.
        og: usize,
    },
}

pub(super) fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// The form of scheme `s` for a `[n, k]` weight, or why no kernel handles it.
pub(crate) fn of(s: Scheme, n: usize, k: usize) -> Result<Form, String> {
    let _ = n;
    let cb_for = |bits: u8| if bits <= 4 { 4 } else { 8 };
    let f = match s {
        Scheme::Uniform(u) => {
            Form::Codes { cb: cb_for(u.bits), group: u.group.len(k), dq: Dq::Affine, perm: u.act_order }
        }
        Scheme::Spqr(q) => {
            Form::Codes { cb: cb_for(q.bits), group: q.group as usize, dq: Dq::Affine, perm: q.perm }
        }
        Scheme::Lut { bits } => Form::Codes {
            cb: cb_for(bits),
            group: k,
            dq: Dq::Table { entries: 1 << bits, tab: Tab::PerRow, scaled: false },
            perm: false,
        },
        Scheme::Fixed(f) => Form::Codes {
            cb: 4,
            group: gcd(f.block as usize, k),
            dq: Dq::Table { entries: 16, tab: Tab::Global, scaled: true },
            perm: false,
        },
        Scheme::Binary(b) => {
            let group = b.group.len(k);
            match b.kind {
                BinaryKind::Binary | BinaryKind::Ternary => {
                    Form::Codes { cb: 4, group, dq: Dq::Affine, perm: false }
                }
                BinaryKind::Residual => Form::Codes {
                    cb: 4,
                    group,
                    dq: Dq::Table { entries: 8, tab: Tab::PerGroup, scaled: false },
                    perm: false,
                },
            }
        }
        Scheme::Codebook(c) => {
            if c.in_group % 4 != 0 || c.bits > 16 {
                return Err(format!(
                    "AQLM input group {} is not a multiple of 4 (or codes wider than 16 bits)",
                    c.in_group
                ));
            }
            Form::Codebook {
                c: c.codebooks as usize,
                bits: u32::from(c.bits),
                ig: c.in_group as usize,
                og: c.out_group as usize,
            }
        }
    };
    if let Form::Codes { cb, group, .. } = f {
        let cpw = (32 / cb) as usize;
        if !group.is_multiple_of(cpw) || !k.is_multiple_of(group) {
            return Err(format!(
                "group of {group} (scheme `{s}`, K = {k}) is not a multiple of {cpw} codes per packed word"
            ));
        }
    }
    Ok(f)
}

/// One f32 buffer.
pub(crate) fn f32_buffer(name: &str, v: impl IntoIterator<Item = f32>) -> PackedBuffer {
    PackedBuffer {
        name: name.into(),
        elem: Scalar::F32,
        data: v.into_iter().flat_map(f32::to_le_bytes).collect(),
    }
}

fn i32_buffer(name: &str, v: impl IntoIterator<Item = i32>) -> PackedBuffer {
    PackedBuffer {
        name: name.into(),
        elem: Scalar::I32,
        data: v.into_iter().flat_map(i32::to_le_bytes).collect(),
    }
}

/// Pack CSR outliers.
pub(crate) fn pack_csr(c: &Csr) -> Vec<PackedBuffer> {
    let nz = c.col.len().max(1);
    let mut col: Vec<i32> = c.col.iter().map(|&v| v as i32).collect();
    let mut val = c.val.clone();
    col.resize(nz, 0);
    val.resize(nz, 0.0);
    vec![
        i32_buffer("row_ptr", c.row_ptr.iter().map(|&v| v as i32)),
        i32_buffer("col", col),
        f32_buffer("val", val),
    ]
}

type PR<T> = Result<T, String>;

fn part_f32(q: &QuantTensor, name: &str) -> PR<Vec<f32>> {
    Ok(q.part(name).map_err(|e| e.to_string())?.to_f32())
}

fn part_u32(q: &QuantTensor, name: &str) -> PR<Vec<u32>> {
    let p = q.part(name).map_err(|e| e.to_string())?;
    if p.dtype != PartDtype::U32 {
        return Err(format!("part `{name}` is {:?}, expected U32", p.dtype));
    }
    Ok(p.to_u32())
}

/// Pack codes `[n, k]` (one u8 per code, natural order) into `cb`-bit containers.
fn pack_codes(codes: &[u8], n: usize, k: usize, cb: u32) -> PackedBuffer {
    let wpr = k * cb as usize / 32;
    let cpw = 32 / cb as usize;
    let mut out = vec![0u32; n * wpr];
    for (i, &c) in codes.iter().enumerate() {
        let (r, j) = (i / k, i % k);
        out[r * wpr + j / cpw] |= u32::from(c) << (cb as usize * (j % cpw));
    }
    i32_buffer("codes", out.into_iter().map(|w| w as i32))
}

impl Form {
    /// The packed buffers this form's kernel parameters name, with element type and length.
    pub(crate) fn buffers(&self, n: usize, k: usize) -> Vec<(&'static str, Scalar, usize)> {
        match *self {
            Form::Codes { cb, group, dq, perm } => {
                let g = k / group;
                let mut v = vec![("codes", Scalar::I32, n * k * cb as usize / 32)];
                match dq {
                    Dq::Affine => {
                        v.push(("scale", Scalar::F32, n * g));
                        v.push(("offset", Scalar::F32, n * g));
                    }
                    Dq::Table { entries, tab, scaled } => {
                        let tables = match tab {
                            Tab::Global => 1,
                            Tab::PerRow => n,
                            Tab::PerGroup => n * g,
                        };
                        v.push(("table", Scalar::F32, tables * entries));
                        if scaled {
                            v.push(("scale", Scalar::F32, n * g));
                        }
                    }
                }
                if perm {
                    v.push(("perm", Scalar::I32, k));
                }
                v
            }
            Form::Codebook { c, bits, ig, og } => vec![
                ("cb_codes", if bits <= 8 { Scalar::I8 } else { Scalar::I16 }, (n / og) * (k / ig) * c),
                ("codebooks", Scalar::F32, c * (1 << bits) * og * ig),
                ("scale", Scalar::F32, n / og),
            ],
        }
    }

    /// Bytes of buffer `name` (for `bytes_read`).
    pub(crate) fn buffer_bytes(&self, name: &str, n: usize, k: usize) -> u64 {
        self.buffers(n, k)
            .iter()
            .find(|b| b.0 == name)
            .map_or(0, |&(_, e, len)| (len * e.bytes() as usize) as u64)
    }

    /// The per-(row, group) scale and offset `[N, K/G]` of a uniform scheme in this form's
    /// affine `w = s·q + m` (what [`Form::pack`] writes as `scale` and `offset`): sym
    /// `m = −2^(b−1)·s`, asym `m = −z·s`, `:min` the stored min.
    pub(crate) fn uniform_stats(q: &QuantTensor) -> PR<(Vec<f32>, Vec<f32>)> {
        let Scheme::Uniform(u) = q.scheme else { return Err("not a uniform scheme".into()) };
        uniform_stats(q, u)
    }

    /// Pack a quantized tensor (already checked to be of this form's scheme and shape).
    pub(crate) fn pack(&self, q: &QuantTensor) -> PR<Vec<PackedBuffer>> {
        let deq = q.dequant().map_err(|e| e.to_string())?;
        let (n, k) = (q.n, q.k);
        let out = match (*self, q.scheme) {
            (Form::Codes { cb, group, .. }, Scheme::Uniform(u)) => {
                let words = part_u32(q, "qweight")?;
                let wpr = qpack::words_per_row_packed(k, u.bits, u.packing);
                let gidx: Vec<usize> = if u.act_order {
                    let p = q.part("g_idx").map_err(|e| e.to_string())?.to_f64();
                    p.iter().map(|&v| v as usize).collect()
                } else {
                    (0..k).map(|j| j / group).collect()
                };
                // act-order: order columns by group (stable); groups must then be contiguous runs of `group`.
                let mut perm: Vec<usize> = (0..k).collect();
                perm.sort_by_key(|&j| gidx[j]);
                if let Some(i) = (0..k).find(|&i| gidx[perm[i]] != i / group) {
                    return Err(format!(
                        "g_idx does not form groups of {group} columns (column {} at sorted position {i} is in group {})",
                        perm[i], gidx[perm[i]]
                    ));
                }
                let mut codes = vec![0u8; n * k];
                for r in 0..n {
                    let row = qpack::unpack_row(&words[r * wpr..(r + 1) * wpr], u.bits, u.packing, k)
                        .map_err(|e| e.to_string())?;
                    for (i, &j) in perm.iter().enumerate() {
                        codes[r * k + i] = row[j];
                    }
                }
                let (s, m) = uniform_stats(q, u)?;
                let _ = Packing::Gptq;
                let mut v =
                    vec![pack_codes(&codes, n, k, cb), f32_buffer("scale", s), f32_buffer("offset", m)];
                if u.act_order {
                    v.push(i32_buffer("perm", perm.iter().map(|&j| j as i32)));
                }
                v
            }
            (Form::Codes { cb, group, .. }, Scheme::Spqr(sp)) => {
                let groups = k / group;
                let words = part_u32(q, "qweight")?;
                let stats = part_u32(q, "stats")?;
                let st2 = q.part("stats2").map_err(|e| e.to_string())?.to_f64();
                let (wq, ws) =
                    (qpack::words_per_row(k, sp.bits), qpack::words_per_row(2 * groups, sp.stat_bits));
                let mut codes = vec![0u8; n * k];
                let (mut s, mut m) = (vec![0f32; n * groups], vec![0f32; n * groups]);
                for r in 0..n {
                    for j in 0..k {
                        codes[r * k + j] = qpack::get(&words[r * wq..], sp.bits, j) as u8;
                    }
                    for gi in 0..groups {
                        let st = &st2[((r / qkc_quant::spqr::ROW_BLOCK) * groups + gi) * 4..][..4];
                        let sc = f64::from(qpack::get(&stats[r * ws..], sp.stat_bits, 2 * gi));
                        let zc = f64::from(qpack::get(&stats[r * ws..], sp.stat_bits, 2 * gi + 1));
                        let sh = st[0] * (sc - st[1]);
                        let zh = st[2] * (zc - st[3]);
                        s[r * groups + gi] = sh as f32;
                        m[r * groups + gi] = (-sh * zh) as f32;
                    }
                }
                let mut v =
                    vec![pack_codes(&codes, n, k, cb), f32_buffer("scale", s), f32_buffer("offset", m)];
                // `:perm`: codes stay in stored order; stored column i multiplies x[in_perm[i]]
                if let Some(p) = qkc_quant::spqr::in_perm(sp, q).map_err(|e| e.to_string())? {
                    v.push(i32_buffer("perm", p.iter().map(|&j| j as i32)));
                }
                v
            }
            (Form::Codes { cb, .. }, Scheme::Lut { bits }) => {
                let words = part_u32(q, "qweight")?;
                let wpr = qpack::words_per_row(k, bits);
                let codes: Vec<u8> =
                    (0..n * k).map(|i| qpack::get(&words[(i / k) * wpr..], bits, i % k) as u8).collect();
                vec![pack_codes(&codes, n, k, cb), f32_buffer("table", part_f32(q, "lut")?)]
            }
            (Form::Codes { cb, group, .. }, Scheme::Fixed(f)) => {
                let bytes = &q.part("qweight").map_err(|e| e.to_string())?.bytes;
                let codes: Vec<u8> = (0..n * k)
                    .map(|j| if j % 2 == 0 { bytes[j / 2] >> 4 } else { bytes[j / 2] & 0xF })
                    .collect();
                let block = f.block as usize;
                let absmax: Vec<f32> = if f.double_quant {
                    let aq = &q.part("absmax_q").map_err(|e| e.to_string())?.bytes;
                    let nested = part_f32(q, "nested_absmax")?;
                    let off = part_f32(q, "nested_offset")?[0];
                    let map = qkc_quant::fixed::dynamic_map();
                    aq.iter()
                        .enumerate()
                        .map(|(b, &c)| map[c as usize] * nested[b / qkc_quant::fixed::NESTED_BLOCK] + off)
                        .collect()
                } else {
                    part_f32(q, "absmax")?
                };
                let scale = (0..n * k / group).map(|i| absmax[(i * group) / block]);
                vec![
                    pack_codes(&codes, n, k, cb),
                    f32_buffer("table", qkc_quant::fixed::table(f.table)),
                    f32_buffer("scale", scale.collect::<Vec<_>>()),
                ]
            }
            (Form::Codes { cb, group, .. }, Scheme::Binary(b)) => {
                pack_binary(q, b.kind, b.group, n, k, cb, group)?
            }
            (Form::Codebook { c, bits, ig, og }, Scheme::Codebook(_)) => {
                let p = q.part("codes").map_err(|e| e.to_string())?;
                let mask = (1u32 << bits) - 1;
                let codes = if bits <= 8 {
                    PackedBuffer {
                        name: "cb_codes".into(),
                        elem: Scalar::I8,
                        data: p.bytes.iter().map(|&v| (u32::from(v) & mask) as u8).collect(),
                    }
                } else {
                    PackedBuffer {
                        name: "cb_codes".into(),
                        elem: Scalar::I16,
                        data: p
                            .to_u16_bits()
                            .iter()
                            .flat_map(|&v| ((u32::from(v) & mask) as u16).to_le_bytes())
                            .collect(),
                    }
                };
                let _ = (c, ig, og);
                vec![
                    codes,
                    f32_buffer("codebooks", part_f32(q, "codebooks")?),
                    f32_buffer("scale", part_f32(q, "scales")?),
                ]
            }
            (f, s) => return Err(format!("internal: form {f:?} does not match scheme `{s}`")),
        };
        // Self-check: the packed form must reproduce the reference dequant.
        self.check(&out, &deq, n, k)?;
        Ok(out)
    }

    /// Dequantize the packed buffers in Rust and compare with the scheme's reference (catches
    /// a packing bug at load instead of as wrong numbers).
    fn check(&self, bufs: &[PackedBuffer], deq: &[f32], n: usize, k: usize) -> PR<()> {
        let get = |name: &str| bufs.iter().find(|b| b.name == name);
        let f32s = |name: &str| -> Vec<f32> {
            get(name).map_or(Vec::new(), |b| {
                b.data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
            })
        };
        let i32s = |name: &str| -> Vec<i32> {
            get(name).map_or(Vec::new(), |b| {
                b.data.chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
            })
        };
        let Form::Codes { cb, group, dq, perm } = *self else { return Ok(()) };
        let (words, scale, offset, table, pm) =
            (i32s("codes"), f32s("scale"), f32s("offset"), f32s("table"), i32s("perm"));
        let (wpr, cpw, g) = (k * cb as usize / 32, 32 / cb as usize, k / group);
        for r in 0..n {
            for i in 0..k {
                let q = (words[r * wpr + i / cpw] as u32 >> (cb as usize * (i % cpw))) & ((1 << cb) - 1);
                let gi = r * g + i / group;
                let w = match dq {
                    Dq::Affine => scale[gi] * q as f32 + offset[gi],
                    Dq::Table { entries, tab, scaled } => {
                        let t = match tab {
                            Tab::Global => 0,
                            Tab::PerRow => r,
                            Tab::PerGroup => gi,
                        };
                        let v = table[t * entries + q as usize];
                        if scaled {
                            v * scale[gi]
                        } else {
                            v
                        }
                    }
                };
                let j = if perm { pm[i] as usize } else { i };
                let want = deq[r * k + j];
                if (w - want).abs() > 1e-5 * (1.0 + want.abs()) {
                    return Err(format!("internal packing error at [{r}, {j}]: {w} vs {want}"));
                }
            }
        }
        Ok(())
    }
}

fn pack_binary(
    q: &QuantTensor,
    kind: BinaryKind,
    grp: Group,
    n: usize,
    k: usize,
    cb: u32,
    group: usize,
) -> PR<Vec<PackedBuffer>> {
    let g = grp.count(k);
    let _ = group;
    let wb = qpack::words_per_row(k, 1);
    let scales = part_f32(q, "scales")?;
    Ok(match kind {
        BinaryKind::Binary => {
            let signs = part_u32(q, "signs")?;
            let codes: Vec<u8> =
                (0..n * k).map(|i| u8::from(qpack::bit(&signs[(i / k) * wb..], i % k))).collect();
            let s = scales.iter().map(|&a| 2.0 * a);
            let m = scales.iter().map(|&a| -a);
            vec![pack_codes(&codes, n, k, cb), f32_buffer("scale", s), f32_buffer("offset", m)]
        }
        BinaryKind::Ternary => {
            let w2 = qpack::words_per_row(k, 2);
            let qw = part_u32(q, "qweight")?;
            let codes: Vec<u8> =
                (0..n * k).map(|i| qpack::get(&qw[(i / k) * w2..], 2, i % k) as u8).collect();
            vec![
                pack_codes(&codes, n, k, cb),
                f32_buffer("scale", scales.clone()),
                f32_buffer("offset", scales.iter().map(|&a| -a)),
            ]
        }
        BinaryKind::Residual => {
            let mask = part_u32(q, "mask")?;
            let s = (0..k).filter(|&j| qpack::bit(&mask, j)).count();
            let wr = qpack::words_per_row(s, 1);
            let signs = part_u32(q, "signs")?;
            let res = part_u32(q, "res_signs")?;
            let gl = grp.len(k);
            let mut codes = vec![0u8; n * k];
            for r in 0..n {
                let mut t = 0;
                for j in 0..k {
                    let b1 = u8::from(qpack::bit(&signs[r * wb..], j));
                    codes[r * k + j] = if qpack::bit(&mask, j) {
                        t += 1;
                        4 + b1 + 2 * u8::from(qpack::bit(&res[r * wr..], t - 1))
                    } else {
                        b1
                    };
                }
            }
            // table per (row, group): [−α, α, 0, 0, −α1−α2, α1−α2, −α1+α2, α1+α2] in f64 → f32.
            let sc = q.part("scales").map_err(|e| e.to_string())?.to_f64();
            let mut table = Vec::with_capacity(n * g * 8);
            for i in 0..n * g {
                let (a, a1, a2) = (sc[i * 3], sc[i * 3 + 1], sc[i * 3 + 2]);
                table.extend([-a, a, 0.0, 0.0, -a1 - a2, a1 - a2, -a1 + a2, a1 + a2].map(|v| v as f32));
            }
            let _ = (gl, f16::ZERO);
            vec![pack_codes(&codes, n, k, cb), f32_buffer("table", table)]
        }
    })
}

/// [`Form::uniform_stats`].
fn uniform_stats(q: &QuantTensor, u: qkc_quant::scheme::UniformInt) -> PR<(Vec<f32>, Vec<f32>)> {
    let scales = part_f32(q, "scales")?;
    // `:min`: w = scale·q + min, so the offset is the stored min (f32).
    let mins = if u.min { Some(part_f32(q, "mins")?) } else { None };
    let zeros = if u.sym || u.min { None } else { Some(part_f32(q, "zeros")?) };
    let z0 = f32::from(1u16 << (u.bits - 1));
    let m: Vec<f32> = match mins {
        Some(m) => m,
        None => (0..scales.len()).map(|i| -scales[i] * zeros.as_ref().map_or(z0, |z| z[i])).collect(),
    };
    Ok((scales, m))
}
