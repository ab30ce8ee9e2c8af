//! KIR → LLVM IR text: one function per kernel (KIR.md's LLVM column).
//!
//! The translation writes LLVM's textual IR, which [`crate::machine`] parses, verifies,
//! optimizes and compiles with inkwell; the text is also what [`crate::llvm_ir`] returns for
//! review and snapshots. KIR values map one-to-one to LLVM SSA values: KIR is structured, so
//! every definition dominates its uses; loop-carried values and region results become phis.
//!
//! Names: a named KIR value `%acc` keeps its name; an unnamed one is `%vN`; temporaries are
//! `%.tN` and labels `.bN` (KIR names never start with `.`, so nothing collides).
//!
//! Targets:
//! - GPU (NVPTX): pointer parameters are `ptr addrspace(1)`, shared memory is an
//!   `addrspace(3)` global, the kernel is marked by `nvvm.annotations` (`kernel`, and
//!   `maxntid{x,y,z}` = the block: launch bounds).
//! - Host CPU: `void NAME(params..., i32 chunk_lo, i32 chunk_hi)`, the chunk axis an outer loop
//!   (the Cranelift backend's calling convention, see [`crate::host`]).

mod control;
mod gpu;
mod mem;
mod ops;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use qkc_kernel::{Block, Inst, Kernel, MemSpace, Op, Scalar, Target, Type, Value, ValueDef};

use crate::error::{LlvmError, Result};

/// Which machine the IR is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flavor {
    /// NVPTX (`nvptx64-nvidia-cuda`).
    Nvptx,
    /// The host CPU (x86-64).
    Host,
}

/// The LLVM spelling of a scalar.
pub(crate) fn scalar_ty(s: Scalar) -> &'static str {
    match s {
        Scalar::I1 => "i1",
        Scalar::I8 => "i8",
        Scalar::I16 => "i16",
        Scalar::I32 => "i32",
        Scalar::I64 => "i64",
        Scalar::F16 => "half",
        Scalar::Bf16 => "bfloat",
        Scalar::F32 => "float",
        Scalar::F64 => "double",
    }
}

/// The intrinsic-name suffix of a scalar (`f32`, `i8`).
pub(crate) fn scalar_mangle(s: Scalar) -> &'static str {
    match s {
        Scalar::I1 => "i1",
        Scalar::I8 => "i8",
        Scalar::I16 => "i16",
        Scalar::I32 => "i32",
        Scalar::I64 => "i64",
        Scalar::F16 => "f16",
        Scalar::Bf16 => "bf16",
        Scalar::F32 => "f32",
        Scalar::F64 => "f64",
    }
}

/// The intrinsic-name suffix of a type (`f32`, `v2f16`).
pub(crate) fn mangle(t: Type) -> String {
    match t {
        Type::Scalar(s) => scalar_mangle(s).to_string(),
        Type::Vector(s, n) => format!("v{n}{}", scalar_mangle(s)),
        Type::Ptr(m, _) => format!("p{}", addrspace(m)),
    }
}

fn addrspace(m: MemSpace) -> u32 {
    match m {
        MemSpace::Global => 1,
        MemSpace::Shared => 3,
        MemSpace::Local => 0,
    }
}

/// One lane's literal: `i32 -1` → `-1`, `half` → `0xH3C00`, `float` → a hex double.
pub(crate) fn lane_lit(s: Scalar, bits: u64) -> String {
    let bits = bits & s.mask();
    match s {
        Scalar::I1 => if bits != 0 { "true" } else { "false" }.to_string(),
        Scalar::I8 | Scalar::I16 | Scalar::I32 | Scalar::I64 => {
            let shift = 64 - s.bits();
            (((bits << shift) as i64) >> shift).to_string()
        }
        Scalar::F16 => format!("0xH{bits:04X}"),
        Scalar::Bf16 => format!("0xR{bits:04X}"),
        Scalar::F32 => format!("0x{:016X}", f32_as_f64_bits(bits as u32)),
        Scalar::F64 => format!("0x{bits:016X}"),
    }
}

/// LLVM writes `float` constants as the bits of the equal `double`; NaN payloads are moved by
/// hand (a hardware conversion could quiet a signalling NaN).
fn f32_as_f64_bits(b: u32) -> u64 {
    let (sign, exp, man) = (
        u64::from(b >> 31),
        (b >> 23) & 0xff,
        u64::from(b & 0x7f_ffff),
    );
    if exp == 0xff {
        (sign << 63) | (0x7ff << 52) | (man << 29)
    } else {
        f64::from(f32::from_bits(b)).to_bits()
    }
}

