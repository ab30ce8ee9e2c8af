//! The SIMT engine: blocks in sequence, the threads of a block in lockstep under an active mask.

use crate::entities::{Block, Inst, Value};
use crate::interp::lanes::LResult;
use crate::interp::mem::{Memory, Ptr, Who};
use crate::interp::{Arg, RunOptions, Stats};
use crate::kernel::{Kernel, Target};
use crate::ops::{Axis, Op, ShflMode};
use crate::printer::inst_line;
use crate::types::{MemSpace, Type};

/// One thread's value of an SSA value.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Val {
    /// Not computed for this thread.
    Undef,
    /// A scalar's bits.
    S(u64),
    /// A vector's lane bits.
    V(Vec<u64>),
    /// A pointer.
    P(Ptr),
}

impl Val {
    /// Scalar bits.
    pub fn bits(&self) -> LResult<u64> {
        match self {
            Val::S(b) => Ok(*b),
            other => Err(format!("internal: expected a scalar, found {other:?}")),
        }
    }
    /// Lanes of a scalar (one) or a vector.
    pub fn lanes(&self) -> LResult<Vec<u64>> {
        match self {
            Val::S(b) => Ok(vec![*b]),
            Val::V(v) => Ok(v.clone()),
            other => Err(format!("internal: expected a number, found {other:?}")),
        }
    }
    /// A pointer.
    pub fn ptr(&self) -> LResult<Ptr> {
        match self {
            Val::P(p) => Ok(*p),
            other => Err(format!("internal: expected a pointer, found {other:?}")),
        }
    }
    /// A value of type `t` from lanes.
    pub fn of(t: Type, lanes: Vec<u64>) -> Val {
        if t.is_vector() {
            Val::V(lanes)
        } else {
            Val::S(lanes.first().copied().unwrap_or(0))
        }
    }
}

pub(crate) struct Engine<'k> {
    pub k: &'k Kernel,
    pub mem: Memory,
    env: Vec<Vec<Val>>,
    pub nthreads: usize,
    pub block: u32,
    pub phase: u32,
    pub stats: Stats,
    budget: u64,
}

impl<'k> Engine<'k> {
    pub(crate) fn run(k: &'k Kernel, args: &mut [Arg], opts: RunOptions) -> LResult<Stats> {
        if args.len() != k.params.len() {
            return Err(format!("{} arguments for {} parameters", args.len(), k.params.len()));
        }
        let mut e = Engine {
            k,
            mem: Memory::default(),
            env: vec![Vec::new(); k.num_values()],
            nthreads: k.target.threads_per_block() as usize,
            block: 0,
            phase: 0,
            stats: Stats::default(),
            budget: opts.max_thread_insts,
        };
        let params = e.bind_args(args)?;
        let nglobal = e.mem.bufs.len();
        for b in 0..k.target.blocks() {
            e.block = b as u32;
            e.phase = 0;
            e.env.iter_mut().for_each(Vec::clear);
            for (&v, val) in k.params.iter().map(|p| &p.value).zip(&params) {
                e.env[v.index()] = vec![val.clone(); e.nthreads];
            }
            e.exec_block(k.body(), &vec![true; e.nthreads])?;
            e.mem.bufs.truncate(nglobal);
        }
        for (a, buf) in args.iter_mut().zip(0..) {
            if let Arg::Buf(b) = a {
                b.bytes = std::mem::take(&mut e.mem.bufs[buf].data);
            }
        }
        e.stats.bytes_loaded = e.mem.loaded;
        e.stats.bytes_stored = e.mem.stored;
        Ok(e.stats)
    }

    /// Check arguments against parameters; buffers become global memory (buffer i = argument i).
    fn bind_args(&mut self, args: &[Arg]) -> LResult<Vec<Val>> {
        let k = self.k;
        let mut vals = Vec::new();
        for (n, (p, a)) in k.params.iter().zip(args).enumerate() {
            let ty = k.ty(p.value);
            let name = k.value_spelling(p.value);
            let (val, bytes) = match (ty, a) {
                (Type::Ptr(_, e), Arg::Buf(b)) => {
                    if let Some(len) = p.attrs.len {
                        let need = len * u64::from(e.bytes());
                        if (b.bytes.len() as u64) < need {
                            return Err(format!(
                                "argument {n} ({name}): {} bytes, need {need}",
                                b.bytes.len()
                            ));
                        }
                    }
                    (Val::P(Ptr { buf: n as u32, off: 0 }), b.bytes.clone())
                }
                (Type::Scalar(s), Arg::Int(i)) if s.is_int() => (Val::S(*i as u64 & s.mask()), Vec::new()),
                (Type::Scalar(s), Arg::Float(x)) if s.is_float() => {
                    (Val::S(super::lanes::from_f64(s, *x)), Vec::new())
                }
                _ => return Err(format!("argument {n} ({name}: {ty}) does not match {a:?}")),
            };
            self.mem.alloc(MemSpace::Global, bytes, true, name);
            vals.push(val);
        }
        Ok(vals)
    }

