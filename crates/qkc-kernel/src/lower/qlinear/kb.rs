//! A thin typed layer over [`Builder`] for the qlinear generators: constants, arithmetic that
//! infers its type from the first operand, memory ops, and closure-scoped `for` / `if` regions.
//! It keeps the generators readable (one line per KIR instruction) without text templates.

use crate::builder::Builder;
use crate::error::KernelError;
use crate::kernel::{Kernel, ParamAttrs, Target};
use crate::ops::{
    Axis, BinaryOp, CacheHint, CastOp, FloatCC, IntCC, MemFlags, Op, ReduceOp, ShflMode, UnaryOp,
};
use crate::types::{MemSpace, Scalar, Type};
use crate::Value;

pub(super) type R<T> = Result<T, KernelError>;

/// `<4 x f32>`, the CPU's accumulator vector.
pub(super) const F4: Type = Type::Vector(Scalar::F32, 4);
/// `<4 x i32>`, one 16-byte load of packed codes.
pub(super) const I4: Type = Type::Vector(Scalar::I32, 4);

/// The kernel under construction.
pub(super) struct Kb {
    b: Builder,
}

impl Kb {
    pub(super) fn new(name: &str, target: Target) -> Self {
        Kb { b: Builder::new(name, target) }
    }

    pub(super) fn finish(self) -> R<Kernel> {
        self.b.finish()
    }

    /// A pointer parameter into global memory.
    pub(super) fn param(&mut self, name: &str, elem: Scalar, attrs: ParamAttrs) -> Value {
        self.b.param(Some(name.to_string()), Type::Ptr(MemSpace::Global, elem), attrs)
    }

    pub(super) fn ty(&self, v: Value) -> Type {
        self.b.kernel().ty(v)
    }

    fn op1(&mut self, op: Op, args: &[Value], ty: Type) -> Value {
        self.b.ins1(op, args, ty)
    }

    /// A constant of type `ty` from its lane bits.
    pub(super) fn cbits(&mut self, ty: Type, bits: u64) -> Value {
        let mask = ty.elem().map_or(u64::MAX, Scalar::mask);
        self.op1(Op::Const(vec![bits & mask]), &[], ty)
    }
    /// An i32 constant.
    pub(super) fn ci(&mut self, v: i64) -> Value {
        self.cbits(Type::I32, v as u64)
    }
    /// An f32 constant (scalar or splat vector).
    pub(super) fn cf_ty(&mut self, ty: Type, v: f32) -> Value {
        self.cbits(ty, u64::from(v.to_bits()))
    }
    /// An f32 scalar constant.
    pub(super) fn cf(&mut self, v: f32) -> Value {
        self.cf_ty(Type::F32, v)
    }

    pub(super) fn bin(&mut self, op: BinaryOp, a: Value, b: Value) -> Value {
        let ty = self.ty(a);
        self.op1(Op::Binary(op), &[a, b], ty)
    }
    pub(super) fn add(&mut self, a: Value, b: Value) -> Value {
        self.bin(BinaryOp::Add, a, b)
    }
    pub(super) fn sub(&mut self, a: Value, b: Value) -> Value {
        self.bin(BinaryOp::Sub, a, b)
    }
    pub(super) fn mul(&mut self, a: Value, b: Value) -> Value {
        self.bin(BinaryOp::Mul, a, b)
    }
    /// `a + c` for an i32 constant `c`.
    pub(super) fn addi(&mut self, a: Value, c: i64) -> Value {
        if c == 0 {
            return a;
        }
        let k = self.ci(c);
        self.add(a, k)
    }
    /// `a · c` for an i32 constant `c`.
    pub(super) fn muli(&mut self, a: Value, c: i64) -> Value {
        if c == 1 {
            return a;
        }
        let k = self.ci(c);
        self.mul(a, k)
    }
    /// `a · c + d` in i32.
    pub(super) fn mad(&mut self, a: Value, c: i64, d: Value) -> Value {
        let m = self.muli(a, c);
        self.add(m, d)
    }
    pub(super) fn un(&mut self, op: UnaryOp, a: Value) -> Value {
        let ty = self.ty(a);
        self.op1(Op::Unary(op), &[a], ty)
    }
    pub(super) fn fma(&mut self, a: Value, b: Value, c: Value) -> Value {
        let ty = self.ty(a);
        self.op1(Op::Fma, &[a, b, c], ty)
    }
    pub(super) fn cast(&mut self, op: CastOp, a: Value, ty: Type) -> Value {
        self.op1(Op::Cast(op), &[a], ty)
    }
    pub(super) fn icmp(&mut self, cc: IntCC, a: Value, b: Value) -> Value {
        self.op1(Op::Icmp(cc), &[a, b], Type::I1)
    }
    pub(super) fn fcmp(&mut self, cc: FloatCC, a: Value, b: Value) -> Value {
        self.op1(Op::Fcmp(cc), &[a, b], Type::I1)
    }
    pub(super) fn select(&mut self, c: Value, a: Value, b: Value) -> Value {
        let ty = self.ty(a);
        self.op1(Op::Select, &[c, a, b], ty)
    }
    pub(super) fn splat(&mut self, s: Value, ty: Type) -> Value {
        self.op1(Op::Splat, &[s], ty)
    }
    pub(super) fn extract(&mut self, v: Value, lane: u8) -> Value {
        let ty = self.ty(v).elem().map_or(Type::I32, Type::Scalar);
        self.op1(Op::Extract(lane), &[v], ty)
    }
    pub(super) fn insert(&mut self, v: Value, s: Value, lane: u8) -> Value {
        let ty = self.ty(v);
        self.op1(Op::Insert(lane), &[v, s], ty)
    }
    pub(super) fn reduce(&mut self, op: ReduceOp, v: Value) -> Value {
        let ty = self.ty(v).elem().map_or(Type::F32, Type::Scalar);
        self.op1(Op::Reduce(op), &[v], ty)
    }
    pub(super) fn axis(&mut self, a: Axis) -> Value {
        self.op1(Op::Axis(a), &[], Type::I32)
    }
    pub(super) fn shfl_xor(&mut self, v: Value, m: i64) -> Value {
        let c = self.ci(m);
        let ty = self.ty(v);
        self.op1(Op::Shfl(ShflMode::Xor), &[v, c], ty)
    }
    pub(super) fn barrier(&mut self) {
        self.b.ins(Op::Barrier, &[], &[]);
    }
    pub(super) fn alloc(&mut self, space: MemSpace, elem: Scalar, n: usize) -> Value {
        let n = u32::try_from(n.max(1)).unwrap_or(u32::MAX);
        self.op1(Op::Alloc(space, n), &[], Type::Ptr(space, elem))
    }

