//! Every non-`qlinear` op lowered for the CPU and the GPU target and run by the KIR interpreter
//! against the f64 reference interpreter (cases in `lower_ops_cases`).

mod common;
mod lower_ops_cases;

use lower_ops_cases::{cases, check, KirInterp};
use qkc_kernel::lower::LowerTarget;

fn run_all(target: LowerTarget, what: &str) {
    let s = common::seed(what);
    let mut failures = Vec::new();
    for c in cases() {
        let r =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&c, &mut KirInterp(target), s)));
        if let Err(e) = r {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()));
            failures.push(format!("{}: {}", c.name, msg.unwrap_or_default()));
        }
    }
    assert!(failures.is_empty(), "{} case(s) failed:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn ops_on_cpu_target() {
    run_all(LowerTarget::Cpu { chunks: 3 }, "ops_on_cpu_target");
}

#[test]
fn ops_on_gpu_target() {
    run_all(LowerTarget::Gpu { sm: 90 }, "ops_on_gpu_target");
}
