//! The meaning of each op, in f64. Plain loops: clarity over speed.

use std::collections::HashMap;

use super::{KvCache, Tensor, Value};
use crate::graph::{Graph, NodeId};
use crate::ops::{ActQuant, AttentionAttrs, Op, RopeStyle, RotKind, Rotation};
use crate::types::Type;

pub(crate) struct Ctx<'a> {
    pub g: &'a Graph,
    pub id: NodeId,
    pub tokens: usize,
    pub caches: &'a mut HashMap<String, KvCache>,
}

type R<T> = Result<T, String>;

/// Evaluate one op on its operand values `(role index, value)`.
pub(crate) fn eval(ctx: Ctx<'_>, ops: &[(usize, &Value)]) -> R<Value> {
    let node = ctx.g.node(ctx.id);
    let get = |role: &str| -> Option<&Value> {
        let r = node.op.role_index(role)?;
        ops.iter().find(|(i, _)| *i == r).map(|(_, v)| *v)
    };
    let req = |role: &str| get(role).ok_or_else(|| format!("operand `{role}` has no value"));
    let d = |role: &str| req(role).and_then(Value::dense);
    let out_shape = node.ty.shape().resolve(ctx.tokens);
    let t = match &node.op {
        Op::Input { .. } | Op::Weight { .. } => {
            return Err("sources are bound, not evaluated".into())
        }
        Op::Const { value } => {
            let n: usize = out_shape.iter().product();
            let data = if value.len() == 1 {
                vec![value[0]; n]
            } else {
                value.clone()
            };
            Tensor::new(out_shape, data)
        }
        Op::Linear => {
            let mut y = linear(d("x")?, d("w")?);
            if let Some(b) = get("bias") {
                add_bcast(&mut y, b.dense()?);
            }
            y
        }
        Op::Matmul => matmul(d("a")?, d("b")?),
        Op::Dequant => d("w")?.clone(),
        Op::Rotate(r) => rotate(d("x")?, *r, get("r").map(Value::dense).transpose()?)?,
        Op::Spmm => spmm(req("s")?, d("x")?)?,
        Op::Add => {
            let mut y = d("a")?.clone();
            add_bcast(&mut y, d("b")?);
            y
        }
        Op::Mul => {
            let (a, b) = (d("a")?, d("b")?);
            let n = b.data.len().max(1);
            let data = a
                .data
                .iter()
                .enumerate()
                .map(|(i, x)| x * b.data[i % n])
                .collect();
            Tensor::new(a.shape.clone(), data)
        }
        Op::QuantizeAct(q) => quantize_act(d("x")?, *q),
        Op::Rmsnorm { eps } => rmsnorm(d("x")?, d("w")?, *eps),
        Op::Rope {
            theta,
            head_dim,
            style,
        } => rope(d("x")?, d("pos")?, *theta, *head_dim as usize, *style),
        Op::Silu => map(d("x")?, silu),
        Op::Softmax => softmax(d("x")?),
        Op::Attention(a) => match (&a.rope, get("pos")) {
            (Some(r), Some(pos)) => {
                let hd = a.head_dim as usize;
                let q = rope(d("q")?, pos.dense()?, r.theta, hd, r.style);
                let k = rope(d("k")?, pos.dense()?, r.theta, hd, r.style);
                attention(&q, &k, d("v")?, a, ctx.caches)?
            }
            _ => attention(d("q")?, d("k")?, d("v")?, a, ctx.caches)?,
        },
        Op::Embedding => embedding(d("ids")?, d("table")?)?,
        Op::Qlinear(q) => {
            let mut x = d("x")?.clone();
            if let Some(r) = q.rotate {
                x = rotate(&x, r, get("r").map(Value::dense).transpose()?)?;
            }
            if let Some(a) = q.act {
                x = quantize_act(&x, a);
            }
            let mut y = linear(&x, d("w")?);
            if let Some(s) = get("outliers") {
                add_bcast(&mut y, &spmm(s, &x)?);
            }
            if let Some(b) = get("bias") {
                add_bcast(&mut y, b.dense()?);
            }
            if q.silu_gate {
                let mut up = linear(&x, d("up")?);
                if let Some(s) = get("up_outliers") {
                    add_bcast(&mut up, &spmm(s, &x)?);
                }
                for (g, u) in y.data.iter_mut().zip(&up.data) {
                    *g = silu(*g) * u;
                }
            }
            if let Some(res) = get("residual") {
                add_bcast(&mut y, res.dense()?);
            }
            if let Some(a) = q.out_act {
                y = quantize_act(&y, a);
            }
            y
        }
        Op::Transpose => {
            let x = d("x")?;
            let r = x.shape.len();
            let (m, n) = (x.shape[r - 2], x.shape[r - 1]);
            let mut data = vec![0.0; x.data.len()];
            for b in 0..x.data.len() / (m * n).max(1) {
                for i in 0..m {
                    for j in 0..n {
                        data[b * m * n + j * m + i] = x.data[b * m * n + i * n + j];
                    }
                }
            }
            let mut shape = x.shape.clone();
            shape.swap(r - 1, r - 2);
            Tensor::new(shape, data)
        }
        Op::Reshape => Tensor::new(out_shape, d("x")?.data.clone()),
        Op::Cast => {
            let x = d("x")?;
            let Type::Tensor { dtype, .. } = &node.ty else {
                return Err("cast to a non-tensor".into());
            };
            // Float dtypes describe storage; arithmetic stays exact f64 everywhere, so a cast
            // between float types is the identity here (kernels may round; tolerances cover it).
            // A cast to an integer type truncates toward zero.
            let data = x
                .data
                .iter()
                .map(|&v| if dtype.is_float() { v } else { v.trunc() })
                .collect();
            Tensor::new(x.shape.clone(), data)
        }
    };
    Ok(Value::Dense(t))
}

