//! Tiny but complete HF model folders in every quantized format qkc imports, with the exact
//! expected dense weights.
//!
//! [`write_model`] writes `config.json` (Llama or Qwen2, GQA, the method's real
//! `quantization_config`), optionally a legacy AutoGPTQ `quantize_config.json`, the weights
//! (`model.safetensors`, or shards + `model.safetensors.index.json`), a small byte-level BPE
//! `tokenizer.json` (the 256 byte symbols, 17 merges, `<|endoftext|>`, `<|im_start|>`,
//! `<|im_end|>`), `tokenizer_config.json` with a ChatML `chat_template`, and
//! `generation_config.json`. Every linear module is packed by the formula-level packers of
//! `qkc-quant/tests/common/hf_pack.rs` (never qkc's own packing code) from random codes with sane
//! statistics: each module's dense weight has a standard deviation of about 0.02–0.05, norm gains
//! lie in [0.8, 1.2], embeddings are ~N(0, 0.5) in f16, an untied `lm_head` is dense f16 ~N(0,
//! 0.05) (HF quantizers leave it unquantized), Qwen2's q/k/v biases are f16 ~N(0, 0.02).
//!
//! [`Fixture::expected`] holds, per linear module prefix, `(n, k, W)` with `W` the dense f32
//! `[n, k]` weight in HF orientation and ORIGINAL column order, computed by the format's formula:
//! exact in f32 for every method except SpQR, whose reference (`dequantize_compressed`) computes in
//! fp16: its `expected` is that fp16 result, so a reader computing in f32 agrees within fp16
//! rounding, not bit-exactly: [`Fixture::tolerance`] holds a few fp16 ulps of the terms per
//! element.
//!
//! Sizes are odd, chosen per format so that all 7 linear modules of a layer satisfy the
//! method's constraints at once (see [`geometry`]): N not a multiple of 64 where the group size
//! allows it, K a multiple of the group but never of 256.

use std::collections::BTreeMap;
use std::path::PathBuf;

use half::f16;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

#[path = "../../../qkc-quant/tests/common/hf_pack.rs"]
pub mod hf_pack;

use hf_pack::{t_f16, t_i64, t_u32, Aqlm, Bnb, BnbAbsmax, Layer, Spqr, SqueezeLlm, Tensor};

/// The storage format of the linear modules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// f16 weights, no quantization config.
    Dense,
    /// GPTQ (AutoGPTQ / GPTQModel): `group` -1 = per channel; `desc_act` without `static_groups`
    /// writes an act-order `g_idx`; `v2` = `checkpoint_format: gptq_v2` (true zeros stored).
    Gptq {
        bits: u8,
        group: i64,
        desc_act: bool,
        sym: bool,
        v2: bool,
        static_groups: bool,
    },
    /// AutoAWQ GEMM, 4-bit, group 128, zero point.
    AwqGemm,
    /// AutoAWQ GEMV, 4-bit, group 128, zero point.
    AwqGemv,
    /// compressed-tensors `pack-quantized`, symmetric int; `group` 0 = strategy `channel`.
    Compressed { bits: u8, group: u32 },
    /// SqueezeLLM (3 or 4 bit) with ~0.5–1% CSR outliers.
    SqueezeLlm { bits: u8 },
    /// SpQR 3-bit 16×16 with ~0.5–1% CSR outliers, with or without `in_perm`.
    Spqr { perm: bool },
    /// AQLM, `codebooks` × `nbits` (1x16 or 2x8), in_group 8, out_group 1.
    Aqlm { codebooks: u8, nbits: u8 },
    /// bitsandbytes 4-bit, blocks of 64; `double_quant` with bitsandbytes' dynamic map.
    Bnb { nf4: bool, double_quant: bool },
}

impl Format {
    /// The GPTQ variants of the task: every bit width, sym/asym, desc_act, v1/v2, static
    /// groups, groups 32/64/128/per-channel.
    pub fn gptq(bits: u8, group: i64, desc_act: bool, sym: bool, v2: bool) -> Format {
        Format::Gptq {
            bits,
            group,
            desc_act,
            sym,
            v2,
            static_groups: false,
        }
    }
}

