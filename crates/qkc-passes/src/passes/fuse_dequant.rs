//! `fuse-dequant`: a linear layer on a dequantized weight becomes one `qlinear`.

use qkc_ir::ops::QLinearAttrs;
use qkc_ir::{Graph, NodeId, Op};

use crate::pattern::{arg, is_quant, name, qrole};
use crate::{Changed, Pass, PassContext};

/// The pass.
pub struct FuseDequant;

impl Pass for FuseDequant {
    fn name(&self) -> &'static str {
        "fuse-dequant"
    }
    fn description(&self) -> &'static str {
        "linear(x, dequant(Wq)) -> qlinear(x; Wq)"
    }
    fn run(&self, g: &mut Graph, cx: &mut PassContext) -> Changed {
        let mut changed = false;
        let ids: Vec<NodeId> = g.nodes().collect();
        for id in ids {
            // linear(x, dequant(Wq) [, bias]) == qlinear(x; Wq [, bias])
            if !g.contains(id) || !matches!(g.node(id).op, Op::Linear) {
                continue;
            }
            let (Some(x), Some(wd)) = (arg(g, id, "x"), arg(g, id, "w")) else {
                continue;
            };
            if !matches!(g.node(wd).op, Op::Dequant) {
                continue;
            }
            let Some(wq) = arg(g, wd, "x").or_else(|| arg(g, wd, "w")) else {
                continue;
            };
            if !is_quant(g, wq) {
                cx.remark(
                    self.name(),
                    name(g, id),
                    "not fused: the dequantized value is not a quantized weight",
                );
                continue;
            }
            let mut ops = vec![(qrole("x"), x), (qrole("w"), wq)];
            if let Some(b) = arg(g, id, "bias") {
                ops.push((qrole("bias"), b));
            }
            ops.sort();
            crate::pattern::rewrite(g, id, Op::Qlinear(QLinearAttrs::default()), &ops);
            changed = true;
        }
        Changed::from_bool(changed)
    }
}
