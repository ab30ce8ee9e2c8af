//! Running a fused graph on an NVIDIA GPU (feature `cuda`).
//!
//! cudarc loads libcuda (and libcublas, for the bench baseline) at run time, so qkc builds and
//! runs where CUDA is absent: [`Cuda::open`] checks for the driver library first and says plainly
//! when there is none, and every other entry point needs a [`Cuda`]. Kernels are PTX from the
//! LLVM backend (through the `compile` callback of [`GpuProgram::new`], so this crate does not
//! depend on a code generator), loaded once; packed weights are uploaded once; every launch is
//! checked. [`GpuProgram::bench_launch`] times one kernel on CUDA-graph replay with rotating
//! weight copies, so L2 never serves weights.

use std::collections::HashMap;
use std::ffi::{c_void, CString};
use std::sync::Arc;

use cudarc::driver::result as cu;
use cudarc::driver::sys as cus;
use qkc_ir::interp::{Tensor, Weights};
use qkc_ir::{Graph, NodeId};
use qkc_kernel::lower::{CacheHalf, LowerOptions, LowerTarget, Lowered};
use qkc_kernel::{Artifact, LaunchConfig};

use crate::buffer::decode;
use crate::plan::{dims, dtype_of, Arg, CompiledKernel, LaunchInfo, Plan};
use crate::RuntimeError;

fn drv(what: &str) -> impl Fn(cu::DriverError) -> RuntimeError + '_ {
    move |e| RuntimeError::Cuda(format!("{what}: {e:?}"))
}

/// An opened CUDA device (device 0) with its primary context and one stream.
pub struct Cuda {
    ctx: cus::CUcontext,
    dev: cus::CUdevice,
    stream: cus::CUstream,
    /// The device's name.
    pub name: String,
    /// Compute capability ×10 (90 for an H100).
    pub sm: u32,
    /// Streaming multiprocessors.
    pub sms: u32,
}

// SAFETY: the context and stream handles are plain driver handles; every use makes the context
// current first, and the driver API is thread safe.
unsafe impl Send for Cuda {}
// SAFETY: as above.
unsafe impl Sync for Cuda {}

impl Cuda {
    /// Open device 0. Errors (never panics) when there is no CUDA driver or no device.
    pub fn open() -> Result<Arc<Cuda>, RuntimeError> {
        // SAFETY: only probes for the shared library; no CUDA call happens without it.
        if !unsafe { cus::is_culib_present() } {
            return Err(RuntimeError::NoCuda(
                "no CUDA driver was found (libcuda.so could not be loaded)".into(),
            ));
        }
        cu::init().map_err(|e| {
            RuntimeError::NoCuda(format!("the CUDA driver did not initialize: {e:?}"))
        })?;
        let n = cu::device::get_count().map_err(drv("cuDeviceGetCount"))?;
        if n < 1 {
            return Err(RuntimeError::NoCuda("no CUDA device".into()));
        }
        let dev = cu::device::get(0).map_err(drv("cuDeviceGet"))?;
        // SAFETY: `dev` is a valid device handle.
        let ctx =
            unsafe { cu::primary_ctx::retain(dev) }.map_err(drv("cuDevicePrimaryCtxRetain"))?;
        // SAFETY: `ctx` was just retained.
        unsafe { cu::ctx::set_current(ctx) }.map_err(drv("cuCtxSetCurrent"))?;
        let stream = cu::stream::create(cu::stream::StreamKind::NonBlocking)
            .map_err(drv("cuStreamCreate"))?;
        let attr = |a| {
            // SAFETY: valid device and attribute.
            unsafe { cu::device::get_attribute(dev, a) }.map_err(drv("cuDeviceGetAttribute"))
        };
        use cus::CUdevice_attribute_enum as A;
        let major = attr(A::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)?;
        let minor = attr(A::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)?;
        let sms = attr(A::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)?;
        Ok(Arc::new(Cuda {
            ctx,
            dev,
            stream,
            name: cu::device::get_name(dev).unwrap_or_else(|_| "?".into()),
            sm: (major * 10 + minor) as u32,
            sms: sms as u32,
        }))
    }

