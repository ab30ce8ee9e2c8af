//! The Llama builder's graph, compiled for the CPU, matches the reference interpreter step by
//! step (prefill of 3 tokens, then decode), on seed-synthesized weights.

use std::collections::HashMap;

use qkc_ir::interp::{Interpreter, Tensor, Weights};
use qkc_ir::ops::RopeStyle;
use qkc_model::llama::{build_graph, build_qir, Binding, LlamaConfig, Role};
use qkc_runtime::{CpuOptions, CpuProgram};

fn tiny(style: RopeStyle, tied: bool) -> LlamaConfig {
    LlamaConfig {
        name: "tiny-llama".into(),
        vocab: 300,
        hidden: 128,
        ffn: 192,
        layers: 2,
        heads: 4,
        kv_heads: 2,
        head_dim: 32,
        rope_theta: 100000.0,
        rope_style: style,
        eps: 1e-5,
        max_seq: 64,
        tied,
        context: 64,
        act_bits: None,
        act_group: None,
        attn_bias: false,
    }
}

fn ids_pos(ids: &[i32], p0: usize) -> HashMap<String, Tensor> {
    let n = ids.len();
    HashMap::from([
        (
            "ids".to_string(),
            Tensor::new(vec![n], ids.iter().map(|&i| f64::from(i)).collect()),
        ),
        (
            "pos".to_string(),
            Tensor::new(vec![n], (p0..p0 + n).map(|p| p as f64).collect()),
        ),
    ])
}

fn rel(a: &Tensor, b: &Tensor) -> f64 {
    let m = b.data.iter().fold(0f64, |m, x| m.max(x.abs()));
    a.data
        .iter()
        .zip(&b.data)
        .fold(0f64, |e, (x, y)| e.max((x - y).abs()))
        / m
}

fn check(cfg: &LlamaConfig, ty: &dyn Fn(Role) -> String) {
    let name = |r: Role| r.gguf_name();
    let b = Binding { name: &name, ty };
    let g = build_graph(cfg, &b).expect("graph");
    let mut fused = g.clone();
    qkc_passes::default_pipeline(qkc_passes::Options::default())
        .run(&mut fused)
        .expect("passes");
    let w = Weights::Seed(7);
    let mut interp = Interpreter::new(&g, &w).expect("bind");
    let mut prog = CpuProgram::new(&fused, &w, 1, CpuOptions::with_threads(2)).expect("compile");
    let toks = [5, 17, 299, 0, 42];
    for (p, &t) in toks.iter().enumerate() {
        let inp = ids_pos(&[t], p);
        let want = interp.run(&inp).expect("interp");
        let got = prog.run(&inp).expect("run");
        assert_eq!(got[0].1.data.len(), cfg.vocab);
        let e = rel(&got[0].1, &want[0].1);
        // f32 kernels against the f64 interpreter, through 2 blocks: 1e-3 relative to max |logit|.
        assert!(e < 1e-3, "step {p}: max rel err {e:.3e}");
    }
}

#[test]
fn quantized_llama_matches_interpreter_on_cpu() {
    let cfg = tiny(RopeStyle::Interleaved, true);
    check(&cfg, &|r: Role| match r {
        Role::Embedding | Role::FinalNorm | Role::AttnNorm(_) | Role::FfnNorm(_) => "f32".into(),
        Role::Head => "q<int8:g32>".into(),
        _ => "q<int4:g32:asym>".into(),
    });
}

/// llama.cpp's numerics: int8 activations per 32-block in front of every quantized layer (the
/// CPU's `gemv_u4_cpu_a8g` / `gemv_u8_cpu_a8g` kernels), against the interpreter's meaning.
#[test]
fn quantized_llama_with_block_int8_activations_matches_interpreter_on_cpu() {
    let cfg = LlamaConfig {
        act_bits: Some(8),
        act_group: Some(32),
        ..tiny(RopeStyle::Interleaved, true)
    };
    let ty = |r: Role| -> String {
        match r {
            Role::Embedding | Role::FinalNorm | Role::AttnNorm(_) | Role::FfnNorm(_) => {
                "f32".into()
            }
            Role::Head => "q<int8:g32>".into(),
            _ => "q<int4:g32:min>".into(),
        }
    };
    let text = build_qir(
        &cfg,
        &Binding {
            name: &|r| r.gguf_name(),
            ty: &ty,
        },
    )
    .expect("text");
    assert!(text.contains("{bits = 8, group = 32}"), "{text}");
    check(&cfg, &ty);
}

#[test]
fn w4a8_llama_with_block_activation_scales_matches_interpreter_on_cpu() {
    // int8 activations with a scale per 32-block in front of every quantized layer (the
    // llama.cpp form): the int8-dot templates on the CPU
    let cfg = LlamaConfig {
        act_bits: Some(8),
        ..tiny(RopeStyle::Interleaved, true)
    };
    check(&cfg, &|r: Role| match r {
        Role::Embedding | Role::FinalNorm | Role::AttnNorm(_) | Role::FfnNorm(_) => "f32".into(),
        Role::Head => "q<int8:g32>".into(),
        _ => "q<int4:g32:min>".into(),
    });
}

#[test]
fn dense_untied_llama_matches_interpreter_on_cpu() {
    let cfg = tiny(RopeStyle::Half, false);
    check(&cfg, &|_| "f32".into());
}

#[test]
fn text_is_stable() {
    let cfg = LlamaConfig {
        layers: 1,
        ..tiny(RopeStyle::Interleaved, true)
    };
    let name = |r: Role| r.gguf_name();
    let ty = |r: Role| {
        if r.is_linear() {
            "q<int4:g32:asym>".to_string()
        } else {
            "f32".to_string()
        }
    };
    insta::assert_snapshot!(build_qir(
        &cfg,
        &Binding {
            name: &name,
            ty: &ty
        }
    )
    .expect("text"));
}

#[test]
fn bad_config_is_named() {
    let cfg = LlamaConfig {
        kv_heads: 3,
        ..tiny(RopeStyle::Half, true)
    };
    let e = build_qir(
        &cfg,
        &Binding {
            name: &|r| r.gguf_name(),
            ty: &|_| "f32".into(),
        },
    )
    .expect_err("3 KV heads do not divide 4 query heads");
    assert!(
        e.to_string()
            .contains("4 query heads are not a multiple of 3 KV heads"),
        "{e}"
    );
}
