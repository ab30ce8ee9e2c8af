//! GPU ops: `axis` (`ctaid`/`tid` special registers; `warp` = linear thread index / 32 and
//! `lane` = linear thread index % 32, as the interpreter defines them), `barrier`
//! (`llvm.nvvm.barrier0`), warp shuffles (`llvm.nvvm.shfl.sync.*`, full mask; values other
//! than `i32`/`f32` travel as 32-bit words), `prmt` (inline `prmt.b32`) and `dp4a`
//! (inline `dp4a`: LLVM 19 has no intrinsic for it). On the host only `axis cpu.chunk` and `barrier` (a no-op) exist.

use qkc_kernel::ops::Dp4a;
use qkc_kernel::{Axis, Inst, Op, Scalar, ShflMode, Target, Type};

use super::{Emitter, Flavor};
use crate::error::Result;

impl Emitter<'_> {
    pub(super) fn gpu(&mut self, i: Inst) -> Result<()> {
        let d = self.k.inst(i).clone();
        if self.flavor == Flavor::Host {
            return match d.op {
                Op::Barrier => Ok(()),
                Op::Axis(Axis::CpuChunk) => {
                    let c = self
                        .chunk
                        .clone()
                        .ok_or_else(|| self.unsup(i, "`axis cpu.chunk` in the hoisted prologue"))?;
                    let r = self.result(i)?;
                    self.def(r, c);
                    Ok(())
                }
                _ => Err(self.unsup(i, "a GPU op on the host")),
            };
        }
        match d.op {
            Op::Axis(a) => {
                let r = self.result(i)?;
                let v = self.axis(i, a)?;
                self.def(r, v);
            }
            Op::Barrier => {
                let rhs = self.call_rhs("void", "llvm.nvvm.barrier0", &[]);
                self.line(&rhs);
            }
            Op::Shfl(m) => self.shfl(i, m)?,
            Op::Prmt => {
                let r = self.result(i)?;
                let a = (0..3)
                    .map(|n| self.val(self.arg(i, n)?))
                    .collect::<Result<Vec<_>>>()?;
                let pure = self.attrs("nounwind willreturn memory(none)");
                self.def_rhs(
                    r,
                    &format!(
                        "call i32 asm \"prmt.b32 $0, $1, $2, $3;\", \"=r,r,r,r\"(i32 {}, i32 {}, i32 {}) #{pure}",
                        a[0], a[1], a[2]
                    ),
                );
            }
            Op::Dp4a(kind) => {
                // LLVM 19 has no idp4a intrinsic: inline `dp4a.{u,s}32.{u,s}32`.
                let r = self.result(i)?;
                let a = (0..3)
                    .map(|n| self.val(self.arg(i, n)?))
                    .collect::<Result<Vec<_>>>()?;
                let s = match kind {
                    Dp4a::S8S8 => "s32.s32",
                    Dp4a::U8S8 => "u32.s32",
                    Dp4a::S8U8 => "s32.u32",
                    Dp4a::U8U8 => "u32.u32",
                };
                let pure = self.attrs("nounwind willreturn memory(none)");
                self.def_rhs(
                    r,
                    &format!(
                        "call i32 asm \"dp4a.{s} $0, $1, $2, $3;\", \"=r,r,r,r\"(i32 {}, i32 {}, i32 {}) #{pure}",
                        a[0], a[1], a[2]
                    ),
                );
            }
            _ => return Err(self.internal("gpu() on a non-GPU op")),
        }
        Ok(())
    }

    fn sreg(&mut self, name: &str) -> String {
        let rhs = self.call_rhs("i32", &format!("llvm.nvvm.read.ptx.sreg.{name}"), &[]);
        self.t(&rhs)
    }

    /// The linear thread index in the block (`tid.x` for 1-D blocks).
    fn linear_tid(&mut self, block: [u32; 3]) -> String {
        let x = self.sreg("tid.x");
        if block[1] == 1 && block[2] == 1 {
            return x;
        }
        let y = self.sreg("tid.y");
        let z = self.sreg("tid.z");
        let zy = self.t(&format!("mul nuw nsw i32 {z}, {}", block[1]));
        let yy = self.t(&format!("add nuw nsw i32 {zy}, {y}"));
        let yx = self.t(&format!("mul nuw nsw i32 {yy}, {}", block[0]));
        self.t(&format!("add nuw nsw i32 {yx}, {x}"))
    }

    fn axis(&mut self, i: Inst, a: Axis) -> Result<String> {
        let Target::Gpu { block, .. } = self.k.target else {
            return Err(self.unsup(i, "a GPU axis outside a GPU kernel"));
        };
        Ok(match a {
            Axis::GridX => self.sreg("ctaid.x"),
            Axis::GridY => self.sreg("ctaid.y"),
            Axis::GridZ => self.sreg("ctaid.z"),
            Axis::BlockX => self.sreg("tid.x"),
            Axis::BlockY => self.sreg("tid.y"),
            Axis::BlockZ => self.sreg("tid.z"),
            Axis::Warp => {
                let t = self.linear_tid(block);
                self.t(&format!("lshr i32 {t}, 5"))
            }
            Axis::Lane if block[1] == 1 && block[2] == 1 => {
                let t = self.linear_tid(block);
                self.t(&format!("and i32 {t}, 31"))
            }
            // Hardware warps are formed from the linear thread index, so %laneid is its low 5 bits.
            Axis::Lane => self.sreg("laneid"),
            Axis::CpuChunk => return Err(self.unsup(i, "`axis cpu.chunk` in a GPU kernel")),
        })
    }

    /// `shfl.mode v, x`: `shfl.sync.{bfly,down,up,idx}` with the full mask; clamp 31 (0 for
    /// `up`), so an out-of-range source lane gives the thread's own value, as in KIR.
    fn shfl(&mut self, i: Inst, m: ShflMode) -> Result<()> {
        let r = self.result(i)?;
        let (v, x) = (self.arg(i, 0)?, self.arg(i, 1)?);
        let vt = self.k.ty(v);
        let (mode, clamp) = match m {
            ShflMode::Xor => ("bfly", 31),
            ShflMode::Down => ("down", 31),
            ShflMode::Up => ("up", 0),
            ShflMode::Idx => ("idx", 31),
        };
        let mut xo = self.val(x)?;
        match self.k.ty(x) {
            Type::Scalar(Scalar::I32) => {}
            t if t.is_int() => xo = self.t(&format!("trunc {} {xo} to i32", self.ty(t))),
            _ => return Err(self.unsup(i, "a shuffle operand that is not an integer")),
        }
        let vo = self.val(v)?;
        let one = |s: &mut Self, ty: &str, val: &str| {
            let suffix = if ty == "float" { "f32" } else { "i32" };
            let rhs = s.call_rhs(
                ty,
                &format!("llvm.nvvm.shfl.sync.{mode}.{suffix}"),
                &[
                    ("i32".into(), "-1".into()),
                    (ty.into(), val.into()),
                    ("i32".into(), xo.clone()),
                    ("i32".into(), clamp.to_string()),
                ],
            );
            rhs
        };
        let bits = vt.bits();
        if vt == Type::F32 || vt == Type::I32 {
            let ty = self.ty(vt);
            let rhs = one(self, &ty, &vo);
            self.def_rhs(r, &rhs);
            return Ok(());
        }
        let ty = self.ty(vt);
        if bits <= 32 {
            let narrow = self.t(&format!("bitcast {ty} {vo} to i{bits}"));
            let w = if bits < 32 {
                self.t(&format!("zext i{bits} {narrow} to i32"))
            } else {
                narrow
            };
            let rhs = one(self, "i32", &w);
            let s = self.t(&rhs);
            let back = if bits < 32 {
                self.t(&format!("trunc i32 {s} to i{bits}"))
            } else {
                s
            };
            self.def_rhs(r, &format!("bitcast i{bits} {back} to {ty}"));
            return Ok(());
        }
        let n = bits / 32;
        let wt = format!("<{n} x i32>");
        let words = self.t(&format!("bitcast {ty} {vo} to {wt}"));
        let mut acc = "poison".to_string();
        for l in 0..n {
            let e = self.t(&format!("extractelement {wt} {words}, i32 {l}"));
            let rhs = one(self, "i32", &e);
            let s = self.t(&rhs);
            acc = self.t(&format!("insertelement {wt} {acc}, i32 {s}, i32 {l}"));
        }
        self.def_rhs(r, &format!("bitcast {wt} {acc} to {ty}"));
        Ok(())
    }
}
