//! Golden CLIF of one kernel (int4 GEMV with integer dot products), ids renumbered, so a change
//! in the translation shows up as a reviewable diff (`cargo insta review`; never accept blindly).

mod common;

use common::instantiate;
use qkc_kernel::template::Args;

#[test]
fn clif_gemv_u4_cpu_q8() {
    let args = Args::new()
        .int("K", 256)
        .int("N", 8)
        .int("GROUP", 64)
        .int("CHUNKS", 2);
    let k = instantiate(
        "gemv_u4_cpu_q8",
        &args
            .snippet("split", "split_u4_bytes")
            .snippet("epilogue", "epilogue_none"),
    );
    let clif = qkc_codegen_cranelift::clif_text(&k).expect("clif");
    insta::assert_snapshot!("gemv_u4_cpu_q8_k256_n8_g64", clif);
}
