//! `qkc import` and `qkc generate`: real models (a GGUF file, or a directory `qkc import` wrote).

use std::io::Write as _;
use std::path::Path;
use std::time::Instant;

use qkc_model::generate::{generate, Executor, InterpExecutor, Sampling, Stats};
use qkc_model::{Model, OpenOptions};
use qkc_runtime::{CpuOptions, CpuProgram};

use crate::native::fuse;
use crate::{display, fail, Reported, Target};

/// Options of `qkc generate`.
pub struct GenArgs<'a> {
    pub model: &'a Path,
    pub prompt: &'a str,
    pub max_tokens: usize,
    pub target: Target,
    pub sampling: Sampling,
    pub chat: bool,
    pub threads: Option<usize>,
    pub ctx: usize,
    pub act_bits: Option<u8>,
    /// Print only the generated text (no banner, no stats).
    pub quiet: bool,
}

fn open(path: &Path, ctx: usize, act_bits: Option<u8>) -> Result<Model, Reported> {
    Model::open(
        path,
        &OpenOptions {
            max_seq: ctx,
            act_bits,
        },
    )
    .map_err(|e| fail(e.to_string()))
}

/// `qkc import MODEL -o DIR`.
pub fn import(path: &Path, out: &Path, ctx: usize) -> Result<(), Reported> {
    let t0 = Instant::now();
    let m = open(path, ctx, None)?;
    let files = m
        .write_import(out)
        .map_err(|e| fail(format!("{}: {e}", display(out))))?;
    println!(
        "imported {} ({} blocks, hidden {}, vocab {}) in {:.0} ms",
        display(path),
        m.cfg.layers,
        m.cfg.hidden,
        m.cfg.vocab,
        t0.elapsed().as_secs_f64() * 1e3
    );
    for (f, what) in files {
        println!("  {}  {what}", f.display());
    }
    Ok(())
}

/// `qkc generate`.
pub fn generate_cmd(a: &GenArgs<'_>) -> Result<(), Reported> {
    let t0 = Instant::now();
    let m = open(a.model, a.ctx, a.act_bits)?;
    let text = if a.chat {
        m.chat_prompt(a.prompt)
            .map_err(|e| fail(format!("--chat: {e}")))?
    } else {
        a.prompt.to_string()
    };
    let prompt = m
        .tokenizer
        .encode(&text, true)
        .map_err(|e| fail(format!("tokenizing the prompt: {e}")))?;
    let stop: Vec<u32> = m.stop_tokens();
    let load_ms = t0.elapsed().as_secs_f64() * 1e3;
    let t1 = Instant::now();
    let (mut exe, what): (Box<dyn Executor + '_>, String) = match a.target {
        Target::Cpu => {
            let fused = fuse(a.model, &m.graph)?;
            let opts = a
                .threads
                .map_or_else(CpuOptions::default, CpuOptions::with_threads);
            let p = CpuProgram::new(&fused, &m.weights, 1, opts)
                .map_err(|e| fail(format!("{}: {e}", display(a.model))))?;
            let what = format!(
                "cpu, {} threads, {} kernels / {} launches per token",
                p.threads(),
                p.kernels().len(),
                p.launch_count()
            );
            (Box::new(p), what)
        }
        Target::Cuda => crate::gpu::model_executor(a.model, &m)?,
        Target::Interp => (
            Box::new(InterpExecutor {
                interp: qkc_ir::interp::Interpreter::new(&m.graph, &m.weights)
                    .map_err(|e| fail(format!("{}: {e}", display(a.model))))?,
                tokens: 1,
            }),
            "the reference interpreter (f64)".to_string(),
        ),
    };
    let build_ms = t1.elapsed().as_secs_f64() * 1e3;
    if !a.quiet {
        eprintln!(
            "{}: {} ({} blocks), {} prompt tokens; on {what}; loaded in {load_ms:.0} ms, compiled and packed in {build_ms:.0} ms",
            display(a.model),
            m.cfg.name,
            m.cfg.layers,
            prompt.len()
        );
    }
    let mut dec = m.tokenizer.decoder();
    let mut stdout = std::io::stdout();
    let mut emit = |id: u32| -> Result<(), qkc_model::ModelError> {
        if stop.contains(&id) {
            return Ok(());
        }
        if let Some(s) = dec
            .push(id)
            .map_err(|e| qkc_model::ModelError::Other(e.to_string()))?
        {
            let _ = stdout.write_all(s.as_bytes());
            let _ = stdout.flush();
        }
        Ok(())
    };
    let (_, st): (Vec<u32>, Stats) = generate(
        exe.as_mut(),
        &prompt,
        a.max_tokens,
        m.cfg.max_seq,
        a.sampling,
        &stop,
        &mut emit,
    )
    .map_err(|e| fail(format!("generating: {e}")))?;
    println!();
    if !a.quiet {
        println!(
            "[prefill {} tokens: {:.1} tok/s | decode {} tokens: {:.1} tok/s ({:.2} ms/token)]",
            st.prompt_tokens,
            st.prefill_tps(),
            st.generated,
            st.decode_tps(),
            1e3 / st.decode_tps().max(1e-12)
        );
    }
    Ok(())
}
