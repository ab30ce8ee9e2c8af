//! Row reductions over the last axis: `rmsnorm`, `softmax`, `quantize_act`. One row per GPU
//! block (the block's threads stride over the row and combine with [`E::block_reduce`]); on the
//! CPU each chunk owns a range of rows.
//!
//! [`E::block_reduce`]: super::emit::E::block_reduce

use qkc_ir::ops::ActQuant;
use qkc_ir::Op;

use super::emit::Split;
use super::{KernelCx, NodeCx};
use crate::entities::Value;
use crate::lower::{LowerError, Lowered};
use crate::ops::{BinaryOp, CastOp, FloatCC, UnaryOp};
use crate::types::Type;

/// Lower a row op.
pub(crate) fn lower(n: &NodeCx<'_>) -> Result<Lowered, LowerError> {
    let shape = n.out_shape();
    let d = *shape.last().ok_or_else(|| n.err("a row op needs at least one axis"))? as u64;
    let numel: u64 = shape.iter().product::<usize>() as u64;
    if d == 0 {
        return Err(n.err("empty rows"));
    }
    let op = n.g.node(n.id).op.clone();
    // a grouped activation quantization is the per-row one over rows of `group` elements (the
    // groups of a token are contiguous along the last axis)
    let d = match op {
        Op::QuantizeAct(ActQuant { group: Some(g), .. }) => {
            let g = u64::from(g);
            if g == 0 || d % g != 0 {
                return Err(
                    n.err(format!("activation quantization group {g} does not divide the last axis ({d})"))
                );
            }
            g
        }
        _ => d,
    };
    let rows = numel / d;
    let mut k = KernelCx::new(n, &format!("{rows}x{d}"), Split::Rows(rows));
    let x = k.input("x", numel)?;
    let w = match op {
        Op::Rmsnorm { .. } => {
            let wn = n.shape(n.req("w")?).iter().product::<usize>() as u64;
            if wn != d {
                return Err(n.err(format!("the weight has {wn} elements for rows of {d}")));
            }
            Some(k.input("w", d)?)
        }
        _ => None,
    };
    let y = k.output(numel)?;
    k.e.setup_rows();
    let name = match op {
        Op::Rmsnorm { eps } => {
            let w = w.ok_or_else(|| n.err("missing weight"))?;
            k.e.rows(rows, |e, row| rmsnorm(e, row, d, eps, x, w, y));
            "rows(rmsnorm)"
        }
        Op::Softmax => {
            k.e.rows(rows, |e, row| softmax(e, row, d, x, y));
            "rows(softmax)"
        }
        Op::QuantizeAct(q) => {
            k.e.rows(rows, |e, row| quantize_act(e, row, d, q, x, y));
            "rows(quantize_act)"
        }
        _ => return Err(n.err("not a row op")),
    };
    k.finish(name)
}

type E = super::emit::E;

fn row_ptrs(e: &mut E, row: Value, d: u64, x: Value, y: Value) -> (Value, Value, Value, Value) {
    let base = e.muli(row, d as i64);
    let xr = e.offset(x, base);
    let yr = e.offset(y, base);
    let c0 = e.i32(0);
    let cd = e.i32(d as i64);
    (xr, yr, c0, cd)
}

/// `y = x · w / sqrt(mean(x²) + eps)`.
fn rmsnorm(e: &mut E, row: Value, d: u64, eps: f64, x: Value, w: Value, y: Value) {
    let (xr, yr, c0, cd) = row_ptrs(e, row, d, x, y);
    let z = e.f32(0.0);
    let part = e.stride(c0, cd, &[z], |e, i, acc| {
        let v = e.load_f32(xr, i);
        vec![e.fma(v, v, acc[0])]
    });
    let ss = e.block_reduce(part[0], BinaryOp::Add);
    let fd = e.f32(d as f64);
    let ms = e.div(ss, fd);
    let ce = e.f32(eps);
    let me = e.add(ms, ce);
    let rt = e.un(UnaryOp::Sqrt, me);
    let one = e.f32(1.0);
    let inv = e.div(one, rt);
    e.stride(c0, cd, &[], |e, i, _| {
        let v = e.load_f32(xr, i);
        let g = e.load_f32(w, i);
        let xn = e.mul(v, inv);
        let o = e.mul(xn, g);
        e.store_f32(o, yr, i);
        vec![]
    });
}

