//! A thin emitter over [`Builder`] that writes one kernel body for both targets.
//!
//! Every op generator in this module is written once against [`E`]; the target only changes a
//! few primitives:
//!
//! - the *work split*: [`E::items`] runs a body for each item of `0..n` (CPU: chunk `c` owns a
//!   contiguous range of `⌈n/CHUNKS⌉` items; GPU: one item per thread, `grid = ⌈n/THREADS⌉`), and
//!   [`E::rows`] runs a body for each row, with the threads of a GPU block cooperating on one row
//!   (CPU: the chunk loops over its rows with one "thread");
//! - [`E::stride`]: a loop over `lo..hi` split over the cooperating threads of a row;
//! - [`E::block_reduce`]: the sum / max of one value per thread (GPU: warp shuffle tree, one
//!   partial per warp in shared memory, a barrier, every thread sums the partials in the same
//!   order; CPU: the identity);
//! - math that one backend lacks: `exp2` (the op on the GPU, a polynomial on the CPU, where
//!   Cranelift has none) and f32 → f16 (`fptrunc` on the GPU, integer rounding on the CPU,
//!   where Cranelift has no scalar `fdemote` to f16).

use crate::builder::Builder;
use crate::entities::Value;
use crate::kernel::{Kernel, ParamAttrs, Target};
use crate::ops::{Axis, BinaryOp, CacheHint, CastOp, FloatCC, IntCC, MemFlags, Op, ShflMode, UnaryOp};
use crate::types::{MemSpace, Scalar, Type};

/// Threads per GPU block used by the generators (4 warps).
pub(crate) const GPU_THREADS: u32 = 128;

/// What kind of kernel body is being written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// CPU, `chunks` calls.
    Cpu { chunks: u32 },
    /// GPU, `THREADS` per block.
    Gpu,
}

/// The emitter.
pub(crate) struct E {
    pub b: Builder,
    pub kind: Kind,
    /// First builder error (reported at [`E::finish`]).
    err: Option<String>,
    /// The cooperating thread's index within a row (0 on the CPU) and their count.
    pub tid: Option<Value>,
    pub nthreads: Option<Value>,
    red: Option<Value>,
}

/// How a kernel splits its work (decided before the header, since the launch shape is baked in).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Split {
    /// Independent items.
    Items(u64),
    /// Rows processed by cooperating threads.
    Rows(u64),
    /// Items processed by one warp each on the GPU (its lanes cooperate).
    Warps(u64),
}

impl E {
    /// A kernel called `name` for `kind` with the given work split.
    pub fn new(name: &str, kind: Kind, split: Split) -> Self {
        let target = match (kind, split) {
            (Kind::Cpu { chunks }, _) => Target::Cpu { chunks: chunks.max(1), simd_bits: 128 },
            (Kind::Gpu, Split::Items(n)) => Target::Gpu {
                grid: [u32::try_from(n.div_ceil(u64::from(GPU_THREADS))).unwrap_or(u32::MAX).max(1), 1, 1],
                block: [GPU_THREADS, 1, 1],
            },
            (Kind::Gpu, Split::Warps(n)) => Target::Gpu {
                grid: [
                    u32::try_from(n.div_ceil(u64::from(GPU_THREADS / 32))).unwrap_or(u32::MAX).max(1),
                    1,
                    1,
                ],
                block: [GPU_THREADS, 1, 1],
            },
            (Kind::Gpu, Split::Rows(n)) => Target::Gpu {
                grid: [u32::try_from(n).unwrap_or(u32::MAX).max(1), 1, 1],
                block: [GPU_THREADS, 1, 1],
            },
        };
        E { b: Builder::new(name, target), kind, err: None, tid: None, nthreads: None, red: None }
    }

    /// Is this a GPU kernel?
    pub fn gpu(&self) -> bool {
        self.kind == Kind::Gpu
    }

