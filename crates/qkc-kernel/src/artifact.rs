//! What a code generator returns for one kernel: the code, the entry name, the launch shape,
//! the parameter layout and the specialization key. It prints as a readable manifest.
//!
//! The calling convention both backends implement:
//! - GPU: `.entry NAME(params...)`, one kernel parameter per KIR parameter in order (pointers as
//!   64-bit global addresses, scalars by value), launched with `launch`'s grid, block and dynamic
//!   shared bytes (0: shared memory is static).
//! - CPU: `extern "C" fn NAME(params..., chunk_lo: u32, chunk_hi: u32)`, pointers as addresses;
//!   it runs chunks `chunk_lo..chunk_hi`; the runtime splits `0..chunks` into ranges and calls
//!   it once per range, from any thread, in any order.

use std::fmt;

use crate::hash::StableHasher;
use crate::kernel::{Kernel, Target};
use crate::ops::Op;
use crate::printer;
use crate::types::{MemSpace, Scalar, Type};
use crate::verify_ops::root_param;

/// The generated code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Code {
    /// KIR text (what the interpreter runs).
    Kir(String),
    /// PTX assembly.
    Ptx(String),
    /// LLVM IR text.
    LlvmIr(String),
    /// Cranelift IR text (for snapshots; the JIT keeps the machine code itself).
    Clif(String),
    /// A relocatable object file.
    Object(Vec<u8>),
}

impl Code {
    fn describe(&self) -> String {
        match self {
            Code::Kir(s) => format!("kir, {} bytes", s.len()),
            Code::Ptx(s) => format!("ptx, {} bytes", s.len()),
            Code::LlvmIr(s) => format!("llvm-ir, {} bytes", s.len()),
            Code::Clif(s) => format!("clif, {} bytes", s.len()),
            Code::Object(b) => format!("object, {} bytes", b.len()),
        }
    }
}

/// How to launch the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LaunchConfig {
    /// A CUDA launch.
    Gpu {
        /// Grid (blocks).
        grid: [u32; 3],
        /// Block (threads).
        block: [u32; 3],
        /// Static shared memory in bytes (informational: it is declared in the code).
        shared_bytes: u64,
    },
    /// CPU chunks.
    Cpu {
        /// Number of chunks.
        chunks: u32,
    },
}

/// One parameter's place in the calling convention.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamLayout {
    /// The KIR name (without `%`), or `argN`.
    pub name: String,
    /// Pointer or scalar, and its type.
    pub ty: Type,
    /// Elements the buffer must hold (pointers with `len`).
    pub len: Option<u64>,
    /// Alignment the kernel assumes for the buffer's start, in bytes.
    pub align: u32,
    /// The kernel reads it.
    pub read: bool,
    /// The kernel writes it.
    pub write: bool,
}

impl ParamLayout {
    /// Bytes the buffer must hold, when known.
    pub fn bytes(&self) -> Option<u64> {
        match self.ty {
            Type::Ptr(_, e) => self.len.map(|n| n * u64::from(e.bytes())),
            _ => None,
        }
    }
}

/// A stable hash of everything baked into a kernel (its canonical text, which holds every
/// constant, the target and launch shape) and of the code generator and its options.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpecKey(pub u128);

impl SpecKey {
    /// The key of `kernel` compiled by `codegen` (e.g. `"cranelift x86_64 sse4.1"`, `"llvm19 sm_90"`).
    pub fn of(kernel: &Kernel, codegen: &str) -> SpecKey {
        let mut h = StableHasher::new();
        h.field("qkc-kernel/kir-v1").field(&printer::print(kernel)).field(codegen);
        SpecKey(h.finish())
    }
}

impl fmt::Display for SpecKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

/// A compiled kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Artifact {
    /// The code.
    pub code: Code,
    /// The entry symbol.
    pub entry: String,
    /// The code generator and its options, as hashed into the key.
    pub codegen: String,
    /// How to launch it.
    pub launch: LaunchConfig,
    /// Parameters in ABI order.
    pub params: Vec<ParamLayout>,
    /// The specialization key.
    pub key: SpecKey,
}

impl Artifact {
    /// The artifact for `kernel` compiled by `codegen` into `code`.
    pub fn new(kernel: &Kernel, code: Code, codegen: &str) -> Artifact {
        let launch = match kernel.target {
            Target::Gpu { grid, block } => {
                LaunchConfig::Gpu { grid, block, shared_bytes: kernel.shared_bytes() }
            }
            Target::Cpu { chunks, .. } => LaunchConfig::Cpu { chunks },
        };
        Artifact {
            code,
            entry: kernel.name.clone(),
            codegen: codegen.to_string(),
            launch,
            params: param_layout(kernel),
            key: SpecKey::of(kernel, codegen),
        }
    }
}

/// The parameter layout of a kernel: types, lengths, the alignment its accesses assume, and
/// whether it reads and writes each buffer.
pub fn param_layout(k: &Kernel) -> Vec<ParamLayout> {
    let mut out: Vec<ParamLayout> = k
        .params
        .iter()
        .enumerate()
        .map(|(n, p)| {
            let ty = k.ty(p.value);
            ParamLayout {
                name: k.value(p.value).name.clone().unwrap_or_else(|| format!("arg{n}")),
                ty,
                len: p.attrs.len,
                align: ty.elem().map_or(ty.bytes(), Scalar::bytes).max(1),
                read: false,
                write: false,
            }
        })
        .collect();
    for i in k.inst_ids() {
        let d = k.inst(i);
        let (ptr, align, read, write) = match &d.op {
            Op::Load(f) => (d.args.first(), f.align, true, false),
            Op::Store(f) => (d.args.get(1), f.align, false, true),
            Op::AtomicAdd => (d.args.first(), 1, true, true),
            _ => continue,
        };
        let Some(n) = ptr.and_then(|&p| root_param(k, p)) else { continue };
        if let Some(l) = out.get_mut(n) {
            l.align = l.align.max(align);
            l.read |= read;
            l.write |= write;
        }
    }
    out
}

impl fmt::Display for Artifact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "artifact @{} key {}", self.entry, self.key)?;
        writeln!(f, "  codegen: {}", self.codegen)?;
        match self.launch {
            LaunchConfig::Gpu { grid: g, block: b, shared_bytes } => writeln!(
                f,
                "  launch: grid({}, {}, {}) block({}, {}, {}) shared {shared_bytes} B",
                g[0], g[1], g[2], b[0], b[1], b[2]
            )?,
            LaunchConfig::Cpu { chunks } => writeln!(f, "  launch: chunks({chunks})")?,
        }
        writeln!(f, "  params:")?;
        for (n, p) in self.params.iter().enumerate() {
            let rw = match (p.read, p.write) {
                (true, true) => "rw",
                (true, false) => "r",
                (false, true) => "w",
                (false, false) => "-",
            };
            write!(f, "    {n}: %{}: {} {rw} align {}", p.name, p.ty, p.align)?;
            if let (Some(len), Some(bytes)) = (p.len, p.bytes()) {
                write!(f, " len {len} ({bytes} B)")?;
            }
            if matches!(p.ty, Type::Ptr(MemSpace::Global, _)) && p.len.is_none() {
                write!(f, " len ?")?;
            }
            writeln!(f)?;
        }
        writeln!(f, "  code: {}", self.code.describe())
    }
}
