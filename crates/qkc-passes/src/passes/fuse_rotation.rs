//! `fuse-rotation`: an online rotation of a `qlinear`'s input becomes its prologue (QuaRot,
//! SpinQuant); a rotation feeding a float linear layer is folded into the weight offline.

use qkc_ir::ops::QLinearAttrs;
use qkc_ir::{Graph, NodeId, Op, Type};

use crate::pattern::{arg, name, qlinear, qrole, single_use, with_operand};
use crate::{Changed, Pass, PassContext};

/// The pass.
pub struct FuseRotation;

impl Pass for FuseRotation {
    fn name(&self) -> &'static str {
        "fuse-rotation"
    }
    fn description(&self) -> &'static str {
        "qlinear(rotate(x; R); W) -> qlinear(x; W, rotate=R); linear(rotate(x; H), W) -> linear(x, W·H) offline"
    }
    fn run(&self, g: &mut Graph, cx: &mut PassContext) -> Changed {
        crate::pattern::sweep(g, |g, id| match g.node(id).op {
            Op::Qlinear(_) => online(g, id, cx),
            Op::Linear => offline(g, id, cx),
            _ => false,
        })
    }
}

// qlinear(rotate(x; R); W, S) == qlinear(x; W, S, rotate=R)     (qlinear computes (W+S)·R x)
// The rotate node stays for its other users (each kernel rotates x once in its prologue).
fn online(g: &mut Graph, id: NodeId, cx: &mut PassContext) -> bool {
    let Some((attrs, ops)) = qlinear(g, id) else {
        return false;
    };
    let Some(xr) = arg(g, id, "x") else {
        return false;
    };
    let Op::Rotate(r) = g.node(xr).op else {
        return false;
    };
    // (an act-quant already in the qlinear is fine: it applies after R, as before)
    if attrs.rotate.is_some() {
        cx.remark(
            "fuse-rotation",
            name(g, id),
            "not fused: the qlinear already rotates its input",
        );
        return false;
    }
    let Some(x) = arg(g, xr, "x") else {
        return false;
    };
    let mut ops = with_operand(ops, qrole("x"), x);
    if let Some(m) = arg(g, xr, "r") {
        ops = with_operand(ops, qrole("r"), m);
    }
    crate::pattern::rewrite(
        g,
        id,
        Op::Qlinear(QLinearAttrs {
            rotate: Some(r),
            ..attrs
        }),
        &ops,
    );
    true
}

// linear(rotate(x; H), W) == linear(x, W·H)   (W (H x) = (W H) x): the weight is transformed
// once at load and records it as `fold`; only for a float weight with no other use.
fn offline(g: &mut Graph, id: NodeId, cx: &mut PassContext) -> bool {
    let (Some(xr), Some(w)) = (arg(g, id, "x"), arg(g, id, "w")) else {
        return false;
    };
    let Op::Rotate(r) = g.node(xr).op else {
        return false;
    };
    let Op::Weight { fold: None, .. } = g.node(w).op else {
        cx.remark(
            "fuse-rotation",
            name(g, id),
            "not folded: the weight is not a plain checkpoint tensor",
        );
        return false;
    };
    let float = matches!(g.node(w).ty, Type::Tensor { dtype, .. } if dtype.is_float());
    if !float || !single_use(g, w) || r.kind != qkc_ir::ops::RotKind::Hadamard {
        cx.remark(
            "fuse-rotation",
            name(g, id),
            "not folded: needs a float weight used only here and a Hadamard rotation",
        );
        return false;
    }
    let Some(x) = arg(g, xr, "x") else {
        return false;
    };
    if let Op::Weight { fold, .. } = &mut g.node_mut(w).op {
        *fold = Some(r);
    }
    let mut ops = vec![(0, x), (1, w)];
    if let Some(b) = arg(g, id, "bias") {
        ops.push((2, b));
    }
    crate::pattern::rewrite(g, id, Op::Linear, &ops);
    true
}
