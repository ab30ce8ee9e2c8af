//! Binding weights (from a safetensors checkpoint, or synthesized from a seed) and synthesizing
//! random inputs.

use std::collections::HashMap;
use std::rc::Rc;

use qkc_quant::{Csr, QuantTensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use super::{InterpError, Tensor, Value};
use crate::graph::Graph;
use crate::ops::Op;
use crate::types::{DType, Type};

/// Where weights come from.
pub enum Weights {
    /// Synthesize every weight from this seed (independently per weight name).
    Seed(u64),
    /// A safetensors file's bytes, in qkc's layout.
    Checkpoint(Vec<u8>),
    /// An importer's weights (a GGUF file, an HF checkpoint), usually memory-mapped.
    Source(std::sync::Arc<dyn WeightSource>),
}

/// A weight as an importer hands it over.
#[derive(Debug, Clone)]
pub enum Loaded {
    /// Dense values, row-major, `shape.product()` long (any float that the declared dtype
    /// stores exactly; others are rounded to it).
    Dense(Vec<f32>),
    /// A quantized tensor in qkc's layout.
    Quant(QuantTensor),
    /// Sparse outliers.
    Sparse(Csr),
}

/// Where an importer's weights come from: the graph's weight nodes name tensors, and the source
/// produces each in the form its type declares (or says why it cannot).
pub trait WeightSource: Send + Sync {
    /// The weight `name`, for a node of type `ty`.
    fn load(&self, name: &str, ty: &Type) -> Result<Loaded, String>;
}

/// FNV-1a of a name, to derive an independent seed per weight.
fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    })
}

/// Round a value to what `dtype` can store.
pub(crate) fn round_to(dtype: DType, x: f64) -> f64 {
    match dtype {
        DType::F32 => f64::from(x as f32),
        DType::F16 => half::f16::from_f64(x).to_f64(),
        DType::BF16 => half::bf16::from_f64(x).to_f64(),
        _ => x.round(),
    }
}

fn gaussian(rng: &mut ChaCha8Rng) -> f64 {
    StandardNormal.sample(rng)
}

impl Weights {
    /// The dense float tensor `load` synthesizes for a float weight (seed weights only).
    pub fn synthesize_dense(
        &self,
        name: &str,
        dtype: DType,
        shape: &crate::types::Shape,
    ) -> Result<Tensor, InterpError> {
        match self.load(name, &Type::tensor(dtype, shape.clone()), None)? {
            Value::Dense(t) => Ok(t),
            _ => Err(InterpError::Weight {
                name: name.into(),
                reason: "not a dense weight".into(),
            }),
        }
    }

    pub(crate) fn load(
        &self,
        name: &str,
        ty: &Type,
        density: Option<f64>,
    ) -> Result<Value, InterpError> {
        let err = |reason: String| InterpError::Weight {
            name: name.to_string(),
            reason,
        };
        match self {
            Weights::Seed(seed) => {
                let s = seed ^ name_hash(name);
                match ty {
                    Type::Tensor { dtype, shape } => {
                        let dims = shape.resolve(1);
                        let mut rng = ChaCha8Rng::seed_from_u64(s);
                        let numel: usize = dims.iter().product();
                        // rank-1 weights are norm gains / biases: around 1; matrices: N(0, 1/K).
                        let data = if dims.len() == 1 {
                            (0..numel)
                                .map(|_| round_to(*dtype, 1.0 + 0.1 * gaussian(&mut rng)))
                                .collect()
                        } else {
                            let std = 1.0 / (*dims.last().unwrap_or(&1) as f64).sqrt();
                            (0..numel)
                                .map(|_| round_to(*dtype, std * gaussian(&mut rng)))
                                .collect()
                        };
                        Ok(Value::Dense(Tensor::new(dims, data)))
                    }
                    Type::Quant { scheme, shape } => {
                        let d = shape.resolve(1);
                        let q = QuantTensor::synthesize(*scheme, d[0], d[1], s)
                            .map_err(|e| err(e.to_string()))?;
                        Ok(quant_value(q))
                    }
                    Type::Sparse { shape, .. } => {
                        let d = shape.resolve(1);
                        let scale = 2.0 / (d[1] as f32).sqrt();
                        let csr = Csr::synthesize(d[0], d[1], density.unwrap_or(0.005), scale, s);
                        Ok(sparse_value(csr))
                    }
                }
            }
            Weights::Checkpoint(bytes) => {
                let st = safetensors::SafeTensors::deserialize(bytes)
                    .map_err(|e| err(format!("cannot read the checkpoint: {e}")))?;
                load_checkpoint(&st, name, ty).map_err(err)
            }
            Weights::Source(src) => load_source(src.as_ref(), name, ty).map_err(err),
        }
    }
}

/// A quantized weight; its dense form is made when the interpreter first needs it.
fn quant_value(q: QuantTensor) -> Value {
    Value::Quant(Rc::new(q), Rc::new(std::cell::OnceCell::new()))
}

fn sparse_value(csr: Csr) -> Value {
    let t = Tensor::new(
        vec![csr.n, csr.k],
        csr.to_dense().into_iter().map(f64::from).collect(),
    );
    Value::Sparse(Rc::new(csr), Rc::new(t))
}

