//! An HF model folder: `config.json` (Llama / Mistral / Qwen2 family), its quantization config
//! (`quantization_config` inside config.json, else `quantize_config.json`), and the weights
//! (`model.safetensors`, or `model.safetensors.index.json` + shards), memory-mapped and served
//! as a [`TensorSource`]. [`QuantMethod`] is the detected method with its parameters;
//! [`dequant_module`] imports one linear module and dequantizes it.
//!
//! Errors are [`HfError`]s naming the file (and the tensor, where there is one): a bad JSON, an
//! unknown `quant_method`, a shard the index lists but the folder lacks (with a tensor the index
//! places in it), a tensor missing or of the wrong dtype/shape.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::awq::{AwqParams, AwqVersion};
use super::common::{get, ImportError};
use super::compressed::CompressedParams;
use super::gptq::{GptqFormat, GptqParams};
use super::{HfError, RawDtype, RawTensor, TensorSource};

/// The model family named by `architectures` / `model_type`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arch {
    /// `LlamaForCausalLM`.
    Llama,
    /// `MistralForCausalLM`.
    Mistral,
    /// `Qwen2ForCausalLM` (q/k/v biases).
    Qwen2,
    /// Anything else (the name as given); modules are still readable.
    Other(String),
}

/// The fields of `config.json` a Llama-family graph needs.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    /// From `architectures[0]` (or `model_type`).
    pub arch: Arch,
    /// `model_type` (`llama`, `mistral`, `qwen2`, ...).
    pub model_type: String,
    /// `hidden_size`.
    pub hidden_size: usize,
    /// `intermediate_size`.
    pub intermediate_size: usize,
    /// `num_hidden_layers`.
    pub num_hidden_layers: usize,
    /// `num_attention_heads`.
    pub num_attention_heads: usize,
    /// `num_key_value_heads` (defaults to `num_attention_heads`).
    pub num_key_value_heads: usize,
    /// `head_dim` when given (else `hidden_size / num_attention_heads`, see [`Self::head_dim`]).
    pub head_dim: Option<usize>,
    /// `rope_theta` (default 10000).
    pub rope_theta: f64,
    /// `rms_norm_eps` (default 1e-6).
    pub rms_norm_eps: f64,
    /// `vocab_size`.
    pub vocab_size: usize,
    /// `tie_word_embeddings` (default false).
    pub tie_word_embeddings: bool,
    /// `max_position_embeddings` (default 2048).
    pub max_position_embeddings: usize,
    /// q/k/v projections carry biases: `attention_bias` when given, else true for Qwen2.
    pub attention_bias: bool,
}