    /// Make this device's context current on the calling thread.
    pub fn make_current(&self) -> Result<(), RuntimeError> {
        // SAFETY: the context lives as long as `self`.
        unsafe { cu::ctx::set_current(self.ctx) }.map_err(drv("cuCtxSetCurrent"))
    }

    /// Wait for the stream; report any asynchronous error with `what`.
    pub fn sync(&self, what: &str) -> Result<(), RuntimeError> {
        // SAFETY: the stream lives as long as `self`.
        unsafe { cu::stream::synchronize(self.stream) }.map_err(drv(what))
    }
}

impl Drop for Cuda {
    fn drop(&mut self) {
        // SAFETY: handles created in `open`, not used after this.
        unsafe {
            let _ = cu::ctx::set_current(self.ctx);
            let _ = cu::stream::destroy(self.stream);
            let _ = cu::primary_ctx::release(self.dev);
        }
    }
}

/// Device memory.
pub struct DevBuf {
    ptr: cus::CUdeviceptr,
    bytes: usize,
}

impl DevBuf {
    /// `bytes` uninitialized bytes.
    pub fn alloc(bytes: usize) -> Result<DevBuf, RuntimeError> {
        // SAFETY: a plain allocation in the current context.
        let ptr = unsafe { cu::malloc_sync(bytes.max(16)) }
            .map_err(|e| RuntimeError::Cuda(format!("cuMemAlloc({bytes} bytes): {e:?}")))?;
        Ok(DevBuf { ptr, bytes })
    }

    /// A copy of `data`.
    pub fn from_bytes(data: &[u8]) -> Result<DevBuf, RuntimeError> {
        let b = DevBuf::alloc(data.len())?;
        b.write(data)?;
        Ok(b)
    }

    /// Copy `data` in (synchronously).
    pub fn write(&self, data: &[u8]) -> Result<(), RuntimeError> {
        if !data.is_empty() {
            // SAFETY: the allocation holds `bytes` ≥ data.len() bytes.
            unsafe { cu::memcpy_htod_sync(self.ptr, &data[..data.len().min(self.bytes)]) }
                .map_err(drv("cuMemcpyHtoD"))?;
        }
        Ok(())
    }

    /// Copy everything out (synchronously).
    pub fn read(&self) -> Result<Vec<u8>, RuntimeError> {
        let mut out = vec![0u8; self.bytes];
        if self.bytes > 0 {
            // SAFETY: as in `write`.
            unsafe { cu::memcpy_dtoh_sync(&mut out, self.ptr) }.map_err(drv("cuMemcpyDtoH"))?;
        }
        Ok(out)
    }

    /// Fill with one byte value.
    pub fn fill(&self, byte: u8) -> Result<(), RuntimeError> {
        // SAFETY: within the allocation.
        unsafe { cu::memset_d8_sync(self.ptr, byte, self.bytes) }.map_err(drv("cuMemsetD8"))
    }

    /// A device-side copy.
    pub fn duplicate(&self) -> Result<DevBuf, RuntimeError> {
        let b = DevBuf::alloc(self.bytes)?;
        // SAFETY: both allocations hold `bytes` bytes.
        unsafe { cu::memcpy_dtod_sync(b.ptr, self.ptr, self.bytes) }
            .map_err(drv("cuMemcpyDtoD"))?;
        Ok(b)
    }

    /// The device address.
    pub fn addr(&self) -> u64 {
        self.ptr
    }

    /// Size in bytes.
    pub fn len(&self) -> usize {
        self.bytes
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.bytes == 0
    }
}

impl Drop for DevBuf {
    fn drop(&mut self) {
        // SAFETY: allocated by `alloc`, freed once.
        unsafe {
            let _ = cu::free_sync(self.ptr);
        }
    }
}

/// A loaded kernel.
pub struct GpuKernel {
    module: cus::CUmodule,
    func: cus::CUfunction,
    /// The artifact (its code is the PTX).
    pub artifact: Artifact,
}