fn map(x: &Tensor, f: impl Fn(f64) -> f64) -> Tensor {
    Tensor::new(x.shape.clone(), x.data.iter().map(|&v| f(v)).collect())
}

fn silu(v: f64) -> f64 {
    v / (1.0 + (-v).exp())
}

/// `y = x·wᵀ`, `x: [.., K]`, `w: [N, K]`.
fn linear(x: &Tensor, w: &Tensor) -> Tensor {
    let (n, k) = (w.shape[0], w.shape[1]);
    let rows = x.rows();
    let mut y = vec![0.0; rows * n];
    for r in 0..rows {
        let xr = &x.data[r * k..(r + 1) * k];
        for (o, yo) in y[r * n..(r + 1) * n].iter_mut().enumerate() {
            *yo = xr
                .iter()
                .zip(&w.data[o * k..(o + 1) * k])
                .map(|(a, b)| a * b)
                .sum();
        }
    }
    let mut shape = x.shape.clone();
    if let Some(l) = shape.last_mut() {
        *l = n;
    }
    Tensor::new(shape, y)
}

/// `a: [.., M, K]`, `b: [K, N]`.
fn matmul(a: &Tensor, b: &Tensor) -> Tensor {
    let (k, n) = (b.shape[0], b.shape[1]);
    let rows = a.rows();
    let mut y = vec![0.0; rows * n];
    for r in 0..rows {
        for kk in 0..k {
            let av = a.data[r * k + kk];
            for j in 0..n {
                y[r * n + j] += av * b.data[kk * n + j];
            }
        }
    }
    let mut shape = a.shape.clone();
    if let Some(l) = shape.last_mut() {
        *l = n;
    }
    Tensor::new(shape, y)
}

/// `a += b` with `b` broadcast over `a`'s leading dims.
fn add_bcast(a: &mut Tensor, b: &Tensor) {
    let n = b.data.len().max(1);
    for (i, v) in a.data.iter_mut().enumerate() {
        *v += b.data[i % n];
    }
}

