//! `qkc quantize`: quantize the linear weights of a float safetensors checkpoint into qkc's
//! layout, optionally folding QuaRot's Hadamard (`W·Hᵀ`) and splitting sparse outliers, and
//! rewrite a graph so its weights carry the chosen schemes. `qkc synth-weights` writes a graph's
//! seed-synthesized float weights to a checkpoint (to make an fp16 model to quantize).

use std::collections::HashMap;
use std::path::Path;

use qkc_ir::{DType, Op, Type};
use qkc_passes::quantize_graph::{quantize_graph, WeightPlan};
use qkc_quant::io::SafetensorsWriter;
use qkc_quant::outliers::{quantize_dense_and_sparse, Saliency};
use qkc_quant::tensor::QuantOptions;
use qkc_quant::{Part, PartDtype, QuantTensor, Scheme};

/// One recipe line: a name pattern and what to do with matching weights.
#[derive(Debug, Clone)]
pub struct Rule {
    pattern: String,
    scheme: Option<Scheme>,
    rotate: bool,
    outliers: Option<f64>,
}

/// Glob match with `*` (any run of characters).
fn glob(p: &str, s: &str) -> bool {
    match p.split_once('*') {
        None => p == s,
        Some((head, rest)) => {
            s.starts_with(head)
                && (head.len()..=s.len()).any(|i| s.is_char_boundary(i) && glob(rest, &s[i..]))
        }
    }
}

fn parse_percent(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim_end_matches('%')
        .parse()
        .map_err(|_| format!("`{s}` is not a percentage such as 0.5%"))?;
    if !(0.0..=50.0).contains(&v) {
        return Err(format!("outlier fraction {v}% is outside [0, 50]"));
    }
    Ok(v / 100.0)
}

/// The rules from `--scheme` (one rule for everything) or a recipe file:
/// `PATTERN SCHEME [rotate=hadamard] [outliers=P%]`, first match wins, `keep` keeps float, `#`
/// starts a comment.
pub fn rules(
    scheme: Option<&str>,
    recipe: Option<&Path>,
    rotate: bool,
    outliers: Option<&str>,
) -> Result<Vec<Rule>, String> {
    let outliers = outliers.map(parse_percent).transpose()?;
    if let Some(s) = scheme {
        let scheme = s.parse::<Scheme>().map_err(|e| e.to_string())?;
        return Ok(vec![Rule {
            pattern: "*".into(),
            scheme: Some(scheme),
            rotate,
            outliers,
        }]);
    }
    let path = recipe.ok_or("give --scheme SPEC or --recipe FILE")?;
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let at = |m: String| format!("{}:{}: {m}", path.display(), i + 1);
        let mut words = line.split_whitespace();
        let pattern = words.next().unwrap_or("*").to_string();
        let spec = words
            .next()
            .ok_or_else(|| at("expected `PATTERN SCHEME [options]`".into()))?;
        let scheme = if spec == "keep" {
            None
        } else {
            Some(spec.parse::<Scheme>().map_err(|e| at(e.to_string()))?)
        };
        let mut rule = Rule {
            pattern,
            scheme,
            rotate,
            outliers,
        };
        for w in words {
            match w.split_once('=') {
                Some(("rotate", "hadamard")) => rule.rotate = true,
                Some(("rotate", "none")) => rule.rotate = false,
                Some(("outliers", p)) => rule.outliers = Some(parse_percent(p).map_err(at)?),
                _ => {
                    return Err(at(format!(
                        "unknown option `{w}` (rotate=hadamard|none, outliers=P%)"
                    )))
                }
            }
        }
        out.push(rule);
    }
    Ok(out)
}

fn read_f32(view: &safetensors::tensor::TensorView<'_>) -> Option<Vec<f32>> {
    let b = view.data();
    Some(match view.dtype() {
        safetensors::Dtype::F32 => b
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        safetensors::Dtype::F16 => b
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        safetensors::Dtype::BF16 => b
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        _ => return None,
    })
}