    fn note(&mut self, r: Result<(), crate::error::KernelError>) {
        if let Err(e) = r {
            self.err.get_or_insert(e.to_string());
        }
    }

    /// Finish the kernel (verified by the caller).
    pub fn finish(self) -> Result<Kernel, String> {
        if let Some(e) = self.err {
            return Err(e);
        }
        self.b.finish().map_err(|e| e.to_string())
    }

    // ---- parameters and top-level allocations ----

    /// A global pointer parameter.
    pub fn param(&mut self, name: &str, elem: Scalar, len: u64, readonly: bool, writeonly: bool) -> Value {
        let attrs = ParamAttrs { noalias: true, readonly, writeonly, len: Some(len.max(1)) };
        self.b.param(Some(name.into()), Type::Ptr(MemSpace::Global, elem), attrs)
    }

    /// A pointer parameter without the `noalias` promise (KV caches are read and written).
    pub fn param_rw(&mut self, name: &str, elem: Scalar, len: u64) -> Value {
        let attrs = ParamAttrs { noalias: true, readonly: false, writeonly: false, len: Some(len.max(1)) };
        self.b.param(Some(name.into()), Type::Ptr(MemSpace::Global, elem), attrs)
    }

    /// `alloc.shared n : ptr<shared, elem>` (on the CPU: memory private to the chunk).
    pub fn shared(&mut self, elem: Scalar, n: u32) -> Value {
        self.b.ins1(Op::Alloc(MemSpace::Shared, n.max(1)), &[], Type::Ptr(MemSpace::Shared, elem))
    }

    /// Set up the row machinery (call after the parameters, before any row body): the thread
    /// index and count, and the GPU reduction buffer.
    pub fn setup_rows(&mut self) {
        if self.gpu() {
            let red = self.shared(Scalar::F32, GPU_THREADS / 32);
            self.red = Some(red);
            let t = self.axis(Axis::BlockX);
            self.tid = Some(t);
            self.nthreads = Some(self.i32(i64::from(GPU_THREADS)));
        } else {
            self.tid = Some(self.i32(0));
            self.nthreads = Some(self.i32(1));
        }
    }

    // ---- constants and arithmetic ----