impl ModelConfig {
    /// Per-head dimension.
    pub fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }

    /// Parse config.json's value (`file` names it in errors).
    pub fn from_json(v: &Value, file: &str) -> Result<Self, HfError> {
        let bad = |reason: String| HfError::BadFile {
            file: file.to_string(),
            reason,
        };
        let req = |key: &str| -> Result<usize, HfError> {
            v.get(key)
                .and_then(Value::as_u64)
                .map(|x| x as usize)
                .ok_or_else(|| bad(format!("no non-negative integer `{key}`")))
        };
        let opt_usize = |key: &str| -> Result<Option<usize>, HfError> {
            match v.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(x) => x
                    .as_u64()
                    .map(|x| Some(x as usize))
                    .ok_or_else(|| bad(format!("`{key}` is {x}, not a non-negative integer"))),
            }
        };
        let opt_f64 = |key: &str, d: f64| -> Result<f64, HfError> {
            match v.get(key) {
                None | Some(Value::Null) => Ok(d),
                Some(x) => x
                    .as_f64()
                    .ok_or_else(|| bad(format!("`{key}` is {x}, not a number"))),
            }
        };
        let opt_bool = |key: &str| -> Result<Option<bool>, HfError> {
            match v.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(x) => x
                    .as_bool()
                    .map(Some)
                    .ok_or_else(|| bad(format!("`{key}` is {x}, not a boolean"))),
            }
        };
        let model_type = v
            .get("model_type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let arch_name = v
            .get("architectures")
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| model_type.clone());
        let arch = match arch_name.as_str() {
            "LlamaForCausalLM" | "llama" => Arch::Llama,
            "MistralForCausalLM" | "mistral" => Arch::Mistral,
            "Qwen2ForCausalLM" | "qwen2" => Arch::Qwen2,
            other => Arch::Other(other.to_string()),
        };
        let heads = req("num_attention_heads")?;
        let cfg = ModelConfig {
            hidden_size: req("hidden_size")?,
            intermediate_size: req("intermediate_size")?,
            num_hidden_layers: req("num_hidden_layers")?,
            num_attention_heads: heads,
            num_key_value_heads: opt_usize("num_key_value_heads")?.unwrap_or(heads),
            head_dim: opt_usize("head_dim")?,
            rope_theta: opt_f64("rope_theta", 10000.0)?,
            rms_norm_eps: opt_f64("rms_norm_eps", 1e-6)?,
            vocab_size: req("vocab_size")?,
            tie_word_embeddings: opt_bool("tie_word_embeddings")?.unwrap_or(false),
            max_position_embeddings: opt_usize("max_position_embeddings")?.unwrap_or(2048),
            attention_bias: opt_bool("attention_bias")?.unwrap_or(arch == Arch::Qwen2),
            model_type,
            arch,
        };
        if heads == 0 || cfg.num_key_value_heads == 0 || heads % cfg.num_key_value_heads != 0 {
            return Err(bad(format!(
                "num_attention_heads = {heads} is not a positive multiple of num_key_value_heads = {}",
                cfg.num_key_value_heads
            )));
        }
        Ok(cfg)
    }

    /// `[n, k]` of a linear module by its last name component (`q_proj`, ..., `down_proj`,
    /// `lm_head`).
    pub fn module_shape(&self, prefix: &str) -> Result<(usize, usize), HfError> {
        let (h, hd) = (self.hidden_size, self.head_dim());
        let last = prefix.rsplit('.').next().unwrap_or(prefix);
        Ok(match last {
            "q_proj" => (self.num_attention_heads * hd, h),
            "k_proj" | "v_proj" => (self.num_key_value_heads * hd, h),
            "o_proj" => (h, self.num_attention_heads * hd),
            "gate_proj" | "up_proj" => (self.intermediate_size, h),
            "down_proj" => (h, self.intermediate_size),
            "lm_head" => (self.vocab_size, h),
            _ => {
                return Err(HfError::BadParams(format!(
                    "`{prefix}`: not a Llama-family linear module (q/k/v/o_proj, gate/up/down_proj, lm_head)"
                )))
            }
        })
    }
}

/// The quantization method of a folder, with its parameters.
#[derive(Debug, Clone, PartialEq)]
pub enum QuantMethod {
    /// GPTQ (`quant_method: "gptq"`, or a `quantize_config.json` with `bits`).
    Gptq(GptqParams),
    /// AWQ (`quant_method: "awq"`).
    Awq(AwqParams),
    /// compressed-tensors (`quant_method: "compressed-tensors"`), the weight args of the group
    /// targeting `Linear`.
    CompressedTensors(CompressedParams),
    /// SqueezeLLM (`qkc_quant::hf::squeezellm`).
    SqueezeLlm {
        /// `wbits` / `bits`.
        bits: u8,
    },
    /// SpQR (`qkc_quant::hf::spqr`).
    Spqr,
    /// AQLM (`qkc_quant::hf::aqlm`).
    Aqlm {
        /// `num_codebooks`.
        num_codebooks: u8,
        /// `nbits_per_codebook`.
        nbits_per_codebook: u8,
        /// `in_group_size`.
        in_group_size: u32,
        /// `out_group_size`.
        out_group_size: u32,
    },
    /// bitsandbytes (`qkc_quant::hf::bnb`).
    Bnb {
        /// `load_in_4bit`.
        load_in_4bit: bool,
        /// `bnb_4bit_quant_type` (`nf4` / `fp4`).
        quant_type: Option<String>,
        /// `bnb_4bit_use_double_quant`.
        double_quant: bool,
    },
    /// No quantization config: dense float weights.
    None,
}

