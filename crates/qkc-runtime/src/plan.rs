//! What every target's program shares: which kernels to compile, which buffers to allocate, and
//! what each launch's arguments are. [`Plan::build`] lowers every kernel node of a fused graph,
//! compiles each distinct kernel once (through the target's `compile` callback), binds the
//! weights through the interpreter's loader and packs them once. A target then allocates the
//! buffers in its own memory and launches.

use std::collections::HashMap;
use std::time::Instant;

use qkc_ir::interp::{Interpreter, StoredWeight, Weights};
use qkc_ir::{DType, Graph, NodeId, Op, Type};
use qkc_kernel::lower::{self, Binding, CacheHalf, LowerOptions, Lowered, WeightData};

use crate::buffer::{dtype_size, encode};
use crate::RuntimeError;

/// One compiled kernel.
pub struct CompiledKernel<C> {
    /// What lowering produced.
    pub lowered: Lowered,
    /// The target's code (JIT'd function, loaded PTX module, ...).
    pub code: C,
    /// Code generation time in milliseconds.
    pub compile_ms: f64,
}

/// Where a launch argument comes from.
#[derive(Clone, Debug)]
pub(crate) enum Arg {
    Value(NodeId),
    Packed(usize),
    Const(usize),
    Cache(String, CacheHalf),
    /// A cache's length: the address of a one-element i32 buffer (see `Binding::Pos`).
    Pos(String),
    Scratch(usize),
    /// A buffer shared by a node's kernels (same storage as scratch, never zeroed).
    Temp(usize),
}

/// One launch of a kernel in program order.
#[derive(Clone, Debug)]
pub struct LaunchInfo {
    /// The graph value it computes.
    pub value: String,
    /// Index into the program's kernels.
    pub kernel: usize,
}

pub(crate) struct Launch {
    pub info: LaunchInfo,
    pub node: NodeId,
    pub args: Vec<Arg>,
    pub cache: Option<String>,
    /// Whether it writes the node's value (a prologue kernel writes only its temps).
    pub writes_value: bool,
}

/// A KV cache's size: f32 `[max, row]`.
pub(crate) struct CacheSpec {
    pub row: usize,
    pub max: usize,
}

pub(crate) struct Plan<C> {
    pub g: Graph,
    pub tokens: usize,
    pub kernels: Vec<CompiledKernel<C>>,
    pub launches: Vec<Launch>,
    /// Nodes that own an activation buffer, with its byte size and initial bytes (consts).
    pub values: Vec<(NodeId, usize, Option<Vec<u8>>)>,
    pub alias: HashMap<NodeId, NodeId>,
    pub packed: Vec<Vec<u8>>,
    pub consts: Vec<Vec<u8>>,
    pub scratch: Vec<usize>,
    pub caches: HashMap<String, CacheSpec>,
    pub build_ms: f64,
}

pub(crate) fn dtype_of(g: &Graph, id: NodeId) -> Option<DType> {
    match &g.node(id).ty {
        Type::Tensor { dtype, .. } => Some(*dtype),
        _ => None,
    }
}

pub(crate) fn dims(g: &Graph, id: NodeId, tokens: usize) -> Vec<usize> {
    g.node(id).ty.shape().resolve(tokens)
}

fn graph_err(s: String) -> RuntimeError {
    RuntimeError::Graph(s)
}

/// A weight to pack for a node's kernels: packing runs after lowering, on every core (it is
/// most of a model's start-up: unpacking, re-laying out and checking each weight against its
/// reference dequantization).
struct PackJob<'w> {
    id: NodeId,
    role: String,
    opts: LowerOptions,
    w: WeightData<'w>,
    /// The buffers the kernels bind (name → index in `Plan::packed`).
    slots: Vec<(String, usize)>,
}

/// The stored weight of `id`'s operand `role`.
fn weight_data<'b>(
    g: &Graph,
    bound: &'b Interpreter<'_>,
    id: NodeId,
    role: &str,
) -> Result<WeightData<'b>, RuntimeError> {
    let name = &g.node(id).name;
    let w = g
        .operand(id, role)
        .ok_or_else(|| graph_err(format!("%{name}: no `{role}` operand")))?;
    let stored = bound.stored_weight(w).ok_or_else(|| {
        graph_err(format!(
            "%{name}: operand `{role}` (%{}) is not a weight",
            g.node(w).name
        ))
    })?;
    Ok(match stored {
        StoredWeight::Dense(t) => WeightData::Dense(&t.data),
        StoredWeight::Quant(q) => WeightData::Quant(q),
        StoredWeight::Sparse(c) => WeightData::Sparse(c),
    })
}

