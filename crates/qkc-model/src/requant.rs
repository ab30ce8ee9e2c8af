//! `qkc requantize`: dequantize every linear layer of a model's decoder blocks and quantize it
//! again with one of qkc's schemes (a named recipe), writing a qkc checkpoint of the new
//! weights, the rewritten graph, and an import manifest that binds the rest (embedding, norms,
//! head) from the original file.
//!
//! | recipe | scheme | extras | after |
//! |---|---|---|---|
//! | `rtn4` | `int4:g64` | — | RTN baseline at 4.5 bits |
//! | `int4-had` | `int4:g64` | offline `W·Hᵀ` + online Hadamard of x | QuaRot |
//! | `rtn3` | `int3:g16` | — | RTN baseline near SpQR's bits |
//! | `spqr3` | `spqr3:g16` | 0.5% CSR outliers | SpQR |
//! | `lut3` | `lut3` | 0.5% CSR outliers | SqueezeLLM (unweighted k-means) |
//! | `lut4` | `lut4` | 0.5% CSR outliers | SqueezeLLM |
//! | `aqlm2x8` | `aqlm:2x8` | — | AQLM (codebooks fit by k-means, no fine-tuning) |
//! | `billm` | `billm:g64` | — | BiLLM residual binarization |
//!
//! Groups are 64 where the papers use 128: SmolLM2's hidden size 576 is not a multiple of 128.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use qkc_passes::quantize_graph::{quantize_graph, WeightPlan};
use qkc_quant::io::SafetensorsWriter;
use qkc_quant::outliers::{quantize_dense_and_sparse, Saliency};
use qkc_quant::tensor::QuantOptions;
use qkc_quant::{QuantTensor, Scheme};

use crate::gguf::GgufModel;
use crate::llama::{build_qir, Binding, Role};
use crate::ModelError;

/// One recipe: what every decoder linear layer becomes.
#[derive(Debug, Clone, Copy)]
pub struct Recipe {
    /// Its name.
    pub name: &'static str,
    /// Scheme spelling.
    pub scheme: &'static str,
    /// QuaRot: fold `W·Hᵀ` offline and rotate x online.
    pub rotate: bool,
    /// Fraction of weights kept as fp16 CSR outliers.
    pub outliers: Option<f64>,
    /// What it stands for.
    pub doc: &'static str,
}

/// Every recipe (see the module table).
pub const RECIPES: &[Recipe] = &[
    Recipe {
        name: "rtn4",
        scheme: "int4:g64",
        rotate: false,
        outliers: None,
        doc: "RTN int4, groups of 64",
    },
    Recipe {
        name: "int4-had",
        scheme: "int4:g64",
        rotate: true,
        outliers: None,
        doc: "QuaRot: offline W·Hᵀ + online Hadamard, int4 g64",
    },
    Recipe {
        name: "rtn3",
        scheme: "int3:g16",
        rotate: false,
        outliers: None,
        doc: "RTN int3, groups of 16",
    },
    Recipe {
        name: "spqr3",
        scheme: "spqr3:g16",
        rotate: false,
        outliers: Some(0.005),
        doc: "SpQR: 3-bit, 16-wide groups, 3-bit stats, 0.5% outliers",
    },
    Recipe {
        name: "lut3",
        scheme: "lut3",
        rotate: false,
        outliers: Some(0.005),
        doc: "SqueezeLLM: per-row 3-bit k-means table, 0.5% outliers",
    },
    Recipe {
        name: "lut4",
        scheme: "lut4",
        rotate: false,
        outliers: Some(0.005),
        doc: "SqueezeLLM: per-row 4-bit k-means table, 0.5% outliers",
    },
    Recipe {
        name: "aqlm2x8",
        scheme: "aqlm:2x8",
        rotate: false,
        outliers: None,
        doc: "AQLM 2x8 (k-means codebooks, no fine-tuning)",
    },
    Recipe {
        name: "billm",
        scheme: "billm:g64",
        rotate: false,
        outliers: None,
        doc: "BiLLM residual binarization",
    },
];

