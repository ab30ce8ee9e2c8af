//! The graph: ops as nodes of a petgraph `StableGraph`, values as edges, behind typed ids.
//!
//! Every node defines exactly one value (its result), named in the text form (`%h`). An edge
//! `a → b` with weight `r` says that `a`'s value is operand `r` (an index into
//! [`Op::roles`](crate::Op::roles)) of `b`. The graph also keeps the program order that the
//! printer follows, and the list of outputs.

use std::fmt;

use petgraph::stable_graph::{NodeIndex, StableDiGraph};
use petgraph::visit::EdgeRef;
use petgraph::Direction;

use crate::ops::Op;
use crate::types::Type;

/// A node (and the value it defines). Prints as `%n<index>`; the text form uses value names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(u32);

impl NodeId {
    fn ix(self) -> NodeIndex<u32> {
        NodeIndex::new(self.0 as usize)
    }
    fn from_ix(ix: NodeIndex<u32>) -> Self {
        NodeId(ix.index() as u32)
    }
    /// The raw index (stable for the graph's lifetime).
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "%n{}", self.0)
    }
}

/// A byte range in the source text the node was parsed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Span {
    /// Byte offset.
    pub offset: usize,
    /// Length in bytes.
    pub len: usize,
}

impl Span {
    /// A span.
    pub fn new(offset: usize, len: usize) -> Self {
        Span { offset, len }
    }
}

impl From<Span> for miette::SourceSpan {
    fn from(s: Span) -> Self {
        (s.offset, s.len).into()
    }
}

/// One op and the value it defines.
#[derive(Debug, Clone)]
pub struct Node {
    /// Value name, without the `%`.
    pub name: String,
    /// The op.
    pub op: Op,
    /// Declared result type.
    pub ty: Type,
    /// Where it was written, if parsed from text.
    pub span: Option<Span>,
    /// Comment lines (`// ...`, kept verbatim) and blank lines (`""`) printed above the op.
    pub doc: Vec<String>,
}

/// A graph of ops.
#[derive(Debug, Clone, Default)]
pub struct Graph {
    /// The graph's name (`graph @name`).
    pub name: String,
    g: StableDiGraph<Node, u8, u32>,
    order: Vec<NodeId>,
    outputs: Vec<NodeId>,
    /// Where the `return` was written.
    pub outputs_span: Option<Span>,
    /// Comment and blank lines above `graph @name {`.
    pub doc: Vec<String>,
    /// Comment and blank lines above `return`.
    pub return_doc: Vec<String>,
}

impl Graph {
    /// An empty graph.
    pub fn new(name: impl Into<String>) -> Self {
        Graph {
            name: name.into(),
            ..Default::default()
        }
    }

    /// Append a node with its operands `(role index, value)`.
    pub fn add_node(&mut self, node: Node, operands: &[(usize, NodeId)]) -> NodeId {
        let id = NodeId::from_ix(self.g.add_node(node));
        for &(role, src) in operands {
            self.g.add_edge(src.ix(), id.ix(), role as u8);
        }
        self.order.push(id);
        id
    }

    /// Add an edge: `src`'s value becomes operand `role` of `dst`.
    pub fn connect(&mut self, src: NodeId, dst: NodeId, role: usize) {
        self.g.add_edge(src.ix(), dst.ix(), role as u8);
    }

    /// Set operand `role` of `id` to `value`, or remove it with `None`.
    pub fn set_operand(&mut self, id: NodeId, role: usize, value: Option<NodeId>) {
        let old: Vec<_> = self
            .g
            .edges_directed(id.ix(), Direction::Incoming)
            .filter(|e| *e.weight() as usize == role)
            .map(|e| e.id())
            .collect();
        for e in old {
            self.g.remove_edge(e);
        }
        if let Some(v) = value {
            self.g.add_edge(v.ix(), id.ix(), role as u8);
        }
    }

    /// Replace the op of `id` and all its operands (`(role index, value)`, values defined before
    /// `id` in program order), keeping its name, type and position.
    pub fn rewrite(&mut self, id: NodeId, op: Op, operands: &[(usize, NodeId)]) {
        let old: Vec<_> = self
            .g
            .edges_directed(id.ix(), Direction::Incoming)
            .map(|e| e.id())
            .collect();
        for e in old {
            self.g.remove_edge(e);
        }
        self.node_mut(id).op = op;
        for &(role, v) in operands {
            self.g.add_edge(v.ix(), id.ix(), role as u8);
        }
    }

    /// Number of uses of `id`: operand slots plus appearances among the outputs.
    pub fn use_count(&self, id: NodeId) -> usize {
        self.g.edges_directed(id.ix(), Direction::Outgoing).count()
            + self.outputs.iter().filter(|&&o| o == id).count()
    }

    /// Append a node without source info.
    pub fn add(
        &mut self,
        name: impl Into<String>,
        op: Op,
        ty: Type,
        operands: &[(usize, NodeId)],
    ) -> NodeId {
        self.add_node(
            Node {
                name: name.into(),
                op,
                ty,
                span: None,
                doc: Vec::new(),
            },
            operands,
        )
    }

    /// The node.
    ///
    /// # Panics
    /// On an id from another graph or of a removed node (a bug in the caller).
    pub fn node(&self, id: NodeId) -> &Node {
        &self.g[id.ix()]
    }

    /// The node, mutably.
    pub fn node_mut(&mut self, id: NodeId) -> &mut Node {
        &mut self.g[id.ix()]
    }

    /// Whether `id` is a live node of this graph.
    pub fn contains(&self, id: NodeId) -> bool {
        self.g.contains_node(id.ix())
    }