    /// An i32 constant.
    pub fn i32(&mut self, v: i64) -> Value {
        self.b.ins1(Op::Const(vec![u64::from(v as i32 as u32)]), &[], Type::I32)
    }
    /// An f32 constant.
    pub fn f32(&mut self, v: f64) -> Value {
        self.b.ins1(Op::Const(vec![u64::from((v as f32).to_bits())]), &[], Type::F32)
    }
    /// An f64 constant.
    pub fn f64(&mut self, v: f64) -> Value {
        self.b.ins1(Op::Const(vec![v.to_bits()]), &[], Type::F64)
    }
    /// A parallel axis.
    pub fn axis(&mut self, a: Axis) -> Value {
        self.b.ins1(Op::Axis(a), &[], Type::I32)
    }
    /// The type of `v`.
    pub fn ty(&self, v: Value) -> Type {
        self.b.kernel().ty(v)
    }
    /// A binary op (result type = operand type).
    pub fn bin(&mut self, op: BinaryOp, a: Value, b: Value) -> Value {
        let t = self.ty(a);
        self.b.ins1(Op::Binary(op), &[a, b], t)
    }
    /// `a + b`.
    pub fn add(&mut self, a: Value, b: Value) -> Value {
        self.bin(BinaryOp::Add, a, b)
    }
    /// `a - b`.
    pub fn sub(&mut self, a: Value, b: Value) -> Value {
        self.bin(BinaryOp::Sub, a, b)
    }
    /// `a * b`.
    pub fn mul(&mut self, a: Value, b: Value) -> Value {
        self.bin(BinaryOp::Mul, a, b)
    }
    /// Float `a / b`.
    pub fn div(&mut self, a: Value, b: Value) -> Value {
        self.bin(BinaryOp::Div, a, b)
    }
    /// `a * b + c` rounded once.
    pub fn fma(&mut self, a: Value, b: Value, c: Value) -> Value {
        let t = self.ty(a);
        self.b.ins1(Op::Fma, &[a, b, c], t)
    }
    /// A unary op.
    pub fn un(&mut self, op: UnaryOp, a: Value) -> Value {
        let t = self.ty(a);
        self.b.ins1(Op::Unary(op), &[a], t)
    }
    /// A conversion.
    pub fn cast(&mut self, op: CastOp, a: Value, to: Type) -> Value {
        self.b.ins1(Op::Cast(op), &[a], to)
    }
    /// An integer comparison.
    pub fn icmp(&mut self, cc: IntCC, a: Value, b: Value) -> Value {
        self.b.ins1(Op::Icmp(cc), &[a, b], Type::I1)
    }
    /// A float comparison.
    pub fn fcmp(&mut self, cc: FloatCC, a: Value, b: Value) -> Value {
        self.b.ins1(Op::Fcmp(cc), &[a, b], Type::I1)
    }
    /// `c ? a : b`.
    pub fn select(&mut self, c: Value, a: Value, b: Value) -> Value {
        let t = self.ty(a);
        self.b.ins1(Op::Select, &[c, a, b], t)
    }
    /// `i * c` for an i32 and a constant.
    pub fn muli(&mut self, a: Value, c: i64) -> Value {
        let k = self.i32(c);
        self.mul(a, k)
    }
    /// `i + c` for an i32 and a constant.
    pub fn addi(&mut self, a: Value, c: i64) -> Value {
        let k = self.i32(c);
        self.add(a, k)
    }
    /// Signed `a / c`.
    pub fn divi(&mut self, a: Value, c: i64) -> Value {
        let k = self.i32(c);
        self.bin(BinaryOp::Sdiv, a, k)
    }
    /// Signed `a % c`.
    pub fn remi(&mut self, a: Value, c: i64) -> Value {
        let k = self.i32(c);
        self.bin(BinaryOp::Srem, a, k)
    }
    // ---- memory ----