/// A constant of type `t` from lane bits (one entry = a splat).
pub(crate) fn const_lit(t: Type, bits: &[u64]) -> Option<String> {
    let e = t.elem()?;
    if !t.is_vector() {
        return Some(lane_lit(e, bits.first().copied().unwrap_or(0)));
    }
    let lane = |n: usize| bits.get(n).or(bits.first()).copied().unwrap_or(0);
    if (0..t.lanes() as usize).all(|n| lane(n) & e.mask() == 0) {
        return Some("zeroinitializer".into());
    }
    let lanes: Vec<String> = (0..t.lanes() as usize)
        .map(|n| format!("{} {}", scalar_ty(e), lane_lit(e, lane(n))))
        .collect();
    Some(format!("<{}>", lanes.join(", ")))
}

/// The state of one kernel's translation.
pub(crate) struct Emitter<'k> {
    pub(crate) k: &'k Kernel,
    pub(crate) flavor: Flavor,
    /// Operand text of each KIR value once defined (`%acc`, `%.t3`, a literal, `@smem.2`).
    vals: Vec<Option<String>>,
    /// The function body after the entry label.
    pub(crate) body: String,
    /// `alloca`s, placed at the top of the entry block.
    allocas: String,
    /// Module-level definitions (shared memory).
    globals: String,
    /// Declarations of intrinsics, by name.
    decls: BTreeMap<String, String>,
    /// Attribute groups used by call sites, `#N` = index.
    pub(crate) attr_groups: Vec<&'static str>,
    /// Metadata nodes `!N` = index.
    md: Vec<String>,
    tmp: u32,
    label: u32,
    /// The label of the block being filled.
    pub(crate) cur: String,
    /// The chunk index of the host chunk loop.
    pub(crate) chunk: Option<String>,
}

impl<'k> Emitter<'k> {
    pub(crate) fn new(k: &'k Kernel, flavor: Flavor) -> Self {
        Emitter {
            k,
            flavor,
            vals: vec![None; k.num_values()],
            body: String::new(),
            allocas: String::new(),
            globals: String::new(),
            decls: BTreeMap::new(),
            attr_groups: Vec::new(),
            md: Vec::new(),
            tmp: 0,
            label: 0,
            cur: ".entry".into(),
            chunk: None,
        }
    }

    // ---- errors -------------------------------------------------------------------------

    pub(crate) fn unsup(&self, i: Inst, reason: impl Into<String>) -> LlvmError {
        LlvmError::Unsupported {
            kernel: self.k.name.clone(),
            inst: qkc_kernel::printer::inst_line(self.k, i),
            reason: reason.into(),
        }
    }

    pub(crate) fn internal(&self, message: impl Into<String>) -> LlvmError {
        LlvmError::Internal {
            kernel: self.k.name.clone(),
            message: message.into(),
        }
    }

    // ---- types and values -----------------------------------------------------------------

    /// The LLVM spelling of a KIR type.
    pub(crate) fn ty(&self, t: Type) -> String {
        match t {
            Type::Scalar(s) => scalar_ty(s).to_string(),
            Type::Vector(s, n) => format!("<{n} x {}>", scalar_ty(s)),
            Type::Ptr(m, _) => match (self.flavor, addrspace(m)) {
                (Flavor::Host, _) | (_, 0) => "ptr".to_string(),
                (Flavor::Nvptx, a) => format!("ptr addrspace({a})"),
            },
        }
    }

    /// The LLVM type of a KIR value.
    pub(crate) fn vty(&self, v: Value) -> String {
        self.ty(self.k.ty(v))
    }

    /// The name a KIR value's defining instruction writes.
    pub(crate) fn name_of(&self, v: Value) -> String {
        match self.k.value(v).name.as_deref() {
            Some(n)
                if n.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                    && !(n.len() > 1
                        && n.starts_with('v')
                        && n[1..].bytes().all(|b| b.is_ascii_digit())) =>
            {
                format!("%{n}")
            }
            Some(n) => format!("%-{n}"),
            None => format!("%v{}", v.index()),
        }
    }

    /// The operand text of a defined value.
    pub(crate) fn val(&self, v: Value) -> Result<String> {
        self.vals.get(v.index()).cloned().flatten().ok_or_else(|| {
            self.internal(format!(
                "{} used before it was translated",
                self.k.value_spelling(v)
            ))
        })
    }

    /// `T %x`: a typed operand.
    pub(crate) fn tval(&self, v: Value) -> Result<String> {
        Ok(format!("{} {}", self.vty(v), self.val(v)?))
    }

    pub(crate) fn def(&mut self, v: Value, text: String) {
        if let Some(slot) = self.vals.get_mut(v.index()) {
            *slot = Some(text);
        }
    }

    /// Define `v` by an instruction's right-hand side (`add i32 %a, %b`), written under `v`'s name.
    pub(crate) fn def_rhs(&mut self, v: Value, rhs: &str) {
        let n = self.name_of(v);
        self.line(&format!("{n} = {rhs}"));
        self.def(v, n);
    }

