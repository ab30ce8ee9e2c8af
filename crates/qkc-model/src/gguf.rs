//! A llama.cpp GGUF model as qkc sees it: the Llama config from its metadata, each weight's
//! qkc type, the tokenizer and chat template, and the weights themselves (a [`WeightSource`]
//! over the memory-mapped file).

use std::path::{Path, PathBuf};

use qkc_ir::interp::{Loaded, WeightSource};
use qkc_ir::ops::RopeStyle;
use qkc_ir::Type;
use qkc_quant::gguf::{GgmlType, GgufFile, GgufWeight};
use qkc_quant::scheme::{Group, Packing, UniformInt};
use qkc_quant::Scheme;

use crate::llama::{LlamaConfig, Role};
use crate::tokenizer::{Tokenizer, Vocab};
use crate::ModelError;

/// A GGUF file opened as a model.
pub struct GgufModel {
    file: GgufFile<'static>,
    path: PathBuf,
}

fn gerr(e: qkc_quant::gguf::GgufError) -> ModelError {
    ModelError::Other(e.to_string())
}

/// The qkc scheme a ggml type maps onto (exactly; see `qkc_quant::gguf`), or `None` for float
/// types (dense) and types qkc does not map.
pub fn scheme_of(ty: GgmlType) -> Option<Scheme> {
    let u = |bits: u8, group: u32, sym: bool, min: bool| {
        Scheme::Uniform(UniformInt {
            bits,
            group: Group::Size(group),
            sym,
            act_order: false,
            packing: Packing::Gptq,
            min,
        })
    };
    Some(match ty {
        GgmlType::Q4_0 => u(4, 32, true, false),
        GgmlType::Q8_0 => u(8, 32, true, false),
        GgmlType::Q5_0 => u(8, 32, false, false),
        GgmlType::Q4_1 | GgmlType::Q4_K => u(4, 32, false, true),
        GgmlType::Q5_1 | GgmlType::Q5_K => u(8, 32, false, true),
        GgmlType::Q6_K => u(8, 16, false, true),
        _ => return None,
    })
}

