//! qkc graph IR.
