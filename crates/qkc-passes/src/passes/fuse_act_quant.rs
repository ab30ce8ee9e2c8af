//! `fuse-act-quant`: per-token activation quantization becomes the `qlinear`'s prologue (QuaRot
//! W4A4/W8A8), and a quantization of a `qlinear`'s output becomes its epilogue.

use qkc_ir::ops::QLinearAttrs;
use qkc_ir::{Graph, NodeId, Op};

use crate::pattern::{arg, name, qlinear, qrole, single_use, with_operand};
use crate::{Changed, Pass, PassContext};

/// The pass.
pub struct FuseActQuant;

impl Pass for FuseActQuant {
    fn name(&self) -> &'static str {
        "fuse-act-quant"
    }
    fn description(&self) -> &'static str {
        "qlinear(quantize_act(x)) -> qlinear(x; act); quantize_act(qlinear(..)) -> qlinear(..; out_act)"
    }
    fn run(&self, g: &mut Graph, cx: &mut PassContext) -> Changed {
        crate::pattern::sweep(g, |g, id| match g.node(id).op {
            Op::Qlinear(_) => prologue(g, id, cx),
            Op::QuantizeAct(_) => epilogue(g, id, cx),
            _ => false,
        })
    }
}

// qlinear(quantize_act(x); W) == qlinear(x; W, act)      (qlinear applies Q to its input)
// Only without a rotation: qlinear computes Q(R(x)), so a Q that precedes R cannot move in.
fn prologue(g: &mut Graph, id: NodeId, cx: &mut PassContext) -> bool {
    let Some((attrs, ops)) = qlinear(g, id) else {
        return false;
    };
    let Some(xq) = arg(g, id, "x") else {
        return false;
    };
    let Op::QuantizeAct(a) = g.node(xq).op else {
        return false;
    };
    let Some(x) = arg(g, xq, "x") else {
        return false;
    };
    if attrs.act.is_some() || attrs.rotate.is_some() {
        cx.remark("fuse-act-quant", name(g, id), "not fused: the qlinear already rotates or quantizes its input, and Q must come after R");
        return false;
    }
    let ops = with_operand(ops, qrole("x"), x);
    crate::pattern::rewrite(
        g,
        id,
        Op::Qlinear(QLinearAttrs {
            act: Some(a),
            ..attrs
        }),
        &ops,
    );
    true
}

// quantize_act(qlinear(x; W)) == qlinear(x; W, out_act)   (Q applied to the kernel's output)
fn epilogue(g: &mut Graph, id: NodeId, cx: &mut PassContext) -> bool {
    let Op::QuantizeAct(a) = g.node(id).op else {
        return false;
    };
    let Some(q) = arg(g, id, "x") else {
        return false;
    };
    let Some((attrs, ops)) = qlinear(g, q) else {
        return false;
    };
    if attrs.out_act.is_some() || !single_use(g, q) {
        cx.remark(
            "fuse-act-quant",
            name(g, id),
            format!("not fused: %{} is also used unquantized", name(g, q)),
        );
        return false;
    }
    crate::pattern::rewrite(
        g,
        id,
        Op::Qlinear(QLinearAttrs {
            out_act: Some(a),
            ..attrs
        }),
        &ops,
    );
    true
}
