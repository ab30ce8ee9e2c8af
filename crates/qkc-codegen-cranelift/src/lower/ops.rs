//! Lane-wise arithmetic, bit ops, comparisons, conversions, vector ops and the CPU integer dot
//! products. Integer ops wrap; `min`/`max` are `fmin`/`fmax` (NaN-propagating, as in KIR);
//! `roundeven` is `nearest`; `fptosi` is `fcvt_to_sint_sat` (saturating, NaN → 0, as in KIR).
//! `madd.u8s8` is `x86_pmaddubsw`; `madd.s16` is the `iadd_pairwise(imul(swiden_low ..),
//! imul(swiden_high ..))` pattern that x86-64 Cranelift matches to one `pmaddwd`.

use cranelift_codegen::ir::{
    self, condcodes, types, ConstantData, Endianness, InstBuilder, MemFlagsData,
};
use qkc_kernel::ops::Madd;
use qkc_kernel::{BinaryOp, CastOp, FloatCC, Inst, IntCC, Op, ReduceOp, Scalar, Type, UnaryOp};

use super::{first_result, Lower};
use crate::error::{CodegenError, Result};

/// Flags of a lane-changing vector `bitcast` (CLIF wants the byte order spelled out).
pub(super) fn le() -> MemFlagsData {
    MemFlagsData::new().with_endianness(Endianness::Little)
}

impl Lower<'_, '_> {
    pub(super) fn op(&mut self, i: Inst) -> Result<()> {
        let d = self.k.inst(i).clone();
        let r = first_result(self.k, i)?;
        let rt = self.ty(r);
        let a = |n: usize| {
            d.args
                .get(n)
                .copied()
                .ok_or_else(|| CodegenError::Internal(format!("operand {n} missing")))
        };
        let v = match &d.op {
            Op::Const(bits) => self.constant(i, rt, bits)?,
            Op::Unary(u) => self.unary(i, *u, a(0)?)?,
            Op::Binary(bop) => self.binary(i, *bop, a(0)?, a(1)?)?,
            Op::Fma => {
                let (x, y, z) = (self.val(a(0)?)?, self.val(a(1)?)?, self.val(a(2)?)?);
                self.b.ins().fma(x, y, z)
            }
            Op::Icmp(cc) => {
                let (x, y) = (self.val(a(0)?)?, self.val(a(1)?)?);
                self.b.ins().icmp(int_cc(*cc), x, y)
            }
            Op::Fcmp(cc) => {
                let (x, y) = (self.val(a(0)?)?, self.val(a(1)?)?);
                self.b.ins().fcmp(float_cc(*cc), x, y)
            }
            Op::Select => {
                let (c, x, y) = (self.val(a(0)?)?, self.val(a(1)?)?, self.val(a(2)?)?);
                if self.ty(a(0)?).is_vector() {
                    let dt = self.b.func.dfg.value_type(x);
                    let m = if self.b.func.dfg.value_type(c) == dt {
                        c
                    } else {
                        self.b.ins().bitcast(dt, le(), c)
                    };
                    self.b.ins().bitselect(m, x, y)
                } else {
                    self.b.ins().select(c, x, y)
                }
            }
            Op::Cast(c) => self.cast(i, *c, a(0)?, rt)?,
            Op::Splat => {
                let ct = self.clif_ty(i, rt)?;
                let x = self.val(a(0)?)?;
                self.b.ins().splat(ct, x)
            }
            Op::Extract(l) => {
                let x = self.val(a(0)?)?;
                self.b.ins().extractlane(x, *l)
            }
            Op::Insert(l) => {
                let (x, s) = (self.val(a(0)?)?, self.val(a(1)?)?);
                self.b.ins().insertlane(x, s, *l)
            }
            Op::Shuffle(mask) => self.shuffle(i, a(0)?, a(1)?, mask, rt)?,
            Op::Reduce(op) => self.reduce(i, *op, a(0)?)?,
            Op::Swizzle => {
                let (t, x) = (self.val(a(0)?)?, self.val(a(1)?)?);
                self.b.ins().swizzle(t, x)
            }
            Op::Madd(Madd::U8S8) => {
                // KIR: a unsigned, b signed; CLIF's `x86_pmaddubsw` takes the signed bytes first.
                let (u, s) = (self.val(a(0)?)?, self.val(a(1)?)?);
                self.b.ins().x86_pmaddubsw(s, u)
            }
            Op::Madd(Madd::S16) => {
                let (x, y) = (self.val(a(0)?)?, self.val(a(1)?)?);
                let (xl, yl) = (self.b.ins().swiden_low(x), self.b.ins().swiden_low(y));
                let (xh, yh) = (self.b.ins().swiden_high(x), self.b.ins().swiden_high(y));
                let (pl, ph) = (self.b.ins().imul(xl, yl), self.b.ins().imul(xh, yh));
                self.b.ins().iadd_pairwise(pl, ph)
            }
            other => {
                return Err(self.unsup(i, format!("`{}` has no CPU translation", other.mnemonic())))
            }
        };
        self.def(r, v);
        Ok(())
    }

