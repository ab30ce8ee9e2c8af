//! Running a fused graph on the host CPU.
//!
//! [`CpuProgram::new`] lowers every kernel node for `T` tokens, compiles each distinct kernel once
//! with Cranelift's JIT, binds the weights (from a checkpoint or a seed, through the reference
//! interpreter's loader, so both see the same numbers) and packs them once into the layouts the
//! kernels want. [`CpuProgram::run`] copies the inputs in, poisons every buffer a kernel writes,
//! launches the kernels in program order (each kernel's chunks spread over a rayon pool) and
//! reads the outputs back. KV caches persist across runs, like the interpreter's.

use std::collections::HashMap;
use std::time::Instant;

use qkc_codegen_cranelift::{call_entry, JitKernel, MAX_PARAMS};
use qkc_ir::interp::{Interpreter, StoredWeight, Tensor, Weights};
use qkc_ir::{DType, Graph, NodeId, Op, Type};
use qkc_kernel::lower::{self, Binding, CacheHalf, LowerOptions, LowerTarget, Lowered, WeightData};
use qkc_kernel::{LaunchConfig, Target};

use crate::buffer::{decode, dtype_size, encode, AlignedBuf};
use crate::RuntimeError;

/// How to compile and run.
#[derive(Clone, Copy, Debug)]
pub struct CpuOptions {
    /// Worker threads (default: the machine's available parallelism).
    pub threads: usize,
    /// Chunks per kernel launch (default: 4 per thread, so uneven chunks balance).
    pub chunks: u32,
}

impl Default for CpuOptions {
    fn default() -> Self {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        CpuOptions {
            threads,
            chunks: (4 * threads) as u32,
        }
    }
}

/// One compiled kernel.
pub struct CompiledKernel {
    /// What lowering produced.
    pub lowered: Lowered,
    /// The machine code.
    pub jit: JitKernel,
    /// Cranelift compile time in milliseconds.
    pub compile_ms: f64,
}

#[derive(Clone, Debug)]
enum Arg {
    Value(NodeId),
    Packed(usize),
    Const(usize),
    Cache(String, CacheHalf),
    Pos(String),
    Scratch(usize),
}

/// One launch of a kernel in program order.
#[derive(Clone, Debug)]
pub struct LaunchInfo {
    /// The graph value it computes.
    pub value: String,
    /// Index into [`CpuProgram::kernels`].
    pub kernel: usize,
}

struct Launch {
    info: LaunchInfo,
    node: NodeId,
    args: Vec<Arg>,
    cache: Option<String>,
}

struct Cache {
    k: AlignedBuf,
    v: AlignedBuf,
    len: usize,
    max: usize,
}

/// A graph compiled for the CPU, with its weights packed and its buffers allocated.
pub struct CpuProgram {
    g: Graph,
    tokens: usize,
    threads: usize,
    kernels: Vec<CompiledKernel>,
    launches: Vec<Launch>,
    /// Activation buffers by node (views resolved through `alias`).
    values: HashMap<NodeId, AlignedBuf>,
    alias: HashMap<NodeId, NodeId>,
    packed: Vec<AlignedBuf>,
    consts: Vec<AlignedBuf>,
    scratch: Vec<AlignedBuf>,
    caches: HashMap<String, Cache>,
    pool: rayon::ThreadPool,
    /// Time to lower, compile and pack, in milliseconds.
    pub build_ms: f64,
}

fn tensor_of(g: &Graph, id: NodeId) -> Option<DType> {
    match &g.node(id).ty {
        Type::Tensor { dtype, .. } => Some(*dtype),
        _ => None,
    }
}

fn dims(g: &Graph, id: NodeId, tokens: usize) -> Vec<usize> {
    g.node(id).ty.shape().resolve(tokens)
}

