//! Type rules of the region-less ops (see [`crate::ops`] for the forms they check).

use crate::kernel::Kernel;
use crate::ops::{BinaryOp, CacheHint, CastOp, Madd, Op, ReduceOp, UnaryOp};
use crate::types::{MemSpace, Scalar, Type};
use crate::verify::{tys, Loc, Verifier};
use crate::Inst;

/// What an op needs from its operand types, written as a check that returns a message.
type Check = Result<(), String>;

fn need(cond: bool, msg: impl FnOnce() -> String) -> Check {
    if cond {
        Ok(())
    } else {
        Err(msg())
    }
}

fn arity(args: &[Type], res: &[Type], n_args: usize, n_res: usize) -> Check {
    need(args.len() == n_args && res.len() == n_res, || {
        format!("expects {n_args} operand(s) and {n_res} result(s), has {} and {}", args.len(), res.len())
    })
}

fn same(a: Type, b: Type, what: &str) -> Check {
    need(a == b, || format!("{what}: {a} and {b} differ"))
}

fn index_ty(t: Type) -> Check {
    need(matches!(t, Type::Scalar(Scalar::I32 | Scalar::I64)), || {
        format!("an index must be i32 or i64, not {t}")
    })
}

impl Verifier<'_> {
    pub(crate) fn op_types(&mut self, i: Inst) {
        let k = self.k;
        let d = k.inst(i);
        let args: Vec<Type> = d.args.iter().map(|&v| k.ty(v)).collect();
        let res: Vec<Type> = d.results.iter().map(|&v| k.ty(v)).collect();
        // value_rule covers the ops up to `Reduce`; it answers Ok(()) for the rest, and
        // memory_intrinsic_rule answers Ok(()) for those, so each op is checked by exactly one.
        let r = value_rule(k, &d.op, &args, &res).and_then(|_| memory_intrinsic_rule(&d.op, &args, &res));
        if let Err(m) = r {
            self.err(Loc::Inst(i), m);
        }
        self.access_rights(i);
    }

    /// Stores through `readonly` parameters and loads through `writeonly` ones.
    fn access_rights(&mut self, i: Inst) {
        let k = self.k;
        let d = k.inst(i);
        let (ptr, write) = match d.op {
            Op::Load(_) => (d.args.first(), false),
            Op::Store(_) => (d.args.get(1), true),
            Op::AtomicAdd => (d.args.first(), true),
            _ => return,
        };
        let Some(param) = ptr.and_then(|&p| root_param(k, p)) else { return };
        let a = k.params[param].attrs;
        if write && a.readonly {
            self.err(
                Loc::Inst(i),
                format!("writes through readonly parameter {}", k.value_spelling(k.params[param].value)),
            );
        }
        if a.writeonly && (!write || matches!(d.op, Op::AtomicAdd)) {
            self.err(
                Loc::Inst(i),
                format!("reads through writeonly parameter {}", k.value_spelling(k.params[param].value)),
            );
        }
    }
}

/// Arithmetic, comparison, conversion and vector ops.
fn value_rule(k: &Kernel, op: &Op, args: &[Type], res: &[Type]) -> Check {
    match op {
        Op::Const(bits) => const_rule(bits, args, res),
        Op::Unary(u) => arity(args, res, 1, 1).and_then(|_| unary_rule(*u, args[0], res[0])),
        Op::Binary(b) => arity(args, res, 2, 1).and_then(|_| binary_rule(k, *b, args[0], args[1], res[0])),
        Op::Fma => arity(args, res, 3, 1).and_then(|_| {
            need(args[0].is_float(), || "fma takes floats".into())?;
            same(args[0], args[1], "operands")?;
            same(args[0], args[2], "operands")?;
            same(args[0], res[0], "result")
        }),
        Op::Icmp(_) | Op::Fcmp(_) => arity(args, res, 2, 1).and_then(|_| {
            let int = matches!(op, Op::Icmp(_));
            need(if int { args[0].is_int() } else { args[0].is_float() }, || {
                format!("cannot compare {}", args[0])
            })?;
            same(args[0], args[1], "operands")?;
            same(res[0], args[0].with_elem(Scalar::I1), "result must be the i1 mask")
        }),
        Op::Select => arity(args, res, 3, 1).and_then(|_| {
            let ok = args[0] == Type::I1 || args[0] == args[1].with_elem(Scalar::I1);
            need(ok && !args[1].is_ptr(), || format!("condition {} does not fit {}", args[0], args[1]))?;
            same(args[1], args[2], "operands")?;
            same(args[1], res[0], "result")
        }),
        Op::Cast(c) => arity(args, res, 1, 1).and_then(|_| cast_rule(*c, args[0], res[0])),
        Op::Splat => arity(args, res, 1, 1).and_then(|_| {
            let ok = matches!((args[0], res[0]), (Type::Scalar(s), Type::Vector(e, _)) if s == e);
            need(ok, || format!("splat of {} cannot give {}", args[0], res[0]))
        }),
        Op::Extract(l) => arity(args, res, 1, 1).and_then(|_| {
            need(args[0].is_vector() && u32::from(*l) < args[0].lanes(), || {
                format!("lane {l} of {}", args[0])
            })?;
            same(res[0], args[0].scalar_of(), "result")
        }),
        Op::Insert(l) => arity(args, res, 2, 1).and_then(|_| {
            need(args[0].is_vector() && u32::from(*l) < args[0].lanes(), || {
                format!("lane {l} of {}", args[0])
            })?;
            same(args[1], args[0].scalar_of(), "inserted value")?;
            same(res[0], args[0], "result")
        }),
        Op::Shuffle(mask) => {
            arity(args, res, 2, 1).and_then(|_| shuffle_rule(mask, args[0], args[1], res[0]))
        }
        Op::Reduce(r) => arity(args, res, 1, 1).and_then(|_| {
            need(args[0].is_vector(), || "reduce takes a vector".into())?;
            let f = args[0].is_float();
            let ok = match r {
                ReduceOp::Add => true,
                ReduceOp::Min | ReduceOp::Max => f,
                _ => !f,
            };
            need(ok, || format!("reduce.{} cannot take {}", r.name(), args[0]))?;
            same(res[0], args[0].scalar_of(), "result")
        }),
        _ => Ok(()),
    }
}