    pub fn get(&self, v: Value, t: usize) -> &Val {
        self.env[v.index()].get(t).unwrap_or(&Val::Undef)
    }

    fn set(&mut self, v: Value, t: usize, val: Val) {
        let slot = &mut self.env[v.index()];
        if slot.len() < self.nthreads {
            slot.resize(self.nthreads, Val::Undef);
        }
        slot[t] = val;
    }

    pub fn who(&self, t: usize) -> Who {
        Who { block: self.block, thread: t as u32, phase: self.phase }
    }

    fn exec_block(&mut self, b: Block, mask: &[bool]) -> LResult<()> {
        let k = self.k;
        for &i in &k.block(b).insts {
            let active = mask.iter().filter(|&&m| m).count() as u64;
            self.stats.thread_insts += active;
            if self.stats.thread_insts > self.budget {
                return Err(format!("stopped after {} thread-instructions (raise RunOptions)", self.budget));
            }
            self.exec_inst(i, mask).map_err(|m| {
                if m.starts_with("inst") {
                    m
                } else {
                    format!("{i} (`{}`) in block {}: {m}", inst_line(k, i), self.block)
                }
            })?;
        }
        Ok(())
    }

    fn exec_inst(&mut self, i: Inst, mask: &[bool]) -> LResult<()> {
        let d = self.k.inst(i);
        match &d.op {
            Op::For { .. } => self.exec_for(i, mask),
            Op::If => self.exec_if(i, mask),
            Op::Barrier => {
                if mask.iter().any(|&m| !m) {
                    let n = mask.iter().filter(|&&m| m).count();
                    return Err(format!(
                        "barrier reached by {n} of {} threads (divergent barrier)",
                        self.nthreads
                    ));
                }
                self.phase += 1;
                self.stats.barriers += 1;
                Ok(())
            }
            Op::Shfl(m) => self.exec_shfl(i, *m, mask),
            Op::Alloc(space, n) => {
                let Type::Ptr(_, e) = self.k.ty(d.results[0]) else {
                    return Err("alloc of a non-pointer".into());
                };
                let bytes = vec![0u8; (*n as usize) * e.bytes() as usize];
                let name = self.k.value_spelling(d.results[0]);
                let shared = (*space == MemSpace::Shared)
                    .then(|| self.mem.alloc(*space, bytes.clone(), false, name.clone()));
                for t in (0..self.nthreads).filter(|&t| mask[t]) {
                    let buf = shared.unwrap_or_else(|| {
                        self.mem.alloc(MemSpace::Local, bytes.clone(), false, name.clone())
                    });
                    self.set(d.results[0], t, Val::P(Ptr { buf, off: 0 }));
                }
                Ok(())
            }
            _ => {
                for t in (0..self.nthreads).filter(|&t| mask[t]) {
                    if let Some(v) = self.eval(i, t)? {
                        self.set(d.results[0], t, v);
                    }
                }
                Ok(())
            }
        }
    }

