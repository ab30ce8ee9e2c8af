//! GPTQ, AWQ and compressed-tensors importers and the HF folder reader (`qkc_quant::hf`).
//!
//! Every checkpoint here is built by formula-level packers written from FORMATS.md
//! and the reference packers' loops (AutoGPTQ `pack()`, including its 3-bit word-boundary code;
//! AutoAWQ's GEMM `AWQ_ORDER` and GEMV natural order with `calculate_zeros_width` padding;
//! compressed-tensors `pack_to_int32`), never qkc's packing code. They are written to a temp folder
//! (config.json for a 2-layer Llama with odd sizes, the quantization config, safetensors shards
//! through the `safetensors` crate) and read back through `HfFolder`. The reference weights are
//! the formulas in f32: `scale · (q − zero)` is exact in f32 (≤ 11 + 9 significant bits), so the
//! check is bit-exact. (GPTQ's torch fallback and compressed-tensors compute in f16/bf16, i.e.
//! round this exact product once more; qkc keeps the exact value.)
//!
//! The packers and the folder writer live in `common/hf_pack.rs` (shared with qkc-model's HF
//! fixture).

#[path = "common/hf_pack.rs"]
mod hf_pack;

use half::{bf16, f16};
use qkc_quant::hf::awq::{self, AwqParams, AwqVersion};
use qkc_quant::hf::compressed;
use qkc_quant::hf::folder::QuantMethod;
use qkc_quant::hf::gptq::{self, GptqFormat, GptqParams};
use qkc_quant::hf::{dequant_module, HfError, HfFolder};
use qkc_quant::{QuantTensor, Scheme};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

use hf_pack::*;

// ---------------------------------------------------------------- folders

fn llama_config(hidden: usize, inter: usize, quant: Option<Value>) -> Value {
    let mut c = json!({
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": hidden,
        "intermediate_size": inter,
        "num_hidden_layers": 2,
        "num_attention_heads": 6,
        "num_key_value_heads": 2,
        "rope_theta": 500000.0,
        "rms_norm_eps": 1e-5,
        "vocab_size": 1000,
        "tie_word_embeddings": false,
        "max_position_embeddings": 4096
    });
    if let Some(q) = quant {
        c["quantization_config"] = q;
    }
    c
}

