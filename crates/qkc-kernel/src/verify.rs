//! The KIR verifier: checks structure, SSA scoping, types, target legality and launch shape,
//! and reports every broken invariant with its location (never just the first).
//!
//! A verifier error is a bug in whatever built the kernel (a template, a lowering). Errors name
//! the instruction (`inst7 (`v9 = add v3, v8 : i32`)`), and [`diagnostics`] maps them to
//! `line:col` when the kernel came from text.

use std::fmt;

use qkc_ir::Diag;

use crate::entities::{Block, Inst, Value};
use crate::error::KernelError;
use crate::kernel::{Kernel, Target};
use crate::ops::Op;
use crate::parser::SourceMap;
use crate::printer::inst_line;
use crate::types::{MemSpace, Scalar, Type};

/// Where a verifier error is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loc {
    /// The kernel as a whole (header, launch shape).
    Kernel,
    /// A parameter, by position.
    Param(u32),
    /// An instruction.
    Inst(Inst),
    /// A block (its arguments or its `yield`).
    Block(Block),
}

/// One broken invariant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyError {
    /// Where.
    pub loc: Loc,
    /// The instruction's text, for instruction errors.
    pub context: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.loc {
            Loc::Kernel => write!(f, "kernel: {}", self.message),
            Loc::Param(n) => write!(f, "parameter {n}: {}", self.message),
            Loc::Inst(i) => write!(f, "{i} (`{}`): {}", self.context, self.message),
            Loc::Block(b) => write!(f, "{b}: {}", self.message),
        }
    }
}

/// Largest static shared memory per GPU block without opt-in (bytes).
pub const MAX_STATIC_SHARED: u64 = 48 * 1024;

/// Verify a kernel; `Err` lists every error.
pub fn verify(k: &Kernel) -> Result<(), KernelError> {
    let errors = verify_all(k);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(KernelError::Verify { kernel: k.name.clone(), errors })
    }
}

/// Every verifier error of a kernel (empty when it is valid).
pub fn verify_all(k: &Kernel) -> Vec<VerifyError> {
    let mut v = Verifier {
        k,
        errors: Vec::new(),
        in_scope: vec![false; k.num_values()],
        seen: vec![false; k.num_insts()],
    };
    v.header();
    for p in &k.params {
        v.define(p.value);
    }
    v.block(k.body(), true);
    if !k.block(k.body()).yields.is_empty() {
        v.err(Loc::Block(k.body()), "the kernel body cannot yield values".into());
    }
    v.names();
    v.errors
}

/// Map verifier errors to diagnostics with spans from a parse.
pub fn diagnostics(errors: &[VerifyError], map: &SourceMap) -> Vec<Diag> {
    errors
        .iter()
        .map(|e| {
            let span = match e.loc {
                Loc::Kernel | Loc::Param(_) => Some(map.header),
                Loc::Inst(i) => map.inst(i),
                Loc::Block(b) => map.block(b),
            };
            let d = Diag::error(e.message.clone()).at_opt(span);
            match e.loc {
                Loc::Inst(i) => d.label(format!("in {i}")),
                _ => d,
            }
        })
        .collect()
}

pub(crate) struct Verifier<'k> {
    pub(crate) k: &'k Kernel,
    pub(crate) errors: Vec<VerifyError>,
    in_scope: Vec<bool>,
    seen: Vec<bool>,
}

impl<'k> Verifier<'k> {
    pub(crate) fn err(&mut self, loc: Loc, message: String) {
        let context = match loc {
            Loc::Inst(i) => inst_line(self.k, i),
            _ => String::new(),
        };
        self.errors.push(VerifyError { loc, context, message });
    }

    fn define(&mut self, v: Value) {
        if let Some(s) = self.in_scope.get_mut(v.index()) {
            *s = true;
        }
    }
    fn undefine(&mut self, v: Value) {
        if let Some(s) = self.in_scope.get_mut(v.index()) {
            *s = false;
        }
    }