/// Find a recipe by name; the error lists them.
pub fn recipe(name: &str) -> Result<Recipe, ModelError> {
    RECIPES
        .iter()
        .find(|r| r.name == name)
        .copied()
        .ok_or_else(|| {
            let names: Vec<&str> = RECIPES.iter().map(|r| r.name).collect();
            ModelError::Other(format!(
                "unknown recipe `{name}` (recipes: {})",
                names.join(", ")
            ))
        })
}

/// One requantized layer, for the report.
#[derive(Debug, Clone)]
pub struct LayerReport {
    /// Checkpoint name.
    pub name: String,
    /// `[n, k]`.
    pub shape: (usize, usize),
    /// Bits per weight (codes, statistics and outliers).
    pub bits: f64,
    /// ‖W − Ŵ‖ / ‖W‖ against the original (dequantized) weight.
    pub rel_err: f64,
}

/// The result of [`requantize`].
#[derive(Debug, Clone)]
pub struct Report {
    /// Per layer.
    pub layers: Vec<LayerReport>,
    /// Files written.
    pub files: Vec<PathBuf>,
}

impl Report {
    /// Bits per weight over the requantized layers.
    pub fn bits(&self) -> f64 {
        let (b, n) = self.layers.iter().fold((0.0, 0usize), |(b, n), l| {
            let w = l.shape.0 * l.shape.1;
            (b + l.bits * w as f64, n + w)
        });
        b / n.max(1) as f64
    }
}

fn rel_error(
    q: &QuantTensor,
    s: Option<&qkc_quant::Csr>,
    w: &[f32],
) -> Result<(f64, Vec<f32>), String> {
    let mut d = q.dequant().map_err(|e| e.to_string())?;
    if let Some(s) = s {
        s.add_to_dense(&mut d).map_err(|e| e.to_string())?;
    }
    let (mut num, mut den) = (0f64, 0f64);
    for (a, b) in w.iter().zip(&d) {
        num += f64::from(a - b).powi(2);
        den += f64::from(*a).powi(2);
    }
    Ok(((num / den.max(1e-300)).sqrt(), d))
}

