//! A model ready to compile: its config, graph, weight source, tokenizer and chat template,
//! opened from a GGUF file or from a directory `qkc import` wrote.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use qkc_ir::interp::Weights;
use qkc_ir::Graph;

use crate::gguf::GgufModel;
use crate::hf::{HfModel, Progress};
use crate::llama::{build_qir, parse_graph, Binding, LlamaConfig, Role};
use crate::tokenizer::Tokenizer;
use crate::ModelError;

/// How to open a model.
#[derive(Debug, Clone, Copy)]
pub struct OpenOptions {
    /// KV cache capacity in tokens (capped at the model's context length).
    pub max_seq: usize,
    /// Per-token activation quantization bits in front of quantized layers (see
    /// [`LlamaConfig::act_bits`]); ignored for an import directory (its graph decides).
    pub act_bits: Option<u8>,
    /// Elements per activation scale (see [`LlamaConfig::act_group`]); `None`: per token.
    pub act_group: Option<u32>,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            max_seq: 2048,
            act_bits: None,
            act_group: None,
        }
    }
}

/// The file `qkc import` writes beside the graph: where the weights are.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ImportManifest {
    /// Format of the weights: `gguf` (a file) or `hf` (an HF model folder).
    pub format: String,
    /// The weight file or folder, memory-mapped at load (absolute, or relative to the manifest).
    pub weights: PathBuf,
    /// The graph file, relative to the manifest.
    pub graph: PathBuf,
    /// The architecture parameters the graph was built from.
    pub config: LlamaConfig,
    /// A qkc checkpoint (safetensors, qkc's layout) whose tensors take precedence over the
    /// weight file's: the layers `qkc requantize` rewrote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlay: Option<PathBuf>,
}

/// Weights from a qkc checkpoint first (memory-mapped), then from the base model.
struct Overlay {
    map: memmap2::Mmap,
    path: PathBuf,
    base: Arc<dyn qkc_ir::interp::WeightSource>,
}

impl Overlay {
    fn open(path: &Path, base: Arc<dyn qkc_ir::interp::WeightSource>) -> Result<Self, ModelError> {
        let f = std::fs::File::open(path)
            .map_err(|e| ModelError::Other(format!("{}: {e}", path.display())))?;
        // SAFETY: the file is opened read-only; qkc does not modify checkpoints while they are
        // mapped (a concurrent writer would be a user error, as with any mmapped weights).
        let map = unsafe { memmap2::Mmap::map(&f) }
            .map_err(|e| ModelError::Other(format!("{}: {e}", path.display())))?;
        safetensors::SafeTensors::deserialize(&map).map_err(|e| {
            ModelError::Other(format!("{}: not a safetensors file: {e}", path.display()))
        })?;
        Ok(Overlay {
            map,
            path: path.to_path_buf(),
            base,
        })
    }
}

impl qkc_ir::interp::WeightSource for Overlay {
    fn load(&self, name: &str, ty: &qkc_ir::Type) -> Result<qkc_ir::interp::Loaded, String> {
        use qkc_ir::interp::Loaded;
        let st = safetensors::SafeTensors::deserialize(&self.map)
            .map_err(|e| format!("{}: {e}", self.path.display()))?;
        let here = |p: &str| st.names().iter().any(|n| n.starts_with(p));
        match ty {
            qkc_ir::Type::Quant { scheme, shape } if here(&format!("{name}.")) => {
                let d = shape.resolve(1);
                qkc_quant::QuantTensor::from_safetensors(&st, name, *scheme, d[0], d[1])
                    .map(Loaded::Quant)
                    .map_err(|e| format!("{}: {e}", self.path.display()))
            }
            qkc_ir::Type::Sparse { shape, .. } => {
                let d = shape.resolve(1);
                qkc_quant::Csr::from_safetensors(&st, name, d[0], d[1])
                    .map(Loaded::Sparse)
                    .map_err(|e| format!("{}: {e}", self.path.display()))
            }
            _ => self.base.load(name, ty),
        }
    }
}

/// A model ready to compile and run.
pub struct Model {
    /// Architecture.
    pub cfg: LlamaConfig,
    /// The graph (one step of T tokens).
    pub graph: Graph,
    /// Its text.
    pub text: String,
    /// Weight binding (memory-mapped source).
    pub weights: Weights,
    /// Tokenizer.
    pub tokenizer: Tokenizer,
    /// The chat template, when the model has one.
    pub chat_template: Option<String>,
    /// The weight file (GGUF) or folder (HF).
    source: PathBuf,
    /// `gguf` or `hf`.
    format: &'static str,
}