    /// A fresh temporary name.
    pub(crate) fn fresh(&mut self) -> String {
        self.tmp += 1;
        format!("%.t{}", self.tmp)
    }

    /// Write `%.tN = rhs` and return `%.tN`.
    pub(crate) fn t(&mut self, rhs: &str) -> String {
        let n = self.fresh();
        self.line(&format!("{n} = {rhs}"));
        n
    }

    /// A fresh label.
    pub(crate) fn new_label(&mut self) -> String {
        self.label += 1;
        format!(".b{}", self.label)
    }

    /// Write one instruction.
    pub(crate) fn line(&mut self, s: &str) {
        self.body.push_str("  ");
        self.body.push_str(s);
        self.body.push('\n');
    }

    /// Start filling block `l`.
    pub(crate) fn start(&mut self, l: &str) {
        let _ = writeln!(self.body, "{l}:");
        self.cur = l.to_string();
    }

    /// Declare a function (an intrinsic) once.
    pub(crate) fn declare(&mut self, name: &str, ret: &str, args: &[&str]) {
        self.decls
            .entry(name.to_string())
            .or_insert_with(|| format!("declare {ret} @{name}({})", args.join(", ")));
    }

    /// `call RET @NAME(args)` (declaring it); returns the right-hand side.
    pub(crate) fn call_rhs(&mut self, ret: &str, name: &str, args: &[(String, String)]) -> String {
        let tys: Vec<&str> = args.iter().map(|(t, _)| t.as_str()).collect();
        self.declare(name, ret, &tys);
        let a: Vec<String> = args.iter().map(|(t, v)| format!("{t} {v}")).collect();
        format!("call {ret} @{name}({})", a.join(", "))
    }

    /// An attribute group's number.
    pub(crate) fn attrs(&mut self, text: &'static str) -> usize {
        if let Some(n) = self.attr_groups.iter().position(|&a| a == text) {
            return n;
        }
        self.attr_groups.push(text);
        self.attr_groups.len() - 1
    }

    /// Add a metadata node; `f` gets its own number (for self-referential loop ids).
    pub(crate) fn add_md(&mut self, f: impl FnOnce(usize) -> String) -> usize {
        let n = self.md.len();
        self.md.push(String::new());
        let s = f(n);
        self.md[n] = s;
        n
    }

    pub(crate) fn add_alloca(&mut self, line: &str) {
        let _ = writeln!(self.allocas, "  {line}");
    }

    pub(crate) fn add_global(&mut self, line: &str) {
        let _ = writeln!(self.globals, "{line}");
    }

    // ---- the kernel ---------------------------------------------------------------------------

    /// The alignment every access through parameter `n` assumes for the buffer's start: the
    /// element size, raised by the `align` of loads, stores and atomics rooted at it.
    fn param_align(&self, n: usize) -> u32 {
        let Some(Type::Ptr(_, e)) = self.k.params.get(n).map(|p| self.k.ty(p.value)) else {
            return 1;
        };
        let mut align = e.bytes().max(1);
        for i in self.k.inst_ids() {
            let d = self.k.inst(i);
            let (ptr, a) = match &d.op {
                Op::Load(f) => (d.args.first(), f.align),
                Op::Store(f) => (d.args.get(1), f.align),
                _ => continue,
            };
            // Only accesses at the parameter itself tell about its start; `offset`s move it.
            if ptr.is_some_and(
                |&p| matches!(self.k.value(p).def, ValueDef::Param(m) if m as usize == n),
            ) {
                align = align.max(a);
            }
        }
        align
    }

    /// The parameter list (`ptr addrspace(1) noalias readonly align 16 %w, ...`).
    fn params(&self) -> Vec<String> {
        self.k
            .params
            .iter()
            .enumerate()
            .map(|(n, p)| {
                let t = self.k.ty(p.value);
                let mut s = self.ty(t);
                if t.is_ptr() {
                    if p.attrs.noalias {
                        s.push_str(" noalias");
                    }
                    if p.attrs.readonly {
                        s.push_str(" readonly");
                    }
                    if p.attrs.writeonly {
                        s.push_str(" writeonly");
                    }
                    let _ = write!(s, " align {}", self.param_align(n));
                }
                format!("{s} {}", self.name_of(p.value))
            })
            .collect()
    }

