//! HF model folders as models (issue 8): `config.json` (Llama / Mistral / Qwen2 families), the
//! quantization config, the safetensors weights (one file, or an index and shards; a torch
//! state dict for SqueezeLLM), memory-mapped through [`qkc_quant::hf::HfFolder`], and
//! `tokenizer.json` / `tokenizer_config.json`.
//!
//! Every linear module is imported by `qkc_quant::hf`'s importer for the detected method onto a
//! qkc scheme (GPTQ/AWQ/compressed-tensors → uniform int, act-order as the scheme's `g_idx`;
//! SqueezeLLM → `lut3`/`lut4`; SpQR → `spqr3:g16[:perm]`; AQLM → `aqlm:CxB`; bitsandbytes →
//! `nf4`/`fp4`); outliers become the graph's CSR weight `NAME.outliers`, which the fusion passes
//! turn into the GEMV's epilogue. The graph is the float Llama graph rewritten by
//! `qkc_passes::quantize_graph` with one plan per quantized module, so a model mixes schemes
//! freely (a skipped `lm_head` stays dense).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use qkc_ir::interp::{Loaded, WeightSource};
use qkc_ir::ops::RopeStyle;
use qkc_ir::{DType, Type};
use qkc_passes::quantize_graph::{quantize_graph, WeightPlan};
use qkc_quant::hf::folder::Arch;
use qkc_quant::hf::{import_module, HfFolder, Module, QuantMethod, TensorSource};
use qkc_quant::{Csr, QuantTensor};

use crate::llama::{build_qir, Binding, LlamaConfig, Role};
use crate::tokenizer::Tokenizer;
use crate::ModelError;

fn herr(e: qkc_quant::hf::HfError) -> ModelError {
    ModelError::Other(e.to_string())
}

/// Progress of a long load: `(done, total, what)`.
pub type Progress<'a> = &'a mut dyn FnMut(usize, usize, &str);

/// An HF model folder opened as a model.
pub struct HfModel {
    folder: HfFolder,
    cfg: LlamaConfig,
    /// Imported quantized modules (by tensor name `X.weight`) and their outliers
    /// (`X.weight.outliers`), waiting for the executor to bind them; a miss re-imports.
    quant: Mutex<HashMap<String, QuantTensor>>,
    sparse: Mutex<HashMap<String, Csr>>,
}

/// A value of `tokenizer_config.json`'s `bos_token` / `eos_token`: a string or `{content}`.
fn token_str(v: Option<&serde_json::Value>) -> Option<String> {
    match v? {
        serde_json::Value::String(s) => Some(s.clone()),
        o => o.get("content")?.as_str().map(str::to_string),
    }
}

impl HfModel {
    /// Open `dir` and derive the Llama config (`max_seq` capped at `max_position_embeddings`).
    /// Nothing is imported yet.
    pub fn open(dir: &Path, max_seq: usize) -> Result<Self, ModelError> {
        let folder = HfFolder::open(dir).map_err(herr)?;
        let c = &folder.config;
        let cfile = dir.join("config.json");
        let bad = |m: String| ModelError::Config(format!("{}: {m}", cfile.display()));
        if let Arch::Other(a) = &c.arch {
            return Err(bad(format!(
                "architecture `{a}` is not supported (qkc builds Llama-family graphs: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM)"
            )));
        }
        let j = &folder.config_json;
        if j.get("rope_scaling").is_some_and(|v| !v.is_null()) {
            return Err(bad(format!(
                "`rope_scaling` = {} is not supported (qkc implements plain RoPE)",
                j["rope_scaling"]
            )));
        }
        let act = j
            .get("hidden_act")
            .and_then(|v| v.as_str())
            .unwrap_or("silu");
        if act != "silu" {
            return Err(bad(format!(
                "`hidden_act` = `{act}` is not supported (the Llama MLP is SiLU-gated)"
            )));
        }
        let name = j
            .get("_name_or_path")
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .or_else(|| {
                dir.canonicalize()
                    .ok()
                    .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            })
            .unwrap_or_else(|| "hf_model".into());
        let mut ctx = c.max_position_embeddings;
        if let Some(w) = j.get("sliding_window").and_then(serde_json::Value::as_u64) {
            // Mistral's sliding window: a cache no longer than the window is exact
            ctx = ctx.min(w as usize);
        }
        let tied = c.tie_word_embeddings || folder.get("lm_head.weight").is_none();
        let cfg = LlamaConfig {
            name,
            vocab: c.vocab_size,
            hidden: c.hidden_size,
            ffn: c.intermediate_size,
            layers: c.num_hidden_layers,
            heads: c.num_attention_heads,
            kv_heads: c.num_key_value_heads,
            head_dim: c.head_dim(),
            rope_theta: c.rope_theta,
            rope_style: RopeStyle::Half,
            eps: c.rms_norm_eps,
            max_seq: max_seq.min(ctx.max(1)),
            tied,
            context: ctx,
            act_bits: None,
            act_group: None,
            attn_bias: c.attention_bias,
        };
        cfg.validate()
            .map_err(|e| bad(e.to_string().replace("model config: ", "")))?;
        Ok(HfModel {
            folder,
            cfg,
            quant: Mutex::new(HashMap::new()),
            sparse: Mutex::new(HashMap::new()),
        })
    }

