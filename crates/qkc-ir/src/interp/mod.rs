//! The reference interpreter: the meaning of the IR.
//!
//! It evaluates any graph, before or after fusion, in f64 on the CPU, one op at a time, with no
//! cleverness: every backend is tested against it. Quantized weights go through the exact scalar
//! reference dequant of `qkc-quant`; float dtypes narrower than f64 describe storage, so inputs
//! and weights hold values representable in their dtype, while arithmetic is exact f64.
//!
//! Weights come from a safetensors checkpoint ([`Weights::Checkpoint`], qkc's layout for
//! quantized and sparse weights) or are synthesized from a seed ([`Weights::Seed`]): random fp
//! weights quantized to the declared scheme, so quantized graphs run with no checkpoint at hand.
//! KV caches persist across [`Interpreter::run`] calls, so decode can be stepped token by token.

mod eval;
mod tensor;
mod weights;

use std::collections::HashMap;

pub use tensor::{summary, Summary, Tensor};
pub use weights::{synth_inputs, Loaded, WeightSource, Weights};

use crate::graph::{Graph, NodeId};
use crate::ops::Op;
use crate::types::Dim;

/// Errors while binding or running a graph.
#[derive(Debug, thiserror::Error)]
pub enum InterpError {
    /// A weight could not be loaded or synthesized.
    #[error("weight `{name}`: {reason}")]
    Weight {
        /// checkpoint name
        name: String,
        /// what went wrong
        reason: String,
    },
    /// A graph input was not supplied or has the wrong shape.
    #[error("input `{name}`: {reason}")]
    Input {
        /// binding name
        name: String,
        /// what went wrong
        reason: String,
    },
    /// An op failed at run time (bad ids, full cache, ...).
    #[error("%{value} = {op}: {reason}")]
    Op {
        /// value name
        value: String,
        /// op name
        op: &'static str,
        /// what went wrong
        reason: String,
    },
    /// The graph does not verify.
    #[error("the graph does not verify:\n{0}")]
    Invalid(String),
}

/// A bound weight in its stored form (see [`Interpreter::stored_weight`]).
#[derive(Debug, Clone, Copy)]
pub enum StoredWeight<'a> {
    /// Dense floats (values representable in the weight's dtype).
    Dense(&'a Tensor),
    /// A quantized tensor in qkc's layout.
    Quant(&'a qkc_quant::QuantTensor),
    /// Sparse outliers.
    Sparse(&'a qkc_quant::Csr),
}

/// A value during evaluation.
#[derive(Debug, Clone)]
pub(crate) enum Value {
    Dense(Tensor),
    /// A quantized weight: the stored form and its exact dequantization `[n, k]`, made on first
    /// use (the runtimes bind weights through an interpreter only to pack the stored form: an
    /// eager f64 copy of every weight cost SmolLM2-135M ~1 GB and a third of its start-up).
    Quant(
        std::rc::Rc<qkc_quant::QuantTensor>,
        std::rc::Rc<std::cell::OnceCell<Tensor>>,
    ),
    /// Sparse outliers, and their dense form `[n, k]`.
    Sparse(std::rc::Rc<qkc_quant::Csr>, std::rc::Rc<Tensor>),
}

impl Value {
    /// The dense tensor view (dequantized / densified for weights).
    pub(crate) fn dense(&self) -> Result<&Tensor, String> {
        match self {
            Value::Dense(t) => Ok(t),
            Value::Sparse(_, t) => Ok(t),
            Value::Quant(q, cell) => {
                if let Some(t) = cell.get() {
                    return Ok(t);
                }
                let d = q
                    .dequant()
                    .map_err(|e| format!("dequantizing a `{}` weight: {e}", q.scheme))?;
                Ok(cell.get_or_init(|| {
                    Tensor::new(vec![q.n, q.k], d.into_iter().map(f64::from).collect())
                }))
            }
        }
    }
}

/// A KV cache: keys and values per layer, `[len, kv_heads·head_dim]` rows.
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    /// Keys, one row per cached token.
    pub k: Vec<Vec<f64>>,
    /// Values, one row per cached token.
    pub v: Vec<Vec<f64>>,
}

/// Evaluates one graph; holds its bound weights and KV caches.
pub struct Interpreter<'g> {
    g: &'g Graph,
    order: Vec<NodeId>,
    weights: HashMap<NodeId, Value>,
    caches: HashMap<String, KvCache>,
}

