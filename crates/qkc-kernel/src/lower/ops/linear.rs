//! Dense products: `linear` (`y = x·wᵀ + bias`, `w: [N, K]`), `matmul` (`y = a·b`, `b: [K, N]`)
//! and the dense `rotate` (`y = R x`, or `Rᵀ x`). One output element per GPU warp (lanes stride
//! over K, shuffle sum) and per CPU item. The matrix is read as `[N, K]`: a weight stored
//! `[K, N]` is transposed once at pack time; an activation `[K, N]` is read with strides.

use qkc_ir::ops::RotKind;
use qkc_ir::{Graph, NodeId, Op};

use super::emit::Split;
use super::{KernelCx, Layout, NodeCx};
use crate::lower::{LowerError, Lowered};

/// The layout [`super::pack`] gives weight operand `role` of node `id`.
pub(crate) fn weight_layout(g: &Graph, id: NodeId, role: &str) -> Layout {
    let is_weight = g.operand(id, role).is_some_and(|v| matches!(g.node(v).op, Op::Weight { .. }));
    let kn = match &g.node(id).op {
        Op::Matmul => role == "b",
        Op::Rotate(r) => r.kind == RotKind::Dense && r.transpose && role == "r",
        _ => false,
    };
    if is_weight && kn {
        Layout::Transposed
    } else {
        Layout::AsIs
    }
}

/// Lower `linear`, `matmul` or a dense `rotate`.
pub(crate) fn lower(n: &NodeCx<'_>) -> Result<Lowered, LowerError> {
    let op = n.g.node(n.id).op.clone();
    // (activation role, matrix role, matrix stored as [K, N]?)
    let (xr, wr, kn) = match &op {
        Op::Linear => ("x", "w", false),
        Op::Matmul => ("a", "b", true),
        Op::Rotate(r) if r.kind == RotKind::Dense => ("x", "r", r.transpose),
        _ => return Err(n.err("not a dense product")),
    };
    let xs = n.shape(n.req(xr)?);
    let ws = n.shape(n.req(wr)?);
    if ws.len() != 2 {
        return Err(n.err(format!("the matrix `{wr}` has shape {ws:?}; expected rank 2")));
    }
    let (nn, kk) = if kn { (ws[1], ws[0]) } else { (ws[0], ws[1]) };
    let k_x = *xs.last().unwrap_or(&0);
    if k_x != kk || kk == 0 || nn == 0 {
        return Err(n.err(format!("`{xr}` {xs:?} does not match `{wr}` {ws:?}")));
    }
    let rows = (xs.iter().product::<usize>() / kk) as u64;
    let (nn, kk) = (nn as u64, kk as u64);
    let out = n.out_shape();
    if out.iter().product::<usize>() as u64 != rows * nn {
        return Err(n.err(format!("result {out:?} is not {rows}×{nn}")));
    }
    let items = rows * nn;
    let mut k = KernelCx::new(n, &format!("{rows}x{nn}x{kk}"), Split::Warps(items));
    let layout = weight_layout(n.g, n.id, wr);
    // element (o, j) of the [N, K] view at o·so + j·sj
    let (so, sj) = if kn && layout == Layout::AsIs { (1, nn) } else { (kk, 1) };
    let x = k.input(xr, rows * kk)?;
    let w = k.input_laid(wr, nn * kk, layout)?;
    let bias = match (&op, n.operand("bias")) {
        (Op::Linear, Some(b)) => {
            let bn = n.shape(b).iter().product::<usize>() as u64;
            if bn != nn {
                return Err(n.err(format!("bias has {bn} elements for N = {nn}")));
            }
            Some(k.input("bias", nn)?)
        }
        _ => None,
    };
    let y = k.output(items)?;
    k.e.warps(items, |e, item| {
        let r = e.divi(item, nn as i64);
        let o = e.remi(item, nn as i64);
        let xb = e.muli(r, kk as i64);
        let xrow = e.offset(x, xb);
        let wb = e.muli(o, so as i64);
        let wrow = e.offset(w, wb);
        let c0 = e.i32(0);
        let ck = e.i32(kk as i64);
        let z = e.f32(0.0);
        let acc = e.stride(c0, ck, &[z], |e, j, acc| {
            let xv = e.load_f32(xrow, j);
            let wj = if sj == 1 { j } else { e.muli(j, sj as i64) };
            let wv = e.load_f32(wrow, wj);
            vec![e.fma(xv, wv, acc[0])]
        });
        let s = e.warp_sum(acc[0]);
        let s = match bias {
            Some(b) => {
                let bv = e.load_f32(b, o);
                e.add(s, bv)
            }
            None => s,
        };
        if e.gpu() {
            let lane = e.axis(crate::ops::Axis::Lane);
            let first = e.icmp(crate::ops::IntCC::Eq, lane, c0);
            e.if_(first, |e| e.store_f32(s, y, item));
        } else {
            e.store_f32(s, y, item);
        }
    });
    k.finish("dense_product")
}
