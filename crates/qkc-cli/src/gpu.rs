//! `--target cuda` (run, bench) and `--target ptx` (compile to a directory).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use qkc_codegen_llvm::{compile_ptx, PtxOptions};
use qkc_ir::interp::{synth_inputs, Tensor, Weights};
use qkc_ir::{Graph, Op};
use qkc_kernel::lower::{LowerOptions, LowerTarget};
use qkc_kernel::{Artifact, Kernel, LaunchConfig};
use qkc_runtime::cuda::{cublas_fp16, read_ceiling, Cuda, GpuProgram};

use crate::native::{
    binding_text, drive, fuse, params_json, repeat_json, stages, BenchRow, Exec, Steps,
};
use crate::{display, fail, Reported};

impl Exec for GpuProgram {
    fn run(
        &mut self,
        inputs: &HashMap<String, Tensor>,
    ) -> Result<Vec<(String, Tensor)>, qkc_runtime::RuntimeError> {
        GpuProgram::run(self, inputs)
    }
    fn cached_tokens(&self) -> usize {
        GpuProgram::cached_tokens(self)
    }
}

fn ptx(k: &Kernel, sm: u32) -> Result<Artifact, String> {
    compile_ptx(k, &PtxOptions::sm(sm)).map_err(|e| e.to_string())
}

fn open() -> Result<Arc<Cuda>, Reported> {
    Cuda::open().map_err(|e| fail(format!("--target cuda: {e}")))
}

/// `qkc run --target cuda`.
pub fn run_cuda(path: &Path, g: &Graph, weights: &Weights, s: &Steps<'_>) -> Result<(), Reported> {
    let cuda = open()?;
    let fused = fuse(path, g)?;
    let sm = cuda.sm;
    let mut prog = GpuProgram::new(cuda.clone(), &fused, weights, s.batch, sm, &|l| {
        ptx(&l.kernel, sm)
    })
    .map_err(|e| fail(format!("{}: {e}", display(path))))?;
    let compile_ms: f64 = prog.kernels().iter().map(|k| k.compile_ms).sum();
    println!(
        "graph @{} on cuda ({}, sm_{sm}, PTX from LLVM 19), T = {}, {}, input seed {}",
        g.name, cuda.name, s.batch, s.source, s.input_seed
    );
    println!(
        "  {} kernels, {} launches per step; lowered, compiled to PTX and loaded ({compile_ms:.1} ms), packed in {:.1} ms",
        prog.kernels().len(),
        prog.launch_count(),
        prog.build_ms()
    );
    drive(path, g, weights, &mut prog, s)
}