/// Model shape options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelOpts {
    /// `Qwen2ForCausalLM` with f16 q/k/v biases (`q_proj.bias`, ...), else `LlamaForCausalLM`.
    pub qwen2: bool,
    /// `tie_word_embeddings`: no `lm_head.weight`.
    pub tied: bool,
    /// 1 = `model.safetensors`; more = `model-0000i-of-0000n.safetensors` + the index.
    pub shards: usize,
    /// `num_hidden_layers`.
    pub layers: usize,
    /// GPTQ only: the quantization config goes to a legacy AutoGPTQ `quantize_config.json` (no
    /// `quant_method` key) instead of `config.json`'s `quantization_config`.
    pub quantize_config_json: bool,
}

impl Default for ModelOpts {
    fn default() -> Self {
        ModelOpts {
            qwen2: false,
            tied: false,
            shards: 1,
            layers: 2,
            quantize_config_json: false,
        }
    }
}

/// A written model folder (removed on drop) and what a reader must find in it.
pub struct Fixture {
    /// The folder.
    pub dir: PathBuf,
    /// Linear module prefix (`model.layers.0.mlp.down_proj`, `lm_head`) → `(n, k, W)`, `W` dense
    /// f32 `[n, k]`, HF orientation, original column order (SpQR: the fp16 reference).
    pub expected: BTreeMap<String, (usize, usize, Vec<f32>)>,
    /// Per-element tolerances where the format's reference computes in fp16 (SpQR: a few fp16
    /// ulps of the terms `s`, `z`, `s·(q − z)` and of the sum with the outlier); other formats
    /// compare exactly (f32 `==`).
    pub tolerance: BTreeMap<String, Vec<f32>>,
    /// The other float tensors as stored (embeddings, norms, biases, lm_head): name → (shape,
    /// f32 values).
    pub dense: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
    /// config.json.
    pub cfg: Value,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Attention and MLP sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub hidden: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub intermediate: usize,
}

/// The sizes for `fmt`.
///
/// - Group 64/128 (GPTQ g64/g128, AWQ g128, compressed-tensors g64/g128): hidden 384 = 3·128,
///   12 heads / 3 KV heads of 32, intermediate 640 = 5·128. Every K (384, 384, 640) is a multiple
///   of 128 and not of 256; k/v N = 96 is not a multiple of 64 (the other N are, as any multiple
///   of 128 is).
/// - Everything else (dense, GPTQ g32 / per channel, compressed-tensors g32 / channel,
///   SqueezeLLM, SpQR, AQLM, bitsandbytes): hidden 480 = 15·32, 15 heads / 5 KV heads of 32,
///   intermediate 800 = 25·32. No N (480, 160, 800) is a multiple of 64; every K (480, 800) is a
///   multiple of 32 (GPTQ 3-bit words, group 32), 16 (SpQR tiles) and 8 (AQLM in_group), not of
///   256; every N is a multiple of 32 (AutoGPTQ's qzeros width N/32·bits) and of 16 (SpQR).
///   bitsandbytes' 64-blocks run over the flattened weight (every size is a multiple of 64).
pub fn geometry(fmt: &Format) -> Geometry {
    let big_group = match *fmt {
        Format::Gptq { group, .. } => group == 64 || group == 128,
        Format::AwqGemm | Format::AwqGemv => true,
        Format::Compressed { group, .. } => group == 64 || group == 128,
        _ => false,
    };
    if big_group {
        Geometry {
            hidden: 384,
            heads: 12,
            kv_heads: 3,
            head_dim: 32,
            intermediate: 640,
        }
    } else {
        Geometry {
            hidden: 480,
            heads: 15,
            kv_heads: 5,
            head_dim: 32,
            intermediate: 800,
        }
    }
}

/// The target standard deviation of a dense linear weight (each module draws a factor in
/// [0.7, 1.3] around it).
const STD: f32 = 0.035;