impl GgufModel {
    /// Memory-map and parse `path`; checks the architecture.
    pub fn open(path: &Path) -> Result<Self, ModelError> {
        let file = GgufFile::open(path).map_err(gerr)?;
        let arch = file.get_str("general.architecture").map_err(gerr)?;
        if arch != "llama" {
            return Err(ModelError::Config(format!(
                "{}: architecture `{arch}` is not supported (qkc builds llama-family graphs: general.architecture = llama)",
                path.display()
            )));
        }
        Ok(GgufModel {
            file,
            path: path.to_path_buf(),
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The parsed file.
    pub fn file(&self) -> &GgufFile<'static> {
        &self.file
    }

    /// The Llama config from `llama.*` metadata (RoPE interleaved: llama.cpp's converter
    /// permutes the q/k rows for it); a missing key is named.
    pub fn config(&self) -> Result<LlamaConfig, ModelError> {
        let f = &self.file;
        let us = |k: &str| f.get_usize(k).map_err(gerr);
        let hidden = us("llama.embedding_length")?;
        let heads = us("llama.attention.head_count")?;
        let kv_heads = match f.get("llama.attention.head_count_kv") {
            Some(_) => us("llama.attention.head_count_kv")?,
            None => heads,
        };
        let head_dim = match f.get("llama.rope.dimension_count") {
            Some(_) => us("llama.rope.dimension_count")?,
            None => hidden / heads.max(1),
        };
        if head_dim * heads != hidden {
            return Err(ModelError::Config(format!(
                "{}: llama.rope.dimension_count {head_dim} × {heads} heads ≠ hidden {hidden} (partial RoPE is not supported)",
                self.path.display()
            )));
        }
        let embd = f.tensor("token_embd.weight").map_err(gerr)?;
        let vocab = match f.get("llama.vocab_size") {
            Some(_) => us("llama.vocab_size")?,
            None => embd.rows_cols().0,
        };
        let theta = match f.get("llama.rope.freq_base") {
            Some(_) => f.get_f64("llama.rope.freq_base").map_err(gerr)?,
            None => 10000.0,
        };
        let context = us("llama.context_length")?;
        let name = f.get_str("general.name").unwrap_or("llama").to_string();
        let cfg = LlamaConfig {
            name,
            vocab,
            hidden,
            ffn: us("llama.feed_forward_length")?,
            layers: us("llama.block_count")?,
            heads,
            kv_heads,
            head_dim,
            rope_theta: theta,
            rope_style: RopeStyle::Interleaved,
            eps: f
                .get_f64("llama.attention.layer_norm_rms_epsilon")
                .map_err(gerr)?,
            max_seq: context,
            tied: f.tensor("output.weight").is_err(),
            context,
            act_bits: None,
            act_group: None,
            attn_bias: false,
        };
        cfg.validate()?;
        // every tensor the graph binds must be there with the right shape
        for r in cfg.roles() {
            let t = f.tensor(&r.gguf_name()).map_err(gerr)?;
            let want = cfg.shape(r);
            let (n, k) = t.rows_cols();
            let got = if t.dims.len() == 1 {
                vec![k]
            } else {
                vec![n, k]
            };
            if got != want {
                return Err(ModelError::Config(format!(
                    "{}: tensor `{}` is {got:?} ([N, K]) but the config implies {want:?}",
                    self.path.display(),
                    r.gguf_name()
                )));
            }
        }
        Ok(cfg)
    }

    fn tensor_name(&self, role: Role) -> String {
        if role == Role::Head && self.file.tensor("output.weight").is_err() {
            Role::Embedding.gguf_name()
        } else {
            role.gguf_name()
        }
    }

    /// The IR element type of a role's weight: the ggml type's scheme for linear layers, `f32`
    /// for norms and the embedding table (gathered rows are dequantized at load), and `f32` for
    /// a linear layer whose type qkc does not map.
    pub fn type_of(&self, role: Role) -> String {
        if !role.is_linear() {
            return "f32".into();
        }
        match self
            .file
            .tensor(&self.tensor_name(role))
            .ok()
            .and_then(|t| scheme_of(t.ggml_type))
        {
            Some(s) => format!("q<{s}>"),
            None => "f32".into(),
        }
    }

    /// The tokenizer from `tokenizer.ggml.*`.
    pub fn tokenizer(&self) -> Result<Tokenizer, ModelError> {
        let f = &self.file;
        let strs = |k: &str| -> Result<Vec<String>, ModelError> {
            Ok(f.get_str_array(k)
                .map_err(gerr)?
                .into_iter()
                .map(str::to_string)
                .collect())
        };
        let opt_u32 = |k: &str| f.get(k).and_then(|_| f.get_u32(k).ok());
        let v = Vocab {
            model: f.get_str("tokenizer.ggml.model").map_err(gerr)?.to_string(),
            pre: f
                .get("tokenizer.ggml.pre")
                .and_then(|_| f.get_str("tokenizer.ggml.pre").ok())
                .map(str::to_string),
            tokens: strs("tokenizer.ggml.tokens")?,
            merges: if f.get("tokenizer.ggml.merges").is_some() {
                strs("tokenizer.ggml.merges")?
            } else {
                Vec::new()
            },
            token_type: if f.get("tokenizer.ggml.token_type").is_some() {
                f.get_i32_array("tokenizer.ggml.token_type").map_err(gerr)?
            } else {
                Vec::new()
            },
            scores: if f.get("tokenizer.ggml.scores").is_some() {
                f.get_f32_array("tokenizer.ggml.scores").map_err(gerr)?
            } else {
                Vec::new()
            },
            bos: opt_u32("tokenizer.ggml.bos_token_id"),
            eos: opt_u32("tokenizer.ggml.eos_token_id"),
            add_space_prefix: f
                .get("tokenizer.ggml.add_space_prefix")
                .and_then(|_| f.get_bool("tokenizer.ggml.add_space_prefix").ok()),
            add_bos: f
                .get("tokenizer.ggml.add_bos_token")
                .and_then(|_| f.get_bool("tokenizer.ggml.add_bos_token").ok())
                .unwrap_or(false),
        };
        Tokenizer::from_gguf_vocab(&v)
            .map_err(|e| ModelError::Other(format!("{}: tokenizer: {e}", self.path.display())))
    }

    /// `tokenizer.chat_template`, when present.
    pub fn chat_template(&self) -> Option<String> {
        self.file
            .get_str("tokenizer.chat_template")
            .ok()
            .map(str::to_string)
    }
}

impl WeightSource for GgufModel {
    fn load(&self, name: &str, ty: &Type) -> Result<Loaded, String> {
        // a tied head (no output.weight) reads the embedding, as llama.cpp does
        let name = if name == "output.weight" && self.file.tensor(name).is_err() {
            "token_embd.weight"
        } else {
            name
        };
        match ty {
            Type::Tensor { .. } => {
                let v = self.file.dequantize(name).map_err(|e| e.to_string())?;
                Ok(Loaded::Dense(v))
            }
            Type::Quant { scheme, .. } => {
                match self.file.to_quant(name).map_err(|e| e.to_string())? {
                    GgufWeight::Quant(q) if q.scheme == *scheme => Ok(Loaded::Quant(q)),
                    GgufWeight::Quant(q) => Err(format!(
                        "the file stores it as q<{}>, the graph declares q<{scheme}>",
                        q.scheme
                    )),
                    GgufWeight::Dense { .. } => Err(format!(
                        "the file stores it as a float tensor, the graph declares q<{scheme}>"
                    )),
                }
            }
            Type::Sparse { .. } => Err("a GGUF file holds no sparse outliers".into()),
        }
    }
}
