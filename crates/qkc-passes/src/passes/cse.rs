//! `cse`: merge ops that compute the same value.
//!
//! `op(a, b) == op(a, b)`: two nodes with equal ops, equal operands and equal types are one
//! value. Weights bound to the same tensor with the same type are one value. Attention with a KV
//! cache is not pure (it appends to the cache) and is never merged; inputs are never merged.

use std::collections::HashMap;

use qkc_ir::{Graph, NodeId, Op};

use crate::{Changed, Pass, PassContext};

/// The pass.
pub struct Cse;

/// Bucket key: op name and operands `(role, value)`.
type Key = (&'static str, Vec<(usize, NodeId)>);

fn pure(op: &Op) -> bool {
    !matches!(op, Op::Input { .. }) && !matches!(op, Op::Attention(a) if a.cache.is_some())
}

impl Pass for Cse {
    fn name(&self) -> &'static str {
        "cse"
    }
    fn description(&self) -> &'static str {
        "merge identical ops (same op, operands and type)"
    }
    fn run(&self, g: &mut Graph, _cx: &mut PassContext) -> Changed {
        // bucket by (op name, operands); compare ops and types within a bucket
        let mut seen: HashMap<Key, Vec<NodeId>> = HashMap::new();
        let mut changed = false;
        let ids: Vec<NodeId> = g.nodes().collect();
        for id in ids {
            if !g.contains(id) || !pure(&g.node(id).op) {
                continue;
            }
            let key = (g.node(id).op.name(), g.operands(id));
            let bucket = seen.entry(key).or_default();
            bucket.retain(|&o| g.contains(o));
            let same = bucket
                .iter()
                .copied()
                .find(|&o| g.node(o).op == g.node(id).op && g.node(o).ty == g.node(id).ty);
            match same {
                Some(o) => {
                    crate::pattern::replace(g, id, o);
                    changed = true;
                }
                None => bucket.push(id),
            }
        }
        Changed::from_bool(changed)
    }
}
