//! `--target cpu`: run (with `--check` against the interpreter), bench, and compile to objects.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

use qkc_ir::interp::{synth_inputs, Interpreter, Tensor, Weights};
use qkc_ir::{DType, Graph, Op, Type};
use qkc_kernel::lower::{self, Binding, LowerOptions, LowerTarget};
use qkc_kernel::{Scalar, Type as KType};
use qkc_runtime::ceiling::{ceiling_buffer, read_gbps, CEILING_BYTES};
use qkc_runtime::{CpuOptions, CpuProgram};

use crate::{display, fail, Reported};

/// The fused graph `qkc compile` would produce.
pub fn fuse(path: &Path, g: &Graph) -> Result<Graph, Reported> {
    let mut fused = g.clone();
    qkc_passes::default_pipeline(qkc_passes::Options::default())
        .run(&mut fused)
        .map_err(|e| fail(format!("{}: {e}", display(path))))?;
    Ok(fused)
}

/// The `--check` tolerance for a graph, and why: the largest of the error sources it has.
/// - f32 everywhere: kernels sum in f32 in another order than the f64 interpreter: 1e-3.
/// - f16 activations or weights: every stored f16 value is rounded (2^-11 relative) and the
///   rounding compounds through the ops: 1e-2.
/// - 4-bit activation quantization: a value that lands on the other side of a rounding boundary
///   (because its input was rounded to f16 first) moves by a whole step of amax/7: 5e-2.
pub fn tolerance(g: &Graph) -> (f64, &'static str) {
    let mut tol = (1e-3, "f32 accumulation order");
    for id in g.nodes() {
        let n = g.node(id);
        if let Type::Tensor {
            dtype: DType::F16 | DType::BF16,
            ..
        } = n.ty
        {
            if tol.0 < 1e-2 {
                tol = (1e-2, "f16 storage of activations");
            }
        }
        if let Op::Qlinear(q) = &n.op {
            let low = q.act.as_ref().is_some_and(|a| a.bits <= 4)
                || q.out_act.as_ref().is_some_and(|a| a.bits <= 4);
            if low {
                tol = (5e-2, "4-bit activation quantization");
            }
        }
        if let Op::QuantizeAct(a) = &n.op {
            if a.bits <= 4 {
                tol = (5e-2, "4-bit activation quantization");
            }
        }
    }
    tol
}

/// max |a − b| / max |b| over one output (b is the reference); NaN in `a` gives infinity.
pub fn rel_err(a: &Tensor, b: &Tensor) -> f64 {
    if a.data.len() != b.data.len() {
        return f64::INFINITY;
    }
    let scale = b.data.iter().fold(0f64, |m, x| m.max(x.abs())).max(1e-30);
    a.data
        .iter()
        .zip(&b.data)
        .map(|(x, y)| {
            if x.is_finite() {
                (x - y).abs() / scale
            } else {
                f64::INFINITY
            }
        })
        .fold(0f64, f64::max)
}

/// Options shared by `run` and `bench` on the CPU.
pub struct CpuRun<'a> {
    pub path: &'a Path,
    pub weights: &'a Weights,
    pub threads: Option<usize>,
}

fn cpu_opts(threads: Option<usize>) -> CpuOptions {
    threads.map_or_else(CpuOptions::default, CpuOptions::with_threads)
}

/// A compiled program `qkc run` can step.
pub trait Exec {
    /// One run on `inputs`.
    fn run(
        &mut self,
        inputs: &HashMap<String, Tensor>,
    ) -> Result<Vec<(String, Tensor)>, qkc_runtime::RuntimeError>;
    /// Tokens in the KV caches.
    fn cached_tokens(&self) -> usize;
}

impl Exec for CpuProgram {
    fn run(
        &mut self,
        inputs: &HashMap<String, Tensor>,
    ) -> Result<Vec<(String, Tensor)>, qkc_runtime::RuntimeError> {
        CpuProgram::run(self, inputs)
    }
    fn cached_tokens(&self) -> usize {
        CpuProgram::cached_tokens(self)
    }
}

/// How `qkc run` steps a compiled program.
pub struct Steps<'a> {
    pub batch: usize,
    pub input_seed: u64,
    pub steps: usize,
    pub check: bool,
    pub tol: Option<f64>,
    pub source: &'a str,
}