/// `y = R x` per token (`Rᵀ x` when transposed).
fn rotate(x: &Tensor, r: Rotation, dense: Option<&Tensor>) -> R<Tensor> {
    let n = x.last();
    let mut y = x.clone();
    match r.kind {
        RotKind::Hadamard => {
            for row in y.data.chunks_mut(n) {
                qkc_quant::hadamard::apply(row, r.transpose).map_err(|e| e.to_string())?;
            }
        }
        RotKind::Dense => {
            let m = dense.ok_or("dense rotation without its matrix")?;
            for (xr, yr) in x.data.chunks(n).zip(y.data.chunks_mut(n)) {
                for (i, yi) in yr.iter_mut().enumerate() {
                    *yi = (0..n)
                        .map(|j| if r.transpose { m.data[j * n + i] } else { m.data[i * n + j] } * xr[j])
                        .sum();
                }
            }
        }
    }
    Ok(y)
}

/// `y = S·x` per token.
fn spmm(s: &Value, x: &Tensor) -> R<Tensor> {
    let Value::Sparse(csr, _) = s else {
        return Err("spmm needs a sparse matrix".into());
    };
    let (n, k) = (csr.n, csr.k);
    let rows = x.rows();
    let mut y = vec![0.0; rows * n];
    for t in 0..rows {
        let xr = &x.data[t * k..(t + 1) * k];
        for r in 0..n {
            let (a, b) = (csr.row_ptr[r] as usize, csr.row_ptr[r + 1] as usize);
            y[t * n + r] = (a..b)
                .map(|i| f64::from(csr.val[i]) * xr[csr.col[i] as usize])
                .sum();
        }
    }
    let mut shape = x.shape.clone();
    if let Some(l) = shape.last_mut() {
        *l = n;
    }
    Ok(Tensor::new(shape, y))
}

/// Per-token fake quantization over the last axis (QuaRot's activation quantizer: symmetric
/// clips to `±(2^(b−1) − 1)`·scale with `scale = absmax / (2^(b−1) − 1)`).
/// With `q.group = Some(g)`, each `g` consecutive elements of a token get their own scale.
pub(crate) fn quantize_act(x: &Tensor, q: ActQuant) -> Tensor {
    let n = match q.group {
        Some(g) if g > 0 && x.last() % g as usize == 0 => g as usize,
        _ => x.last(),
    };
    let mut y = x.clone();
    for row in y.data.chunks_mut(n.max(1)) {
        if q.sym {
            let qmax = f64::from((1u32 << (q.bits - 1)) - 1);
            let amax = row.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            let s = amax / qmax;
            for v in row.iter_mut() {
                *v = if s > 0.0 {
                    (*v / s).round_ties_even().clamp(-qmax - 1.0, qmax) * s
                } else {
                    0.0
                };
            }
        } else {
            let qmax = f64::from((1u32 << q.bits) - 1);
            let (lo, hi) = row
                .iter()
                .fold((0.0f64, 0.0f64), |(l, h), &v| (l.min(v), h.max(v)));
            let s = (hi - lo) / qmax;
            let z = if s > 0.0 {
                (-lo / s).round_ties_even()
            } else {
                0.0
            };
            for v in row.iter_mut() {
                *v = if s > 0.0 {
                    ((*v / s).round_ties_even() + z).clamp(0.0, qmax) * s - z * s
                } else {
                    0.0
                };
            }
        }
    }
    y
}

fn rmsnorm(x: &Tensor, w: &Tensor, eps: f64) -> Tensor {
    let n = x.last();
    let mut y = x.clone();
    for row in y.data.chunks_mut(n) {
        let ms = row.iter().map(|v| v * v).sum::<f64>() / n as f64;
        let inv = 1.0 / (ms + eps).sqrt();
        for (v, g) in row.iter_mut().zip(&w.data) {
            *v *= inv * g;
        }
    }
    y
}

