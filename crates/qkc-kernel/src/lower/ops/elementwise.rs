//! `add`, `mul` (the second operand broadcasts over leading dims: element `i` of `b` is
//! `b[i mod |b|]`), `silu` (`x / (1 + e^−x)`) and `cast`: one item per output element.

use qkc_ir::Op;

use super::emit::Split;
use super::{KernelCx, NodeCx};
use crate::lower::{LowerError, Lowered};
use crate::ops::{BinaryOp, CastOp};
use crate::types::Type;

/// Lower an elementwise node.
pub(crate) fn lower(n: &NodeCx<'_>) -> Result<Lowered, LowerError> {
    let numel: u64 = n.out_shape().iter().product::<usize>() as u64;
    let op = n.g.node(n.id).op.clone();
    let out_s = n.scalar(n.id)?;
    let mut k = KernelCx::new(n, &format!("{}_{}", out_s.name(), numel), Split::Items(numel));
    match op {
        Op::Add | Op::Mul => {
            let nb = n.shape(n.req("b")?).iter().product::<usize>() as u64;
            if nb == 0 || !numel.is_multiple_of(nb) {
                return Err(n.err(format!("`b` has {nb} elements, which do not tile the {numel} of `a`")));
            }
            let a = k.input("a", numel)?;
            let b = k.input("b", nb)?;
            let y = k.output(numel)?;
            let bop = if op == Op::Add { BinaryOp::Add } else { BinaryOp::Mul };
            k.e.items(numel, |e, i| {
                let av = e.load_f32(a, i);
                let bi = if nb == numel { i } else { e.remi(i, nb as i64) };
                let bv = e.load_f32(b, bi);
                let r = e.bin(bop, av, bv);
                e.store_f32(r, y, i);
            });
            k.finish(if op == Op::Add { "elementwise(add)" } else { "elementwise(mul)" })
        }
        Op::Silu => {
            let x = k.input("x", numel)?;
            let y = k.output(numel)?;
            k.e.items(numel, |e, i| {
                let v = e.load_f32(x, i);
                let nv = e.un(crate::ops::UnaryOp::Neg, v);
                let ex = e.exp(nv);
                let one = e.f32(1.0);
                let den = e.add(ex, one);
                let r = e.div(v, den);
                e.store_f32(r, y, i);
            });
            k.finish("elementwise(silu)")
        }
        Op::Cast => {
            let in_s = n.scalar(n.req("x")?)?;
            let x = k.input("x", numel)?;
            let y = k.output(numel)?;
            k.e.items(numel, |e, i| {
                let v = e.load_raw(x, i);
                if in_s.is_int() && out_s.is_int() {
                    let r = match in_s.bits().cmp(&out_s.bits()) {
                        std::cmp::Ordering::Equal => v,
                        std::cmp::Ordering::Less => e.cast(CastOp::Sext, v, Type::Scalar(out_s)),
                        std::cmp::Ordering::Greater => e.cast(CastOp::Trunc, v, Type::Scalar(out_s)),
                    };
                    e.store_raw(r, y, i);
                } else if in_s == out_s {
                    e.store_raw(v, y, i);
                } else if out_s.is_int() {
                    // float → int truncates toward zero (fptosi)
                    let f = e.widen_f32(v);
                    let r = e.cast(CastOp::Fptosi, f, Type::Scalar(out_s));
                    e.store_raw(r, y, i);
                } else {
                    let f = e.widen_f32(v);
                    e.store_f32(f, y, i);
                }
            });
            k.finish("elementwise(cast)")
        }
        _ => Err(n.err("not an elementwise op")),
    }
}