/// Pack every job, largest first, on up to `available_parallelism` threads; results in job
/// order.
fn pack_all(
    g: &Graph,
    jobs: &[PackJob<'_>],
) -> Vec<Result<Vec<qkc_kernel::lower::PackedBuffer>, RuntimeError>> {
    let size = |j: &PackJob<'_>| match j.w {
        WeightData::Dense(d) => d.len(),
        WeightData::Quant(q) => q.n * q.k,
        WeightData::Sparse(c) => c.val.len(),
    };
    let mut order: Vec<usize> = (0..jobs.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(size(&jobs[i])));
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(jobs.len())
        .max(1);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let run = |i: usize| {
        let j = &jobs[i];
        lower::pack(g, j.id, &j.role, j.w, &j.opts).map_err(RuntimeError::from)
    };
    let done: Option<Vec<(usize, Result<_, RuntimeError>)>> = std::thread::scope(|sc| {
        let work = || {
            let mut out = Vec::new();
            loop {
                let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(&i) = order.get(k) else { break };
                out.push((i, run(i)));
            }
            out
        };
        let handles: Vec<_> = (1..threads).map(|_| sc.spawn(work)).collect();
        let mut all = work();
        for h in handles {
            all.extend(h.join().ok()?);
        }
        Some(all)
    });
    let mut out: Vec<Result<_, RuntimeError>> = (0..jobs.len())
        .map(|_| Err(graph_err("a packing thread panicked".into())))
        .collect();
    for (i, r) in done.unwrap_or_default() {
        out[i] = r;
    }
    out
}

