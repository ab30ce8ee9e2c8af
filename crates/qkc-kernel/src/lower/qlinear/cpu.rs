//! The CPU generator: `cpu chunks(C) simd(128)`, each chunk a contiguous slice of output rows.
//!
//! Prologue (per chunk, into local memory): x → f32 (`xo`, natural order), Hadamard, act
//! quant; then one permuted copy per code layout (`xp[B·b + 4j + l] = xo[perm(B·b + cpw·l + j)]`,
//! B = 4·cpw codes per 16-byte load) so the main loop reads x as aligned `<4 x f32>`.
//! Main loop per row: a `<4 x i32>` code load (evict-first) per B codes, per code position a
//! shift + and, the dequant with per-lane stats (`splat` when a group covers the whole load),
//! one fma per token. Codebook weights walk the input groups with `<4 x f32>` codebook loads.

use std::collections::BTreeMap;

use super::common::{self, Par, Params, WParams};
use super::form::{Dq, Form, Tab};
use super::kb::{Kb, F4, I4, R};
use super::Spec;
use crate::kernel::{Kernel, Target};
use crate::lower::Binding;
use crate::ops::{Axis, BinaryOp, CacheHint, CastOp, ReduceOp};
use crate::types::{MemSpace, Scalar, Type};
use crate::Value;

