//! Lane arithmetic on raw bits: every scalar op of KIR, for one lane of a given scalar type.
//!
//! f32 and f64 ops run natively. f16 and bf16 ops compute in f64 and round once; for + − × ÷ and
//! sqrt this equals a correctly rounded f16 op, because f64 has more than 2·11+2 significand bits.

use half::{bf16, f16};

use crate::ops::{BinaryOp, CastOp, FloatCC, IntCC, UnaryOp};
use crate::types::Scalar;

/// An interpreter error message.
pub(crate) type LResult<T> = Result<T, String>;

/// Sign-extend the low `bits` of `b`.
pub(crate) fn sx(b: u64, s: Scalar) -> i64 {
    let shift = 64 - s.bits();
    ((b << shift) as i64) >> shift
}

/// Decode a float lane.
pub(crate) fn to_f64(s: Scalar, b: u64) -> f64 {
    match s {
        Scalar::F16 => f16::from_bits(b as u16).to_f64(),
        Scalar::Bf16 => bf16::from_bits(b as u16).to_f64(),
        Scalar::F32 => f64::from(f32::from_bits(b as u32)),
        _ => f64::from_bits(b),
    }
}

/// Encode a float lane, rounding to nearest even.
pub(crate) fn from_f64(s: Scalar, x: f64) -> u64 {
    match s {
        Scalar::F16 => u64::from(f16::from_f64(x).to_bits()),
        Scalar::Bf16 => u64::from(bf16::from_f64(x).to_bits()),
        Scalar::F32 => u64::from((x as f32).to_bits()),
        _ => x.to_bits(),
    }
}

fn f32_of(b: u64) -> f32 {
    f32::from_bits(b as u32)
}
fn f32_bits(x: f32) -> u64 {
    u64::from(x.to_bits())
}

fn nan_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.min(b)
    }
}
fn nan_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

/// A unary op on one lane.
pub(crate) fn unary(op: UnaryOp, s: Scalar, a: u64) -> LResult<u64> {
    let m = s.mask();
    if s.is_int() {
        return Ok(match op {
            UnaryOp::Neg => a.wrapping_neg() & m,
            UnaryOp::Not => !a & m,
            UnaryOp::Abs => sx(a, s).unsigned_abs() & m,
            UnaryOp::Popcnt => u64::from((a & m).count_ones()),
            _ => return Err(format!("{} on {s}", op.name())),
        });
    }
    if s == Scalar::F32 {
        let x = f32_of(a);
        let r = match op {
            UnaryOp::Neg => -x,
            UnaryOp::Abs => x.abs(),
            UnaryOp::Sqrt => x.sqrt(),
            UnaryOp::Rsqrt => (1.0 / f64::from(x).sqrt()) as f32,
            UnaryOp::Exp2 => f64::from(x).exp2() as f32,
            UnaryOp::Floor => x.floor(),
            UnaryOp::RoundEven => x.round_ties_even(),
            _ => return Err(format!("{} on {s}", op.name())),
        };
        return Ok(f32_bits(r));
    }
    let x = to_f64(s, a);
    let r = match op {
        UnaryOp::Neg => return Ok(a ^ (1u64 << (s.bits() - 1))),
        UnaryOp::Abs => return Ok(a & !(1u64 << (s.bits() - 1))),
        UnaryOp::Sqrt => x.sqrt(),
        UnaryOp::Rsqrt => 1.0 / x.sqrt(),
        UnaryOp::Exp2 => x.exp2(),
        UnaryOp::Floor => x.floor(),
        UnaryOp::RoundEven => x.round_ties_even(),
        _ => return Err(format!("{} on {s}", op.name())),
    };
    Ok(from_f64(s, r))
}

/// A binary op on one lane.
pub(crate) fn binary(op: BinaryOp, s: Scalar, a: u64, b: u64) -> LResult<u64> {
    if s.is_float() {
        return Ok(float_binary(op, s, a, b));
    }
    use BinaryOp::*;
    let (m, w) = (s.mask(), s.bits());
    let (ua, ub) = (a & m, b & m);
    let (ia, ib) = (sx(a, s), sx(b, s));
    let zero = || format!("{} by zero", op.name());
    Ok(match op {
        Add => ua.wrapping_add(ub) & m,
        Sub => ua.wrapping_sub(ub) & m,
        Mul => ua.wrapping_mul(ub) & m,
        Sdiv | Srem => {
            if ib == 0 {
                return Err(zero());
            }
            if ia == sx(1u64 << (w - 1), s) && ib == -1 {
                return Err(format!("{} overflows {s}", op.name()));
            }
            (if op == Sdiv { ia / ib } else { ia % ib }) as u64 & m
        }
        Udiv | Urem => {
            if ub == 0 {
                return Err(zero());
            }
            if op == Udiv {
                ua / ub
            } else {
                ua % ub
            }
        }
        Smin => ia.min(ib) as u64 & m,
        Smax => ia.max(ib) as u64 & m,
        Umin => ua.min(ub),
        Umax => ua.max(ub),
        And => ua & ub,
        Or => ua | ub,
        Xor => ua ^ ub,
        Shl | Lshr | Ashr => {
            if ub >= u64::from(w) {
                return Err(format!("{} by {ub} on {s} (amount must be below {w})", op.name()));
            }
            match op {
                Shl => (ua << ub) & m,
                Lshr => ua >> ub,
                _ => (ia >> ub) as u64 & m,
            }
        }
        Div | Min | Max => return Err(format!("{} on {s}", op.name())),
    })
}