    /// The architecture.
    pub fn config(&self) -> &LlamaConfig {
        &self.cfg
    }

    /// The folder.
    pub fn folder(&self) -> &HfFolder {
        &self.folder
    }

    /// The detected quantization method.
    pub fn method(&self) -> &QuantMethod {
        &self.folder.method
    }

    /// The checkpoint tensor a role reads (a tied head reads the embedding).
    fn tensor_name(&self, role: Role) -> String {
        if role == Role::Head && self.cfg.tied {
            Role::Embedding.hf_tensor()
        } else {
            role.hf_tensor()
        }
    }

    /// Import every linear module (progress per module), check every other tensor's presence
    /// and shape, and build the model graph: the float Llama graph with each quantized
    /// module's weight rewritten to its scheme (plus its CSR outliers).
    pub fn graph_text(&self, progress: Progress<'_>) -> Result<String, ModelError> {
        let cfg = &self.cfg;
        let roles = cfg.roles();
        let mut plans = HashMap::new();
        let (mut quant, mut sparse) = (HashMap::new(), HashMap::new());
        for (i, &r) in roles.iter().enumerate() {
            let tname = r.hf_tensor();
            progress(i, roles.len(), &tname);
            if r.is_linear() && !(r == Role::Head && cfg.tied) {
                let (_, _, m) = import_module(&self.folder, &r.hf_name()).map_err(herr)?;
                if let Module::Quant(imp) = m {
                    let outliers = imp.outliers.as_ref().map(|c| {
                        let index = if c.k <= 1 << 16 {
                            DType::U16
                        } else {
                            DType::U32
                        };
                        let f16_exact = c.val.iter().all(|&v| half::f16::from_f32(v).to_f32() == v);
                        (index, if f16_exact { DType::F16 } else { DType::F32 })
                    });
                    plans.insert(
                        tname.clone(),
                        WeightPlan {
                            scheme: imp.q.scheme,
                            rotated: false,
                            outliers: outliers.map(|o| o.0),
                            outlier_val: outliers.map_or(DType::F16, |o| o.1),
                        },
                    );
                    if let Some(c) = imp.outliers {
                        sparse.insert(format!("{tname}.outliers"), c);
                    }
                    quant.insert(tname, imp.q);
                }
            } else {
                // norms, biases, the embedding (and a tied head): float tensors of the config's shape
                let name = self.tensor_name(r);
                let t = qkc_quant::hf::common::get(&self.folder, &name).map_err(herr)?;
                let want = cfg.shape(r);
                t.expect_dtype(&[
                    qkc_quant::hf::RawDtype::F32,
                    qkc_quant::hf::RawDtype::F16,
                    qkc_quant::hf::RawDtype::BF16,
                ])
                .map_err(herr)?;
                if t.t.shape != want.as_slice() {
                    return Err(ModelError::Config(format!(
                        "{}: tensor `{name}` is {:?} but config.json implies {want:?}",
                        self.folder.file_of(&name),
                        t.t.shape
                    )));
                }
            }
        }
        progress(roles.len(), roles.len(), "");
        let name = |r: Role| r.hf_tensor();
        let ty = |_: Role| "f32".to_string();
        let text = build_qir(
            cfg,
            &Binding {
                name: &name,
                ty: &ty,
            },
        )?;
        let mut g = crate::llama::parse_graph(&text)?;
        quantize_graph(&mut g, &plans).map_err(ModelError::Graph)?;
        *self.quant.lock().unwrap_or_else(|e| e.into_inner()) = quant;
        *self.sparse.lock().unwrap_or_else(|e| e.into_inner()) = sparse;
        let text = format!(
            "// {}: imported by qkc from an HF folder (quant_method `{}`)\n{g}",
            cfg.name,
            self.folder.method.name()
        );
        crate::llama::parse_graph(&text)?;
        Ok(text)
    }

