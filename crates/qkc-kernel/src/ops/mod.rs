//! The KIR op set: arithmetic and bit ops, conversions, vector ops, memory ops, structured
//! control flow and the target intrinsics that fast kernels need.
//!
//! Operands are SSA values listed in [`crate::InstData::args`]; immediates (constant bits, lane
//! numbers, shuffle masks, alignment, cache hints, unroll factors) live in the op itself. Every op
//! has a mnemonic, which is its text spelling. Semantics are those of the interpreter
//! ([`crate::interp`]); each variant's doc says how it maps to LLVM and Cranelift.

use std::fmt;

use crate::types::MemSpace;

macro_rules! mnemonics {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident => $s:literal,)* }) => {
        $(#[$m])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
        pub enum $name { $($(#[$vm])* $v,)* }
        impl $name {
            /// Every variant.
            pub const ALL: &'static [$name] = &[$($name::$v,)*];
            /// The spelling (after the op's prefix, if any).
            pub fn name(self) -> &'static str {
                match self { $($name::$v => $s,)* }
            }
            /// Parse a spelling.
            pub fn from_name(s: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|x| x.name() == s)
            }
        }
    };
}

mod target;

pub use target::{Axis, CacheHint, Dp4a, Madd, MmaShape, ShflMode};

mnemonics!(
    /// One-operand lane-wise ops. Float ones: `abs`, `sqrt`, `rsqrt`, `exp2`, `floor`, `roundeven`
    /// (ties to even). `rsqrt` and `exp2` may be approximate in a backend (≤ 2 ulp; PTX `.approx`,
    /// Cranelift expands them); the interpreter rounds the exact result.
    UnaryOp {
        /// Negation (int: wrapping; float: sign flip).
        Neg => "neg",
        /// Bitwise not.
        Not => "not",
        /// Absolute value (int: wrapping, float: clears the sign).
        Abs => "abs",
        /// Square root.
        Sqrt => "sqrt",
        /// 1 / sqrt(x).
        Rsqrt => "rsqrt",
        /// 2^x.
        Exp2 => "exp2",
        /// Round toward −∞.
        Floor => "floor",
        /// Round to nearest, ties to even.
        RoundEven => "roundeven",
        /// Population count.
        Popcnt => "popcnt",
    }
);

mnemonics!(
    /// Two-operand lane-wise ops on operands of one type. Integer arithmetic wraps. Shifts take
    /// the amount as the same type or as a scalar of the lane type (Cranelift's form; the CPU
    /// target requires the scalar form for vectors); an amount ≥ the lane width is an error.
    BinaryOp {
        /// Addition (int or float).
        Add => "add",
        /// Subtraction.
        Sub => "sub",
        /// Multiplication.
        Mul => "mul",
        /// Float division.
        Div => "div",
        /// Signed integer division (toward zero).
        Sdiv => "sdiv",
        /// Unsigned integer division.
        Udiv => "udiv",
        /// Signed remainder.
        Srem => "srem",
        /// Unsigned remainder.
        Urem => "urem",
        /// Float minimum, NaN-propagating (LLVM `minimum`, Cranelift `fmin`).
        Min => "min",
        /// Float maximum, NaN-propagating.
        Max => "max",
        /// Signed integer minimum.
        Smin => "smin",
        /// Signed integer maximum.
        Smax => "smax",
        /// Unsigned integer minimum.
        Umin => "umin",
        /// Unsigned integer maximum.
        Umax => "umax",
        /// Bitwise and.
        And => "and",
        /// Bitwise or.
        Or => "or",
        /// Bitwise xor.
        Xor => "xor",
        /// Shift left.
        Shl => "shl",
        /// Logical shift right.
        Lshr => "lshr",
        /// Arithmetic shift right.
        Ashr => "ashr",
    }
);

mnemonics!(
    /// Integer comparison predicates (`icmp.<cc>`).
    IntCC {
        /// ==
        Eq => "eq",
        /// !=
        Ne => "ne",
        /// signed <
        Slt => "slt",
        /// signed <=
        Sle => "sle",
        /// signed >
        Sgt => "sgt",
        /// signed >=
        Sge => "sge",
        /// unsigned <
        Ult => "ult",
        /// unsigned <=
        Ule => "ule",
        /// unsigned >
        Ugt => "ugt",
        /// unsigned >=
        Uge => "uge",
    }
);

mnemonics!(
    /// Float comparison predicates (`fcmp.<cc>`); `o` = false if either is NaN, `u` = true.
    FloatCC {
        /// ordered ==
        Oeq => "oeq",
        /// ordered !=
        One => "one",
        /// ordered <
        Olt => "olt",
        /// ordered <=
        Ole => "ole",
        /// ordered >
        Ogt => "ogt",
        /// ordered >=
        Oge => "oge",
        /// unordered !=
        Une => "une",
        /// neither is NaN
        Ord => "ord",
        /// either is NaN
        Uno => "uno",
    }
);

mnemonics!(
    /// Conversions to the result type, lane-wise (same lane count). `fptosi`/`fptoui` saturate and
    /// map NaN to 0 (LLVM `fptosi.sat`, Cranelift `fcvt_to_sint_sat`). Float rounding is to
    /// nearest even. `bitcast` keeps the bits and needs equal total widths (`i32` ↔ `<2 x f16>`).
    CastOp {
        /// Zero-extend an integer.
        Zext => "zext",
        /// Sign-extend an integer.
        Sext => "sext",
        /// Truncate an integer.
        Trunc => "trunc",
        /// Widen a float (f16 → f32).
        Fpext => "fpext",
        /// Narrow a float (f32 → f16).
        Fptrunc => "fptrunc",
        /// Signed int → float.
        Sitofp => "sitofp",
        /// Unsigned int → float.
        Uitofp => "uitofp",
        /// Float → signed int (saturating).
        Fptosi => "fptosi",
        /// Float → unsigned int (saturating).
        Fptoui => "fptoui",
        /// Reinterpret the bits.
        Bitcast => "bitcast",
    }
);

mnemonics!(
    /// Horizontal reductions of a vector to its lane type (`reduce.<op>`). The order is fixed:
    /// the upper half is combined into the lower half until one lane is left, so float results
    /// are the same on every backend.
    ReduceOp {
        /// Sum (int wrapping or float).
        Add => "add",
        /// Float minimum (NaN-propagating).
        Min => "min",
        /// Float maximum (NaN-propagating).
        Max => "max",
        /// Signed minimum.
        Smin => "smin",
        /// Signed maximum.
        Smax => "smax",
        /// Unsigned minimum.
        Umin => "umin",
        /// Unsigned maximum.
        Umax => "umax",
    }
);

/// Alignment and cache policy of a memory access.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct MemFlags {
    /// Guaranteed alignment of the address in bytes (a power of two).
    pub align: u32,
    /// Cache policy.
    pub hint: CacheHint,
}