/// `qkc run --target cpu`.
pub fn run_cpu(r: &CpuRun<'_>, g: &Graph, s: &Steps<'_>) -> Result<(), Reported> {
    let path = r.path;
    let fused = fuse(path, g)?;
    let opts = cpu_opts(r.threads);
    let mut prog = CpuProgram::new(&fused, r.weights, s.batch, opts)
        .map_err(|e| fail(format!("{}: {e}", display(path))))?;
    let compile_ms: f64 = prog.kernels().iter().map(|k| k.compile_ms).sum();
    println!(
        "graph @{} on cpu (Cranelift JIT, {} threads), T = {}, {}, input seed {}",
        g.name,
        prog.threads(),
        s.batch,
        s.source,
        s.input_seed
    );
    println!(
        "  {} kernels, {} launches per step; lowered, compiled ({compile_ms:.1} ms in Cranelift) and packed in {:.1} ms",
        prog.kernels().len(),
        prog.launch_count(),
        prog.build_ms()
    );
    drive(path, g, r.weights, &mut prog, s)
}

/// Step `exec` with fresh inputs; with `check`, compare every output with the interpreter's.
pub fn drive(
    path: &Path,
    g: &Graph,
    weights: &Weights,
    exec: &mut dyn Exec,
    s: &Steps<'_>,
) -> Result<(), Reported> {
    let mut reference = if s.check {
        Some(Interpreter::new(g, weights).map_err(|e| fail(format!("{}: {e}", display(path))))?)
    } else {
        None
    };
    let (tol, why) = match s.tol {
        Some(t) => (t, "--tol"),
        None => tolerance(g),
    };
    let mut worst = 0f64;
    for step in 0..s.steps.max(1) {
        let pos0 = exec.cached_tokens();
        let inputs = synth_inputs(g, s.batch, s.input_seed.wrapping_add(step as u64), pos0);
        let t0 = std::time::Instant::now();
        let outs = exec
            .run(&inputs)
            .map_err(|e| fail(format!("{}: {e}", display(path))))?;
        let ms = t0.elapsed().as_secs_f64() * 1e3;
        if s.steps > 1 {
            println!(
                "step {step} (positions {pos0}..{}), {ms:.2} ms:",
                pos0 + s.batch
            );
        } else {
            println!("  ran in {ms:.2} ms");
        }
        let refs = match &mut reference {
            Some(interp) => Some(
                interp
                    .run(&inputs)
                    .map_err(|e| fail(format!("{}: interpreter: {e}", display(path))))?,
            ),
            None => None,
        };
        for (name, t) in &outs {
            match refs
                .as_ref()
                .and_then(|rs| rs.iter().find(|(n, _)| n == name))
            {
                Some((_, rt)) => {
                    let e = rel_err(t, rt);
                    worst = worst.max(e);
                    println!(
                        "  %{name}: {}  max_rel_err {e:.2e}",
                        qkc_ir::interp::summary(t)
                    );
                }
                None => println!("  %{name}: {}", qkc_ir::interp::summary(t)),
            }
        }
    }
    if s.check {
        let verdict = if worst <= tol { "ok" } else { "FAILED" };
        println!(
            "check: max_rel_err {worst:.2e} vs the interpreter (f64), tolerance {tol:.0e} ({why}): {verdict}"
        );
        if worst > tol || !worst.is_finite() {
            return Err(Reported);
        }
    }
    Ok(())
}

/// One row of `qkc bench`.
#[derive(serde::Serialize)]
pub struct BenchRow {
    pub batch: usize,
    pub value: String,
    pub kernel: String,
    pub template: String,
    pub median_us: f64,
    pub bytes: u64,
    pub gbps: f64,
    pub ceiling_fraction: f64,
    /// The baseline's median µs (cuBLAS fp16 on CUDA), when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_us: Option<f64>,
}

