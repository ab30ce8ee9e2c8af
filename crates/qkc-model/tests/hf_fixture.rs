//! `qkc dequant` on the synthetic HF model folders of `common/hf_fixture.rs`: for every format
//! variant, every linear module (and the dense `lm_head`) must dequantize to the formula's
//! weight exactly (f32 `==`: bit-exact up to the sign of zero; SpQR within fp16 rounding). Each variant is its own test, and a failing
//! one lists every module that failed with the reader's message. Also: the fixture's tokenizer
//! loads with the `tokenizers` crate and round-trips, and its weights have sane statistics.

mod common;

use common::hf_fixture::{self, write_model, Fixture, Format, ModelOpts};

/// Write `fmt`, dequantize every expected module through `qkc_model::dequant::dequant`, and
/// fail listing every module that errs or differs.
fn check(fmt: Format, opts: ModelOpts, seed: u64) {
    let fx = write_model(&fmt, &opts, seed);
    let mut failures = Vec::new();
    for (prefix, (n, k, want)) in &fx.expected {
        match qkc_model::dequant::dequant(&fx.dir, prefix, None) {
            Err(e) => failures.push(format!("{prefix}: error: {e}")),
            Ok((gn, gk, got)) => {
                if (gn, gk) != (*n, *k) || got.len() != want.len() {
                    failures.push(format!(
                        "{prefix}: shape [{gn}, {gk}] ({} values), want [{n}, {k}]",
                        got.len()
                    ));
                    continue;
                }
                let tol = fx.tolerance.get(prefix);
                let bad: Vec<usize> = (0..want.len())
                    .filter(|&i| !hf_fixture::matches(got[i], want[i], tol.map(|t| t[i])))
                    .collect();
                if let Some(&i) = bad.first() {
                    failures.push(format!(
                        "{prefix}: {} of {} values differ; first at [{}, {}]: got {} want {}",
                        bad.len(),
                        want.len(),
                        i / k,
                        i % k,
                        got[i],
                        want[i]
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{fmt:?} {opts:?}: {} of {} modules fail:\n{}",
        failures.len(),
        fx.expected.len(),
        failures.join("\n")
    );
}

fn plain() -> ModelOpts {
    ModelOpts::default()
}

// ---------------------------------------------------------------- dense

#[test]
fn dense_f16() {
    check(Format::Dense, plain(), 1);
}

#[test]
fn dense_qwen2_with_biases() {
    check(
        Format::Dense,
        ModelOpts {
            qwen2: true,
            ..plain()
        },
        2,
    );
}

#[test]
fn dense_tied_embeddings() {
    check(
        Format::Dense,
        ModelOpts {
            tied: true,
            ..plain()
        },
        3,
    );
}

// ---------------------------------------------------------------- GPTQ

#[test]
fn gptq_4bit_g128_sym_v1() {
    check(Format::gptq(4, 128, false, true, false), plain(), 10);
}

#[test]
fn gptq_4bit_g128_asym_desc_act_v1() {
    check(Format::gptq(4, 128, true, false, false), plain(), 11);
}

#[test]
fn gptq_4bit_g128_asym_desc_act_v2() {
    check(Format::gptq(4, 128, true, false, true), plain(), 12);
}

#[test]
fn gptq_4bit_g128_desc_act_static_groups() {
    check(
        Format::Gptq {
            bits: 4,
            group: 128,
            desc_act: true,
            sym: true,
            v2: false,
            static_groups: true,
        },
        plain(),
        13,
    );
}

#[test]
fn gptq_2bit_g64_asym_v1() {
    check(Format::gptq(2, 64, false, false, false), plain(), 14);
}

#[test]
fn gptq_2bit_g32_sym_v2() {
    check(Format::gptq(2, 32, false, true, true), plain(), 15);
}

#[test]
fn gptq_3bit_g128_asym_desc_act_v1() {
    check(Format::gptq(3, 128, true, false, false), plain(), 16);
}

#[test]
fn gptq_3bit_per_channel_sym_v2() {
    check(Format::gptq(3, -1, false, true, true), plain(), 17);
}

#[test]
fn gptq_8bit_g128_sym_v1() {
    check(Format::gptq(8, 128, false, true, false), plain(), 18);
}

#[test]
fn gptq_8bit_g32_asym_desc_act_v2() {
    check(Format::gptq(8, 32, true, false, true), plain(), 19);
}

#[test]
fn gptq_4bit_quantize_config_json_sharded() {
    check(
        Format::gptq(4, 128, false, true, false),
        ModelOpts {
            quantize_config_json: true,
            shards: 3,
            ..plain()
        },
        20,
    );
}

#[test]
fn gptq_4bit_qwen2_tied() {
    check(
        Format::gptq(4, 128, true, false, false),
        ModelOpts {
            qwen2: true,
            tied: true,
            ..plain()
        },
        21,
    );
}

// ---------------------------------------------------------------- AWQ, compressed-tensors

#[test]
fn awq_gemm() {
    check(Format::AwqGemm, plain(), 30);
}

#[test]
fn awq_gemv() {
    check(Format::AwqGemv, plain(), 31);
}

#[test]
fn awq_gemm_qwen2_sharded() {
    check(
        Format::AwqGemm,
        ModelOpts {
            qwen2: true,
            shards: 2,
            ..plain()
        },
        32,
    );
}

#[test]
fn compressed_4bit_g128() {
    check(
        Format::Compressed {
            bits: 4,
            group: 128,
        },
        plain(),
        40,
    );
}

#[test]
fn compressed_8bit_channel() {
    check(Format::Compressed { bits: 8, group: 0 }, plain(), 41);
}

// ---------------------------------------------------------------- SqueezeLLM, SpQR

#[test]
fn squeezellm_3bit() {
    check(Format::SqueezeLlm { bits: 3 }, plain(), 50);
}

#[test]
fn squeezellm_4bit() {
    check(Format::SqueezeLlm { bits: 4 }, plain(), 51);
}

#[test]
fn spqr_without_perm() {
    check(Format::Spqr { perm: false }, plain(), 60);
}

#[test]
fn spqr_with_perm() {
    check(Format::Spqr { perm: true }, plain(), 61);
}

// ---------------------------------------------------------------- AQLM, bitsandbytes

#[test]
fn aqlm_1x16() {
    check(
        Format::Aqlm {
            codebooks: 1,
            nbits: 16,
        },
        plain(),
        70,
    );
}

#[test]
fn aqlm_2x8_sharded() {
    check(
        Format::Aqlm {
            codebooks: 2,
            nbits: 8,
        },
        ModelOpts {
            shards: 2,
            ..plain()
        },
        71,
    );
}

#[test]
fn bnb_nf4() {
    check(
        Format::Bnb {
            nf4: true,
            double_quant: false,
        },
        plain(),
        80,
    );
}

#[test]
fn bnb_nf4_double_quant() {
    check(
        Format::Bnb {
            nf4: true,
            double_quant: true,
        },
        plain(),
        81,
    );
}

#[test]
fn bnb_fp4() {
    check(
        Format::Bnb {
            nf4: false,
            double_quant: false,
        },
        plain(),
        82,
    );
}

#[test]
fn bnb_fp4_double_quant() {
    check(
        Format::Bnb {
            nf4: false,
            double_quant: true,
        },
        plain(),
        83,
    );
}

// ---------------------------------------------------------------- the fixture itself

/// Every format variant the tests above use.
fn all_formats() -> Vec<Format> {
    vec![
        Format::Dense,
        Format::gptq(2, 64, false, false, false),
        Format::gptq(3, 128, true, false, false),
        Format::gptq(4, 128, true, false, true),
        Format::gptq(8, 32, true, false, true),
        Format::gptq(3, -1, false, true, true),
        Format::AwqGemm,
        Format::AwqGemv,
        Format::Compressed {
            bits: 4,
            group: 128,
        },
        Format::Compressed { bits: 8, group: 0 },
        Format::SqueezeLlm { bits: 3 },
        Format::SqueezeLlm { bits: 4 },
        Format::Spqr { perm: true },
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
    ]
}

fn std_of(w: &[f32]) -> f64 {
    let n = w.len() as f64;
    let mean = w.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
    (w.iter()
        .map(|&x| (f64::from(x) - mean).powi(2))
        .sum::<f64>()
        / n)
        .sqrt()
}

#[test]
fn weights_have_sane_statistics_and_odd_sizes() {
    for fmt in all_formats() {
        let fx: Fixture = write_model(
            &fmt,
            &ModelOpts {
                layers: 1,
                ..ModelOpts::default()
            },
            7,
        );
        let g = hf_fixture::geometry(&fmt);
        assert!(g.hidden % 256 != 0 && g.intermediate % 256 != 0, "{fmt:?}");
        assert!(
            (g.kv_heads * g.head_dim) % 64 != 0,
            "{fmt:?}: k/v N is a multiple of 64"
        );
        for (p, (n, k, w)) in &fx.expected {
            assert!(w.iter().all(|x| x.is_finite()), "{fmt:?} {p}: not finite");
            let sd = std_of(w);
            let lo = if p == "lm_head" { 0.04 } else { 0.015 };
            assert!((lo..0.07).contains(&sd), "{fmt:?} {p} [{n}, {k}]: std {sd}");
            let zeros = w.iter().filter(|&&x| x == 0.0).count();
            assert!(zeros * 2 < w.len(), "{fmt:?} {p}: {zeros} zeros");
        }
        for (name, (_, v)) in &fx.dense {
            assert!(v.iter().all(|x| x.is_finite()), "{name}");
            if name.ends_with("norm.weight") {
                assert!(v.iter().all(|&x| (0.79..=1.21).contains(&x)), "{name}");
            }
        }
        let emb = &fx.dense["model.embed_tokens.weight"].1;
        assert!((0.4..0.6).contains(&std_of(emb)), "embedding std");
        assert_eq!(fx.cfg["vocab_size"], hf_fixture::VOCAB_SIZE);
        assert_eq!(fx.cfg["torch_dtype"], "float16");
        // qkc's own config reader agrees on the method and the shapes
        let folder = qkc_quant::hf::HfFolder::open(&fx.dir).expect("HfFolder::open");
        let want = match fmt {
            Format::Dense => "none",
            Format::Gptq { .. } => "gptq",
            Format::AwqGemm | Format::AwqGemv => "awq",
            Format::Compressed { .. } => "compressed-tensors",
            Format::SqueezeLlm { .. } => "squeezellm",
            Format::Spqr { .. } => "spqr",
            Format::Aqlm { .. } => "aqlm",
            Format::Bnb { .. } => "bitsandbytes",
        };
        assert_eq!(folder.method.name(), want);
        for (p, (n, k, _)) in &fx.expected {
            assert_eq!(
                folder.config.module_shape(p).expect("shape"),
                (*n, *k),
                "{p}"
            );
        }
    }
}

#[test]
fn outliers_are_half_to_one_percent() {
    // SqueezeLLM: the CSR `cols` count; SpQR: `col_vals`
    for (fmt, t) in [
        (Format::SqueezeLlm { bits: 4 }, "cols"),
        (Format::Spqr { perm: true }, "col_vals"),
    ] {
        let fx = write_model(&fmt, &ModelOpts::default(), 5);
        let folder = qkc_quant::hf::HfFolder::open(&fx.dir).expect("open");
        let p = "model.layers.1.mlp.down_proj";
        let (n, k, _) = fx.expected[p];
        let name = format!("{p}.{t}");
        let nnz = qkc_quant::hf::TensorSource::get(&folder, &name)
            .expect(&name)
            .shape[0];
        let frac = nnz as f64 / (n * k) as f64;
        assert!((0.004..0.011).contains(&frac), "{fmt:?}: {frac}");
    }
}

#[test]
fn tokenizer_loads_and_round_trips() {
    let fx = write_model(
        &Format::Dense,
        &ModelOpts {
            layers: 1,
            ..ModelOpts::default()
        },
        9,
    );
    let tok =
        tokenizers::Tokenizer::from_file(fx.dir.join("tokenizer.json")).expect("tokenizer.json");
    assert_eq!(tok.get_vocab_size(true), hf_fixture::VOCAB_SIZE);
    assert_eq!(fx.cfg["vocab_size"], tok.get_vocab_size(true));
    let enc = tok.encode("Hello the world", false).expect("encode");
    assert_eq!(enc.get_tokens(), ["Hello", "Ġthe", "Ġworld"]);
    let dec = tok.decode(enc.get_ids(), false).expect("decode");
    assert_eq!(dec, "Hello the world");
    // bytes outside the merges fall back to byte symbols; specials are single tokens
    let text = "<|im_start|>user\nçà va? 123<|im_end|>";
    let enc = tok.encode(text, false).expect("encode");
    let start = hf_fixture::special_id("<|im_start|>");
    let end = hf_fixture::special_id("<|im_end|>");
    assert_eq!(enc.get_ids().first(), Some(&start));
    assert_eq!(enc.get_ids().last(), Some(&end));
    assert_eq!(tok.decode(enc.get_ids(), false).expect("decode"), text);
    assert_eq!(
        tok.decode(enc.get_ids(), true).expect("decode"),
        "user\nçà va? 123"
    );
    assert_eq!(tok.token_to_id("<|endoftext|>"), Some(start - 1));
    let tc: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fx.dir.join("tokenizer_config.json")).expect("read"),
    )
    .expect("json");
    assert_eq!(tc["eos_token"], "<|im_end|>");
    assert_eq!(fx.cfg["eos_token_id"], end);
    assert!(tc["chat_template"]
        .as_str()
        .is_some_and(|t| t.contains("<|im_start|>")));
}