fn no_progress(_: usize, _: usize, _: &str) {}

impl Model {
    /// Open a `.gguf` file, an HF model folder (`config.json`), or a directory `qkc import`
    /// wrote (`qkc-import.json`).
    pub fn open(path: &Path, opts: &OpenOptions) -> Result<Model, ModelError> {
        Self::open_with(path, opts, &mut no_progress)
    }

    /// [`Model::open`], reporting the import of an HF folder's modules to `progress`.
    pub fn open_with(
        path: &Path,
        opts: &OpenOptions,
        progress: Progress<'_>,
    ) -> Result<Model, ModelError> {
        if path.is_dir() {
            if path.join("qkc-import.json").exists() {
                return Self::open_import(path, opts);
            }
            if path.join("config.json").exists() {
                return Self::open_hf(path, opts, progress);
            }
            return Err(ModelError::Other(format!(
                "{}: neither a `qkc import` directory (no qkc-import.json) nor an HF model folder (no config.json)",
                path.display()
            )));
        }
        let gguf = Arc::new(GgufModel::open(path)?);
        let mut cfg = gguf.config()?;
        cfg.max_seq = opts.max_seq.min(cfg.context.max(1));
        cfg.act_bits = opts.act_bits;
        cfg.act_group = opts.act_group;
        let g = gguf.clone();
        let name = |r: Role| r.gguf_name();
        let ty = move |r: Role| g.type_of(r);
        let text = build_qir(
            &cfg,
            &Binding {
                name: &name,
                ty: &ty,
            },
        )?;
        Self::assemble_gguf(cfg, text, gguf)
    }

    fn open_hf(
        dir: &Path,
        opts: &OpenOptions,
        progress: Progress<'_>,
    ) -> Result<Model, ModelError> {
        if opts.act_bits.is_some() {
            return Err(ModelError::Other(format!(
                "{}: --act-bits applies to GGUF models (an HF checkpoint's graph keeps f32 activations)",
                dir.display()
            )));
        }
        let hf = HfModel::open(dir, opts.max_seq)?;
        let text = hf.graph_text(progress)?;
        Self::assemble_hf(hf.config().clone(), text, Arc::new(hf))
    }

    fn open_import(dir: &Path, opts: &OpenOptions) -> Result<Model, ModelError> {
        let mpath = dir.join("qkc-import.json");
        let raw = std::fs::read_to_string(&mpath).map_err(|e| {
            ModelError::Other(format!(
                "{}: {e} (not a `qkc import` directory?)",
                mpath.display()
            ))
        })?;
        let m: ImportManifest = serde_json::from_str(&raw)
            .map_err(|e| ModelError::Other(format!("{}: {e}", mpath.display())))?;
        let wpath = if m.weights.is_absolute() {
            m.weights.clone()
        } else {
            dir.join(&m.weights)
        };
        let gpath = dir.join(&m.graph);
        let mut text = std::fs::read_to_string(&gpath)
            .map_err(|e| ModelError::Other(format!("{}: {e}", gpath.display())))?;
        let mut cfg = m.config;
        let want = opts.max_seq.min(cfg.context.max(1));
        if want != cfg.max_seq {
            // the cache capacity is the one graph attribute a user changes at run time
            text = text.replace(
                &format!("max_seq = {}}}", cfg.max_seq),
                &format!("max_seq = {want}}}"),
            );
            cfg.max_seq = want;
        }
        let (mut model, base): (Model, Arc<dyn qkc_ir::interp::WeightSource>) = match m
            .format
            .as_str()
        {
            "gguf" => {
                let g = Arc::new(GgufModel::open(&wpath)?);
                (Self::assemble_gguf(cfg, text, g.clone())?, g)
            }
            "hf" => {
                let hf = Arc::new(HfModel::open(&wpath, want)?);
                if hf.config().hidden != cfg.hidden || hf.config().layers != cfg.layers {
                    return Err(ModelError::Other(format!(
                            "{}: the folder's config.json no longer matches the imported graph (re-run `qkc import`)",
                            wpath.display()
                        )));
                }
                (Self::assemble_hf(cfg, text, hf.clone())?, hf)
            }
            other => {
                return Err(ModelError::Other(format!(
                    "{}: weight format `{other}` is not supported (qkc imports gguf and hf)",
                    mpath.display()
                )))
            }
        };
        if let Some(o) = &m.overlay {
            model.weights = Weights::Source(Arc::new(Overlay::open(&dir.join(o), base)?));
        }
        Ok(model)
    }