/// Memory ops and target intrinsics.
fn memory_intrinsic_rule(op: &Op, args: &[Type], res: &[Type]) -> Check {
    match op {
        Op::Load(f) => {
            arity(args, res, 2, 1).and_then(|_| mem_rule(args[1], args[0], res[0], f.align, f.hint))
        }
        Op::Store(f) => {
            arity(args, res, 3, 0).and_then(|_| mem_rule(args[2], args[1], args[0], f.align, f.hint))
        }
        Op::Prefetch => arity(args, res, 2, 0).and_then(|_| {
            index_ty(args[1])?;
            need(args[0].is_ptr(), || "prefetch takes a pointer".into())
        }),
        Op::AtomicAdd => arity(args, res, 3, 1).and_then(|_| {
            mem_rule(args[1], args[0], args[2], args[2].bytes(), CacheHint::Default)?;
            let ok = matches!(args[2], Type::Scalar(Scalar::I32 | Scalar::I64 | Scalar::F32 | Scalar::F64))
                || args[2] == Type::Vector(Scalar::F16, 2);
            need(ok && !matches!(args[0], Type::Ptr(MemSpace::Local, _)), || {
                format!("atomic.add on {} in {}", args[2], args[0])
            })?;
            same(res[0], args[2], "result")
        }),
        Op::Offset => arity(args, res, 2, 1).and_then(|_| {
            need(args[0].is_ptr(), || "offset takes a pointer".into())?;
            index_ty(args[1])?;
            same(res[0], args[0], "result")
        }),
        Op::Alloc(space, n) => arity(args, res, 0, 1).and_then(|_| {
            need(*n > 0, || "allocation of zero elements".into())?;
            need(matches!(res[0], Type::Ptr(m, _) if m == *space), || {
                format!("alloc.{space} gives {}", res[0])
            })
        }),
        Op::Axis(_) => arity(args, res, 0, 1).and_then(|_| same(res[0], Type::I32, "axis index")),
        Op::Barrier => arity(args, res, 0, 0),
        Op::Shfl(_) => arity(args, res, 2, 1).and_then(|_| {
            need(!args[0].is_ptr() && args[0].bits() <= 64, || format!("cannot shuffle {}", args[0]))?;
            same(args[1], Type::I32, "lane operand")?;
            same(res[0], args[0], "result")
        }),
        Op::Prmt | Op::Dp4a(_) => arity(args, res, 3, 1).and_then(|_| {
            need(args.iter().chain(res).all(|&t| t == Type::I32), || format!("{op} takes and gives i32"))
        }),
        Op::Swizzle => arity(args, res, 2, 1).and_then(|_| {
            let b = Type::Vector(Scalar::I8, 16);
            need(args[0] == b && args[1] == b && res[0] == b, || "swizzle takes and gives <16 x i8>".into())
        }),
        Op::Madd(m) => arity(args, res, 2, 1).and_then(|_| madd_rule(*m, args[0], args[1], res[0])),
        Op::Mma(_) => {
            Err("`mma` is reserved and not supported yet (no fragment layout, no interpreter)".into())
        }
        _ => Ok(()),
    }
}

/// The parameter a pointer is derived from through `offset`s, if any.
pub(crate) fn root_param(k: &Kernel, mut p: crate::Value) -> Option<usize> {
    for _ in 0..1024 {
        match k.value(p).def {
            crate::ValueDef::Param(n) => return Some(n as usize),
            crate::ValueDef::Result(i, 0) if matches!(k.inst(i).op, Op::Offset) => {
                p = *k.inst(i).args.first()?
            }
            _ => return None,
        }
    }
    None
}