/// `qkc bench --target cuda`.
pub fn bench_cuda(
    path: &Path,
    g: &Graph,
    weights: &Weights,
    batches: &[usize],
    json: Option<&Path>,
) -> Result<(), Reported> {
    let cuda = open()?;
    let fused = fuse(path, g)?;
    let sm = cuda.sm;
    let ceiling = read_ceiling(&cuda, 1 << 30, &|k| ptx(k, sm))
        .map_err(|e| fail(format!("read ceiling: {e}")))?;
    println!(
        "graph @{} on {} (sm_{sm}, {} SMs); read ceiling {ceiling:.0} GB/s (plain read kernel over 1 GiB, same run)",
        g.name, cuda.name, cuda.sms
    );
    println!("timing: CUDA events over CUDA-graph replay; weights rotate over copies > 200 MB (4× L2) so L2 never serves them");
    let mut rows = Vec::new();
    for &batch in batches {
        let mut prog = GpuProgram::new(cuda.clone(), &fused, weights, batch, sm, &|l| {
            ptx(&l.kernel, sm)
        })
        .map_err(|e| fail(format!("{}: {e}", display(path))))?;
        prog.sync_each = false;
        prog.prime(&synth_inputs(g, batch, 1, 0))
            .map_err(|e| fail(format!("{}: {e}", display(path))))?;
        println!("\nT = {batch}");
        println!(
            "{:<14} {:<24} {:>9} {:>12} {:>8} {:>8} {:>10} {:>8}",
            "value", "kernel", "µs", "bytes read", "GB/s", "ceiling", "cuBLAS µs", "speedup"
        );
        for i in 0..prog.launch_count() {
            let info = prog.launch_info(i).clone();
            let t = prog
                .bench_launch(i)
                .map_err(|e| fail(format!("%{}: {e}", info.value)))?;
            let k = &prog.kernels()[info.kernel];
            let bytes = k.lowered.bytes_read;
            let gbps = bytes as f64 / (t.us * 1e-6) / 1e9;
            // the cuBLAS fp16 baseline for qlinear layers: the same [N, K] weight in fp16
            let node = fused.nodes().find(|&id| fused.node(id).name == info.value);
            let shape = node.and_then(|id| match &fused.node(id).op {
                Op::Qlinear(_) => fused
                    .operand(id, "w")
                    .map(|w| fused.node(w).ty.shape().resolve(1)),
                _ => None,
            });
            let base = match shape.as_deref() {
                Some(&[n, kk]) => cublas_fp16(&cuda, n, kk, batch).ok().map(|b| b.us),
                _ => None,
            };
            println!(
                "%{:<13} {:<24} {:>9.2} {:>12} {:>8.0} {:>7.1}% {:>10} {:>8}",
                info.value,
                k.lowered.kernel.name,
                t.us,
                bytes,
                gbps,
                100.0 * gbps / ceiling,
                base.map_or("-".into(), |b| format!("{b:.2}")),
                base.map_or("-".into(), |b| format!("{:.2}x", b / t.us)),
            );
            rows.push(BenchRow {
                batch,
                value: info.value,
                kernel: k.lowered.kernel.name.clone(),
                template: k.lowered.template.clone(),
                median_us: t.us,
                bytes,
                gbps,
                ceiling_fraction: gbps / ceiling,
                baseline_us: base,
            });
        }
    }
    if let Some(out) = json {
        let doc = serde_json::json!({
            "graph": g.name, "target": "cuda", "device": cuda.name, "sm": sm,
            "read_ceiling_gbps": ceiling, "rows": rows,
        });
        let s = serde_json::to_string_pretty(&doc).map_err(|e| fail(format!("json: {e}")))?;
        std::fs::write(out, s + "\n")
            .map_err(|e| fail(format!("{}: cannot write: {e}", out.display())))?;
    }
    Ok(())
}