impl QuantMethod {
    /// The method's name as `quant_method` spells it.
    pub fn name(&self) -> &'static str {
        match self {
            QuantMethod::Gptq(_) => "gptq",
            QuantMethod::Awq(_) => "awq",
            QuantMethod::CompressedTensors(_) => "compressed-tensors",
            QuantMethod::SqueezeLlm { .. } => "squeezellm",
            QuantMethod::Spqr => "spqr",
            QuantMethod::Aqlm { .. } => "aqlm",
            QuantMethod::Bnb { .. } => "bitsandbytes",
            QuantMethod::None => "none",
        }
    }

    /// Detect the method from a quantization config (`file` names it in errors).
    pub fn from_json(q: &Value, file: &str) -> Result<Self, HfError> {
        let bad = |reason: String| HfError::BadFile {
            file: file.to_string(),
            reason,
        };
        let int = |keys: &[&str], d: i64| -> Result<i64, HfError> {
            for key in keys {
                match q.get(*key) {
                    None | Some(Value::Null) => continue,
                    Some(x) => {
                        return x
                            .as_i64()
                            .ok_or_else(|| bad(format!("`{key}` is {x}, not an integer")))
                    }
                }
            }
            Ok(d)
        };
        let boolean = |key: &str, d: bool| -> Result<bool, HfError> {
            match q.get(key) {
                None | Some(Value::Null) => Ok(d),
                Some(x) => x
                    .as_bool()
                    .ok_or_else(|| bad(format!("`{key}` is {x}, not a boolean"))),
            }
        };
        let string = |key: &str| q.get(key).and_then(Value::as_str).map(str::to_lowercase);
        let small = |keys: &[&str], d: i64| -> Result<u8, HfError> {
            let v = int(keys, d)?;
            u8::try_from(v).map_err(|_| bad(format!("`{}` = {v} is out of range", keys[0])))
        };
        let group = |keys: &[&str], d: i64| -> Result<Option<u32>, HfError> {
            let v = int(keys, d)?;
            match v {
                -1 => Ok(None),
                v if v > 0 && v <= i64::from(u32::MAX) => Ok(Some(v as u32)),
                v => Err(bad(format!(
                    "`{}` = {v} is not -1 or a positive size",
                    keys[0]
                ))),
            }
        };
        let method = match string("quant_method") {
            Some(m) => m,
            // AutoGPTQ's quantize_config.json may omit quant_method
            None if q.get("bits").is_some() && q.get("desc_act").is_some() => "gptq".into(),
            None => return Err(bad("no `quant_method` in the quantization config".into())),
        };
        Ok(match method.as_str() {
            "gptq" => {
                let fmt = string("checkpoint_format").or_else(|| string("format"));
                let format = match fmt.as_deref() {
                    None | Some("gptq") => GptqFormat::V1,
                    Some("gptq_v2") => GptqFormat::V2,
                    Some(other) => {
                        return Err(HfError::Unsupported(format!(
                            "{file}: GPTQ checkpoint_format `{other}` (qkc imports `gptq` and `gptq_v2`)"
                        )))
                    }
                };
                QuantMethod::Gptq(GptqParams {
                    bits: small(&["bits"], 4)?,
                    group_size: group(&["group_size"], 128)?,
                    desc_act: boolean("desc_act", false)?,
                    sym: boolean("sym", true)?,
                    format,
                    static_groups: boolean("static_groups", false)?,
                })
            }
            "awq" => {
                let version = match string("version").as_deref() {
                    None | Some("gemm") => AwqVersion::Gemm,
                    Some("gemv") => AwqVersion::Gemv,
                    Some(other) => {
                        return Err(HfError::Unsupported(format!(
                            "{file}: AWQ version `{other}` (qkc imports `gemm` and `gemv`)"
                        )))
                    }
                };
                QuantMethod::Awq(AwqParams {
                    bits: small(&["bits", "w_bit"], 4)?,
                    group_size: group(&["group_size", "q_group_size"], 128)?,
                    zero_point: boolean("zero_point", true)?,
                    version,
                })
            }
            "compressed-tensors" => QuantMethod::CompressedTensors(compressed_params(q, file)?),
            "squeezellm" => QuantMethod::SqueezeLlm {
                bits: small(&["wbits", "bits"], 4)?,
            },
            "spqr" => QuantMethod::Spqr,
            "aqlm" => QuantMethod::Aqlm {
                num_codebooks: small(&["num_codebooks"], 1)?,
                nbits_per_codebook: small(&["nbits_per_codebook"], 16)?,
                in_group_size: int(&["in_group_size"], 8)? as u32,
                out_group_size: int(&["out_group_size"], 1)? as u32,
            },
            "bitsandbytes" | "bnb" => QuantMethod::Bnb {
                load_in_4bit: boolean("load_in_4bit", true)?,
                quant_type: string("bnb_4bit_quant_type"),
                double_quant: boolean("bnb_4bit_use_double_quant", false)?,
            },
            other => {
                return Err(bad(format!(
                    "unknown quant_method `{other}` (known: gptq, awq, compressed-tensors, squeezellm, spqr, aqlm, bitsandbytes)"
                )))
            }
        })
    }
}