/// `y = e^(x − max) / Σ e^(x − max)` (the exponentials are recomputed in the last pass).
fn softmax(e: &mut E, row: Value, d: u64, x: Value, y: Value) {
    let (xr, yr, c0, cd) = row_ptrs(e, row, d, x, y);
    let ninf = e.f32(f64::NEG_INFINITY);
    let pm = e.stride(c0, cd, &[ninf], |e, i, acc| {
        let v = e.load_f32(xr, i);
        vec![e.bin(BinaryOp::Max, acc[0], v)]
    });
    let m = e.block_reduce(pm[0], BinaryOp::Max);
    let z = e.f32(0.0);
    let ps = e.stride(c0, cd, &[z], |e, i, acc| {
        let v = e.load_f32(xr, i);
        let t = e.sub(v, m);
        let ex = e.exp(t);
        vec![e.add(acc[0], ex)]
    });
    let s = e.block_reduce(ps[0], BinaryOp::Add);
    let one = e.f32(1.0);
    let inv = e.div(one, s);
    e.stride(c0, cd, &[], |e, i, _| {
        let v = e.load_f32(xr, i);
        let t = e.sub(v, m);
        let ex = e.exp(t);
        let o = e.mul(ex, inv);
        e.store_f32(o, yr, i);
        vec![]
    });
}

/// f64 `round` (half away from zero), as the reference uses: `sign(v)·floor(|v| + ½)`.
fn round_away(e: &mut E, v: Value) -> Value {
    let a = e.un(UnaryOp::Abs, v);
    let h = e.f64(0.5);
    let ah = e.add(a, h);
    let r = e.un(UnaryOp::Floor, ah);
    let z = e.f64(0.0);
    let neg = e.fcmp(FloatCC::Olt, v, z);
    let nr = e.un(UnaryOp::Neg, r);
    e.select(neg, nr, r)
}

fn clamp(e: &mut E, v: Value, lo: f64, hi: f64) -> Value {
    let l = e.f64(lo);
    let h = e.f64(hi);
    let a = e.bin(BinaryOp::Max, v, l);
    e.bin(BinaryOp::Min, a, h)
}

/// Per-row fake quantization, in f64 so every rounding decision is the reference's.
fn quantize_act(e: &mut E, row: Value, d: u64, q: ActQuant, x: Value, y: Value) {
    let (xr, yr, c0, cd) = row_ptrs(e, row, d, x, y);
    let z = e.f32(0.0);
    let to64 = |e: &mut E, v: Value| e.cast(CastOp::Fpext, v, Type::F64);
    if q.sym {
        let qmax = f64::from((1u32 << (q.bits - 1)) - 1);
        let pm = e.stride(c0, cd, &[z], |e, i, acc| {
            let v = e.load_f32(xr, i);
            let a = e.un(UnaryOp::Abs, v);
            vec![e.bin(BinaryOp::Max, acc[0], a)]
        });
        let amax = e.block_reduce(pm[0], BinaryOp::Max);
        let amax = to64(e, amax);
        let cq = e.f64(qmax);
        let s = e.div(amax, cq);
        let z64 = e.f64(0.0);
        let pos = e.fcmp(FloatCC::Ogt, s, z64);
        e.stride(c0, cd, &[], |e, i, _| {
            let v = e.load_f32(xr, i);
            let v = to64(e, v);
            let t = e.div(v, s);
            let r = round_away(e, t);
            let c = clamp(e, r, -qmax - 1.0, qmax);
            let o = e.mul(c, s);
            let o = e.select(pos, o, z64);
            let o = e.cast(CastOp::Fptrunc, o, Type::F32);
            e.store_f32(o, yr, i);
            vec![]
        });
    } else {
        let qmax = f64::from((1u32 << q.bits) - 1);
        let p = e.stride(c0, cd, &[z, z], |e, i, acc| {
            let v = e.load_f32(xr, i);
            vec![e.bin(BinaryOp::Min, acc[0], v), e.bin(BinaryOp::Max, acc[1], v)]
        });
        // min = −max(−x)
        let nlo = e.un(UnaryOp::Neg, p[0]);
        let nlo = e.block_reduce(nlo, BinaryOp::Max);
        let hi = e.block_reduce(p[1], BinaryOp::Max);
        let nlo = to64(e, nlo);
        let lo = e.un(UnaryOp::Neg, nlo);
        let hi = to64(e, hi);
        let cq = e.f64(qmax);
        let span = e.sub(hi, lo);
        let s = e.div(span, cq);
        let z64 = e.f64(0.0);
        let pos = e.fcmp(FloatCC::Ogt, s, z64);
        let zl = e.div(nlo, s);
        let zr = round_away(e, zl);
        let zp = e.select(pos, zr, z64);
        let zs = e.mul(zp, s);
        e.stride(c0, cd, &[], |e, i, _| {
            let v = e.load_f32(xr, i);
            let v = to64(e, v);
            let t = e.div(v, s);
            let r = round_away(e, t);
            let r = e.add(r, zp);
            let c = clamp(e, r, 0.0, qmax);
            let o = e.mul(c, s);
            let o = e.sub(o, zs);
            let o = e.select(pos, o, z64);
            let o = e.cast(CastOp::Fptrunc, o, Type::F32);
            e.store_f32(o, yr, i);
            vec![]
        });
    }
}
