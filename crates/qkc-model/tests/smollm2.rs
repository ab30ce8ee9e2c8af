//! SmolLM2-135M-Instruct (Q4_1 GGUF, fetched by `make setup` into tools/models) end to end:
//! compiled for the CPU, its logits match the reference interpreter's on a 16-token prompt, and
//! its greedy continuation equals the interpreter's (and is snapshot-tested).
//!
//! Tolerance: max |logit − logit_ref| / max |logit_ref| ≤ 1e-3 per step: the kernels sum in f32
//! (in another order than the f64 interpreter) through 30 blocks.

mod common;

use common::run::{cpu, interp, open, rel_err, smollm2_gguf};
use qkc_model::generate::{generate, Executor, Sampling};

const PROMPT: &str = "The three primary colors are red, yellow and blue. When you mix red and";

#[test]
fn logits_match_the_interpreter_and_greedy_continuation_agrees() {
    let Some(p) = smollm2_gguf() else { return };
    let m = open(&p, 64);
    let ids = m.tokenizer.encode(PROMPT, true).expect("encode");
    assert_eq!(ids.len(), 16, "the prompt is 16 tokens: {ids:?}");
    let mut prog = cpu(&m);
    let mut reference = interp(&m);
    let mut worst = 0f64;
    for (pos, &id) in ids.iter().enumerate() {
        let a = prog.step(&[id], pos).expect("cpu step");
        let b = reference.step(&[id], pos).expect("interp step");
        assert!(
            a.iter().all(|x| x.is_finite()),
            "non-finite logits at step {pos}"
        );
        let err = rel_err(&a, &b);
        worst = worst.max(f64::from(err));
        assert!(
            err < 1e-3,
            "step {pos}: max rel err {err:.3e} over tolerance 1e-3"
        );
    }
    println!("logits over 16 prompt tokens: max rel err {worst:.2e} (tolerance 1e-3)");

    // greedy continuation: fresh executors, the same 12 tokens from both
    let (mut prog, mut reference) = (cpu(&m), interp(&m));
    let stop = m.stop_tokens();
    let run = |e: &mut dyn Executor| {
        generate(e, &ids, 12, 64, Sampling::default(), &stop, &mut |_| Ok(()))
            .expect("generate")
            .0
    };
    let got = run(&mut prog);
    let want = run(&mut reference);
    assert_eq!(got, want, "greedy tokens differ from the interpreter's");
    let text = m.tokenizer.decode(&got).expect("decode");
    insta::assert_snapshot!(format!("{PROMPT}|{text}"));
}