impl GpuKernel {
    /// Load `artifact`'s PTX.
    pub fn load(artifact: Artifact) -> Result<GpuKernel, RuntimeError> {
        let qkc_kernel::Code::Ptx(ptx) = &artifact.code else {
            return Err(RuntimeError::Cuda(format!("`{}`: not PTX", artifact.entry)));
        };
        let src = CString::new(ptx.as_str()).map_err(|_| {
            RuntimeError::Cuda(format!("`{}`: PTX with a NUL byte", artifact.entry))
        })?;
        // SAFETY: a NUL-terminated PTX image.
        let module = unsafe { cu::module::load_data(src.as_ptr().cast()) }.map_err(|e| {
            RuntimeError::Cuda(format!("cuModuleLoadData(`{}`): {e:?}", artifact.entry))
        })?;
        let name = CString::new(artifact.entry.as_str())
            .map_err(|_| RuntimeError::Cuda("entry name with a NUL byte".into()))?;
        // SAFETY: `module` was just loaded.
        let func = unsafe { cu::module::get_function(module, name) }.map_err(|e| {
            RuntimeError::Cuda(format!("cuModuleGetFunction(`{}`): {e:?}", artifact.entry))
        })?;
        Ok(GpuKernel {
            module,
            func,
            artifact,
        })
    }

    /// Launch with `args` (device addresses; scalars in the low bytes) on `cuda`'s stream.
    pub fn launch(&self, cuda: &Cuda, args: &[u64]) -> Result<(), RuntimeError> {
        let LaunchConfig::Gpu { grid, block, .. } = self.artifact.launch else {
            return Err(RuntimeError::Cuda(format!(
                "`{}` is not a GPU kernel",
                self.artifact.entry
            )));
        };
        let mut store: Vec<u64> = args.to_vec();
        let mut ptrs: Vec<*mut c_void> = store.iter_mut().map(|a| (a as *mut u64).cast()).collect();
        // SAFETY: the function is loaded; `ptrs` point at one value per kernel parameter (the
        // PTX reads 8 bytes for pointers, 4 for i32 scalars: little-endian low bytes); the
        // buffers have the lengths the lowering declared.
        unsafe {
            cu::launch_kernel(
                self.func,
                (grid[0], grid[1], grid[2]),
                (block[0], block[1], block[2]),
                0,
                cuda.stream,
                &mut ptrs,
            )
        }
        .map_err(|e| RuntimeError::Cuda(format!("launch of `{}`: {e:?}", self.artifact.entry)))
    }
}

impl Drop for GpuProgram {
    fn drop(&mut self) {
        if let Some(c) = self.exec.take() {
            // SAFETY: created by `capture`, destroyed once, in this program's context.
            unsafe {
                let _ = self.cuda.make_current();
                let _ = cu::graph::exec_destroy(c.exec);
                let _ = cu::graph::destroy(c.graph);
            }
        }
    }
}

impl Drop for GpuKernel {
    fn drop(&mut self) {
        // SAFETY: loaded in `load`, unloaded once.
        unsafe {
            let _ = cu::module::unload(self.module);
        }
    }
}

/// Times in microseconds of one bench.
#[derive(Clone, Copy, Debug)]
pub struct GpuTiming {
    /// Median microseconds per launch.
    pub us: f64,
    /// Weight copies rotated through.
    pub copies: usize,
}