/// `qkc bench --target cpu`.
pub fn bench_cpu(
    r: &CpuRun<'_>,
    g: &Graph,
    batches: &[usize],
    json: Option<&Path>,
) -> Result<(), Reported> {
    let path = r.path;
    let fused = fuse(path, g)?;
    let opts = cpu_opts(r.threads);
    eprintln!(
        "measuring the read ceiling ({} MiB, {} threads)...",
        CEILING_BYTES >> 20,
        opts.threads
    );
    let buf = ceiling_buffer(CEILING_BYTES);
    let ceiling = read_gbps(&buf, opts.threads, 9);
    drop(buf);
    println!(
        "graph @{} on cpu (Cranelift JIT), {} threads; read ceiling {ceiling:.1} GB/s (plain read loop, same run); weights rotate over copies > 512 MB",
        g.name, opts.threads
    );
    let mut rows = Vec::new();
    for &batch in batches {
        let mut prog = CpuProgram::new(&fused, r.weights, batch, opts)
            .map_err(|e| fail(format!("{}: {e}", display(path))))?;
        let inputs = synth_inputs(g, batch, 1, 0);
        prog.prime(&inputs)
            .map_err(|e| fail(format!("{}: {e}", display(path))))?;
        println!("\nT = {batch}");
        println!(
            "{:<14} {:<22} {:>10} {:>12} {:>8} {:>9}",
            "value", "kernel", "median µs", "bytes read", "GB/s", "ceiling"
        );
        for i in 0..prog.launch_count() {
            // iterations: enough for ~0.2 s, between 10 and 2000
            let probe = prog
                .time_launch(i, 2, 3)
                .map_err(|e| fail(format!("{}: {e}", display(path))))?;
            let one = probe
                .iter()
                .copied()
                .fold(f64::INFINITY, f64::min)
                .max(1e-7);
            let iters = ((0.2 / one) as usize).clamp(10, 2000);
            // weights rotate over copies > 512 MB so the last-level cache never serves them
            let (mut ts, _copies) = prog
                .time_launch_rotating(i, 3, iters, 512 << 20)
                .map_err(|e| fail(format!("{}: {e}", display(path))))?;
            ts.sort_by(f64::total_cmp);
            let med = ts[ts.len() / 2];
            let info = prog.launch_info(i).clone();
            let k = &prog.kernels()[info.kernel];
            let bytes = k.lowered.bytes_read;
            let gbps = bytes as f64 / med / 1e9;
            println!(
                "%{:<13} {:<22} {:>10.2} {:>12} {:>8.2} {:>8.1}%",
                info.value,
                k.lowered.kernel.name,
                med * 1e6,
                bytes,
                gbps,
                100.0 * gbps / ceiling
            );
            rows.push(BenchRow {
                batch,
                value: info.value,
                kernel: k.lowered.kernel.name.clone(),
                template: k.lowered.template.clone(),
                median_us: med * 1e6,
                bytes,
                gbps,
                ceiling_fraction: gbps / ceiling,
                baseline_us: None,
            });
        }
    }
    if let Some(out) = json {
        let doc = serde_json::json!({
            "graph": g.name,
            "target": "cpu",
            "threads": opts.threads,
            "read_ceiling_gbps": ceiling,
            "rows": rows,
        });
        let s = serde_json::to_string_pretty(&doc).map_err(|e| fail(format!("json: {e}")))?;
        std::fs::write(out, s + "\n")
            .map_err(|e| fail(format!("{}: cannot write: {e}", out.display())))?;
    }
    Ok(())
}

fn c_type(t: &KType, write: bool) -> String {
    match t {
        KType::Ptr(_, e) => {
            let base = match e {
                Scalar::F32 => "float",
                Scalar::F64 => "double",
                Scalar::F16 | Scalar::Bf16 | Scalar::I16 => "uint16_t",
                Scalar::I8 | Scalar::I1 => "uint8_t",
                Scalar::I32 => "int32_t",
                Scalar::I64 => "int64_t",
            };
            if write {
                format!("{base} *")
            } else {
                format!("const {base} *")
            }
        }
        KType::Scalar(Scalar::I64) => "int64_t ".into(),
        KType::Scalar(Scalar::F32) => "float ".into(),
        _ => "int32_t ".into(),
    }
}

pub fn binding_text(b: &Binding) -> String {
    match b {
        Binding::Operand { role } => format!("activation: operand `{role}`"),
        Binding::Packed { role, buffer } => format!("weight: `{role}` packed buffer `{buffer}`"),
        Binding::Output => "the result".into(),
        Binding::Cache(h) => format!("KV cache ({h:?})"),
        Binding::Pos => "pointer to one int32: the tokens already in the KV cache".into(),
        Binding::Const { name, .. } => format!("constant `{name}` (in consts/)"),
        Binding::Scratch { bytes } => format!("scratch, {bytes} zeroed bytes"),
        Binding::Temp { name, elem, len } => {
            format!("buffer `{name}` shared with this value's other kernels, {len} × {elem}")
        }
    }
}

