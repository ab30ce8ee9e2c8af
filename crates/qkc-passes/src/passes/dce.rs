//! `dce`: remove ops whose value nobody uses.
//!
//! Roots: the outputs, attention ops that append to a KV cache (a side effect on later calls),
//! and inputs (the graph's interface stays as written).

use std::collections::HashSet;

use qkc_ir::{Graph, NodeId, Op};

use crate::{Changed, Pass, PassContext};

/// The pass.
pub struct Dce;

/// Ops that stay even when unused.
pub fn is_root(op: &Op) -> bool {
    matches!(op, Op::Input { .. }) || matches!(op, Op::Attention(a) if a.cache.is_some())
}

impl Pass for Dce {
    fn name(&self) -> &'static str {
        "dce"
    }
    fn description(&self) -> &'static str {
        "remove ops whose value is unused"
    }
    fn run(&self, g: &mut Graph, _cx: &mut PassContext) -> Changed {
        let mut live: HashSet<NodeId> = HashSet::new();
        let mut stack: Vec<NodeId> = g.outputs().to_vec();
        stack.extend(g.nodes().filter(|&n| is_root(&g.node(n).op)));
        while let Some(n) = stack.pop() {
            if live.insert(n) {
                stack.extend(g.operands(n).into_iter().map(|(_, v)| v));
            }
        }
        let dead: Vec<NodeId> = g.nodes().filter(|n| !live.contains(n)).collect();
        for &n in &dead {
            g.remove(n);
        }
        Changed::from_bool(!dead.is_empty())
    }
}