/// Replay `reps` launches captured into a CUDA graph, `rounds` times; median µs per launch.
fn time_graph(
    cuda: &Cuda,
    reps: usize,
    rounds: usize,
    mut body: impl FnMut(usize) -> Result<(), RuntimeError>,
) -> Result<f64, RuntimeError> {
    cuda.make_current()?;
    // SAFETY: capture on our stream; every launch inside is on that stream.
    unsafe {
        cu::stream::begin_capture(
            cuda.stream,
            cus::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_RELAXED,
        )
    }
    .map_err(drv("cuStreamBeginCapture"))?;
    let mut res = Ok(());
    for r in 0..reps {
        res = body(r);
        if res.is_err() {
            break;
        }
    }
    // SAFETY: capture was begun above.
    let graph =
        unsafe { cu::stream::end_capture(cuda.stream) }.map_err(drv("cuStreamEndCapture"))?;
    res?;
    // SAFETY: a captured graph.
    let exec = unsafe { cu::graph::instantiate(graph, cus::CUgraphInstantiate_flags(0)) }
        .map_err(drv("cuGraphInstantiate"))?;
    let ev0 =
        cu::event::create(cus::CUevent_flags::CU_EVENT_DEFAULT).map_err(drv("cuEventCreate"))?;
    let ev1 =
        cu::event::create(cus::CUevent_flags::CU_EVENT_DEFAULT).map_err(drv("cuEventCreate"))?;
    let mut times = Vec::new();
    // SAFETY: valid exec, stream and events, destroyed below.
    unsafe {
        cu::graph::launch(exec, cuda.stream).map_err(drv("cuGraphLaunch (warm-up)"))?;
        cuda.sync("graph warm-up")?;
        for _ in 0..rounds {
            cu::event::record(ev0, cuda.stream).map_err(drv("cuEventRecord"))?;
            cu::graph::launch(exec, cuda.stream).map_err(drv("cuGraphLaunch"))?;
            cu::event::record(ev1, cuda.stream).map_err(drv("cuEventRecord"))?;
            cu::event::synchronize(ev1).map_err(drv("cuEventSynchronize"))?;
            times.push(f64::from(
                cu::event::elapsed(ev0, ev1).map_err(drv("cuEventElapsedTime"))?,
            ));
        }
        let _ = cu::event::destroy(ev0);
        let _ = cu::event::destroy(ev1);
        let _ = cu::graph::exec_destroy(exec);
        let _ = cu::graph::destroy(graph);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2] * 1e3 / reps as f64)
}

/// Working set the bench rotates through: 4× the H100's 50 MB L2.
pub const ROTATE_BYTES: usize = 200_000_000;

/// A run captured as a CUDA graph (see [`GpuProgram::run`]).
struct CapturedRun {
    graph: cus::CUgraph,
    exec: cus::CUgraphExec,
}

/// A graph compiled for a CUDA device.
pub struct GpuProgram {
    cuda: Arc<Cuda>,
    plan: Plan<GpuKernel>,
    values: HashMap<NodeId, DevBuf>,
    packed: Vec<DevBuf>,
    consts: Vec<DevBuf>,
    scratch: Vec<DevBuf>,
    caches: HashMap<String, (DevBuf, DevBuf)>,
    /// Each cache's length as one i32 on the device (`Arg::Pos`), written before a run.
    pos: HashMap<String, DevBuf>,
    cache_len: HashMap<String, usize>,
    /// Replay the whole run as one CUDA graph, captured on the first run (see [`Self::run`];
    /// ignored while `sync_each` is set).
    pub graph: bool,
    exec: Option<CapturedRun>,
    /// Synchronize after every launch (so an error names its kernel); on for `run`.
    pub sync_each: bool,
    /// Fill every written buffer with 0xFF before each run, so a kernel that skips an element
    /// shows up as NaN (on by default; generation turns it off: one memset per launch).
    pub poison: bool,
}