impl CpuProgram {
    /// Lower, compile and load `g` (a graph after the fusion pipeline) for `tokens` tokens per
    /// run, with weights from `weights`.
    pub fn new(
        g: &Graph,
        weights: &Weights,
        tokens: usize,
        opts: CpuOptions,
    ) -> Result<Self, RuntimeError> {
        let t0 = Instant::now();
        if tokens == 0 {
            return Err(RuntimeError::Graph("T (tokens) must be at least 1".into()));
        }
        let threads = opts.threads.max(1);
        let lopts = LowerOptions {
            target: LowerTarget::Cpu {
                chunks: opts.chunks.max(1),
            },
            tokens,
        };
        let bound = Interpreter::new(g, weights)?;
        let order = g
            .topo_order()
            .map_err(|_| RuntimeError::Graph("the graph has a cycle".into()))?;
        let mut prog = CpuProgram {
            g: g.clone(),
            tokens,
            threads,
            kernels: Vec::new(),
            launches: Vec::new(),
            values: HashMap::new(),
            alias: HashMap::new(),
            packed: Vec::new(),
            consts: Vec::new(),
            scratch: Vec::new(),
            caches: HashMap::new(),
            pool: rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .map_err(|e| RuntimeError::Graph(format!("cannot start {threads} threads: {e}")))?,
            build_ms: 0.0,
        };
        let mut by_text: HashMap<String, usize> = HashMap::new();
        for &id in &order {
            let node = g.node(id);
            match &node.op {
                Op::Weight { .. } => continue,
                Op::Reshape => {
                    let src = g.operands(id).first().map(|&(_, v)| v).ok_or_else(|| {
                        RuntimeError::Graph(format!("%{}: reshape of nothing", node.name))
                    })?;
                    let root = *prog.alias.get(&src).unwrap_or(&src);
                    prog.alias.insert(id, root);
                    continue;
                }
                Op::Input { .. } | Op::Const { .. } => {
                    prog.alloc_value(id)?;
                    if let Op::Const { value } = &node.op {
                        let d = tensor_of(g, id).ok_or_else(|| {
                            RuntimeError::Graph(format!(
                                "%{}: const of a non-tensor type",
                                node.name
                            ))
                        })?;
                        let bytes = encode(d, value);
                        if let Some(b) = prog.values.get_mut(&id) {
                            if b.len() != bytes.len() {
                                return Err(RuntimeError::Graph(format!(
                                    "%{}: const has {} values for its type {}",
                                    node.name,
                                    value.len(),
                                    node.ty
                                )));
                            }
                            b.bytes_mut().copy_from_slice(&bytes);
                        }
                    }
                    continue;
                }
                _ => {}
            }
            let lowered = lower::lower(g, id, &lopts)?;
            let text = qkc_kernel::print(&lowered.kernel);
            let kidx = match by_text.get(&text) {
                Some(&i) => i,
                None => {
                    if lowered.kernel.params.len() > MAX_PARAMS {
                        return Err(RuntimeError::Graph(format!(
                            "%{}: kernel `{}` has {} parameters; the CPU runtime passes at most {MAX_PARAMS}",
                            node.name,
                            lowered.kernel.name,
                            lowered.kernel.params.len()
                        )));
                    }
                    let c0 = Instant::now();
                    let jit =
                        JitKernel::compile(&lowered.kernel).map_err(|e| RuntimeError::Codegen {
                            kernel: lowered.kernel.name.clone(),
                            message: e.to_string(),
                        })?;
                    let compile_ms = c0.elapsed().as_secs_f64() * 1e3;
                    prog.kernels.push(CompiledKernel {
                        lowered: lowered.clone(),
                        jit,
                        compile_ms,
                    });
                    by_text.insert(text, prog.kernels.len() - 1);
                    prog.kernels.len() - 1
                }
            };
            prog.alloc_value(id)?;
            let mut args = Vec::with_capacity(lowered.bindings.len());
            let mut cache = None;
            let mut packed_here: HashMap<String, Vec<(String, usize)>> = HashMap::new();
            for b in &lowered.bindings {
                args.push(match b {
                    Binding::Operand { role } => {
                        let v = g.operand(id, role).ok_or_else(|| {
                            RuntimeError::Graph(format!("%{}: no `{role}` operand", node.name))
                        })?;
                        Arg::Value(*prog.alias.get(&v).unwrap_or(&v))
                    }
                    Binding::Output => Arg::Value(id),
                    Binding::Packed { role, buffer } => {
                        if !packed_here.contains_key(role) {
                            let w = g.operand(id, role).ok_or_else(|| {
                                RuntimeError::Graph(format!("%{}: no `{role}` operand", node.name))
                            })?;
                            let stored = bound.stored_weight(w).ok_or_else(|| {
                                RuntimeError::Graph(format!(
                                    "%{}: operand `{role}` (%{}) is not a weight",
                                    node.name,
                                    g.node(w).name
                                ))
                            })?;
                            let data;
                            let wd = match stored {
                                StoredWeight::Dense(t) => {
                                    data = t.data.clone();
                                    WeightData::Dense(&data)
                                }
                                StoredWeight::Quant(q) => WeightData::Quant(q),
                                StoredWeight::Sparse(c) => WeightData::Sparse(c),
                            };
                            let bufs = lower::pack(g, id, role, wd, &lopts)?;
                            let mut list = Vec::new();
                            for pb in bufs {
                                prog.packed.push(AlignedBuf::from_bytes(&pb.data));
                                list.push((pb.name, prog.packed.len() - 1));
                            }
                            packed_here.insert(role.clone(), list);
                        }
                        let idx = packed_here[role]
                            .iter()
                            .find(|(n, _)| n == buffer)
                            .map(|&(_, i)| i)
                            .ok_or_else(|| {
                                RuntimeError::Graph(format!(
                                    "%{}: packing `{role}` made no buffer `{buffer}` (a lowering bug)",
                                    node.name
                                ))
                            })?;
                        Arg::Packed(idx)
                    }
                    Binding::Const { data, .. } => {
                        prog.consts.push(AlignedBuf::from_bytes(data));
                        Arg::Const(prog.consts.len() - 1)
                    }
                    Binding::Scratch { bytes } => {
                        prog.scratch.push(AlignedBuf::zeroed(*bytes as usize));
                        Arg::Scratch(prog.scratch.len() - 1)
                    }
                    Binding::Cache(half) => {
                        let name = prog.cache_for(id)?;
                        cache = Some(name.clone());
                        Arg::Cache(name, *half)
                    }
                    Binding::Pos => {
                        let name = prog.cache_for(id)?;
                        cache = Some(name.clone());
                        Arg::Pos(name)
                    }
                });
            }
            prog.launches.push(Launch {
                info: LaunchInfo {
                    value: node.name.clone(),
                    kernel: kidx,
                },
                node: id,
                args,
                cache,
            });
        }
        prog.build_ms = t0.elapsed().as_secs_f64() * 1e3;
        Ok(prog)
    }

