//! `partition`: group the fused graph into kernels and name each kernel's specialization.
//!
//! Every compute op left after fusion is one kernel launch. Its *specialization key* lists
//! everything a code generator bakes in (op, scheme, N, K, rotation, outliers, epilogue, dtypes);
//! ops with equal keys share one compiled kernel, so identical layers across a model compile once.
//! `reshape` is a view (no kernel); sources (inputs, weights, constants) are data.

use std::collections::BTreeMap;
use std::fmt::Write;

use qkc_ir::ops::{ActQuant, RotKind, Rotation};
use qkc_ir::{Graph, NodeId, Op, Type};
use serde::Serialize;

/// One kernel to generate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KernelSpec {
    /// `k0`, `k1`, ... in first-use order.
    pub id: String,
    /// The op it implements.
    pub op: &'static str,
    /// The specialization key, human-readable.
    pub key: String,
    /// A stable 64-bit FNV-1a hash of `key`, in hex (the compile-cache key).
    pub hash: String,
    /// Values computed by this kernel, in program order (one launch each).
    pub instances: Vec<String>,
}

/// The kernels of a graph.
#[derive(Debug, Clone, Default, Serialize)]
pub struct KernelPlan {
    /// Distinct kernels.
    pub kernels: Vec<KernelSpec>,
    /// Launches per graph evaluation (sum of instances).
    pub launches: usize,
}

impl KernelPlan {
    /// A table for humans.
    pub fn table(&self) -> String {
        let mut s = format!(
            "{} kernel{}, {} launch{} per call\n",
            self.kernels.len(),
            if self.kernels.len() == 1 { "" } else { "s" },
            self.launches,
            if self.launches == 1 { "" } else { "es" }
        );
        let w = self
            .kernels
            .iter()
            .map(|k| k.op.len())
            .max()
            .unwrap_or(2)
            .max(2);
        let _ = writeln!(
            s,
            "{:<4}  {:<w$}  {:>5}  {:<16}  key",
            "id", "op", "uses", "hash"
        );
        for k in &self.kernels {
            let _ = writeln!(
                s,
                "{:<4}  {:<w$}  {:>5}  {:<16}  {}",
                k.id,
                k.op,
                k.instances.len(),
                k.hash,
                k.key
            );
            let _ = writeln!(
                s,
                "{:<4}  {:<w$}  {:>5}  {:<16}  values: %{}",
                "",
                "",
                "",
                "",
                k.instances.join(", %")
            );
        }
        s
    }
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    })
}

fn rot(r: &Rotation) -> String {
    let k = match r.kind {
        RotKind::Hadamard => "hadamard",
        RotKind::Dense => "dense",
    };
    if r.transpose {
        format!("{k}ᵀ")
    } else {
        k.to_string()
    }
}

fn act(a: &ActQuant) -> String {
    let group = a.group.map_or(String::new(), |g| format!(":g{g}"));
    format!("int{}{}{group}", a.bits, if a.sym { "" } else { ":asym" })
}

/// The key of a weight operand: its scheme (or dtype) and shape.
fn weight_key(g: &Graph, v: Option<NodeId>) -> String {
    v.map_or_else(String::new, |v| match &g.node(v).ty {
        Type::Quant { scheme, shape } => format!("{scheme}{shape}"),
        t => t.to_string(),
    })
}

/// The specialization key of a kernel op.
pub fn key(g: &Graph, id: NodeId) -> String {
    let node = g.node(id);
    let ty = &node.ty;
    let operand_types: Vec<String> = g
        .operands(id)
        .into_iter()
        .map(|(_, v)| g.node(v).ty.to_string())
        .collect();
    match &node.op {
        Op::Qlinear(q) => {
            let mut parts = vec![format!("w={}", weight_key(g, g.operand(id, "w")))];
            if let Some(x) = g.operand(id, "x") {
                parts.push(format!(
                    "x={}",
                    g.node(x).ty.dtype().map_or("?".into(), |d| d.to_string())
                ));
            }
            if let Some(r) = &q.rotate {
                parts.push(format!("rotate={}", rot(r)));
            }
            if let Some(a) = &q.act {
                parts.push(format!("act={}", act(a)));
            }
            for role in ["outliers", "up_outliers"] {
                if let Some(s) = g.operand(id, role) {
                    if let Type::Sparse { val, index, .. } = &g.node(s).ty {
                        parts.push(format!("{role}=csr<{val},{index}>"));
                    }
                }
            }
            if g.operand(id, "bias").is_some() {
                parts.push("bias".into());
            }
            if q.silu_gate {
                parts.push(format!(
                    "gate=silu(up={})",
                    weight_key(g, g.operand(id, "up"))
                ));
            }
            if g.operand(id, "residual").is_some() {
                parts.push("residual".into());
            }
            if let Some(a) = &q.out_act {
                parts.push(format!("out_act={}", act(a)));
            }
            format!("qlinear[{}]", parts.join(" "))
        }
        op => {
            let attrs: Vec<String> = op
                .attrs()
                .into_iter()
                .filter(|(k, _)| *k != "cache")
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let mut s = format!("{}({}) -> {ty}", op.name(), operand_types.join(", "));
            if !attrs.is_empty() {
                s.push_str(&format!(" {{{}}}", attrs.join(" ")));
            }
            s
        }
    }
}

/// Whether an op is a kernel launch (not a source and not a view).
pub fn is_kernel(op: &Op) -> bool {
    !op.is_source() && !matches!(op, Op::Reshape)
}

/// Partition a (fused) graph into kernels.
pub fn partition(g: &Graph) -> KernelPlan {
    let mut by_key: BTreeMap<String, usize> = BTreeMap::new();
    let mut plan = KernelPlan::default();
    for id in g.nodes() {
        let node = g.node(id);
        if !is_kernel(&node.op) {
            continue;
        }
        let k = key(g, id);
        let idx = *by_key.entry(k.clone()).or_insert_with(|| {
            plan.kernels.push(KernelSpec {
                id: format!("k{}", plan.kernels.len()),
                op: node.op.name(),
                hash: format!("{:016x}", fnv(&k)),
                key: k,
                instances: Vec::new(),
            });
            plan.kernels.len() - 1
        });
        plan.kernels[idx].instances.push(node.name.clone());
        plan.launches += 1;
    }
    plan
}
