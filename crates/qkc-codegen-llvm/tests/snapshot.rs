//! Snapshots of the translation of `gemv_u4_gpu` (K=256, N=64, GROUP=128, WARPS=4): the PTX for
//! sm_90 and the LLVM IR before optimization.

mod common;

use qkc_codegen_llvm::{llvm_ir, PtxOptions};
use qkc_kernel::template::Args;

fn gemv() -> qkc_kernel::Kernel {
    common::instantiate(
        "gemv_u4_gpu",
        &Args::new()
            .int("K", 256)
            .int("N", 64)
            .int("GROUP", 128)
            .int("WARPS", 4)
            .snippet("dequant", "dequant_u4_h2")
            .snippet("epilogue", "epilogue_none"),
    )
}

#[test]
fn gemv_u4_gpu_ptx() {
    insta::assert_snapshot!(common::ptx(&gemv(), 90));
}

#[test]
fn gemv_u4_gpu_llvm_ir() {
    insta::assert_snapshot!(llvm_ir(&gemv(), &PtxOptions::default()).expect("llvm ir"));
}