/// Requantize the GGUF model at `src` with `recipe` into `out` (`weights.safetensors`,
/// `model.qir`, `qkc-import.json`). `progress(done, total, name)` is called per layer.
pub fn requantize(
    src: &Path,
    recipe: &Recipe,
    out: &Path,
    max_seq: usize,
    seed: u64,
    progress: &mut dyn FnMut(usize, usize, &str),
) -> Result<Report, ModelError> {
    let scheme: Scheme = recipe
        .scheme
        .parse()
        .map_err(|e: qkc_quant::SchemeParseError| ModelError::Other(e.to_string()))?;
    let gguf = GgufModel::open(src)?;
    let mut cfg = gguf.config()?;
    cfg.max_seq = max_seq.min(cfg.context.max(1));
    let block_linear = |r: Role| r.is_linear() && r != Role::Head;
    // the float graph: block linears as f32, everything else as the file stores it
    let ty = |r: Role| {
        if block_linear(r) {
            "f32".to_string()
        } else {
            gguf.type_of(r)
        }
    };
    let name = |r: Role| r.gguf_name();
    let text = build_qir(
        &cfg,
        &Binding {
            name: &name,
            ty: &ty,
        },
    )?;
    let mut g = crate::llama::parse_graph(&text)?;

    let roles: Vec<Role> = cfg
        .roles()
        .into_iter()
        .filter(|&r| block_linear(r))
        .collect();
    let mut writer = SafetensorsWriter::new();
    let mut plans = HashMap::new();
    let mut layers = Vec::new();
    let qe = |n: &str, e: String| ModelError::Other(format!("{n}: {e}"));
    for (i, &r) in roles.iter().enumerate() {
        let tname = r.gguf_name();
        progress(i, roles.len(), &tname);
        let (n, k) = (cfg.shape(r)[0], cfg.shape(r)[1]);
        let mut w = gguf
            .file()
            .dequantize(&tname)
            .map_err(|e| ModelError::Other(e.to_string()))?;
        let orig = w.clone();
        if recipe.rotate {
            // offline fold W' = W·Hᵀ, so that (W·Hᵀ)(H x) = W x with the online rotation
            qkc_quant::hadamard::apply_rows_f32(&mut w, k, false).map_err(|e| {
                qe(
                    &tname,
                    format!(
                        "recipe {} needs a Hadamard of size K = {k}: {e}",
                        recipe.name
                    ),
                )
            })?;
        }
        let opts = QuantOptions {
            seed,
            ..QuantOptions::default()
        };
        let (q, csr) = match recipe.outliers {
            Some(f) => {
                let (q, c) =
                    quantize_dense_and_sparse(scheme, &w, n, k, f, Saliency::Magnitude, true)
                        .map_err(|e| qe(&tname, e.to_string()))?;
                (q, Some(c))
            }
            None => (
                QuantTensor::quantize_with(scheme, &w, n, k, &opts)
                    .map_err(|e| qe(&tname, e.to_string()))?,
                None,
            ),
        };
        // error against the original weight (undo the fold on the reconstruction)
        let (_, mut d) = rel_error(&q, csr.as_ref(), &w).map_err(|e| qe(&tname, e))?;
        if recipe.rotate {
            qkc_quant::hadamard::apply_rows_f32(&mut d, k, true)
                .map_err(|e| qe(&tname, e.to_string()))?;
        }
        let (mut num, mut den) = (0f64, 0f64);
        for (a, b) in orig.iter().zip(&d) {
            num += f64::from(a - b).powi(2);
            den += f64::from(*a).powi(2);
        }
        let mut bits = q.bits_per_weight();
        writer
            .add_quant(&tname, &q)
            .map_err(|e| qe(&tname, e.to_string()))?;
        if let Some(c) = &csr {
            bits += c.storage_bits() as f64 / (n * k) as f64;
            writer
                .add_outliers(&tname, c)
                .map_err(|e| qe(&tname, e.to_string()))?;
        }
        layers.push(LayerReport {
            name: tname.clone(),
            shape: (n, k),
            bits,
            rel_err: (num / den.max(1e-300)).sqrt(),
        });
        plans.insert(
            tname,
            WeightPlan {
                scheme,
                rotated: recipe.rotate,
                outlier_val: qkc_ir::DType::F16,
                outliers: csr.map(|_| {
                    if k <= 1 << 16 {
                        qkc_ir::DType::U16
                    } else {
                        qkc_ir::DType::U32
                    }
                }),
            },
        );
    }
    progress(roles.len(), roles.len(), "");
    quantize_graph(&mut g, &plans).map_err(ModelError::Graph)?;
    let text = format!(
        "// {} requantized by qkc with recipe `{}`: {}\n{}",
        cfg.name, recipe.name, recipe.doc, g
    );
    crate::llama::parse_graph(&text)?;
    let io = |p: &Path, e: String| ModelError::Other(format!("{}: {e}", p.display()));
    std::fs::create_dir_all(out).map_err(|e| io(out, e.to_string()))?;
    let wpath = out.join("weights.safetensors");
    writer
        .write(&wpath)
        .map_err(|e| io(&wpath, e.to_string()))?;
    let gpath = out.join("model.qir");
    std::fs::write(&gpath, &text).map_err(|e| io(&gpath, e.to_string()))?;
    let m = crate::ImportManifest {
        format: "gguf".into(),
        weights: std::fs::canonicalize(src).map_err(|e| io(src, e.to_string()))?,
        graph: "model.qir".into(),
        config: cfg,
        overlay: Some("weights.safetensors".into()),
    };
    let mpath = out.join("qkc-import.json");
    let json = serde_json::to_string_pretty(&m).map_err(|e| ModelError::Other(e.to_string()))?;
    std::fs::write(&mpath, json + "\n").map_err(|e| io(&mpath, e.to_string()))?;
    Ok(Report {
        layers,
        files: vec![wpath, gpath, mpath],
    })
}
