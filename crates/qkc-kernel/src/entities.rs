//! Typed ids for the entities of a kernel: SSA values, instructions and blocks (region bodies).
//!
//! Ids index arenas inside [`crate::Kernel`]; they are never raw `usize`s in public APIs. Their
//! `Display` is the text-IR spelling of an unnamed entity (`v12`, `inst3`, `block1`), as in
//! Cranelift's `entity_impl!`.

use std::fmt;

macro_rules! entity {
    ($(#[$m:meta])* $name:ident, $prefix:literal) => {
        $(#[$m])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
        pub struct $name(pub u32);

        impl $name {
            /// The arena index.
            #[inline]
            pub fn index(self) -> usize {
                self.0 as usize
            }
            /// The id for an arena index.
            #[inline]
            pub fn new(index: usize) -> Self {
                $name(u32::try_from(index).unwrap_or(u32::MAX))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }
    };
}

entity!(
    /// An SSA value: a kernel parameter, an instruction result or a block argument.
    Value,
    "v"
);
entity!(
    /// An instruction.
    Inst,
    "inst"
);
entity!(
    /// A block: the body of the kernel or of a region (`for`, `if` arm), with arguments and a
    /// `yield`.
    Block,
    "block"
);