impl GpuProgram {
    /// Lower `g` (after fusion) for `tokens` tokens and compute capability `sm`, compile each
    /// distinct kernel with `compile` (KIR → PTX artifact), load it, and upload the packed
    /// weights.
    pub fn new(
        cuda: Arc<Cuda>,
        g: &Graph,
        weights: &Weights,
        tokens: usize,
        sm: u32,
        compile: &dyn Fn(&Lowered) -> Result<Artifact, String>,
    ) -> Result<Self, RuntimeError> {
        cuda.make_current()?;
        let lopts = LowerOptions {
            target: LowerTarget::Gpu { sm },
            tokens,
            a8g_f16_stats: false,
        };
        let plan = Plan::build(g, weights, &lopts, |l| {
            let a = compile(l).map_err(|message| RuntimeError::Codegen {
                kernel: l.kernel.name.clone(),
                message,
            })?;
            GpuKernel::load(a)
        })?;
        let mut values = HashMap::new();
        for (id, bytes, init) in &plan.values {
            let b = DevBuf::alloc(*bytes)?;
            match init {
                Some(d) => b.write(d)?,
                None => b.fill(0)?,
            }
            values.insert(*id, b);
        }
        let mut caches = HashMap::new();
        for (n, s) in &plan.caches {
            let (k, v) = (
                DevBuf::alloc(s.max * s.row * 4)?,
                DevBuf::alloc(s.max * s.row * 4)?,
            );
            k.fill(0)?;
            v.fill(0)?;
            caches.insert(n.clone(), (k, v));
        }
        let mut pos = HashMap::new();
        for n in plan.caches.keys() {
            let b = DevBuf::alloc(4)?;
            b.fill(0)?;
            pos.insert(n.clone(), b);
        }
        Ok(GpuProgram {
            packed: plan
                .packed
                .iter()
                .map(|b| DevBuf::from_bytes(b))
                .collect::<Result<_, _>>()?,
            consts: plan
                .consts
                .iter()
                .map(|b| DevBuf::from_bytes(b))
                .collect::<Result<_, _>>()?,
            scratch: plan
                .scratch
                .iter()
                .map(|&n| DevBuf::alloc(n))
                .collect::<Result<_, _>>()?,
            values,
            caches,
            pos,
            cache_len: HashMap::new(),
            graph: false,
            exec: None,
            sync_each: true,
            poison: true,
            cuda,
            plan,
        })
    }

    /// The compiled kernels.
    pub fn kernels(&self) -> &[CompiledKernel<GpuKernel>] {
        &self.plan.kernels
    }

    /// Time to lower, compile, load and pack, in milliseconds (uploads not included).
    pub fn build_ms(&self) -> f64 {
        self.plan.build_ms
    }

    /// Launches per run.
    pub fn launch_count(&self) -> usize {
        self.plan.launches.len()
    }

    /// Launch `i`'s information.
    pub fn launch_info(&self, i: usize) -> &LaunchInfo {
        &self.plan.launches[i].info
    }

    /// Forget the KV caches' contents: the next run starts at position 0.
    pub fn reset_caches(&mut self) {
        self.cache_len.clear();
    }

    /// Tokens per run (the `T` the kernels were specialized for).
    pub fn tokens(&self) -> usize {
        self.plan.tokens
    }

    /// Tokens in the KV caches.
    pub fn cached_tokens(&self) -> usize {
        self.cache_len.values().copied().max().unwrap_or(0)
    }

    fn args(&self, i: usize, packed: &dyn Fn(usize) -> u64) -> Vec<u64> {
        self.plan.launches[i]
            .args
            .iter()
            .map(|a| match a {
                Arg::Value(v) => self.values[&self.plan.resolve(*v)].addr(),
                Arg::Packed(i) => packed(*i),
                Arg::Const(i) => self.consts[*i].addr(),
                Arg::Scratch(i) | Arg::Temp(i) => self.scratch[*i].addr(),
                Arg::Cache(c, CacheHalf::K) => self.caches[c].0.addr(),
                Arg::Cache(c, CacheHalf::V) => self.caches[c].1.addr(),
                Arg::Pos(c) => self.pos[c].addr(),
            })
            .collect()
    }

    fn launch(&self, i: usize) -> Result<(), RuntimeError> {
        let l = &self.plan.launches[i];
        self.plan.check_cache(l, &self.cache_len)?;
        for a in &l.args {
            if let Arg::Scratch(s) = a {
                self.scratch[*s].fill(0)?;
            }
        }
        let args = self.args(i, &|p| self.packed[p].addr());
        let k = &self.plan.kernels[l.info.kernel];
        k.code.launch(&self.cuda, &args)?;
        if self.sync_each {
            self.cuda.sync(&format!(
                "kernel `{}` (%{})",
                k.lowered.kernel.name, l.info.value
            ))?;
        }
        Ok(())
    }