    /// Load one element of the pointer's element type.
    pub fn load_raw(&mut self, p: Value, i: Value) -> Value {
        let Type::Ptr(_, s) = self.ty(p) else {
            self.err.get_or_insert("load through a non-pointer".into());
            return p;
        };
        let f = MemFlags { align: s.bytes(), hint: CacheHint::Default };
        self.b.ins1(Op::Load(f), &[p, i], Type::Scalar(s))
    }
    /// Load one element and widen it to f32 (f32 as is, f16 → f32, ints → f32).
    pub fn load_f32(&mut self, p: Value, i: Value) -> Value {
        let v = self.load_raw(p, i);
        self.widen_f32(v)
    }
    /// Any scalar → f32.
    pub fn widen_f32(&mut self, v: Value) -> Value {
        match self.ty(v) {
            Type::Scalar(Scalar::F32) => v,
            Type::Scalar(Scalar::F16) => self.cast(CastOp::Fpext, v, Type::F32),
            Type::Scalar(Scalar::F64) => self.cast(CastOp::Fptrunc, v, Type::F32),
            _ => self.cast(CastOp::Sitofp, v, Type::F32),
        }
    }
    /// Store an f32 as the pointer's element type.
    pub fn store_f32(&mut self, v: Value, p: Value, i: Value) {
        let Type::Ptr(_, s) = self.ty(p) else {
            self.err.get_or_insert("store through a non-pointer".into());
            return;
        };
        let v = match s {
            Scalar::F32 => v,
            Scalar::F16 => self.f32_to_f16(v),
            Scalar::F64 => self.cast(CastOp::Fpext, v, Type::F64),
            _ => self.cast(CastOp::Fptosi, v, Type::Scalar(s)),
        };
        self.store_raw(v, p, i);
    }
    /// Store a value of the pointer's element type.
    pub fn store_raw(&mut self, v: Value, p: Value, i: Value) {
        let Type::Ptr(_, s) = self.ty(p) else {
            self.err.get_or_insert("store through a non-pointer".into());
            return;
        };
        let f = MemFlags { align: s.bytes(), hint: CacheHint::Default };
        self.b.ins(Op::Store(f), &[v, p, i], &[]);
    }
    /// Load `lanes` consecutive elements from element `i` (alignment of one element).
    pub fn load_vec(&mut self, p: Value, i: Value, lanes: u8) -> Value {
        let Type::Ptr(_, s) = self.ty(p) else {
            self.err.get_or_insert("load through a non-pointer".into());
            return p;
        };
        let f = MemFlags { align: s.bytes(), hint: CacheHint::Default };
        self.b.ins1(Op::Load(f), &[p, i], Type::Vector(s, lanes))
    }
    /// Store a vector of the pointer's element type at element `i` (alignment of one element).
    pub fn store_vec(&mut self, v: Value, p: Value, i: Value) {
        let Type::Ptr(_, s) = self.ty(p) else {
            self.err.get_or_insert("store through a non-pointer".into());
            return;
        };
        let f = MemFlags { align: s.bytes(), hint: CacheHint::Default };
        self.b.ins(Op::Store(f), &[v, p, i], &[]);
    }
    /// A scalar broadcast to `lanes` lanes.
    pub fn splat(&mut self, v: Value, lanes: u8) -> Value {
        let Type::Scalar(s) = self.ty(v) else {
            self.err.get_or_insert("splat of a non-scalar".into());
            return v;
        };
        self.b.ins1(Op::Splat, &[v], Type::Vector(s, lanes))
    }
    /// The largest of a vector's lanes (NaN-propagating).
    pub fn reduce_max(&mut self, v: Value) -> Value {
        let Type::Vector(s, _) = self.ty(v) else {
            self.err.get_or_insert("reduce of a non-vector".into());
            return v;
        };
        self.b.ins1(Op::Reduce(crate::ops::ReduceOp::Max), &[v], Type::Scalar(s))
    }
    /// The sum of a vector's lanes (fixed order: halves folded down).
    pub fn reduce_add(&mut self, v: Value) -> Value {
        let Type::Vector(s, _) = self.ty(v) else {
            self.err.get_or_insert("reduce of a non-vector".into());
            return v;
        };
        self.b.ins1(Op::Reduce(crate::ops::ReduceOp::Add), &[v], Type::Scalar(s))
    }
    /// `p + i` elements.
    pub fn offset(&mut self, p: Value, i: Value) -> Value {
        let t = self.ty(p);
        self.b.ins1(Op::Offset, &[p, i], t)
    }
    /// A block barrier (GPU only; nothing on the CPU).
    pub fn barrier(&mut self) {
        if self.gpu() {
            self.b.ins(Op::Barrier, &[], &[]);
        }
    }

    // ---- control flow ----

    /// `for i = lo to hi step step iter(inits)`: the body gets `i` and the carried values and
    /// returns the values to carry; returns the final carried values.
    pub fn for_(
        &mut self,
        lo: Value,
        hi: Value,
        step: Value,
        inits: &[Value],
        body: impl FnOnce(&mut Self, Value, &[Value]) -> Vec<Value>,
    ) -> Vec<Value> {
        let res: Vec<(Type, Option<String>)> = inits.iter().map(|&v| (self.ty(v), None)).collect();
        let (inst, iv, carried) = self.b.begin_for([lo, hi, step], inits, 1, &res, None, &[]);
        let y = body(self, iv, &carried);
        let r = self.b.end(&y);
        self.note(r);
        self.b.kernel().inst(inst).results.clone()
    }
    /// A loop with step 1 and no carried values.
    pub fn for1(&mut self, lo: Value, hi: Value, body: impl FnOnce(&mut Self, Value)) {
        let one = self.i32(1);
        self.for_(lo, hi, one, &[], |e, i, _| {
            body(e, i);
            Vec::new()
        });
    }
    /// `if c { then }` with no results.
    pub fn if_(&mut self, c: Value, then: impl FnOnce(&mut Self)) {
        self.b.begin_if(c, &[]);
        then(self);
        let r = self.b.end(&[]);
        self.note(r);
    }
    // ---- work split ----