/// The weight args of the compressed-tensors config group that targets `Linear` (or the only
/// group).
fn compressed_params(q: &Value, file: &str) -> Result<CompressedParams, HfError> {
    let bad = |reason: String| HfError::BadFile {
        file: file.to_string(),
        reason,
    };
    let groups = q
        .get("config_groups")
        .and_then(Value::as_object)
        .ok_or_else(|| bad("compressed-tensors config without a `config_groups` object".into()))?;
    let targets_linear = |g: &Value| {
        g.get("targets")
            .and_then(Value::as_array)
            .is_some_and(|t| t.iter().any(|x| x.as_str() == Some("Linear")))
    };
    let (gname, grp) = groups
        .iter()
        .find(|(_, g)| targets_linear(g))
        .or_else(|| groups.iter().next())
        .ok_or_else(|| bad("`config_groups` is empty".into()))?;
    let w = grp
        .get("weights")
        .filter(|w| !w.is_null())
        .ok_or_else(|| bad(format!("config group `{gname}` has no `weights` args")))?;
    let typ = w.get("type").and_then(Value::as_str).unwrap_or("int");
    if typ != "int" {
        return Err(HfError::Unsupported(format!(
            "{file}: compressed-tensors weights of type `{typ}` (qkc imports `int`)"
        )));
    }
    let bits = w.get("num_bits").and_then(Value::as_u64).unwrap_or(8);
    let bits = u8::try_from(bits).map_err(|_| bad(format!("`num_bits` = {bits}")))?;
    let strategy = w
        .get("strategy")
        .and_then(Value::as_str)
        .unwrap_or("tensor");
    let group_size = match strategy {
        "group" => {
            let g = w
                .get("group_size")
                .and_then(Value::as_u64)
                .filter(|&g| g > 0 && g <= u64::from(u32::MAX))
                .ok_or_else(|| bad(format!("config group `{gname}`: strategy `group` without a positive `group_size`")))?;
            Some(g as u32)
        }
        "channel" | "tensor" => None,
        other => {
            return Err(HfError::Unsupported(format!(
                "{file}: compressed-tensors weight strategy `{other}` (qkc imports group, channel, tensor)"
            )))
        }
    };
    let format = grp
        .get("format")
        .and_then(Value::as_str)
        .or_else(|| q.get("format").and_then(Value::as_str))
        .unwrap_or("pack-quantized")
        .to_string();
    Ok(CompressedParams {
        bits,
        group_size,
        symmetric: w.get("symmetric").and_then(Value::as_bool).unwrap_or(true),
        format,
    })
}

/// One tensor's place in a shard.
struct Entry {
    shard: usize,
    dtype: RawDtype,
    shape: Vec<usize>,
    start: usize,
    end: usize,
}

/// An HF model folder, memory-mapped.
pub struct HfFolder {
    dir: PathBuf,
    /// `config.json` as parsed JSON.
    pub config_json: Value,
    /// The typed config.
    pub config: ModelConfig,
    /// The quantization config (from config.json or `quantize_config.json`).
    pub quant_json: Option<Value>,
    /// The detected method.
    pub method: QuantMethod,
    shards: Vec<(PathBuf, memmap2::Mmap)>,
    entries: HashMap<String, Entry>,
    pts: Vec<super::pt::PtFile>,
}