/// A parameter's binding for manifest.json, machine-readable: `kind` (operand, packed, output,
/// const, temp, scratch, cache, pos) and what it names (the graph value, the weight role and
/// packed buffer, the constant's file under the output directory).
pub fn binding_json(g: &Graph, id: qkc_ir::NodeId, b: &Binding, sym: &str) -> serde_json::Value {
    match b {
        Binding::Operand { role } => serde_json::json!({
            "kind": "operand", "role": role,
            "value": g.operand(id, role).map(|v| g.node(v).name.clone()),
        }),
        Binding::Packed { role, buffer } => serde_json::json!({
            "kind": "packed", "role": role, "buffer": buffer,
            "weight": g.operand(id, role).and_then(|v| match &g.node(v).op {
                Op::Weight { name, .. } => Some(name.clone()),
                _ => None,
            }),
        }),
        Binding::Output => serde_json::json!({"kind": "output", "value": g.node(id).name}),
        Binding::Const { name, .. } => {
            serde_json::json!({"kind": "const", "name": name, "file": format!("consts/{sym}.{name}.bin")})
        }
        Binding::Temp { name, elem, len } => {
            serde_json::json!({"kind": "temp", "name": name, "elem": elem.to_string(), "len": len})
        }
        Binding::Scratch { bytes } => serde_json::json!({"kind": "scratch", "bytes": bytes}),
        Binding::Cache(h) => serde_json::json!({"kind": "cache", "half": format!("{h:?}")}),
        Binding::Pos => serde_json::json!({"kind": "pos"}),
    }
}

/// One kernel launch of a compiled graph, in program order, for `compile -o`.
pub struct Stage {
    /// The node it belongs to.
    pub node: qkc_ir::NodeId,
    /// The value it computes (`NAME:preI` for a prologue).
    pub value: String,
    /// The kernel (renamed to its unique symbol) and its bindings.
    pub lowered: lower::Lowered,
    /// `None` for the first launch of a kernel; `Some(symbol)` when an earlier stage has the same
    /// kernel.
    pub same_as: Option<String>,
}

/// Lower every kernel node of `fused` (prologues first), giving each distinct kernel a unique
/// symbol `qkc_NAME_I`.
pub fn stages(path: &Path, fused: &Graph, opts: &LowerOptions) -> Result<Vec<Stage>, Reported> {
    let mut seen: HashMap<String, String> = HashMap::new();
    let mut out = Vec::new();
    for id in fused.topo_order().map_err(|_| fail("cycle"))? {
        let node = fused.node(id);
        if !qkc_passes::partition::is_kernel(&node.op) {
            continue;
        }
        let top = lower::lower(fused, id, opts)
            .map_err(|e| fail(format!("{}: cannot lower {e}", display(path))))?;
        let mut list: Vec<(String, lower::Lowered)> = Vec::new();
        for (i, p) in top.pre.iter().enumerate() {
            list.push((format!("{}:pre{i}", node.name), p.clone()));
        }
        list.push((node.name.clone(), top));
        for (value, mut l) in list {
            let text = qkc_kernel::print(&l.kernel);
            let same_as = seen.get(&text).cloned();
            if same_as.is_none() {
                let sym = format!("qkc_{}_{}", l.kernel.name, seen.len());
                l.kernel.name = sym.clone();
                seen.insert(text, sym);
            }
            out.push(Stage {
                node: id,
                value,
                lowered: l,
                same_as,
            });
        }
    }
    Ok(out)
}

/// Write a stage's constants under `out/consts/`; return every parameter's manifest entry.
pub fn params_json(
    out: &Path,
    fused: &Graph,
    st: &Stage,
    art: &qkc_kernel::Artifact,
) -> Result<Vec<serde_json::Value>, Reported> {
    let sym = &st.lowered.kernel.name;
    let mut params = Vec::new();
    for (i, (p, b)) in art.params.iter().zip(&st.lowered.bindings).enumerate() {
        if let Binding::Const { name, data, .. } = b {
            let f = format!("consts/{sym}.{name}.bin");
            std::fs::write(out.join(&f), data)
                .map_err(|e| fail(format!("{}: cannot write: {e}", out.display())))?;
        }
        params.push(serde_json::json!({
            "index": i, "name": p.name, "type": p.ty.to_string(), "len": p.len,
            "align": p.align, "read": p.read, "write": p.write, "binding": binding_text(b),
            "bind": binding_json(fused, st.node, b, sym),
        }));
    }
    Ok(params)
}

