//! HF model folders through the CLI, as a user runs them: `qkc dequant DIR`, `qkc import DIR -o
//! OUT` then `qkc generate OUT`, `qkc generate DIR`; and the errors a folder gets (a missing
//! shard or tokenizer, an unknown quant_method, an unsupported bit width, a shape that disagrees
//! with config.json, an unsupported architecture or RoPE scaling, a corrupt pickle), each naming
//! the file and the tensor, exit code 1, no panic.
//!
//! The folders are the shared fixtures (`qkc-model/tests/common/hf_fixture.rs`): tiny complete
//! Llama/Qwen2 checkpoints packed by formula-level packers, with their exact dense weights.

use std::path::Path;
use std::process::{Command, Output};

#[path = "../../qkc-model/tests/common/hf_fixture.rs"]
#[allow(dead_code)]
mod hf_fixture;

use hf_fixture::{write_model, Format, ModelOpts};

fn qkc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_qkc"))
        .args(args)
        .output()
        .expect("run qkc")
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

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

/// Exit code 1, an error mentioning every `want`, no panic.
fn fails_with(o: &Output, want: &[&str]) {
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(!e.contains("panicked"), "{e}");
    for w in want {
        assert!(e.contains(w), "the error should name `{w}`:\n{e}");
    }
}

#[test]
fn dequant_is_exact_for_sharded_aqlm_and_act_order_gptq() {
    for (fmt, opts) in [
        (
            Format::Aqlm {
                codebooks: 2,
                nbits: 8,
            },
            ModelOpts {
                shards: 2,
                ..ModelOpts::default()
            },
        ),
        (
            Format::gptq(4, 128, true, false, false),
            ModelOpts::default(),
        ),
    ] {
        let fx = write_model(&fmt, &opts, 7);
        for module in [
            "model.layers.1.mlp.down_proj",
            "model.layers.0.self_attn.k_proj",
        ] {
            let (n, k, want) = &fx.expected[module];
            let out = fx.dir.join("w.npy");
            let o = qkc(&[
                "dequant",
                "--in",
                s(&fx.dir),
                "--tensor",
                module,
                "--out",
                s(&out),
            ]);
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            let (h, got) = read_npy(&out);
            assert!(h.contains(&format!("({n}, {k})")), "{h}");
            let bad = got
                .iter()
                .zip(want.iter())
                .filter(|(a, b)| a.to_bits() != b.to_bits())
                .count();
            assert_eq!(got.len(), want.len());
            assert_eq!(
                bad, 0,
                "{fmt:?} {module}: {bad} values differ from the formula"
            );
        }
    }
}

