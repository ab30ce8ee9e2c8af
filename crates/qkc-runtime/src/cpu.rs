//! Running a fused graph on the host CPU.
//!
//! [`CpuProgram::new`] builds the [`Plan`](crate::plan) with Cranelift's JIT as the compiler,
//! then allocates 64-byte aligned host buffers. [`CpuProgram::run`] copies the inputs in,
//! poisons every buffer a kernel writes, launches the kernels in program order (each kernel's
//! chunks spread over a spinning fork-join pool, [`crate::spin`]) and reads the outputs back. KV caches persist across runs,
//! like the interpreter's. Consecutive launches that share no buffer one of them writes (a
//! block's q/k/v GEMVs, gate and up) form a *wave*: one fork-join runs them all, each thread
//! taking its part of every launch, so the threads meet once per wave instead of once per launch.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use qkc_codegen_cranelift::{call_entry, JitKernel, MAX_PARAMS};
use qkc_ir::interp::{Tensor, Weights};
use qkc_ir::{Graph, NodeId};
use qkc_kernel::lower::{CacheHalf, LowerOptions, LowerTarget};
use qkc_kernel::LaunchConfig;

use crate::buffer::{decode, AlignedBuf};
use crate::plan::{dims, dtype_of, Arg, CompiledKernel, LaunchInfo, Plan};
use crate::RuntimeError;

/// How to compile and run.
#[derive(Clone, Copy, Debug)]
pub struct CpuOptions {
    /// Worker threads (default: the machine's available parallelism).
    pub threads: usize,
    /// Chunks per kernel launch (default: one per thread). The runtime hands each thread a
    /// fixed range of chunks (no stealing), and kernels split their rows evenly over chunks, so
    /// more chunks than threads balance nothing; they only repeat each chunk's prologue (the
    /// a8g GEMVs quantize x once per chunk).
    pub chunks: u32,
}

impl Default for CpuOptions {
    fn default() -> Self {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        CpuOptions::with_threads(threads)
    }
}

impl CpuOptions {
    /// `threads` workers, one chunk each.
    pub fn with_threads(threads: usize) -> Self {
        let threads = threads.max(1);
        CpuOptions {
            threads,
            chunks: threads as u32,
        }
    }
}

/// Kernels reading fewer bytes than this run single-threaded.
const SMALL: u64 = 32 << 10;

struct Cache {
    k: AlignedBuf,
    v: AlignedBuf,
    /// Its length as one i32, for kernels that read it from memory (`Arg::Pos`).
    pos: AlignedBuf,
}

/// A graph compiled for the CPU, with its weights packed and its buffers allocated.
pub struct CpuProgram {
    plan: Plan<JitKernel>,
    threads: usize,
    values: HashMap<NodeId, AlignedBuf>,
    packed: Vec<AlignedBuf>,
    consts: Vec<AlignedBuf>,
    scratch: Vec<AlignedBuf>,
    caches: HashMap<String, Cache>,
    cache_len: HashMap<String, usize>,
    pool: crate::spin::SpinPool,
    /// Launch indices grouped into waves (program order kept).
    waves: Vec<Vec<usize>>,
    /// Each launch's arguments, resolved once (buffers never move, and a cache's length is read
    /// from its `pos` buffer).
    argv: Vec<Vec<u64>>,
    /// Fill every written buffer with 0xFF before each run, so a kernel that skips an element
    /// shows up as NaN (on by default; generation turns it off, as on the GPU).
    pub poison: bool,
}

/// A buffer as the wave analysis sees it.
#[derive(Clone, PartialEq, Eq, Hash)]
enum Buf {
    Value(NodeId),
    Temp(usize),
    Cache(String),
}