    /// The tokenizer from `tokenizer.json`, with BOS/EOS from `tokenizer_config.json` when it
    /// names them.
    pub fn tokenizer(&self) -> Result<Tokenizer, ModelError> {
        let dir = self.folder.dir();
        let p = dir.join("tokenizer.json");
        if !p.exists() {
            return Err(ModelError::Other(format!(
                "{}: not found (qkc reads the HF tokenizer from tokenizer.json)",
                p.display()
            )));
        }
        let mut t = Tokenizer::from_json_file(&p).map_err(|e| ModelError::Other(e.to_string()))?;
        if let Some(c) = self.tokenizer_config() {
            let id = |k: &str| token_str(c.get(k)).and_then(|s| t.token_to_id(&s));
            let (bos, eos) = (id("bos_token"), id("eos_token"));
            t.set_bos_eos(bos.or(t.bos()), eos.or(t.eos()));
        }
        Ok(t)
    }

    fn tokenizer_config(&self) -> Option<serde_json::Value> {
        let p = self.folder.dir().join("tokenizer_config.json");
        let s = std::fs::read_to_string(p).ok()?;
        serde_json::from_str(&s).ok()
    }

    /// The chat template: `chat_template.jinja`, else `tokenizer_config.json`'s
    /// `chat_template` (a string, or a list of named templates: `default`).
    pub fn chat_template(&self) -> Option<String> {
        if let Ok(s) = std::fs::read_to_string(self.folder.dir().join("chat_template.jinja")) {
            return Some(s);
        }
        let c = self.tokenizer_config()?;
        match c.get("chat_template")? {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Array(a) => a
                .iter()
                .find(|t| t.get("name").and_then(|n| n.as_str()) == Some("default"))
                .and_then(|t| t.get("template")?.as_str().map(str::to_string)),
            _ => None,
        }
    }
}

impl HfModel {
    /// Import `module` again (its cached copy was handed out already).
    fn reimport(&self, module: &str) -> Result<qkc_quant::hf::Imported, String> {
        match import_module(&self.folder, module).map_err(|e| e.to_string())? {
            (_, _, Module::Quant(imp)) => Ok(imp),
            (_, _, Module::Dense(_)) => Err("the checkpoint stores it as a float tensor".into()),
        }
    }
}

impl WeightSource for HfModel {
    fn load(&self, name: &str, ty: &Type) -> Result<Loaded, String> {
        match ty {
            Type::Quant { .. } => {
                let cached = self
                    .quant
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(name);
                if let Some(q) = cached {
                    return Ok(Loaded::Quant(q));
                }
                self.reimport(name).map(|imp| Loaded::Quant(imp.q))
            }
            Type::Sparse { .. } => {
                let cached = self
                    .sparse
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(name);
                if let Some(c) = cached {
                    return Ok(Loaded::Sparse(c));
                }
                let module = name.strip_suffix(".outliers").unwrap_or(name);
                self.reimport(module)?
                    .outliers
                    .map(Loaded::Sparse)
                    .ok_or_else(|| "the module has no outliers".into())
            }
            Type::Tensor { .. } => {
                let name = if name == "lm_head.weight" && self.cfg.tied {
                    "model.embed_tokens.weight"
                } else {
                    name
                };
                self.folder
                    .dense(name)
                    .map(Loaded::Dense)
                    .map_err(|e| e.to_string())
            }
        }
    }
}

/// `(n, k, values)` of module `prefix` of the HF folder `dir` (`format` overrides the detected
/// `quant_method`): the dense f32 weight `[N, K]` in original column order.
pub fn dequant(
    dir: &Path,
    prefix: &str,
    format: Option<&str>,
) -> Result<(usize, usize, Vec<f32>), ModelError> {
    let mut f = HfFolder::open(dir).map_err(herr)?;
    if let Some(fmt) = format {
        let mut q = f
            .quant_json
            .clone()
            .unwrap_or_else(|| serde_json::json!({}));
        let fmt = fmt.to_lowercase();
        f.method = if fmt == "none" {
            QuantMethod::None
        } else {
            q["quant_method"] = serde_json::Value::String(fmt);
            QuantMethod::from_json(&q, &format!("--format (over {})", dir.display()))
                .map_err(herr)?
        };
    }
    qkc_quant::hf::dequant_module(&f, prefix).map_err(herr)
}