fn rope(x: &Tensor, pos: &Tensor, theta: f64, hd: usize, style: RopeStyle) -> Tensor {
    let n = x.last();
    let mut y = x.clone();
    for (t, row) in y.data.chunks_mut(n).enumerate() {
        let p = pos.data[t];
        for head in row.chunks_mut(hd) {
            for i in 0..hd / 2 {
                let angle = p * theta.powf(-2.0 * i as f64 / hd as f64);
                let (s, c) = angle.sin_cos();
                let (a, b) = match style {
                    RopeStyle::Half => (i, i + hd / 2),
                    RopeStyle::Interleaved => (2 * i, 2 * i + 1),
                };
                let (xa, xb) = (head[a], head[b]);
                head[a] = xa * c - xb * s;
                head[b] = xa * s + xb * c;
            }
        }
    }
    y
}

fn softmax(x: &Tensor) -> Tensor {
    let n = x.last();
    let mut y = x.clone();
    for row in y.data.chunks_mut(n) {
        softmax_in_place(row);
    }
    y
}

fn softmax_in_place(row: &mut [f64]) {
    let m = row.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b));
    let mut s = 0.0;
    for v in row.iter_mut() {
        *v = (*v - m).exp();
        s += *v;
    }
    for v in row.iter_mut() {
        *v /= s;
    }
}

/// Causal attention; with a cache, the new keys/values are appended first and query `t` (at
/// absolute position `past + t`) sees keys `0..=past + t`.
fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    a: &AttentionAttrs,
    caches: &mut HashMap<String, KvCache>,
) -> R<Tensor> {
    let (h, kvh, hd) = (a.heads as usize, a.kv_heads as usize, a.head_dim as usize);
    let t_new = q.rows();
    let kd = kvh * hd;
    let mut local = KvCache::default();
    let cache = match &a.cache {
        Some(name) => caches.entry(name.clone()).or_default(),
        None => &mut local,
    };
    let past = cache.k.len();
    if a.cache.is_some() && past + t_new > a.max_seq as usize {
        return Err(format!(
            "KV cache {:?} is full: {past} + {t_new} tokens exceed max_seq = {}",
            a.cache, a.max_seq
        ));
    }
    for t in 0..t_new {
        cache.k.push(k.data[t * kd..(t + 1) * kd].to_vec());
        cache.v.push(v.data[t * kd..(t + 1) * kd].to_vec());
    }
    let scale = 1.0 / (hd as f64).sqrt();
    let group = h / kvh;
    let mut out = vec![0.0; t_new * h * hd];
    let mut scores = Vec::new();
    for t in 0..t_new {
        let visible = past + t + 1;
        for head in 0..h {
            let kv = head / group;
            let qv = &q.data[t * h * hd + head * hd..][..hd];
            scores.clear();
            scores.extend((0..visible).map(|j| {
                let kr = &cache.k[j][kv * hd..(kv + 1) * hd];
                qv.iter().zip(kr).map(|(a, b)| a * b).sum::<f64>() * scale
            }));
            softmax_in_place(&mut scores);
            let o = &mut out[t * h * hd + head * hd..][..hd];
            for (j, p) in scores.iter().enumerate() {
                let vr = &cache.v[j][kv * hd..(kv + 1) * hd];
                for (oi, vi) in o.iter_mut().zip(vr) {
                    *oi += p * vi;
                }
            }
        }
    }
    Ok(Tensor::new(q.shape.clone(), out))
}

fn embedding(ids: &Tensor, table: &Tensor) -> R<Tensor> {
    let (v, dim) = (table.shape[0], table.shape[1]);
    let mut data = Vec::with_capacity(ids.data.len() * dim);
    for (i, &id) in ids.data.iter().enumerate() {
        if id < 0.0 || id.fract() != 0.0 || id as usize >= v {
            return Err(format!(
                "id {id} at position {i} is outside the table's {v} rows"
            ));
        }
        let r = id as usize;
        data.extend_from_slice(&table.data[r * dim..(r + 1) * dim]);
    }
    let mut shape = ids.shape.clone();
    shape.push(dim);
    Ok(Tensor::new(shape, data))
}
