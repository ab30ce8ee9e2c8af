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
            for t in [
                "ops_conformance",
                "decode_graph_replay",
                "qlinear_conformance",
            ] {
                println!("test cuda::{t} ... skipped: no CUDA device ({why})");
            }
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
    match decode_replay(&gpu) {
        Ok(msg) => println!("test cuda::decode_graph_replay ... ok ({msg})"),
        Err(e) => {
            println!("test cuda::decode_graph_replay ... FAILED: {e}");
            std::process::exit(1);
        }
    }
    let ex = GpuEx(gpu);
    let mut cases = conformance_cases();
    cases.push(Case::new("int4:g64", 5, 11008, 1));
    run_suite(&cases, &ex, 0x51ab_1e5e);
    println!(
        "test cuda::qlinear_conformance ... ok ({} cases)",
        cases.len()
    );
}

/// `ir/llama_block.qir` (fused; int4 linears, GQA attention with a KV cache and RoPE, Hadamard,
/// CSR outliers) decoded token by token on the GPU twice, kernel by kernel and replayed as one
/// captured CUDA graph (`GpuProgram::graph`), each step's output against the f64 interpreter on
/// fresh random inputs (never zeros), with every written buffer poisoned before each run (a
/// replay included: the graph is captured on the first run and the poison fills come before
/// each launch of it), so an element a kernel skips shows up as NaN and fails.
fn decode_replay(gpu: &executors::Gpu) -> Result<String, String> {
    use qkc_codegen_llvm::{compile_ptx, PtxOptions};
    use qkc_ir::interp::{Interpreter, Tensor, Weights};
    use qkc_runtime::cuda::GpuProgram;
    use rand::{Rng, SeedableRng};
    use std::collections::HashMap;

    let src = include_str!("../../../ir/llama_block.qir");
    let mut g = qkc_ir::parse(src).map_err(|e| format!("{e:?}"))?;
    qkc_passes::default_pipeline(qkc_passes::Options::default())
        .run(&mut g)
        .map_err(|e| e.to_string())?;
    let w = Weights::Seed(0x5eed);
    let cuda = gpu.0.clone();
    let sm = cuda.sm;
    let program = |graph: bool| -> Result<GpuProgram, String> {
        let mut p = GpuProgram::new(cuda.clone(), &g, &w, 1, sm, &|l| {
            compile_ptx(&l.kernel, &PtxOptions::sm(sm)).map_err(|e| e.to_string())
        })
        .map_err(|e| e.to_string())?;
        p.graph = graph;
        p.sync_each = false;
        // every written buffer is filled with NaN bytes before each run, replays included
        p.poison = true;
        Ok(p)
    };
    let (mut plain, mut replay) = (program(false)?, program(true)?);
    let mut interp = Interpreter::new(&g, &w).map_err(|e| e.to_string())?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut worst = 0f64;
    let steps = 8;
    for step in 0..steps {
        let hidden: Vec<f64> = (0..256).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let mut inputs = HashMap::new();
        inputs.insert("hidden".to_string(), Tensor::new(vec![1, 256], hidden));
        inputs.insert("pos".to_string(), Tensor::new(vec![1], vec![step as f64]));
        let want = interp.run(&inputs).map_err(|e| e.to_string())?;
        let a = plain.run(&inputs).map_err(|e| e.to_string())?;
        let b = replay.run(&inputs).map_err(|e| e.to_string())?;
        for ((name, r), ((_, x), (_, y))) in want.iter().zip(a.iter().zip(&b)) {
            let scale = r.data.iter().fold(0f64, |m, v| m.max(v.abs())).max(1e-30);
            for (got, label) in [(x, "kernel by kernel"), (y, "graph replay")] {
                if got.data.len() != r.data.len() {
                    return Err(format!(
                        "step {step}, `{name}` ({label}): {} values, want {}",
                        got.data.len(),
                        r.data.len()
                    ));
                }
                // a NaN (a poisoned element never written) fails here: f64::max would skip it
                if let Some(i) = got.data.iter().position(|v| !v.is_finite()) {
                    return Err(format!(
                        "step {step}, `{name}` ({label}): element {i} is {}",
                        got.data[i]
                    ));
                }
                let err = got
                    .data
                    .iter()
                    .zip(&r.data)
                    .fold(0f64, |m, (g, r)| m.max((g - r).abs()))
                    / scale;
                if err > 1e-2 {
                    return Err(format!(
                        "step {step}, `{name}` ({label}): max rel err {err:e} > 1e-2"
                    ));
                }
                worst = worst.max(err);
            }
        }
    }
    Ok(format!(
        "{steps} steps, max rel err {worst:.1e}, tolerance 1e-2 (f16 activations)"
    ))
}
