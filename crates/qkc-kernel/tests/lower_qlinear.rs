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
        let e = lower(&g, id, &LowerOptions { target, tokens: 1 }).expect_err("K = 192 with groups of 128");
        let m = e.to_string();
        assert!(m.contains("K = 192") && m.contains("multiple of 128"), "{m}");
    }
}