    /// Chunk `chunk`'s part `lo..hi` of `0..n` over `chunks` chunks, balanced: sizes differ by
    /// at most one (`lo = chunk·n / chunks`), so 9 attention rows over 8 chunks are 1,…,1,2 and
    /// not 2,2,2,2,1,0,0,0 (which left one of two threads with a single row). When `n·chunks`
    /// might overflow i32, equal `cdiv(n, chunks)` parts (the last ones short).
    fn chunk_range(&mut self, chunk: Value, n: u64, chunks: u32, cn: Value) -> (Value, Value) {
        let c = u64::from(chunks.max(1));
        if n.saturating_mul(c + 1) < (1u64 << 31) {
            let a = self.muli(chunk, n as i64);
            let lo = self.divi(a, c as i64);
            let b = self.addi(a, n as i64);
            let hi = self.divi(b, c as i64);
            (lo, hi)
        } else {
            let per = n.div_ceil(c).max(1);
            let lo = self.muli(chunk, per as i64);
            let hi0 = self.addi(lo, per as i64);
            let hi = self.bin(BinaryOp::Smin, hi0, cn);
            (lo, hi)
        }
    }

    /// Run `body(item)` for every item of `0..n` (see the module docs).
    pub fn items(&mut self, n: u64, body: impl FnOnce(&mut Self, Value)) {
        let cn = self.i32(n as i64);
        match self.kind {
            Kind::Cpu { chunks } => {
                let chunk = self.axis(Axis::CpuChunk);
                let (lo, hi) = self.chunk_range(chunk, n, chunks, cn);
                self.for1(lo, hi, body);
            }
            Kind::Gpu => {
                let bid = self.axis(Axis::GridX);
                let t = self.axis(Axis::BlockX);
                let base = self.muli(bid, i64::from(GPU_THREADS));
                let i = self.add(base, t);
                let inb = self.icmp(IntCC::Slt, i, cn);
                self.if_(inb, |e| body(e, i));
            }
        }
    }

    /// Run `body(row)` for every row of `0..n`, the threads of a GPU block cooperating on one
    /// row. Needs [`E::setup_rows`] first. Barriers are allowed in the body (every thread of the
    /// block runs it).
    pub fn rows(&mut self, n: u64, body: impl FnOnce(&mut Self, Value)) {
        match self.kind {
            Kind::Cpu { chunks } => {
                let cn = self.i32(n as i64);
                let chunk = self.axis(Axis::CpuChunk);
                let (lo, hi) = self.chunk_range(chunk, n, chunks, cn);
                self.for1(lo, hi, body);
            }
            Kind::Gpu => {
                let row = self.axis(Axis::GridX);
                body(self, row);
            }
        }
    }

    /// Run `body(item)` for every item of `0..n`, one warp per item on the GPU (lanes are the
    /// cooperating threads: [`E::stride`] and [`E::warp_sum`] split and combine over them).
    pub fn warps(&mut self, n: u64, body: impl FnOnce(&mut Self, Value)) {
        match self.kind {
            Kind::Cpu { .. } => {
                self.tid = Some(self.i32(0));
                self.nthreads = Some(self.i32(1));
                self.items(n, body);
            }
            Kind::Gpu => {
                let lane = self.axis(Axis::Lane);
                self.tid = Some(lane);
                self.nthreads = Some(self.i32(32));
                let bid = self.axis(Axis::GridX);
                let warp = self.axis(Axis::Warp);
                let base = self.muli(bid, i64::from(GPU_THREADS / 32));
                let i = self.add(base, warp);
                let cn = self.i32(n as i64);
                // warp-uniform condition: a warp is either fully active or idle
                let inb = self.icmp(IntCC::Slt, i, cn);
                self.if_(inb, |e| body(e, i));
            }
        }
    }

