//! HF model folders (issue 8, in progress): `config.json`, the `quantization_config`, and the
//! safetensors weights (one file, or shards with `model.safetensors.index.json`), memory-mapped.
//! `qkc dequant DIR --tensor PREFIX` dispatches a module to `qkc_quant::hf`'s importers; the
//! formats wired: AQLM, bitsandbytes NF4/FP4, SqueezeLLM and SpQR here, and GPTQ, AWQ and
//! compressed-tensors through `qkc_quant::hf::folder` (whose reader detects their parameters;
//! the two folder readers are to be merged into one).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use qkc_quant::hf::{RawDtype, RawTensor, TensorSource};

use crate::ModelError;

fn err(m: impl Into<String>) -> ModelError {
    ModelError::Other(m.into())
}

/// One tensor's place in a shard: (shard, dtype, shape, byte range).
struct Entry {
    shard: usize,
    dtype: RawDtype,
    shape: Vec<usize>,
    start: usize,
    end: usize,
}

/// An HF model folder, memory-mapped.
pub struct HfDir {
    dir: PathBuf,
    /// `config.json`.
    pub config: serde_json::Value,
    /// `quantization_config` (from config.json or `quantize_config.json`).
    pub quant: Option<serde_json::Value>,
    shards: Vec<(PathBuf, memmap2::Mmap)>,
    entries: HashMap<String, Entry>,
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

impl HfDir {
    /// Open `dir`; a missing `config.json`, a bad JSON, or a missing shard is named.
    pub fn open(dir: &Path) -> Result<Self, ModelError> {
        let read_json = |p: &Path| -> Result<serde_json::Value, ModelError> {
            let s = std::fs::read_to_string(p).map_err(|e| err(format!("{}: {e}", p.display())))?;
            serde_json::from_str(&s).map_err(|e| err(format!("{}: {e}", p.display())))
        };
        let config = read_json(&dir.join("config.json"))?;
        let quant = match config.get("quantization_config") {
            Some(q) => Some(q.clone()),
            None if dir.join("quantize_config.json").exists() => {
                Some(read_json(&dir.join("quantize_config.json"))?)
            }
            None => None,
        };
        // shard list: the index's weight_map, or the single file
        let index = dir.join("model.safetensors.index.json");
        let mut want: Vec<(String, Option<String>)> = Vec::new(); // (shard, a tensor it should hold)
        if index.exists() {
            let idx = read_json(&index)?;
            let map = idx
                .get("weight_map")
                .and_then(|m| m.as_object())
                .ok_or_else(|| err(format!("{}: no `weight_map` object", index.display())))?;
            for (t, f) in map {
                let f = f.as_str().ok_or_else(|| {
                    err(format!("{}: `{t}` maps to a non-string", index.display()))
                })?;
                if !want.iter().any(|(s, _)| s == f) {
                    want.push((f.to_string(), Some(t.clone())));
                }
            }
        } else {
            want.push(("model.safetensors".into(), None));
        }
        let mut shards = Vec::new();
        let mut entries = HashMap::new();
        for (name, example) in want {
            let p = dir.join(&name);
            let f = std::fs::File::open(&p).map_err(|e| {
                err(match &example {
                    Some(t) => format!(
                        "{}: {e} (the index lists tensor `{t}` in this shard)",
                        p.display()
                    ),
                    None => format!("{}: {e}", p.display()),
                })
            })?;
            // SAFETY: read-only map of a checkpoint nobody writes while qkc reads it.
            let map = unsafe { memmap2::Mmap::map(&f) }
                .map_err(|e| err(format!("{}: {e}", p.display())))?;
            let (hlen, meta) = safetensors::SafeTensors::read_metadata(&map)
                .map_err(|e| err(format!("{}: not a safetensors file: {e}", p.display())))?;
            let base = 8 + hlen;
            for (t, info) in meta.tensors() {
                let dtype = raw_dtype(info.dtype).ok_or_else(|| {
                    err(format!(
                        "{}: tensor `{t}` has dtype {:?}",
                        p.display(),
                        info.dtype
                    ))
                })?;
                let (s, e) = info.data_offsets;
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
        Ok(HfDir {
            dir: dir.to_path_buf(),
            config,
            quant,
            shards,
            entries,
        })
    }

    fn cfg_usize(&self, key: &str) -> Result<usize, ModelError> {
        self.config
            .get(key)
            .and_then(serde_json::Value::as_u64)
            .map(|v| v as usize)
            .ok_or_else(|| {
                err(format!(
                    "{}: config.json has no integer `{key}`",
                    self.dir.display()
                ))
            })
    }

    /// `[n, k]` of a Llama-family module from config.json (`...q_proj`, `...down_proj`, ...).
    pub fn module_shape(&self, prefix: &str) -> Result<(usize, usize), ModelError> {
        let h = self.cfg_usize("hidden_size")?;
        let heads = self.cfg_usize("num_attention_heads")?;
        let kv = self.cfg_usize("num_key_value_heads").unwrap_or(heads);
        let hd = self.cfg_usize("head_dim").unwrap_or(h / heads.max(1));
        let f = self.cfg_usize("intermediate_size")?;
        let last = prefix.rsplit('.').next().unwrap_or(prefix);
        Ok(match last {
            "q_proj" => (heads * hd, h),
            "k_proj" | "v_proj" => (kv * hd, h),
            "o_proj" => (h, heads * hd),
            "gate_proj" | "up_proj" => (f, h),
            "down_proj" => (h, f),
            _ => {
                return Err(err(format!(
                    "`{prefix}`: not a Llama-family linear module (q/k/v/o_proj, gate/up/down_proj)"
                )))
            }
        })
    }

    /// The `quant_method`, lowercased (`none` without a quantization config).
    pub fn method(&self) -> String {
        self.quant
            .as_ref()
            .and_then(|q| q.get("quant_method"))
            .and_then(|m| m.as_str())
            .unwrap_or("none")
            .to_lowercase()
    }
}

impl TensorSource for HfDir {
    fn get(&self, name: &str) -> Option<RawTensor<'_>> {
        let e = self.entries.get(name)?;
        let data = self.shards.get(e.shard)?.1.get(e.start..e.end)?;
        Some(RawTensor {
            dtype: e.dtype,
            shape: &e.shape,
            data,
        })
    }
    fn file_of(&self, name: &str) -> String {
        self.entries
            .get(name)
            .and_then(|e| self.shards.get(e.shard))
            .map_or_else(
                || self.dir.display().to_string(),
                |s| s.0.display().to_string(),
            )
    }
}

fn q_u64(q: &serde_json::Value, key: &str) -> Option<u64> {
    q.get(key).and_then(serde_json::Value::as_u64)
}

/// `(n, k, values)` of module `prefix` of the HF folder `dir` (`format` overrides the detected
/// `quant_method`).
pub fn dequant(
    dir: &Path,
    prefix: &str,
    format: Option<&str>,
) -> Result<(usize, usize, Vec<f32>), ModelError> {
    use qkc_quant::hf::{aqlm, bnb, spqr, squeezellm};
    let d = HfDir::open(dir)?;
    let prefix = prefix.strip_suffix(".weight").unwrap_or(prefix);
    let (n, k) = d.module_shape(prefix)?;
    let method = format.map_or_else(|| d.method(), str::to_lowercase);
    let q = d.quant.clone().unwrap_or(serde_json::Value::Null);
    let ie = |e: qkc_quant::hf::common::ImportError| err(e.to_string());
    let imp = match method.as_str() {
        "aqlm" => {
            let p = aqlm::Params {
                num_codebooks: q_u64(&q, "num_codebooks").unwrap_or(1) as u8,
                nbits_per_codebook: q_u64(&q, "nbits_per_codebook").unwrap_or(16) as u8,
                in_group_size: q_u64(&q, "in_group_size").unwrap_or(8) as u32,
                out_group_size: q_u64(&q, "out_group_size").unwrap_or(1) as u32,
            };
            aqlm::import(&d, prefix, n, k, p).map_err(ie)?
        }
        "bitsandbytes" | "bnb" => bnb::import(&d, prefix, n, k, bnb::Params { quant_type: None }).map_err(ie)?,
        "squeezellm" => {
            let bits = q_u64(&q, "wbits").or_else(|| q_u64(&q, "bits")).unwrap_or(4) as u8;
            squeezellm::import(&d, prefix, n, k, squeezellm::Params { bits }).map_err(ie)?
        }
        "spqr" => spqr::import(&d, prefix, n, k, spqr::Params::default()).map_err(ie)?,
        "none" => {
            let name = format!("{prefix}.weight");
            let t = d.get(&name).ok_or_else(|| err(format!("{}: no tensor `{name}`", d.dir.display())))?;
            if t.shape != [n, k] {
                return Err(err(format!(
                    "{}: `{name}` is {:?} but config.json implies [{n}, {k}]",
                    d.file_of(&name),
                    t.shape
                )));
            }
            let v: Vec<f32> = match t.dtype {
                RawDtype::F32 => t.data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
                RawDtype::F16 => t.data.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
                RawDtype::BF16 => t.data.chunks_exact(2).map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
                other => return Err(err(format!("{}: `{name}` is {other:?}, not a float", d.file_of(&name)))),
            };
            return Ok((n, k, v));
        }
        "gptq" | "awq" | "compressed-tensors" => {
            // qkc_quant's folder reader detects these methods' parameters (bits, groups,
            // desc_act, v1/v2, GEMM/GEMV, ...) itself
            let f = qkc_quant::hf::folder::HfFolder::open(dir).map_err(ie)?;
            return qkc_quant::hf::dequant_module(&f, prefix).map_err(ie);
        }
        other => {
            return Err(err(format!(
                "{}: unknown quant_method `{other}` (supported: gptq, awq, compressed-tensors, aqlm, bitsandbytes, squeezellm, spqr, unquantized)",
                dir.display()
            )))
        }
    };
    let mut w = imp.q.dequant().map_err(|e| err(format!("{prefix}: {e}")))?;
    if let Some(s) = &imp.outliers {
        s.add_to_dense(&mut w)
            .map_err(|e| err(format!("{prefix}: {e}")))?;
    }
    if let Some(perm) = &imp.in_perm {
        // the module computes W·x[perm]: in original column order W_orig[:, perm[i]] = W[:, i]
        let mut o = vec![0f32; n * k];
        for r in 0..n {
            for (i, &c) in perm.iter().enumerate() {
                let c = c as usize;
                if c >= k {
                    return Err(err(format!("{prefix}: in_perm holds column {c} ≥ K = {k}")));
                }
                o[r * k + c] = w[r * k + i];
            }
        }
        w = o;
    }
    Ok((n, k, w))
}
