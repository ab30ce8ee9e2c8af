//! `qkc import` and `qkc generate`: real models (a GGUF file, an HF model folder, or a directory
//! `qkc import` wrote).

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
    pub act_group: Option<u32>,
    /// Print only the generated text (no banner, no stats).
    pub quiet: bool,
    /// With `--target cuda`: replay each step as one captured CUDA graph.
    pub cuda_graph: bool,
}

fn open(
    path: &Path,
    ctx: usize,
    act_bits: Option<u8>,
    act_group: Option<u32>,
) -> Result<Model, Reported> {
    // an HF folder imports every module: show it (hidden when stderr is not a terminal)
    let bar = progress(0, "modules")?;
    let m = Model::open_with(
        path,
        &OpenOptions {
            max_seq: ctx,
            act_bits,
            act_group,
        },
        &mut |i, n, name| {
            bar.set_length(n as u64);
            bar.set_position(i as u64);
            bar.set_message(name.to_string());
        },
    );
    bar.finish_and_clear();
    m.map_err(|e| fail(e.to_string()))
}

/// `qkc import MODEL -o DIR`.
pub fn import(path: &Path, out: &Path, ctx: usize) -> Result<(), Reported> {
    let t0 = Instant::now();
    let m = open(path, ctx, None, None)?;
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

/// `qkc dequant`.
pub fn dequant_cmd(
    input: &Path,
    tensor: &str,
    out: &Path,
    format: Option<&str>,
) -> Result<(), Reported> {
    let (n, k, data) =
        qkc_model::dequant::dequant(input, tensor, format).map_err(|e| fail(e.to_string()))?;
    qkc_model::npy::write(out, &[n, k], &data).map_err(fail)?;
    let absmax = data.iter().fold(0f32, |m, v| m.max(v.abs()));
    println!(
        "{tensor}: [{n}, {k}] f32 (absmax {absmax:.6}) -> {}",
        out.display()
    );
    Ok(())
}

/// A progress bar over `len` `unit`s, with the current item as its message.
fn progress(len: u64, unit: &str) -> Result<indicatif::ProgressBar, Reported> {
    let style = indicatif::ProgressStyle::with_template(&format!(
        "{{bar:30}} {{pos}}/{{len}} {unit}  {{msg}}  [{{elapsed}} / ~{{eta}}]"
    ))
    .map_err(|e| fail(e.to_string()))?;
    Ok(indicatif::ProgressBar::new(len).with_style(style))
}

/// `qkc requantize`.
pub fn requantize_cmd(
    path: &Path,
    recipe: &str,
    out: &Path,
    ctx: usize,
    seed: u64,
) -> Result<(), Reported> {
    let r = qkc_model::requant::recipe(recipe).map_err(|e| fail(e.to_string()))?;
    let t0 = Instant::now();
    let bar = progress(0, "layers")?;
    let rep = qkc_model::requant::requantize(path, &r, out, ctx, seed, &mut |i, n, name| {
        bar.set_length(n as u64);
        bar.set_position(i as u64);
        bar.set_message(name.to_string());
    })
    .map_err(|e| fail(e.to_string()))?;
    bar.finish_and_clear();
    let worst = rep.layers.iter().fold(0f64, |m, l| m.max(l.rel_err));
    let mean = rep.layers.iter().map(|l| l.rel_err).sum::<f64>() / rep.layers.len().max(1) as f64;
    println!(
        "requantized {} layers of {} with `{}` ({}) in {:.1} s: {:.3} bits/weight, rel. Frobenius error mean {mean:.4}, worst {worst:.4}",
        rep.layers.len(),
        display(path),
        r.name,
        r.doc,
        t0.elapsed().as_secs_f64(),
        rep.bits()
    );
    for f in &rep.files {
        println!("  {}", f.display());
    }
    Ok(())
}

/// A T = 1 executor for `target`, and a line describing it.
fn executor<'m>(
    path: &Path,
    m: &'m Model,
    target: Target,
    threads: Option<usize>,
    cuda_graph: bool,
) -> Result<(Box<dyn Executor + 'm>, String), Reported> {
    Ok(match target {
        Target::Cpu => {
            let fused = fuse(path, &m.graph)?;
            let opts = threads.map_or_else(CpuOptions::default, CpuOptions::with_threads);
            let mut p = CpuProgram::new(&fused, &m.weights, 1, opts)
                .map_err(|e| fail(format!("{}: {e}", display(path))))?;
            // every output element is checked by the tests; generation skips the memsets
            p.poison = false;
            let what = format!(
                "cpu, {} threads, {} kernels / {} launches in {} fork-joins per token, {:.1} MB read per token",
                p.threads(),
                p.kernels().len(),
                p.launch_count(),
                p.fork_joins(),
                p.bytes_per_run() as f64 / 1e6
            );
            (Box::new(p), what)
        }
        Target::Cuda => crate::gpu::model_executor(path, m, cuda_graph)?,
        Target::Interp => (
            Box::new(InterpExecutor {
                interp: qkc_ir::interp::Interpreter::new(&m.graph, &m.weights)
                    .map_err(|e| fail(format!("{}: {e}", display(path))))?,
                tokens: 1,
            }),
            "the reference interpreter (f64)".to_string(),
        ),
    })
}

