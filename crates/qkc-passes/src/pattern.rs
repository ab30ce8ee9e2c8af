//! Small matching helpers shared by the passes.

use qkc_ir::ops::QLinearAttrs;
use qkc_ir::{Graph, NodeId, Op, Type};

/// The value in operand `role` of `id`.
pub fn arg(g: &Graph, id: NodeId, role: &str) -> Option<NodeId> {
    g.operand(id, role)
}

/// Whether `id`'s value has exactly one use (operands and graph outputs counted).
pub fn single_use(g: &Graph, id: NodeId) -> bool {
    g.use_count(id) == 1
}

/// `(attrs, operands by role name)` of a qlinear.
pub fn qlinear(g: &Graph, id: NodeId) -> Option<(QLinearAttrs, Vec<(usize, NodeId)>)> {
    match &g.node(id).op {
        Op::Qlinear(q) => Some((*q, g.operands(id))),
        _ => None,
    }
}

/// Role index of `name` in qlinear's operand table.
pub fn qrole(name: &str) -> usize {
    Op::Qlinear(QLinearAttrs::default()).role_index(name).unwrap_or(usize::MAX)
}

/// Replace (or add) operand `role` in an operand list.
pub fn with_operand(mut ops: Vec<(usize, NodeId)>, role: usize, v: NodeId) -> Vec<(usize, NodeId)> {
    ops.retain(|(r, _)| *r != role);
    ops.push((role, v));
    ops.sort();
    ops
}

/// Is this a quantized weight value (a `q<...>` type)?
pub fn is_quant(g: &Graph, id: NodeId) -> bool {
    matches!(g.node(id).ty, Type::Quant { .. })
}

/// The name of a value, for remarks.
pub fn name(g: &Graph, id: NodeId) -> &str {
    &g.node(id).name
}