    /// The sum of one f32 per lane of a warp, known to every lane (identity on the CPU).
    pub fn warp_sum(&mut self, v: Value) -> Value {
        if !self.gpu() {
            return v;
        }
        let mut s = v;
        for d in [16, 8, 4, 2, 1] {
            let cd = self.i32(d);
            let o = self.b.ins1(Op::Shfl(ShflMode::Xor), &[s, cd], Type::F32);
            s = self.add(s, o);
        }
        s
    }

    /// `for i = lo + tid to hi step nthreads` carrying `inits` (the row's threads split the range).
    pub fn stride(
        &mut self,
        lo: Value,
        hi: Value,
        inits: &[Value],
        body: impl FnOnce(&mut Self, Value, &[Value]) -> Vec<Value>,
    ) -> Vec<Value> {
        let (tid, nt) = (self.tid.expect("setup_rows"), self.nthreads.expect("setup_rows"));
        let start = self.add(lo, tid);
        self.for_(start, hi, nt, inits, body)
    }

    /// The sum or max (`op` = Add | Max) of one f32 per cooperating thread, known to every
    /// thread. Every thread of the block must reach it (it has barriers on the GPU).
    pub fn block_reduce(&mut self, v: Value, op: BinaryOp) -> Value {
        let Some(red) = self.red else { return v };
        let mut s = v;
        for d in [16, 8, 4, 2, 1] {
            let cd = self.i32(d);
            let o = self.b.ins1(Op::Shfl(ShflMode::Xor), &[s, cd], Type::F32);
            s = self.bin(op, s, o);
        }
        let lane = self.axis(Axis::Lane);
        let warp = self.axis(Axis::Warp);
        let c0 = self.i32(0);
        let first = self.icmp(IntCC::Eq, lane, c0);
        self.if_(first, |e| e.store_raw(s, red, warp));
        self.barrier();
        let p0 = self.load_raw(red, c0);
        let cw = self.i32(i64::from(GPU_THREADS / 32));
        let c1 = self.i32(1);
        let r = self.for_(c1, cw, c1, &[p0], |e, k, acc| {
            let pk = e.load_raw(red, k);
            vec![e.bin(op, acc[0], pk)]
        });
        // The partials are read by every thread before anyone reuses the buffer.
        self.barrier();
        r[0]
    }

    // ---- math ----

    /// `2^x` for an f32 (see `templates/kir/snippets/exp2_poly.kir` for the CPU polynomial).
    pub fn exp2(&mut self, x: Value) -> Value {
        if self.gpu() {
            return self.un(UnaryOp::Exp2, x);
        }
        self.exp2_poly(x, None)
    }

    /// [`E::exp2`] on a CPU `<4 x f32>` (the same polynomial, lane-wise).
    pub fn exp2_v4(&mut self, x: Value) -> Value {
        self.exp2_poly(x, Some(4))
    }

