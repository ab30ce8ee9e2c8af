//! `canonicalize`: put the graph in the form the fusion patterns expect.
//!
//! Shapes are static in qkc's types (only `T` is symbolic), so there is no shape arithmetic to
//! fold; what remains is moving transposes into the matmul and removing ops that do nothing.

use qkc_ir::ops::RotKind;
use qkc_ir::{Graph, NodeId, Op};

use crate::pattern::arg;
use crate::{Changed, Pass, PassContext};

/// The pass.
pub struct Canonicalize;

impl Pass for Canonicalize {
    fn name(&self) -> &'static str {
        "canonicalize"
    }
    fn description(&self) -> &'static str {
        "transposes into the matmul, drop no-op reshapes/casts/transpose pairs/rotation pairs"
    }
    fn run(&self, g: &mut Graph, _cx: &mut PassContext) -> Changed {
        crate::pattern::sweep(g, rewrite)
    }
}

fn rewrite(g: &mut Graph, id: NodeId) -> bool {
    match g.node(id).op.clone() {
        // matmul(x, transpose(W)) == linear(x, W)      (x·(Wᵀ) = x·Wᵀ)
        Op::Matmul => {
            let (Some(a), Some(b)) = (arg(g, id, "a"), arg(g, id, "b")) else {
                return false;
            };
            if !matches!(g.node(b).op, Op::Transpose) || g.node(b).ty.shape().rank() != 2 {
                return false;
            }
            let Some(w) = arg(g, b, "x") else {
                return false;
            };
            crate::pattern::rewrite(g, id, Op::Linear, &[(0, a), (1, w)]);
            true
        }
        // reshape(x) == x  when the shape does not change;  cast(x) == x  when the dtype does not
        Op::Reshape | Op::Cast => {
            let Some(x) = arg(g, id, "x") else {
                return false;
            };
            if g.node(x).ty != g.node(id).ty {
                return false;
            }
            crate::pattern::replace(g, id, x);
            true
        }
        // transpose(transpose(x)) == x
        Op::Transpose => {
            let Some(t) = arg(g, id, "x") else {
                return false;
            };
            match (&g.node(t).op, arg(g, t, "x")) {
                (Op::Transpose, Some(x)) if g.node(x).ty == g.node(id).ty => {
                    crate::pattern::replace(g, id, x);
                    true
                }
                _ => false,
            }
        }
        // rotate(rotate(x; R); Rᵀ) == x   (R orthogonal: Rᵀ R = I)
        Op::Rotate(outer) => {
            let Some(inner_id) = arg(g, id, "x") else {
                return false;
            };
            let Op::Rotate(inner) = g.node(inner_id).op else {
                return false;
            };
            let same_matrix = match outer.kind {
                RotKind::Hadamard => true,
                RotKind::Dense => {
                    arg(g, id, "r").is_some() && arg(g, id, "r") == arg(g, inner_id, "r")
                }
            };
            if inner.kind != outer.kind || inner.transpose == outer.transpose || !same_matrix {
                return false;
            }
            let Some(x) = arg(g, inner_id, "x") else {
                return false;
            };
            crate::pattern::replace(g, id, x);
            true
        }
        _ => false,
    }
}