    fn assemble_gguf(
        cfg: LlamaConfig,
        text: String,
        gguf: Arc<GgufModel>,
    ) -> Result<Model, ModelError> {
        let graph = parse_graph(&text)?;
        let tokenizer = gguf.tokenizer()?;
        let chat_template = gguf.chat_template();
        Ok(Model {
            cfg,
            graph,
            text,
            source: gguf.path().to_path_buf(),
            weights: Weights::Source(gguf),
            tokenizer,
            chat_template,
            format: "gguf",
        })
    }

    fn assemble_hf(cfg: LlamaConfig, text: String, hf: Arc<HfModel>) -> Result<Model, ModelError> {
        let graph = parse_graph(&text)?;
        let tokenizer = hf.tokenizer()?;
        let chat_template = hf.chat_template();
        Ok(Model {
            cfg,
            graph,
            text,
            source: hf.folder().dir().to_path_buf(),
            weights: Weights::Source(hf),
            tokenizer,
            chat_template,
            format: "hf",
        })
    }

    /// The weight file (GGUF) or folder (HF).
    pub fn weights_path(&self) -> &Path {
        &self.source
    }

    /// Write `model.qir` and `qkc-import.json` (the weights stay where they are, memory-mapped
    /// at load). Returns the files written with a description.
    pub fn write_import(&self, out: &Path) -> Result<Vec<(PathBuf, &'static str)>, ModelError> {
        let io = |p: &Path, e: std::io::Error| ModelError::Other(format!("{}: {e}", p.display()));
        std::fs::create_dir_all(out).map_err(|e| io(out, e))?;
        let gpath = out.join("model.qir");
        std::fs::write(&gpath, &self.text).map_err(|e| io(&gpath, e))?;
        let weights = std::fs::canonicalize(&self.source).map_err(|e| io(&self.source, e))?;
        let m = ImportManifest {
            format: self.format.into(),
            weights,
            graph: "model.qir".into(),
            config: self.cfg.clone(),
            overlay: None,
        };
        let mpath = out.join("qkc-import.json");
        let json =
            serde_json::to_string_pretty(&m).map_err(|e| ModelError::Other(e.to_string()))?;
        std::fs::write(&mpath, json + "\n").map_err(|e| io(&mpath, e))?;
        Ok(vec![
            (
                gpath,
                "the whole model as a .qir graph (one step of T tokens, KV caches per block)",
            ),
            (
                mpath,
                if self.format == "gguf" {
                    "the weight binding: the GGUF file, memory-mapped at load (not copied)"
                } else {
                    "the weight binding: the HF folder's safetensors, memory-mapped at load (not copied)"
                },
            ),
        ])
    }

    /// The prompt wrapped in the model's chat template as one user message, with the
    /// generation prompt.
    pub fn chat_prompt(&self, user: &str) -> Result<String, ModelError> {
        let t = self.chat_template.as_deref().ok_or_else(|| {
            ModelError::Other("the model has no chat template (tokenizer.chat_template)".into())
        })?;
        let msgs = [crate::chat::Message::user(user)];
        let bos = self
            .tokenizer
            .bos()
            .and_then(|i| self.tokenizer.id_to_token(i))
            .unwrap_or_default();
        let eos = self
            .tokenizer
            .eos()
            .and_then(|i| self.tokenizer.id_to_token(i))
            .unwrap_or_default();
        crate::chat::ChatTemplate::new(t)
            .and_then(|c| c.render(&msgs, true, &bos, &eos))
            .map_err(|e| ModelError::Other(e.to_string()))
    }

    /// Tokens that end generation: the EOS token, and `<|im_end|>` / `<|eot_id|>` / `<|endoftext|>`
    /// when the vocabulary has them.
    pub fn stop_tokens(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self.tokenizer.eos().into_iter().collect();
        for s in ["<|im_end|>", "<|eot_id|>", "<|endoftext|>"] {
            if let Some(i) = self.tokenizer.token_to_id(s) {
                if !v.contains(&i) {
                    v.push(i);
                }
            }
        }
        v
    }
}