impl<'g> Interpreter<'g> {
    /// Verify `g` and bind its weights.
    pub fn new(g: &'g Graph, weights: &Weights) -> Result<Self, InterpError> {
        if let Err(diags) = crate::verify::verify(g) {
            return Err(InterpError::Invalid(
                diags
                    .iter()
                    .map(|d| format!("  {d}"))
                    .collect::<Vec<_>>()
                    .join("\n"),
            ));
        }
        let order = g
            .topo_order()
            .map_err(|_| InterpError::Invalid("cycle".into()))?;
        let mut bound = HashMap::new();
        for &id in &order {
            if let Op::Weight {
                name,
                density,
                fold,
            } = &g.node(id).op
            {
                let mut v = weights.load(name, &g.node(id).ty, *density)?;
                if let (Some(r), Value::Dense(t)) = (fold, &mut v) {
                    // value = W·R: row w ↦ (Rᵀ wᵀ)ᵀ, i.e. rotate each row by the transpose.
                    let k = t.last();
                    for row in t.data.chunks_mut(k) {
                        qkc_quant::hadamard::apply(row, !r.transpose).map_err(|e| {
                            InterpError::Weight {
                                name: name.clone(),
                                reason: e.to_string(),
                            }
                        })?;
                    }
                }
                bound.insert(id, v);
            }
        }
        Ok(Interpreter {
            g,
            order,
            weights: bound,
            caches: HashMap::new(),
        })
    }

    /// The stored form of the weight node `id` as bound (loaded or synthesized, with any
    /// offline rotation already folded into dense weights): what compiled kernels are fed.
    pub fn stored_weight(&self, id: NodeId) -> Option<StoredWeight<'_>> {
        Some(match self.weights.get(&id)? {
            Value::Dense(t) => StoredWeight::Dense(t),
            Value::Quant(q, _) => StoredWeight::Quant(q),
            Value::Sparse(c, _) => StoredWeight::Sparse(c),
        })
    }

    /// The number of tokens already in the KV caches (0 before the first run).
    pub fn cached_tokens(&self) -> usize {
        self.caches.values().map(|c| c.k.len()).max().unwrap_or(0)
    }

    /// Forget every KV cache.
    pub fn reset_caches(&mut self) {
        self.caches.clear();
    }

    /// Run the graph on `inputs` (by binding name); returns the outputs by value name.
    pub fn run(
        &mut self,
        inputs: &HashMap<String, Tensor>,
    ) -> Result<Vec<(String, Tensor)>, InterpError> {
        let tokens = self.bind_tokens(inputs)?;
        let mut vals: HashMap<NodeId, Value> = HashMap::new();
        for &id in &self.order {
            let node = self.g.node(id);
            let v =
                match &node.op {
                    Op::Input { name } => {
                        Value::Dense(inputs.get(name).cloned().ok_or_else(|| {
                            InterpError::Input {
                                name: name.clone(),
                                reason: "not supplied".into(),
                            }
                        })?)
                    }
                    Op::Weight { .. } => {
                        self.weights
                            .get(&id)
                            .cloned()
                            .ok_or_else(|| InterpError::Weight {
                                name: node.name.clone(),
                                reason: "not bound".into(),
                            })?
                    }
                    _ => {
                        let ops: Vec<(usize, &Value)> = self
                            .g
                            .operands(id)
                            .into_iter()
                            .filter_map(|(r, v)| vals.get(&v).map(|x| (r, x)))
                            .collect();
                        let ctx = eval::Ctx {
                            g: self.g,
                            id,
                            tokens,
                            caches: &mut self.caches,
                        };
                        eval::eval(ctx, &ops).map_err(|reason| InterpError::Op {
                            value: node.name.clone(),
                            op: node.op.name(),
                            reason,
                        })?
                    }
                };
            vals.insert(id, v);
        }
        self.g
            .outputs()
            .iter()
            .map(|o| {
                let node = self.g.node(*o);
                let t = match vals.get(o) {
                    Some(v) => v.dense().map_err(|reason| InterpError::Op {
                        value: node.name.clone(),
                        op: node.op.name(),
                        reason,
                    })?,
                    None => return Ok((node.name.clone(), Tensor::default())),
                };
                Ok((node.name.clone(), t.clone()))
            })
            .collect()
    }

    /// Check input shapes and find T.
    fn bind_tokens(&self, inputs: &HashMap<String, Tensor>) -> Result<usize, InterpError> {
        let mut tokens: Option<usize> = None;
        for id in self.g.nodes() {
            let Op::Input { name } = &self.g.node(id).op else {
                continue;
            };
            let shape = self.g.node(id).ty.shape();
            let t = inputs.get(name).ok_or_else(|| InterpError::Input {
                name: name.clone(),
                reason: "not supplied".into(),
            })?;
            let bad = || InterpError::Input {
                name: name.clone(),
                reason: format!("expected shape {shape}, got {:?}", t.shape),
            };
            if t.shape.len() != shape.rank() || t.data.len() != t.shape.iter().product::<usize>() {
                return Err(bad());
            }
            for (d, &n) in shape.0.iter().zip(&t.shape) {
                match d {
                    Dim::Static(s) if *s as usize != n => return Err(bad()),
                    Dim::Tokens => match tokens {
                        Some(t0) if t0 != n => {
                            return Err(InterpError::Input {
                                name: name.clone(),
                                reason: format!("has T = {n} but another input has T = {t0}"),
                            })
                        }
                        _ => tokens = Some(n),
                    },
                    _ => {}
                }
            }
        }
        Ok(tokens.unwrap_or(1))
    }
}
