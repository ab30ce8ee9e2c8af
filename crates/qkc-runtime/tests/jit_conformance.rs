//! The qlinear conformance suite (every scheme × rotation × outliers × epilogues, from
//! crates/qkc-kernel/tests/lower_qlinear_common) on the Cranelift JIT: the same cases the KIR
//! interpreter passes, now as native code.

// formatted with qkc-kernel's rustfmt.toml, where it lives
#[rustfmt::skip]
#[path = "../../qkc-kernel/tests/lower_qlinear_common/mod.rs"]
mod common;
mod executors;
// formatted with qkc-kernel's rustfmt.toml, where it lives
#[rustfmt::skip]
#[path = "../../qkc-kernel/tests/lower_ops_cases/mod.rs"]
mod ops_cases;

use common::{conformance_cases, run_suite, Case, Executor};
use qkc_kernel::interp::Arg;
use qkc_kernel::lower::{LowerTarget, Lowered};

struct JitEx(executors::Jit);

impl Executor for JitEx {
    fn target(&self) -> LowerTarget {
        self.0.target()
    }
    fn run(
        &self,
        l: &Lowered,
        args: Vec<Arg>,
        out: usize,
        out_f16: bool,
    ) -> Result<Vec<f32>, String> {
        self.0.run(l, args, out, out_f16)
    }
}

#[test]
fn qlinear_conformance_jit() {
    run_suite(&conformance_cases(), &JitEx(executors::Jit(3)), 0x9e37_79b9);
}

#[test]
fn qlinear_large_k_jit() {
    run_suite(
        &[Case::new("int4:g64", 5, 11008, 2)],
        &JitEx(executors::Jit(2)),
        0x5eed,
    );
}

struct JitOps(executors::Jit);

impl ops_cases::Executor for JitOps {
    fn target(&self) -> LowerTarget {
        self.0.target()
    }
    fn run(&mut self, l: &Lowered, args: &mut [Arg]) -> Result<(), String> {
        self.0.run_in_place(l, args)
    }
}

/// Every non-qlinear op (elementwise, RMSNorm, RoPE, softmax, attention with a KV cache, ...)
/// as native code, at T = 1..=8.
#[test]
fn ops_conformance_jit() {
    for t in [None, Some(1), Some(5), Some(8)] {
        for mut c in ops_cases::cases() {
            if let Some(t) = t {
                if !c.qir.contains("[T") {
                    continue;
                }
                c.runs = if c.qir.contains("cache") {
                    vec![t, 1]
                } else {
                    vec![t]
                };
            }
            ops_cases::check(
                &c,
                &mut JitOps(executors::Jit(3)),
                0x0b5e ^ t.unwrap_or(0) as u64,
            );
        }
    }
}