/// Group consecutive launches into waves: a launch joins the current wave when no launch of
/// the wave writes a buffer it reads or writes, and it writes none they read. A launch writes
/// its value's buffer (a prologue kernel only its temps: a gate and an up GEMV share a wave);
/// scratch/temp buffers and KV caches count as read and written.
fn waves(plan: &Plan<JitKernel>) -> Vec<Vec<usize>> {
    let access = |i: usize| {
        let l = &plan.launches[i];
        let (mut r, mut w) = (HashSet::new(), HashSet::new());
        if l.writes_value {
            w.insert(Buf::Value(plan.resolve(l.node)));
        }
        for a in &l.args {
            match a {
                Arg::Value(v) => {
                    r.insert(Buf::Value(plan.resolve(*v)));
                }
                Arg::Scratch(t) | Arg::Temp(t) => {
                    r.insert(Buf::Temp(*t));
                    w.insert(Buf::Temp(*t));
                }
                Arg::Cache(c, _) => {
                    r.insert(Buf::Cache(c.clone()));
                    w.insert(Buf::Cache(c.clone()));
                }
                Arg::Packed(_) | Arg::Const(_) | Arg::Pos(_) => {}
            }
        }
        (r, w)
    };
    let mut out: Vec<Vec<usize>> = Vec::new();
    let (mut wr, mut ww) = (HashSet::new(), HashSet::new());
    for i in 0..plan.launches.len() {
        let (r, w) = access(i);
        let independent =
            ww.is_disjoint(&r) && ww.is_disjoint(&w) && wr.is_disjoint(&w) && !out.is_empty();
        if independent {
            if let Some(last) = out.last_mut() {
                last.push(i);
            }
        } else {
            out.push(vec![i]);
            wr.clear();
            ww.clear();
        }
        wr.extend(r);
        ww.extend(w);
    }
    out
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
        let threads = opts.threads.max(1);
        let lopts = LowerOptions {
            target: LowerTarget::Cpu {
                chunks: opts.chunks.max(1),
            },
            tokens,
            a8g_f16_stats: false,
        };
        let plan = Plan::build(g, weights, &lopts, |l| {
            let k = &l.kernel;
            if k.params.len() > MAX_PARAMS {
                return Err(RuntimeError::Graph(format!(
                    "kernel `{}` has {} parameters; the CPU runtime passes at most {MAX_PARAMS}",
                    k.name,
                    k.params.len()
                )));
            }
            if !matches!(k.target, qkc_kernel::Target::Cpu { .. }) {
                return Err(RuntimeError::Graph(format!(
                    "kernel `{}` is not a CPU kernel",
                    k.name
                )));
            }
            JitKernel::compile(k).map_err(|e| RuntimeError::Codegen {
                kernel: k.name.clone(),
                message: e.to_string(),
            })
        })?;
        let values = plan
            .values
            .iter()
            .map(|(id, bytes, init)| {
                let b = match init {
                    Some(d) => AlignedBuf::from_bytes(d),
                    None => AlignedBuf::zeroed(*bytes),
                };
                (*id, b)
            })
            .collect();
        let caches = plan
            .caches
            .iter()
            .map(|(n, s)| {
                (
                    n.clone(),
                    Cache {
                        k: AlignedBuf::zeroed(s.max * s.row * 4),
                        v: AlignedBuf::zeroed(s.max * s.row * 4),
                        pos: AlignedBuf::zeroed(4),
                    },
                )
            })
            .collect();
        let mut prog = CpuProgram {
            packed: plan
                .packed
                .iter()
                .map(|b| AlignedBuf::from_bytes(b))
                .collect(),
            consts: plan
                .consts
                .iter()
                .map(|b| AlignedBuf::from_bytes(b))
                .collect(),
            scratch: plan
                .scratch
                .iter()
                .map(|&n| AlignedBuf::zeroed(n))
                .collect(),
            values,
            caches,
            cache_len: HashMap::new(),
            threads,
            pool: crate::spin::SpinPool::new(threads)
                .map_err(|e| RuntimeError::Graph(format!("cannot start {threads} threads: {e}")))?,
            waves: waves(&plan),
            argv: Vec::new(),
            poison: true,
            plan,
        };
        prog.resolve_args();
        Ok(prog)
    }

    /// Resolve every launch's buffer arguments to addresses (again after buffers were swapped).
    fn resolve_args(&mut self) {
        self.argv = (0..self.plan.launches.len())
            .map(|i| self.addresses(i))
            .collect();
    }

    /// The compiled kernels (distinct specializations).
    pub fn kernels(&self) -> &[CompiledKernel<JitKernel>] {
        &self.plan.kernels
    }

    /// Time to lower, compile and pack, in milliseconds.
    pub fn build_ms(&self) -> f64 {
        self.plan.build_ms
    }

    /// Forget the KV caches' contents: the next run starts at position 0.
    pub fn reset_caches(&mut self) {
        self.cache_len.clear();
    }

    /// Tokens per run (the `T` the kernels were specialized for).
    pub fn tokens(&self) -> usize {
        self.plan.tokens
    }

    /// Tokens already in the KV caches.
    pub fn cached_tokens(&self) -> usize {
        self.cache_len.values().copied().max().unwrap_or(0)
    }

    /// Worker threads.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// The number of launches per run.
    pub fn launch_count(&self) -> usize {
        self.plan.launches.len()
    }

    /// The launches grouped into waves that run as one fork-join each (see the module docs).
    pub fn waves(&self) -> &[Vec<usize>] {
        &self.waves
    }

    /// Bytes a run reads as its kernels count them (weights, statistics, activations; not the
    /// KV caches, whose length grows): the numerator of a decode step's GB/s.
    pub fn bytes_per_run(&self) -> u64 {
        self.plan
            .launches
            .iter()
            .map(|l| self.plan.kernels[l.info.kernel].lowered.bytes_read)
            .sum()
    }

    /// Waves per run that need the worker threads (the others run whole on the calling
    /// thread: every launch in them reads less than `SMALL` bytes and no KV cache).
    pub fn fork_joins(&self) -> usize {
        self.waves
            .iter()
            .filter(|w| w.iter().any(|&i| self.threads > 1 && self.splits(i)))
            .count()
    }

    /// Whether launch `i` is spread over the threads (see [`Self::run_wave`]).
    fn splits(&self, i: usize) -> bool {
        let l = &self.plan.launches[i];
        let k = &self.plan.kernels[l.info.kernel];
        let chunks = match k.code.artifact.launch {
            LaunchConfig::Cpu { chunks } => chunks,
            _ => 1,
        };
        let reads_cache = l.args.iter().any(|a| matches!(a, Arg::Cache(..)));
        chunks > 1 && (k.lowered.bytes_read >= SMALL || reads_cache)
    }

    /// Information about launch `i`.
    pub fn launch_info(&self, i: usize) -> &LaunchInfo {
        &self.plan.launches[i].info
    }

    fn bind_inputs(&mut self, inputs: &HashMap<String, Tensor>) -> Result<(), RuntimeError> {
        for (id, bytes) in self.plan.encode_inputs(inputs)? {
            if let Some(b) = self.values.get_mut(&id) {
                b.bytes_mut().copy_from_slice(&bytes);
            }
        }
        Ok(())
    }

    fn addresses(&self, i: usize) -> Vec<u64> {
        self.plan.launches[i]
            .args
            .iter()
            .map(|a| match a {
                Arg::Value(v) => self.values[&self.plan.resolve(*v)].addr(),
                Arg::Packed(i) => self.packed[*i].addr(),
                Arg::Const(i) => self.consts[*i].addr(),
                Arg::Scratch(i) | Arg::Temp(i) => self.scratch[*i].addr(),
                Arg::Cache(c, CacheHalf::K) => self.caches[c].k.addr(),
                Arg::Cache(c, CacheHalf::V) => self.caches[c].v.addr(),
                Arg::Pos(c) => self.caches[c].pos.addr(),
            })
            .collect()
    }

    fn launch(&mut self, i: usize) -> Result<(), RuntimeError> {
        self.run_wave(&[i])
    }

    /// Run the launches of wave `w` (see the module docs): one fork-join for all of them.
    fn launch_wave(&mut self, w: usize) -> Result<(), RuntimeError> {
        let wave = std::mem::take(&mut self.waves[w]);
        let r = self.run_wave(&wave);
        self.waves[w] = wave;
        r
    }

    /// Launch `wave` (one launch, or a wave of independent ones) as one fork-join. A kernel
    /// that reads less than `SMALL` bytes runs whole on one thread: splitting it costs more than
    /// it saves (a kernel reading a KV cache reads more than its lowering counted: the cache
    /// grows, so it is always split).
    fn run_wave(&mut self, wave: &[usize]) -> Result<(), RuntimeError> {
        struct Job<'a> {
            args: &'a [u64],
            entry: EntryPtr,
            chunks: u32,
            threads: u32,
            /// The thread that runs a single-threaded job.
            home: u32,
        }
        let mut jobs = Vec::with_capacity(wave.len());
        let mut singles = 0u32;
        for &i in wave {
            let l = &self.plan.launches[i];
            self.plan.check_cache(l, &self.cache_len)?;
            let zero: Vec<usize> = l
                .args
                .iter()
                .filter_map(|a| match a {
                    Arg::Scratch(s) => Some(*s),
                    _ => None,
                })
                .collect();
            for s in zero {
                self.scratch[s].bytes_mut().fill(0);
            }
            let l = &self.plan.launches[i];
            let k = &self.plan.kernels[l.info.kernel];
            let LaunchConfig::Cpu { chunks } = k.code.artifact.launch else {
                return Err(RuntimeError::Graph(format!(
                    "`{}` is not a CPU kernel",
                    k.lowered.kernel.name
                )));
            };
            let threads = if self.splits(i) {
                (self.threads as u32).min(chunks).max(1)
            } else {
                1
            };
            let home = if threads == 1 {
                singles += 1;
                (singles - 1) % self.threads as u32
            } else {
                0
            };
            jobs.push(Job {
                args: &self.argv[i],
                entry: EntryPtr(k.code.entry()),
                chunks,
                threads,
                home,
            });
        }
        let errs = std::sync::Mutex::new(Vec::new());
        let (jobs_ref, errs_ref) = (&jobs, &errs);
        let part = move |t: u32| {
            for (n, j) in jobs_ref.iter().enumerate() {
                let (lo, hi) = if j.threads == 1 {
                    if t != j.home {
                        continue;
                    }
                    (0, j.chunks)
                } else if t < j.threads {
                    (t * j.chunks / j.threads, (t + 1) * j.chunks / j.threads)
                } else {
                    continue;
                };
                // SAFETY: as in `launch`; the launches of a wave share no buffer that one of
                // them writes (see `waves`), so running them concurrently is as safe as running
                // the chunks of one.
                if let Err(e) = unsafe { call_entry(j.entry.0, j.args, lo, hi) } {
                    if let Ok(mut v) = errs_ref.lock() {
                        v.push((n, e.to_string()));
                    }
                }
            }
        };
        if jobs.iter().all(|j| j.threads == 1) {
            for (n, j) in jobs.iter().enumerate() {
                // SAFETY: as above.
                if let Err(e) = unsafe { call_entry(j.entry.0, j.args, 0, j.chunks) } {
                    if let Ok(mut v) = errs.lock() {
                        v.push((n, e.to_string()));
                    }
                }
            }
        } else {
            self.pool.run(&|t| part(t as u32));
        }
        let mut errs = errs.into_inner().unwrap_or_default();
        errs.sort_by_key(|e| e.0);
        if let Some((n, e)) = errs.into_iter().next() {
            let k = &self.plan.kernels[self.plan.launches[wave[n]].info.kernel];
            return Err(RuntimeError::Codegen {
                kernel: k.lowered.kernel.name.clone(),
                message: e,
            });
        }
        Ok(())
    }

    /// Run once on `inputs` (by binding name); returns the graph's outputs by value name.
    pub fn run(
        &mut self,
        inputs: &HashMap<String, Tensor>,
    ) -> Result<Vec<(String, Tensor)>, RuntimeError> {
        self.bind_inputs(inputs)?;
        if self.poison {
            for id in self.plan.written() {
                if let Some(b) = self.values.get_mut(&id) {
                    b.poison();
                }
            }
        }
        self.write_pos();
        for w in 0..self.waves.len() {
            self.launch_wave(w)?;
        }
        for c in self.plan.advanced_caches() {
            *self.cache_len.entry(c).or_insert(0) += self.plan.tokens;
        }
        let g = &self.plan.g;
        Ok(g.outputs()
            .iter()
            .map(|&o| {
                let r = self.plan.resolve(o);
                let data = match (dtype_of(g, r), self.values.get(&r)) {
                    (Some(d), Some(b)) => decode(d, b.bytes()),
                    _ => Vec::new(),
                };
                (
                    g.node(o).name.clone(),
                    Tensor::new(dims(g, o, self.plan.tokens), data),
                )
            })
            .collect())
    }

    /// Fill every input and run each launch once (caches do not advance), so
    /// [`Self::time_launch`] sees realistic operands.
    pub fn prime(&mut self, inputs: &HashMap<String, Tensor>) -> Result<(), RuntimeError> {
        self.bind_inputs(inputs)?;
        self.write_pos();
        for i in 0..self.plan.launches.len() {
            self.launch(i)?;
        }
        Ok(())
    }

    /// Store each cache's length where `Arg::Pos` kernels read it.
    fn write_pos(&mut self) {
        for (c, cache) in self.caches.iter_mut() {
            let len = self.cache_len.get(c).copied().unwrap_or(0) as i32;
            cache.pos.bytes_mut().copy_from_slice(&len.to_le_bytes());
        }
    }

    /// Time launch `i` alone like [`Self::time_launch`], but rotating through copies of its
    /// packed weights until they exceed `rotate_bytes`, so the last-level cache does not serve
    /// weights from one run to the next (a decode step reads each layer's weights once).
    /// Returns the seconds per run and the number of copies.
    pub fn time_launch_rotating(
        &mut self,
        i: usize,
        warmup: usize,
        iters: usize,
        rotate_bytes: usize,
    ) -> Result<(Vec<f64>, usize), RuntimeError> {
        let mine = self.plan.packed_of(i);
        let wbytes: usize = mine.iter().map(|&p| self.packed[p].len()).sum();
        let copies = Plan::<JitKernel>::rotation_copies(wbytes, rotate_bytes);
        let sets: Vec<Vec<AlignedBuf>> = (1..copies)
            .map(|_| {
                mine.iter()
                    .map(|&p| AlignedBuf::from_bytes(self.packed[p].bytes()))
                    .collect()
            })
            .collect();
        let mut sets = sets;
        let mut out = Vec::with_capacity(iters);
        let mut turn = 0usize;
        let mut run = |prog: &mut CpuProgram, timed: bool| -> Result<(), RuntimeError> {
            let c = turn % copies;
            turn += 1;
            if c > 0 {
                for (j, &p) in mine.iter().enumerate() {
                    std::mem::swap(&mut prog.packed[p], &mut sets[c - 1][j]);
                }
                prog.argv[i] = prog.addresses(i);
            }
            let t0 = Instant::now();
            let r = prog.launch(i);
            if timed {
                out.push(t0.elapsed().as_secs_f64());
            }
            if c > 0 {
                for (j, &p) in mine.iter().enumerate() {
                    std::mem::swap(&mut prog.packed[p], &mut sets[c - 1][j]);
                }
                prog.argv[i] = prog.addresses(i);
            }
            r
        };
        for _ in 0..warmup {
            run(self, false)?;
        }
        for _ in 0..iters {
            run(self, true)?;
        }
        Ok((out, copies))
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
}

struct EntryPtr(*const u8);
// SAFETY: the entry is immutable machine code owned by a JitKernel that outlives every call.
unsafe impl Send for EntryPtr {}
// SAFETY: as above.
unsafe impl Sync for EntryPtr {}
