//! SmolLM2-135M-Instruct (Q4_1 GGUF, fetched by `make setup` into tools/models) end to end:
//! compiled for the CPU, its logits match the reference interpreter's on a 16-token prompt, and
//! its greedy continuation equals the interpreter's (and is snapshot-tested).
//!
//! Tolerance: max |logit − logit_ref| / max |logit_ref| ≤ 1e-3 per step: the kernels sum in f32
//! (in another order than the f64 interpreter) through 30 blocks.

use std::path::PathBuf;

use qkc_model::generate::{generate, Executor, InterpExecutor, Sampling};
use qkc_model::{Model, OpenOptions};
use qkc_runtime::{CpuOptions, CpuProgram};

fn model_path() -> Option<PathBuf> {
    let p = std::env::var_os("QKC_SMOLLM2_GGUF")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../tools/models/SmolLM2-135M-Instruct.Q4_1.gguf")
        });
    if p.exists() {
        Some(p)
    } else {
        println!("skipped: {} not found (run `make setup`)", p.display());
        None
    }
}

fn open(p: &std::path::Path) -> Model {
    Model::open(
        p,
        &OpenOptions {
            max_seq: 64,
            act_bits: None,
            act_group: None,
        },
    )
    .expect("open the model")
}

fn cpu(m: &Model) -> CpuProgram {
    let mut fused = m.graph.clone();
    qkc_passes::default_pipeline(qkc_passes::Options::default())
        .run(&mut fused)
        .expect("passes");
    CpuProgram::new(&fused, &m.weights, 1, CpuOptions::with_threads(2)).expect("compile")
}

const PROMPT: &str = "The three primary colors are red, yellow and blue. When you mix red and";

#[test]
fn logits_match_the_interpreter_and_greedy_continuation_agrees() {
    let Some(p) = model_path() else { return };
    let m = open(&p);
    let ids = m.tokenizer.encode(PROMPT, true).expect("encode");
    assert_eq!(ids.len(), 16, "the prompt is 16 tokens: {ids:?}");
    let mut prog = cpu(&m);
    let mut interp = InterpExecutor {
        interp: qkc_ir::interp::Interpreter::new(&m.graph, &m.weights).expect("bind"),
        tokens: 1,
    };
    let mut worst = 0f64;
    for (pos, &id) in ids.iter().enumerate() {
        let a = prog.step(&[id], pos).expect("cpu step");
        let b = interp.step(&[id], pos).expect("interp step");
        assert!(
            a.iter().all(|x| x.is_finite()),
            "non-finite logits at step {pos}"
        );
        let mx = b.iter().fold(0f32, |m, x| m.max(x.abs()));
        let err = a
            .iter()
            .zip(&b)
            .fold(0f32, |e, (x, y)| e.max((x - y).abs()))
            / mx;
        worst = worst.max(f64::from(err));
        assert!(
            err < 1e-3,
            "step {pos}: max rel err {err:.3e} over tolerance 1e-3"
        );
    }
    println!("logits over 16 prompt tokens: max rel err {worst:.2e} (tolerance 1e-3)");

    // greedy continuation: fresh executors, the same 12 tokens from both
    let (mut prog, mut interp) = (
        cpu(&m),
        InterpExecutor {
            interp: qkc_ir::interp::Interpreter::new(&m.graph, &m.weights).expect("bind"),
            tokens: 1,
        },
    );
    let stop = m.stop_tokens();
    let run = |e: &mut dyn Executor| {
        generate(e, &ids, 12, 64, Sampling::default(), &stop, &mut |_| Ok(()))
            .expect("generate")
            .0
    };
    let got = run(&mut prog);
    let want = run(&mut interp);
    assert_eq!(got, want, "greedy tokens differ from the interpreter's");
    let text = m.tokenizer.decode(&got).expect("decode");
    insta::assert_snapshot!(format!("{PROMPT}|{text}"));
}