    /// Translate the whole kernel into a module's text.
    pub(crate) fn module(mut self, triple: &str, datalayout: &str) -> Result<String> {
        let k = self.k;
        let mut params = self.params();
        for p in &k.params {
            let n = self.name_of(p.value);
            self.def(p.value, n);
        }
        match (self.flavor, k.target) {
            (Flavor::Nvptx, Target::Gpu { .. }) => {
                self.block_insts(k.body())?;
            }
            (Flavor::Host, Target::Cpu { .. }) => {
                params.push("i32 %chunk_lo".into());
                params.push("i32 %chunk_hi".into());
                self.host_body()?;
            }
            _ => {
                return Err(LlvmError::Unsupported {
                    kernel: k.name.clone(),
                    inst: "target".into(),
                    reason: match self.flavor {
                        Flavor::Nvptx => "a CPU kernel cannot be compiled to PTX".into(),
                        Flavor::Host => "a GPU kernel cannot be compiled for the host".into(),
                    },
                })
            }
        }
        self.line("ret void");

        let mut out = String::new();
        let _ = writeln!(
            out,
            "; KIR kernel @{} ({})",
            k.name,
            qkc_kernel::printer::target(&k.target)
        );
        let _ = writeln!(out, "target datalayout = \"{datalayout}\"");
        let _ = writeln!(out, "target triple = \"{triple}\"\n");
        if !self.globals.is_empty() {
            let _ = writeln!(out, "{}", self.globals);
        }
        let fattrs = self.attrs(match self.flavor {
            Flavor::Nvptx => "nounwind",
            Flavor::Host => "nounwind uwtable",
        });
        let _ = writeln!(
            out,
            "define void @{}({}) #{fattrs} {{\n.entry:\n{}{}}}\n",
            llvm_global_name(&k.name),
            params.join(", "),
            self.allocas,
            self.body
        );
        for d in self.decls.values() {
            let _ = writeln!(out, "{d}");
        }
        if let (Flavor::Nvptx, Target::Gpu { block, .. }) = (self.flavor, k.target) {
            let f = llvm_global_name(&k.name);
            let mut ann = vec![self.add_md(|_| format!("!{{ptr @{f}, !\"kernel\", i32 1}}"))];
            for (d, n) in ["x", "y", "z"].iter().zip(block) {
                ann.push(self.add_md(|_| format!("!{{ptr @{f}, !\"maxntid{d}\", i32 {n}}}")));
            }
            let list: Vec<String> = ann.iter().map(|n| format!("!{n}")).collect();
            let _ = writeln!(out, "\n!nvvm.annotations = !{{{}}}", list.join(", "));
        }
        let _ = writeln!(out);
        for (n, a) in self.attr_groups.iter().enumerate() {
            let _ = writeln!(out, "attributes #{n} = {{ {a} }}");
        }
        for (n, m) in self.md.iter().enumerate() {
            let _ = writeln!(out, "!{n} = {m}");
        }
        Ok(out)
    }

    /// Translate a region's instructions (not its yields).
    pub(crate) fn block_insts(&mut self, b: Block) -> Result<()> {
        for i in self.k.block(b).insts.clone() {
            self.inst(i)?;
        }
        Ok(())
    }

    pub(crate) fn inst(&mut self, i: Inst) -> Result<()> {
        let d = self.k.inst(i);
        match &d.op {
            Op::For { unroll } => self.for_loop(i, *unroll),
            Op::If => self.if_else(i),
            Op::Axis(_) | Op::Barrier | Op::Shfl(_) | Op::Prmt | Op::Dp4a(_) => self.gpu(i),
            Op::Load(_)
            | Op::Store(_)
            | Op::Offset
            | Op::Alloc(..)
            | Op::AtomicAdd
            | Op::Prefetch => self.mem(i),
            _ => self.op(i),
        }
    }

    /// The first result of an instruction.
    pub(crate) fn result(&self, i: Inst) -> Result<Value> {
        self.k.inst(i).results.first().copied().ok_or_else(|| {
            self.internal(format!(
                "{} has no result",
                qkc_kernel::printer::inst_line(self.k, i)
            ))
        })
    }

    /// Operand `n` of an instruction.
    pub(crate) fn arg(&self, i: Inst, n: usize) -> Result<Value> {
        self.k.inst(i).args.get(n).copied().ok_or_else(|| {
            self.internal(format!(
                "{}: operand {n} missing",
                qkc_kernel::printer::inst_line(self.k, i)
            ))
        })
    }

    /// Splat a scalar operand to a vector type's lanes (returns the operand text).
    pub(crate) fn splat(&mut self, vt: Type, s: &str) -> String {
        let Some(e) = vt.elem() else {
            return s.to_string();
        };
        let (vty, ety, n) = (self.ty(vt), scalar_ty(e), vt.lanes());
        let one = self.t(&format!("insertelement {vty} poison, {ety} {s}, i64 0"));
        self.t(&format!(
            "shufflevector {vty} {one}, {vty} poison, <{n} x i32> zeroinitializer"
        ))
    }
}

/// A global symbol name, quoted when LLVM needs it.
pub(crate) fn llvm_global_name(n: &str) -> String {
    if n.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'$')
        && !n.starts_with(|c: char| c.is_ascii_digit())
    {
        n.to_string()
    } else {
        format!("\"{n}\"")
    }
}