    fn alloc_value(&mut self, id: NodeId) -> Result<(), RuntimeError> {
        let node = self.g.node(id);
        let d = tensor_of(&self.g, id).ok_or_else(|| {
            RuntimeError::Graph(format!(
                "%{}: a kernel result of type {} is not a dense tensor",
                node.name, node.ty
            ))
        })?;
        let n: usize = dims(&self.g, id, self.tokens).iter().product();
        self.values
            .insert(id, AlignedBuf::zeroed(n * dtype_size(d)));
        Ok(())
    }

    fn cache_for(&mut self, id: NodeId) -> Result<String, RuntimeError> {
        let node = self.g.node(id);
        let Op::Attention(a) = &node.op else {
            return Err(RuntimeError::Graph(format!(
                "%{}: a KV cache binding on a non-attention op",
                node.name
            )));
        };
        let name = a.cache.clone().ok_or_else(|| {
            RuntimeError::Graph(format!(
                "%{}: attention without a cache binds one",
                node.name
            ))
        })?;
        let row = (a.kv_heads * a.head_dim) as usize;
        let max = a.max_seq as usize;
        self.caches.entry(name.clone()).or_insert_with(|| Cache {
            k: AlignedBuf::zeroed(max * row * 4),
            v: AlignedBuf::zeroed(max * row * 4),
            len: 0,
            max,
        });
        Ok(name)
    }