    fn exec_for(&mut self, i: Inst, mask: &[bool]) -> LResult<()> {
        let k = self.k;
        let d = k.inst(i);
        let body = d.blocks[0];
        let bargs = k.block(body).args.clone();
        let s = k.ty(d.args[0]).elem().ok_or("loop bound type")?;
        let n = self.nthreads;
        let mut iv = vec![0i64; n];
        let mut hi = vec![0i64; n];
        let mut step = vec![0i64; n];
        let mut carried: Vec<Vec<Val>> = vec![Vec::new(); n];
        for t in (0..n).filter(|&t| mask[t]) {
            iv[t] = super::lanes::sx(self.get(d.args[0], t).bits()?, s);
            hi[t] = super::lanes::sx(self.get(d.args[1], t).bits()?, s);
            step[t] = super::lanes::sx(self.get(d.args[2], t).bits()?, s);
            if step[t] <= 0 {
                return Err(format!("loop step {} must be positive (thread {t})", step[t]));
            }
            carried[t] = d.args[3..].iter().map(|&a| self.get(a, t).clone()).collect();
        }
        loop {
            let active: Vec<bool> = (0..n).map(|t| mask[t] && iv[t] < hi[t]).collect();
            if !active.contains(&true) {
                break;
            }
            // each iteration costs its branch, so empty loops also meet the budget
            self.stats.thread_insts += active.iter().filter(|&&a| a).count() as u64;
            if self.stats.thread_insts > self.budget {
                return Err(format!("stopped after {} thread-instructions (raise RunOptions)", self.budget));
            }
            for t in (0..n).filter(|&t| active[t]) {
                self.set(bargs[0], t, Val::S(iv[t] as u64 & s.mask()));
                for (j, c) in carried[t].iter().enumerate() {
                    self.set(bargs[j + 1], t, c.clone());
                }
            }
            self.exec_block(body, &active)?;
            let ys = &k.block(body).yields;
            for t in (0..n).filter(|&t| active[t]) {
                carried[t] = ys.iter().map(|&y| self.get(y, t).clone()).collect();
                iv[t] = iv[t].checked_add(step[t]).ok_or("loop counter overflow")?;
            }
        }
        for t in (0..n).filter(|&t| mask[t]) {
            for (j, &r) in d.results.iter().enumerate() {
                self.set(r, t, carried[t][j].clone());
            }
        }
        Ok(())
    }

    fn exec_if(&mut self, i: Inst, mask: &[bool]) -> LResult<()> {
        let k = self.k;
        let d = k.inst(i);
        let n = self.nthreads;
        let mut cond = vec![false; n];
        for t in (0..n).filter(|&t| mask[t]) {
            cond[t] = self.get(d.args[0], t).bits()? & 1 == 1;
        }
        for (arm, &b) in d.blocks.iter().enumerate() {
            let m: Vec<bool> = (0..n).map(|t| mask[t] && cond[t] == (arm == 0)).collect();
            if !m.contains(&true) {
                continue;
            }
            self.exec_block(b, &m)?;
            let ys = &k.block(b).yields;
            for t in (0..n).filter(|&t| m[t]) {
                for (&r, &y) in d.results.iter().zip(ys) {
                    let v = self.get(y, t).clone();
                    self.set(r, t, v);
                }
            }
        }
        Ok(())
    }

    /// Warp shuffles: each warp with any active lane must have all 32 lanes active.
    fn exec_shfl(&mut self, i: Inst, mode: ShflMode, mask: &[bool]) -> LResult<()> {
        let d = self.k.inst(i);
        let n = self.nthreads;
        let mut out = Vec::new();
        for w0 in (0..n).step_by(32) {
            let lanes = w0..(w0 + 32).min(n);
            let active = lanes.clone().filter(|&t| mask[t]).count();
            if active == 0 {
                continue;
            }
            if active != lanes.len() {
                return Err(format!("shuffle in warp {} with {active} of 32 lanes active", w0 / 32));
            }
            for t in lanes {
                let lane = (t - w0) as i64;
                let x = self.get(d.args[1], t).bits()? as u32 as i64;
                let src = match mode {
                    ShflMode::Xor => lane ^ x,
                    ShflMode::Down => lane + x,
                    ShflMode::Up => lane - x,
                    ShflMode::Idx => x & 31,
                };
                let src = if (0..32).contains(&src) { w0 + src as usize } else { t };
                out.push((t, self.get(d.args[0], src).clone()));
            }
        }
        for (t, v) in out {
            self.set(d.results[0], t, v);
        }
        Ok(())
    }

    /// The value of an axis for thread `t`.
    pub fn axis(&self, a: Axis, t: usize) -> u64 {
        let t = t as u64;
        let b = u64::from(self.block);
        match self.k.target {
            Target::Gpu { grid: g, block: bl } => {
                let (g, bl) = (g.map(u64::from), bl.map(u64::from));
                match a {
                    Axis::GridX => b % g[0],
                    Axis::GridY => b / g[0] % g[1],
                    Axis::GridZ => b / (g[0] * g[1]),
                    Axis::BlockX => t % bl[0],
                    Axis::BlockY => t / bl[0] % bl[1],
                    Axis::BlockZ => t / (bl[0] * bl[1]),
                    Axis::Warp => t / 32,
                    Axis::Lane => t % 32,
                    Axis::CpuChunk => 0,
                }
            }
            Target::Cpu { .. } => {
                if a == Axis::CpuChunk {
                    b
                } else {
                    0
                }
            }
        }
    }
}