    fn constant(&mut self, i: Inst, t: Type, bits: &[u64]) -> Result<ir::Value> {
        let ct = self.clif_ty(i, t)?;
        let Some(e) = t.elem() else {
            return Err(self.unsup(i, "constant pointer"));
        };
        let lane = |n: usize| bits.get(n).or(bits.first()).copied().unwrap_or(0) & e.mask();
        if !t.is_vector() {
            let x = lane(0);
            return Ok(match e {
                Scalar::F32 => self
                    .b
                    .ins()
                    .f32const(ir::immediates::Ieee32::with_bits(x as u32)),
                Scalar::F64 => self.b.ins().f64const(ir::immediates::Ieee64::with_bits(x)),
                _ => self.b.ins().iconst(ct, x as i64),
            });
        }
        let w = e.bytes() as usize;
        let bytes: Vec<u8> = (0..t.lanes() as usize)
            .flat_map(|n| lane(n).to_le_bytes()[..w].to_vec())
            .collect();
        let c = self.b.func.dfg.constants.insert(ConstantData::from(bytes));
        Ok(self.b.ins().vconst(ct, c))
    }

    /// A float constant of `ct` (a scalar, or a splat for vectors).
    pub(super) fn fconst(&mut self, ct: ir::Type, x: f64) -> ir::Value {
        let s = if ct.lane_type() == types::F64 {
            self.b.ins().f64const(x)
        } else {
            self.b.ins().f32const(x as f32)
        };
        if ct.is_vector() {
            self.b.ins().splat(ct, s)
        } else {
            s
        }
    }

    fn unary(&mut self, i: Inst, u: UnaryOp, a: qkc_kernel::Value) -> Result<ir::Value> {
        let t = self.ty(a);
        let x = self.val(a)?;
        let float = t.is_float();
        if float && matches!(t.elem(), Some(Scalar::F16 | Scalar::Bf16)) {
            return Err(self.unsup(i, "arithmetic on 16-bit floats (x86-64 Cranelift has none)"));
        }
        let ins = self.b.ins();
        Ok(match u {
            UnaryOp::Neg if float => ins.fneg(x),
            UnaryOp::Neg => ins.ineg(x),
            UnaryOp::Not => ins.bnot(x),
            UnaryOp::Abs if float => ins.fabs(x),
            UnaryOp::Abs => ins.iabs(x),
            UnaryOp::Sqrt => ins.sqrt(x),
            UnaryOp::Floor => ins.floor(x),
            UnaryOp::RoundEven => ins.nearest(x),
            UnaryOp::Popcnt => ins.popcnt(x),
            UnaryOp::Rsqrt => {
                let s = ins.sqrt(x);
                let ct = self.b.func.dfg.value_type(x);
                let one = self.fconst(ct, 1.0);
                self.b.ins().fdiv(one, s)
            }
            UnaryOp::Exp2 => self.exp2(i, x)?,
        })
    }