/// The torch state-dict files of a folder without safetensors (`pytorch_model*.bin`, `*.pt`),
/// sorted.
fn torch_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                    p.extension().is_some_and(|e| e == "pt")
                        || (name.starts_with("pytorch_model") && name.ends_with(".bin"))
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

impl std::fmt::Debug for HfFolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HfFolder")
            .field("dir", &self.dir)
            .field("method", &self.method)
            .field("shards", &self.shards.len())
            .field("tensors", &self.entries.len())
            .field("torch_files", &self.pts.len())
            .finish()
    }
}

fn raw_dtype(d: safetensors::Dtype) -> Option<RawDtype> {
    use safetensors::Dtype as D;
    Some(match d {
        D::U8 | D::BOOL => RawDtype::U8,
        D::I8 => RawDtype::I8,
        D::I16 => RawDtype::I16,
        D::I32 => RawDtype::I32,
        D::I64 => RawDtype::I64,
        D::U32 => RawDtype::U32,
        D::F16 => RawDtype::F16,
        D::BF16 => RawDtype::BF16,
        D::F32 => RawDtype::F32,
        D::F64 => RawDtype::F64,
        _ => return None,
    })
}

fn read_json(p: &Path) -> Result<Value, HfError> {
    let file = p.display().to_string();
    let s = std::fs::read_to_string(p).map_err(|e| HfError::BadFile {
        file: file.clone(),
        reason: e.to_string(),
    })?;
    serde_json::from_str(&s).map_err(|e| HfError::BadFile {
        file,
        reason: format!("bad JSON: {e}"),
    })
}

impl HfFolder {
    /// Open `dir`: parse config.json and the quantization config, map the weights.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, HfError> {
        let dir = dir.as_ref();
        let cfg_path = dir.join("config.json");
        let config_json = read_json(&cfg_path)?;
        let config = ModelConfig::from_json(&config_json, &cfg_path.display().to_string())?;
        let (quant_json, qfile) = match config_json.get("quantization_config") {
            Some(q) if !q.is_null() => (Some(q.clone()), cfg_path.clone()),
            _ => {
                let p = dir.join("quantize_config.json");
                if p.exists() {
                    (Some(read_json(&p)?), p)
                } else {
                    (None, cfg_path.clone())
                }
            }
        };
        let method = match &quant_json {
            Some(q) => QuantMethod::from_json(q, &qfile.display().to_string())?,
            None => QuantMethod::None,
        };

