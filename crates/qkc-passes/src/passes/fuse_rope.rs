//! `fuse-rope`: RoPE on q and k becomes the attention kernel's prologue, so a decoder block
//! has no separate RoPE kernels.

use qkc_ir::ops::{AttentionAttrs, RopeAttrs};
use qkc_ir::{Graph, NodeId, Op};

use crate::pattern::{arg, name, single_use};
use crate::{Changed, Pass, PassContext};

/// The pass.
pub struct FuseRope;

impl Pass for FuseRope {
    fn name(&self) -> &'static str {
        "fuse-rope"
    }
    fn description(&self) -> &'static str {
        "attention(rope(q, pos), rope(k, pos), v) -> attention(q, k, v, pos) {rope}"
    }
    fn run(&self, g: &mut Graph, cx: &mut PassContext) -> Changed {
        let mut changed = false;
        let ids: Vec<NodeId> = g.nodes().collect();
        for id in ids {
            // attention(rope(q, p), rope(k, p), v) == attention(q, k, v, pos = p) {rope}
            if !g.contains(id) {
                continue;
            }
            let Op::Attention(a) = g.node(id).op.clone() else {
                continue;
            };
            if a.rope.is_some() {
                continue;
            }
            let (Some(qr), Some(kr), Some(v)) = (arg(g, id, "q"), arg(g, id, "k"), arg(g, id, "v"))
            else {
                continue;
            };
            let (
                Op::Rope {
                    theta: tq,
                    head_dim: hq,
                    style: sq,
                },
                Op::Rope {
                    theta: tk,
                    head_dim: hk,
                    style: sk,
                },
            ) = (g.node(qr).op.clone(), g.node(kr).op.clone())
            else {
                continue;
            };
            let (pq, pk) = (arg(g, qr, "pos"), arg(g, kr, "pos"));
            let why = if pq != pk || tq != tk || sq != sk {
                Some("not fused: q and k use different RoPE parameters or positions")
            } else if hq != a.head_dim || hk != a.head_dim {
                Some("not fused: RoPE head_dim differs from the attention's")
            } else if !single_use(g, qr) || !single_use(g, kr) {
                Some("not fused: the rotated q or k has other uses")
            } else {
                None
            };
            if let Some(msg) = why {
                cx.remark(self.name(), name(g, id), msg);
                continue;
            }
            let (Some(q), Some(k), Some(p)) = (arg(g, qr, "x"), arg(g, kr, "x"), pq) else {
                continue;
            };
            let attrs = AttentionAttrs {
                rope: Some(RopeAttrs {
                    theta: tq,
                    style: sq,
                }),
                ..a
            };
            crate::pattern::rewrite(
                g,
                id,
                Op::Attention(attrs),
                &[(0, q), (1, k), (2, v), (3, p)],
            );
            changed = true;
        }
        Changed::from_bool(changed)
    }
}
