//! `qlinear` lowering conformance through the KIR interpreter, CPU and GPU kernels, against an
//! f64 reference of the graph interpreter's meaning (see `lower_qlinear_common`).

mod common;
mod lower_qlinear_common;

use common::seed;
use lower_qlinear_common::{conformance_cases, run_suite, Case, Interp};
use qkc_kernel::lower::{lower, LowerOptions, LowerTarget};

const CPU: LowerTarget = LowerTarget::Cpu { chunks: 3 };
const GPU: LowerTarget = LowerTarget::Gpu { sm: 90 };

#[test]
fn conformance_cpu() {
    run_suite(&conformance_cases(), &Interp(CPU), seed("qlinear cpu"));
}

#[test]
fn conformance_gpu() {
    run_suite(&conformance_cases(), &Interp(GPU), seed("qlinear gpu"));
}

/// K = 11008 = 172·64 (Llama down_proj), int4 g64, small N.
#[test]
fn large_k_int4_g64() {
    let cases = [Case::new("int4:g64", 3, 11008, 1)];
    run_suite(&cases, &Interp(CPU), seed("qlinear 11008 cpu"));
    run_suite(&cases, &Interp(GPU), seed("qlinear 11008 gpu"));
}

#[test]
fn k_not_a_multiple_of_the_group_is_rejected() {
    let src = "graph @g {\n  %x = input \"x\" : f32[T, 192]\n  %w = weight \"w\" : q<int4:g128>[8, 192]\n  %y = qlinear(%x, %w) : f32[T, 8]\n  return %y\n}\n";
    let g = match qkc_ir::parse(src) {
        Ok(g) => g,
        Err(e) => {
            // the graph verifier may already refuse it; then the message must name the rule
            let m = format!("{e:?}");
            assert!(m.contains("multiple of 128"), "{m}");
            return;
        }
    };
    let id = g.find("y").expect("y");
    for target in [CPU, GPU] {
        let e = lower(&g, id, &LowerOptions { target, tokens: 1, a8g_f16_stats: false })
            .expect_err("K = 192 with groups of 128");
        let m = e.to_string();
        assert!(m.contains("K = 192") && m.contains("multiple of 128"), "{m}");
    }
}

/// The grouped-activation fast paths are taken for exactly the nodes they fit.
#[test]
fn grouped_int8_activations_route_to_the_a8g_templates() {
    let src = |scheme: &str, attrs: &str| {
        format!("graph @g {{\n  %x = input \"x\" : f32[T, 576]\n  %w = weight \"w\" : q<{scheme}>[10, 576]\n  %y = qlinear(%x, %w) {{{attrs}}} : f32[T, 10]\n  return %y\n}}\n")
    };
    let template = |scheme: &str, attrs: &str, target| {
        let g = qkc_ir::parse(&src(scheme, attrs)).expect("parse");
        lower(&g, g.find("y").expect("y"), &LowerOptions { target, tokens: 1, a8g_f16_stats: false })
            .expect("lower")
            .template
    };
    let a8g = "act_bits = 8, act_group = 32";
    assert_eq!(template("int4:g32:min", a8g, CPU), "gemv_u4_cpu_a8g");
    assert_eq!(template("int4:g32", a8g, CPU), "gemv_u4_cpu_a8g");
    assert_eq!(template("int4:g64:asym", a8g, CPU), "gemv_u4_cpu_a8g");
    assert_eq!(template("int8:g32", a8g, CPU), "gemv_u8_cpu_a8g");
    // per-token activations keep the a8 template; other grids and the GPU the generic kernels
    assert_eq!(template("int4:g64", "act_bits = 8", CPU), "gemv_u4_cpu_a8");
    assert_ne!(template("int4:g64", a8g, CPU), "gemv_u4_cpu_a8");
    assert_eq!(template("int4:g32", "act_bits = 8, act_group = 64", CPU), "qlinear_cpu");
    assert_eq!(template("int4:g32", "act_bits = 8, act_sym = false, act_group = 32", CPU), "qlinear_cpu");
    assert_ne!(template("int4:g32:min", a8g, GPU), "gemv_u4_cpu_a8g");
}

/// A group that does not divide K is refused with both numbers named.
#[test]
fn act_group_not_dividing_k_is_rejected() {
    let src = "graph @g {\n  %x = input \"x\" : f32[T, 96]\n  %w = weight \"w\" : q<int4:g32>[8, 96]\n  %y = qlinear(%x, %w) {act_bits = 8, act_group = 64} : f32[T, 8]\n  return %y\n}\n";
    let g = qkc_ir::parse(src).expect("parse");
    let m = format!("{:?}", qkc_ir::verify::verify(&g).expect_err("96 % 64 != 0"));
    assert!(m.contains("64") && m.contains("96"), "{m}");
    let e =
        lower(&g, g.find("y").expect("y"), &LowerOptions { target: CPU, tokens: 1, a8g_f16_stats: false })
            .expect_err("refused");
    let m = e.to_string();
    assert!(m.contains("64") && m.contains("K = 96"), "{m}");
}