        // shard list: the index's weight_map, or the single file
        let index = dir.join("model.safetensors.index.json");
        let mut want: Vec<(String, Option<String>)> = Vec::new();
        if index.exists() {
            let idx = read_json(&index)?;
            let map = idx
                .get("weight_map")
                .and_then(Value::as_object)
                .ok_or_else(|| HfError::BadFile {
                    file: index.display().to_string(),
                    reason: "no `weight_map` object".into(),
                })?;
            for (t, f) in map {
                let f = f.as_str().ok_or_else(|| HfError::BadFile {
                    file: index.display().to_string(),
                    reason: format!("tensor `{t}` maps to {f}, not a file name"),
                })?;
                if !want.iter().any(|(s, _)| s == f) {
                    want.push((f.to_string(), Some(t.clone())));
                }
            }
        } else if dir.join("model.safetensors").exists() || torch_files(dir).is_empty() {
            want.push(("model.safetensors".into(), None));
        }
        // a torch.save'd state dict (SqueezeLLM ships `.pt`), when there are no safetensors
        let pts = if want.is_empty() {
            torch_files(dir)
                .iter()
                .map(super::pt::PtFile::open)
                .collect::<Result<Vec<_>, _>>()?
        } else {
            Vec::new()
        };
        let mut shards = Vec::new();
        let mut entries = HashMap::new();
        for (name, example) in want {
            let p = dir.join(&name);
            let file = p.display().to_string();
            let f = std::fs::File::open(&p).map_err(|e| HfError::BadFile {
                file: file.clone(),
                reason: match &example {
                    Some(t) => format!(
                        "cannot open this shard ({e}); model.safetensors.index.json places tensor `{t}` in it"
                    ),
                    None => format!("cannot open the weights ({e})"),
                },
            })?;
            // SAFETY: a read-only map of a checkpoint that nobody writes while qkc reads it.
            let map = unsafe { memmap2::Mmap::map(&f) }.map_err(|e| HfError::BadFile {
                file: file.clone(),
                reason: format!("cannot map: {e}"),
            })?;
            let (hlen, meta) =
                safetensors::SafeTensors::read_metadata(&map).map_err(|e| HfError::BadFile {
                    file: file.clone(),
                    reason: format!("not a safetensors file: {e}"),
                })?;
            let base = 8 + hlen;
            for (t, info) in meta.tensors() {
                let dtype = raw_dtype(info.dtype).ok_or_else(|| HfError::BadTensor {
                    file: file.clone(),
                    tensor: t.clone(),
                    reason: format!("dtype {:?} is not supported", info.dtype),
                })?;
                let (s, e) = info.data_offsets;
                if base + e > map.len() || s > e {
                    return Err(HfError::BadTensor {
                        file: file.clone(),
                        tensor: t.clone(),
                        reason: format!("data range {s}..{e} lies outside the file"),
                    });
                }
                entries.insert(
                    t.clone(),
                    Entry {
                        shard: shards.len(),
                        dtype,
                        shape: info.shape.clone(),
                        start: base + s,
                        end: base + e,
                    },
                );
            }
            shards.push((p, map));
        }
        Ok(HfFolder {
            dir: dir.to_path_buf(),
            config_json,
            config,
            quant_json,
            method,
            shards,
            entries,
            pts,
        })
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every stored tensor name, sorted.
    pub fn tensor_names(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.entries.keys().map(String::as_str).collect();
        v.extend(self.pts.iter().flat_map(|p| p.names()));
        v.sort_unstable();
        v
    }

    /// A float tensor (f32/f16/bf16/f64) as f32 values, row-major.
    pub fn dense(&self, name: &str) -> Result<Vec<f32>, HfError> {
        let t = get(self, name)?;
        t.expect_dtype(&[RawDtype::F32, RawDtype::F16, RawDtype::BF16, RawDtype::F64])?
            .floats()
    }
}

impl TensorSource for HfFolder {
    fn get(&self, name: &str) -> Option<RawTensor<'_>> {
        let Some(e) = self.entries.get(name) else {
            return self.pts.iter().find_map(|p| p.get(name));
        };
        let data = self.shards.get(e.shard)?.1.get(e.start..e.end)?;
        Some(RawTensor {
            dtype: e.dtype,
            shape: &e.shape,
            data,
        })
    }

    fn file_of(&self, name: &str) -> String {
        if let Some(p) = self.pts.iter().find(|p| p.get(name).is_some()) {
            return p.path().to_string();
        }
        if let [p] = self.pts.as_slice() {
            return p.path().to_string();
        }
        self.entries
            .get(name)
            .and_then(|e| self.shards.get(e.shard))
            .map_or_else(
                || match self.shards.as_slice() {
                    [(p, _)] => p.display().to_string(),
                    _ => format!("{} (no shard holds it)", self.dir.display()),
                },
                |s| s.0.display().to_string(),
            )
    }
}

/// One linear module as the checkpoint stores it.
#[derive(Debug, Clone)]
pub enum Module {
    /// Quantized, in qkc's layout (with outliers where the format has them).
    Quant(super::Imported),
    /// A float weight `[n, k]` (no quantization config, or a module the quantizer skipped, such
    /// as `lm_head`), widened to f32 exactly.
    Dense(Vec<f32>),
}

