//! `rope`, `embedding`, `transpose` (one item per output element or RoPE pair) and the Hadamard
//! `rotate` (one row per GPU block: FWHT butterflies in shared memory, then the had_K mix).

use qkc_ir::ops::RopeStyle;
use qkc_ir::Op;

use super::emit::{Split, E};
use super::{KernelCx, NodeCx};
use crate::entities::Value;
use crate::lower::{LowerError, Lowered};
use crate::ops::{BinaryOp, CastOp};
use crate::types::{Scalar, Type};

/// `theta^(−2i/hd)` for `i < hd/2`, exactly as the reference computes it.
pub(crate) fn inv_freq(theta: f64, hd: usize) -> Vec<f64> {
    (0..hd / 2).map(|i| theta.powf(-2.0 * i as f64 / hd as f64)).collect()
}

/// The element indices of RoPE pair `i` within a head.
pub(crate) fn rope_pair(e: &mut E, style: RopeStyle, hd: u64, i: Value) -> (Value, Value) {
    match style {
        RopeStyle::Half => {
            let b = e.addi(i, (hd / 2) as i64);
            (i, b)
        }
        RopeStyle::Interleaved => {
            let a = e.muli(i, 2);
            let b = e.addi(a, 1);
            (a, b)
        }
    }
}

/// Rotate the pair `(xa, xb)` by the angle `pos · inv[i]`: `(xa·c − xb·s, xa·s + xb·c)`.
pub(crate) fn rope_rotate(
    e: &mut E,
    inv: Value,
    pos: Value,
    i: Value,
    xa: Value,
    xb: Value,
) -> (Value, Value) {
    let p = e.cast(CastOp::Sitofp, pos, Type::F64);
    let f = e.load_raw(inv, i);
    let ang = e.mul(p, f);
    let (s, c) = e.sincos(ang);
    let xbs = e.mul(xb, s);
    let nxbs = neg(e, xbs);
    let ya = e.fma(xa, c, nxbs);
    let xbc = e.mul(xb, c);
    let yb = e.fma(xa, s, xbc);
    (ya, yb)
}

fn neg(e: &mut E, v: Value) -> Value {
    e.un(crate::ops::UnaryOp::Neg, v)
}

/// Load an integer id and make it i32.
fn load_i32(e: &mut E, p: Value, i: Value, s: Scalar) -> Value {
    let v = e.load_raw(p, i);
    match s.bits().cmp(&32) {
        std::cmp::Ordering::Less => e.cast(CastOp::Sext, v, Type::I32),
        std::cmp::Ordering::Greater => e.cast(CastOp::Trunc, v, Type::I32),
        std::cmp::Ordering::Equal => v,
    }
}

/// Standalone `rope` of `x: [T, heads·hd]` at positions `pos: i32[T]`: one item per pair.
pub(crate) fn rope(n: &NodeCx<'_>) -> Result<Lowered, LowerError> {
    let Op::Rope { theta, head_dim, style } = n.g.node(n.id).op.clone() else {
        return Err(n.err("not rope"));
    };
    let hd = u64::from(head_dim);
    let shape = n.out_shape();
    let w = *shape.last().unwrap_or(&0) as u64;
    if hd == 0 || hd % 2 != 0 || !w.is_multiple_of(hd) {
        return Err(n.err(format!("head_dim {hd} must be even and divide the last axis {w}")));
    }
    let numel: u64 = shape.iter().product::<usize>() as u64;
    let rows = numel / w;
    let npos = n.shape(n.req("pos")?).iter().product::<usize>() as u64;
    if npos != rows {
        return Err(n.err(format!("{npos} positions for {rows} rows")));
    }
    let pos_s = n.scalar(n.req("pos")?)?;
    if !pos_s.is_int() {
        return Err(n.err("positions must be integers"));
    }
    let pairs = numel / 2;
    let mut k = KernelCx::new(n, &format!("{rows}x{w}_hd{hd}"), Split::Items(pairs));
    let x = k.input("x", numel)?;
    let pos = k.input("pos", rows)?;
    let inv = k.constant("inv_freq", Scalar::F64, &inv_freq(theta, hd as usize));
    let y = k.output(numel)?;
    k.e.items(pairs, |e, item| {
        let t = e.divi(item, (w / 2) as i64);
        let rem = e.remi(item, (w / 2) as i64);
        let head = e.divi(rem, (hd / 2) as i64);
        let i = e.remi(rem, (hd / 2) as i64);
        let tb = e.muli(t, w as i64);
        let hb = e.muli(head, hd as i64);
        let base = e.add(tb, hb);
        let (a, b) = rope_pair(e, style, hd, i);
        let ia = e.add(base, a);
        let ib = e.add(base, b);
        let xa = e.load_f32(x, ia);
        let xb = e.load_f32(x, ib);
        let p = load_i32(e, pos, t, pos_s);
        let (ya, yb) = rope_rotate(e, inv, p, i, xa, xb);
        e.store_f32(ya, y, ia);
        e.store_f32(yb, y, ib);
    });
    k.finish("rope")
}