fn const_rule(bits: &[u64], args: &[Type], res: &[Type]) -> Check {
    arity(args, res, 0, 1)?;
    let t = res[0];
    let e = t.elem().ok_or_else(|| format!("no constants of type {t}"))?;
    need(bits.len() == 1 || bits.len() as u32 == t.lanes(), || {
        format!("{} lanes given for {t}", bits.len())
    })?;
    need(bits.iter().all(|b| b & !e.mask() == 0), || format!("a literal does not fit {e}"))
}

fn unary_rule(u: UnaryOp, a: Type, r: Type) -> Check {
    let ok = match u {
        UnaryOp::Neg | UnaryOp::Abs => a.is_int() || a.is_float(),
        UnaryOp::Not | UnaryOp::Popcnt => a.is_int(),
        _ => a.is_float(),
    };
    need(ok, || format!("{} cannot take {a}", u.name()))?;
    same(a, r, "result")
}

fn binary_rule(k: &Kernel, b: BinaryOp, x: Type, y: Type, r: Type) -> Check {
    use BinaryOp::*;
    let ok = match b {
        Add | Sub | Mul => x.is_int() || x.is_float(),
        Div | Min | Max => x.is_float(),
        _ => x.is_int(),
    };
    need(ok, || format!("{} cannot take {x}", b.name()))?;
    if matches!(b, Shl | Lshr | Ashr) {
        need(y == x || y == x.scalar_of(), || format!("shift amount {y} must be {x} or {}", x.scalar_of()))?;
        need(k.target.is_gpu() || !y.is_vector(), || {
            "the cpu target shifts vectors by a scalar amount (Cranelift has no per-lane shifts)".into()
        })?;
    } else {
        same(x, y, "operands")?;
    }
    same(x, r, "result")
}

fn cast_rule(c: CastOp, a: Type, r: Type) -> Check {
    use CastOp::*;
    if c == Bitcast {
        return need(!a.is_ptr() && !r.is_ptr() && a.bits() == r.bits(), || {
            format!("bitcast {a} to {r}: widths differ")
        });
    }
    need(a.lanes() == r.lanes() && !a.is_ptr() && !r.is_ptr(), || {
        format!("{} {a} to {r}: lanes differ", c.name())
    })?;
    let (Some(x), Some(y)) = (a.elem(), r.elem()) else { return Err("no pointers".into()) };
    let ok = match c {
        Zext | Sext => x.is_int() && y.is_int() && y.bits() > x.bits(),
        Trunc => x.is_int() && y.is_int() && y.bits() < x.bits(),
        Fpext => x.is_float() && y.is_float() && y.bits() > x.bits(),
        Fptrunc => {
            x.is_float() && y.is_float() && y.bits() < x.bits() || (x == Scalar::F32 && y == Scalar::Bf16)
        }
        Sitofp | Uitofp => x.is_int() && y.is_float(),
        Fptosi | Fptoui => x.is_float() && y.is_int(),
        Bitcast => true,
    };
    need(ok, || format!("cannot {} {a} to {r}", c.name()))
}

fn shuffle_rule(mask: &[u8], a: Type, b: Type, r: Type) -> Check {
    need(a.is_vector(), || format!("shuffle takes vectors, not {a}"))?;
    same(a, b, "operands")?;
    need(Type::valid_lanes(mask.len() as u32), || format!("a mask of {} lanes", mask.len()))?;
    need(mask.iter().all(|&m| u32::from(m) < 2 * a.lanes()), || {
        format!("a mask index is out of range for 2 x {a}")
    })?;
    same(r, Type::Vector(a.elem().unwrap_or(Scalar::I8), mask.len() as u8), "result")
}

fn mem_rule(idx: Type, ptr: Type, val: Type, align: u32, hint: CacheHint) -> Check {
    index_ty(idx)?;
    let Type::Ptr(space, e) = ptr else { return Err(format!("{ptr} is not a pointer")) };
    need(val.elem() == Some(e), || format!("{val} through {ptr}"))?;
    need(align.is_power_of_two() && align <= 256, || {
        format!("align {align} is not a power of two up to 256")
    })?;
    need(hint == CacheHint::Default || space == MemSpace::Global, || {
        format!("cache hints apply to global memory, not {space}")
    })
}

fn madd_rule(m: Madd, a: Type, b: Type, r: Type) -> Check {
    same(a, b, "operands")?;
    let (src, dst) = match m {
        Madd::U8S8 => (Scalar::I8, Scalar::I16),
        Madd::S16 => (Scalar::I16, Scalar::I32),
    };
    let ok = matches!((a, r), (Type::Vector(x, n), Type::Vector(y, h)) if x == src && y == dst && h * 2 == n);
    need(ok, || format!("madd.{} cannot take {} to {}; {}", m.name(), a, r, tys(&[a, b])))
}

impl Type {
    /// The lane type as a scalar type (`<4 x f32>` → `f32`); pointers map to themselves.
    pub fn scalar_of(self) -> Type {
        match self {
            Type::Vector(s, _) => Type::Scalar(s),
            t => t,
        }
    }
}