    /// The CPU's `2^x`: range reduction and a degree-7 polynomial, on an f32 (`lanes` None) or
    /// on an f32 vector of `lanes`.
    fn exp2_poly(&mut self, x: Value, lanes: Option<u8>) -> Value {
        let wide = |e: &mut Self, v: Value| match lanes {
            Some(l) => e.splat(v, l),
            None => v,
        };
        let ty = |s: Scalar| match lanes {
            Some(l) => Type::Vector(s, l),
            None => Type::Scalar(s),
        };
        let lo0 = self.f32(-126.0);
        let lo = wide(self, lo0);
        let hi0 = self.f32(126.0);
        let hi = wide(self, hi0);
        let xa = self.bin(BinaryOp::Max, x, lo);
        let xc = self.bin(BinaryOp::Min, xa, hi);
        let n = self.un(UnaryOp::RoundEven, xc);
        let f = self.sub(xc, n);
        let coef = [
            1.5252733804059841e-05,
            0.000_154_035_303_933_816_1,
            0.0013333558146428443,
            0.009618129107628477,
            0.05550410866482158,
            0.2402265069591007,
            std::f64::consts::LN_2,
            1.0,
        ];
        let c0 = self.f32(coef[0]);
        let mut p = wide(self, c0);
        for &c in &coef[1..] {
            let cs = self.f32(c);
            let cc = wide(self, cs);
            p = self.fma(p, f, cc);
        }
        let ni = self.cast(CastOp::Fptosi, n, ty(Scalar::I32));
        let b0 = self.i32(127);
        let bias = wide(self, b0);
        let nb = self.add(ni, bias);
        let k23 = self.i32(23);
        let eb = self.bin(BinaryOp::Shl, nb, k23);
        let sc = self.cast(CastOp::Bitcast, eb, ty(Scalar::F32));
        self.mul(p, sc)
    }

    /// Four-lane `shuffle a, b, [lanes]` (indices into a‖b).
    pub fn shuffle4(&mut self, a: Value, b: Value, lanes: [u8; 4]) -> Value {
        let t = self.ty(a);
        self.b.ins1(Op::Shuffle(lanes.to_vec()), &[a, b], t)
    }

    /// `e^x` for an f32 through [`E::exp2`].
    pub fn exp(&mut self, x: Value) -> Value {
        let l2e = self.f32(std::f64::consts::LOG2_E);
        let t = self.mul(x, l2e);
        self.exp2(t)
    }

    /// f32 → f16, rounding to nearest even (GPU: `fptrunc`; CPU: integer rounding, since
    /// Cranelift has no f32 → f16 conversion).
    pub fn f32_to_f16(&mut self, x: Value) -> Value {
        if self.gpu() {
            return self.cast(CastOp::Fptrunc, x, Type::F16);
        }
        let bits = self.cast(CastOp::Bitcast, x, Type::I32);
        let k16 = self.i32(16);
        let hi = self.bin(BinaryOp::Lshr, bits, k16);
        let m8000 = self.i32(0x8000);
        let sign = self.bin(BinaryOp::And, hi, m8000);
        let mabs = self.i32(0x7fff_ffff);
        let abs = self.bin(BinaryOp::And, bits, mabs);
        // normal: rebias the exponent, round the 13 dropped bits to nearest even, saturate to inf
        let k13 = self.i32(13);
        let lsb0 = self.bin(BinaryOp::Lshr, abs, k13);
        let c1 = self.i32(1);
        let lsb = self.bin(BinaryOp::And, lsb0, c1);
        let rebias = self.i32(-0x3800_0000 + 0xfff);
        let n0 = self.add(abs, rebias);
        let n1 = self.add(n0, lsb);
        let n2 = self.bin(BinaryOp::Lshr, n1, k13);
        let inf = self.i32(0x7c00);
        let normal = self.bin(BinaryOp::Umin, n2, inf);
        // subnormal / zero: add 0.5 as a float so the f16 mantissa lands in the low bits, rounded
        let magic_bits = self.i32(126 << 23);
        let magic = self.cast(CastOp::Bitcast, magic_bits, Type::F32);
        let absf = self.cast(CastOp::Bitcast, abs, Type::F32);
        let s0 = self.add(absf, magic);
        let s1 = self.cast(CastOp::Bitcast, s0, Type::I32);
        let sub = self.sub(s1, magic_bits);
        // NaN stays NaN (quiet), inf stays inf
        let fexp = self.i32(0x7f80_0000);
        let is_naninf = self.icmp(IntCC::Uge, abs, fexp);
        let is_nan = self.icmp(IntCC::Ugt, abs, fexp);
        let qnan = self.i32(0x7e00);
        let special = self.select(is_nan, qnan, inf);
        let small_lim = self.i32(0x3880_0000);
        let is_small = self.icmp(IntCC::Ult, abs, small_lim);
        let a = self.select(is_naninf, special, normal);
        let r = self.select(is_small, sub, a);
        let rs = self.bin(BinaryOp::Or, r, sign);
        let h = self.cast(CastOp::Trunc, rs, Type::I16);
        self.cast(CastOp::Bitcast, h, Type::F16)
    }

