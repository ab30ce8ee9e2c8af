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
    Op::Qlinear(QLinearAttrs::default())
        .role_index(name)
        .unwrap_or(usize::MAX)
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

/// Remove `id` if nothing uses it (and it is not a root: inputs and KV-cache attention), then
/// its operands in turn. Passes call this on what a rewrite orphaned, so the next pattern sees
/// true use counts.
pub fn erase_if_dead(g: &mut Graph, id: NodeId) {
    let mut stack = vec![id];
    while let Some(n) = stack.pop() {
        if !g.contains(n) || g.use_count(n) > 0 || crate::passes::dce::is_root(&g.node(n).op) {
            continue;
        }
        stack.extend(g.operands(n).into_iter().map(|(_, v)| v));
        g.remove(n);
    }
}

/// Rewrite `id` in place and erase what became dead.
pub fn rewrite(g: &mut Graph, id: NodeId, op: Op, operands: &[(usize, NodeId)]) {
    let old: Vec<NodeId> = g.operands(id).into_iter().map(|(_, v)| v).collect();
    g.rewrite(id, op, operands);
    for o in old {
        erase_if_dead(g, o);
    }
}

/// Redirect every use of `old` to `new` and erase what became dead.
pub fn replace(g: &mut Graph, old: NodeId, new: NodeId) {
    g.replace_uses(old, new);
    erase_if_dead(g, old);
}

/// Visit every node present when the sweep starts, in program order, skipping those an earlier
/// rewrite erased; `f` says whether it changed the graph.
pub fn sweep(g: &mut Graph, mut f: impl FnMut(&mut Graph, NodeId) -> bool) -> crate::Changed {
    let ids: Vec<NodeId> = g.nodes().collect();
    let mut changed = false;
    for id in ids {
        if g.contains(id) {
            changed |= f(g, id);
        }
    }
    crate::Changed::from_bool(changed)
}
