//! The GPU generator: one warp per output row (grid-stride), f32 accumulation.
//!
//! Lane l takes the 16-byte code vectors `l, l + 32, …` of its row (evict-first loads: weights
//! are read once), dequantizes each word's codes with the word's group stats (loaded once per
//! vector when a group covers it), and accumulates one fma per token. Lanes then take the row's
//! outliers `lo + l, lo + l + 32, …`, a shuffle-xor tree sums the warp, and lane 0 runs the
//! epilogue. A rotated / act-quantized x is prepared once per block in shared memory (f32,
//! `T·K·4 ≤ 48 KiB`); otherwise x is read from global memory (L1/L2 resident: it is small and
//! every warp reads it). With `out_act` the kernel is one block: pre-quantization outputs go to a
//! scratch buffer, a barrier, then every warp folds a token's range and the block quantizes it.

use super::common::{self, CsrParams, Par, WParams};
use super::form::{Dq, Form, Tab};
use super::kb::{Kb, F4, I4, R};
use super::Spec;
use crate::kernel::{Kernel, Target};
use crate::lower::Binding;
use crate::ops::{Axis, BinaryOp, CacheHint, CastOp, IntCC};
use crate::types::{MemSpace, Scalar, Type};
use crate::Value;

/// Warps per block.
const WARPS: usize = 4;
/// Warps of the single block of an `out_act` kernel.
const WARPS_ONE_BLOCK: usize = 8;

fn needs_shared(s: &Spec) -> bool {
    s.rot.is_some() || s.act.is_some()
}

/// How a lane reads x_t[k].
struct XSrc {
    shared: Option<Value>,
    x: Value,
    elem: Scalar,
    k: usize,
}

impl XSrc {
    /// x_t[k .. k + n] (k a multiple of n, n = 4 or 8) as f32 scalars, through 16/8-byte
    /// vector loads.
    fn run(&self, kb: &mut Kb, t: usize, k: Value, n: usize) -> Vec<Value> {
        let mut out = Vec::with_capacity(n);
        for q in 0..n / 4 {
            let i = kb.addi(k, (t * self.k + 4 * q) as i64);
            let v = match self.shared {
                Some(xs) => kb.load(xs, i, F4),
                None if self.elem == Scalar::F16 => {
                    let h = kb.load(self.x, i, Type::Vector(Scalar::F16, 4));
                    kb.cast(CastOp::Fpext, h, F4)
                }
                None => kb.load(self.x, i, F4),
            };
            for l in 0..4 {
                out.push(kb.extract(v, l));
            }
        }
        out
    }

    fn at(&self, kb: &mut Kb, t: usize, k: Value) -> Value {
        let i = kb.addi(k, (t * self.k) as i64);
        match self.shared {
            Some(xs) => kb.load(xs, i, Type::F32),
            None => kb.load_act(self.x, i, self.elem),
        }
    }
}