    /// `sin(a), cos(a)` as f32 for an f64 angle: quadrant reduction by π/2 in f64 (exact enough
    /// for any position a model reaches), then short Taylor series on `[−π/4, π/4]` in f32
    /// (truncation < 1e-9).
    pub fn sincos(&mut self, a: Value) -> (Value, Value) {
        let two_over_pi = self.f64(std::f64::consts::FRAC_2_PI);
        let t = self.mul(a, two_over_pi);
        let k = self.un(UnaryOp::RoundEven, t);
        let p1 = self.f64(-std::f64::consts::FRAC_PI_2);
        let r64 = self.fma(k, p1, a);
        let p2 = self.f64(-6.123_233_995_736_766e-17);
        let r64 = self.fma(k, p2, r64);
        let r = self.cast(CastOp::Fptrunc, r64, Type::F32);
        let r2 = self.mul(r, r);
        // sin r = r (1 − r²/3! + r⁴/5! − r⁶/7! + r⁸/9!)
        let sc = [1.0 / 362_880.0, -1.0 / 5040.0, 1.0 / 120.0, -1.0 / 6.0, 1.0];
        let mut ps = self.f32(sc[0]);
        for &c in &sc[1..] {
            let cc = self.f32(c);
            ps = self.fma(ps, r2, cc);
        }
        let s = self.mul(ps, r);
        // cos r = 1 − r²/2! + r⁴/4! − r⁶/6! + r⁸/8! − r¹⁰/10!
        let cc_ = [-1.0 / 3_628_800.0, 1.0 / 40320.0, -1.0 / 720.0, 1.0 / 24.0, -0.5, 1.0];
        let mut pc = self.f32(cc_[0]);
        for &c in &cc_[1..] {
            let cc = self.f32(c);
            pc = self.fma(pc, r2, cc);
        }
        let c = pc;
        // quadrant q = k mod 4: sin = [s, c, −s, −c][q], cos = [c, −s, −c, s][q]
        let ki = self.cast(CastOp::Fptosi, k, Type::I32);
        let c3 = self.i32(3);
        let q = self.bin(BinaryOp::And, ki, c3);
        let c1 = self.i32(1);
        let c2 = self.i32(2);
        let odd0 = self.bin(BinaryOp::And, q, c1);
        let zero = self.i32(0);
        let odd = self.icmp(IntCC::Ne, odd0, zero);
        let neg0 = self.bin(BinaryOp::And, q, c2);
        let neg_s = self.icmp(IntCC::Ne, neg0, zero);
        // cos is negated in quadrants 1 and 2: (q + 1) & 2
        let q1 = self.add(q, c1);
        let negc0 = self.bin(BinaryOp::And, q1, c2);
        let neg_c = self.icmp(IntCC::Ne, negc0, zero);
        let sin0 = self.select(odd, c, s);
        let cos0 = self.select(odd, s, c);
        let nsin = self.un(UnaryOp::Neg, sin0);
        let ncos = self.un(UnaryOp::Neg, cos0);
        let sin = self.select(neg_s, nsin, sin0);
        let cos = self.select(neg_c, ncos, cos0);
        (sin, cos)
    }
}