/// `qkc import` then `qkc generate` from the import directory, for a checkpoint of every format:
/// the compiled CPU text equals the interpreter's.
#[test]
fn every_format_imports_and_generates() {
    let formats = [
        Format::Dense,
        Format::gptq(4, 128, true, false, false),
        Format::gptq(3, -1, false, true, true),
        Format::gptq(2, 32, false, true, true),
        Format::gptq(8, 32, true, false, true),
        Format::AwqGemm,
        Format::AwqGemv,
        Format::Compressed {
            bits: 4,
            group: 128,
        },
        Format::SqueezeLlm { bits: 3 },
        Format::Spqr { perm: false },
        Format::Aqlm {
            codebooks: 1,
            nbits: 16,
        },
        Format::Aqlm {
            codebooks: 2,
            nbits: 8,
        },
        Format::Bnb {
            nf4: true,
            double_quant: true,
        },
        Format::Bnb {
            nf4: false,
            double_quant: false,
        },
    ];
    for (i, fmt) in formats.iter().enumerate() {
        let fx = write_model(fmt, &ModelOpts::default(), 20 + i as u64);
        let out = fx.dir.join("imported");
        let o = qkc(&["import", s(&fx.dir), "-o", s(&out)]);
        assert!(
            o.status.success(),
            "{fmt:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let gen = |target: &str| {
            let o = qkc(&[
                "generate",
                s(&out),
                "--prompt",
                "Hello the world",
                "--max-tokens",
                "5",
                "--target",
                target,
                "-q",
            ]);
            assert!(
                o.status.success(),
                "{fmt:?}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            String::from_utf8_lossy(&o.stdout).into_owned()
        };
        // (random weights: the text may be control bytes the tokenizer drops; equality is the check)
        let a = gen("cpu");
        assert_eq!(a, gen("interp"), "{fmt:?}: compiled CPU vs interpreter");
    }
}

#[test]
fn import_then_generate_equals_generate_from_the_folder() {
    let fx = write_model(&Format::Spqr { perm: true }, &ModelOpts::default(), 8);
    let out = fx.dir.join("imported");
    let o = qkc(&["import", s(&fx.dir), "-o", s(&out)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(out.join("model.qir")).expect("model.qir");
    assert!(text.contains("q<spqr3:g16:perm>"), "{text}");
    let manifest = std::fs::read_to_string(out.join("qkc-import.json")).expect("manifest");
    assert!(manifest.contains("\"format\": \"hf\""), "{manifest}");
    // the weights are not copied
    assert!(std::fs::read_dir(&out).expect("ls").all(|e| !e
        .expect("entry")
        .path()
        .to_string_lossy()
        .ends_with(".safetensors")));

    let gen = |model: &Path, target: &str| {
        let o = qkc(&[
            "generate",
            s(model),
            "--prompt",
            "Hello the world",
            "--max-tokens",
            "6",
            "--target",
            target,
            "-q",
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let a = gen(&out, "cpu");
    assert!(!a.trim().is_empty(), "no text generated");
    assert_eq!(a, gen(&fx.dir, "cpu"), "import dir vs folder");
    assert_eq!(a, gen(&out, "interp"), "compiled CPU vs interpreter");

    // --chat renders tokenizer_config.json's ChatML template
    let o = qkc(&[
        "generate",
        s(&fx.dir),
        "--chat",
        "--prompt",
        "Hello",
        "--max-tokens",
        "3",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn folder_errors_name_the_problem() {
    let gen = |dir: &Path| qkc(&["generate", s(dir), "--prompt", "Hello", "--max-tokens", "2"]);
    let dequant = |dir: &Path, module: &str| {
        qkc(&[
            "dequant",
            "--in",
            s(dir),
            "--tensor",
            module,
            "--out",
            "/dev/null",
        ])
    };
    let edit_config = |dir: &Path, f: &dyn Fn(&mut serde_json::Value)| {
        let p = dir.join("config.json");
        let mut c: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&p).expect("read")).expect("json");
        f(&mut c);
        std::fs::write(&p, c.to_string()).expect("write");
    };
    let gptq = Format::gptq(4, 128, false, true, false);

    // a shard the index lists but the folder lacks: named, with a tensor it holds
    let fx = write_model(
        &gptq,
        &ModelOpts {
            shards: 2,
            ..ModelOpts::default()
        },
        9,
    );
    std::fs::remove_file(fx.dir.join("model-00002-of-00002.safetensors")).expect("rm");
    fails_with(
        &gen(&fx.dir),
        &["model-00002-of-00002.safetensors", "places tensor"],
    );

    // no tokenizer.json
    let fx = write_model(&gptq, &ModelOpts::default(), 10);
    std::fs::remove_file(fx.dir.join("tokenizer.json")).expect("rm");
    fails_with(&gen(&fx.dir), &["tokenizer.json"]);

    // unknown quant_method; unsupported bit width
    let fx = write_model(&gptq, &ModelOpts::default(), 11);
    edit_config(&fx.dir, &|c| {
        c["quantization_config"]["quant_method"] = "mystery".into()
    });
    fails_with(
        &gen(&fx.dir),
        &["config.json", "unknown quant_method `mystery`"],
    );
    edit_config(&fx.dir, &|c| {
        c["quantization_config"]["quant_method"] = "gptq".into();
        c["quantization_config"]["bits"] = 5.into();
    });
    fails_with(
        &dequant(&fx.dir, "model.layers.0.mlp.up_proj"),
        &["model.layers.0.mlp.up_proj", "5"],
    );

    // a shape that disagrees with config.json: the tensor and the file are named
    let fx = write_model(&gptq, &ModelOpts::default(), 12);
    edit_config(&fx.dir, &|c| {
        let f = c["intermediate_size"].as_u64().expect("int");
        c["intermediate_size"] = (f + 128).into();
    });
    fails_with(
        &gen(&fx.dir),
        &["model.layers.0.mlp.gate_proj", "model.safetensors"],
    );

    // an architecture qkc does not build; RoPE scaling it does not implement
    let fx = write_model(&Format::Dense, &ModelOpts::default(), 13);
    edit_config(&fx.dir, &|c| {
        c["architectures"] = serde_json::json!(["GPT2LMHeadModel"])
    });
    fails_with(&gen(&fx.dir), &["config.json", "GPT2LMHeadModel"]);
    edit_config(&fx.dir, &|c| {
        c["architectures"] = serde_json::json!(["LlamaForCausalLM"]);
        c["rope_scaling"] = serde_json::json!({"rope_type": "llama3", "factor": 8.0});
    });
    fails_with(&gen(&fx.dir), &["config.json", "rope_scaling"]);

    // --act-bits is for GGUF models
    edit_config(&fx.dir, &|c| c["rope_scaling"] = serde_json::Value::Null);
    let o = qkc(&[
        "generate",
        s(&fx.dir),
        "--prompt",
        "Hello",
        "--act-bits",
        "8",
    ]);
    fails_with(&o, &["--act-bits"]);

    // a corrupt pickle (SqueezeLLM ships torch .pt files)
    let fx = write_model(&Format::SqueezeLlm { bits: 4 }, &ModelOpts::default(), 14);
    std::fs::remove_file(fx.dir.join("model.safetensors")).expect("rm");
    std::fs::write(
        fx.dir.join("pytorch_model.bin"),
        b"PK\x03\x04 not really a zip",
    )
    .expect("w");
    fails_with(&gen(&fx.dir), &["pytorch_model.bin"]);
}