    fn binary(
        &mut self,
        i: Inst,
        op: BinaryOp,
        a: qkc_kernel::Value,
        b: qkc_kernel::Value,
    ) -> Result<ir::Value> {
        let t = self.ty(a);
        let (x, y) = (self.val(a)?, self.val(b)?);
        let float = t.is_float();
        if float && matches!(t.elem(), Some(Scalar::F16 | Scalar::Bf16)) {
            return Err(self.unsup(i, "arithmetic on 16-bit floats (x86-64 Cranelift has none)"));
        }
        if t.is_vector()
            && matches!(
                op,
                BinaryOp::Sdiv | BinaryOp::Udiv | BinaryOp::Srem | BinaryOp::Urem
            )
        {
            return Err(self.unsup(i, "vector integer division (x86 has none)"));
        }
        if matches!(op, BinaryOp::Shl | BinaryOp::Lshr | BinaryOp::Ashr) && self.ty(b).is_vector() {
            return Err(self.unsup(
                i,
                "per-lane shift amounts (CLIF shifts vectors by a scalar)",
            ));
        }
        let ins = self.b.ins();
        Ok(match op {
            BinaryOp::Add if float => ins.fadd(x, y),
            BinaryOp::Add => ins.iadd(x, y),
            BinaryOp::Sub if float => ins.fsub(x, y),
            BinaryOp::Sub => ins.isub(x, y),
            BinaryOp::Mul if float => ins.fmul(x, y),
            BinaryOp::Mul => ins.imul(x, y),
            BinaryOp::Div => ins.fdiv(x, y),
            BinaryOp::Sdiv => ins.sdiv(x, y),
            BinaryOp::Udiv => ins.udiv(x, y),
            BinaryOp::Srem => ins.srem(x, y),
            BinaryOp::Urem => ins.urem(x, y),
            BinaryOp::Min => ins.fmin(x, y),
            BinaryOp::Max => ins.fmax(x, y),
            BinaryOp::Smin => ins.smin(x, y),
            BinaryOp::Smax => ins.smax(x, y),
            BinaryOp::Umin => ins.umin(x, y),
            BinaryOp::Umax => ins.umax(x, y),
            BinaryOp::And => ins.band(x, y),
            BinaryOp::Or => ins.bor(x, y),
            BinaryOp::Xor => ins.bxor(x, y),
            BinaryOp::Shl => ins.ishl(x, y),
            BinaryOp::Lshr => ins.ushr(x, y),
            BinaryOp::Ashr => ins.sshr(x, y),
        })
    }

    fn cast(&mut self, i: Inst, c: CastOp, a: qkc_kernel::Value, rt: Type) -> Result<ir::Value> {
        let st = self.ty(a);
        let x = self.val(a)?;
        let ct = self.clif_ty(i, rt)?;
        let (se, re) = (st.elem(), rt.elem());
        let vector = st.is_vector();
        let xt = self.b.func.dfg.value_type(x);
        let narrow_vec = || vector && st.elem().map(Scalar::bits) != rt.elem().map(Scalar::bits);
        if matches!(
            c,
            CastOp::Zext | CastOp::Sext | CastOp::Trunc | CastOp::Fpext | CastOp::Fptrunc
        ) && vector
        {
            return Err(self.unsup(
                i,
                "widening or narrowing vector conversions (not 128 bits on both sides)",
            ));
        }
        if narrow_vec() && c != CastOp::Bitcast {
            return Err(self.unsup(i, "vector conversion between lane widths"));
        }
        let ins = self.b.ins();
        Ok(match c {
            CastOp::Zext => ins.uextend(ct, x),
            CastOp::Sext if se == Some(Scalar::I1) => {
                let z = ins.uextend(ct, x);
                self.b.ins().ineg(z)
            }
            CastOp::Sext => ins.sextend(ct, x),
            CastOp::Trunc if re == Some(Scalar::I1) => {
                let n = if ct == xt { x } else { ins.ireduce(ct, x) };
                self.b.ins().band_imm_u(n, 1)
            }
            CastOp::Trunc => ins.ireduce(ct, x),
            CastOp::Fpext if se == Some(Scalar::F16) && re == Some(Scalar::F32) => {
                self.f16_to_f32(x)
            }
            CastOp::Fpext if se == Some(Scalar::F32) => ins.fpromote(ct, x),
            CastOp::Fptrunc if se == Some(Scalar::F32) && re == Some(Scalar::F16) => {
                self.f32_to_f16(x)
            }
            CastOp::Fptrunc if se == Some(Scalar::F64) && re == Some(Scalar::F32) => {
                ins.fdemote(ct, x)
            }
            CastOp::Fpext | CastOp::Fptrunc => {
                return Err(self.unsup(i, format!("{} from {st} to {rt}", c.name())));
            }
            CastOp::Sitofp => ins.fcvt_from_sint(ct, x),
            CastOp::Uitofp => ins.fcvt_from_uint(ct, x),
            CastOp::Fptosi => ins.fcvt_to_sint_sat(ct, x),
            CastOp::Fptoui => ins.fcvt_to_uint_sat(ct, x),
            CastOp::Bitcast if ct == xt => x,
            CastOp::Bitcast => ins.bitcast(ct, le(), x),
        })
    }

