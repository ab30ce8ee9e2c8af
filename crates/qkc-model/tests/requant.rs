//! `requantize` recipes on SmolLM2 (tools/models, fetched by `make setup`): the rewritten graph
//! with its qkc checkpoint overlay compiles for the CPU and matches the reference interpreter
//! (tolerance 1e-3 of max |logit| per step: f32 kernels against f64), and `perplexity` agrees
//! between the CPU and the interpreter.

mod common;

use common::run::{cpu, interp, open, rel_err, smollm2_gguf};
use qkc_model::generate::{perplexity, Executor};
use qkc_model::requant::{recipe, requantize};

fn check_recipe(name: &str, expect_in_graph: &[&str]) {
    let Some(src) = smollm2_gguf() else { return };
    let out = std::env::temp_dir().join(format!("qkc-requant-{name}-{}", std::process::id()));
    let rep = requantize(
        &src,
        &recipe(name).expect("recipe"),
        &out,
        32,
        0,
        &mut |_, _, _| {},
    )
    .expect("requantize");
    assert_eq!(rep.layers.len(), 210);
    let m = open(&out, 32);
    for s in expect_in_graph {
        assert!(m.text.contains(s), "graph lacks `{s}`");
    }
    let ids = m
        .tokenizer
        .encode("Paris is the capital of", false)
        .expect("encode");
    let (mut a, mut b) = (cpu(&m), interp(&m));
    for (p, &id) in ids.iter().enumerate() {
        let x = a.step(&[id], p).expect("cpu");
        let y = b.step(&[id], p).expect("interp");
        let e = rel_err(&x, &y);
        assert!(e < 1e-3, "{name}, step {p}: max rel err {e:.3e}");
    }
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn lut3_with_outliers_matches_the_interpreter() {
    check_recipe(
        "lut3",
        &["q<lut3>[576, 1536]", "csr<f16, u16>[576, 1536]", "spmm("],
    );
}

#[test]
fn quarot_int4_matches_the_interpreter() {
    check_recipe("int4-had", &["q<int4:g64>[576, 1536]", "rotate("]);
}

#[test]
fn unknown_recipe_lists_the_recipes() {
    let e = recipe("int5").expect_err("no such recipe").to_string();
    assert!(
        e.contains("unknown recipe `int5`") && e.contains("lut3"),
        "{e}"
    );
}

#[test]
fn perplexity_agrees_with_the_interpreter() {
    let Some(src) = smollm2_gguf() else { return };
    let m = open(&src, 16);
    let toks = m
        .tokenizer
        .encode("To be, or not to be, that is the question: whether 'tis nobler in the mind to suffer the slings and arrows", false)
        .expect("encode");
    let (mut a, mut b) = (cpu(&m), interp(&m));
    let (pa, na) = perplexity(&mut a, &toks, 8, &mut |_, _, _| {}).expect("cpu");
    let (pb, nb) = perplexity(&mut b, &toks, 8, &mut |_, _, _| {}).expect("interp");
    assert_eq!(na, nb);
    assert!(na >= 8, "scored {na} tokens");
    assert!((pa - pb).abs() / pb < 1e-3, "cpu {pa} vs interpreter {pb}");
    assert!(pa > 1.0 && pa.is_finite());
}