    /// `load p[i]` of type `ty`, aligned to its size (16 bytes for vectors of 16 bytes).
    pub(super) fn load_hint(&mut self, p: Value, i: Value, ty: Type, hint: CacheHint) -> Value {
        let align = ty.bytes().min(16);
        self.op1(Op::Load(MemFlags { align, hint }), &[p, i], ty)
    }
    pub(super) fn load(&mut self, p: Value, i: Value, ty: Type) -> Value {
        self.load_hint(p, i, ty, CacheHint::Default)
    }
    pub(super) fn store(&mut self, v: Value, p: Value, i: Value) {
        let align = self.ty(v).bytes().min(16);
        self.b.ins(Op::Store(MemFlags { align, hint: CacheHint::Default }), &[v, p, i], &[]);
    }

    /// `for iv = lo to hi step s` carrying `inits`; `body` returns the values to yield.
    pub(super) fn for_(
        &mut self,
        lo: Value,
        hi: Value,
        step: Value,
        inits: &[Value],
        body: impl FnOnce(&mut Kb, Value, &[Value]) -> R<Vec<Value>>,
    ) -> R<Vec<Value>> {
        let res: Vec<(Type, Option<String>)> = inits.iter().map(|&v| (self.ty(v), None)).collect();
        let (inst, iv, carried) = self.b.begin_for([lo, hi, step], inits, 1, &res, None, &[]);
        let ys = body(self, iv, &carried)?;
        self.b.end(&ys)?;
        Ok(self.b.kernel().inst(inst).results.clone())
    }

    /// `for iv = lo to hi step 1` with constant bounds.
    pub(super) fn for_n(
        &mut self,
        lo: i64,
        hi: i64,
        inits: &[Value],
        body: impl FnOnce(&mut Kb, Value, &[Value]) -> R<Vec<Value>>,
    ) -> R<Vec<Value>> {
        let (l, h, s) = (self.ci(lo), self.ci(hi), self.ci(1));
        self.for_(l, h, s, inits, body)
    }

    /// `if c { body }` with no results.
    pub(super) fn if_(&mut self, c: Value, body: impl FnOnce(&mut Kb) -> R<()>) -> R<()> {
        self.b.begin_if(c, &[]);
        body(self)?;
        self.b.end(&[])
    }

    /// Round half away from zero (f64 `round`, the interpreter's rounding): `sign(v)·⌊|v| + ½⌋`.
    pub(super) fn round_away(&mut self, v: Value) -> Value {
        let ty = self.ty(v);
        let half = self.cf_ty(ty, 0.5);
        let a = self.un(UnaryOp::Abs, v);
        let ah = self.add(a, half);
        let r = self.un(UnaryOp::Floor, ah);
        let nr = self.un(UnaryOp::Neg, r);
        let zero = self.cf_ty(ty, 0.0);
        let neg = self.fcmp(FloatCC::Olt, v, zero);
        self.select(neg, nr, r)
    }

    /// SiLU `v / (1 + e^(−v))` with `exp2`.
    pub(super) fn silu(&mut self, v: Value) -> Value {
        let nl2e = self.cf(-std::f32::consts::LOG2_E);
        let one = self.cf(1.0);
        let t = self.mul(v, nl2e);
        let e = self.un(UnaryOp::Exp2, t);
        let d = self.add(e, one);
        self.bin(BinaryOp::Div, v, d)
    }

    /// Load element `i` of an activation buffer of `elem` (f32 or f16) as f32.
    pub(super) fn load_act(&mut self, p: Value, i: Value, elem: Scalar) -> Value {
        if elem == Scalar::F16 {
            let h = self.load(p, i, Type::F16);
            self.cast(CastOp::Fpext, h, Type::F32)
        } else {
            self.load(p, i, Type::F32)
        }
    }

    /// Store an f32 into an activation buffer of `elem` (rounding to f16 when needed).
    pub(super) fn store_act(&mut self, v: Value, p: Value, i: Value, elem: Scalar) {
        if elem == Scalar::F16 {
            let h = self.cast(CastOp::Fptrunc, v, Type::F16);
            self.store(h, p, i);
        } else {
            self.store(v, p, i);
        }
    }
}