    /// The compiled kernels (distinct specializations).
    pub fn kernels(&self) -> &[CompiledKernel] {
        &self.kernels
    }

    /// The launches of one run, in order.
    pub fn launches(&self) -> impl Iterator<Item = &LaunchInfo> {
        self.launches.iter().map(|l| &l.info)
    }

    /// Tokens already in the KV caches.
    pub fn cached_tokens(&self) -> usize {
        self.caches.values().map(|c| c.len).max().unwrap_or(0)
    }

    /// Worker threads.
    pub fn threads(&self) -> usize {
        self.threads
    }

    fn resolve(&self, id: NodeId) -> NodeId {
        *self.alias.get(&id).unwrap_or(&id)
    }

    /// Copy the inputs in (checking their shapes against `T`).
    fn bind_inputs(&mut self, inputs: &HashMap<String, Tensor>) -> Result<(), RuntimeError> {
        let ids: Vec<NodeId> = self.g.nodes().collect();
        for id in ids {
            let Op::Input { name } = &self.g.node(id).op else {
                continue;
            };
            let name = name.clone();
            let want = dims(&self.g, id, self.tokens);
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
            let d = tensor_of(&self.g, id).ok_or_else(|| RuntimeError::Input {
                name: name.clone(),
                reason: "not a dense tensor".into(),
            })?;
            let bytes = encode(d, &t.data);
            if let Some(b) = self.values.get_mut(&id) {
                b.bytes_mut().copy_from_slice(&bytes);
            }
        }
        Ok(())
    }

    fn args(&self, l: &Launch) -> Vec<u64> {
        l.args
            .iter()
            .map(|a| match a {
                Arg::Value(v) => self.values[&self.resolve(*v)].addr(),
                Arg::Packed(i) => self.packed[*i].addr(),
                Arg::Const(i) => self.consts[*i].addr(),
                Arg::Scratch(i) => self.scratch[*i].addr(),
                Arg::Cache(c, CacheHalf::K) => self.caches[c].k.addr(),
                Arg::Cache(c, CacheHalf::V) => self.caches[c].v.addr(),
                Arg::Pos(c) => self.caches[c].len as u64,
            })
            .collect()
    }

    fn launch(&mut self, i: usize) -> Result<(), RuntimeError> {
        let l = &self.launches[i];
        if let Some(c) = &l.cache {
            let cache = &self.caches[c];
            if cache.len + self.tokens > cache.max {
                return Err(RuntimeError::CacheFull {
                    cache: c.clone(),
                    len: cache.len,
                    max: cache.max,
                    more: self.tokens,
                });
            }
        }
        for a in &l.args {
            if let Arg::Scratch(s) = a {
                self.scratch[*s].bytes_mut().fill(0);
            }
        }
        let args = self.args(l);
        let k = &self.kernels[l.info.kernel];
        let chunks = match k.jit.artifact.launch {
            LaunchConfig::Cpu { chunks } => chunks,
            LaunchConfig::Gpu { .. } => {
                return Err(RuntimeError::Graph(format!(
                    "%{}: kernel `{}` is a GPU kernel",
                    l.info.value, k.lowered.kernel.name
                )))
            }
        };
        debug_assert!(matches!(k.lowered.kernel.target, Target::Cpu { .. }));
        let entry = EntryPtr(k.jit.entry());
        let threads = (self.threads as u32).min(chunks).max(1);
        let name = &k.lowered.kernel.name;
        let errs: Vec<String> = if threads == 1 {
            // SAFETY: buffers were allocated with the lengths the lowering's types imply and
            // outlive the call; the kernel verified, so it stays inside them.
            unsafe { call_entry(entry.0, &args, 0, chunks) }
                .err()
                .map(|e| e.to_string())
                .into_iter()
                .collect()
        } else {
            let args = &args;
            let entry = &entry;
            let errs = std::sync::Mutex::new(Vec::new());
            self.pool.scope(|s| {
                for t in 0..threads {
                    let lo = t * chunks / threads;
                    let hi = (t + 1) * chunks / threads;
                    let errs = &errs;
                    s.spawn(move |_| {
                        // SAFETY: as above; chunks write disjoint parts of the outputs.
                        if let Err(e) = unsafe { call_entry(entry.0, args, lo, hi) } {
                            if let Ok(mut v) = errs.lock() {
                                v.push(e.to_string());
                            }
                        }
                    });
                }
            });
            errs.into_inner().unwrap_or_default()
        };
        if let Some(e) = errs.first() {
            return Err(RuntimeError::Codegen {
                kernel: name.clone(),
                message: e.clone(),
            });
        }
        Ok(())
    }