fn normal(rng: &mut ChaCha8Rng) -> f32 {
    let u1: f32 = rng.gen_range(f32::EPSILON..1.0);
    let u2: f32 = rng.gen();
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

fn normals_f16(rng: &mut ChaCha8Rng, len: usize, std: f32) -> Vec<f16> {
    (0..len).map(|_| f16::from_f32(normal(rng) * std)).collect()
}

/// `count` distinct random columns of `0..k`, sorted.
fn distinct_cols(rng: &mut ChaCha8Rng, k: usize, count: usize) -> Vec<usize> {
    let mut cs: Vec<usize> = Vec::with_capacity(count);
    while cs.len() < count {
        let c = rng.gen_range(0..k);
        if !cs.contains(&c) {
            cs.push(c);
        }
    }
    cs.sort_unstable();
    cs
}

/// Outliers of a row: 0.5–1% of `k`, magnitude 3–6× the dense std, random sign.
fn outlier_count(rng: &mut ChaCha8Rng, k: usize) -> usize {
    (k as f32 * rng.gen_range(0.005f32..0.01)).round() as usize
}
fn outlier_value(rng: &mut ChaCha8Rng) -> f32 {
    let m = STD * rng.gen_range(3.0f32..6.0);
    if rng.gen() {
        m
    } else {
        -m
    }
}

/// Zeros of an asymmetric uniform quantizer, around the middle of `0..=maxq` (never 0, which
/// hits GPTQ v1's `zero − 1` bug).
fn centered_zero(rng: &mut ChaCha8Rng, bits: usize) -> u32 {
    let levels = 1u32 << bits;
    let lo = (levels / 4).max(1);
    let hi = (3 * levels / 4).max(lo);
    rng.gen_range(lo..=hi)
}

/// A GPTQ/AWQ layer: codes uniform, zeros `2^(bits-1)` (sym) or centered, f16 scales sized so
/// that the weight's std is about [`STD`].
fn uniform_layer(
    rng: &mut ChaCha8Rng,
    n: usize,
    k: usize,
    bits: usize,
    gs: usize,
    sym: bool,
    act: bool,
) -> Layer {
    let groups = k / gs;
    let maxq = (1u32 << bits) - 1;
    let base = STD * 12f32.sqrt() / (1u32 << bits) as f32 * rng.gen_range(0.7f32..1.3);
    let q = (0..k * n).map(|_| rng.gen_range(0..=maxq)).collect();
    let z = (0..groups * n)
        .map(|_| {
            if sym {
                1 << (bits - 1)
            } else {
                centered_zero(rng, bits)
            }
        })
        .collect();
    let s = (0..groups * n)
        .map(|_| f16::from_f32(base * rng.gen_range(0.8f32..1.2)))
        .collect();
    let g_idx = hf_pack::gptq_g_idx(rng, k, gs, act);
    Layer {
        n,
        k,
        bits,
        groups,
        q,
        z,
        s,
        g_idx,
    }
}

/// One linear module `p` `[n, k]` in `fmt`: its tensors and its expected dense weight.
fn module(
    fmt: &Format,
    p: &str,
    n: usize,
    k: usize,
    rng: &mut ChaCha8Rng,
) -> (Vec<Tensor>, Vec<f32>, Vec<f32>) {
    let (t, e) = match *fmt {
        Format::Dense => {
            let std = STD * rng.gen_range(0.7f32..1.3);
            let w = normals_f16(rng, n * k, std);
            let e = w.iter().map(|x| x.to_f32()).collect();
            (vec![t_f16(&format!("{p}.weight"), &[n, k], &w)], e)
        }
        Format::Gptq {
            bits,
            group,
            desc_act,
            sym,
            v2,
            static_groups,
        } => {
            let gs = if group < 0 { k } else { group as usize };
            let l = uniform_layer(
                rng,
                n,
                k,
                bits as usize,
                gs,
                sym,
                desc_act && !static_groups,
            );
            (l.gptq_tensors(p, v2, true), l.reference())
        }
        Format::AwqGemm | Format::AwqGemv => {
            let l = uniform_layer(rng, n, k, 4, 128, false, false);
            let ts = if *fmt == Format::AwqGemm {
                l.awq_gemm_tensors(p)
            } else {
                l.awq_gemv_tensors(p, 128)
            };
            (ts, l.reference())
        }
        Format::Compressed { bits, group } => {
            let bits = bits as usize;
            let gs = if group == 0 { k } else { group as usize };
            let groups = k / gs;
            let half = 1i32 << (bits - 1);
            let base = STD * 12f32.sqrt() / (1u32 << bits) as f32 * rng.gen_range(0.7f32..1.3);
            let qs: Vec<i32> = (0..n * k).map(|_| rng.gen_range(-half..half)).collect();
            let sc: Vec<f16> = (0..n * groups)
                .map(|_| f16::from_f32(base * rng.gen_range(0.8f32..1.2)))
                .collect();
            let off: Vec<u32> = qs.iter().map(|&x| (x + half) as u32).collect();
            let packed = hf_pack::ct_pack(&off, n, k, bits, 1);
            let ts = vec![
                t_u32(
                    &format!("{p}.weight_packed"),
                    &[n, k.div_ceil(32 / bits)],
                    &packed,
                ),
                t_f16(&format!("{p}.weight_scale"), &[n, groups], &sc),
                t_i64(&format!("{p}.weight_shape"), &[2], &[n as i64, k as i64]),
            ];
            let e = (0..n * k)
                .map(|i| sc[(i / k) * groups + (i % k) / gs].to_f32() * qs[i] as f32)
                .collect();
            (ts, e)
        }
        Format::SqueezeLlm { bits } => {
            let bits = bits as usize;
            let m = 1usize << bits;
            let std = STD * rng.gen_range(0.7f32..1.3);
            let mut codes: Vec<u32> = (0..k * n).map(|_| rng.gen_range(0..m as u32)).collect();
            let mut lut = Vec::with_capacity(n * m);
            let mut outliers = Vec::with_capacity(n);
            for r in 0..n {
                // k-means-like centroids: sorted normals
                let mut row: Vec<f32> = (0..m).map(|_| normal(rng) * std).collect();
                row.sort_by(f32::total_cmp);
                // outliers were zeroed before k-means: their code is the centroid closest to 0
                // (c0), and the stored value is `outlier − c0`
                let c0 = (0..m)
                    .min_by(|&a, &b| row[a].abs().total_cmp(&row[b].abs()))
                    .unwrap_or(0);
                let cnt = outlier_count(rng, k);
                let mut o = Vec::with_capacity(cnt);
                for c in distinct_cols(rng, k, cnt) {
                    codes[c * n + r] = c0 as u32;
                    o.push((c as i32, outlier_value(rng) - row[c0]));
                }
                lut.extend(row);
                outliers.push(o);
            }
            let sq = SqueezeLlm {
                n,
                k,
                bits,
                codes,
                lut,
                outliers,
            };
            (sq.tensors(p), sq.reference())
        }
        Format::Spqr { perm } => {
            let h = hf_pack::h;
            let (tn, tk) = (n.div_ceil(16), k / 16);
            let target = STD * 12f32.sqrt() / 8.0 * rng.gen_range(0.7f32..1.3);
            // s = s_s·(s_code − s_z) with s_code − s_z in [1.5, 10] (mean ≈ 5.75); z = z_s·(z_code
            // − z_z) in about [1.2, 6.6]
            let stats = (0..tn * tk)
                .map(|_| {
                    let ss = h(target / 5.75 * rng.gen_range(0.8f32..1.2));
                    let sz = h(rng.gen_range(-3.0f32..-1.5));
                    let zs = h(rng.gen_range(0.4f32..0.6));
                    let zz = h(rng.gen_range(-4.0f32..-3.0));
                    [ss, zs, sz, zz]
                })
                .collect();
            let sz_codes = (0..n * tk)
                .map(|_| (rng.gen_range(0..8u8), rng.gen_range(0..8u8)))
                .collect();
            let q = (0..n * k).map(|_| rng.gen_range(0..8u8)).collect();
            let perm = perm.then(|| {
                hf_pack::random_perm(rng, k)
                    .into_iter()
                    .map(|v| v as u32)
                    .collect()
            });
            let mut sp = Spqr {
                n,
                k,
                stats,
                sz_codes,
                q,
                outliers: Vec::new(),
                perm,
            };
            for i in 0..n {
                let cnt = outlier_count(rng, k);
                let mut row = Vec::with_capacity(cnt);
                for c in distinct_cols(rng, k, cnt) {
                    // the dense code at an outlier is quantize(0) = clamp(round(z), 0, 7)
                    let (_, z) = sp.row_sz(i, c / 16);
                    sp.q[i * k + c] = z.to_f32().round().clamp(0.0, 7.0) as u8;
                    row.push((c as u16, h(outlier_value(rng))));
                }
                sp.outliers.push(row);
            }
            let (w, tol) = sp.reference_original();
            return (sp.tensors(p, false), w, tol);
        }
        Format::Aqlm { codebooks, nbits } => {
            let (c, nbits) = (codebooks as usize, nbits as usize);
            let m = 1usize << nbits;
            let (no, ni) = (n, k / 8);
            let aq = Aqlm {
                n,
                k,
                c,
                nbits,
                og: 1,
                ig: 8,
                codes: (0..no * ni * c)
                    .map(|_| rng.gen_range(0..m as u32))
                    .collect(),
                books: normals_f16(rng, c * m * 8, 1.0 / (c as f32).sqrt()),
                scales: (0..no)
                    .map(|_| f16::from_f32(STD * rng.gen_range(0.7f32..1.3)))
                    .collect(),
            };
            (aq.tensors(p), aq.reference())
        }
        Format::Bnb { nf4, double_quant } => {
            let bs = 64;
            let blocks = (n * k).div_ceil(bs);
            let absmax = if double_quant {
                let nbs = 256;
                BnbAbsmax::Nested {
                    q: (0..blocks).map(|_| rng.gen()).collect(),
                    nested_absmax: (0..blocks.div_ceil(nbs))
                        .map(|_| rng.gen_range(0.025f32..0.035))
                        .collect(),
                    nbs,
                    offset: 0.09,
                    // bitsandbytes' create_dynamic_map(signed=True), as qkc's table spells it
                    map: qkc_quant::fixed::dynamic_map().to_vec(),
                }
            } else {
                BnbAbsmax::Plain((0..blocks).map(|_| rng.gen_range(0.06f32..0.12)).collect())
            };
            let b = Bnb {
                n,
                k,
                nf4,
                bs,
                codes: (0..n * k).map(|_| rng.gen_range(0..16u8)).collect(),
                absmax,
            };
            (b.tensors(p, "float16"), b.reference())
        }
    };
    (t, e, Vec::new())
}

/// The method's quantization config, with the keys real checkpoints carry.
fn quant_config(fmt: &Format) -> Option<Value> {
    Some(match *fmt {
        Format::Dense => return None,
        Format::Gptq {
            bits,
            group,
            desc_act,
            sym,
            v2,
            static_groups,
        } => json!({
            "bits": bits, "group_size": group, "damp_percent": 0.01, "desc_act": desc_act,
            "static_groups": static_groups, "sym": sym, "true_sequential": true,
            "model_name_or_path": null, "model_file_base_name": "model",
            "quant_method": "gptq", "checkpoint_format": if v2 { "gptq_v2" } else { "gptq" }
        }),
        Format::AwqGemm | Format::AwqGemv => json!({
            "quant_method": "awq", "zero_point": true, "group_size": 128, "bits": 4,
            "version": if *fmt == Format::AwqGemm { "gemm" } else { "gemv" },
            "modules_to_not_convert": null
        }),
        Format::Compressed { bits, group } => {
            let (strategy, gs) = if group == 0 {
                ("channel", Value::Null)
            } else {
                ("group", json!(group))
            };
            json!({
                "quant_method": "compressed-tensors", "format": "pack-quantized",
                "quantization_status": "compressed", "version": "0.9.1",
                "config_groups": {"group_0": {
                    "targets": ["Linear"],
                    "weights": {"num_bits": bits, "type": "int", "symmetric": true,
                        "group_size": gs, "strategy": strategy, "dynamic": false,
                        "actorder": null, "block_structure": null, "observer": "minmax",
                        "observer_kwargs": {}},
                    "input_activations": null, "output_activations": null,
                    "format": "pack-quantized"
                }},
                "ignore": ["lm_head"], "kv_cache_scheme": null, "sparsity_config": {}
            })
        }
        Format::SqueezeLlm { bits } => json!({"quant_method": "squeezellm", "wbits": bits}),
        Format::Spqr { .. } => json!({
            "quant_method": "spqr", "bits": 3, "beta1": 16, "beta2": 16,
            "shapes": {}, "modules_to_not_convert": ["lm_head"]
        }),
        Format::Aqlm { codebooks, nbits } => json!({
            "quant_method": "aqlm", "nbits_per_codebook": nbits, "num_codebooks": codebooks,
            "out_group_size": 1, "in_group_size": 8,
            "linear_weights_not_to_quantize": ["model.embed_tokens.weight", "lm_head.weight"]
        }),
        Format::Bnb { nf4, double_quant } => {
            json!({
                "quant_method": "bitsandbytes", "_load_in_4bit": true, "_load_in_8bit": false,
                "load_in_4bit": true, "load_in_8bit": false,
                "bnb_4bit_compute_dtype": "float16", "bnb_4bit_quant_storage": "uint8",
                "bnb_4bit_quant_type": if nf4 { "nf4" } else { "fp4" },
                "bnb_4bit_use_double_quant": double_quant,
                "llm_int8_enable_fp32_cpu_offload": false, "llm_int8_has_fp16_weight": false,
                "llm_int8_skip_modules": null, "llm_int8_threshold": 6.0
            })
        }
    })
}

// ---------------------------------------------------------------- tokenizer

/// The merges of the fixture tokenizer ("Hello the world" → `Hello`, `Ġthe`, `Ġworld`).
pub const MERGES: [&str; 17] = [
    "Ġ t", "h e", "Ġt he", "Ġ w", "o r", "Ġw or", "l d", "Ġwor ld", "l l", "e ll", "H ell",
    "Hell o", "i n", "Ġ a", "e r", "o n", "Ġt o",
];
/// The added special tokens, after the merges.
pub const SPECIALS: [&str; 3] = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];
/// 256 byte symbols + 17 merges + 3 specials (not a multiple of 64).
pub const VOCAB_SIZE: usize = 256 + MERGES.len() + SPECIALS.len();