    fn bind_inputs(&mut self, inputs: &HashMap<String, Tensor>) -> Result<(), RuntimeError> {
        for (id, bytes) in self.plan.encode_inputs(inputs)? {
            self.values[&id].write(&bytes)?;
        }
        Ok(())
    }

    /// Run once; outputs by value name.
    pub fn run(
        &mut self,
        inputs: &HashMap<String, Tensor>,
    ) -> Result<Vec<(String, Tensor)>, RuntimeError> {
        self.cuda.make_current()?;
        self.bind_inputs(inputs)?;
        if self.poison {
            for id in self.plan.written() {
                if let Some(b) = self.values.get(&id) {
                    b.fill(0xFF)?;
                }
            }
        }
        self.write_pos()?;
        if self.graph && !self.sync_each {
            for l in &self.plan.launches {
                self.plan.check_cache(l, &self.cache_len)?;
            }
            if self.exec.is_none() {
                self.exec = Some(self.capture()?);
            }
            if let Some(c) = &self.exec {
                // SAFETY: an instantiated graph of this program's launches, on our stream.
                unsafe { cu::graph::launch(c.exec, self.cuda.stream) }
                    .map_err(drv("cuGraphLaunch"))?;
            }
        } else {
            for i in 0..self.plan.launches.len() {
                self.launch(i)?;
            }
        }
        self.cuda.sync("end of run")?;
        for c in self.plan.advanced_caches() {
            *self.cache_len.entry(c).or_insert(0) += self.plan.tokens;
        }
        let g = &self.plan.g;
        let mut outs = Vec::new();
        for &o in g.outputs() {
            let r = self.plan.resolve(o);
            let data = match (dtype_of(g, r), self.values.get(&r)) {
                (Some(d), Some(b)) => decode(d, &b.read()?),
                _ => Vec::new(),
            };
            outs.push((
                g.node(o).name.clone(),
                Tensor::new(dims(g, o, self.plan.tokens), data),
            ));
        }
        Ok(outs)
    }

    /// Store each cache's length where `Arg::Pos` kernels read it.
    fn write_pos(&self) -> Result<(), RuntimeError> {
        for (c, b) in &self.pos {
            let len = self.cache_len.get(c).copied().unwrap_or(0) as i32;
            b.write(&len.to_le_bytes())?;
        }
        Ok(())
    }

    /// Capture every launch of a run (scratch buffers zeroed by memset nodes) into a graph.
    /// The arguments are buffer addresses only, and the inputs, the cache lengths and the KV
    /// caches live in those buffers, so the graph replays any later step unchanged.
    fn capture(&self) -> Result<CapturedRun, RuntimeError> {
        let stream = self.cuda.stream;
        // SAFETY: capture on our stream; everything below is enqueued on it.
        unsafe {
            cu::stream::begin_capture(
                stream,
                cus::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_RELAXED,
            )
        }
        .map_err(drv("cuStreamBeginCapture"))?;
        let mut res = Ok(());
        for (i, l) in self.plan.launches.iter().enumerate() {
            for a in &l.args {
                if let Arg::Scratch(s) = a {
                    let b = &self.scratch[*s];
                    // SAFETY: within the allocation, on our stream.
                    res = unsafe { cu::memset_d8_async(b.ptr, 0, b.bytes, stream) }
                        .map_err(drv("cuMemsetD8Async"));
                }
            }
            if res.is_ok() {
                let args = self.args(i, &|p| self.packed[p].addr());
                res = self.plan.kernels[l.info.kernel]
                    .code
                    .launch(&self.cuda, &args);
            }
            if res.is_err() {
                break;
            }
        }
        // SAFETY: capture was begun above.
        let graph =
            unsafe { cu::stream::end_capture(stream) }.map_err(drv("cuStreamEndCapture"))?;
        if let Err(e) = res {
            // SAFETY: the captured graph, not used again.
            unsafe {
                let _ = cu::graph::destroy(graph);
            }
            return Err(e);
        }
        // SAFETY: a captured graph.
        match unsafe { cu::graph::instantiate(graph, cus::CUgraphInstantiate_flags(0)) } {
            Ok(exec) => Ok(CapturedRun { graph, exec }),
            Err(e) => {
                // SAFETY: as above.
                unsafe {
                    let _ = cu::graph::destroy(graph);
                }
                Err(drv("cuGraphInstantiate")(e))
            }
        }
    }

