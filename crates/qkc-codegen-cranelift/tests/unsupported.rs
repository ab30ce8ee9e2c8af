//! What the backend does not translate is a clear `Unsupported` error, never a panic.

use qkc_codegen_cranelift::{CodegenError, JitKernel};
use qkc_kernel::template::{builtin, Args};

fn expect_unsupported(r: Result<JitKernel, CodegenError>, what: &str) {
    match r {
        Err(e @ CodegenError::Unsupported { .. }) => eprintln!("{what}: {e}"),
        Err(e) => panic!("{what}: expected Unsupported, got {e}"),
        Ok(_) => panic!("{what}: expected Unsupported, got code"),
    }
}

#[test]
fn narrow_vectors_are_unsupported() {
    let src = "kernel @k(%x: ptr<global, f32> noalias readonly len(2), %y: ptr<global, f32> noalias writeonly len(2)) cpu chunks(1) simd(128) {
  %c0 = const 0 : i32
  %v = load %x[%c0] align 8 : <2 x f32>
  %w = add %v, %v : <2 x f32>
  store %w, %y[%c0] align 8
}";
    let k = qkc_kernel::parse(src).expect("parse");
    expect_unsupported(JitKernel::compile(&k), "<2 x f32>");
}

#[test]
fn gpu_kernels_are_unsupported() {
    let args = Args::new()
        .int("K", 256)
        .int("N", 4)
        .int("GROUP", 64)
        .int("WARPS", 2);
    let k = builtin()
        .expect("templates")
        .instantiate(
            "gemv_u4_gpu",
            &args
                .snippet("dequant", "dequant_u4_h2")
                .snippet("epilogue", "epilogue_none"),
        )
        .expect("instantiate")
        .kernel;
    expect_unsupported(JitKernel::compile(&k), "gemv_u4_gpu");
}