/// Quantize `input` into `output`; returns the plans (for the graph) and a report.
pub fn quantize_checkpoint(
    input: &Path,
    output: &Path,
    rules: &[Rule],
    only: Option<&[String]>,
    seed: u64,
) -> Result<(HashMap<String, WeightPlan>, String), String> {
    let bytes = std::fs::read(input).map_err(|e| format!("{}: {e}", input.display()))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| format!("{}: not a safetensors file: {e}", input.display()))?;
    let mut names: Vec<String> = st.names().into_iter().map(str::to_string).collect();
    names.sort();
    let mut writer = SafetensorsWriter::new();
    let mut plans = HashMap::new();
    let mut report = String::new();
    let (mut qbits, mut qweights) = (0f64, 0usize);
    for name in &names {
        let view = st.tensor(name).map_err(|e| format!("{name}: {e}"))?;
        let values = read_f32(&view);
        let candidate = view.shape().len() == 2
            && values.is_some()
            && only.is_none_or(|o| o.contains(name))
            && (only.is_some() || !name.contains("embed"));
        let rule = rules
            .iter()
            .find(|r| glob(&r.pattern, name))
            .filter(|_| candidate);
        let (Some(rule), Some(w)) = (rule, values.clone()) else {
            // copied as is (f32 for floats other than f16/f32)
            let part = match (view.dtype(), values) {
                (safetensors::Dtype::F16, _) => Part {
                    dtype: PartDtype::F16,
                    shape: view.shape().to_vec(),
                    bytes: view.data().to_vec(),
                },
                (_, Some(v)) => Part::from_f32(view.shape().to_vec(), &v),
                _ => {
                    return Err(format!(
                        "{name}: dtype {:?} cannot be copied into a qkc checkpoint",
                        view.dtype()
                    ))
                }
            };
            writer.add_part(name, part).map_err(|e| e.to_string())?;
            continue;
        };
        let Some(scheme) = rule.scheme else {
            writer
                .add_part(name, Part::from_f32(view.shape().to_vec(), &w))
                .map_err(|e| e.to_string())?;
            continue;
        };
        let (n, k) = (view.shape()[0], view.shape()[1]);
        let mut w = w;
        if rule.rotate {
            // offline fold W' = W·Hᵀ, so that (W·Hᵀ)(H x) = W x with the online rotation
            qkc_quant::hadamard::apply_rows_f32(&mut w, k, false)
                .map_err(|e| format!("{name}: --rotate hadamard needs K = {k} to be 2^m or K·2^m with a known had_K: {e}"))?;
        }
        let pb = progress(name, n);
        let cb = |done: usize, _total: usize| pb.set_position(done as u64);
        let opts = QuantOptions {
            seed,
            progress: Some(&cb),
            ..QuantOptions::default()
        };
        let (q, csr) = match rule.outliers {
            Some(f) if f > 0.0 => {
                let (q, c) =
                    quantize_dense_and_sparse(scheme, &w, n, k, f, Saliency::Magnitude, true)
                        .map_err(|e| format!("{name}: {e}"))?;
                (q, Some(c))
            }
            _ => (
                QuantTensor::quantize_with(scheme, &w, n, k, &opts)
                    .map_err(|e| format!("{name}: {e}"))?,
                None,
            ),
        };
        pb.finish_and_clear();
        let err = rel_error(&q, csr.as_ref(), &w)?;
        let mut bits = q.bits_per_weight();
        writer.add_quant(name, &q).map_err(|e| e.to_string())?;
        if let Some(c) = &csr {
            bits += c.storage_bits() as f64 / (n * k) as f64;
            writer.add_outliers(name, c).map_err(|e| e.to_string())?;
        }
        qbits += bits * (n * k) as f64;
        qweights += n * k;
        report.push_str(&format!(
            "  {name} [{n}, {k}] -> {scheme}{}{}: {bits:.3} bits/weight, rel. Frobenius error {err:.4}\n",
            if rule.rotate { " +hadamard" } else { "" },
            csr.as_ref().map_or(String::new(), |c| format!(" +{} outliers", c.nnz())),
        ));
        let index = if k <= 1 << 16 { DType::U16 } else { DType::U32 };
        plans.insert(
            name.clone(),
            WeightPlan {
                scheme,
                rotated: rule.rotate,
                outlier_val: qkc_ir::DType::F16,
                outliers: csr.map(|_| index),
            },
        );
    }
    if qweights > 0 {
        report.push_str(&format!(
            "  average over quantized weights: {:.3} bits/weight\n",
            qbits / qweights as f64
        ));
    }
    writer.write(output).map_err(|e| e.to_string())?;
    Ok((plans, report))
}

