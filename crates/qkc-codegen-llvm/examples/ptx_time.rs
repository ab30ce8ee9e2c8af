//! Compile time per kernel: every GPU template (a few shapes each) → PTX for sm_90, timed
//! (the median of several runs, after one warm-up), printed in ms per kernel.
//!
//! `cargo run --release -p qkc-codegen-llvm --example ptx_time` (target: ≤ 150 ms per kernel).

use std::time::Instant;

use qkc_codegen_llvm::{compile_ptx, PtxOptions};
use qkc_kernel::template::{builtin, Args};

fn main() {
    let lib = match builtin() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("templates: {e}");
            std::process::exit(1);
        }
    };
    let gemv = |k: i64, n: i64, g: i64, w: i64| {
        Args::new()
            .int("K", k)
            .int("N", n)
            .int("GROUP", g)
            .int("WARPS", w)
    };
    let cases: Vec<(&str, Args)> = vec![
        (
            "gemv_u4_gpu",
            gemv(256, 64, 128, 4)
                .snippet("dequant", "dequant_u4_h2")
                .snippet("epilogue", "epilogue_none"),
        ),
        (
            "gemv_u4_gpu",
            gemv(4096, 14336, 128, 4)
                .snippet("dequant", "dequant_u4_h2")
                .snippet("epilogue", "epilogue_silu"),
        ),
        (
            "gemv_u4_gpu_f32",
            gemv(4096, 4096, 128, 4)
                .snippet("decode", "decode_u4")
                .snippet("epilogue", "epilogue_none"),
        ),
        (
            "silu_gpu",
            Args::new()
                .int("N", 14336)
                .int("THREADS", 256)
                .snippet("exp2", "exp2_op"),
        ),
        (
            "silu_gpu",
            Args::new()
                .int("N", 14336)
                .int("THREADS", 256)
                .snippet("exp2", "exp2_poly"),
        ),
        (
            "rmsnorm_gpu",
            Args::new()
                .int("D", 4096)
                .int("M", 1)
                .float("EPS", 1e-5)
                .int("THREADS", 256),
        ),
    ];
    let opts = PtxOptions::default();
    let mut worst = 0.0f64;
    for (name, args) in cases {
        let k = match lib.instantiate(name, &args) {
            Ok(i) => i.kernel,
            Err(e) => {
                eprintln!("{name}: {e}");
                std::process::exit(1);
            }
        };
        if let Err(e) = compile_ptx(&k, &opts) {
            eprintln!("{name}: {e}");
            std::process::exit(1);
        }
        let mut ms: Vec<f64> = (0..7)
            .map(|_| {
                let t = Instant::now();
                let _ = compile_ptx(&k, &opts);
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        ms.sort_by(f64::total_cmp);
        let med = ms[ms.len() / 2];
        worst = worst.max(med);
        println!(
            "{:<18} {:>4} insts  {med:>7.2} ms/kernel (min {:.2})",
            k.name,
            k.num_insts(),
            ms[0]
        );
    }
    println!("worst median: {worst:.2} ms/kernel (target ≤ 150 ms)");
}