    fn header(&mut self) {
        let k = self.k;
        match k.target {
            Target::Gpu { grid, block } => {
                let threads = k.target.threads_per_block();
                if grid.contains(&0) || block.contains(&0) {
                    self.err(Loc::Kernel, "launch dimensions must be at least 1".into());
                }
                if threads > 1024 || threads & 31 != 0 {
                    self.err(
                        Loc::Kernel,
                        format!("a GPU block has {threads} threads; need a multiple of 32, at most 1024"),
                    );
                }
                if k.shared_bytes() > MAX_STATIC_SHARED {
                    self.err(
                        Loc::Kernel,
                        format!("{} bytes of shared memory exceed {MAX_STATIC_SHARED}", k.shared_bytes()),
                    );
                }
            }
            Target::Cpu { chunks, simd_bits } => {
                if chunks == 0 {
                    self.err(Loc::Kernel, "a CPU kernel needs at least one chunk".into());
                }
                if !(64..=512).contains(&simd_bits) || !simd_bits.is_power_of_two() {
                    self.err(Loc::Kernel, format!("simd({simd_bits}): must be 64, 128, 256 or 512"));
                }
            }
        }
        for (n, p) in k.params.iter().enumerate() {
            let ty = k.ty(p.value);
            let a = p.attrs;
            let loc = Loc::Param(n as u32);
            match ty {
                Type::Ptr(MemSpace::Global, _) => {}
                Type::Ptr(m, _) => self.err(loc, format!("parameters point to global memory, not {m}")),
                _ if a.noalias || a.readonly || a.writeonly || a.len.is_some() => {
                    self.err(loc, "noalias/readonly/writeonly/len apply to pointer parameters only".into())
                }
                Type::Vector(..) => {
                    self.err(loc, "vector parameters are not supported; pass a pointer".into())
                }
                _ => {}
            }
            if a.readonly && a.writeonly {
                self.err(loc, "a parameter cannot be both readonly and writeonly".into());
            }
        }
    }

    /// Verify a block's instructions in order, defining results as we go; undefine on exit.
    fn block(&mut self, b: Block, top: bool) {
        let k = self.k;
        let Some(bd) = k.blocks.get(b.index()) else {
            self.err(Loc::Kernel, format!("{b} does not exist"));
            return;
        };
        for &a in &bd.args {
            self.define(a);
        }
        let mut defined: Vec<Value> = bd.args.clone();
        for &i in &bd.insts {
            if i.index() >= k.num_insts() || std::mem::replace(&mut self.seen[i.index()], true) {
                self.err(Loc::Block(b), format!("{i} is missing or appears twice"));
                continue;
            }
            self.inst(i, top);
            let d = k.inst(i);
            for &r in &d.results {
                self.define(r);
                defined.push(r);
            }
        }
        for &y in &bd.yields {
            if !self.in_scope.get(y.index()).copied().unwrap_or(false) {
                self.err(
                    Loc::Block(b),
                    format!("yield of {} which is not defined in scope", k.value_spelling(y)),
                );
            }
        }
        if !top {
            for v in defined {
                self.undefine(v);
            }
        }
    }

    fn inst(&mut self, i: Inst, top: bool) {
        let k = self.k;
        let d = k.inst(i);
        for &a in &d.args {
            if a.index() >= k.num_values() {
                self.err(Loc::Inst(i), format!("operand {a} does not exist"));
                return;
            } else if !self.in_scope[a.index()] {
                self.err(
                    Loc::Inst(i),
                    format!("operand {} is used outside the region that defines it", k.value_spelling(a)),
                );
            }
        }
        if (d.op.gpu_only() && !k.target.is_gpu()) || (d.op.cpu_only() && k.target.is_gpu()) {
            let t = if k.target.is_gpu() { "gpu" } else { "cpu" };
            self.err(Loc::Inst(i), format!("`{}` is not available on the {t} target", d.op.mnemonic()));
        }
        if matches!(d.op, Op::Alloc(..)) && !top {
            self.err(Loc::Inst(i), "allocations must be at the kernel's top level".into());
        }
        self.simd_width(i);
        match d.op {
            Op::For { .. } => self.for_op(i),
            Op::If => self.if_op(i),
            _ => {
                if !d.blocks.is_empty() {
                    self.err(Loc::Inst(i), "only `for` and `if` own regions".into());
                }
                self.op_types(i);
            }
        }
    }