    /// f16 bits → f32, exactly: the exponent and mantissa moved into place (`<< 13`) are an f32
    /// 2^-112 too small, so one multiply by 2^112 fixes normals and subnormals alike; infinities
    /// and NaNs (exponent all ones) get the f32 exponent all ones.
    fn f16_to_f32(&mut self, h: ir::Value) -> ir::Value {
        let ins = self.b.ins();
        let w = ins.uextend(types::I32, h);
        let em = self.b.ins().band_imm_u(w, 0x7fff);
        let sign = self.b.ins().band_imm_u(w, 0x8000);
        let sign = self.b.ins().ishl_imm_u(sign, 16);
        let shifted = self.b.ins().ishl_imm_u(em, 13);
        let f = self
            .b
            .ins()
            .bitcast(types::F32, MemFlagsData::new(), shifted);
        let k = self.b.ins().f32const(f32::from_bits(0x7780_0000)); // 2^112
        let scaled = self.b.ins().fmul(f, k);
        let scaled = self
            .b
            .ins()
            .bitcast(types::I32, MemFlagsData::new(), scaled);
        let special = self.b.ins().bor_imm_u(shifted, 0x7f80_0000);
        let is_special =
            self.b
                .ins()
                .icmp_imm_u(condcodes::IntCC::UnsignedGreaterThanOrEqual, em, 0x7c00);
        let mag = self.b.ins().select(is_special, special, scaled);
        let bits = self.b.ins().bor(mag, sign);
        self.b.ins().bitcast(types::F32, MemFlagsData::new(), bits)
    }

    /// f32 → f16 bits, rounding to nearest even, exactly as IEEE conversion does (Cranelift has
    /// no f16 conversion on x86-64 without F16C in its lowering). Normals: rebias the exponent
    /// and round the 13 dropped mantissa bits by adding 0xfff plus the kept lowest bit. Results
    /// below the f16 normal range: adding the magic 0.5 (as f32) lets the FPU round the
    /// subnormal in place. Overflow → ±inf; NaN → quiet NaN.
    fn f32_to_f16(&mut self, x: ir::Value) -> ir::Value {
        use condcodes::IntCC;
        let bits = self.b.ins().bitcast(types::I32, MemFlagsData::new(), x);
        let sign = self.b.ins().band_imm_u(bits, 0x8000_0000);
        let f = self.b.ins().bxor(bits, sign);
        // normal: ((f + ((15 - 127) << 23) + 0xfff + ((f >> 13) & 1)) >> 13
        let odd = self.b.ins().ushr_imm_u(f, 13);
        let odd = self.b.ins().band_imm_u(odd, 1);
        let n = self.b.ins().iadd_imm_s(f, ((15i64 - 127) << 23) + 0xfff);
        let n = self.b.ins().iadd(n, odd);
        let normal = self.b.ins().ushr_imm_u(n, 13);
        // subnormal or zero: as_float(f) + 0.5 leaves the f16 subnormal in the low bits
        let magic_bits = ((127u32 - 15) + (23 - 10) + 1) << 23;
        let ff = self.b.ins().bitcast(types::F32, MemFlagsData::new(), f);
        let magic = self.b.ins().f32const(f32::from_bits(magic_bits));
        let sum = self.b.ins().fadd(ff, magic);
        let sum = self.b.ins().bitcast(types::I32, MemFlagsData::new(), sum);
        let sub = self.b.ins().iadd_imm_s(sum, -i64::from(magic_bits));
        let is_sub = self
            .b
            .ins()
            .icmp_imm_u(IntCC::UnsignedLessThan, f, 113 << 23);
        let fin = self.b.ins().select(is_sub, sub, normal);
        // overflow to inf, NaN to a quiet NaN
        let is_nan = self
            .b
            .ins()
            .icmp_imm_u(IntCC::UnsignedGreaterThan, f, 255 << 23);
        let inf = self.b.ins().iconst(types::I32, 0x7c00);
        let qnan = self.b.ins().iconst(types::I32, 0x7e00);
        let special = self.b.ins().select(is_nan, qnan, inf);
        let is_big =
            self.b
                .ins()
                .icmp_imm_u(IntCC::UnsignedGreaterThanOrEqual, f, (127 + 16) << 23);
        let mag = self.b.ins().select(is_big, special, fin);
        let s16 = self.b.ins().ushr_imm_u(sign, 16);
        let h = self.b.ins().bor(mag, s16);
        self.b.ins().ireduce(types::I16, h)
    }