    /// Fill the inputs and run every launch once (caches do not advance).
    pub fn prime(&mut self, inputs: &HashMap<String, Tensor>) -> Result<(), RuntimeError> {
        self.cuda.make_current()?;
        self.bind_inputs(inputs)?;
        self.write_pos()?;
        for i in 0..self.plan.launches.len() {
            self.launch(i)?;
        }
        self.cuda.sync("prime")
    }

    /// Time launch `i` on CUDA-graph replay, rotating copies of its packed weights until the
    /// working set exceeds [`ROTATE_BYTES`], so no launch finds its weights in L2.
    pub fn bench_launch(&self, i: usize) -> Result<GpuTiming, RuntimeError> {
        let l = &self.plan.launches[i];
        let mine = self.plan.packed_of(i);
        let wbytes: usize = mine.iter().map(|&p| self.packed[p].len()).sum();
        let copies = Plan::<GpuKernel>::rotation_copies(wbytes, ROTATE_BYTES);
        let mut extra: Vec<HashMap<usize, DevBuf>> = Vec::new();
        for _ in 1..copies {
            let mut m = HashMap::new();
            for &p in &mine {
                m.insert(p, self.packed[p].duplicate()?);
            }
            extra.push(m);
        }
        let k = &self.plan.kernels[l.info.kernel].code;
        let arg_sets: Vec<Vec<u64>> = (0..copies)
            .map(|c| {
                self.args(i, &|p| {
                    if c == 0 {
                        self.packed[p].addr()
                    } else {
                        extra[c - 1][&p].addr()
                    }
                })
            })
            .collect();
        let reps = (copies * 4).clamp(20, 200);
        let us = time_graph(&self.cuda, reps, 9, |r| {
            k.launch(&self.cuda, &arg_sets[r % copies])
        })?;
        Ok(GpuTiming { us, copies })
    }

    /// The device.
    pub fn cuda(&self) -> &Arc<Cuda> {
        &self.cuda
    }
}

/// The device's read ceiling: a plain read kernel (16-byte evict-first loads, grid-stride) over
/// `bytes`, compiled by `compile` like any other kernel; GB/s (median of 9 graph replays).
pub fn read_ceiling(
    cuda: &Arc<Cuda>,
    bytes: usize,
    compile: &dyn Fn(&qkc_kernel::Kernel) -> Result<Artifact, String>,
) -> Result<f64, RuntimeError> {
    cuda.make_current()?;
    let n = (bytes / 16) * 4; // i32 elements, whole 16-byte vectors
    let block = 256u32;
    let grid = cuda.sms * 8;
    let threads = grid * block;
    let text = format!(
        "kernel @read_ceiling(%src: ptr<global, i32> noalias readonly len({n}), %dst: ptr<global, i32> noalias writeonly len({threads})) gpu grid({grid}) block({block}) {{
  %b = axis grid.x : i32
  %t = axis block.x : i32
  %cb = const {block} : i32
  %base = mul %b, %cb : i32
  %tid = add %base, %t : i32
  %stride = const {threads} : i32
  %nv = const {nv} : i32
  %c4 = const 4 : i32
  %z = const 0 : <4 x i32>
  %acc = for %i = %tid to %nv step %stride iter(%a = %z) : <4 x i32> {{
    %i4 = mul %i, %c4 : i32
    %v = load %src[%i4] align 16 evict_first : <4 x i32>
    %a1 = add %a, %v : <4 x i32>
    yield %a1
  }}
  %r = reduce.add %acc : i32
  store %r, %dst[%tid] align 4
}}
",
        nv = n / 4
    );
    let k = qkc_kernel::parse(&text)
        .map_err(|e| RuntimeError::Graph(format!("read_ceiling kernel: {e:?}")))?;
    let art = compile(&k).map_err(|message| RuntimeError::Codegen {
        kernel: "read_ceiling".into(),
        message,
    })?;
    let kern = GpuKernel::load(art)?;
    let src = DevBuf::alloc(n * 4)?;
    src.fill(0x5A)?;
    let dst = DevBuf::alloc(threads as usize * 4)?;
    let args = [src.addr(), dst.addr()];
    let us = time_graph(cuda, 10, 9, |_| kern.launch(cuda, &args))?;
    Ok((n * 4) as f64 / (us * 1e-6) / 1e9)
}