fn progress(name: &str, rows: usize) -> indicatif::ProgressBar {
    let pb = if rows >= 4096 {
        indicatif::ProgressBar::new(rows as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    if let Ok(style) = indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} rows")
    {
        pb.set_style(style);
    }
    pb.set_message(name.to_string());
    pb
}

/// ‖W − (dequant(Wq) + S)‖ / ‖W‖.
fn rel_error(q: &QuantTensor, s: Option<&qkc_quant::Csr>, w: &[f32]) -> Result<f64, String> {
    let mut d = q.dequant().map_err(|e| e.to_string())?;
    if let Some(s) = s {
        s.add_to_dense(&mut d).map_err(|e| e.to_string())?;
    }
    let (mut num, mut den) = (0f64, 0f64);
    for (a, b) in w.iter().zip(&d) {
        num += f64::from(a - b).powi(2);
        den += f64::from(*a).powi(2);
    }
    Ok((num / den.max(1e-300)).sqrt())
}

/// The float weights a graph's linear layers use (the candidates to quantize).
pub fn linear_weights(g: &qkc_ir::Graph) -> Vec<String> {
    g.nodes()
        .filter(|&n| {
            g.users(n)
                .iter()
                .any(|&u| matches!(g.node(u).op, Op::Linear) && g.operand(u, "w") == Some(n))
        })
        .filter_map(|n| match &g.node(n).op {
            Op::Weight { name, .. } if g.node(n).ty.is_float_tensor() => Some(name.clone()),
            _ => None,
        })
        .collect()
}

/// Rewrite the graph for the plans.
pub fn rewrite_graph(
    g: &mut qkc_ir::Graph,
    plans: &HashMap<String, WeightPlan>,
) -> Result<usize, String> {
    quantize_graph(g, plans)
}

/// Write every float weight of `g`, synthesized from `seed` as `qkc run --seed` would, to a
/// safetensors file in each weight's declared dtype.
pub fn synth_weights(g: &qkc_ir::Graph, seed: u64, out: &Path) -> Result<usize, String> {
    let mut writer = SafetensorsWriter::new();
    let mut count = 0;
    let w = qkc_ir::interp::Weights::Seed(seed);
    for n in g.nodes() {
        let Op::Weight { name, .. } = &g.node(n).op else {
            continue;
        };
        let Type::Tensor { dtype, shape } = &g.node(n).ty else {
            return Err(format!(
                "weight \"{name}\" is {}: synth-weights writes float graphs only",
                g.node(n).ty
            ));
        };
        let t = w
            .synthesize_dense(name, *dtype, shape)
            .map_err(|e| e.to_string())?;
        let part = if *dtype == DType::F16 {
            Part::from_f16(
                t.shape.clone(),
                &t.data
                    .iter()
                    .map(|&v| half::f16::from_f64(v))
                    .collect::<Vec<_>>(),
            )
        } else {
            Part::from_f32(
                t.shape.clone(),
                &t.data.iter().map(|&v| v as f32).collect::<Vec<_>>(),
            )
        };
        writer.add_part(name, part).map_err(|e| e.to_string())?;
        count += 1;
    }
    writer.write(out).map_err(|e| e.to_string())?;
    Ok(count)
}