/// GPT-2's `bytes_to_unicode`: the symbol of each byte.
pub fn byte_symbols() -> Vec<char> {
    let mut bs: Vec<u32> = (u32::from('!')..=u32::from('~'))
        .chain(u32::from('¡')..=u32::from('¬'))
        .chain(u32::from('®')..=u32::from('ÿ'))
        .collect();
    let mut cs = bs.clone();
    let mut extra = 0;
    for b in 0..256u32 {
        if !bs.contains(&b) {
            bs.push(b);
            cs.push(256 + extra);
            extra += 1;
        }
    }
    let mut sym = vec![' '; 256];
    for (b, c) in bs.into_iter().zip(cs) {
        sym[b as usize] = char::from_u32(c).expect("char");
    }
    sym
}

/// Token id of a special token.
pub fn special_id(s: &str) -> u32 {
    let i = SPECIALS.iter().position(|&t| t == s).expect("special");
    (256 + MERGES.len() + i) as u32
}

fn tokenizer_json() -> Value {
    let mut vocab = serde_json::Map::new();
    for (b, c) in byte_symbols().into_iter().enumerate() {
        vocab.insert(c.to_string(), json!(b));
    }
    for (i, m) in MERGES.iter().enumerate() {
        vocab.insert(m.replace(' ', ""), json!(256 + i));
    }
    let added: Vec<Value> = SPECIALS
        .iter()
        .map(|s| {
            json!({"id": special_id(s), "content": s, "single_word": false, "lstrip": false,
                   "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    json!({
        "version": "1.0", "truncation": null, "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true},
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null,
                  "continuing_subword_prefix": null, "end_of_word_suffix": null,
                  "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                  "vocab": vocab, "merges": MERGES}
    })
}

/// SmolLM2-Instruct's ChatML template.
pub const CHAT_TEMPLATE: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant.<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

fn tokenizer_config() -> Value {
    let mut dec = serde_json::Map::new();
    for s in SPECIALS {
        dec.insert(
            special_id(s).to_string(),
            json!({"content": s, "lstrip": false, "normalized": false, "rstrip": false,
                   "single_word": false, "special": true}),
        );
    }
    json!({
        "add_prefix_space": false, "added_tokens_decoder": dec,
        "additional_special_tokens": ["<|im_start|>", "<|im_end|>"],
        "bos_token": "<|im_start|>", "eos_token": "<|im_end|>", "pad_token": "<|im_end|>",
        "unk_token": "<|endoftext|>", "chat_template": CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": false, "model_max_length": 2048,
        "tokenizer_class": "GPT2Tokenizer", "vocab_size": VOCAB_SIZE
    })
}

// ---------------------------------------------------------------- the model

/// The 7 linear modules of a layer: (prefix suffix, n, k).
fn linears(g: &Geometry, layer: usize) -> Vec<(String, usize, usize)> {
    let (h, q, kv, f) = (
        g.hidden,
        g.heads * g.head_dim,
        g.kv_heads * g.head_dim,
        g.intermediate,
    );
    [
        ("self_attn.q_proj", q, h),
        ("self_attn.k_proj", kv, h),
        ("self_attn.v_proj", kv, h),
        ("self_attn.o_proj", h, q),
        ("mlp.gate_proj", f, h),
        ("mlp.up_proj", f, h),
        ("mlp.down_proj", h, f),
    ]
    .into_iter()
    .map(|(s, n, k)| (format!("model.layers.{layer}.{s}"), n, k))
    .collect()
}

/// Write a complete HF model folder in `fmt` (see the module docs).
pub fn write_model(fmt: &Format, opts: &ModelOpts, seed: u64) -> Fixture {
    assert!(opts.shards >= 1 && opts.layers >= 1);
    let g = geometry(fmt);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let v = VOCAB_SIZE;
    let mut tensors: Vec<Tensor> = Vec::new();
    let mut expected = BTreeMap::new();
    let mut tolerance = BTreeMap::new();
    let mut dense = BTreeMap::new();
    let mut put_dense = |tensors: &mut Vec<Tensor>, name: &str, shape: &[usize], w: &[f16]| {
        tensors.push(t_f16(name, shape, w));
        dense.insert(
            name.to_string(),
            (
                shape.to_vec(),
                w.iter().map(|x| x.to_f32()).collect::<Vec<f32>>(),
            ),
        );
    };
    let emb = normals_f16(&mut rng, v * g.hidden, 0.5);
    put_dense(
        &mut tensors,
        "model.embed_tokens.weight",
        &[v, g.hidden],
        &emb,
    );
    let gains = |rng: &mut ChaCha8Rng| -> Vec<f16> {
        (0..g.hidden)
            .map(|_| f16::from_f32(rng.gen_range(0.8f32..1.2)))
            .collect()
    };
    for layer in 0..opts.layers {
        let pre = format!("model.layers.{layer}");
        let w = gains(&mut rng);
        put_dense(
            &mut tensors,
            &format!("{pre}.input_layernorm.weight"),
            &[g.hidden],
            &w,
        );
        for (p, n, k) in linears(&g, layer) {
            let (ts, e, tol) = module(fmt, &p, n, k, &mut rng);
            assert_eq!(e.len(), n * k, "{p}");
            tensors.extend(ts);
            if opts.qwen2
                && ["q_proj", "k_proj", "v_proj"]
                    .iter()
                    .any(|s| p.ends_with(s))
            {
                let b = normals_f16(&mut rng, n, 0.02);
                put_dense(&mut tensors, &format!("{p}.bias"), &[n], &b);
            }
            if !tol.is_empty() {
                tolerance.insert(p.clone(), tol);
            }
            expected.insert(p, (n, k, e));
        }
        let w = gains(&mut rng);
        put_dense(
            &mut tensors,
            &format!("{pre}.post_attention_layernorm.weight"),
            &[g.hidden],
            &w,
        );
    }
    let w = gains(&mut rng);
    put_dense(&mut tensors, "model.norm.weight", &[g.hidden], &w);
    if !opts.tied {
        let w = normals_f16(&mut rng, v * g.hidden, 0.05);
        put_dense(&mut tensors, "lm_head.weight", &[v, g.hidden], &w);
        expected.insert(
            "lm_head".to_string(),
            (v, g.hidden, w.iter().map(|x| x.to_f32()).collect()),
        );
    }

    let (bos, eos) = (special_id("<|im_start|>"), special_id("<|im_end|>"));
    let mut cfg = if opts.qwen2 {
        json!({
            "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2",
            "rope_theta": 1000000.0, "rms_norm_eps": 1e-6,
            "use_sliding_window": false, "sliding_window": null, "max_window_layers": opts.layers
        })
    } else {
        json!({
            "architectures": ["LlamaForCausalLM"], "model_type": "llama",
            "rope_theta": 100000.0, "rms_norm_eps": 1e-5,
            "attention_bias": false, "mlp_bias": false, "pretraining_tp": 1, "rope_scaling": null
        })
    };
    for (key, val) in [
        ("hidden_size", json!(g.hidden)),
        ("intermediate_size", json!(g.intermediate)),
        ("num_hidden_layers", json!(opts.layers)),
        ("num_attention_heads", json!(g.heads)),
        ("num_key_value_heads", json!(g.kv_heads)),
        ("head_dim", json!(g.head_dim)),
        ("hidden_act", json!("silu")),
        ("vocab_size", json!(v)),
        ("tie_word_embeddings", json!(opts.tied)),
        ("max_position_embeddings", json!(2048)),
        ("initializer_range", json!(0.02)),
        ("attention_dropout", json!(0.0)),
        ("use_cache", json!(true)),
        ("torch_dtype", json!("float16")),
        ("bos_token_id", json!(bos)),
        ("eos_token_id", json!(eos)),
        ("transformers_version", json!("4.46.0")),
    ] {
        cfg[key] = val;
    }
    let mut qc = quant_config(fmt);
    if let (Format::Spqr { .. }, Some(q)) = (fmt, qc.as_mut()) {
        // transformers' SpQRConfig `shapes`: numel of every stored tensor of every module
        let mut shapes = serde_json::Map::new();
        for (name, _, shape, _) in &tensors {
            if ["dense_weights", "row_offsets", "col_vals", "in_perm"]
                .iter()
                .any(|s| name.ends_with(s))
            {
                shapes.insert(
                    format!("{name}.shape"),
                    json!(shape.iter().product::<usize>()),
                );
            }
        }
        q["shapes"] = Value::Object(shapes);
    }
    let mut separate = None;
    if let (Format::Gptq { v2, .. }, true, Some(q)) = (fmt, opts.quantize_config_json, &qc) {
        // AutoGPTQ ≤ 0.6: no `quant_method`, no `checkpoint_format` (v1) in quantize_config.json
        let mut q = q.clone();
        let o = q.as_object_mut().expect("object");
        o.remove("quant_method");
        if !v2 {
            o.remove("checkpoint_format");
        }
        separate = Some(q);
        qc = None;
    }
    if let Some(q) = qc {
        cfg["quantization_config"] = q;
    }

    // shards: contiguous runs of the tensors in HF order
    let per = tensors.len().div_ceil(opts.shards);
    let mut shards: Vec<Vec<Tensor>> = Vec::new();
    let mut it = tensors.into_iter().peekable();
    for _ in 0..opts.shards {
        shards.push(it.by_ref().take(per).collect());
    }
    assert!(shards.iter().all(|s| !s.is_empty()), "too many shards");

    let dir = hf_pack::temp_dir("fixture");
    hf_pack::write_folder_in(&dir, &cfg, separate.as_ref(), &shards);
    if let Format::SqueezeLlm { bits } = fmt {
        std::fs::write(
            dir.join("quant_config.json"),
            json!({"wbits": bits}).to_string(),
        )
        .expect("quant_config.json");
    }
    let wr = |name: &str, v: &Value| {
        std::fs::write(
            dir.join(name),
            serde_json::to_string_pretty(v).expect("json"),
        )
        .expect(name);
    };
    wr("tokenizer.json", &tokenizer_json());
    wr("tokenizer_config.json", &tokenizer_config());
    wr(
        "special_tokens_map.json",
        &json!({"bos_token": "<|im_start|>", "eos_token": "<|im_end|>",
                "pad_token": "<|im_end|>", "unk_token": "<|endoftext|>",
                "additional_special_tokens": ["<|im_start|>", "<|im_end|>"]}),
    );
    wr(
        "generation_config.json",
        &json!({"_from_model_config": true, "bos_token_id": bos, "eos_token_id": eos,
                "transformers_version": "4.46.0"}),
    );
    Fixture {
        dir,
        expected,
        tolerance,
        dense,
        cfg,
    }
}

/// Whether a reader's value `got` meets `want` (`tol`: the fixture's per-element tolerance,
/// where it has one): exact (`==` in f32, i.e. bit-exact except that −0 equals +0: bitsandbytes'
/// FP4 table stores +0 at code 8, python's `-0` being the int 0, while its CUDA kernel returns
/// −0), or within `tol` (SpQR: its reference rounds every step to fp16, qkc rounds once).
pub fn matches(got: f32, want: f32, tol: Option<f32>) -> bool {
    match tol {
        Some(t) => (got - want).abs() <= t,
        None => got == want,
    }
}
