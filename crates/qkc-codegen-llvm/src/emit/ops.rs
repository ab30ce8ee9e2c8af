//! Lane-wise arithmetic, bit ops, comparisons, conversions and vector ops.
//!
//! No fast-math flags anywhere: KIR's float ops are IEEE (`div` is `div.rn`, `fma` is the only
//! fused op). `min`/`max` are `llvm.minimum`/`llvm.maximum` (NaN-propagating, as in KIR);
//! `fptosi`/`fptoui` are the saturating `llvm.fpto*i.sat`; `rsqrt`/`exp2` are PTX's `.approx`
//! instructions on the GPU (≤ 2 ulp, as KIR allows) and `1/sqrt`, `llvm.exp2` on the host.
//! `reduce.*` is the fixed halving tree (upper half into lower half).

use qkc_kernel::ops::Madd;
use qkc_kernel::{BinaryOp, CastOp, Inst, Op, ReduceOp, Scalar, Type, UnaryOp, Value};

use super::{const_lit, mangle, scalar_ty, Emitter, Flavor};
use crate::error::Result;

/// How an op's result comes out: a right-hand side to write under the result's name, or an
/// operand already computed into a temporary.
enum Out {
    Rhs(String),
    Val(String),
}

impl Emitter<'_> {
    pub(super) fn op(&mut self, i: Inst) -> Result<()> {
        let d = self.k.inst(i).clone();
        let r = self.result(i)?;
        let rt = self.k.ty(r);
        let rty = self.ty(rt);
        match &d.op {
            Op::Const(bits) => {
                let lit = const_lit(rt, bits).ok_or_else(|| self.unsup(i, "a pointer constant"))?;
                self.def(r, lit);
            }
            Op::Unary(u) => match self.unary(i, *u, self.arg(i, 0)?)? {
                Out::Rhs(rhs) => self.def_rhs(r, &rhs),
                Out::Val(v) => self.def(r, v),
            },
            Op::Binary(b) => {
                let (a, bv) = (self.arg(i, 0)?, self.arg(i, 1)?);
                let (x, mut y) = (self.val(a)?, self.val(bv)?);
                if self.k.ty(bv) != rt {
                    // a vector shifted by a scalar amount: splat it
                    y = self.splat(rt, &y);
                }
                let rhs = self.binary_rhs(*b, rt, &x, &y);
                self.def_rhs(r, &rhs);
            }
            Op::Fma => {
                let args = (0..3)
                    .map(|n| Ok((rty.clone(), self.val(self.arg(i, n)?)?)))
                    .collect::<Result<Vec<_>>>()?;
                let rhs = self.call_rhs(&rty, &format!("llvm.fma.{}", mangle(rt)), &args);
                self.def_rhs(r, &rhs);
            }
            Op::Icmp(cc) => {
                let (a, b) = (self.tval(self.arg(i, 0)?)?, self.val(self.arg(i, 1)?)?);
                self.def_rhs(r, &format!("icmp {} {a}, {b}", cc.name()));
            }
            Op::Fcmp(cc) => {
                let (a, b) = (self.tval(self.arg(i, 0)?)?, self.val(self.arg(i, 1)?)?);
                self.def_rhs(r, &format!("fcmp {} {a}, {b}", cc.name()));
            }
            Op::Select => {
                let c = self.tval(self.arg(i, 0)?)?;
                let (a, b) = (self.tval(self.arg(i, 1)?)?, self.tval(self.arg(i, 2)?)?);
                self.def_rhs(r, &format!("select {c}, {a}, {b}"));
            }
            Op::Cast(c) => {
                let rhs = self.cast_rhs(i, *c, self.arg(i, 0)?, rt)?;
                self.def_rhs(r, &rhs);
            }
            Op::Splat => {
                let s = self.val(self.arg(i, 0)?)?;
                let e = rt.elem().map_or("i32", scalar_ty);
                let one = self.t(&format!("insertelement {rty} poison, {e} {s}, i64 0"));
                let n = rt.lanes();
                self.def_rhs(
                    r,
                    &format!(
                        "shufflevector {rty} {one}, {rty} poison, <{n} x i32> zeroinitializer"
                    ),
                );
            }
            Op::Extract(l) => {
                let v = self.tval(self.arg(i, 0)?)?;
                self.def_rhs(r, &format!("extractelement {v}, i32 {l}"));
            }
            Op::Insert(l) => {
                let (v, s) = (self.tval(self.arg(i, 0)?)?, self.tval(self.arg(i, 1)?)?);
                self.def_rhs(r, &format!("insertelement {v}, {s}, i32 {l}"));
            }
            Op::Shuffle(mask) => {
                let (a, b) = (self.tval(self.arg(i, 0)?)?, self.tval(self.arg(i, 1)?)?);
                let m: Vec<String> = mask.iter().map(|x| format!("i32 {x}")).collect();
                self.def_rhs(
                    r,
                    &format!(
                        "shufflevector {a}, {b}, <{} x i32> <{}>",
                        mask.len(),
                        m.join(", ")
                    ),
                );
            }
            Op::Reduce(op) => {
                let v = self.reduce(*op, self.arg(i, 0)?)?;
                self.def(r, v);
            }
            Op::Madd(m) if self.flavor == Flavor::Host => {
                let (a, b) = (self.val(self.arg(i, 0)?)?, self.val(self.arg(i, 1)?)?);
                let at = self.k.ty(self.arg(i, 0)?);
                let rhs = self.madd_rhs(i, *m, at, rt, &a, &b)?;
                self.def_rhs(r, &rhs);
            }
            Op::Swizzle if self.flavor == Flavor::Host => {
                let (a, b) = (self.val(self.arg(i, 0)?)?, self.val(self.arg(i, 1)?)?);
                let rhs = self.call_rhs(
                    "<16 x i8>",
                    "llvm.x86.ssse3.pshuf.b.128",
                    &[("<16 x i8>".into(), a), ("<16 x i8>".into(), b)],
                );
                self.def_rhs(r, &rhs);
            }
            other => {
                return Err(self.unsup(
                    i,
                    format!("`{}` has no translation for this target", other.mnemonic()),
                ))
            }
        }
        Ok(())
    }

    fn unary(&mut self, i: Inst, u: UnaryOp, a: Value) -> Result<Out> {
        let t = self.k.ty(a);
        let ty = self.ty(t);
        let x = self.val(a)?;
        let m = mangle(t);
        let float = t.is_float();
        let all_ones = if t.elem() == Some(Scalar::I1) {
            "true"
        } else {
            "-1"
        };
        let rhs = match u {
            UnaryOp::Neg if float => format!("fneg {ty} {x}"),
            UnaryOp::Neg => format!("sub {ty} {}, {x}", self.splat_lit(t, "0")),
            UnaryOp::Not => format!("xor {ty} {x}, {}", self.splat_lit(t, all_ones)),
            UnaryOp::Abs if float => {
                self.call_rhs(&ty, &format!("llvm.fabs.{m}"), &[(ty.clone(), x)])
            }
            UnaryOp::Abs => self.call_rhs(
                &ty,
                &format!("llvm.abs.{m}"),
                &[(ty.clone(), x), ("i1".into(), "false".into())],
            ),
            UnaryOp::Sqrt => self.call_rhs(&ty, &format!("llvm.sqrt.{m}"), &[(ty.clone(), x)]),
            UnaryOp::Floor => self.call_rhs(&ty, &format!("llvm.floor.{m}"), &[(ty.clone(), x)]),
            UnaryOp::RoundEven => {
                self.call_rhs(&ty, &format!("llvm.roundeven.{m}"), &[(ty.clone(), x)])
            }
            UnaryOp::Popcnt => self.call_rhs(&ty, &format!("llvm.ctpop.{m}"), &[(ty.clone(), x)]),
            UnaryOp::Rsqrt | UnaryOp::Exp2 => return Ok(Out::Val(self.approx(i, u, t, &x)?)),
        };
        Ok(Out::Rhs(rhs))
    }

    /// `rsqrt` and `exp2`: PTX `rsqrt.approx` / `ex2.approx` on f32 (16-bit floats go through
    /// f32, vectors lane by lane); `rsqrt.approx.f64` on f64. On the host: `1/sqrt`, `llvm.exp2`.
    fn approx(&mut self, i: Inst, u: UnaryOp, t: Type, x: &str) -> Result<String> {
        let ty = self.ty(t);
        if self.flavor == Flavor::Host {
            let m = mangle(t);
            return Ok(match u {
                UnaryOp::Exp2 => {
                    let rhs = self.call_rhs(
                        &ty,
                        &format!("llvm.exp2.{m}"),
                        &[(ty.clone(), x.to_string())],
                    );
                    self.t(&rhs)
                }
                _ => {
                    let rhs = self.call_rhs(
                        &ty,
                        &format!("llvm.sqrt.{m}"),
                        &[(ty.clone(), x.to_string())],
                    );
                    let s = self.t(&rhs);
                    let one = self.splat_lit(t, "1.0");
                    self.t(&format!("fdiv {ty} {one}, {s}"))
                }
            });
        }
        let Some(e) = t.elem() else {
            return Err(self.internal("approx of a pointer"));
        };
        if let Type::Vector(_, n) = t {
            let mut acc = "poison".to_string();
            for l in 0..n {
                let lane = self.t(&format!("extractelement {ty} {x}, i32 {l}"));
                let y = self.approx(i, u, Type::Scalar(e), &lane)?;
                acc = self.t(&format!(
                    "insertelement {ty} {acc}, {} {y}, i32 {l}",
                    scalar_ty(e)
                ));
            }
            return Ok(acc);
        }
        let name = match (u, e) {
            (UnaryOp::Rsqrt, Scalar::F64) => "llvm.nvvm.rsqrt.approx.d",
            (UnaryOp::Exp2, Scalar::F64) => {
                return Err(self.unsup(i, "exp2 on f64 (PTX has no f64 ex2; KIR's 2-ulp bound would need a libdevice-style expansion)"))
            }
            (UnaryOp::Rsqrt, _) => "llvm.nvvm.rsqrt.approx.f",
            _ => "llvm.nvvm.ex2.approx.f",
        };
        match e {
            Scalar::F32 => {
                let rhs = self.call_rhs("float", name, &[("float".into(), x.to_string())]);
                Ok(self.t(&rhs))
            }
            Scalar::F64 => {
                let rhs = self.call_rhs("double", name, &[("double".into(), x.to_string())]);
                Ok(self.t(&rhs))
            }
            Scalar::F16 | Scalar::Bf16 => {
                let s = scalar_ty(e);
                let w = self.t(&format!("fpext {s} {x} to float"));
                let rhs = self.call_rhs("float", name, &[("float".into(), w)]);
                let y = self.t(&rhs);
                Ok(self.t(&format!("fptrunc float {y} to {s}")))
            }
            _ => Err(self.internal("approx of an integer")),
        }
    }

    /// A literal of every lane of `t` (a scalar literal, or a constant vector).
    pub(crate) fn splat_lit(&self, t: Type, lit: &str) -> String {
        match t {
            Type::Vector(s, n) => {
                let l: Vec<String> = (0..n).map(|_| format!("{} {lit}", scalar_ty(s))).collect();
                format!("<{}>", l.join(", "))
            }
            _ => lit.to_string(),
        }
    }

    /// The right-hand side of a two-operand op on `t` (operands of type `t`).
    pub(super) fn binary_rhs(&mut self, op: BinaryOp, t: Type, x: &str, y: &str) -> String {
        let ty = self.ty(t);
        let m = mangle(t);
        let float = t.is_float();
        let simple = |name: &str| format!("{name} {ty} {x}, {y}");
        let intr = |s: &mut Self, name: &str| {
            s.call_rhs(
                &ty,
                &format!("llvm.{name}.{m}"),
                &[(ty.clone(), x.to_string()), (ty.clone(), y.to_string())],
            )
        };
        match op {
            BinaryOp::Add => simple(if float { "fadd" } else { "add" }),
            BinaryOp::Sub => simple(if float { "fsub" } else { "sub" }),
            BinaryOp::Mul => simple(if float { "fmul" } else { "mul" }),
            BinaryOp::Div => simple("fdiv"),
            BinaryOp::Sdiv => simple("sdiv"),
            BinaryOp::Udiv => simple("udiv"),
            BinaryOp::Srem => simple("srem"),
            BinaryOp::Urem => simple("urem"),
            BinaryOp::Min => intr(self, "minimum"),
            BinaryOp::Max => intr(self, "maximum"),
            BinaryOp::Smin => intr(self, "smin"),
            BinaryOp::Smax => intr(self, "smax"),
            BinaryOp::Umin => intr(self, "umin"),
            BinaryOp::Umax => intr(self, "umax"),
            BinaryOp::And => simple("and"),
            BinaryOp::Or => simple("or"),
            BinaryOp::Xor => simple("xor"),
            BinaryOp::Shl => simple("shl"),
            BinaryOp::Lshr => simple("lshr"),
            BinaryOp::Ashr => simple("ashr"),
        }
    }

    fn cast_rhs(&mut self, i: Inst, c: CastOp, a: Value, rt: Type) -> Result<String> {
        let at = self.k.ty(a);
        let x = self.tval(a)?;
        let rty = self.ty(rt);
        let name = match c {
            CastOp::Zext => "zext",
            CastOp::Sext => "sext",
            CastOp::Trunc => "trunc",
            CastOp::Fpext => "fpext",
            CastOp::Fptrunc => "fptrunc",
            CastOp::Sitofp => "sitofp",
            CastOp::Uitofp => "uitofp",
            CastOp::Bitcast => "bitcast",
            CastOp::Fptosi | CastOp::Fptoui => {
                let s = if c == CastOp::Fptosi { "s" } else { "u" };
                let xv = self.val(a)?;
                return Ok(self.call_rhs(
                    &rty,
                    &format!("llvm.fpto{s}i.sat.{}.{}", mangle(rt), mangle(at)),
                    &[(self.ty(at), xv)],
                ));
            }
        };
        if at.is_ptr() || rt.is_ptr() {
            return Err(self.unsup(i, "casts of pointers"));
        }
        Ok(format!("{name} {x} to {rty}"))
    }

    /// The halving tree: combine the upper half into the lower half until one lane is left.
    fn reduce(&mut self, op: ReduceOp, a: Value) -> Result<String> {
        let Type::Vector(e, n) = self.k.ty(a) else {
            return Err(self.internal("reduce of a scalar"));
        };
        let b = match op {
            ReduceOp::Add => BinaryOp::Add,
            ReduceOp::Min => BinaryOp::Min,
            ReduceOp::Max => BinaryOp::Max,
            ReduceOp::Smin => BinaryOp::Smin,
            ReduceOp::Smax => BinaryOp::Smax,
            ReduceOp::Umin => BinaryOp::Umin,
            ReduceOp::Umax => BinaryOp::Umax,
        };
        let mut v = self.val(a)?;
        let mut lanes = u32::from(n);
        while lanes > 1 {
            let half = lanes / 2;
            let vt = self.ty(Type::Vector(e, lanes as u8));
            let mask = |from: u32| {
                let l: Vec<String> = (from..from + half).map(|x| format!("i32 {x}")).collect();
                format!("<{half} x i32> <{}>", l.join(", "))
            };
            let (lo_m, hi_m) = (mask(0), mask(half));
            let (lo, hi) = if half == 1 {
                (
                    self.t(&format!("extractelement {vt} {v}, i32 0")),
                    self.t(&format!("extractelement {vt} {v}, i32 1")),
                )
            } else {
                (
                    self.t(&format!("shufflevector {vt} {v}, {vt} poison, {lo_m}")),
                    self.t(&format!("shufflevector {vt} {v}, {vt} poison, {hi_m}")),
                )
            };
            let ht = if half == 1 {
                Type::Scalar(e)
            } else {
                Type::Vector(e, half as u8)
            };
            let rhs = self.binary_rhs(b, ht, &lo, &hi);
            v = self.t(&rhs);
            lanes = half;
        }
        Ok(v)
    }

    /// Host `madd`: `pmaddubsw` / `pmaddwd` (128-bit SSE, or the 256-bit AVX2 forms).
    fn madd_rhs(
        &mut self,
        i: Inst,
        m: Madd,
        at: Type,
        rt: Type,
        a: &str,
        b: &str,
    ) -> Result<String> {
        let (aty, rty) = (self.ty(at), self.ty(rt));
        let name = match (m, at.bits()) {
            (Madd::U8S8, 128) => "llvm.x86.ssse3.pmadd.ub.sw.128",
            (Madd::U8S8, 256) => "llvm.x86.avx2.pmadd.ub.sw",
            (Madd::S16, 128) => "llvm.x86.sse2.pmadd.wd",
            (Madd::S16, 256) => "llvm.x86.avx2.pmadd.wd",
            _ => return Err(self.unsup(i, format!("madd on {at}: only 128- and 256-bit vectors"))),
        };
        Ok(self.call_rhs(
            &rty,
            name,
            &[(aty.clone(), a.to_string()), (aty, b.to_string())],
        ))
    }
}