/// Generate the GPU kernel.
pub(super) fn generate(s: &Spec, name: &str) -> R<(Kernel, Vec<Binding>, String)> {
    let one_block = s.out_act.is_some();
    let warps = if one_block { WARPS_ONE_BLOCK } else { WARPS };
    let grid = if one_block { 1 } else { s.n.div_ceil(warps) };
    let threads = 32 * warps;
    let target = Target::Gpu { grid: [grid as u32, 1, 1], block: [threads as u32, 1, 1] };
    let mut kb = Kb::new(name, target);
    let (p, binds) = common::params(&mut kb, s, one_block);
    let (t, k, n) = (s.t, s.k, s.n);
    let xs = needs_shared(s).then(|| kb.alloc(MemSpace::Shared, Scalar::F32, t * k));
    let tmp = match (xs, s.rot) {
        (Some(_), Some((hk, _))) if hk > 1 => {
            Some(kb.alloc(MemSpace::Local, Scalar::F32, k.div_ceil(threads)))
        }
        _ => None,
    };
    let bid = kb.axis(Axis::GridX);
    let warp = kb.axis(Axis::Warp);
    let lane = kb.axis(Axis::Lane);
    let tid = kb.mad(warp, 32, lane);
    let nthreads = kb.ci(threads as i64);
    let c32 = kb.ci(32);
    let par = Par { start: tid, step: nthreads, sync: true };
    if let Some(xs) = xs {
        kb.for_n(0, t as i64, &[], |kb, tt, _| {
            let base = kb.muli(tt, k as i64);
            par.each(kb, k as i64, |kb, i| {
                let j = kb.add(base, i);
                let v = kb.load_act(p.x, j, s.x_elem);
                kb.store(v, xs, j);
                Ok(())
            })?;
            common::rotate(kb, s, &p, &par, xs, tmp, base)?;
            if let Some(a) = s.act {
                common::act_quant(kb, a, xs, base, k, (lane, c32, true), &par, |kb, i, y| {
                    let j = kb.add(base, i);
                    kb.store(y, xs, j);
                    Ok(())
                })?;
            }
            Ok(vec![])
        })?;
    }
    let x = XSrc { shared: xs, x: p.x, elem: s.x_elem, k };
    let r0 = kb.mad(bid, warps as i64, warp);
    let cn = kb.ci(n as i64);
    let rstep = kb.ci((warps * grid) as i64);
    kb.for_(r0, cn, rstep, &[], |kb, row, _| {
        let mut y = row_sums(kb, s, &p.w, &x, row, lane)?;
        if let Some(o) = p.out_w {
            y = outliers(kb, o, &x, row, lane, y)?;
        }
        y = y.into_iter().map(|v| warp_sum(kb, v)).collect();
        let mut u = None;
        if let Some(up) = &p.up {
            let mut v = row_sums(kb, s, up, &x, row, lane)?;
            if let Some(o) = p.out_up {
                v = outliers(kb, o, &x, row, lane, v)?;
            }
            u = Some(v.into_iter().map(|v| warp_sum(kb, v)).collect::<Vec<_>>());
        }
        let c0 = kb.ci(0);
        let first = kb.icmp(IntCC::Eq, lane, c0);
        kb.if_(first, |kb| {
            for tt in 0..t {
                let yv = common::epilogue(kb, s, &p, row, tt, y[tt], u.as_ref().map(|u| u[tt]));
                let i = kb.addi(row, (tt * n) as i64);
                match p.scratch {
                    Some(sc) => kb.store(yv, sc, i),
                    None => kb.store_act(yv, p.y, i, s.out_elem),
                }
            }
            Ok(())
        })?;
        Ok(vec![])
    })?;
    if let (Some(a), Some(sc)) = (s.out_act, p.scratch) {
        kb.barrier();
        kb.for_n(0, t as i64, &[], |kb, tt, _| {
            let base = kb.muli(tt, n as i64);
            common::act_quant(kb, a, sc, base, n, (lane, c32, true), &par, |kb, i, v| {
                let j = kb.add(base, i);
                kb.store_act(v, p.y, j, s.out_elem);
                Ok(())
            })?;
            Ok(vec![])
        })?;
    }
    Ok((kb.finish()?, binds, "qlinear_gpu".into()))
}

fn warp_sum(kb: &mut Kb, v: Value) -> Value {
    let mut v = v;
    for m in [16, 8, 4, 2, 1] {
        let o = kb.shfl_xor(v, m);
        v = kb.add(v, o);
    }
    v
}

/// This lane's partial Σ w[row, k]·x_t[k] for every token.
fn row_sums(kb: &mut Kb, s: &Spec, w: &WParams, x: &XSrc, row: Value, lane: Value) -> R<Vec<Value>> {
    let zero = kb.cf(0.0);
    let inits = vec![zero; s.t];
    match w.form {
        Form::Codes { cb, group, dq, .. } => codes_loop(kb, s, w, x, row, lane, cb, group, dq, &inits),
        Form::Codebook { .. } => codebook_loop(kb, s, w, x, row, lane, &inits),
    }
}

#[expect(clippy::too_many_arguments, reason = "the form's parameters")]
fn codes_loop(
    kb: &mut Kb,
    s: &Spec,
    w: &WParams,
    x: &XSrc,
    row: Value,
    lane: Value,
    cb: u32,
    group: usize,
    dq: Dq,
    inits: &[Value],
) -> R<Vec<Value>> {
    let k = s.k as i64;
    let cpw = (32 / cb) as i64;
    let bs = 4 * cpw;
    let wpr = k * i64::from(cb) / 32;
    let groups = k / group as i64;
    let Some(codes) = w.codes else { return Ok(inits.to_vec()) };
    let rw = kb.muli(row, wpr);
    let rg = kb.muli(row, groups);
    let nv = kb.ci(k / bs);
    let c32 = kb.ci(32);
    let uniform = group as i64 % bs == 0;
    kb.for_(lane, nv, c32, inits, |kb, v, accs| {
        let v4 = kb.muli(v, 4);
        let wi = kb.add(rw, v4);
        let words = kb.load_hint(codes, wi, I4, CacheHint::EvictFirst);
        let k0 = kb.muli(v, bs);
        let stats = |kb: &mut Kb, kw: Value| -> (Value, Option<Value>, Option<Value>) {
            let gc = kb.ci(group as i64);
            let g = kb.bin(BinaryOp::Udiv, kw, gc);
            let gi = kb.add(rg, g);
            let sc = w.scale.map(|b| kb.load(b, gi, Type::F32));
            let off = w.offset.map(|b| kb.load(b, gi, Type::F32));
            (gi, sc, off)
        };
        let mut st = if uniform { Some(stats(kb, k0)) } else { None };
        let mut accs = accs.to_vec();
        for wd in 0..4 {
            let word = kb.extract(words, wd as u8);
            let kw = kb.addi(k0, wd * cpw);
            let (gi, sc, off) = match st {
                Some(x) => x,
                None => stats(kb, kw),
            };
            if uniform {
                st = Some((gi, sc, off));
            }
            let tb = match dq {
                Dq::Table { entries, tab, .. } => Some(match tab {
                    Tab::Global => kb.ci(0),
                    Tab::PerRow => kb.muli(row, entries as i64),
                    Tab::PerGroup => kb.muli(gi, entries as i64),
                }),
                Dq::Affine => None,
            };
            let mask = kb.ci((1i64 << cb) - 1);
            // x of this word's codes, by vector loads when x is read in order
            let xrun: Option<Vec<Vec<Value>>> =
                w.perm.is_none().then(|| (0..s.t).map(|tt| x.run(kb, tt, kw, cpw as usize)).collect());
            for j in 0..cpw {
                let q = if j == 0 {
                    kb.bin(BinaryOp::And, word, mask)
                } else {
                    let sh = kb.ci(j * i64::from(cb));
                    let v = kb.bin(BinaryOp::Lshr, word, sh);
                    if j == cpw - 1 {
                        v
                    } else {
                        kb.bin(BinaryOp::And, v, mask)
                    }
                };
                let wv = common::dequant_scalar(kb, w, q, sc, off, tb);
                for (tt, acc) in accs.iter_mut().enumerate() {
                    let xv = match (&xrun, w.perm) {
                        (Some(r), _) => r[tt][j as usize],
                        (None, Some(pm)) => {
                            let kj = kb.addi(kw, j);
                            let kx = kb.load(pm, kj, Type::I32);
                            x.at(kb, tt, kx)
                        }
                        (None, None) => {
                            let kj = kb.addi(kw, j);
                            x.at(kb, tt, kj)
                        }
                    };
                    *acc = kb.fma(wv, xv, *acc);
                }
            }
        }
        Ok(accs)
    })
}