    /// `shuffle a, b, [lanes]`: CLIF shuffles bytes of `i8x16`s, so lane indices become byte
    /// indices into a‖b.
    fn shuffle(
        &mut self,
        i: Inst,
        a: qkc_kernel::Value,
        b: qkc_kernel::Value,
        mask: &[u8],
        rt: Type,
    ) -> Result<ir::Value> {
        let ct = self.clif_ty(i, rt)?;
        let w = rt.elem().map_or(1, Scalar::bytes) as u8;
        let bytes: Vec<u8> = mask
            .iter()
            .flat_map(|&m| (0..w).map(move |j| m * w + j))
            .collect();
        let (x, y) = (self.val(a)?, self.val(b)?);
        Ok(self.byte_shuffle(x, y, bytes, ct))
    }

    pub(super) fn byte_shuffle(
        &mut self,
        x: ir::Value,
        y: ir::Value,
        bytes: Vec<u8>,
        ct: ir::Type,
    ) -> ir::Value {
        let to_bytes = |l: &mut Self, v: ir::Value| {
            if l.b.func.dfg.value_type(v) == types::I8X16 {
                v
            } else {
                l.b.ins().bitcast(types::I8X16, le(), v)
            }
        };
        let (xb, yb) = (to_bytes(self, x), to_bytes(self, y));
        let imm = self.b.func.dfg.immediates.push(ConstantData::from(bytes));
        let s = self.b.ins().shuffle(xb, yb, imm);
        if ct == types::I8X16 {
            s
        } else {
            self.b.ins().bitcast(ct, le(), s)
        }
    }

    /// `reduce.op v`: the fixed halving order of KIR (upper half into lower half), as byte
    /// shuffles and lane-wise ops, then lane 0.
    fn reduce(&mut self, i: Inst, op: ReduceOp, a: qkc_kernel::Value) -> Result<ir::Value> {
        let t = self.ty(a);
        let ct = self.clif_ty(i, t)?;
        let float = t.is_float();
        let w = t.elem().map_or(1, Scalar::bytes) as u8;
        let mut v = self.val(a)?;
        let mut n = t.lanes() as u8;
        while n > 1 {
            let half = n / 2;
            let bytes: Vec<u8> = (0..16u8)
                .map(|j| if j < half * w { j + half * w } else { j })
                .collect();
            let hi = self.byte_shuffle(v, v, bytes, ct);
            let ins = self.b.ins();
            v = match op {
                ReduceOp::Add if float => ins.fadd(v, hi),
                ReduceOp::Add => ins.iadd(v, hi),
                ReduceOp::Min => ins.fmin(v, hi),
                ReduceOp::Max => ins.fmax(v, hi),
                ReduceOp::Smin => ins.smin(v, hi),
                ReduceOp::Smax => ins.smax(v, hi),
                ReduceOp::Umin => ins.umin(v, hi),
                ReduceOp::Umax => ins.umax(v, hi),
            };
            n = half;
        }
        Ok(self.b.ins().extractlane(v, 0))
    }
}

fn int_cc(c: IntCC) -> condcodes::IntCC {
    use condcodes::IntCC as C;
    match c {
        IntCC::Eq => C::Equal,
        IntCC::Ne => C::NotEqual,
        IntCC::Slt => C::SignedLessThan,
        IntCC::Sle => C::SignedLessThanOrEqual,
        IntCC::Sgt => C::SignedGreaterThan,
        IntCC::Sge => C::SignedGreaterThanOrEqual,
        IntCC::Ult => C::UnsignedLessThan,
        IntCC::Ule => C::UnsignedLessThanOrEqual,
        IntCC::Ugt => C::UnsignedGreaterThan,
        IntCC::Uge => C::UnsignedGreaterThanOrEqual,
    }
}

fn float_cc(c: FloatCC) -> condcodes::FloatCC {
    use condcodes::FloatCC as C;
    match c {
        FloatCC::Oeq => C::Equal,
        FloatCC::One => C::OrderedNotEqual,
        FloatCC::Olt => C::LessThan,
        FloatCC::Ole => C::LessThanOrEqual,
        FloatCC::Ogt => C::GreaterThan,
        FloatCC::Oge => C::GreaterThanOrEqual,
        FloatCC::Une => C::NotEqual,
        FloatCC::Ord => C::Ordered,
        FloatCC::Uno => C::Unordered,
    }
}
