//! What the backend refuses, and how it says so: never a panic.

mod common;

use qkc_codegen_llvm::{compile_ptx, llvm_ir, LlvmError, PtxOptions};

#[test]
fn unverified_kernels_are_rejected() {
    let k = qkc_kernel::parse(
        "kernel @bad(%p: ptr<global, f32> readonly) gpu grid(1) block(32) {\n  %a = const 1 : i32\n  %f = const 1.0 : f32\n  store %f, %p[%a] align 4\n}\n",
    )
    .expect("parses");
    let e = compile_ptx(&k, &PtxOptions::default()).expect_err("unverified");
    assert!(matches!(e, LlvmError::Kernel { .. }), "{e}");
    assert!(e.to_string().contains("@bad"), "{e}");
}

#[test]
fn bad_sm_and_cpu_kernels_are_errors() {
    let gpu = common::parse("kernel @k(%p: ptr<global, f32>) gpu grid(1) block(32) {\n  %t = axis block.x : i32\n  %f = const 1.0 : f32\n  store %f, %p[%t] align 4\n}\n");
    let e = compile_ptx(&gpu, &PtxOptions::sm(75)).expect_err("sm_75");
    assert!(matches!(e, LlvmError::Options(_)), "{e}");
    let cpu = common::parse("kernel @c(%p: ptr<global, f32>) cpu chunks(2) {\n  %t = axis cpu.chunk : i32\n  %f = const 1.0 : f32\n  store %f, %p[%t] align 4\n}\n");
    let e = compile_ptx(&cpu, &PtxOptions::default()).expect_err("cpu kernel");
    assert!(matches!(e, LlvmError::Unsupported { .. }), "{e}");
}

#[test]
fn f64_exp2_is_unsupported_not_a_panic() {
    let k = common::parse("kernel @e(%p: ptr<global, f64>) gpu grid(1) block(32) {\n  %t = axis block.x : i32\n  %x = load %p[%t] align 8 : f64\n  %y = exp2 %x : f64\n  store %y, %p[%t] align 8\n}\n");
    let e = compile_ptx(&k, &PtxOptions::default()).expect_err("f64 exp2");
    let msg = e.to_string();
    assert!(
        matches!(e, LlvmError::Unsupported { .. }) && msg.contains("exp2"),
        "{msg}"
    );
}

#[test]
fn artifact_carries_launch_params_and_key() {
    let k = common::parse("kernel @k(%p: ptr<global, f32> noalias writeonly len(64), %n: i32) gpu grid(2) block(32) {\n  %s = alloc.shared 32 : ptr<shared, f32>\n  %t = axis block.x : i32\n  %f = sitofp %n : f32\n  store %f, %s[%t] align 4\n  barrier\n  %v = load %s[%t] align 4 : f32\n  store %v, %p[%t] align 4\n}\n");
    let a90 = compile_ptx(&k, &PtxOptions::default()).expect("compiles");
    let a80 = compile_ptx(&k, &PtxOptions::sm(80)).expect("compiles");
    assert_eq!(a90.entry, "k");
    assert_eq!(
        a90.launch,
        qkc_kernel::LaunchConfig::Gpu {
            grid: [2, 1, 1],
            block: [32, 1, 1],
            shared_bytes: 128
        }
    );
    assert_eq!(a90.params.len(), 2);
    assert!(a90.params[0].write && !a90.params[0].read);
    assert_ne!(a90.key, a80.key, "the key hashes the options");
    assert_eq!(
        a90.key,
        compile_ptx(&k, &PtxOptions::default()).expect("again").key,
        "stable"
    );
    assert!(a90.codegen.contains("sm_90"), "{}", a90.codegen);
}

#[test]
fn unroll_hint_becomes_loop_metadata() {
    let k = common::parse("kernel @u(%p: ptr<global, f32>) gpu grid(1) block(32) {\n  %c0 = const 0 : i32\n  %c1 = const 1 : i32\n  %n = const 100 : i32\n  %z = const 0.0 : f32\n  %s = for %i = %c0 to %n step %c1 iter(%a = %z) unroll 4 : f32 {\n    %x = load %p[%i] align 4 : f32\n    %a1 = add %a, %x : f32\n    yield %a1\n  }\n  store %s, %p[%c0] align 4\n}\n");
    let ir = llvm_ir(&k, &PtxOptions::default()).expect("ir");
    assert!(ir.contains("!\"llvm.loop.unroll.count\", i32 4"), "{ir}");
}