fn codebook_loop(
    kb: &mut Kb,
    s: &Spec,
    w: &WParams,
    x: &XSrc,
    row: Value,
    lane: Value,
    inits: &[Value],
) -> R<Vec<Value>> {
    let Form::Codebook { c, bits, ig, og } = w.form else { return Ok(inits.to_vec()) };
    let (Some(codes), Some(books), Some(scale)) = (w.cb_codes, w.codebooks, w.scale) else {
        return Ok(inits.to_vec());
    };
    let ni = (s.k / ig) as i64;
    let entries = 1i64 << bits;
    let ogc = kb.ci(og as i64);
    let o = kb.bin(BinaryOp::Udiv, row, ogc);
    let a = kb.bin(BinaryOp::Urem, row, ogc);
    let code_ty = if bits <= 8 { Type::I8 } else { Type::I16 };
    let hi = kb.ci(ni);
    let c32 = kb.ci(32);
    let accs = kb.for_(lane, hi, c32, inits, |kb, i, accs| {
        let mut accs = accs.to_vec();
        let oi = kb.mad(o, ni, i);
        let ci0 = kb.muli(oi, c as i64);
        let xb = kb.muli(i, ig as i64);
        for cc in 0..c {
            let ci = kb.addi(ci0, cc as i64);
            let raw = kb.load(codes, ci, code_ty);
            let code = kb.cast(CastOp::Zext, raw, Type::I32);
            let m = kb.ci(entries - 1);
            let code = kb.bin(BinaryOp::And, code, m);
            let e = kb.addi(code, cc as i64 * entries);
            let e = kb.mad(e, og as i64, a);
            let base = kb.muli(e, ig as i64);
            for b in 0..ig as i64 {
                let bi = kb.addi(base, b);
                let cv = kb.load(books, bi, Type::F32);
                let xi = kb.addi(xb, b);
                for (tt, acc) in accs.iter_mut().enumerate() {
                    let xv = x.at(kb, tt, xi);
                    *acc = kb.fma(cv, xv, *acc);
                }
            }
        }
        Ok(accs)
    })?;
    let sv = kb.load(scale, o, Type::F32);
    Ok(accs.iter().map(|&v| kb.mul(v, sv)).collect())
}

/// Add this lane's share of the row's outliers.
fn outliers(kb: &mut Kb, o: CsrParams, x: &XSrc, row: Value, lane: Value, y: Vec<Value>) -> R<Vec<Value>> {
    let lo = kb.load(o.row_ptr, row, Type::I32);
    let r1 = kb.addi(row, 1);
    let hi = kb.load(o.row_ptr, r1, Type::I32);
    let start = kb.add(lo, lane);
    let c32 = kb.ci(32);
    kb.for_(start, hi, c32, &y, |kb, e, acc| {
        let c = kb.load(o.col, e, Type::I32);
        let v = kb.load(o.val, e, Type::F32);
        let mut out = Vec::with_capacity(acc.len());
        for (tt, &a) in acc.iter().enumerate() {
            let xv = x.at(kb, tt, c);
            out.push(kb.fma(v, xv, a));
        }
        Ok(out)
    })
}