/// An operation. See the module docs for operand conventions.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum Op {
    /// `const LIT : T` — lane bits; one entry for a scalar or a splat, `lanes` entries otherwise.
    Const(Vec<u64>),
    /// `op a : T`.
    Unary(UnaryOp),
    /// `op a, b : T`.
    Binary(BinaryOp),
    /// `fma a, b, c : T` — a·b + c rounded once (float; `<2 x f16>` is `hfma2`).
    Fma,
    /// `icmp.cc a, b : i1 | <N x i1>`.
    Icmp(IntCC),
    /// `fcmp.cc a, b : i1 | <N x i1>`.
    Fcmp(FloatCC),
    /// `select c, a, b : T` — c is `i1` or a lane mask of T's shape.
    Select,
    /// `cast a : T`.
    Cast(CastOp),
    /// `splat s : <N x T>`.
    Splat,
    /// `extract v, LANE : T`.
    Extract(u8),
    /// `insert v, s, LANE : <N x T>`.
    Insert(u8),
    /// `shuffle a, b, [i, ...] : <M x T>` — lane i of the result is lane `mask[i]` of a‖b.
    Shuffle(Vec<u8>),
    /// `reduce.op v : T`.
    Reduce(ReduceOp),
    /// `load p[i] align A [hint] : T` — T is the element type or a vector of it.
    Load(MemFlags),
    /// `store v, p[i] align A [hint]`.
    Store(MemFlags),
    /// `offset p, i : ptr<..>` — p advanced by i elements.
    Offset,
    /// `alloc.shared N : ptr<shared, T>` / `alloc.local N` — N elements, kernel top level only.
    Alloc(MemSpace, u32),
    /// `atomic.add p[i], v : T` — returns the old value.
    AtomicAdd,
    /// `prefetch p[i]` — a hint; no effect on values.
    Prefetch,
    /// `for i = lo to hi step s iter(a = init, ...) [unroll U] : T... { ... yield ... }` —
    /// `i` runs while `i < hi` (signed), step > 0; results are the final carried values.
    For {
        /// Unroll hint (1 = none).
        unroll: u32,
    },
    /// `if c : T... { ... yield ... } else { ... yield ... }`.
    If,
    /// `axis NAME : i32`.
    Axis(Axis),
    /// `barrier` — all threads of a GPU block (`bar.sync 0`); a no-op on the CPU.
    Barrier,
    /// `shfl.mode v, x : T`.
    Shfl(ShflMode),
    /// `prmt a, b, sel : i32` — PTX byte permute: result byte i is byte `sel[4i..4i+3] & 7`
    /// of b‖a (a = bytes 0–3); bit 3 of the selector nibble replicates that byte's sign.
    Prmt,
    /// `swizzle table, idx : <16 x i8>` — `pshufb`-style lookup: `table[idx[i]]`, 0 when
    /// `idx[i] ≥ 16` (Cranelift `swizzle`).
    Swizzle,
    /// `madd.kind a, b : <N x T>` — see [`Madd`].
    Madd(Madd),
    /// `dp4a.kind a, b, acc : i32`.
    Dp4a(Dp4a),
    /// RESERVED for tensor-core matrix multiply-accumulate (`mma.sync` / `wgmma`). It parses and
    /// prints so templates can be drafted, but the verifier rejects it as unsupported until the
    /// fragment layouts are specified and the interpreter implements them.
    Mma(MmaShape),
}