impl<C> Plan<C> {
    /// Lower and compile `g` (after fusion) for `tokens` tokens; pack its weights.
    pub fn build(
        g: &Graph,
        weights: &Weights,
        lopts: &LowerOptions,
        mut compile: impl FnMut(&Lowered) -> Result<C, RuntimeError>,
    ) -> Result<Self, RuntimeError> {
        let t0 = Instant::now();
        let tokens = lopts.tokens;
        if tokens == 0 {
            return Err(graph_err("T (tokens) must be at least 1".into()));
        }
        let bound = Interpreter::new(g, weights)?;
        let order = g
            .topo_order()
            .map_err(|_| graph_err("the graph has a cycle".into()))?;
        let mut p = Plan {
            g: g.clone(),
            tokens,
            kernels: Vec::new(),
            launches: Vec::new(),
            values: Vec::new(),
            alias: HashMap::new(),
            packed: Vec::new(),
            consts: Vec::new(),
            scratch: Vec::new(),
            caches: HashMap::new(),
            build_ms: 0.0,
        };
        let mut by_text: HashMap<String, usize> = HashMap::new();
        let mut jobs: Vec<PackJob<'_>> = Vec::new();
        for &id in &order {
            let node = g.node(id);
            match &node.op {
                Op::Weight { .. } => continue,
                Op::Reshape => {
                    let src =
                        g.operands(id).first().map(|&(_, v)| v).ok_or_else(|| {
                            graph_err(format!("%{}: reshape of nothing", node.name))
                        })?;
                    let root = *p.alias.get(&src).unwrap_or(&src);
                    p.alias.insert(id, root);
                    continue;
                }
                Op::Input { .. } => {
                    p.add_value(id, None)?;
                    continue;
                }
                Op::Const { value } => {
                    let d = dtype_of(g, id).ok_or_else(|| {
                        graph_err(format!("%{}: const of a non-tensor type", node.name))
                    })?;
                    p.add_value(id, Some(encode(d, value)))?;
                    continue;
                }
                _ => {}
            }
            // per node: options refined from its bound weights (f16 stats for the a8g GEMVs
            // when exact), the same for its lowering and its packing
            let nopts = lower::node_options(g, id, lopts, &|role| {
                let w = g.operand(id, role)?;
                Some(match bound.stored_weight(w)? {
                    StoredWeight::Dense(t) => WeightData::Dense(&t.data),
                    StoredWeight::Quant(q) => WeightData::Quant(q),
                    StoredWeight::Sparse(c) => WeightData::Sparse(c),
                })
            });
            let lopts = &nopts;
            let lowered = lower::lower(g, id, lopts)?;
            p.add_value(id, None)?;
            let mut packed_here: HashMap<String, usize> = HashMap::new();
            let mut temps_here: HashMap<String, usize> = HashMap::new();
            let stages: Vec<&Lowered> = lowered
                .pre
                .iter()
                .chain(std::iter::once(&lowered))
                .collect();
            let nstages = stages.len();
            for (si, stage) in stages.into_iter().enumerate() {
                let text = qkc_kernel::print(&stage.kernel);
                let kidx = match by_text.get(&text) {
                    Some(&i) => i,
                    None => {
                        let c0 = Instant::now();
                        let code = compile(stage)?;
                        p.kernels.push(CompiledKernel {
                            lowered: stage.clone(),
                            code,
                            compile_ms: c0.elapsed().as_secs_f64() * 1e3,
                        });
                        by_text.insert(text, p.kernels.len() - 1);
                        p.kernels.len() - 1
                    }
                };
                let mut args = Vec::with_capacity(stage.bindings.len());
                let mut cache = None;
                for b in &stage.bindings {
                    args.push(match b {
                        Binding::Operand { role } => {
                            let v = g.operand(id, role).ok_or_else(|| {
                                graph_err(format!("%{}: no `{role}` operand", node.name))
                            })?;
                            Arg::Value(*p.alias.get(&v).unwrap_or(&v))
                        }
                        Binding::Output => Arg::Value(id),
                        Binding::Packed { role, buffer } => {
                            // packed after the loop, in parallel (see `PackJob`); a slot per
                            // buffer the kernels bind now
                            let job = match packed_here.get(role) {
                                Some(&j) => j,
                                None => {
                                    let w = weight_data(g, &bound, id, role)?;
                                    jobs.push(PackJob {
                                        id,
                                        role: role.clone(),
                                        opts: *lopts,
                                        w,
                                        slots: Vec::new(),
                                    });
                                    packed_here.insert(role.clone(), jobs.len() - 1);
                                    jobs.len() - 1
                                }
                            };
                            let slots = &mut jobs[job].slots;
                            let idx = match slots.iter().find(|(n, _)| n == buffer) {
                                Some(&(_, i)) => i,
                                None => {
                                    p.packed.push(Vec::new());
                                    slots.push((buffer.clone(), p.packed.len() - 1));
                                    p.packed.len() - 1
                                }
                            };
                            Arg::Packed(idx)
                        }
                        Binding::Const { data, .. } => {
                            p.consts.push(data.clone());
                            Arg::Const(p.consts.len() - 1)
                        }
                        Binding::Temp { name, elem, len } => {
                            let i = *temps_here.entry(name.clone()).or_insert_with(|| {
                                p.scratch.push(*len as usize * elem.bytes() as usize);
                                p.scratch.len() - 1
                            });
                            Arg::Temp(i)
                        }
                        Binding::Scratch { bytes } => {
                            p.scratch.push(*bytes as usize);
                            Arg::Scratch(p.scratch.len() - 1)
                        }
                        Binding::Cache(half) => {
                            let name = p.cache_for(id)?;
                            cache = Some(name.clone());
                            Arg::Cache(name, *half)
                        }
                        Binding::Pos => {
                            let name = p.cache_for(id)?;
                            cache = Some(name.clone());
                            Arg::Pos(name)
                        }
                    });
                }
                let value = if si + 1 == nstages {
                    node.name.clone()
                } else {
                    format!("{}:pre{si}", node.name)
                };
                p.launches.push(Launch {
                    info: LaunchInfo {
                        value,
                        kernel: kidx,
                    },
                    node: id,
                    writes_value: stage.bindings.iter().any(|b| matches!(b, Binding::Output)),
                    args,
                    cache,
                });
            }
        }
        for (job, bufs) in jobs.iter().zip(pack_all(g, &jobs)) {
            let mut bufs = bufs?;
            for (buffer, slot) in &job.slots {
                let b = bufs.iter_mut().find(|b| &b.name == buffer).ok_or_else(|| {
                    graph_err(format!(
                        "%{}: packing `{}` made no buffer `{buffer}` (a lowering bug)",
                        g.node(job.id).name,
                        job.role
                    ))
                })?;
                p.packed[*slot] = std::mem::take(&mut b.data);
            }
        }
        p.build_ms = t0.elapsed().as_secs_f64() * 1e3;
        Ok(p)
    }

