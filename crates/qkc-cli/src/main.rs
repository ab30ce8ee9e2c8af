//! `qkc`: the compiler driver.
//!
//! Exit codes: 0 success, 1 an error in the input (diagnostics on stderr) or a failed check,
//! 2 a usage error (from clap).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

mod gpu;
mod model;
mod native;
mod quantize;

use clap::{Parser, Subcommand, ValueEnum};
use qkc_ir::diag::{render, Diag};
use qkc_ir::interp::{summary, synth_inputs, Interpreter, Weights};
use qkc_ir::{Graph, Op};

#[derive(Parser)]
#[command(
    name = "qkc",
    version,
    about = "qkc: compile quantized LLM graphs into fused, specialized kernels"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Parse and verify a graph; print a one-line summary.
    Check {
        /// A .qir or .json graph (`-` for stdin).
        file: PathBuf,
    },
    /// Print a graph in canonical text form.
    Fmt {
        /// A .qir or .json graph (`-` for stdin).
        file: PathBuf,
        /// Exit 1 if the file is not already canonical (print nothing else).
        #[arg(long, conflicts_with = "write")]
        check: bool,
        /// Rewrite the file in place.
        #[arg(long)]
        write: bool,
    },
    /// Convert between the text form and JSON.
    Convert {
        /// A .qir or .json graph (`-` for stdin).
        file: PathBuf,
        /// Output form.
        #[arg(long)]
        to: Form,
    },
    /// Run the pass pipeline; print the fused graph or its kernels.
    Compile {
        /// A .qir or .json graph (`-` for stdin).
        file: PathBuf,
        /// What to print.
        #[arg(long, value_enum, default_value_t = Emit::Graph)]
        emit: Emit,
        /// With `--emit kernels`: JSON for tools instead of a table.
        #[arg(long)]
        json: bool,
        /// Dump the IR after this pass (repeatable).
        #[arg(long = "print-after", value_name = "PASS")]
        print_after: Vec<String>,
        /// Dump the IR after every pass.
        #[arg(long)]
        print_after_all: bool,
        /// Only dump after passes that changed the graph.
        #[arg(long)]
        print_changed: bool,
        /// Write each dump to DIR/NN-PASS.qir instead of stderr.
        #[arg(long, value_name = "DIR")]
        dump_dir: Option<PathBuf>,
        /// Print per-pass timing.
        #[arg(long)]
        time_passes: bool,
        /// Explain each fusion that did not fire.
        #[arg(long)]
        explain_fusion: bool,
        /// Verify after every pass (always on in debug builds).
        #[arg(long)]
        verify_each: bool,
        /// Generate code for this target into `-o DIR` (cpu: one .o per kernel, a C header and
        /// manifest.json).
        #[arg(long, value_enum, requires = "out")]
        target: Option<CodeTarget>,
        /// Output directory for --target.
        #[arg(long, short, value_name = "DIR", requires = "target")]
        out: Option<PathBuf>,
        /// Token count T the kernels are specialized for (with --target).
        #[arg(long, default_value_t = 1)]
        batch: usize,
        /// GPU compute capability for --target ptx: 80, 86, 89 or 90.
        #[arg(long, default_value_t = 90)]
        sm: u32,
    },
    /// Quantize the linear weights of a float safetensors checkpoint into qkc's layout.
    Quantize {
        /// One scheme for every linear weight, e.g. int4:g128, lut3, aqlm:2x8.
        #[arg(long, conflicts_with = "recipe")]
        scheme: Option<String>,
        /// A recipe file: lines `PATTERN SCHEME [rotate=hadamard] [outliers=P%]`, first match wins.
        #[arg(long)]
        recipe: Option<PathBuf>,
        /// Fold QuaRot's Hadamard offline (W·Hᵀ); the graph rotates activations online.
        #[arg(long, value_parser = ["hadamard", "none"], default_value = "none")]
        rotate: String,
        /// Keep this fraction of weights as sparse fp16 outliers, e.g. 0.5%.
        #[arg(long)]
        outliers: Option<String>,
        /// The float checkpoint.
        #[arg(long = "in")]
        input: PathBuf,
        /// The quantized checkpoint to write.
        #[arg(long)]
        out: PathBuf,
        /// A graph whose linear weights to quantize; its rewritten form goes to --graph-out.
        #[arg(long)]
        graph: Option<PathBuf>,
        /// Where to write the rewritten graph (default: stdout).
        #[arg(long, requires = "graph")]
        graph_out: Option<PathBuf>,
        /// Seed of the randomized quantizers (k-means, codebooks).
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// List the weight schemes with their spelling and bits per weight at a shape.
    Schemes {
        /// Output rows N.
        #[arg(long, default_value_t = 4096)]
        n: usize,
        /// Inputs K.
        #[arg(long, default_value_t = 4096)]
        k: usize,
    },
    /// Write a float graph's seed-synthesized weights to a safetensors checkpoint.
    SynthWeights {
        /// A .qir or .json graph with float weights.
        file: PathBuf,
        /// Seed (the same weights `qkc run --seed` uses).
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Output safetensors file.
        #[arg(long, short)]
        out: PathBuf,
    },
    /// Run a graph and print each output's shape and statistics.
    Run {
        /// A .qir or .json graph (`-` for stdin).
        file: PathBuf,
        /// Where to run it.
        #[arg(long, value_enum, default_value_t = Target::Interp)]
        target: Target,
        /// A safetensors checkpoint in qkc's layout to bind the weights from.
        #[arg(long, conflicts_with = "seed")]
        weights: Option<PathBuf>,
        /// Synthesize weights from this seed (default 0 when no --weights).
        #[arg(long)]
        seed: Option<u64>,
        /// Number of tokens T (batch × sequence) to run at once.
        #[arg(long, default_value_t = 1)]
        batch: usize,
        /// Seed for the random inputs.
        #[arg(long, default_value_t = 1)]
        input_seed: u64,
        /// Run this many steps, feeding the KV caches (decode); each step uses fresh inputs.
        #[arg(long, default_value_t = 1)]
        steps: usize,
        /// Also run the reference interpreter on the same inputs; print max_rel_err per output
        /// and exit 1 when it is over the tolerance.
        #[arg(long)]
        check: bool,
        /// Tolerance for --check (default: from the graph's dtypes and schemes, printed).
        #[arg(long, requires = "check")]
        tol: Option<f64>,
        /// Worker threads for --target cpu (default: all cores).
        #[arg(long)]
        threads: Option<usize>,
    },
    /// Time each kernel of a graph: median time, bytes read, GB/s and the fraction of the
    /// machine's read ceiling, measured in the same run.
    Bench {
        /// A .qir or .json graph.
        file: PathBuf,
        /// Where to run it.
        #[arg(long, value_enum, default_value_t = Target::Cpu)]
        target: Target,
        /// Token counts to bench, comma separated.
        #[arg(long, value_delimiter = ',', default_value = "1")]
        batch: Vec<usize>,
        /// Worker threads (default: all cores).
        #[arg(long)]
        threads: Option<usize>,
        /// Synthesize weights from this seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Also write the table as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Import a model: write its whole graph (.qir) and a weight binding that memory-maps the
    /// original file or folder (weights are not copied).
    Import {
        /// A llama.cpp GGUF file (llama architecture), or an HF model folder (config.json,
        /// safetensors, a GPTQ / AWQ / compressed-tensors / SqueezeLLM / SpQR / AQLM /
        /// bitsandbytes quantization config or none, tokenizer.json).
        model: PathBuf,
        /// Output directory.
        #[arg(short, long)]
        out: PathBuf,
        /// KV cache capacity in tokens written into the graph (capped at the model's context).
        #[arg(long, default_value_t = 2048)]
        ctx: usize,
    },
    /// Dequantize every decoder linear layer of a GGUF model and quantize it again with one of
    /// qkc's recipes (rtn4, int4-had, rtn3, spqr3, lut3, lut4, aqlm2x8, billm); writes a qkc
    /// checkpoint, the graph and an import manifest that `generate` / `perplexity` open.
    Requantize {
        /// A llama.cpp GGUF file.
        model: PathBuf,
        /// The recipe.
        #[arg(long)]
        recipe: String,
        /// Output directory.
        #[arg(short, long)]
        out: PathBuf,
        /// KV cache capacity in tokens written into the graph.
        #[arg(long, default_value_t = 2048)]
        ctx: usize,
        /// Seed of the randomized quantizers (k-means, codebooks).
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Write the dense f32 weight [N, K] (HF orientation) of one module of a checkpoint as .npy.
    Dequant {
        /// A GGUF file (or an HF model folder).
        #[arg(long = "in")]
        input: PathBuf,
        /// The module or tensor, e.g. `blk.0.ffn_down.weight` or `model.layers.0.mlp.down_proj`.
        #[arg(long)]
        tensor: String,
        /// The .npy file to write.
        #[arg(long)]
        out: PathBuf,
        /// Force the format instead of detecting it (gguf, gptq, awq, compressed-tensors,
        /// squeezellm, spqr, aqlm, bnb).
        #[arg(long)]
        format: Option<String>,
    },
    /// Perplexity of a model on a text file (windows of --ctx tokens from empty caches, scored
    /// on each window's second half, as llama.cpp's perplexity tool does).
    Perplexity {
        /// A GGUF file, an HF model folder, or a directory written by `qkc import`.
        model: PathBuf,
        /// A UTF-8 text file.
        #[arg(long)]
        text: PathBuf,
        /// Window length in tokens.
        #[arg(long, default_value_t = 512)]
        ctx: usize,
        /// Score only the first N windows (default: all).
        #[arg(long)]
        windows: Option<usize>,
        /// Where to run it.
        #[arg(long, value_enum, default_value_t = Target::Cpu)]
        target: Target,
        /// Worker threads for --target cpu (default: all cores).
        #[arg(long)]
        threads: Option<usize>,
    },
    /// Generate text from a model (a GGUF file or a `qkc import` directory), streaming it, then
    /// print prefill and decode tokens/s.
    Generate {
        /// A GGUF file, an HF model folder, or a directory written by `qkc import`.
        model: PathBuf,
        /// The prompt.
        #[arg(long)]
        prompt: String,
        /// Tokens to generate at most (generation also stops at the end-of-turn token).
        #[arg(long, default_value_t = 64)]
        max_tokens: usize,
        /// Where to run it.
        #[arg(long, value_enum, default_value_t = Target::Cpu)]
        target: Target,
        /// Sampling temperature; 0 is greedy decoding.
        #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
        temperature: f32,
        /// Nucleus sampling mass (with --temperature > 0).
        #[arg(long, default_value_t = 1.0)]
        top_p: f32,
        /// Sampling seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Wrap the prompt in the model's chat template as a user message.
        #[arg(long)]
        chat: bool,
        /// Worker threads for --target cpu (default: all cores).
        #[arg(long)]
        threads: Option<usize>,
        /// KV cache capacity in tokens (capped at the model's context).
        #[arg(long, default_value_t = 2048)]
        ctx: usize,
        /// Print only the generated text.
        #[arg(long, short)]
        quiet: bool,
        /// Quantize activations to this many bits (8 or 4) in front of every quantized layer,
        /// with a scale per 32-block, as llama.cpp's integer dot products do (W4A8; on the CPU
        /// the int8-dot kernels `gemv_u*_cpu_a8g`).
        #[arg(long)]
        act_bits: Option<u8>,
        /// With --act-bits: one activation scale per this many elements of a token (default 32).
        #[arg(long, requires = "act_bits")]
        act_group: Option<u32>,
        /// With --target cuda: launch each kernel from the host every step instead of replaying
        /// the step as one captured CUDA graph.
        #[arg(long)]
        no_cuda_graph: bool,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Emit {
    /// The fused graph, in canonical text.
    Graph,
    /// The kernels with their specialization keys.
    Kernels,
}

#[derive(Clone, Copy, ValueEnum)]
enum Form {
    Json,
    Qir,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum CodeTarget {
    /// x86-64 objects through Cranelift.
    Cpu,
    /// PTX through LLVM's NVPTX target.
    Ptx,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Target {
    /// The reference interpreter (f64).
    Interp,
    /// Native CPU code through Cranelift.
    Cpu,
    /// PTX through LLVM, run with CUDA.
    Cuda,
}

/// A failure already explained on stderr.
struct Reported;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Check { file } => check(&file),
        Cmd::Fmt { file, check, write } => fmt(&file, check, write),
        Cmd::Convert { file, to } => convert(&file, to),
        Cmd::Compile {
            file,
            emit,
            json,
            print_after,
            print_after_all,
            print_changed,
            dump_dir,
            time_passes,
            explain_fusion,
            verify_each,
            target,
            out,
            batch,
            sm,
        } => {
            let opts = qkc_passes::Options {
                print_after,
                print_after_all,
                print_changed,
                verify_each: verify_each || cfg!(debug_assertions),
            };
            let show = Show {
                emit,
                json,
                dump_dir,
                time_passes,
                explain_fusion,
            };
            match (target, out) {
                (Some(t), Some(out)) => compile_target(&file, t, &out, batch, sm),
                _ => compile(&file, opts, &show),
            }
        }
        Cmd::Quantize {
            scheme,
            recipe,
            rotate,
            outliers,
            input,
            out,
            graph,
            graph_out,
            seed,
        } => {
            let q = QuantizeArgs {
                scheme,
                recipe,
                rotate: rotate == "hadamard",
                outliers,
                input,
                out,
                graph,
                graph_out,
                seed,
            };
            quantize_cmd(&q)
        }
        Cmd::SynthWeights { file, seed, out } => synth_cmd(&file, seed, &out),
        Cmd::Schemes { n, k } => schemes(n, k),
        Cmd::Run {
            file,
            target,
            weights,
            seed,
            batch,
            input_seed,
            steps,
            check,
            tol,
            threads,
        } => run(
            &file,
            target,
            weights.as_deref(),
            seed,
            batch,
            input_seed,
            steps,
            RunExtra {
                check,
                tol,
                threads,
            },
        ),
        Cmd::Bench {
            file,
            target,
            batch,
            threads,
            seed,
            json,
        } => bench(&file, target, &batch, threads, seed, json.as_deref()),
        Cmd::Import { model, out, ctx } => model::import(&model, &out, ctx),
        Cmd::Dequant {
            input,
            tensor,
            out,
            format,
        } => model::dequant_cmd(&input, &tensor, &out, format.as_deref()),
        Cmd::Requantize {
            model,
            recipe,
            out,
            ctx,
            seed,
        } => model::requantize_cmd(&model, &recipe, &out, ctx, seed),
        Cmd::Perplexity {
            model,
            text,
            ctx,
            windows,
            target,
            threads,
        } => model::perplexity_cmd(&model, &text, ctx, windows, target, threads),
        Cmd::Generate {
            model,
            prompt,
            max_tokens,
            target,
            temperature,
            top_p,
            seed,
            chat,
            threads,
            ctx,
            quiet,
            act_bits,
            act_group,
            no_cuda_graph,
        } => model::generate_cmd(&model::GenArgs {
            model: &model,
            prompt: &prompt,
            max_tokens,
            target,
            sampling: qkc_model::generate::Sampling {
                temperature,
                top_p,
                seed,
            },
            chat,
            threads,
            ctx,
            quiet,
            act_bits,
            act_group,
            cuda_graph: !no_cuda_graph,
        }),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(Reported) => ExitCode::FAILURE,
    }
}

fn display(path: &Path) -> String {
    if path == Path::new("-") {
        "<stdin>".into()
    } else {
        path.display().to_string()
    }
}

fn fail(msg: impl AsRef<str>) -> Reported {
    eprintln!("error: {}", msg.as_ref());
    Reported
}

/// Read a source file as UTF-8 text.
fn read_source(path: &Path) -> Result<String, Reported> {
    let mut bytes = Vec::new();
    let res = if path == Path::new("-") {
        std::io::stdin().read_to_end(&mut bytes).map(|_| ())
    } else {
        std::fs::File::open(path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .map(|_| ())
    };
    res.map_err(|e| fail(format!("{}: cannot read: {e}", display(path))))?;
    String::from_utf8(bytes).map_err(|e| {
        let off = e.utf8_error().valid_up_to();
        let valid = String::from_utf8_lossy(&e.as_bytes()[..off]).into_owned();
        let (line, col) = qkc_ir::parser::line_col(&valid, off);
        fail(format!(
            "{}:{line}:{col}: the file is not UTF-8 text (invalid byte 0x{:02x})",
            display(path),
            e.as_bytes()[off]
        ))
    })
}

fn is_json(path: &Path, src: &str) -> bool {
    path.extension().is_some_and(|e| e == "json") || src.trim_start().starts_with('{')
}

/// Parse (text or JSON) without verifying.
fn load(path: &Path) -> Result<(Graph, String), Reported> {
    let src = read_source(path)?;
    let parsed = if is_json(path, &src) {
        qkc_ir::json::from_json(&src)
    } else {
        qkc_ir::parse(&src)
    };
    match parsed {
        Ok(g) => Ok((g, src)),
        Err(d) => Err(report(path, &src, &[d])),
    }
}

fn report(path: &Path, src: &str, diags: &[Diag]) -> Reported {
    eprint!("{}", render(&display(path), src, diags));
    if diags.len() > 1 {
        eprintln!("error: {} problems found", diags.len());
    }
    Reported
}

/// Parse and verify.
fn load_verified(path: &Path) -> Result<Graph, Reported> {
    let (g, src) = load(path)?;
    qkc_ir::verify::verify(&g).map_err(|diags| report(path, &src, &diags))?;
    Ok(g)
}

fn check(path: &Path) -> Result<(), Reported> {
    let g = load_verified(path)?;
    let count = |f: fn(&Op) -> bool| g.nodes().filter(|&n| f(&g.node(n).op)).count();
    let inputs = count(|o| matches!(o, Op::Input { .. }));
    let weights = count(|o| matches!(o, Op::Weight { .. }));
    println!(
        "ok: {}: graph @{}: {} ops ({} inputs, {} weights), {} output{}",
        display(path),
        g.name,
        g.len(),
        inputs,
        weights,
        g.outputs().len(),
        if g.outputs().len() == 1 { "" } else { "s" }
    );
    Ok(())
}

fn fmt(path: &Path, check: bool, write: bool) -> Result<(), Reported> {
    let (g, src) = load(path)?;
    let text = g.to_string();
    if check {
        if text != src {
            let (line, _) = src
                .lines()
                .zip(text.lines())
                .enumerate()
                .find(|(_, (a, b))| a != b)
                .map_or(
                    (src.lines().count().min(text.lines().count()) + 1, ()),
                    |(i, _)| (i + 1, ()),
                );
            return Err(fail(format!(
                "{}:{line}: not in canonical form (first difference on line {line}); run `qkc fmt --write {}`",
                display(path),
                display(path)
            )));
        }
        return Ok(());
    }
    if write {
        if path == Path::new("-") {
            return Err(fail("--write needs a file, not stdin"));
        }
        return std::fs::write(path, text)
            .map_err(|e| fail(format!("{}: cannot write: {e}", display(path))));
    }
    print_out(&text)
}

fn print_out(text: &str) -> Result<(), Reported> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        // a closed pipe (`| head`) is not an error worth reporting
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(fail(format!("cannot write output: {e}"))),
    }
}

fn convert(path: &Path, to: Form) -> Result<(), Reported> {
    let (g, _) = load(path)?;
    let text = match to {
        Form::Json => qkc_ir::json::to_json(&g),
        Form::Qir => g.to_string(),
    };
    print_out(&text)
}

/// The scheme table (one example spelling per row of DESIGN.md's feature table).
const SCHEME_ROWS: [(&str, &str); 18] = [
    (
        "int4:g128",
        "uniform int4, groups of 128, symmetric (GPTQ, AWQ, RTN)",
    ),
    (
        "int4:g128:asym",
        "uniform int4, groups of 128, with zero points",
    ),
    (
        "int4:g128:act",
        "act-order: group membership from g_idx (GPTQ desc_act)",
    ),
    ("int4:g128:awq", "AWQ's interleaved packing order"),
    (
        "int3:g64",
        "uniform int3 (GPTQ packing: codes straddle words)",
    ),
    ("int2:g32:asym", "uniform int2"),
    ("int8:pc", "uniform int8, one scale per output channel"),
    (
        "spqr3:g16",
        "SpQR: 3-bit codes, 16-wide groups, 3-bit quantized scales and zeros",
    ),
    ("lut3", "SqueezeLLM: a table of 8 values per output row"),
    ("lut4", "SqueezeLLM: a table of 16 values per output row"),
    ("nf4:b64", "bitsandbytes NF4, absmax per 64"),
    ("nf4:b64:dq", "NF4 with double-quantized absmax"),
    ("fp4:b64", "bitsandbytes FP4, absmax per 64"),
    (
        "aqlm:2x8",
        "AQLM: 2 codebooks of 256 entries over 8-wide groups",
    ),
    (
        "aqlm:1x16",
        "AQLM: 1 codebook of 65536 entries over 8-wide groups",
    ),
    ("bin:g128", "binary: sign bits, a scale per 128"),
    ("tern:g128", "ternary {-1, 0, +1}, a scale per 128"),
    (
        "billm:g128",
        "BiLLM residual binarization with a salient-column mask",
    ),
];

fn schemes(n: usize, k: usize) -> Result<(), Reported> {
    let mut s = format!("bits per weight at N = {n}, K = {k} (scales, zeros, tables and codebooks counted; outliers extra)\n");
    for (spelling, what) in SCHEME_ROWS {
        let scheme: qkc_quant::Scheme = spelling.parse().map_err(|e| fail(format!("{e}")))?;
        let bpw = match scheme.check_shape(n, k) {
            Ok(()) => format!("{:>7.3}", scheme.bits_per_weight(n, k)),
            Err(_) => "    n/a".to_string(),
        };
        s.push_str(&format!("  {spelling:<16} {bpw}  {what}\n"));
    }
    s.push_str("  csr<f16, u16>    outliers: 48 bits per non-zero (16-bit value + 16-bit column + row pointers)\n");
    print_out(&s)
}

fn synth_cmd(file: &Path, seed: u64, out: &Path) -> Result<(), Reported> {
    let g = load_verified(file)?;
    let n = quantize::synth_weights(&g, seed, out)
        .map_err(|e| fail(format!("{}: {e}", display(file))))?;
    eprintln!(
        "wrote {n} weights of graph @{} (seed {seed}) to {}",
        g.name,
        out.display()
    );
    Ok(())
}

struct QuantizeArgs {
    scheme: Option<String>,
    recipe: Option<PathBuf>,
    rotate: bool,
    outliers: Option<String>,
    input: PathBuf,
    out: PathBuf,
    graph: Option<PathBuf>,
    graph_out: Option<PathBuf>,
    seed: u64,
}

fn quantize_cmd(a: &QuantizeArgs) -> Result<(), Reported> {
    let rules = quantize::rules(
        a.scheme.as_deref(),
        a.recipe.as_deref(),
        a.rotate,
        a.outliers.as_deref(),
    )
    .map_err(fail)?;
    let graph = match &a.graph {
        Some(p) => Some(load_verified(p)?),
        None => None,
    };
    let only = graph.as_ref().map(quantize::linear_weights);
    let (plans, report) =
        quantize::quantize_checkpoint(&a.input, &a.out, &rules, only.as_deref(), a.seed)
            .map_err(|e| fail(format!("{}: {e}", a.input.display())))?;
    eprintln!(
        "quantized {} weights of {} into {}:",
        plans.len(),
        a.input.display(),
        a.out.display()
    );
    eprint!("{report}");
    if let (Some(mut g), Some(path)) = (graph, &a.graph) {
        quantize::rewrite_graph(&mut g, &plans)
            .map_err(|e| fail(format!("{}: {e}", path.display())))?;
        qkc_ir::verify::verify(&g).map_err(|d| {
            fail(format!(
                "internal error: the rewritten graph does not verify: {d:?}"
            ))
        })?;
        let text = g.to_string();
        match &a.graph_out {
            Some(out) => {
                std::fs::write(out, text).map_err(|e| fail(format!("{}: {e}", out.display())))?
            }
            None => print_out(&text)?,
        }
    }
    Ok(())
}

/// What `compile` shows.
struct Show {
    emit: Emit,
    json: bool,
    dump_dir: Option<PathBuf>,
    time_passes: bool,
    explain_fusion: bool,
}

fn compile_target(
    path: &Path,
    target: CodeTarget,
    out: &Path,
    batch: usize,
    sm: u32,
) -> Result<(), Reported> {
    if batch == 0 {
        return Err(fail("--batch must be at least 1"));
    }
    let g = load_verified(path)?;
    match target {
        CodeTarget::Cpu => native::compile_cpu(path, &g, batch, out),
        CodeTarget::Ptx => gpu::compile_ptx_dir(path, &g, batch, sm, out),
    }
}

fn compile(path: &Path, opts: qkc_passes::Options, show: &Show) -> Result<(), Reported> {
    let mut g = load_verified(path)?;
    let pm = qkc_passes::default_pipeline(opts);
    let report = pm
        .run(&mut g)
        .map_err(|e| fail(format!("{}: {e}", display(path))))?;
    if let Some(dir) = &show.dump_dir {
        std::fs::create_dir_all(dir)
            .map_err(|e| fail(format!("{}: cannot create: {e}", dir.display())))?;
        for (i, (pass, text)) in report.dumps.iter().enumerate() {
            let p = dir.join(format!("{:02}-{pass}.qir", i + 1));
            std::fs::write(&p, text)
                .map_err(|e| fail(format!("{}: cannot write: {e}", p.display())))?;
        }
    } else {
        for (_, text) in &report.dumps {
            eprint!("{text}");
        }
    }
    if show.explain_fusion {
        if report.remarks.is_empty() {
            eprintln!("fusion: every candidate pattern fused");
        }
        for r in &report.remarks {
            eprintln!("fusion: {r}");
        }
    }
    if show.time_passes {
        eprint!("{}", report.timing_table());
    }
    let text = match show.emit {
        Emit::Graph => g.to_string(),
        Emit::Kernels => {
            let plan = qkc_passes::partition(&g);
            if show.json {
                let mut s =
                    serde_json::to_string_pretty(&plan).map_err(|e| fail(format!("json: {e}")))?;
                s.push('\n');
                s
            } else {
                plan.table()
            }
        }
    };
    print_out(&text)
}

/// `run` flags beyond the interpreter's.
struct RunExtra {
    check: bool,
    tol: Option<f64>,
    threads: Option<usize>,
}

fn bench(
    path: &Path,
    target: Target,
    batches: &[usize],
    threads: Option<usize>,
    seed: u64,
    json: Option<&Path>,
) -> Result<(), Reported> {
    if batches.is_empty() || batches.contains(&0) {
        return Err(fail("--batch takes token counts of at least 1"));
    }
    let g = load_verified(path)?;
    let w = Weights::Seed(seed);
    match target {
        Target::Cpu => native::bench_cpu(
            &native::CpuRun {
                path,
                weights: &w,
                threads,
            },
            &g,
            batches,
            json,
        ),
        Target::Interp => Err(fail(
            "qkc bench times compiled kernels: use --target cpu or cuda",
        )),
        Target::Cuda => gpu::bench_cuda(path, &g, &w, batches, json),
    }
}

#[allow(clippy::too_many_arguments)]
fn run(
    path: &Path,
    target: Target,
    weights: Option<&Path>,
    seed: Option<u64>,
    batch: usize,
    input_seed: u64,
    steps: usize,
    extra: RunExtra,
) -> Result<(), Reported> {
    if batch == 0 {
        return Err(fail("--batch must be at least 1"));
    }
    if target == Target::Interp && extra.check {
        return Err(fail(
            "--check compares a compiled target with the interpreter: use --target cpu or cuda",
        ));
    }
    let g = load_verified(path)?;
    let w = match weights {
        Some(p) => Weights::Checkpoint(
            std::fs::read(p).map_err(|e| fail(format!("{}: cannot read: {e}", p.display())))?,
        ),
        None => Weights::Seed(seed.unwrap_or(0)),
    };
    let source = match weights {
        Some(p) => format!("weights from {}", p.display()),
        None => format!("weights synthesized from seed {}", seed.unwrap_or(0)),
    };
    match target {
        Target::Interp => {}
        Target::Cpu => {
            return native::run_cpu(
                &native::CpuRun {
                    path,
                    weights: &w,
                    threads: extra.threads,
                },
                &g,
                &native::Steps {
                    batch,
                    input_seed,
                    steps,
                    check: extra.check,
                    tol: extra.tol,
                    source: &source,
                },
            )
        }
        Target::Cuda => {
            return gpu::run_cuda(
                path,
                &g,
                &w,
                &native::Steps {
                    batch,
                    input_seed,
                    steps,
                    check: extra.check,
                    tol: extra.tol,
                    source: &source,
                },
            )
        }
    }
    let t0 = Instant::now();
    let mut interp =
        Interpreter::new(&g, &w).map_err(|e| fail(format!("{}: {e}", display(path))))?;
    let bind = t0.elapsed();
    println!(
        "graph @{} on interp (f64), T = {batch}, {source}, input seed {input_seed}",
        g.name
    );
    let t1 = Instant::now();
    for step in 0..steps.max(1) {
        let pos0 = interp.cached_tokens();
        let inputs = synth_inputs(&g, batch, input_seed.wrapping_add(step as u64), pos0);
        let outs = interp
            .run(&inputs)
            .map_err(|e| fail(format!("{}: {e}", display(path))))?;
        if steps > 1 {
            println!("step {step} (positions {pos0}..{}):", pos0 + batch);
        }
        for (name, t) in &outs {
            println!("  %{name}: {}", summary(t));
        }
    }
    eprintln!(
        "bound weights in {:.1} ms, ran in {:.1} ms",
        bind.as_secs_f64() * 1e3,
        t1.elapsed().as_secs_f64() * 1e3
    );
    Ok(())
}