fn bits_of(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn assert_bit_exact(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    if let Some(i) = (0..got.len()).find(|&i| got[i].to_bits() != want[i].to_bits()) {
        panic!("{what}: element {i}: got {} want {}", got[i], want[i]);
    }
}

fn uniform(q: &QuantTensor) -> qkc_quant::scheme::UniformInt {
    match q.scheme {
        Scheme::Uniform(u) => u,
        other => panic!("expected a uniform scheme, got {other}"),
    }
}

fn same_tensor(a: &QuantTensor, b: &QuantTensor, what: &str) {
    assert_eq!(a.scheme, b.scheme, "{what}: scheme");
    assert_eq!((a.n, a.k), (b.n, b.k), "{what}: shape");
    assert_eq!(
        a.parts.keys().collect::<Vec<_>>(),
        b.parts.keys().collect::<Vec<_>>(),
        "{what}: parts"
    );
    for (name, p) in &a.parts {
        let o = &b.parts[name];
        assert_eq!((p.dtype, &p.shape), (o.dtype, &o.shape), "{what}: {name}");
        assert!(p.bytes == o.bytes, "{what}: part {name} differs");
    }
}

const GATE: &str = "model.layers.1.mlp.gate_proj";

// ---------------------------------------------------------------- GPTQ

#[test]
fn gptq_every_variant_is_bit_exact() {
    // gate_proj [160, 384]: N a multiple of 32 (AutoGPTQ's qzeros width N/32·bits) but not of
    // 64; K = 384 a multiple of the group (128) but not of 256.
    let (n, k, gs) = (160, 384, 128);
    let mut seed = 1;
    for bits in [2usize, 3, 4, 8] {
        for sym in [true, false] {
            for (desc_act, static_groups) in [(false, false), (true, false), (true, true)] {
                for v2 in [false, true] {
                    seed += 1;
                    let act = desc_act && !static_groups;
                    let l = random_layer(n, k, bits, gs, sym, act, seed);
                    let what = format!(
                        "gptq {bits}-bit sym={sym} desc_act={desc_act} static_groups={static_groups} v2={v2}"
                    );
                    let qc = json!({
                        "quant_method": "gptq", "bits": bits, "group_size": gs,
                        "desc_act": desc_act, "sym": sym, "static_groups": static_groups,
                        "checkpoint_format": if v2 { "gptq_v2" } else { "gptq" }
                    });
                    let cfg = llama_config(k, n, Some(qc));
                    let f = write_folder("gptq", &cfg, None, &[l.gptq_tensors(GATE, v2, true)]);
                    let folder = HfFolder::open(&f.0).expect("open");
                    let QuantMethod::Gptq(p) = folder.method else {
                        panic!("{what}: method {:?}", folder.method)
                    };
                    assert_eq!(p.bits as usize, bits);
                    assert_eq!(p.format, if v2 { GptqFormat::V2 } else { GptqFormat::V1 });
                    assert_eq!((p.desc_act, p.static_groups), (desc_act, static_groups));
                    let imp = gptq::import(&folder, GATE, n, k, &p).expect(&what);
                    let u = uniform(&imp.q);
                    assert_eq!(u.bits as usize, bits, "{what}");
                    assert_eq!(u.sym, sym, "{what}: sym");
                    assert_eq!(u.act_order, act, "{what}: act_order");
                    let got = imp.q.dequant().expect("dequant");
                    assert_bit_exact(&got, &l.reference(), &what);
                    let (nn, kk, w) =
                        dequant_module(&folder, &format!("{GATE}.weight")).expect(&what);
                    assert_eq!((nn, kk), (n, k));
                    assert_eq!(bits_of(&w), bits_of(&got), "{what}: dequant_module");
                }
            }
        }
    }
}

#[test]
fn gptq_v1_and_v2_and_awq_import_to_identical_tensors() {
    let (n, k, gs) = (160, 384, 128);
    let l = random_layer(n, k, 4, gs, false, false, 77);
    let p1 = GptqParams {
        bits: 4,
        group_size: Some(gs as u32),
        format: GptqFormat::V1,
        ..GptqParams::default()
    };
    let p2 = GptqParams {
        format: GptqFormat::V2,
        ..p1
    };
    let cfg = llama_config(k, n, None);
    let f1 = write_folder("v1", &cfg, None, &[l.gptq_tensors(GATE, false, false)]);
    let f2 = write_folder("v2", &cfg, None, &[l.gptq_tensors(GATE, true, true)]);
    let fa = write_folder("awq", &cfg, None, &[l.awq_gemm_tensors(GATE)]);
    let fv = write_folder("awqv", &cfg, None, &[l.awq_gemv_tensors(GATE, gs)]);
    let a = gptq::import(&HfFolder::open(&f1.0).expect("f1"), GATE, n, k, &p1).expect("v1");
    let b = gptq::import(&HfFolder::open(&f2.0).expect("f2"), GATE, n, k, &p2).expect("v2");
    let pa = AwqParams {
        group_size: Some(gs as u32),
        ..AwqParams::default()
    };
    let c = awq::import(&HfFolder::open(&fa.0).expect("fa"), GATE, n, k, &pa).expect("awq");
    let pv = AwqParams {
        version: AwqVersion::Gemv,
        ..pa
    };
    let d = awq::import(&HfFolder::open(&fv.0).expect("fv"), GATE, n, k, &pv).expect("gemv");
    same_tensor(&a.q, &b.q, "v1 vs v2");
    same_tensor(&a.q, &c.q, "gptq vs awq gemm");
    same_tensor(&a.q, &d.q, "gptq vs awq gemv");
    let w = a.q.dequant().expect("dq");
    assert_bit_exact(&w, &l.reference(), "v1");
    // GPTQ's torch fallback computes `scales * (q - z)` in fp16: one rounding of the same exact
    // product, so it equals qkc's f32 value rounded to f16.
    for i in 0..n {
        for j in 0..k {
            let g = j / gs;
            let d = f16::from_f32(l.q[j * n + i] as f32 - l.z[g * n + i] as f32);
            let fp16 = l.s[g * n + i] * d;
            assert_eq!(
                f16::from_f32(w[i * k + j]).to_bits(),
                fp16.to_bits(),
                "[{i}, {j}]"
            );
        }
    }
}

#[test]
fn gptq_v1_zero_zero_bug_is_read_as_the_readers_do() {
    // v1 packs `zero − 1`; a zero of 0 stores −1, which (as uint32) ORs ones into every higher
    // field of its word. Readers take `(field + 1) & 15` per field; so does qkc.
    let (n, k, gs) = (160, 384, 128);
    let mut l = random_layer(n, k, 4, gs, false, false, 5);
    for (i, z) in l.z.iter_mut().enumerate() {
        if i % 7 == 0 {
            *z = 0;
        }
    }
    // the buggy packer: OR the (possibly −1) value shifted, no masking
    let stored: Vec<u32> = l.z.iter().map(|&z| z.wrapping_sub(1)).collect();
    let mut qz = vec![0u32; l.groups * n / 8];
    for g in 0..l.groups {
        for i in 0..n {
            qz[g * n / 8 + i / 8] |= stored[g * n + i] << (4 * (i % 8));
        }
    }
    let seen: Vec<u32> = (0..l.groups * n)
        .map(|e| {
            let (g, i) = (e / n, e % n);
            (qz[g * n / 8 + i / 8] >> (4 * (i % 8))).wrapping_add(1) & 15
        })
        .collect();
    assert_ne!(seen, l.z, "the bug must change something");
    let mut ts = l.gptq_tensors(GATE, false, false);
    ts[1] = t_u32(&format!("{GATE}.qzeros"), &[l.groups, n / 8], &qz);
    let f = write_folder("v1bug", &llama_config(k, n, None), None, &[ts]);
    let p = GptqParams {
        bits: 4,
        group_size: Some(gs as u32),
        ..GptqParams::default()
    };
    let imp = gptq::import(&HfFolder::open(&f.0).expect("open"), GATE, n, k, &p).expect("import");
    assert_bit_exact(
        &imp.q.dequant().expect("dq"),
        &l.reference_with(&seen),
        "v1 bug",
    );
}

#[test]
fn gptq_quantize_config_json_sharded_and_per_channel() {
    // quantize_config.json (AutoGPTQ, no quant_method), group_size −1, tensors over 2 shards
    let (n, k) = (160, 384);
    let l = random_layer(n, k, 3, k, false, false, 9);
    let qc = json!({"bits": 3, "group_size": -1, "desc_act": false, "sym": false, "true_sequential": true});
    let ts = l.gptq_tensors(GATE, false, false);
    let (a, b) = ts.split_at(1);
    let f = write_folder(
        "qc",
        &llama_config(k, n, None),
        Some(&qc),
        &[a.to_vec(), b.to_vec()],
    );
    let folder = HfFolder::open(&f.0).expect("open");
    assert!(matches!(
        folder.method,
        QuantMethod::Gptq(GptqParams {
            bits: 3,
            group_size: None,
            ..
        })
    ));
    assert!(folder
        .tensor_names()
        .contains(&format!("{GATE}.scales").as_str()));
    let (_, _, w) = dequant_module(&folder, GATE).expect("dequant");
    assert_bit_exact(&w, &l.reference(), "per-channel 3-bit");
}

// ---------------------------------------------------------------- AWQ

#[test]
fn awq_gemm_and_gemv_are_bit_exact() {
    // gate_proj [200, 384]: N = 200 (not a multiple of 32 or 64), K = 384; g128 and g64 (GEMV
    // pads zeros to a multiple of 2 words and scales to 16 columns per word)
    let (n, k) = (200, 384);
    for (gs, version) in [
        (128, "gemm"),
        (64, "gemm"),
        (128, "gemv"),
        (64, "gemv"),
        (32, "gemv"),
    ] {
        let l = random_layer(n, k, 4, gs, false, false, gs as u64 + 1000);
        let qc = json!({"quant_method": "awq", "bits": 4, "group_size": gs, "zero_point": true, "version": version});
        let ts = if version == "gemm" {
            l.awq_gemm_tensors(GATE)
        } else {
            l.awq_gemv_tensors(GATE, gs)
        };
        let f = write_folder("awq", &llama_config(k, n, Some(qc)), None, &[ts]);
        let folder = HfFolder::open(&f.0).expect("open");
        let (_, _, w) = dequant_module(&folder, GATE).expect(version);
        assert_bit_exact(&w, &l.reference(), &format!("awq {version} g{gs}"));
    }
}

// ---------------------------------------------------------------- compressed-tensors

#[test]
fn compressed_tensors_pack_quantized_is_bit_exact() {
    let (n, k) = (200, 384);
    let mut seed = 500;
    for bits in [2usize, 3, 4, 8] {
        for symmetric in [true, false] {
            for (gs, strategy) in [(Some(128usize), "group"), (None, "channel")] {
                for (scale_bf16, act) in [(false, false), (true, true)] {
                    seed += 1;
                    let mut rng = ChaCha8Rng::seed_from_u64(seed);
                    let g = gs.unwrap_or(k);
                    let groups = k / g;
                    let half = 1i32 << (bits - 1);
                    // signed codes [n, k], signed zero points [n, groups], scales [n, groups]
                    let qs: Vec<i32> = (0..n * k).map(|_| rng.gen_range(-half..half)).collect();
                    let zp: Vec<i32> = (0..n * groups)
                        .map(|_| {
                            if symmetric {
                                0
                            } else {
                                rng.gen_range(-half..half)
                            }
                        })
                        .collect();
                    // bf16 scales around 1e-6 are not f16-exact: qkc's `:min` form
                    let sc: Vec<f32> = (0..n * groups)
                        .map(|_| {
                            if scale_bf16 {
                                bf16::from_f32(rng.gen_range(1e-7f32..4e-6)).to_f32()
                            } else {
                                f16::from_f32(rng.gen_range(1e-4f32..0.05)).to_f32()
                            }
                        })
                        .collect();
                    let gidx: Vec<i32> = if act {
                        (0..k).map(|_| rng.gen_range(0..groups as i32)).collect()
                    } else {
                        (0..k).map(|j| (j / g) as i32).collect()
                    };
                    let off = |x: i32| (x + half) as u32;
                    let packed = ct_pack(
                        &qs.iter().map(|&x| off(x)).collect::<Vec<_>>(),
                        n,
                        k,
                        bits,
                        1,
                    );
                    let p = "model.layers.0.mlp.up_proj";
                    let mut ts = vec![
                        t_u32(
                            &format!("{p}.weight_packed"),
                            &[n, k.div_ceil(32 / bits)],
                            &packed,
                        ),
                        t_i32(&format!("{p}.weight_shape"), &[2], &[n as i32, k as i32]),
                    ];
                    ts.push(if scale_bf16 {
                        let v: Vec<bf16> = sc.iter().map(|&x| bf16::from_f32(x)).collect();
                        t_bf16(&format!("{p}.weight_scale"), &[n, groups], &v)
                    } else {
                        let v: Vec<f16> = sc.iter().map(|&x| f16::from_f32(x)).collect();
                        t_f16(&format!("{p}.weight_scale"), &[n, groups], &v)
                    });
                    if !symmetric {
                        let z = ct_pack(
                            &zp.iter().map(|&x| off(x)).collect::<Vec<_>>(),
                            n,
                            groups,
                            bits,
                            0,
                        );
                        ts.push(t_u32(
                            &format!("{p}.weight_zero_point"),
                            &[n.div_ceil(32 / bits), groups],
                            &z,
                        ));
                    }
                    if act {
                        ts.push(t_i32(&format!("{p}.weight_g_idx"), &[k], &gidx));
                    }
                    let mut wargs = json!({"num_bits": bits, "type": "int", "symmetric": symmetric, "strategy": strategy});
                    if let Some(g) = gs {
                        wargs["group_size"] = json!(g);
                    }
                    if act {
                        wargs["actorder"] = json!("group");
                    }
                    let qc = json!({
                        "quant_method": "compressed-tensors", "format": "pack-quantized",
                        "config_groups": {"group_0": {"targets": ["Linear"], "weights": wargs, "input_activations": null}},
                        "ignore": ["lm_head"]
                    });
                    let what = format!(
                        "ct {bits}-bit sym={symmetric} {strategy} bf16={scale_bf16} act={act}"
                    );
                    let f = write_folder("ct", &llama_config(k, n, Some(qc)), None, &[ts]);
                    let folder = HfFolder::open(&f.0).expect("open");
                    let QuantMethod::CompressedTensors(cp) = &folder.method else {
                        panic!("{what}: {:?}", folder.method)
                    };
                    let imp = compressed::import(&folder, p, n, k, cp).expect(&what);
                    let u = uniform(&imp.q);
                    assert_eq!(u.min, scale_bf16, "{what}: :min form");
                    // one group per row: every g_idx entry is 0 = j / K, plain groups
                    assert_eq!(u.act_order, act && groups > 1, "{what}: act");
                    let mut want = vec![0f32; n * k];
                    for i in 0..n {
                        for j in 0..k {
                            let gi = i * groups + gidx[j] as usize;
                            want[i * k + j] = sc[gi] * (qs[i * k + j] - zp[gi]) as f32;
                        }
                    }
                    let (_, _, w) = dequant_module(&folder, p).expect(&what);
                    assert_bit_exact(&w, &want, &what);
                }
            }
        }
    }
}

// ---------------------------------------------------------------- folder, config, errors

#[test]
fn config_fields_and_dense_modules() {
    let (n, k) = (200, 384);
    let mut cfg = llama_config(k, n, None);
    cfg["architectures"] = json!(["Qwen2ForCausalLM"]);
    cfg["model_type"] = json!("qwen2");
    cfg["head_dim"] = json!(64);
    let w: Vec<f16> = (0..n * k)
        .map(|i| f16::from_f32((i % 97) as f32 / 128.0))
        .collect();
    let f = write_folder(
        "dense",
        &cfg,
        None,
        &[vec![t_f16(&format!("{GATE}.weight"), &[n, k], &w)]],
    );
    let folder = HfFolder::open(&f.0).expect("open");
    let c = &folder.config;
    assert_eq!(c.arch, qkc_quant::hf::folder::Arch::Qwen2);
    assert!(c.attention_bias, "qwen2 has q/k/v biases");
    assert_eq!(
        (c.hidden_size, c.intermediate_size, c.num_hidden_layers),
        (k, n, 2)
    );
    assert_eq!(
        (c.num_attention_heads, c.num_key_value_heads, c.head_dim()),
        (6, 2, 64)
    );
    assert_eq!(
        (c.rope_theta, c.rms_norm_eps, c.vocab_size),
        (500000.0, 1e-5, 1000)
    );
    assert_eq!(
        c.module_shape("model.layers.0.self_attn.k_proj")
            .expect("k"),
        (128, 384)
    );
    assert_eq!(folder.method, QuantMethod::None);
    let (_, _, d) = dequant_module(&folder, GATE).expect("dense");
    let want: Vec<f32> = w.iter().map(|x| x.to_f32()).collect();
    assert_eq!(bits_of(&d), bits_of(&want));
    assert_eq!(
        bits_of(&folder.dense(&format!("{GATE}.weight")).expect("dense")),
        bits_of(&want)
    );
}

fn err_text(e: HfError) -> String {
    e.to_string()
}

#[test]
fn bad_input_errors_name_file_and_tensor() {
    let (n, k, gs) = (160, 384, 128);
    let l = random_layer(n, k, 4, gs, true, false, 3);
    let qc = json!({"quant_method": "gptq", "bits": 4, "group_size": gs, "desc_act": false, "sym": true});

    // missing shard: the index lists shard 2, which is deleted
    let ts = l.gptq_tensors(GATE, false, false);
    let (a, b) = ts.split_at(2);
    let f = write_folder(
        "shard",
        &llama_config(k, n, Some(qc.clone())),
        None,
        &[a.to_vec(), b.to_vec()],
    );
    std::fs::remove_file(f.0.join("model-00002-of-00002.safetensors")).expect("rm");
    let m = err_text(HfFolder::open(&f.0).expect_err("missing shard"));
    assert!(
        m.contains("model-00002-of-00002.safetensors") && m.contains(&format!("{GATE}.scales")),
        "{m}"
    );

    // qweight rows disagree with config.json (K·bits/32 = 48 expected)
    let mut ts = l.gptq_tensors(GATE, false, false);
    ts[0] = t_u32(&format!("{GATE}.qweight"), &[47, n], &vec![0; 47 * n]);
    let f = write_folder("shape", &llama_config(k, n, Some(qc.clone())), None, &[ts]);
    let folder = HfFolder::open(&f.0).expect("open");
    let m = err_text(dequant_module(&folder, GATE).expect_err("shape"));
    assert!(
        m.contains("model.safetensors")
            && m.contains(&format!("{GATE}.qweight"))
            && m.contains("config.json")
            && m.contains("48"),
        "{m}"
    );

    // wrong dtype
    let mut ts = l.gptq_tensors(GATE, false, false);
    ts[2] = t_u32(
        &format!("{GATE}.scales"),
        &[l.groups, n],
        &vec![0; l.groups * n],
    );
    let f = write_folder("dtype", &llama_config(k, n, Some(qc.clone())), None, &[ts]);
    let m =
        err_text(dequant_module(&HfFolder::open(&f.0).expect("open"), GATE).expect_err("dtype"));
    assert!(
        m.contains("model.safetensors")
            && m.contains(&format!("{GATE}.scales"))
            && m.contains("I32"),
        "{m}"
    );

    // missing tensor
    let ts: Vec<Tensor> = l
        .gptq_tensors(GATE, false, false)
        .into_iter()
        .skip(1)
        .collect();
    let f = write_folder(
        "missing",
        &llama_config(k, n, Some(qc.clone())),
        None,
        &[ts],
    );
    let m =
        err_text(dequant_module(&HfFolder::open(&f.0).expect("open"), GATE).expect_err("missing"));
    assert!(
        m.contains("model.safetensors")
            && m.contains(&format!("{GATE}.qweight"))
            && m.contains("missing"),
        "{m}"
    );

    // GPTQ 5-bit
    let mut qc5 = qc.clone();
    qc5["bits"] = json!(5);
    let f = write_folder(
        "bits",
        &llama_config(k, n, Some(qc5)),
        None,
        &[l.gptq_tensors(GATE, false, false)],
    );
    let m =
        err_text(dequant_module(&HfFolder::open(&f.0).expect("open"), GATE).expect_err("5-bit"));
    assert!(
        m.contains("model.safetensors")
            && m.contains(&format!("{GATE}.qweight"))
            && m.contains("5-bit"),
        "{m}"
    );

    // unknown quant_method
    let f = write_folder(
        "unknown",
        &llama_config(k, n, Some(json!({"quant_method": "fancyq", "bits": 4}))),
        None,
        &[l.gptq_tensors(GATE, false, false)],
    );
    let m = err_text(HfFolder::open(&f.0).expect_err("unknown"));
    assert!(m.contains("config.json") && m.contains("fancyq"), "{m}");

    // bad JSON
    let f = write_folder(
        "json",
        &llama_config(k, n, None),
        None,
        &[l.gptq_tensors(GATE, false, false)],
    );
    std::fs::write(f.0.join("config.json"), "{\"hidden_size\": 384,").expect("w");
    let m = err_text(HfFolder::open(&f.0).expect_err("json"));
    assert!(m.contains("config.json") && m.contains("JSON"), "{m}");

    // the config says AQLM but the module holds GPTQ tensors: the missing AQLM tensor is named
    let f = write_folder(
        "aqlm",
        &llama_config(
            k,
            n,
            Some(json!({"quant_method": "aqlm", "num_codebooks": 2, "nbits_per_codebook": 8})),
        ),
        None,
        &[l.gptq_tensors(GATE, false, false)],
    );
    let m = err_text(dequant_module(&HfFolder::open(&f.0).expect("open"), GATE).expect_err("aqlm"));
    assert!(
        m.contains(&format!("{GATE}.codes")) && m.contains("model.safetensors"),
        "{m}"
    );

    // AWQ GEMM qzeros of the wrong width
    let mut ts = l.awq_gemm_tensors(GATE);
    ts[1] = t_u32(
        &format!("{GATE}.qzeros"),
        &[l.groups, n / 8 + 1],
        &vec![0; l.groups * (n / 8 + 1)],
    );
    let f = write_folder(
        "awqbad",
        &llama_config(
            k,
            n,
            Some(json!({"quant_method": "awq", "bits": 4, "group_size": gs, "version": "gemm"})),
        ),
        None,
        &[ts],
    );
    let m = err_text(dequant_module(&HfFolder::open(&f.0).expect("open"), GATE).expect_err("awq"));
    assert!(
        m.contains(&format!("{GATE}.qzeros")) && m.contains("config.json"),
        "{m}"
    );
}