    fn poison(&mut self) {
        let written: Vec<NodeId> = self.launches.iter().map(|l| l.node).collect();
        for id in written {
            if let Some(b) = self.values.get_mut(&id) {
                b.poison();
            }
        }
    }

    /// Run once on `inputs` (by binding name); returns the graph's outputs by value name.
    pub fn run(
        &mut self,
        inputs: &HashMap<String, Tensor>,
    ) -> Result<Vec<(String, Tensor)>, RuntimeError> {
        self.bind_inputs(inputs)?;
        self.poison();
        for i in 0..self.launches.len() {
            self.launch(i)?;
        }
        let mut advanced: Vec<String> = self
            .launches
            .iter()
            .filter_map(|l| l.cache.clone())
            .collect();
        advanced.sort();
        advanced.dedup();
        for c in advanced {
            if let Some(cache) = self.caches.get_mut(&c) {
                cache.len += self.tokens;
            }
        }
        Ok(self.outputs())
    }

    fn outputs(&self) -> Vec<(String, Tensor)> {
        self.g
            .outputs()
            .iter()
            .map(|&o| {
                let r = self.resolve(o);
                let shape = dims(&self.g, o, self.tokens);
                let data = match (tensor_of(&self.g, r), self.values.get(&r)) {
                    (Some(d), Some(b)) => decode(d, b.bytes()),
                    _ => Vec::new(),
                };
                (self.g.node(o).name.clone(), Tensor::new(shape, data))
            })
            .collect()
    }

    /// Time launch `i` alone: `iters` runs after `warmup`, each in seconds. The KV caches do
    /// not advance (every run writes the same rows).
    pub fn time_launch(
        &mut self,
        i: usize,
        warmup: usize,
        iters: usize,
    ) -> Result<Vec<f64>, RuntimeError> {
        for _ in 0..warmup {
            self.launch(i)?;
        }
        let mut out = Vec::with_capacity(iters);
        for _ in 0..iters {
            let t0 = Instant::now();
            self.launch(i)?;
            out.push(t0.elapsed().as_secs_f64());
        }
        Ok(out)
    }

    /// Fill every input with `inputs` and run each launch once, so [`Self::time_launch`] sees
    /// realistic operands.
    pub fn prime(&mut self, inputs: &HashMap<String, Tensor>) -> Result<(), RuntimeError> {
        self.bind_inputs(inputs)?;
        for i in 0..self.launches.len() {
            self.launch(i)?;
        }
        Ok(())
    }

    /// The number of launches per run.
    pub fn launch_count(&self) -> usize {
        self.launches.len()
    }

    /// Information about launch `i`.
    pub fn launch_info(&self, i: usize) -> &LaunchInfo {
        &self.launches[i].info
    }
}

struct EntryPtr(*const u8);
// SAFETY: the entry is immutable machine code owned by a JitKernel that outlives every call.
unsafe impl Send for EntryPtr {}
// SAFETY: as above.
unsafe impl Sync for EntryPtr {}