/// `qkc compile --target ptx -o DIR`: one .ptx per kernel, a manifest and a C header.
pub fn compile_ptx_dir(
    path: &Path,
    g: &Graph,
    batch: usize,
    sm: u32,
    out: &Path,
) -> Result<(), Reported> {
    let fused = fuse(path, g)?;
    let opts = LowerOptions {
        target: LowerTarget::Gpu { sm },
        tokens: batch,
        a8g_f16_stats: false,
    };
    std::fs::create_dir_all(out.join("consts"))
        .map_err(|e| fail(format!("{}: cannot create: {e}", out.display())))?;
    let mut decls = String::new();
    let mut manifest = Vec::new();
    let mut kernels = 0;
    for st in stages(path, &fused, &opts)? {
        if let Some(sym) = &st.same_as {
            let mut r = repeat_json(&fused, &st, sym);
            r["entry"] = r["symbol"].take();
            manifest.push(r);
            continue;
        }
        kernels += 1;
        let l = &st.lowered;
        let sym = l.kernel.name.clone();
        let value = &st.value;
        let art =
            ptx(&l.kernel, sm).map_err(|e| fail(format!("{}: %{value}: {e}", display(path))))?;
        let qkc_kernel::Code::Ptx(code) = &art.code else {
            return Err(fail("the LLVM backend returned no PTX"));
        };
        let file = format!("{sym}.ptx");
        std::fs::write(out.join(&file), code)
            .map_err(|e| fail(format!("{}: cannot write: {e}", out.display())))?;
        let LaunchConfig::Gpu {
            grid,
            block,
            shared_bytes,
        } = art.launch
        else {
            return Err(fail("a GPU kernel without a GPU launch"));
        };
        let node = fused.node(st.node);
        let up = sym.to_uppercase();
        let _ = writeln!(
            decls,
            "/* %{value} = {}: template `{}`, key {} */",
            node.op.name(),
            l.template,
            art.key
        );
        let _ = writeln!(
            decls,
            "#define {up}_ENTRY \"{sym}\"\n#define {up}_PTX \"{file}\""
        );
        let _ = writeln!(
            decls,
            "#define {up}_GRID_X {}u\n#define {up}_GRID_Y {}u\n#define {up}_GRID_Z {}u",
            grid[0], grid[1], grid[2]
        );
        let _ = writeln!(
            decls,
            "#define {up}_BLOCK_X {}u\n#define {up}_BLOCK_Y {}u\n#define {up}_BLOCK_Z {}u",
            block[0], block[1], block[2]
        );
        let _ = writeln!(
            decls,
            "#define {up}_SHARED_BYTES {shared_bytes}u /* static */"
        );
        for (i, (p, b)) in art.params.iter().zip(&l.bindings).enumerate() {
            let len = p.len.map_or(String::new(), |n| format!(" [{n}]"));
            let _ = writeln!(
                decls,
                "/*   param {i}: {} {}{len} — {} */",
                p.ty,
                p.name,
                binding_text(b)
            );
        }
        decls.push('\n');
        let params = params_json(out, &fused, &st, &art)?;
        manifest.push(serde_json::json!({
            "value": value, "entry": sym, "ptx": file, "op": node.op.name(),
            "template": l.template, "key": art.key.to_string(), "codegen": art.codegen,
            "grid": grid, "block": block, "shared_bytes": shared_bytes,
            "bytes_read": l.bytes_read, "params": params,
        }));
    }
    let header = include_str!("../../../templates/deploy/ptx_kernels.h")
        .replace("{{FILE}}", "qkc_kernels.h")
        .replace("{{GRAPH}}", &g.name)
        .replace("{{VERSION}}", env!("CARGO_PKG_VERSION"))
        .replace("{{ISA}}", &format!("sm_{sm}"))
        .replace("{{SOURCE}}", &display(path))
        .replace("{{GUARD}}", "QKC_KERNELS_H")
        .replace("{{DECLS}}", &decls);
    std::fs::write(out.join("qkc_kernels.h"), header)
        .map_err(|e| fail(format!("{}: cannot write: {e}", out.display())))?;
    let doc = serde_json::json!({"graph": g.name, "target": "ptx", "sm": sm, "tokens": batch, "kernels": manifest});
    let s = serde_json::to_string_pretty(&doc).map_err(|e| fail(format!("json: {e}")))?;
    std::fs::write(out.join("manifest.json"), s + "\n")
        .map_err(|e| fail(format!("{}: cannot write: {e}", out.display())))?;
    println!(
        "wrote {} PTX kernels (sm_{sm}), qkc_kernels.h and manifest.json to {}",
        kernels,
        out.display()
    );
    Ok(())
}

/// A CUDA executor for `qkc generate` (T = 1, kernels launched without a sync after each).
pub fn model_executor<'m>(
    path: &Path,
    m: &'m qkc_model::Model,
    graph: bool,
) -> Result<(Box<dyn qkc_model::generate::Executor + 'm>, String), Reported> {
    let cuda = open()?;
    let fused = fuse(path, &m.graph)?;
    let sm = cuda.sm;
    let mut prog = GpuProgram::new(cuda.clone(), &fused, &m.weights, 1, sm, &|l| {
        ptx(&l.kernel, sm)
    })
    .map_err(|e| fail(format!("{}: {e}", display(path))))?;
    prog.sync_each = false;
    prog.poison = false;
    prog.graph = graph;
    let what = format!(
        "cuda ({}, sm_{sm}), {} kernels / {} launches per token{}",
        cuda.name,
        prog.kernels().len(),
        prog.launch_count(),
        if graph {
            ", replayed as one CUDA graph"
        } else {
            ""
        }
    );
    Ok((Box::new(prog), what))
}
