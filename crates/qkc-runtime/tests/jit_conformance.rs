//! The qlinear conformance suite (every scheme × rotation × outliers × epilogues, from
//! crates/qkc-kernel/tests/lower_qlinear_common) on the Cranelift JIT: the same cases the KIR
//! interpreter passes, now as native code.

#[path = "../../qkc-kernel/tests/lower_qlinear_common/mod.rs"]
mod common;
mod executors;

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
