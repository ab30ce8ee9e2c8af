//! The kernel: parameters, target and launch shape, and arenas of values, instructions and
//! blocks forming one tree of structured regions.
//!
//! A kernel is SPMD: its body runs once per point of its launch domain. On a GPU that is every
//! thread of `grid × block`; on the CPU every chunk in `0..chunks` (one call of the compiled
//! function per chunk, spread over a thread pool), with SIMD expressed by vector types. Ids are
//! allocated in text order (see [`crate::builder`]), so `parse(print(k)) == k`.

use crate::entities::{Block, Inst, Value};
use crate::ops::Op;
use crate::types::Type;

/// Where a kernel runs, and its launch shape (baked in: every kernel is specialized).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Target {
    /// An NVIDIA GPU: `grid` blocks of `block` threads.
    Gpu {
        /// Blocks per grid (x, y, z).
        grid: [u32; 3],
        /// Threads per block (x, y, z).
        block: [u32; 3],
    },
    /// The host CPU: `chunks` independent calls, vectors up to `simd_bits` wide.
    Cpu {
        /// Number of chunks (the `cpu.chunk` axis).
        chunks: u32,
        /// Widest vector the code generator handles (128 for Cranelift's x86-64 SSE/AVX encodings).
        simd_bits: u32,
    },
}

impl Target {
    /// Is this a GPU target?
    pub fn is_gpu(&self) -> bool {
        matches!(self, Target::Gpu { .. })
    }
    /// Threads per block (1 on the CPU).
    pub fn threads_per_block(&self) -> u64 {
        match self {
            Target::Gpu { block, .. } => block.iter().map(|&d| u64::from(d)).product(),
            Target::Cpu { .. } => 1,
        }
    }
    /// Blocks (GPU) or chunks (CPU).
    pub fn blocks(&self) -> u64 {
        match self {
            Target::Gpu { grid, .. } => grid.iter().map(|&d| u64::from(d)).product(),
            Target::Cpu { chunks, .. } => u64::from(*chunks),
        }
    }
}

/// Facts a parameter promises, which backends may rely on (`noalias` → `__restrict__`,
/// `readonly` → `ld.global.nc`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct ParamAttrs {
    /// No other parameter points into the same buffer.
    pub noalias: bool,
    /// The kernel never writes through it.
    pub readonly: bool,
    /// The kernel never reads through it.
    pub writeonly: bool,
    /// The buffer holds at least this many elements (checked by the interpreter, recorded in
    /// the artifact's parameter layout).
    pub len: Option<u64>,
}

/// A kernel parameter.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Param {
    /// Its value.
    pub value: Value,
    /// What it promises.
    pub attrs: ParamAttrs,
}

/// Where a value comes from.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum ValueDef {
    /// The n-th kernel parameter.
    Param(u32),
    /// The n-th result of an instruction.
    Result(Inst, u32),
    /// The n-th argument of a block.
    BlockArg(Block, u32),
}

/// A value's type, optional text name and definition.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct ValueData {
    /// Its type.
    pub ty: Type,
    /// Its name in text (`%acc`), or `None` for `vN`.
    pub name: Option<String>,
    /// Where it is defined.
    pub def: ValueDef,
}

/// An instruction: an op, its operands, its results and its regions.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct InstData {
    /// The op (with its immediates).
    pub op: Op,
    /// Operands.
    pub args: Vec<Value>,
    /// Results.
    pub results: Vec<Value>,
    /// Regions: `for` has its body; `if` has then and else.
    pub blocks: Vec<Block>,
}

/// A block: arguments (a `for` body gets the induction variable and the carried values), a list
/// of instructions, and the values it yields to its parent.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default)]
pub struct BlockData {
    /// Block arguments.
    pub args: Vec<Value>,
    /// Instructions in order.
    pub insts: Vec<Inst>,
    /// Values yielded at the end (`yield a, b`).
    pub yields: Vec<Value>,
    /// The instruction owning this block (`None` for the kernel body).
    pub parent: Option<Inst>,
}

/// A kernel in KIR.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Kernel {
    /// Entry name (without `@`).
    pub name: String,
    /// Parameters, in ABI order.
    pub params: Vec<Param>,
    /// Target and launch shape.
    pub target: Target,
    pub(crate) values: Vec<ValueData>,
    pub(crate) insts: Vec<InstData>,
    pub(crate) blocks: Vec<BlockData>,
    pub(crate) body: Block,
}

impl Kernel {
    /// The top-level block.
    pub fn body(&self) -> Block {
        self.body
    }
    /// A value's data.
    pub fn value(&self, v: Value) -> &ValueData {
        &self.values[v.index()]
    }
    /// A value's type.
    pub fn ty(&self, v: Value) -> Type {
        self.values[v.index()].ty
    }
    /// An instruction.
    pub fn inst(&self, i: Inst) -> &InstData {
        &self.insts[i.index()]
    }
    /// A block.
    pub fn block(&self, b: Block) -> &BlockData {
        &self.blocks[b.index()]
    }
    /// Number of values.
    pub fn num_values(&self) -> usize {
        self.values.len()
    }
    /// Number of instructions.
    pub fn num_insts(&self) -> usize {
        self.insts.len()
    }
    /// Number of blocks.
    pub fn num_blocks(&self) -> usize {
        self.blocks.len()
    }
    /// Every instruction id.
    pub fn inst_ids(&self) -> impl Iterator<Item = Inst> {
        (0..self.insts.len()).map(Inst::new)
    }
    /// The text spelling of a value: `%name` or `vN`.
    pub fn value_spelling(&self, v: Value) -> String {
        match self.values.get(v.index()).and_then(|d| d.name.as_deref()) {
            Some(n) => format!("%{n}"),
            None => v.to_string(),
        }
    }
    /// Find a value by name (without `%`).
    pub fn value_by_name(&self, name: &str) -> Option<Value> {
        self.values.iter().position(|d| d.name.as_deref() == Some(name)).map(Value::new)
    }
    /// Bytes of shared memory the kernel allocates statically.
    pub fn shared_bytes(&self) -> u64 {
        self.insts
            .iter()
            .filter_map(|i| match (&i.op, i.results.first()) {
                (Op::Alloc(crate::MemSpace::Shared, n), Some(&r)) => {
                    let elem = match self.ty(r) {
                        Type::Ptr(_, s) => u64::from(s.bytes()),
                        _ => 0,
                    };
                    Some(u64::from(*n) * elem)
                }
                _ => None,
            })
            .sum()
    }
    /// Mutable access for passes that rewrite a kernel in place (rewiring operands).
    pub fn inst_mut(&mut self, i: Inst) -> &mut InstData {
        &mut self.insts[i.index()]
    }
}