/// cuBLAS fp16 baseline: `y[T, N] = x[T, K] · W[N, K]ᵀ` with f16 inputs and output and f32
/// compute (cublasGemmEx), weights rotated like [`GpuProgram::bench_launch`]. Median µs.
pub fn cublas_fp16(
    cuda: &Arc<Cuda>,
    n: usize,
    k: usize,
    t: usize,
) -> Result<GpuTiming, RuntimeError> {
    use cudarc::cublas::result as cb;
    use cudarc::cublas::sys as cbs;
    cuda.make_current()?;
    // SAFETY: only probes for the shared library.
    if !unsafe { cbs::is_culib_present() } {
        return Err(RuntimeError::NoCuda("no cuBLAS library was found".into()));
    }
    let wbytes = n * k * 2;
    let copies = ROTATE_BYTES.div_ceil(wbytes).clamp(1, 64) + usize::from(wbytes < ROTATE_BYTES);
    let mut ws = Vec::new();
    for c in 0..copies {
        let b = DevBuf::alloc(wbytes)?;
        b.fill(0x3C + c as u8 % 2)?; // 0x3C3C / 0x3D3D: f16 ≈ 1.06 / 1.3
        ws.push(b);
    }
    let x = DevBuf::alloc(k * t * 2)?;
    x.fill(0x3C)?;
    let y = DevBuf::alloc(n * t * 2)?;
    let h = cb::create_handle().map_err(|e| RuntimeError::Cuda(format!("cublasCreate: {e:?}")))?;
    // SAFETY: valid handle and stream.
    unsafe { cb::set_stream(h, cuda.stream as cbs::cudaStream_t) }
        .map_err(|e| RuntimeError::Cuda(format!("cublasSetStream: {e:?}")))?;
    let (alpha, beta) = (1f32, 0f32);
    let gemm = |w: &DevBuf| {
        // SAFETY: W is K×N column-major (N rows of K, row-major), x is K×T, y is N×T; all sized.
        unsafe {
            cb::gemm_ex(
                h,
                cbs::cublasOperation_t::CUBLAS_OP_T,
                cbs::cublasOperation_t::CUBLAS_OP_N,
                n as i32,
                t as i32,
                k as i32,
                (&alpha as *const f32).cast(),
                w.addr() as *const c_void,
                cbs::cudaDataType::CUDA_R_16F,
                k as i32,
                x.addr() as *const c_void,
                cbs::cudaDataType::CUDA_R_16F,
                k as i32,
                (&beta as *const f32).cast(),
                y.addr() as *mut c_void,
                cbs::cudaDataType::CUDA_R_16F,
                n as i32,
                cbs::cublasComputeType_t::CUBLAS_COMPUTE_32F,
                cbs::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
            )
        }
        .map_err(|e| RuntimeError::Cuda(format!("cublasGemmEx: {e:?}")))
    };
    // one call outside the capture, so cuBLAS sets itself up
    gemm(&ws[0])?;
    cuda.sync("cublasGemmEx")?;
    let reps = (copies * 4).clamp(20, 200);
    let us = time_graph(cuda, reps, 9, |r| gemm(&ws[r % copies]));
    // SAFETY: created above.
    unsafe {
        let _ = cb::destroy_handle(h);
    }
    Ok(GpuTiming { us: us?, copies })
}
