//! Memory: loads and stores with Cranelift's `notrap` (KIR makes out-of-bounds access undefined)
//! and `aligned` (only when KIR's `align` covers the whole access: x86-64 folds an `aligned`
//! vector load into SSE instructions that fault on misalignment); `readonly` on loads through
//! `noalias readonly` parameters; pointer arithmetic in elements; `alloc.*` as 16-byte aligned
//! stack slots; integer `atomic.add` as `atomic_rmw add`.
//!
//! Cache hints have no CLIF spelling: `evict_first` (a non-temporal access on the CPU) is a
//! plain access here, and `prefetch` is dropped.

use cranelift_codegen::ir::{
    self, types, AtomicRmwOp, InstBuilder, MemFlagsData, StackSlotData, StackSlotKind,
};
use qkc_kernel::{Inst, MemFlags, Op, Type, Value, ValueDef};

use super::{first_result, Lower};
use crate::error::{CodegenError, Result};

impl Lower<'_, '_> {
    pub(super) fn mem(&mut self, i: Inst) -> Result<()> {
        let d = self.k.inst(i).clone();
        let arg = |n: usize| {
            d.args
                .get(n)
                .copied()
                .ok_or_else(|| CodegenError::Internal(format!("operand {n} missing")))
        };
        match &d.op {
            Op::Load(f) => {
                let r = first_result(self.k, i)?;
                let t = self.ty(r);
                let ct = self.clif_ty(i, t)?;
                let addr = self.address(i, arg(0)?, arg(1)?)?;
                let mut flags = self.flags(f, t);
                if self.readonly_root(arg(0)?) {
                    flags = flags.with_readonly();
                }
                let v = self.b.ins().load(ct, flags, addr, 0);
                self.def(r, v);
            }
            Op::Store(f) => {
                let v = self.val(arg(0)?)?;
                let addr = self.address(i, arg(1)?, arg(2)?)?;
                let flags = self.flags(f, self.ty(arg(0)?));
                self.b.ins().store(flags, v, addr, 0);
            }
            Op::Offset => {
                let r = first_result(self.k, i)?;
                let p = self.address(i, arg(0)?, arg(1)?)?;
                self.def(r, p);
            }
            Op::Alloc(_, n) => {
                let r = first_result(self.k, i)?;
                let Type::Ptr(_, e) = self.ty(r) else {
                    return Err(self.unsup(i, "alloc of a non-pointer"));
                };
                let bytes = n
                    .checked_mul(e.bytes())
                    .ok_or_else(|| self.unsup(i, "allocation too large"))?;
                let slot = self.b.create_sized_stack_slot(StackSlotData::new(
                    StackSlotKind::ExplicitSlot,
                    bytes,
                    4,
                ));
                let p = self.b.ins().stack_addr(types::I64, slot, 0);
                self.def(r, p);
            }
            Op::AtomicAdd => {
                let r = first_result(self.k, i)?;
                let t = self.ty(r);
                if !matches!(t, Type::Scalar(s) if s.is_int()) {
                    return Err(
                        self.unsup(i, "atomic.add on floats or vectors (no CLIF atomic fadd)")
                    );
                }
                let ct = self.clif_ty(i, t)?;
                let addr = self.address(i, arg(0)?, arg(1)?)?;
                let v = self.val(arg(2)?)?;
                let old =
                    self.b
                        .ins()
                        .atomic_rmw(ct, MemFlagsData::trusted(), AtomicRmwOp::Add, addr, v);
                self.def(r, old);
            }
            _ => return Err(self.unsup(i, "not a memory op")),
        }
        Ok(())
    }

    /// `p + sext(i) · sizeof(elem)`.
    fn address(&mut self, i: Inst, p: Value, idx: Value) -> Result<ir::Value> {
        let Type::Ptr(_, e) = self.ty(p) else {
            return Err(self.unsup(i, "address of a non-pointer"));
        };
        let base = self.val(p)?;
        let mut x = self.val(idx)?;
        if self.b.func.dfg.value_type(x) != types::I64 {
            x = self.b.ins().sextend(types::I64, x);
        }
        let off = match e.bytes() {
            1 => x,
            n => self.b.ins().ishl_imm_u(x, i64::from(n.trailing_zeros())),
        };
        Ok(self.b.ins().iadd(base, off))
    }

    fn flags(&self, f: &MemFlags, t: Type) -> MemFlagsData {
        let fl = MemFlagsData::new().with_notrap();
        if f.align >= t.bytes() {
            fl.with_aligned()
        } else {
            fl
        }
    }

    /// Does `p` point into a `noalias readonly` parameter (so the memory never changes)?
    fn readonly_root(&self, mut p: Value) -> bool {
        loop {
            match self.k.value(p).def {
                ValueDef::Param(n) => {
                    return self
                        .k
                        .params
                        .get(n as usize)
                        .is_some_and(|q| q.attrs.readonly && q.attrs.noalias)
                }
                ValueDef::Result(i, _) if matches!(self.k.inst(i).op, Op::Offset) => {
                    match self.k.inst(i).args.first() {
                        Some(&q) => p = q,
                        None => return false,
                    }
                }
                _ => return false,
            }
        }
    }
}