impl Op {
    /// Does this op own regions (blocks)?
    pub fn has_regions(&self) -> bool {
        matches!(self, Op::For { .. } | Op::If)
    }
    /// The mnemonic, including the sub-op (`icmp.slt`, `shfl.xor`).
    pub fn mnemonic(&self) -> String {
        match self {
            Op::Const(_) => "const".into(),
            Op::Unary(u) => u.name().into(),
            Op::Binary(b) => b.name().into(),
            Op::Fma => "fma".into(),
            Op::Icmp(c) => format!("icmp.{}", c.name()),
            Op::Fcmp(c) => format!("fcmp.{}", c.name()),
            Op::Select => "select".into(),
            Op::Cast(c) => c.name().into(),
            Op::Splat => "splat".into(),
            Op::Extract(_) => "extract".into(),
            Op::Insert(_) => "insert".into(),
            Op::Shuffle(_) => "shuffle".into(),
            Op::Reduce(r) => format!("reduce.{}", r.name()),
            Op::Load(_) => "load".into(),
            Op::Store(_) => "store".into(),
            Op::Offset => "offset".into(),
            Op::Alloc(m, _) => format!("alloc.{}", m.name()),
            Op::AtomicAdd => "atomic.add".into(),
            Op::Prefetch => "prefetch".into(),
            Op::For { .. } => "for".into(),
            Op::If => "if".into(),
            Op::Axis(_) => "axis".into(),
            Op::Barrier => "barrier".into(),
            Op::Shfl(m) => format!("shfl.{}", m.name()),
            Op::Prmt => "prmt".into(),
            Op::Swizzle => "swizzle".into(),
            Op::Madd(m) => format!("madd.{}", m.name()),
            Op::Dp4a(d) => format!("dp4a.{}", d.name()),
            Op::Mma(s) => format!("mma.{}", s.name()),
        }
    }
    /// Is this op only meaningful on a GPU target?
    pub fn gpu_only(&self) -> bool {
        match self {
            Op::Shfl(_) | Op::Prmt | Op::Dp4a(_) | Op::Mma(_) => true,
            Op::Axis(a) => *a != Axis::CpuChunk,
            _ => false,
        }
    }
    /// Is this op only meaningful on a CPU target?
    pub fn cpu_only(&self) -> bool {
        matches!(self, Op::Swizzle | Op::Madd(_) | Op::Axis(Axis::CpuChunk))
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.mnemonic())
    }
}