fn float_binary(op: BinaryOp, s: Scalar, a: u64, b: u64) -> u64 {
    use BinaryOp::*;
    if s == Scalar::F32 {
        let (x, y) = (f32_of(a), f32_of(b));
        let r = match op {
            Add => x + y,
            Sub => x - y,
            Mul => x * y,
            Div => x / y,
            Min => nan_min(x.into(), y.into()) as f32,
            _ => nan_max(x.into(), y.into()) as f32,
        };
        return f32_bits(r);
    }
    let (x, y) = (to_f64(s, a), to_f64(s, b));
    let r = match op {
        Add => x + y,
        Sub => x - y,
        Mul => x * y,
        Div => x / y,
        Min => nan_min(x, y),
        _ => nan_max(x, y),
    };
    from_f64(s, r)
}

/// a·b + c rounded once.
pub(crate) fn fma(s: Scalar, a: u64, b: u64, c: u64) -> u64 {
    match s {
        Scalar::F32 => f32_bits(f32_of(a).mul_add(f32_of(b), f32_of(c))),
        Scalar::F64 => f64::from_bits(a).mul_add(f64::from_bits(b), f64::from_bits(c)).to_bits(),
        _ => from_f64(s, to_f64(s, a).mul_add(to_f64(s, b), to_f64(s, c))),
    }
}

/// Integer comparison.
pub(crate) fn icmp(cc: IntCC, s: Scalar, a: u64, b: u64) -> bool {
    let (ua, ub, ia, ib) = (a & s.mask(), b & s.mask(), sx(a, s), sx(b, s));
    match cc {
        IntCC::Eq => ua == ub,
        IntCC::Ne => ua != ub,
        IntCC::Slt => ia < ib,
        IntCC::Sle => ia <= ib,
        IntCC::Sgt => ia > ib,
        IntCC::Sge => ia >= ib,
        IntCC::Ult => ua < ub,
        IntCC::Ule => ua <= ub,
        IntCC::Ugt => ua > ub,
        IntCC::Uge => ua >= ub,
    }
}

/// Float comparison.
pub(crate) fn fcmp(cc: FloatCC, s: Scalar, a: u64, b: u64) -> bool {
    let (x, y) = (to_f64(s, a), to_f64(s, b));
    let uno = x.is_nan() || y.is_nan();
    match cc {
        FloatCC::Oeq => x == y,
        FloatCC::One => !uno && x != y,
        FloatCC::Olt => x < y,
        FloatCC::Ole => x <= y,
        FloatCC::Ogt => x > y,
        FloatCC::Oge => x >= y,
        FloatCC::Une => uno || x != y,
        FloatCC::Ord => !uno,
        FloatCC::Uno => uno,
    }
}

/// A lane-wise conversion (not bitcast).
pub(crate) fn cast(op: CastOp, from: Scalar, to: Scalar, a: u64) -> u64 {
    match op {
        CastOp::Zext | CastOp::Trunc => a & from.mask() & to.mask(),
        CastOp::Sext => sx(a, from) as u64 & to.mask(),
        CastOp::Fpext | CastOp::Fptrunc => from_f64(to, to_f64(from, a)),
        CastOp::Sitofp => int_to_float(sx(a, from) as f64, sx(a, from) as f32, to),
        CastOp::Uitofp => int_to_float((a & from.mask()) as f64, (a & from.mask()) as f32, to),
        CastOp::Fptosi => {
            let x = to_f64(from, a).trunc();
            let (lo, hi) = (-(2f64.powi(to.bits() as i32 - 1)), 2f64.powi(to.bits() as i32 - 1) - 1.0);
            (if x.is_nan() { 0 } else { x.clamp(lo, hi) as i64 }) as u64 & to.mask()
        }
        CastOp::Fptoui => {
            let x = to_f64(from, a).trunc();
            let hi = 2f64.powi(to.bits() as i32) - 1.0;
            if x.is_nan() {
                0
            } else {
                x.clamp(0.0, hi) as u64 & to.mask()
            }
        }
        CastOp::Bitcast => a,
    }
}

fn int_to_float(x64: f64, x32: f32, to: Scalar) -> u64 {
    match to {
        Scalar::F32 => f32_bits(x32),
        _ => from_f64(to, x64),
    }
}