/// Key of a permuted x copy: (codes per word, act-order weight role).
type Layout = (usize, Option<&'static str>);

fn layout(f: &Form, role: &'static str) -> Option<Layout> {
    match *f {
        Form::Codes { cb, perm, .. } => Some(((32 / cb) as usize, perm.then_some(role))),
        Form::Codebook { .. } => None,
    }
}

/// Generate the CPU kernel.
pub(super) fn generate(s: &Spec, name: &str, chunks: u32) -> R<(Kernel, Vec<Binding>, String)> {
    let chunks = if s.out_act.is_some() { 1 } else { chunks.min(s.n as u32).max(1) };
    let mut kb = Kb::new(name, Target::Cpu { chunks, simd_bits: 128 });
    let (p, binds) = common::params(&mut kb, s, false);
    let (t, k, n) = (s.t, s.k, s.n);
    let xo = kb.alloc(MemSpace::Local, Scalar::F32, t * k);
    let tmp = s.rot.filter(|r| r.0 > 1).map(|_| kb.alloc(MemSpace::Local, Scalar::F32, k));
    let mut layouts: BTreeMap<Layout, Value> = BTreeMap::new();
    for (f, role) in [(Some(s.w), "w"), (s.up, "up")] {
        if let Some(l) = f.as_ref().and_then(|f| layout(f, role)) {
            if let std::collections::btree_map::Entry::Vacant(e) = layouts.entry(l) {
                e.insert(kb.alloc(MemSpace::Local, Scalar::F32, t * k));
            }
        }
    }
    let ybuf = s.out_act.map(|_| kb.alloc(MemSpace::Local, Scalar::F32, t * n));
    let (c0, c1) = (kb.ci(0), kb.ci(1));
    let par = Par { start: c0, step: c1, sync: false };
    // prologue: x → xo, rotation, act quant
    kb.for_n(0, t as i64, &[], |kb, tt, _| {
        let base = kb.muli(tt, k as i64);
        par.each(kb, k as i64, |kb, i| {
            let j = kb.add(base, i);
            let v = kb.load_act(p.x, j, s.x_elem);
            kb.store(v, xo, j);
            Ok(())
        })?;
        common::rotate(kb, s, &p, &par, xo, tmp, base)?;
        if let Some(a) = s.act {
            common::act_quant(kb, a, xo, base, k, (c0, c1, false), &par, |kb, i, y| {
                let j = kb.add(base, i);
                kb.store(y, xo, j);
                Ok(())
            })?;
        }
        Ok(vec![])
    })?;
    for (&(cpw, role), &xp) in &layouts {
        let perm = match role {
            Some("up") => p.up.and_then(|w| w.perm),
            Some(_) => p.w.perm,
            None => None,
        };
        permute(&mut kb, s, xo, xp, cpw, perm)?;
    }
    let chunk = kb.axis(Axis::CpuChunk);
    let rpc = (n as i64 + i64::from(chunks) - 1) / i64::from(chunks);
    let r0 = kb.muli(chunk, rpc);
    let r1 = kb.addi(r0, rpc);
    let cn = kb.ci(n as i64);
    let r1 = kb.bin(BinaryOp::Smin, r1, cn);
    kb.for_(r0, r1, c1, &[], |kb, row, _| {
        let mut y = row_sums(kb, s, &p, &p.w, "w", &layouts, xo, row)?;
        if let Some(o) = p.out_w {
            y = outliers(kb, s, o, xo, row, y)?;
        }
        let mut u = None;
        if let Some(up) = &p.up {
            let mut v = row_sums(kb, s, &p, up, "up", &layouts, xo, row)?;
            if let Some(o) = p.out_up {
                v = outliers(kb, s, o, xo, row, v)?;
            }
            u = Some(v);
        }
        for tt in 0..t {
            let yv = common::epilogue(kb, s, &p, row, tt, y[tt], u.as_ref().map(|u| u[tt]));
            let i = kb.addi(row, (tt * n) as i64);
            match ybuf {
                Some(b) => kb.store(yv, b, i),
                None => kb.store_act(yv, p.y, i, s.out_elem),
            }
        }
        Ok(vec![])
    })?;
    if let (Some(a), Some(yb)) = (s.out_act, ybuf) {
        kb.for_n(0, t as i64, &[], |kb, tt, _| {
            let base = kb.muli(tt, n as i64);
            common::act_quant(kb, a, yb, base, n, (c0, c1, false), &par, |kb, i, v| {
                let j = kb.add(base, i);
                kb.store_act(v, p.y, j, s.out_elem);
                Ok(())
            })?;
            Ok(vec![])
        })?;
    }
    Ok((kb.finish()?, binds, "qlinear_cpu".into()))
}

/// `xp[t·K + B·b + 4j + l] = xo[t·K + perm(B·b + cpw·l + j)]`.
fn permute(kb: &mut Kb, s: &Spec, xo: Value, xp: Value, cpw: usize, perm: Option<Value>) -> R<()> {
    let bs = 4 * cpw as i64;
    let k = s.k as i64;
    kb.for_n(0, s.t as i64, &[], |kb, tt, _| {
        let base = kb.muli(tt, k);
        kb.for_n(0, k, &[], |kb, i, _| {
            let src = match perm {
                Some(pm) => kb.load(pm, i, Type::I32),
                None => i,
            };
            let sj = kb.add(base, src);
            let v = kb.load(xo, sj, Type::F32);
            let mb = kb.ci(!(bs - 1));
            let blk = kb.bin(BinaryOp::And, i, mb);
            let mr = kb.ci(bs - 1);
            let r = kb.bin(BinaryOp::And, i, mr);
            let mj = kb.ci(cpw as i64 - 1);
            let j = kb.bin(BinaryOp::And, r, mj);
            let sh = kb.ci(cpw.trailing_zeros() as i64);
            let l = kb.bin(BinaryOp::Lshr, r, sh);
            let j4 = kb.muli(j, 4);
            let d = kb.add(blk, j4);
            let d = kb.add(d, l);
            let d = kb.add(d, base);
            kb.store(v, xp, d);
            Ok(vec![])
        })?;
        Ok(vec![])
    })?;
    Ok(())
}

/// Σ_k w[row, k]·x_t[k] for every token (f32 scalars).
#[expect(clippy::too_many_arguments, reason = "the row loop's context")]
fn row_sums(
    kb: &mut Kb,
    s: &Spec,
    p: &Params,
    w: &WParams,
    role: &'static str,
    layouts: &BTreeMap<Layout, Value>,
    xo: Value,
    row: Value,
) -> R<Vec<Value>> {
    let _ = p;
    let z4 = kb.cf_ty(F4, 0.0);
    let inits = vec![z4; s.t];
    let accs = match w.form {
        Form::Codes { cb, group, dq, .. } => {
            let l = layout(&w.form, role).unwrap_or((8, None));
            let xp = layouts.get(&l).copied().unwrap_or(xo);
            codes_loop(kb, s, w, xp, row, cb, group, dq, &inits)?
        }
        Form::Codebook { .. } => codebook_loop(kb, s, w, xo, row, &inits)?,
    };
    let mut out: Vec<Value> = accs.iter().map(|&a| kb.reduce(ReduceOp::Add, a)).collect();
    if let Form::Codebook { og, .. } = w.form {
        if let Some(sc) = w.scale {
            let o = kb.ci(og as i64);
            let oi = kb.bin(BinaryOp::Udiv, row, o);
            let sv = kb.load(sc, oi, Type::F32);
            out = out.iter().map(|&v| kb.mul(v, sv)).collect();
        }
    }
    Ok(out)
}

#[expect(clippy::too_many_arguments, reason = "the form's parameters")]
fn codes_loop(
    kb: &mut Kb,
    s: &Spec,
    w: &WParams,
    xp: Value,
    row: Value,
    cb: u32,
    group: usize,
    dq: Dq,
    inits: &[Value],
) -> R<Vec<Value>> {
    let (k, t) = (s.k as i64, s.t);
    let cpw = (32 / cb) as i64;
    let bs = 4 * cpw;
    let wpr = k * i64::from(cb) / 32;
    let groups = k / group as i64;
    let Some(codes) = w.codes else { return Ok(inits.to_vec()) };
    let rw = kb.muli(row, wpr);
    let rg = kb.muli(row, groups);
    kb.for_n(0, k / bs, inits, |kb, sb, accs| {
        let sb4 = kb.muli(sb, 4);
        let wi = kb.add(rw, sb4);
        let words = kb.load_hint(codes, wi, I4, CacheHint::EvictFirst);
        let k0 = kb.muli(sb, bs);
        // per-lane group indices
        let gidx: Vec<Value> = if group as i64 % bs == 0 {
            let gc = kb.ci(group as i64);
            let g = kb.bin(BinaryOp::Udiv, k0, gc);
            let gi = kb.add(rg, g);
            vec![gi; 4]
        } else {
            (0..4)
                .map(|l| {
                    let kl = kb.addi(k0, l * cpw);
                    let gc = kb.ci(group as i64);
                    let g = kb.bin(BinaryOp::Udiv, kl, gc);
                    kb.add(rg, g)
                })
                .collect()
        };
        let uniform = group as i64 % bs == 0;
        let lanes = |kb: &mut Kb, buf: Option<Value>| -> Option<Value> {
            let b = buf?;
            if uniform {
                let v = kb.load(b, gidx[0], Type::F32);
                Some(kb.splat(v, F4))
            } else {
                let mut v = kb.cf_ty(F4, 0.0);
                for (l, &gi) in gidx.iter().enumerate() {
                    let e = kb.load(b, gi, Type::F32);
                    v = kb.insert(v, e, l as u8);
                }
                Some(v)
            }
        };
        let sc = lanes(kb, w.scale);
        let off = lanes(kb, w.offset);
        let tbase: Vec<Value> = match dq {
            Dq::Table { entries, tab, .. } => (0..4)
                .map(|l| match tab {
                    Tab::Global => kb.ci(0),
                    Tab::PerRow => kb.muli(row, entries as i64),
                    Tab::PerGroup => kb.muli(gidx[l], entries as i64),
                })
                .collect(),
            Dq::Affine => Vec::new(),
        };
        let mask = kb.cbits(I4, (1u64 << cb) - 1);
        let mut accs = accs.to_vec();
        for j in 0..cpw {
            let q = if j == 0 {
                kb.bin(BinaryOp::And, words, mask)
            } else {
                let sh = kb.ci(j * i64::from(cb));
                let v = kb.bin(BinaryOp::Lshr, words, sh);
                if j == cpw - 1 {
                    v
                } else {
                    kb.bin(BinaryOp::And, v, mask)
                }
            };
            let wv = match dq {
                Dq::Affine => {
                    let qf = kb.cast(CastOp::Sitofp, q, F4);
                    match (sc, off) {
                        (Some(a), Some(b)) => kb.fma(qf, a, b),
                        _ => qf,
                    }
                }
                Dq::Table { scaled, .. } => {
                    let mut v = kb.cf_ty(F4, 0.0);
                    for (l, &tb) in tbase.iter().enumerate() {
                        let ql = kb.extract(q, l as u8);
                        let idx = kb.add(tb, ql);
                        let e = match w.table {
                            Some(tbl) => kb.load(tbl, idx, Type::F32),
                            None => kb.cf(0.0),
                        };
                        v = kb.insert(v, e, l as u8);
                    }
                    match (scaled, sc) {
                        (true, Some(a)) => kb.mul(v, a),
                        _ => v,
                    }
                }
            };
            for (tt, acc) in accs.iter_mut().enumerate().take(t) {
                let xi = kb.addi(k0, tt as i64 * k + j * 4);
                let xv = kb.load(xp, xi, F4);
                *acc = kb.fma(wv, xv, *acc);
            }
        }
        Ok(accs)
    })
}

fn codebook_loop(
    kb: &mut Kb,
    s: &Spec,
    w: &WParams,
    xo: Value,
    row: Value,
    inits: &[Value],
) -> R<Vec<Value>> {
    let Form::Codebook { c, bits, ig, og } = w.form else { return Ok(inits.to_vec()) };
    let (Some(codes), Some(books)) = (w.cb_codes, w.codebooks) else { return Ok(inits.to_vec()) };
    let (k, t) = (s.k as i64, s.t);
    let ni = k / ig as i64;
    let entries = 1i64 << bits;
    let ogc = kb.ci(og as i64);
    let o = kb.bin(BinaryOp::Udiv, row, ogc);
    let a = kb.bin(BinaryOp::Urem, row, ogc);
    let code_ty = if bits <= 8 { Type::I8 } else { Type::I16 };
    kb.for_n(0, ni, inits, |kb, i, accs| {
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
            for qd in 0..(ig / 4) as i64 {
                let bi = kb.addi(base, 4 * qd);
                let cv = kb.load(books, bi, F4);
                for (tt, acc) in accs.iter_mut().enumerate().take(t) {
                    let xi = kb.addi(xb, tt as i64 * k + 4 * qd);
                    let xv = kb.load(xo, xi, F4);
                    *acc = kb.fma(cv, xv, *acc);
                }
            }
        }
        Ok(accs)
    })
}

/// `y_t += Σ_e val[e]·x_t[col[e]]` over the row's outliers.
fn outliers(
    kb: &mut Kb,
    s: &Spec,
    o: common::CsrParams,
    xo: Value,
    row: Value,
    y: Vec<Value>,
) -> R<Vec<Value>> {
    let lo = kb.load(o.row_ptr, row, Type::I32);
    let r1 = kb.addi(row, 1);
    let hi = kb.load(o.row_ptr, r1, Type::I32);
    let one = kb.ci(1);
    kb.for_(lo, hi, one, &y, |kb, e, acc| {
        let c = kb.load(o.col, e, Type::I32);
        let v = kb.load(o.val, e, Type::F32);
        let mut out = Vec::with_capacity(acc.len());
        for (tt, &a) in acc.iter().enumerate() {
            let xi = kb.addi(c, (tt * s.k) as i64);
            let xv = kb.load(xo, xi, Type::F32);
            out.push(kb.fma(v, xv, a));
        }
        Ok(out)
    })
}
