//! `qkc dequant` on HF model folders built here: an AQLM 2x8 checkpoint written by a
//! formula-level packer (FORMATS.md §6), sharded with an index; and the errors a folder gets
//! (missing shard, unknown / unsupported quant_method, a shape that disagrees with config.json).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use half::f16;
use rand::{Rng, SeedableRng};

fn qkc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_qkc"))
        .args(args)
        .output()
        .expect("run qkc")
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("qkc-hf-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// hidden 96, 3 heads of 32 (1 KV head), FFN 200: q_proj [96, 96], k_proj [32, 96], down [96, 200].
fn config(quant: &str) -> String {
    format!(
        r#"{{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 96,
  "intermediate_size": 200, "num_hidden_layers": 2, "num_attention_heads": 3, "num_key_value_heads": 1,
  "vocab_size": 128, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": true,
  "quantization_config": {quant}}}"#
    )
}

struct T {
    name: String,
    dtype: safetensors::Dtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

fn write_st(path: &Path, ts: &[T]) {
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = ts
        .iter()
        .map(|t| {
            (
                t.name.clone(),
                safetensors::tensor::TensorView::new(t.dtype, t.shape.clone(), &t.data)
                    .expect("view"),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, path).expect("write safetensors");
}

/// AQLM 2x8 module `[n, k]`: random signed int8 codes, f16 codebooks and scales; returns the
/// tensors and the dense weight by the formula W[o, i·8+b] = scale[o] · Σ_c book[c][code mod 256][0][b].
fn aqlm_module(
    prefix: &str,
    n: usize,
    k: usize,
    rng: &mut rand_chacha::ChaCha8Rng,
) -> (Vec<T>, Vec<f32>) {
    let (c, m, ig) = (2usize, 256usize, 8usize);
    let codes: Vec<i8> = (0..n * (k / ig) * c).map(|_| rng.gen::<i8>()).collect();
    let books: Vec<f16> = (0..c * m * ig)
        .map(|_| f16::from_f32(rng.gen_range(-1.0..1.0)))
        .collect();
    let scales: Vec<f16> = (0..n)
        .map(|_| f16::from_f32(rng.gen_range(0.01..0.1)))
        .collect();
    let mut w = vec![0f32; n * k];
    for o in 0..n {
        for i in 0..k / ig {
            for b in 0..ig {
                let mut acc = 0f32;
                for cb in 0..c {
                    let code = codes[(o * (k / ig) + i) * c + cb] as u8 as usize;
                    acc += books[(cb * m + code) * ig + b].to_f32();
                }
                w[o * k + i * ig + b] = scales[o].to_f32() * acc;
            }
        }
    }
    let ts = vec![
        T {
            name: format!("{prefix}.codes"),
            dtype: safetensors::Dtype::I8,
            shape: vec![n, k / ig, c],
            data: codes.iter().map(|&v| v as u8).collect(),
        },
        T {
            name: format!("{prefix}.codebooks"),
            dtype: safetensors::Dtype::F16,
            shape: vec![c, m, 1, ig],
            data: books.iter().flat_map(|v| v.to_le_bytes()).collect(),
        },
        T {
            name: format!("{prefix}.scales"),
            dtype: safetensors::Dtype::F16,
            shape: vec![n, 1, 1, 1],
            data: scales.iter().flat_map(|v| v.to_le_bytes()).collect(),
        },
    ];
    (ts, w)
}

const AQLM: &str = r#"{"quant_method": "aqlm", "nbits_per_codebook": 8, "num_codebooks": 2, "in_group_size": 8, "out_group_size": 1}"#;

fn read_npy(p: &Path) -> (String, Vec<f32>) {
    let b = std::fs::read(p).expect("npy");
    let hl = u16::from_le_bytes([b[8], b[9]]) as usize;
    let h = String::from_utf8_lossy(&b[10..10 + hl]).into_owned();
    (
        h,
        b[10 + hl..]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    )
}

#[test]
fn aqlm_folder_with_shards_dequantizes_exactly() {
    let d = tmp("aqlm");
    std::fs::write(d.join("config.json"), config(AQLM)).expect("config");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let (t0, w_down) = aqlm_module("model.layers.1.mlp.down_proj", 96, 200, &mut rng);
    let (t1, w_k) = aqlm_module("model.layers.0.self_attn.k_proj", 32, 96, &mut rng);
    write_st(&d.join("model-00001-of-00002.safetensors"), &t0);
    write_st(&d.join("model-00002-of-00002.safetensors"), &t1);
    let mut map = serde_json::Map::new();
    for t in &t0 {
        map.insert(t.name.clone(), "model-00001-of-00002.safetensors".into());
    }
    for t in &t1 {
        map.insert(t.name.clone(), "model-00002-of-00002.safetensors".into());
    }
    std::fs::write(
        d.join("model.safetensors.index.json"),
        serde_json::json!({ "weight_map": map }).to_string(),
    )
    .expect("index");
    for (module, want, shape) in [
        ("model.layers.1.mlp.down_proj", &w_down, "(96, 200)"),
        ("model.layers.0.self_attn.k_proj", &w_k, "(32, 96)"),
    ] {
        let out = d.join("w.npy");
        let o = qkc(&[
            "dequant",
            "--in",
            d.to_str().expect("p"),
            "--tensor",
            module,
            "--out",
            out.to_str().expect("p"),
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let (h, got) = read_npy(&out);
        assert!(h.contains(shape), "{h}");
        assert_eq!(got.len(), want.len());
        let bad = got
            .iter()
            .zip(want.iter())
            .filter(|(a, b)| a.to_bits() != b.to_bits())
            .count();
        assert_eq!(
            bad, 0,
            "{module}: {bad} values differ from the AQLM formula"
        );
    }
    // a shard the index lists but the folder lacks is named, with a tensor it holds
    std::fs::remove_file(d.join("model-00002-of-00002.safetensors")).expect("rm");
    let o = qkc(&[
        "dequant",
        "--in",
        d.to_str().expect("p"),
        "--tensor",
        "model.layers.1.mlp.down_proj",
        "--out",
        "/dev/null",
    ]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        e.contains("model-00002-of-00002.safetensors") && e.contains("k_proj"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn folder_errors_name_the_problem() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(12);
    let (t, _) = aqlm_module("model.layers.0.mlp.down_proj", 96, 200, &mut rng);
    for (quant, want) in [
        (
            r#"{"quant_method": "mystery"}"#,
            "unknown quant_method `mystery`",
        ),
        // a GPTQ config over tensors that are not GPTQ's: the missing tensor is named
        (
            r#"{"quant_method": "gptq", "bits": 4, "group_size": 8, "desc_act": false, "sym": true}"#,
            "model.layers.0.mlp.down_proj.qweight",
        ),
        // config says FFN 200 but the module is stored as 96×200 → asked for up_proj [200, 96]
    ] {
        let d = tmp("err");
        std::fs::write(d.join("config.json"), config(quant)).expect("config");
        write_st(&d.join("model.safetensors"), &t);
        let o = qkc(&[
            "dequant",
            "--in",
            d.to_str().expect("p"),
            "--tensor",
            "model.layers.0.mlp.down_proj",
            "--out",
            "/dev/null",
        ]);
        let e = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{e}");
        assert!(e.contains(want), "{e}");
        let _ = std::fs::remove_dir_all(&d);
    }
    // shapes: the stored codes disagree with config.json's sizes
    let d = tmp("shape");
    std::fs::write(
        d.join("config.json"),
        config(AQLM).replace("\"intermediate_size\": 200", "\"intermediate_size\": 208"),
    )
    .expect("config");
    write_st(&d.join("model.safetensors"), &t);
    let o = qkc(&[
        "dequant",
        "--in",
        d.to_str().expect("p"),
        "--tensor",
        "model.layers.0.mlp.down_proj",
        "--out",
        "/dev/null",
    ]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(
        e.contains("model.layers.0.mlp.down_proj.codes"),
        "the error names the tensor: {e}"
    );
    assert!(!e.contains("panicked"));
    let _ = std::fs::remove_dir_all(&d);
}