/// `qkc perplexity`.
pub fn perplexity_cmd(
    path: &Path,
    text: &Path,
    ctx: usize,
    windows: Option<usize>,
    target: Target,
    threads: Option<usize>,
) -> Result<(), Reported> {
    let m = open(path, ctx, None, None)?;
    let body =
        std::fs::read_to_string(text).map_err(|e| fail(format!("{}: {e}", text.display())))?;
    let mut toks = m
        .tokenizer
        .encode(&body, false)
        .map_err(|e| fail(format!("{}: tokenizing: {e}", text.display())))?;
    if let Some(w) = windows {
        toks.truncate(w * ctx);
    }
    let (mut exe, what) = executor(path, &m, target, threads, true)?;
    println!(
        "{}: {} tokens of {}, windows of {ctx}, on {what}",
        m.cfg.name,
        toks.len(),
        text.display()
    );
    let bar = progress((toks.len() / ctx.max(1)) as u64, "windows")?;
    let t0 = Instant::now();
    let (ppl, n) = qkc_model::generate::perplexity(exe.as_mut(), &toks, ctx, &mut |i, _, p| {
        bar.set_position(i as u64);
        bar.set_message(format!("ppl {p:.3}"));
    })
    .map_err(|e| fail(format!("perplexity: {e}")))?;
    bar.finish_and_clear();
    let s = t0.elapsed().as_secs_f64();
    println!(
        "perplexity {ppl:.4} over {n} scored tokens ({:.0} tokens/s, {s:.1} s)",
        (toks.len() / ctx * (ctx - 1)) as f64 / s
    );
    Ok(())
}

/// `qkc generate`.
pub fn generate_cmd(a: &GenArgs<'_>) -> Result<(), Reported> {
    let t0 = Instant::now();
    let m = open(a.model, a.ctx, a.act_bits, a.act_group)?;
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
    // what `generate` would refuse, refused before compiling
    if prompt.is_empty() {
        return Err(fail("the prompt is empty (no tokens)"));
    }
    if prompt.len() + a.max_tokens > m.cfg.max_seq {
        return Err(fail(format!(
            "the prompt ({} tokens) plus --max-tokens {} need {} cache slots, but the KV cache holds {} (raise --ctx)",
            prompt.len(),
            a.max_tokens,
            prompt.len() + a.max_tokens,
            m.cfg.max_seq
        )));
    }
    qkc_model::generate::Sampler::new(a.sampling).map_err(|e| fail(e.to_string()))?;
    let load_ms = t0.elapsed().as_secs_f64() * 1e3;
    let t1 = Instant::now();
    let (mut exe, what) = executor(a.model, &m, a.target, a.threads, a.cuda_graph)?;
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
        let decode = if st.generated == 0 {
            // one token came from the prefill and no decode step ran: no rate to report
            "decode 0 tokens".to_string()
        } else {
            format!(
                "decode {} tokens: {:.1} tok/s ({:.2} ms/token)",
                st.generated,
                st.decode_tps(),
                1e3 / st.decode_tps().max(1e-12)
            )
        };
        println!(
            "[prefill {} tokens: {:.1} tok/s | {decode}]",
            st.prompt_tokens,
            st.prefill_tps(),
        );
    }
    Ok(())
}
