//! KIR → CLIF: one function per kernel, built with `cranelift_frontend`.
//!
//! The mapping follows KIR.md's translation table. KIR values map one-to-one to CLIF values:
//! KIR is structured, so every definition dominates its uses, and loop-carried values and
//! region results become block parameters (no `Variable`s, no SSA reconstruction).
//!
//! The CPU calling convention: `extern "C" fn NAME(params..., chunk_lo: u32, chunk_hi: u32)`
//! runs the chunks `chunk_lo..chunk_hi` in order — the parallel axis becomes an outer loop, so a
//! runtime thread calls once per range instead of once per chunk. The top-level instructions
//! before the first `axis cpu.chunk` cannot depend on the chunk; when they write no global
//! memory (so every chunk would compute the same thing), they run once per call, before the
//! loop: the GEMV templates' x prologue is paid once per range, not once per chunk.

mod control;
mod math;
mod mem;
mod ops;

use cranelift_codegen::ir::{self, types, AbiParam, InstBuilder, Signature};
use cranelift_codegen::isa::TargetFrontendConfig;
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use qkc_kernel::{Axis, Block, Inst, Kernel, MemSpace, Op, Scalar, Type, Value};

use crate::error::{CodegenError, Result};

/// The CLIF type of a KIR type. `i1` is `i8`; `f16` values live as their `i16` bits (they are
/// only loaded, stored and widened: x86-64 Cranelift has no f16 arithmetic); vectors must be
/// 128 bits; lane masks (`<N x i1>`) have no type of their own (they take the compared
/// width) and so cannot be block parameters.
pub(crate) fn clif_type(t: Type) -> std::result::Result<ir::Type, String> {
    match t {
        Type::Ptr(..) => Ok(types::I64),
        Type::Scalar(s) => scalar(s),
        Type::Vector(s, n) => {
            if t.bits() != 128 {
                return Err(format!("{t}: only 128-bit vectors are translated"));
            }
            if matches!(s, Scalar::I1 | Scalar::F16 | Scalar::Bf16) {
                return Err(format!("{t}: vectors of {s} are not translated here"));
            }
            scalar(s)?
                .by(u32::from(n))
                .ok_or_else(|| format!("{t}: no CLIF vector type"))
        }
    }
}

fn scalar(s: Scalar) -> std::result::Result<ir::Type, String> {
    Ok(match s {
        Scalar::I1 | Scalar::I8 => types::I8,
        Scalar::I16 | Scalar::F16 => types::I16,
        Scalar::I32 => types::I32,
        Scalar::I64 => types::I64,
        Scalar::F32 => types::F32,
        Scalar::F64 => types::F64,
        Scalar::Bf16 => return Err("bf16 is not translated yet".into()),
    })
}

/// The CLIF signature of a kernel: its parameters, then `chunk_lo: i32, chunk_hi: i32`.
pub fn signature(k: &Kernel, call_conv: cranelift_codegen::isa::CallConv) -> Result<Signature> {
    let mut sig = Signature::new(call_conv);
    for p in &k.params {
        let t = k.ty(p.value);
        let ct = clif_type(t).map_err(|reason| {
            unsupported(
                k,
                &format!("parameter {}", k.value_spelling(p.value)),
                reason,
            )
        })?;
        sig.params.push(AbiParam::new(ct));
    }
    sig.params.push(AbiParam::new(types::I32));
    sig.params.push(AbiParam::new(types::I32));
    Ok(sig)
}

pub(crate) fn unsupported(k: &Kernel, inst: &str, reason: impl Into<String>) -> CodegenError {
    CodegenError::Unsupported {
        kernel: k.name.clone(),
        inst: inst.to_string(),
        reason: reason.into(),
    }
}

/// Translate `k` into `func` (whose signature must be [`signature`]'s).
pub fn lower_kernel(k: &Kernel, func: &mut ir::Function, fc: TargetFrontendConfig) -> Result<()> {
    if k.target.is_gpu() {
        return Err(unsupported(
            k,
            "target",
            "GPU kernels go to the LLVM/PTX backend",
        ));
    }
    let mut fctx = FunctionBuilderContext::new();
    let b = FunctionBuilder::new(func, &mut fctx);
    let mut l = Lower {
        k,
        b,
        vals: vec![None; k.num_values()],
        chunk: None,
    };
    // On error the half-built function is dropped unfinalized (finalize asserts on unfilled
    // blocks): the caller discards it.
    l.lower_body()?;
    l.b.seal_all_blocks();
    l.b.finalize(fc);
    Ok(())
}

/// The state of one kernel's translation.
pub(crate) struct Lower<'a, 'f> {
    pub(crate) k: &'a Kernel,
    pub(crate) b: FunctionBuilder<'f>,
    vals: Vec<Option<ir::Value>>,
    /// The chunk loop's induction variable (`axis cpu.chunk`), inside the loop.
    chunk: Option<ir::Value>,
}

impl Lower<'_, '_> {
    pub(crate) fn val(&self, v: Value) -> Result<ir::Value> {
        self.vals.get(v.index()).copied().flatten().ok_or_else(|| {
            CodegenError::Internal(format!(
                "{} used before it was lowered",
                self.k.value_spelling(v)
            ))
        })
    }

