//! `fuse-epilogue`: bias, residual add and SiLU gating become the `qlinear`'s epilogue. Gating
//! fuses gate_proj and up_proj into one kernel that reads both weights (a fused gate_up).

use qkc_ir::ops::QLinearAttrs;
use qkc_ir::{Dim, Graph, NodeId, Op};

use crate::pattern::{arg, name, qlinear, qrole, single_use, with_operand};
use crate::{Changed, Pass, PassContext};

/// The pass.
pub struct FuseEpilogue;

impl Pass for FuseEpilogue {
    fn name(&self) -> &'static str {
        "fuse-epilogue"
    }
    fn description(&self) -> &'static str {
        "add(qlinear, bias|residual) and mul(silu(qlinear(x; Wg)), qlinear(x; Wu)) into the qlinear"
    }
    fn run(&self, g: &mut Graph, cx: &mut PassContext) -> Changed {
        crate::pattern::sweep(g, |g, id| match g.node(id).op {
            Op::Add => add(g, id, cx),
            Op::Mul => gate(g, id, cx),
            _ => false,
        })
    }
}

/// Plain: no epilogue yet that an add would have to precede.
fn plain_tail(g: &Graph, q: NodeId, a: &QLinearAttrs) -> bool {
    a.out_act.is_none() && arg(g, q, "residual").is_none()
}

// add(qlinear(x; W), b)  == qlinear(x; W, bias = b)       for b: [N]       (W x + b)
// add(qlinear(x; W), r)  == qlinear(x; W, residual = r)   for r: [T.., N]  (either order)
fn add(g: &mut Graph, id: NodeId, cx: &mut PassContext) -> bool {
    let (Some(a), Some(b)) = (arg(g, id, "a"), arg(g, id, "b")) else {
        return false;
    };
    let mut last_why = None;
    // try the qlinear on either side (b broadcasts, so a bias is always `b`)
    for (q, other) in [(a, b), (b, a)] {
        if !matches!(g.node(q).op, Op::Qlinear(_)) || (q == b && g.node(a).ty != g.node(id).ty) {
            continue;
        }
        match try_add(g, id, q, other) {
            Ok(()) => return true,
            Err(why) => last_why = Some(why),
        }
    }
    if let Some(why) = last_why {
        cx.remark("fuse-epilogue", name(g, id), why);
    }
    false
}

fn try_add(g: &mut Graph, id: NodeId, q: NodeId, other: NodeId) -> Result<(), String> {
    let Some((attrs, ops)) = qlinear(g, q) else {
        return Err("not a qlinear".into());
    };
    if !single_use(g, q) || !plain_tail(g, q, &attrs) {
        return Err(format!(
            "not fused: %{} has other uses or already ends in a residual/out-quant",
            name(g, q)
        ));
    }
    let oshape = g.node(other).ty.shape().clone();
    let is_bias = oshape.rank() == 1
        && oshape.0.first().is_some_and(|d| *d != Dim::Tokens)
        && g.node(q).ty.shape().rank() > 1;
    let role = if is_bias {
        if arg(g, q, "bias").is_some() || attrs.silu_gate {
            return Err(
                "not fused: the bias would land after the gate or on an existing bias".into(),
            );
        }
        "bias"
    } else if g.node(other).ty == g.node(q).ty {
        "residual"
    } else {
        return Err(
            "not fused: the other operand is neither a bias [N] nor a residual of the same type"
                .into(),
        );
    };
    crate::pattern::rewrite(
        g,
        id,
        Op::Qlinear(attrs),
        &with_operand(ops, qrole(role), other),
    );
    Ok(())
}

// mul(silu(qlinear(x; Wg, Sg)), qlinear(x; Wu, Su)) == qlinear(x; Wg, Sg, up = Wu, up_outliers = Su, gate = silu)
// when both read the same x with the same prologue (rotation, act-quant) and have no epilogue.
fn gate(g: &mut Graph, id: NodeId, cx: &mut PassContext) -> bool {
    let (Some(a), Some(b)) = (arg(g, id, "a"), arg(g, id, "b")) else {
        return false;
    };
    let (s, u) = match (&g.node(a).op, &g.node(b).op) {
        (Op::Silu, Op::Qlinear(_)) => (a, b),
        (Op::Qlinear(_), Op::Silu) => (b, a),
        _ => return false,
    };
    let Some(qg) = arg(g, s, "x") else {
        return false;
    };
    let (Some((ga, gops)), Some((ua, _))) = (qlinear(g, qg), qlinear(g, u)) else {
        return false;
    };
    let same_input = arg(g, qg, "x") == arg(g, u, "x")
        && arg(g, qg, "r") == arg(g, u, "r")
        && ga.rotate == ua.rotate
        && ga.act == ua.act;
    let bare = |q: NodeId, at: &QLinearAttrs| {
        !at.silu_gate
            && at.out_act.is_none()
            && arg(g, q, "bias").is_none()
            && arg(g, q, "residual").is_none()
    };
    let why = if !same_input {
        Some("not fused: gate and up do not read the same input with the same rotation/act-quant")
    } else if !bare(qg, &ga) || !bare(u, &ua) {
        Some("not fused: gate or up already has an epilogue (bias, residual, gate, out-quant)")
    } else if !single_use(g, qg) || !single_use(g, s) || !single_use(g, u) {
        Some("not fused: gate, silu or up has other uses")
    } else if g.node(qg).ty != g.node(u).ty || g.node(id).ty != g.node(u).ty {
        Some("not fused: gate and up have different types")
    } else {
        None
    };
    if let Some(msg) = why {
        cx.remark("fuse-epilogue", name(g, id), msg);
        return false;
    }
    let mut ops = gops;
    if let Some(wu) = arg(g, u, "w") {
        ops = with_operand(ops, qrole("up"), wu);
    }
    if let Some(su) = arg(g, u, "outliers") {
        ops = with_operand(ops, qrole("up_outliers"), su);
    }
    crate::pattern::rewrite(
        g,
        id,
        Op::Qlinear(QLinearAttrs {
            silu_gate: true,
            ..ga
        }),
        &ops,
    );
    true
}
