//! SmolLM2-135M as an HF model folder: the GGUF's weights dequantized to f32 safetensors under
//! HF names (q/k rows un-permuted back to HF's half-split RoPE order, as llama.cpp's converter
//! permuted them), config.json, tokenizer.json and tokenizer_config.json written from the GGUF.
//! Opened as an HF folder, compiled for the CPU, it must give the GGUF model's logits (the same
//! weights, f32-exact: Q4_1's `d·q + m` with f16 `d`, `m` is exact in f32) and the same greedy
//! tokens. This checks the HF path end to end on a real model: config, names, RoPE order, tied
//! head, tokenizer, chat template.
//!
//! Tolerance: max |logit − logit_gguf| / max |logit_gguf| ≤ 1e-3 per step (two compiled programs
//! summing the same products in different orders through 30 blocks).

mod common;

use std::collections::BTreeMap;

use common::run::{cpu, open, rel_err, smollm2_gguf};
use qkc_model::generate::{generate, Executor, Sampling};
use qkc_model::llama::Role;
use qkc_model::Model;
use safetensors::tensor::TensorView;

/// Write the GGUF model as an HF folder of f32 weights.
fn write_hf(gguf: &Model, src: &std::path::Path, dir: &std::path::Path) {
    let f = qkc_quant::gguf::GgufFile::open(src).expect("gguf");
    let cfg = &gguf.cfg;
    let mut tensors: BTreeMap<String, (Vec<usize>, Vec<u8>)> = BTreeMap::new();
    for r in cfg.roles() {
        let mut w = f.dequantize(&r.gguf_name()).expect("dequantize");
        let shape = cfg.shape(r);
        let heads = match r {
            Role::Q(_) => Some(cfg.heads),
            Role::K(_) => Some(cfg.kv_heads),
            _ => None,
        };
        if let Some(nh) = heads {
            // GGUF row h·hd + 2i + j holds HF row h·hd + j·hd/2 + i
            let (hd, k) = (cfg.head_dim, shape[1]);
            let mut o = vec![0f32; w.len()];
            for h in 0..nh {
                for i in 0..hd / 2 {
                    for j in 0..2 {
                        let g = h * hd + 2 * i + j;
                        let hf = h * hd + j * hd / 2 + i;
                        o[hf * k..(hf + 1) * k].copy_from_slice(&w[g * k..(g + 1) * k]);
                    }
                }
            }
            w = o;
        }
        let bytes = w.iter().flat_map(|x| x.to_le_bytes()).collect();
        tensors.insert(r.hf_tensor(), (shape, bytes));
    }
    let views: BTreeMap<String, TensorView<'_>> = tensors
        .iter()
        .map(|(n, (s, b))| {
            (
                n.clone(),
                TensorView::new(safetensors::Dtype::F32, s.clone(), b).expect("view"),
            )
        })
        .collect();
    std::fs::create_dir_all(dir).expect("mkdir");
    safetensors::tensor::serialize_to_file(views, None, &dir.join("model.safetensors"))
        .expect("write safetensors");
    let config = serde_json::json!({
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": cfg.hidden,
        "intermediate_size": cfg.ffn,
        "num_hidden_layers": cfg.layers,
        "num_attention_heads": cfg.heads,
        "num_key_value_heads": cfg.kv_heads,
        "rope_theta": cfg.rope_theta,
        "rms_norm_eps": cfg.eps,
        "vocab_size": cfg.vocab,
        "tie_word_embeddings": true,
        "max_position_embeddings": cfg.context,
        "hidden_act": "silu",
        "rope_scaling": null,
        "torch_dtype": "float32"
    });
    std::fs::write(dir.join("config.json"), config.to_string()).expect("config");
    std::fs::write(
        dir.join("tokenizer.json"),
        gguf.tokenizer.to_json().expect("tokenizer json"),
    )
    .expect("tokenizer");
    let tok = |id: Option<u32>| {
        id.and_then(|i| gguf.tokenizer.id_to_token(i))
            .unwrap_or_default()
    };
    let tc = serde_json::json!({
        "bos_token": tok(gguf.tokenizer.bos()),
        "eos_token": tok(gguf.tokenizer.eos()),
        "chat_template": gguf.chat_template,
    });
    std::fs::write(dir.join("tokenizer_config.json"), tc.to_string()).expect("tokenizer_config");
}

#[test]
fn smollm2_as_an_hf_folder_matches_the_gguf_model() {
    let Some(p) = smollm2_gguf() else { return };
    let gguf = open(&p, 64);
    let dir = std::env::temp_dir().join(format!("qkc_smollm2_hf_{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    write_hf(&gguf, &p, &dir);
    let hf = open(&dir, 64);
    assert_eq!(hf.cfg.rope_style, qkc_ir::ops::RopeStyle::Half);
    assert!(hf.cfg.tied);

    let prompt = gguf
        .chat_prompt("What is the capital of France?")
        .expect("chat");
    let prompt_hf = hf
        .chat_prompt("What is the capital of France?")
        .expect("chat hf");
    assert_eq!(prompt, prompt_hf, "the chat templates render differently");
    let ids = gguf.tokenizer.encode(&prompt, true).expect("encode");
    let ids_hf = hf.tokenizer.encode(&prompt, true).expect("encode hf");
    assert_eq!(ids, ids_hf, "tokenizer.json encodes differently");

    let (mut a, mut b) = (cpu(&gguf), cpu(&hf));
    let mut worst = 0f32;
    for (pos, &id) in ids.iter().enumerate().take(16) {
        let x = a.step(&[id], pos).expect("gguf step");
        let y = b.step(&[id], pos).expect("hf step");
        assert!(
            y.iter().all(|v| v.is_finite()),
            "non-finite logits at {pos}"
        );
        let err = rel_err(&y, &x);
        worst = worst.max(err);
        assert!(err < 1e-3, "step {pos}: max rel err {err:.3e} over 1e-3");
    }
    println!("HF folder vs GGUF logits over 16 tokens: max rel err {worst:.2e} (tolerance 1e-3)");

    let (mut a, mut b) = (cpu(&gguf), cpu(&hf));
    let stop = gguf.stop_tokens();
    let run = |e: &mut dyn Executor| {
        generate(e, &ids, 10, 64, Sampling::default(), &stop, &mut |_| Ok(()))
            .expect("generate")
            .0
    };
    let (x, y) = (run(&mut a), run(&mut b));
    assert_eq!(x, y, "greedy tokens differ");
    let text = hf.tokenizer.decode(&y).expect("decode");
    println!("HF folder answers: {text}");
    assert!(text.contains("Paris"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}
