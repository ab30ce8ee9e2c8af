//! KIR types: scalars, short vectors and pointers into a memory space.
//!
//! Integers are signless, as in LLVM and Cranelift: the op says whether it treats them as signed
//! (`ashr`, `sdiv`, `icmp.slt`, `sitofp`) or unsigned. `i1` is the boolean of comparisons. A
//! vector `<N x T>` is N lanes of scalar T (N a power of two, 2..=64); `<2 x f16>` is CUDA's
//! `half2`, `<16 x i8>` an SSE register. A pointer `ptr<global, f16>` names its memory space and
//! its element type; loads and stores index it in elements.

use std::fmt;

/// A scalar type.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub enum Scalar {
    /// Boolean (comparison results, conditions).
    I1,
    /// 8-bit integer.
    I8,
    /// 16-bit integer.
    I16,
    /// 32-bit integer.
    I32,
    /// 64-bit integer.
    I64,
    /// IEEE binary16.
    F16,
    /// bfloat16.
    Bf16,
    /// IEEE binary32.
    F32,
    /// IEEE binary64.
    F64,
}

impl Scalar {
    /// All scalars, in spelling order.
    pub const ALL: [Scalar; 9] = [
        Scalar::I1,
        Scalar::I8,
        Scalar::I16,
        Scalar::I32,
        Scalar::I64,
        Scalar::F16,
        Scalar::Bf16,
        Scalar::F32,
        Scalar::F64,
    ];

    /// Width in bits (`i1` is 1).
    pub fn bits(self) -> u32 {
        match self {
            Scalar::I1 => 1,
            Scalar::I8 => 8,
            Scalar::I16 | Scalar::F16 | Scalar::Bf16 => 16,
            Scalar::I32 | Scalar::F32 => 32,
            Scalar::I64 | Scalar::F64 => 64,
        }
    }
    /// Size in memory in bytes (`i1` takes a byte).
    pub fn bytes(self) -> u32 {
        self.bits().div_ceil(8)
    }
    /// Is this an integer type (including `i1`)?
    pub fn is_int(self) -> bool {
        matches!(self, Scalar::I1 | Scalar::I8 | Scalar::I16 | Scalar::I32 | Scalar::I64)
    }
    /// Is this a floating-point type?
    pub fn is_float(self) -> bool {
        !self.is_int()
    }
    /// The spelling.
    pub fn name(self) -> &'static str {
        match self {
            Scalar::I1 => "i1",
            Scalar::I8 => "i8",
            Scalar::I16 => "i16",
            Scalar::I32 => "i32",
            Scalar::I64 => "i64",
            Scalar::F16 => "f16",
            Scalar::Bf16 => "bf16",
            Scalar::F32 => "f32",
            Scalar::F64 => "f64",
        }
    }
    /// Parse a spelling.
    pub fn from_name(s: &str) -> Option<Scalar> {
        Scalar::ALL.into_iter().find(|t| t.name() == s)
    }
    /// Mask of the low `bits()` bits.
    pub fn mask(self) -> u64 {
        if self.bits() == 64 {
            u64::MAX
        } else {
            (1u64 << self.bits()) - 1
        }
    }
}

/// A memory space.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub enum MemSpace {
    /// Device (or host) memory visible to every thread: kernel buffers.
    Global,
    /// Memory shared by the threads of one GPU block (`__shared__`); on the CPU, memory private
    /// to one chunk.
    Shared,
    /// Memory private to one thread (registers or stack after promotion).
    Local,
}

impl MemSpace {
    /// The spelling.
    pub fn name(self) -> &'static str {
        match self {
            MemSpace::Global => "global",
            MemSpace::Shared => "shared",
            MemSpace::Local => "local",
        }
    }
    /// Parse a spelling.
    pub fn from_name(s: &str) -> Option<MemSpace> {
        [MemSpace::Global, MemSpace::Shared, MemSpace::Local].into_iter().find(|m| m.name() == s)
    }
}

/// A KIR type.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Type {
    /// A scalar.
    Scalar(Scalar),
    /// `<lanes x elem>`.
    Vector(Scalar, u8),
    /// `ptr<space, elem>`.
    Ptr(MemSpace, Scalar),
}

/// Shorthands used throughout the crate and its tests.
impl Type {
    /// `i1`.
    pub const I1: Type = Type::Scalar(Scalar::I1);
    /// `i8`.
    pub const I8: Type = Type::Scalar(Scalar::I8);
    /// `i16`.
    pub const I16: Type = Type::Scalar(Scalar::I16);
    /// `i32`.
    pub const I32: Type = Type::Scalar(Scalar::I32);
    /// `i64`.
    pub const I64: Type = Type::Scalar(Scalar::I64);
    /// `f16`.
    pub const F16: Type = Type::Scalar(Scalar::F16);
    /// `f32`.
    pub const F32: Type = Type::Scalar(Scalar::F32);
    /// `f64`.
    pub const F64: Type = Type::Scalar(Scalar::F64);

    /// Vector lanes are powers of two in this range.
    pub const MAX_LANES: u8 = 64;

    /// The lane (scalar) type of a scalar or vector; `None` for pointers.
    pub fn elem(self) -> Option<Scalar> {
        match self {
            Type::Scalar(s) | Type::Vector(s, _) => Some(s),
            Type::Ptr(..) => None,
        }
    }
    /// Number of lanes: 1 for scalars and pointers.
    pub fn lanes(self) -> u32 {
        match self {
            Type::Vector(_, n) => u32::from(n),
            _ => 1,
        }
    }
    /// Total width in bits (pointers count 64).
    pub fn bits(self) -> u32 {
        match self {
            Type::Scalar(s) => s.bits(),
            Type::Vector(s, n) => s.bits() * u32::from(n),
            Type::Ptr(..) => 64,
        }
    }
    /// Size in memory in bytes.
    pub fn bytes(self) -> u32 {
        match self {
            Type::Scalar(s) => s.bytes(),
            Type::Vector(s, n) => s.bytes() * u32::from(n),
            Type::Ptr(..) => 8,
        }
    }
    /// Is this an integer scalar or an integer vector?
    pub fn is_int(self) -> bool {
        self.elem().is_some_and(Scalar::is_int)
    }
    /// Is this a float scalar or a float vector?
    pub fn is_float(self) -> bool {
        self.elem().is_some_and(Scalar::is_float)
    }
    /// Is this a vector?
    pub fn is_vector(self) -> bool {
        matches!(self, Type::Vector(..))
    }
    /// Is this a pointer?
    pub fn is_ptr(self) -> bool {
        matches!(self, Type::Ptr(..))
    }
    /// The same shape with another lane type (`<4 x f32>` → `<4 x i1>`).
    pub fn with_elem(self, s: Scalar) -> Type {
        match self {
            Type::Vector(_, n) => Type::Vector(s, n),
            _ => Type::Scalar(s),
        }
    }
    /// Is a vector lane count allowed?
    pub fn valid_lanes(n: u32) -> bool {
        (2..=u32::from(Type::MAX_LANES)).contains(&n) && n.is_power_of_two()
    }
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for MemSpace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Type::Scalar(s) => write!(f, "{s}"),
            Type::Vector(s, n) => write!(f, "<{n} x {s}>"),
            Type::Ptr(m, s) => write!(f, "ptr<{m}, {s}>"),
        }
    }
}