/// `embedding`: `y[t, :] = table[ids[t], :]` (ids clamped into the table, so a bad id reads a
/// valid row instead of out of bounds).
pub(crate) fn embedding(n: &NodeCx<'_>) -> Result<Lowered, LowerError> {
    let ts = n.shape(n.req("table")?);
    if ts.len() != 2 || ts[0] == 0 {
        return Err(n.err(format!("table shape {ts:?}: expected [V, D]")));
    }
    let (v, d) = (ts[0] as u64, ts[1] as u64);
    let ids_s = n.scalar(n.req("ids")?)?;
    if !ids_s.is_int() {
        return Err(n.err("ids must be integers"));
    }
    let nid = n.shape(n.req("ids")?).iter().product::<usize>() as u64;
    let items = nid * d;
    let mut k = KernelCx::new(n, &format!("{nid}x{v}x{d}"), Split::Items(items));
    let ids = k.input("ids", nid)?;
    let table = k.input("table", v * d)?;
    // a launch reads its ids and one table row per id, not the whole table
    let tb = u64::from(n.scalar(n.req("table")?)?.bytes());
    k.bytes_read = nid * u64::from(ids_s.bytes()) + items * tb;
    let y = k.output(items)?;
    k.e.items(items, |e, item| {
        let t = e.divi(item, d as i64);
        let j = e.remi(item, d as i64);
        let id = load_i32(e, ids, t, ids_s);
        let c0 = e.i32(0);
        let vmax = e.i32(v as i64 - 1);
        let id = e.bin(BinaryOp::Smax, id, c0);
        let id = e.bin(BinaryOp::Smin, id, vmax);
        let rb = e.muli(id, d as i64);
        let idx = e.add(rb, j);
        let val = e.load_f32(table, idx);
        e.store_f32(val, y, item);
    });
    k.finish("embedding")
}

/// `transpose` of the last two axes.
pub(crate) fn transpose(n: &NodeCx<'_>) -> Result<Lowered, LowerError> {
    let xs = n.shape(n.req("x")?);
    if xs.len() < 2 {
        return Err(n.err("transpose needs rank ≥ 2"));
    }
    let (m, c) = (xs[xs.len() - 2] as u64, xs[xs.len() - 1] as u64);
    let numel: u64 = xs.iter().product::<usize>() as u64;
    let same = n.scalar(n.req("x")?)? == n.scalar(n.id)?;
    let mut k = KernelCx::new(n, &format!("{m}x{c}"), Split::Items(numel));
    let x = k.input("x", numel)?;
    let y = k.output(numel)?;
    k.e.items(numel, |e, o| {
        let b = e.divi(o, (m * c) as i64);
        let rem = e.remi(o, (m * c) as i64);
        let j = e.divi(rem, m as i64);
        let i = e.remi(rem, m as i64);
        let bb = e.muli(b, (m * c) as i64);
        let ib = e.muli(i, c as i64);
        let s = e.add(bb, ib);
        let src = e.add(s, j);
        if same {
            let v = e.load_raw(x, src);
            e.store_raw(v, y, o);
        } else {
            let v = e.load_f32(x, src);
            e.store_f32(v, y, o);
        }
    });
    k.finish("transpose")
}