    /// CPU code generators handle vectors up to the target's SIMD width.
    fn simd_width(&mut self, i: Inst) {
        let k = self.k;
        let Target::Cpu { simd_bits, .. } = k.target else { return };
        let d = k.inst(i);
        let wide =
            d.args.iter().chain(&d.results).map(|&v| k.ty(v)).find(|t| t.is_vector() && t.bits() > simd_bits);
        if let Some(t) = wide {
            self.err(Loc::Inst(i), format!("{t} is wider than the target's simd({simd_bits})"));
        }
    }

    fn for_op(&mut self, i: Inst) {
        let k = self.k;
        let d = k.inst(i);
        let loc = Loc::Inst(i);
        if d.args.len() < 3 || d.blocks.len() != 1 {
            self.err(loc, "`for` needs lo, hi, step and one body".into());
            return;
        }
        let iv_ty = k.ty(d.args[0]);
        if !matches!(iv_ty, Type::Scalar(Scalar::I32 | Scalar::I64)) {
            self.err(loc, format!("loop bounds must be i32 or i64, not {iv_ty}"));
        }
        if k.ty(d.args[1]) != iv_ty || k.ty(d.args[2]) != iv_ty {
            self.err(loc, "lo, hi and step must have one type".into());
        }
        if let Op::For { unroll } = d.op {
            if unroll == 0 {
                self.err(loc, "unroll factor must be at least 1".into());
            }
        }
        let inits: Vec<Type> = d.args[3..].iter().map(|&v| k.ty(v)).collect();
        let res: Vec<Type> = d.results.iter().map(|&v| k.ty(v)).collect();
        if inits != res {
            self.err(loc, format!("carried inits {} do not match results {}", tys(&inits), tys(&res)));
        }
        let body = d.blocks[0];
        let bd = k.block(body);
        let args: Vec<Type> = bd.args.iter().map(|&v| k.ty(v)).collect();
        if args.first() != Some(&iv_ty) || args[1..] != res[..] {
            self.err(
                loc,
                format!("body arguments {} must be the induction variable then {}", tys(&args), tys(&res)),
            );
        }
        self.block(body, false);
        self.yields(i, body, &res);
    }

    fn if_op(&mut self, i: Inst) {
        let k = self.k;
        let d = k.inst(i);
        if d.args.len() != 1 || k.ty(d.args[0]) != Type::I1 || d.blocks.len() != 2 {
            self.err(Loc::Inst(i), "`if` needs one i1 condition, a then-region and an else-region".into());
            if d.blocks.len() != 2 {
                return;
            }
        }
        let res: Vec<Type> = d.results.iter().map(|&v| k.ty(v)).collect();
        for &b in &d.blocks {
            if !k.block(b).args.is_empty() {
                self.err(Loc::Block(b), "`if` regions take no arguments".into());
            }
            self.block(b, false);
            self.yields(i, b, &res);
        }
    }

    fn yields(&mut self, i: Inst, b: Block, res: &[Type]) {
        let k = self.k;
        let ys: Vec<Type> = k.block(b).yields.iter().map(|&v| k.ty(v)).collect();
        if ys != res {
            let m =
                format!("region yields {} but {} produces {}", tys(&ys), k.inst(i).op.mnemonic(), tys(res));
            self.err(Loc::Block(b), m);
        }
    }

    fn names(&mut self) {
        let k = self.k;
        let mut seen = std::collections::HashMap::new();
        for (n, d) in k.values.iter().enumerate() {
            let Some(name) = &d.name else { continue };
            let ok = name.bytes().next().is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_')
                && name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'.');
            if !ok {
                self.err(Loc::Kernel, format!("value name `%{name}` is not an identifier"));
            }
            if let Some(prev) = seen.insert(name.clone(), n) {
                self.err(Loc::Kernel, format!("value name `%{name}` is used by v{prev} and v{n}"));
            }
        }
    }
}

pub(crate) fn tys(t: &[Type]) -> String {
    let s: Vec<String> = t.iter().map(Type::to_string).collect();
    format!("({})", s.join(", "))
}