    /// Nodes in program order.
    pub fn nodes(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.order.iter().copied()
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// No nodes?
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Operands of `id` as `(role index, value)`, sorted by role.
    pub fn operands(&self, id: NodeId) -> Vec<(usize, NodeId)> {
        let mut v: Vec<(usize, NodeId)> = self
            .g
            .edges_directed(id.ix(), Direction::Incoming)
            .map(|e| (*e.weight() as usize, NodeId::from_ix(e.source())))
            .collect();
        v.sort();
        v
    }

    /// The operand in role `role` (by name), if present.
    pub fn operand(&self, id: NodeId, role: &str) -> Option<NodeId> {
        let r = self.node(id).op.role_index(role)?;
        self.operands(id)
            .into_iter()
            .find(|&(i, _)| i == r)
            .map(|(_, v)| v)
    }

    /// Nodes that use `id`'s value (each once), in program order.
    pub fn users(&self, id: NodeId) -> Vec<NodeId> {
        let mut v: Vec<NodeId> = self
            .g
            .edges_directed(id.ix(), Direction::Outgoing)
            .map(|e| NodeId::from_ix(e.target()))
            .collect();
        v.sort_by_key(|n| self.position(*n));
        v.dedup();
        v
    }

    fn position(&self, id: NodeId) -> usize {
        self.order
            .iter()
            .position(|&n| n == id)
            .unwrap_or(usize::MAX)
    }

    /// The graph outputs.
    pub fn outputs(&self) -> &[NodeId] {
        &self.outputs
    }

    /// Set the outputs.
    pub fn set_outputs(&mut self, outputs: Vec<NodeId>) {
        self.outputs = outputs;
    }

    /// Find a node by value name.
    pub fn find(&self, name: &str) -> Option<NodeId> {
        self.nodes().find(|&n| self.node(n).name == name)
    }

    /// Replace every use of `old` (operands and outputs) by `new`.
    pub fn replace_uses(&mut self, old: NodeId, new: NodeId) {
        let edges: Vec<_> = self
            .g
            .edges_directed(old.ix(), Direction::Outgoing)
            .map(|e| (e.id(), e.target(), *e.weight()))
            .collect();
        for (e, target, w) in edges {
            self.g.remove_edge(e);
            self.g.add_edge(new.ix(), target, w);
        }
        for o in &mut self.outputs {
            if *o == old {
                *o = new;
            }
        }
    }

    /// Remove a node and its edges.
    pub fn remove(&mut self, id: NodeId) {
        self.g.remove_node(id.ix());
        self.order.retain(|&n| n != id);
        self.outputs.retain(|&n| n != id);
    }

    /// A topological order, or the node on a cycle.
    pub fn topo_order(&self) -> Result<Vec<NodeId>, NodeId> {
        petgraph::algo::toposort(&self.g, None)
            .map(|v| v.into_iter().map(NodeId::from_ix).collect())
            .map_err(|c| NodeId::from_ix(c.node_id()))
    }

    /// Restore program order to a topological order (stable where possible).
    pub fn reorder_topologically(&mut self) -> Result<(), NodeId> {
        let topo = self.topo_order()?;
        let pos: std::collections::HashMap<NodeId, usize> = self
            .order
            .iter()
            .enumerate()
            .map(|(i, &n)| (n, i))
            .collect();
        // Kahn's algorithm preferring the earliest original position keeps the order stable.
        let mut indeg: std::collections::HashMap<NodeId, usize> =
            topo.iter().map(|&n| (n, 0)).collect();
        for &n in &topo {
            for (_, src) in self.operands(n) {
                let _ = src;
                *indeg.entry(n).or_default() += 1;
            }
        }
        let mut ready: std::collections::BTreeSet<(usize, NodeId)> = topo
            .iter()
            .filter(|n| indeg[n] == 0)
            .map(|&n| (pos.get(&n).copied().unwrap_or(usize::MAX), n))
            .collect();
        let mut out = Vec::with_capacity(topo.len());
        while let Some(first) = ready.iter().next().copied() {
            ready.remove(&first);
            let n = first.1;
            out.push(n);
            for e in self.g.edges_directed(n.ix(), Direction::Outgoing) {
                let t = NodeId::from_ix(e.target());
                if let Some(d) = indeg.get_mut(&t) {
                    *d -= 1;
                    if *d == 0 {
                        ready.insert((pos.get(&t).copied().unwrap_or(usize::MAX), t));
                    }
                }
            }
        }
        self.order = out;
        Ok(())
    }
}

/// Structural equality: same name, same nodes in the same order (names, ops, types, operands by
/// position), same outputs. Source spans are ignored, so `parse(print(g)) == g`.
impl PartialEq for Graph {
    fn eq(&self, other: &Self) -> bool {
        if self.name != other.name || self.order.len() != other.order.len() {
            return false;
        }
        let pos = |g: &Graph, id: NodeId| g.order.iter().position(|&n| n == id);
        for (&a, &b) in self.order.iter().zip(&other.order) {
            let (na, nb) = (self.node(a), other.node(b));
            if na.name != nb.name || na.op != nb.op || na.ty != nb.ty {
                return false;
            }
            let oa: Vec<_> = self
                .operands(a)
                .into_iter()
                .map(|(r, v)| (r, pos(self, v)))
                .collect();
            let ob: Vec<_> = other
                .operands(b)
                .into_iter()
                .map(|(r, v)| (r, pos(other, v)))
                .collect();
            if oa != ob {
                return false;
            }
        }
        let oa: Vec<_> = self.outputs.iter().map(|&v| pos(self, v)).collect();
        let ob: Vec<_> = other.outputs.iter().map(|&v| pos(other, v)).collect();
        oa == ob
    }
}