    pub(crate) fn def(&mut self, v: Value, c: ir::Value) {
        if let Some(slot) = self.vals.get_mut(v.index()) {
            *slot = Some(c);
        }
    }

    pub(crate) fn ty(&self, v: Value) -> Type {
        self.k.ty(v)
    }

    pub(crate) fn clif_ty(&self, i: Inst, t: Type) -> Result<ir::Type> {
        clif_type(t).map_err(|r| self.unsup(i, r))
    }

    pub(crate) fn unsup(&self, i: Inst, reason: impl Into<String>) -> CodegenError {
        unsupported(self.k, &qkc_kernel::printer::inst_line(self.k, i), reason)
    }

    /// The entry block, the hoisted prologue, the chunk loop and the return.
    fn lower_body(&mut self) -> Result<()> {
        let entry = self.b.create_block();
        self.b.append_block_params_for_function_params(entry);
        self.b.switch_to_block(entry);
        let params: Vec<ir::Value> = self.b.block_params(entry).to_vec();
        let n = self.k.params.len();
        for (p, &c) in self.k.params.iter().zip(&params) {
            self.def(p.value, c);
        }
        let (lo, hi) = match (params.get(n), params.get(n + 1)) {
            (Some(&lo), Some(&hi)) => (lo, hi),
            _ => {
                return Err(CodegenError::Internal(
                    "signature lacks chunk_lo, chunk_hi".into(),
                ))
            }
        };
        let body = self.k.body();
        let insts = self.k.block(body).insts.clone();
        let split = insts
            .iter()
            .position(|&i| matches!(self.k.inst(i).op, Op::Axis(Axis::CpuChunk)))
            .unwrap_or(insts.len());
        let (pre, rest) = if self.writes_global(&insts[..split]) {
            (&[][..], &insts[..])
        } else {
            insts.split_at(split)
        };
        for &i in pre {
            self.inst(i)?;
        }
        // Rotated loop: for chunk in lo..hi { rest }.
        let (head, exit) = (self.b.create_block(), self.b.create_block());
        let c = self.b.append_block_param(head, types::I32);
        let any = self
            .b
            .ins()
            .icmp(ir::condcodes::IntCC::SignedLessThan, lo, hi);
        self.b
            .ins()
            .brif(any, head, &[ir::BlockArg::Value(lo)], exit, &[]);
        self.b.switch_to_block(head);
        self.chunk = Some(c);
        for &i in rest {
            self.inst(i)?;
        }
        let next = self.b.ins().iadd_imm_u(c, 1);
        let more = self
            .b
            .ins()
            .icmp(ir::condcodes::IntCC::SignedLessThan, next, hi);
        self.b
            .ins()
            .brif(more, head, &[ir::BlockArg::Value(next)], exit, &[]);
        self.b.switch_to_block(exit);
        self.b.ins().return_(&[]);
        Ok(())
    }

    /// Does any of these instructions (or their regions) store to or update global memory?
    fn writes_global(&self, insts: &[Inst]) -> bool {
        insts.iter().any(|&i| {
            let d = self.k.inst(i);
            let ptr = match d.op {
                Op::Store(_) => d.args.get(1),
                Op::AtomicAdd => d.args.first(),
                _ => None,
            };
            let global =
                ptr.is_some_and(|&p| matches!(self.k.ty(p), Type::Ptr(MemSpace::Global, _)));
            global
                || d.blocks
                    .iter()
                    .any(|&b| self.writes_global(&self.k.block(b).insts))
        })
    }

    /// Lower the instructions of a region body (not its yields).
    pub(crate) fn block_insts(&mut self, blk: Block) -> Result<()> {
        for i in self.k.block(blk).insts.clone() {
            self.inst(i)?;
        }
        Ok(())
    }

    /// One instruction.
    fn inst(&mut self, i: Inst) -> Result<()> {
        let d = self.k.inst(i);
        match &d.op {
            Op::For { .. } => self.for_loop(i),
            Op::If => self.if_else(i),
            Op::Axis(Axis::CpuChunk) => {
                let c = self
                    .chunk
                    .ok_or_else(|| self.unsup(i, "`axis cpu.chunk` inside the hoisted prologue"))?;
                let r = first_result(self.k, i)?;
                self.def(r, c);
                Ok(())
            }
            Op::Axis(a) => Err(self.unsup(i, format!("GPU axis {} on the CPU", a.name()))),
            Op::Barrier | Op::Prefetch => Ok(()), // one thread per chunk; CLIF has no prefetch
            Op::Load(_) | Op::Store(_) | Op::Offset | Op::Alloc(..) | Op::AtomicAdd => self.mem(i),
            _ => self.op(i),
        }
    }
}

pub(crate) fn first_result(k: &Kernel, i: Inst) -> Result<Value> {
    k.inst(i).results.first().copied().ok_or_else(|| {
        CodegenError::Internal(format!(
            "{} has no result",
            qkc_kernel::printer::inst_line(k, i)
        ))
    })
}