/// The Hadamard `rotate`: `y = H_n x` (or `H_nᵀ x`) per row, `H_n = (had_K ⊗ H_{n/K}) / √n`.
pub(crate) fn hadamard(n: &NodeCx<'_>, transpose: bool) -> Result<Lowered, LowerError> {
    let shape = n.out_shape();
    let nn = *shape.last().unwrap_or(&0);
    let kh = qkc_quant::hadamard::get_hadk(nn).map_err(|e| n.err(format!("Hadamard of size {nn}: {e}")))?;
    let m = (nn / kh) as u64;
    let nn = nn as u64;
    let kh = kh as u64;
    if n.kind() == super::emit::Kind::Gpu && nn * 4 + 64 > 48 * 1024 {
        return Err(n.err(format!("a row of {nn} f32 does not fit in 48 KiB of shared memory")));
    }
    let numel: u64 = shape.iter().product::<usize>() as u64;
    let rows = numel / nn;
    let mut k = KernelCx::new(n, &format!("{rows}x{nn}_k{kh}"), Split::Rows(rows));
    let x = k.input("x", numel)?;
    let signs = if kh > 1 {
        let t = qkc_quant::hadamard::had_k_table(kh as usize).map_err(|e| n.err(e.to_string()))?;
        let kk = kh as usize;
        let s: Vec<f64> = (0..kk * kk)
            .map(|ab| {
                let (a, b) = (ab / kk, ab % kk);
                f64::from(if transpose { t[b * kk + a] } else { t[a * kk + b] })
            })
            .collect();
        Some(k.constant("had_k", Scalar::F32, &s))
    } else {
        None
    };
    let y = k.output(numel)?;
    let xs = k.e.shared(Scalar::F32, nn as u32);
    k.e.setup_rows();
    let scale = 1.0 / (nn as f64).sqrt();
    k.e.rows(rows, |e, row| {
        let base = e.muli(row, nn as i64);
        let xr = e.offset(x, base);
        let yr = e.offset(y, base);
        let c0 = e.i32(0);
        let cn = e.i32(nn as i64);
        e.stride(c0, cn, &[], |e, i, _| {
            let v = e.load_f32(xr, i);
            e.store_raw(v, xs, i);
            vec![]
        });
        e.barrier();
        let half = m / 2;
        let mut h = 1;
        while h < m {
            let cp = e.i32((nn / 2) as i64);
            e.stride(c0, cp, &[], |e, q, _| {
                let seg = e.divi(q, half as i64);
                let w = e.remi(q, half as i64);
                let blk = e.divi(w, h as i64);
                let off = e.remi(w, h as i64);
                let sb = e.muli(seg, m as i64);
                let bb = e.muli(blk, 2 * h as i64);
                let i0 = e.add(sb, bb);
                let i = e.add(i0, off);
                let j = e.addi(i, h as i64);
                let a = e.load_raw(xs, i);
                let b = e.load_raw(xs, j);
                let s = e.add(a, b);
                let d = e.sub(a, b);
                e.store_raw(s, xs, i);
                e.store_raw(d, xs, j);
                vec![]
            });
            e.barrier();
            h *= 2;
        }
        let sc = e.f32(scale);
        e.stride(c0, cn, &[], |e, o, _| {
            let r = match signs {
                None => e.load_raw(xs, o),
                Some(sg) => {
                    let a = e.divi(o, m as i64);
                    let j = e.remi(o, m as i64);
                    let ab = e.muli(a, kh as i64);
                    let z = e.f32(0.0);
                    let ck = e.i32(kh as i64);
                    let c1 = e.i32(1);
                    let acc = e.for_(c0, ck, c1, &[z], |e, b, acc| {
                        let si = e.add(ab, b);
                        let sv = e.load_raw(sg, si);
                        let bm = e.muli(b, m as i64);
                        let xi = e.add(bm, j);
                        let xv = e.load_raw(xs, xi);
                        vec![e.fma(sv, xv, acc[0])]
                    });
                    acc[0]
                }
            };
            let r = e.mul(r, sc);
            e.store_f32(r, yr, o);
            vec![]
        });
    });
    k.finish("hadamard")
}
