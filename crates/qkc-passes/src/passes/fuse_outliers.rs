//! `fuse-outliers`: the sparse-outlier add becomes the `qlinear`'s CSR epilogue.

use qkc_ir::{Graph, NodeId, Op, Type};

use crate::pattern::{arg, name, qlinear, qrole, single_use, with_operand};
use crate::{Changed, Pass, PassContext};

/// The pass.
pub struct FuseOutliers;

/// Look through a `cast` that keeps the shape (an intermediate cast of the spmm result).
fn through_cast(g: &Graph, v: NodeId) -> NodeId {
    match (&g.node(v).op, arg(g, v, "x")) {
        (Op::Cast, Some(x)) if single_use(g, v) => x,
        _ => v,
    }
}

impl Pass for FuseOutliers {
    fn name(&self) -> &'static str {
        "fuse-outliers"
    }
    fn description(&self) -> &'static str {
        "add(qlinear(x; Wq), spmm(S, x)) -> qlinear(x; Wq, outliers = S)"
    }
    fn run(&self, g: &mut Graph, cx: &mut PassContext) -> Changed {
        let mut changed = false;
        let ids: Vec<NodeId> = g.nodes().collect();
        for id in ids {
            // add(qlinear(x; W), spmm(S, x)) == qlinear(x; W, outliers=S)   ((W + S)·x = W·x + S·x)
            // (either operand order; the spmm may sit behind a cast)
            if !g.contains(id) || !matches!(g.node(id).op, Op::Add) {
                continue;
            }
            let (Some(a), Some(b)) = (arg(g, id, "a"), arg(g, id, "b")) else {
                continue;
            };
            let (a, b) = (through_cast(g, a), through_cast(g, b));
            let (q, sp) = match (&g.node(a).op, &g.node(b).op) {
                (Op::Qlinear(_), Op::Spmm) => (a, b),
                (Op::Spmm, Op::Qlinear(_)) => (b, a),
                _ => continue,
            };
            let Some((attrs, ops)) = qlinear(g, q) else {
                continue;
            };
            let (Some(s), Some(sx), Some(qx)) = (arg(g, sp, "s"), arg(g, sp, "x"), arg(g, q, "x"))
            else {
                continue;
            };
            let why = if sx != qx {
                Some(format!(
                    "not fused: %{} multiplies %{} but the qlinear reads %{}",
                    name(g, sp),
                    name(g, sx),
                    name(g, qx)
                ))
            } else if arg(g, q, "outliers").is_some() {
                Some("not fused: the qlinear already has outliers".into())
            } else if attrs.silu_gate
                || attrs.out_act.is_some()
                || attrs.rotate.is_some()
                || attrs.act.is_some()
                || arg(g, q, "residual").is_some()
            {
                Some("not fused: the qlinear already has a rotation, act-quant, gate or residual that the outlier add would have to precede".into())
            } else if !single_use(g, q) {
                Some(format!(
                    "not fused: %{} has other uses that need it without outliers",
                    name(g, q)
                ))
            } else if g.node(s).ty.shape() != g.node(arg(g, q, "w").unwrap_or(s)).ty.shape() {
                Some(format!(
                    "not fused: outliers {} do not match the weight's shape",
                    g.node(s).ty
                ))
            } else if g.node(id).ty != g.node(q).ty || !matches!(g.node(s).ty, Type::Sparse { .. })
            {
                Some("not fused: the add changes the type".into())
            } else {
                None
            };
            if let Some(msg) = why {
                cx.remark(self.name(), name(g, id), msg);
                continue;
            }
            crate::pattern::rewrite(
                g,
                id,
                g.node(q).op.clone(),
                &with_operand(ops, qrole("outliers"), s),
            );
            let _ = attrs;
            changed = true;
        }
        Changed::from_bool(changed)
    }
}