    fn add_value(&mut self, id: NodeId, init: Option<Vec<u8>>) -> Result<(), RuntimeError> {
        let node = self.g.node(id);
        let d = dtype_of(&self.g, id).ok_or_else(|| {
            graph_err(format!(
                "%{}: a value of type {} is not a dense tensor",
                node.name, node.ty
            ))
        })?;
        let n: usize = dims(&self.g, id, self.tokens).iter().product();
        let bytes = n * dtype_size(d);
        if let Some(b) = &init {
            if b.len() != bytes {
                return Err(graph_err(format!(
                    "%{}: const has {} bytes of data for its type {} ({bytes} bytes)",
                    node.name,
                    b.len(),
                    node.ty
                )));
            }
        }
        self.values.push((id, bytes, init));
        Ok(())
    }

    fn cache_for(&mut self, id: NodeId) -> Result<String, RuntimeError> {
        let node = self.g.node(id);
        let Op::Attention(a) = &node.op else {
            return Err(graph_err(format!(
                "%{}: a KV cache binding on a non-attention op",
                node.name
            )));
        };
        let name = a.cache.clone().ok_or_else(|| {
            graph_err(format!(
                "%{}: attention without a cache binds one",
                node.name
            ))
        })?;
        self.caches.entry(name.clone()).or_insert(CacheSpec {
            row: (a.kv_heads * a.head_dim) as usize,
            max: a.max_seq as usize,
        });
        Ok(name)
    }

    /// Resolve a view to the node that owns its buffer.
    pub fn resolve(&self, id: NodeId) -> NodeId {
        *self.alias.get(&id).unwrap_or(&id)
    }

    /// Graph inputs: (node, binding name, dtype, shape with T resolved).
    pub fn inputs(&self) -> Vec<(NodeId, String, DType, Vec<usize>)> {
        self.g
            .nodes()
            .filter_map(|id| match &self.g.node(id).op {
                Op::Input { name } => Some((
                    id,
                    name.clone(),
                    dtype_of(&self.g, id)?,
                    dims(&self.g, id, self.tokens),
                )),
                _ => None,
            })
            .collect()
    }

    /// The packed buffers launch `i` reads (what a bench rotates).
    pub fn packed_of(&self, i: usize) -> Vec<usize> {
        self.launches[i]
            .args
            .iter()
            .filter_map(|a| {
                if let Arg::Packed(p) = a {
                    Some(*p)
                } else {
                    None
                }
            })
            .collect()
    }

    /// Copies of `wbytes` of weights to rotate through so the working set exceeds
    /// `rotate_bytes` (at least one extra copy when one copy alone is smaller; at most 64).
    pub fn rotation_copies(wbytes: usize, rotate_bytes: usize) -> usize {
        if wbytes == 0 {
            1
        } else {
            rotate_bytes.div_ceil(wbytes).clamp(1, 64) + usize::from(wbytes < rotate_bytes)
        }
    }

    /// The inputs encoded in their graph dtypes, shapes checked against `T`.
    pub fn encode_inputs(
        &self,
        inputs: &HashMap<String, qkc_ir::interp::Tensor>,
    ) -> Result<Vec<(NodeId, Vec<u8>)>, RuntimeError> {
        let mut out = Vec::new();
        for (id, name, d, want) in self.inputs() {
            let t = inputs.get(&name).ok_or_else(|| RuntimeError::Input {
                name: name.clone(),
                reason: "not supplied".into(),
            })?;
            if t.shape != want {
                return Err(RuntimeError::Input {
                    name,
                    reason: format!(
                        "expected shape {want:?} (T = {}), got {:?}",
                        self.tokens, t.shape
                    ),
                });
            }
            out.push((id, encode(d, &t.data)));
        }
        Ok(out)
    }

    /// The nodes a run writes (poisoned before each run).
    pub fn written(&self) -> Vec<NodeId> {
        self.launches.iter().map(|l| l.node).collect()
    }

    /// Check that a launch's cache has room for this run's tokens.
    pub fn check_cache(
        &self,
        l: &Launch,
        len: &HashMap<String, usize>,
    ) -> Result<(), RuntimeError> {
        if let Some(c) = &l.cache {
            let have = len.get(c).copied().unwrap_or(0);
            let max = self.caches.get(c).map_or(0, |s| s.max);
            if have + self.tokens > max {
                return Err(RuntimeError::CacheFull {
                    cache: c.clone(),
                    len: have,
                    max,
                    more: self.tokens,
                });
            }
        }
        Ok(())
    }

    /// Cache names that a run advances.
    pub fn advanced_caches(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .launches
            .iter()
            .filter_map(|l| l.cache.clone())
            .collect();
        v.sort();
        v.dedup();
        v
    }
}