/// The manifest entry of a stage whose kernel an earlier stage already emitted.
pub fn repeat_json(fused: &Graph, st: &Stage, sym: &str) -> serde_json::Value {
    let binds: Vec<_> = st
        .lowered
        .bindings
        .iter()
        .map(|b| binding_json(fused, st.node, b, sym))
        .collect();
    serde_json::json!({"value": st.value, "symbol": sym, "same_kernel_as_above": true, "binds": binds})
}

/// `qkc compile --target cpu -o DIR`: one object per kernel, a C header, a manifest.
pub fn compile_cpu(path: &Path, g: &Graph, batch: usize, out: &Path) -> Result<(), Reported> {
    let fused = fuse(path, g)?;
    let opts = LowerOptions {
        target: LowerTarget::Cpu { chunks: 16 },
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
            manifest.push(repeat_json(&fused, &st, sym));
            continue;
        }
        kernels += 1;
        let l = &st.lowered;
        let sym = l.kernel.name.clone();
        let (obj, arts) = qkc_codegen_cranelift::compile_object(&[&l.kernel], &sym)
            .map_err(|e| fail(format!("{}: codegen: {e}", display(path))))?;
        let art = &arts[0];
        let file = format!("{sym}.o");
        std::fs::write(out.join(&file), obj)
            .map_err(|e| fail(format!("{}: cannot write: {e}", out.display())))?;
        let chunks = match art.launch {
            qkc_kernel::LaunchConfig::Cpu { chunks } => chunks,
            qkc_kernel::LaunchConfig::Gpu { .. } => 1,
        };
        let node = fused.node(st.node);
        let _ = writeln!(
            decls,
            "/* %{} = {}: template `{}`, key {} */",
            st.value,
            node.op.name(),
            l.template,
            art.key
        );
        let _ = writeln!(decls, "#define {}_CHUNKS {chunks}u", sym.to_uppercase());
        let params = params_json(out, &fused, &st, art)?;
        let mut cparams: Vec<String> = art
            .params
            .iter()
            .zip(&l.bindings)
            .map(|(p, b)| {
                let len = p.len.map_or(String::new(), |n| format!(", {n} elements"));
                format!(
                    "    {}{} /* {}{len} */",
                    c_type(&p.ty, p.write),
                    p.name,
                    binding_text(b)
                )
            })
            .collect();
        cparams.push("    uint32_t chunk_lo".into());
        cparams.push("    uint32_t chunk_hi".into());
        let _ = writeln!(decls, "void {sym}(\n{});\n", cparams.join(",\n"));
        manifest.push(serde_json::json!({
            "value": st.value, "symbol": sym, "object": file, "op": node.op.name(),
            "template": l.template, "key": art.key.to_string(), "codegen": art.codegen,
            "chunks": chunks, "bytes_read": l.bytes_read, "params": params,
        }));
    }
    let name = g.name.clone();
    let header = include_str!("../../../templates/deploy/cpu_kernels.h")
        .replace("{{FILE}}", "qkc_kernels.h")
        .replace("{{GRAPH}}", &name)
        .replace("{{VERSION}}", env!("CARGO_PKG_VERSION"))
        .replace("{{ISA}}", "x86-64 host features")
        .replace("{{SOURCE}}", &display(path))
        .replace("{{GUARD}}", "QKC_KERNELS_H")
        .replace("{{DECLS}}", &decls);
    std::fs::write(out.join("qkc_kernels.h"), header)
        .map_err(|e| fail(format!("{}: cannot write: {e}", out.display())))?;
    let doc = serde_json::json!({
        "graph": name, "target": "cpu", "tokens": batch, "kernels": manifest,
    });
    let s = serde_json::to_string_pretty(&doc).map_err(|e| fail(format!("json: {e}")))?;
    std::fs::write(out.join("manifest.json"), s + "\n")
        .map_err(|e| fail(format!("{}: cannot write: {e}", out.display())))?;
    println!(
        "wrote {} kernel objects, qkc_kernels.h and manifest.json to {}",
        kernels,
        out.display()
    );
    Ok(())
}
