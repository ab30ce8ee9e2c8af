//! GPU conformance: the qlinear suite (crates/qkc-kernel/tests/lower_qlinear_common) with PTX
//! from the LLVM backend, launched through cudarc on device 0. A custom harness, so that on a
//! machine without CUDA it prints "skipped: no CUDA device (...)" instead of passing silently.

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

struct GpuEx(executors::Gpu);

impl Executor for GpuEx {
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

struct GpuOps<'a>(&'a executors::Gpu);

impl ops_cases::Executor for GpuOps<'_> {
    fn target(&self) -> LowerTarget {
        self.0.target()
    }
    fn run(&mut self, l: &Lowered, args: &mut [Arg]) -> Result<(), String> {
        self.0.run_in_place(l, args)
    }
}

fn main() {
    let gpu = match executors::Gpu::open() {
        Ok(g) => g,
        Err(why) => {
            println!("test cuda::qlinear_conformance ... skipped: no CUDA device ({why})");
            return;
        }
    };
    println!(
        "device: {} (sm_{}, {} SMs)",
        gpu.0.name, gpu.0.sm, gpu.0.sms
    );
    let cases = ops_cases::cases();
    for c in &cases {
        ops_cases::check(c, &mut GpuOps(&gpu), 0x0b5e);
    }
    println!("test cuda::ops_conformance ... ok ({} cases)", cases.len());
    let ex = GpuEx(gpu);
    let mut cases = conformance_cases();
    cases.push(Case::new("int4:g64", 5, 11008, 1));
    run_suite(&cases, &ex, 0x51ab_1e5e);
    println!(
        "test cuda::qlinear_conformance ... ok ({} cases)",
        cases.len()
    );
}
