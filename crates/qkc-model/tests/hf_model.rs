//! HF model folders in every imported format, opened as models (`Model::open` on the folder, as
//! `qkc generate DIR` does), compiled for the CPU through the default fusion pipeline, and run
//! against the reference interpreter (f64) on the same graph and weights.
//!
//! Each folder is a tiny Llama (or Qwen2) written by `common::hf_fixture` with random codes and
//! sane statistics. Per format the test checks: the graph binds every linear module in the
//! scheme the importer maps it to (no dense fallback); after fusion no `dequant` or `spmm` node
//! is left (outliers are the GEMV's CSR epilogue, act-order / SpQR's permutation its prologue);
//! the compiled logits over a 6-token prompt equal the interpreter's within max |Δ| / max |ref|
//! ≤ 1e-3 per step (the kernels sum in f32 in another order); the greedy continuation (6 tokens)
//! is the interpreter's.

mod common;

use common::hf_fixture::{write_model, Format, ModelOpts};
use common::run::{interp, open, rel_err};
use qkc_model::generate::{generate, Executor, Sampling};
use qkc_runtime::{CpuOptions, CpuProgram};

fn run(fmt: Format, opts: ModelOpts, seed: u64, scheme: &str) {
    let fx = write_model(&fmt, &opts, seed);
    let m = open(&fx.dir, 32);
    let linears = 7 * opts.layers;
    if !scheme.is_empty() {
        let bound = m.text.matches(&format!(": q<{scheme}>")).count();
        assert_eq!(
            bound, linears,
            "{fmt:?}: {bound} of {linears} linear modules are q<{scheme}>:\n{}",
            m.text
        );
    }
    assert_eq!(m.cfg.tied, opts.tied);
    assert_eq!(m.cfg.attn_bias, opts.qwen2);

    let mut fused = m.graph.clone();
    qkc_passes::default_pipeline(qkc_passes::Options::default())
        .run(&mut fused)
        .expect("passes");
    let ft = fused.to_string();
    assert!(
        !ft.contains("= dequant(") && !ft.contains("= spmm("),
        "{fmt:?}: unfused dequant/spmm left:\n{ft}"
    );
    let cpu =
        || CpuProgram::new(&fused, &m.weights, 1, CpuOptions::with_threads(2)).expect("compile");
    let reference = || interp(&m);

    let mut ids = m
        .tokenizer
        .encode("Hello the world", false)
        .expect("encode");
    ids.extend([7, 100, 200]);
    let (mut a, mut b) = (cpu(), reference());
    let mut worst = 0f32;
    for (pos, &id) in ids.iter().enumerate() {
        let x = a.step(&[id], pos).expect("cpu step");
        let y = b.step(&[id], pos).expect("interp step");
        assert!(
            x.iter().all(|v| v.is_finite()),
            "{fmt:?}: non-finite logits"
        );
        let mx = y.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!(mx > 1e-3, "{fmt:?}: degenerate logits (max |logit| {mx})");
        let err = rel_err(&x, &y);
        worst = worst.max(err);
        assert!(
            err <= 1e-3,
            "{fmt:?} step {pos}: max rel err {err:.3e} > 1e-3"
        );
    }
    let (mut a, mut b) = (cpu(), reference());
    let greedy = |e: &mut dyn Executor| {
        generate(e, &ids, 6, 32, Sampling::default(), &[], &mut |_| Ok(()))
            .expect("generate")
            .0
    };
    let (x, y) = (greedy(&mut a), greedy(&mut b));
    assert_eq!(x, y, "{fmt:?}: greedy tokens differ from the interpreter's");
    println!("{fmt:?}: logits max rel err {worst:.2e} (tolerance 1e-3), greedy {x:?}");
}

fn plain() -> ModelOpts {
    ModelOpts::default()
}

#[test]
fn dense_qwen2_with_biases_untied() {
    run(
        Format::Dense,
        ModelOpts {
            qwen2: true,
            ..plain()
        },
        101,
        "",
    );
}

#[test]
fn gptq_4bit_asym_act_order() {
    run(
        Format::gptq(4, 128, true, false, false),
        plain(),
        102,
        "int4:g128:asym:act",
    );
}

#[test]
fn gptq_2_3_8_bit() {
    run(
        Format::gptq(2, 32, false, true, true),
        plain(),
        103,
        "int2:g32",
    );
    run(
        Format::gptq(3, -1, false, true, true),
        plain(),
        104,
        "int3:pc",
    );
    run(
        Format::gptq(8, 32, true, false, true),
        plain(),
        105,
        "int8:g32:asym:act",
    );
}

#[test]
fn gptq_qwen2_tied_sharded() {
    run(
        Format::gptq(4, 128, false, true, false),
        ModelOpts {
            qwen2: true,
            tied: true,
            shards: 2,
            ..plain()
        },
        106,
        "int4:g128",
    );
}

#[test]
fn awq_and_compressed_tensors() {
    run(Format::AwqGemm, plain(), 107, "int4:g128:asym");
    run(Format::AwqGemv, plain(), 108, "int4:g128:asym");
    run(
        Format::Compressed {
            bits: 4,
            group: 128,
        },
        plain(),
        109,
        "int4:g128",
    );
}

#[test]
fn squeezellm_lut_with_outliers() {
    run(Format::SqueezeLlm { bits: 3 }, plain(), 110, "lut3");
    run(Format::SqueezeLlm { bits: 4 }, plain(), 111, "lut4");
}

#[test]
fn spqr_with_permutation_and_outliers() {
    run(Format::Spqr { perm: true }, plain(), 112, "spqr3:g16:perm");
    run(Format::Spqr { perm: false }, plain(), 113, "spqr3:g16");
}

#[test]
fn aqlm_1x16_and_2x8() {
    run(
        Format::Aqlm {
            codebooks: 1,
            nbits: 16,
        },
        plain(),
        114,
        "aqlm:1x16",
    );
    run(
        Format::Aqlm {
            codebooks: 2,
            nbits: 8,
        },
        plain(),
        115,
        "aqlm:2x8",
    );
}

#[test]
fn bitsandbytes_nf4_fp4() {
    run(
        Format::Bnb {
            nf4: true,
            double_quant: true,
        },
        plain(),
        116,
        "nf4:b64:dq",
    );
    run(
        Format::Bnb {
            nf4: false,
            double_quant: false,
        },
        plain(),
        117,
        "fp4:b64",
    );
}
