//! The passes, one file each. Every rewrite states its identity beside its pattern.

pub mod canonicalize;
pub mod cse;
pub mod dce;
pub mod fuse_act_quant;
pub mod fuse_dequant;
pub mod fuse_epilogue;
pub mod fuse_outliers;
pub mod fuse_rope;
pub mod fuse_rotation;
