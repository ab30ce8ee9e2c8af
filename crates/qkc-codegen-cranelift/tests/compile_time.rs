//! Compile time per kernel (KIR → CLIF, then Cranelift to machine code in a JITModule), printed,
//! not asserted (issue 5's target is ≤ 10 ms per kernel; shared machines are noisy). Shapes are
//! the headline layer's (4096×14336): shapes are baked in as constants, so code size does not
//! grow with them.

mod common;

use std::time::Instant;

use common::instantiate;
use qkc_codegen_cranelift::JitKernel;
use qkc_kernel::template::Args;

#[test]
fn compile_time_per_kernel() {
    let g = |k: i64, n: i64| {
        Args::new()
            .int("K", k)
            .int("N", n)
            .int("GROUP", 128)
            .int("CHUNKS", 64)
    };
    let kernels = [
        (
            "gemv_u4_cpu",
            g(4096, 14336)
                .snippet("decode", "decode_u4")
                .snippet("epilogue", "epilogue_none"),
        ),
        (
            "gemv_u4_cpu_q8",
            g(4096, 14336)
                .snippet("split", "split_u4_bytes")
                .snippet("epilogue", "epilogue_none"),
        ),
        (
            "gemv_u4_cpu",
            g(4096, 14336)
                .snippet("decode", "decode_u4")
                .snippet("epilogue", "epilogue_silu"),
        ),
        (
            "silu_cpu",
            Args::new()
                .int("N", 14336)
                .int("CHUNKS", 8)
                .snippet("exp2", "exp2_poly"),
        ),
        (
            "rmsnorm_cpu",
            Args::new()
                .int("D", 4096)
                .int("M", 1)
                .float("EPS", 1e-5)
                .int("CHUNKS", 1),
        ),
    ];
    // warm-up: the first compile pays for lazily initialized ISA tables
    let _ = JitKernel::compile(&instantiate(kernels[3].0, &kernels[3].1)).expect("compile");
    for (name, args) in &kernels {
        let k = instantiate(name, args);
        let reps = 5;
        let mut best = f64::MAX;
        let mut last = None;
        for _ in 0..reps {
            let t = Instant::now();
            let j = JitKernel::compile(&k).expect("compile");
            best = best.min(t.elapsed().as_secs_f64() * 1e3);
            last = Some(j);
        }
        let j = last.expect("compiled");
        let d = &j.defined;
        eprintln!(
            "compile {name:<16} best of {reps}: {best:6.2} ms total (lower {:.2} ms, cranelift {:.2} ms), {} B code",
            d.lower_time.as_secs_f64() * 1e3,
            d.compile_time.as_secs_f64() * 1e3,
            d.code_bytes
        );
    }
}