fn load_source(src: &dyn WeightSource, name: &str, ty: &Type) -> Result<Value, String> {
    match (ty, src.load(name, ty)?) {
        (Type::Tensor { dtype, shape }, Loaded::Dense(v)) => {
            if shape.0.iter().any(|d| d.as_static().is_none()) {
                return Err(format!("a weight needs a static shape, not {shape}"));
            }
            let want = shape.resolve(1);
            let numel: usize = want.iter().product();
            if v.len() != numel {
                return Err(format!(
                    "the source has {} values but the graph declares {shape} ({numel})",
                    v.len()
                ));
            }
            if let Some(i) = v.iter().position(|x| !x.is_finite()) {
                return Err(format!("element {i} is {} (weights must be finite)", v[i]));
            }
            let data = v.iter().map(|&x| round_to(*dtype, f64::from(x))).collect();
            Ok(Value::Dense(Tensor::new(want, data)))
        }
        (Type::Quant { scheme, shape }, Loaded::Quant(q)) => {
            let d = shape.resolve(1);
            if q.scheme != *scheme || [q.n, q.k] != [d[0], d[1]] {
                return Err(format!(
                    "the source has q<{}>[{}, {}] but the graph declares q<{scheme}>{shape}",
                    q.scheme, q.n, q.k
                ));
            }
            Ok(quant_value(q))
        }
        (Type::Sparse { shape, .. }, Loaded::Sparse(c)) => {
            let d = shape.resolve(1);
            if [c.n, c.k] != [d[0], d[1]] {
                return Err(format!(
                    "the source has sparse [{}, {}] but the graph declares {shape}",
                    c.n, c.k
                ));
            }
            Ok(sparse_value(c))
        }
        (ty, got) => Err(format!(
            "the graph declares {ty} but the source holds a {}",
            match got {
                Loaded::Dense(_) => "dense tensor",
                Loaded::Quant(_) => "quantized tensor",
                Loaded::Sparse(_) => "sparse tensor",
            }
        )),
    }
}

fn load_checkpoint(
    st: &safetensors::SafeTensors<'_>,
    name: &str,
    ty: &Type,
) -> Result<Value, String> {
    match ty {
        Type::Tensor { shape, .. } => {
            let view = st
                .tensor(name)
                .map_err(|_| "not found in the checkpoint".to_string())?;
            let want = shape.resolve(1);
            if view.shape() != want.as_slice() || shape.0.iter().any(|d| d.as_static().is_none()) {
                return Err(format!(
                    "the checkpoint has shape {:?} but the graph declares {shape}",
                    view.shape()
                ));
            }
            let b = view.data();
            let data: Vec<f64> = match view.dtype() {
                safetensors::Dtype::F32 => b
                    .chunks_exact(4)
                    .map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                    .collect(),
                safetensors::Dtype::F16 => b
                    .chunks_exact(2)
                    .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f64())
                    .collect(),
                safetensors::Dtype::BF16 => b
                    .chunks_exact(2)
                    .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f64())
                    .collect(),
                safetensors::Dtype::F64 => b
                    .chunks_exact(8)
                    .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                    .collect(),
                other => return Err(format!("dtype {other:?} cannot be a float weight")),
            };
            if let Some(i) = data.iter().position(|x| !x.is_finite()) {
                return Err(format!(
                    "element {i} is {} (weights must be finite)",
                    data[i]
                ));
            }
            Ok(Value::Dense(Tensor::new(want, data)))
        }
        Type::Quant { scheme, shape } => {
            let d = shape.resolve(1);
            let q = QuantTensor::from_safetensors(st, name, *scheme, d[0], d[1])
                .map_err(|e| e.to_string())?;
            Ok(quant_value(q))
        }
        Type::Sparse { shape, .. } => {
            let d = shape.resolve(1);
            let csr = Csr::from_safetensors(st, name, d[0], d[1]).map_err(|e| e.to_string())?;
            Ok(sparse_value(csr))
        }
    }
}

/// Random inputs for every graph input with `T = tokens`: floats ~ N(0, 1) (rounded to their
/// dtype); integer inputs used as RoPE positions get `pos0..pos0+T`; those used as embedding ids
/// get random ids below the table's row count; others random values in `[0, 16)`.
pub fn synth_inputs(g: &Graph, tokens: usize, seed: u64, pos0: usize) -> HashMap<String, Tensor> {
    let mut out = HashMap::new();
    for id in g.nodes() {
        let node = g.node(id);
        let Op::Input { name } = &node.op else {
            continue;
        };
        let Type::Tensor { dtype, shape } = &node.ty else {
            continue;
        };
        let dims = shape.resolve(tokens);
        let numel: usize = dims.iter().product();
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ name_hash(name));
        let data: Vec<f64> = if dtype.is_float() {
            (0..numel)
                .map(|_| round_to(*dtype, gaussian(&mut rng)))
                .collect()
        } else {
            let users = g.users(id);
            let as_pos = users.iter().any(|&u| {
                matches!(g.node(u).op, Op::Rope { .. })
                    || (matches!(g.node(u).op, Op::Attention(_)) && g.operand(u, "pos") == Some(id))
            });
            let vocab = users.iter().find_map(|&u| match g.node(u).op {
                Op::Embedding => g
                    .operand(u, "table")
                    .and_then(|t| g.node(t).ty.shape().0.first().and_then(|d| d.as_static())),
                _ => None,
            });
            if as_pos {
                (0..numel)
                    .map(|i| (pos0 + i % tokens.max(1)) as f64)
                    .collect()
            } else {
                let hi = vocab.unwrap_or(16).max(1);
                (0..numel).map(|_| rng.gen_range(0..hi) as f64).collect()
            }
        };
        out.insert(name.clone(), Tensor::new(dims, data));
    }
    out
}