/// `(n, k, module)` of the linear module `prefix` (a trailing `.weight` is ignored), `[n, k]`
/// from config.json. A module stored dense (`{prefix}.weight` a float tensor) is read as is;
/// otherwise the detected method's importer maps it onto a qkc scheme: GPTQ, AWQ and
/// compressed-tensors onto uniform int (act-order as the scheme's `g_idx`), SqueezeLLM onto
/// `lut3`/`lut4` + CSR, SpQR onto `spqr3:g16` + CSR (its `in_perm` as the scheme's input
/// permutation), AQLM onto `aqlm:CxB`, bitsandbytes onto `nf4`/`fp4`.
pub fn import_module(folder: &HfFolder, prefix: &str) -> Result<(usize, usize, Module), HfError> {
    use super::{aqlm, bnb, spqr, squeezellm};
    let prefix = prefix.strip_suffix(".weight").unwrap_or(prefix);
    let (n, k) = folder.config.module_shape(prefix)?;
    let dense_name = format!("{prefix}.weight");
    if let Some(t) = folder.get(&dense_name) {
        if matches!(t.dtype, RawDtype::F32 | RawDtype::F16 | RawDtype::BF16) {
            let t = super::gptq::expect(
                get(folder, &dense_name)?,
                &[RawDtype::F32, RawDtype::F16, RawDtype::BF16],
                &[n, k],
                &format!("[N, K] = [{n}, {k}] from config.json for `{prefix}`"),
            )?;
            return Ok((n, k, Module::Dense(t.floats()?)));
        }
    }
    let imp = match &folder.method {
        QuantMethod::Gptq(p) => super::gptq::import(folder, prefix, n, k, p)?,
        QuantMethod::Awq(p) => super::awq::import(folder, prefix, n, k, p)?,
        QuantMethod::CompressedTensors(p) => super::compressed::import(folder, prefix, n, k, p)?,
        QuantMethod::SqueezeLlm { bits } => {
            squeezellm::import(folder, prefix, n, k, squeezellm::Params { bits: *bits })?
        }
        QuantMethod::Spqr => spqr::import(folder, prefix, n, k, spqr::Params::default())?,
        QuantMethod::Aqlm {
            num_codebooks,
            nbits_per_codebook,
            in_group_size,
            out_group_size,
        } => aqlm::import(
            folder,
            prefix,
            n,
            k,
            aqlm::Params {
                num_codebooks: *num_codebooks,
                nbits_per_codebook: *nbits_per_codebook,
                in_group_size: *in_group_size,
                out_group_size: *out_group_size,
            },
        )?,
        QuantMethod::Bnb {
            load_in_4bit,
            quant_type,
            ..
        } => {
            if !load_in_4bit {
                return Err(HfError::Unsupported(format!(
                    "{}: bitsandbytes with load_in_4bit = false (LLM.int8); qkc imports the 4-bit NF4/FP4 formats",
                    folder.dir.display()
                )));
            }
            let table = match quant_type.as_deref() {
                None => None,
                Some("nf4") => Some(crate::scheme::FixedTable::Nf4),
                Some("fp4") => Some(crate::scheme::FixedTable::Fp4),
                Some(other) => {
                    return Err(HfError::Unsupported(format!(
                        "{}: bnb_4bit_quant_type `{other}` (qkc imports nf4 and fp4)",
                        folder.dir.display()
                    )))
                }
            };
            bnb::import(folder, prefix, n, k, bnb::Params { quant_type: table })?
        }
        QuantMethod::None => {
            return Err(HfError::Missing {
                file: folder.file_of(&dense_name),
                tensor: dense_name,
            })
        }
    };
    Ok((n, k, Module::Quant(imp)))
}

/// `(n, k, W)` of the linear module `prefix` (see [`import_module`]): `W` row-major `[n, k]`
/// f32 in the module's original column order, i.e. the matrix the layer multiplies x by
/// (dequantized codes plus outliers; an input permutation is part of the scheme, whose
/// `dequant` is in original order).
pub fn dequant_module(
    folder: &HfFolder,
    prefix: &str,
) -> Result<(usize, usize, Vec<f32>), HfError> {
    let prefix = prefix.strip_suffix(".weight").unwrap_or(prefix);
    let (n, k, m) = import_module(folder, prefix)?;
    let imp = match m {
        Module::Dense(w) => return Ok((n, k, w)),
        Module::Quant(imp) => imp,
    };
    let mut w = imp
        .q
        .dequant()
        .map_err(|e| ImportError::Quant(e.in_tensor(prefix)))?;
    if let Some(s) = &imp.outliers {
        s.add_to_dense(&mut w)
            .map_err(|e| ImportError::Quant(e.in_tensor(prefix)))?;
    }
    Ok((n, k, w))
}
