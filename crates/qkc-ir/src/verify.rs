//! The verifier and shape inference.
//!
//! [`verify`] checks every invariant of a graph and returns *all* failures, each located at the
//! op it concerns. [`infer`] computes what an op's result type must be from its operands; the
//! verifier compares that with the declared type. A verifier failure on a graph built by a pass
//! is a bug in that pass; on a graph a user wrote, it is the user's diagnostic.

use std::collections::HashMap;

use crate::diag::Diag;
use crate::graph::{Graph, NodeId};
use crate::ops::{Op, RotKind};
use crate::types::{DType, Dim, Shape, Type};

/// What the result type of an op must be.
#[derive(Debug, Clone, PartialEq)]
pub struct Expected {
    /// The required shape.
    pub shape: Shape,
    /// The required dtype, or `None` when any dtype of `class` is allowed.
    pub dtype: Option<DType>,
    /// Required class when `dtype` is `None`.
    pub class: Class,
}

/// A class of dtypes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Any float dtype.
    Float,
    /// Any dtype.
    Any,
    /// Not a dense tensor (the declared type is taken as is: inputs, weights).
    Declared,
}

impl Expected {
    fn exact(dtype: DType, shape: Shape) -> Self {
        Expected {
            shape,
            dtype: Some(dtype),
            class: Class::Any,
        }
    }
    fn float(shape: Shape) -> Self {
        Expected {
            shape,
            dtype: None,
            class: Class::Float,
        }
    }
}

/// Verify `g`, returning every problem found.
pub fn verify(g: &Graph) -> Result<(), Vec<Diag>> {
    let mut errs = Vec::new();
    let mut names: HashMap<&str, NodeId> = HashMap::new();
    let mut bindings: HashMap<(&str, &str), (NodeId, &Type)> = HashMap::new();
    for id in g.nodes() {
        let node = g.node(id);
        let at = |d: Diag| d.at_opt(node.span).value(node.name.clone());
        if names.insert(node.name.as_str(), id).is_some() {
            errs.push(at(Diag::error(format!(
                "value `%{}` is defined twice",
                node.name
            ))));
        }
        if let Some(sym) = node.op.symbol() {
            let key = (node.op.name(), sym);
            if let Some((_, prev_ty)) = bindings.get(&key) {
                if *prev_ty != &node.ty || node.op.name() == "input" {
                    errs.push(at(Diag::error(format!(
                        "{} \"{sym}\" is bound twice{}",
                        node.op.name(),
                        if *prev_ty != &node.ty {
                            format!(" with different types ({prev_ty} and {})", node.ty)
                        } else {
                            String::new()
                        }
                    ))));
                }
            } else {
                bindings.insert(key, (id, &node.ty));
            }
        }
        if let Err(e) = check_roles(g, id) {
            errs.push(at(Diag::error(e)));
            continue;
        }
        match infer(g, id) {
            Ok(exp) => {
                if let Err(e) = matches_expected(&node.ty, &exp) {
                    errs.push(at(Diag::error(format!(
                        "`{}` result type {} is wrong: {e}",
                        node.op.name(),
                        node.ty
                    ))
                    .label(format!("declared {}", node.ty))));
                }
            }
            Err(e) => errs.push(at(Diag::error(e))),
        }
    }
    if let Err(n) = g.topo_order() {
        errs.push(
            Diag::error("the graph has a cycle")
                .at_opt(g.node(n).span)
                .value(g.node(n).name.clone()),
        );
    }
    if g.outputs().is_empty() {
        errs.push(
            Diag::error("the graph has no outputs")
                .at_opt(g.outputs_span)
                .help("end the graph with `return %value`"),
        );
    }
    for &o in g.outputs() {
        if !g.contains(o) {
            errs.push(Diag::error("an output refers to a removed value").at_opt(g.outputs_span));
        } else if !g.node(o).ty.is_tensor() {
            errs.push(
                Diag::error(format!(
                    "output `%{}` is a {}, not a tensor",
                    g.node(o).name,
                    g.node(o).ty.kind_name()
                ))
                .at_opt(g.outputs_span),
            );
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs)
    }
}

fn check_roles(g: &Graph, id: NodeId) -> Result<(), String> {
    let node = g.node(id);
    let roles = node.op.roles();
    let ops = g.operands(id);
    for w in ops.windows(2) {
        if w[0].0 == w[1].0 {
            return Err(format!(
                "operand `{}` given twice",
                roles.get(w[0].0).map_or("?", |r| r.name)
            ));
        }
    }
    for &(r, v) in &ops {
        if r >= roles.len() {
            return Err(format!("`{}` has no operand slot {r}", node.op.name()));
        }
        if !g.contains(v) {
            return Err("an operand refers to a removed value".into());
        }
    }
    for (i, r) in roles.iter().enumerate() {
        if !r.optional && !ops.iter().any(|(x, _)| *x == i) {
            return Err(format!(
                "`{}` is missing its operand `{}`",
                node.op.name(),
                r.name
            ));
        }
    }
    Ok(())
}

fn matches_expected(ty: &Type, exp: &Expected) -> Result<(), String> {
    if exp.class == Class::Declared {
        return Ok(());
    }
    let Type::Tensor { dtype, shape } = ty else {
        return Err(format!("expected a tensor, declared a {}", ty.kind_name()));
    };
    if *shape != exp.shape {
        return Err(format!("shape should be {}", exp.shape));
    }
    match (exp.dtype, exp.class) {
        (Some(d), _) if d != *dtype => Err(format!("dtype should be {d}")),
        (None, Class::Float) if !dtype.is_float() => Err("dtype should be a float type".into()),
        _ => Ok(()),
    }
}

/// Operand helper: `(role name, type)` accessors for one node.
struct Operands<'g> {
    g: &'g Graph,
    id: NodeId,
    op: &'static str,
}

impl<'g> Operands<'g> {
    fn get(&self, role: &str) -> Option<(&'g str, &'g Type)> {
        self.g
            .operand(self.id, role)
            .map(|v| (self.g.node(v).name.as_str(), &self.g.node(v).ty))
    }
    fn req(&self, role: &str) -> Result<(&'g str, &'g Type), String> {
        self.get(role)
            .ok_or_else(|| format!("`{}` is missing its operand `{role}`", self.op))
    }
    /// A float tensor operand: `(dtype, shape)`.
    fn float(&self, role: &str) -> Result<(DType, &'g Shape), String> {
        let (name, t) = self.req(role)?;
        match t {
            Type::Tensor { dtype, shape } if dtype.is_float() => Ok((*dtype, shape)),
            _ => Err(format!(
                "operand `{role}` (%{name}) of `{}` must be a float tensor, found {t}",
                self.op
            )),
        }
    }
    fn int(&self, role: &str) -> Result<&'g Shape, String> {
        let (name, t) = self.req(role)?;
        match t {
            Type::Tensor { dtype, shape } if dtype.is_int() => Ok(shape),
            _ => Err(format!(
                "operand `{role}` (%{name}) of `{}` must be an integer tensor, found {t}",
                self.op
            )),
        }
    }
    /// A weight `[N, K]`, dense float or quantized.
    fn weight(&self, role: &str) -> Result<(u64, u64), String> {
        let (name, t) = self.req(role)?;
        let ok = match t {
            Type::Tensor { dtype, .. } => dtype.is_float(),
            Type::Quant { .. } => true,
            Type::Sparse { .. } => false,
        };
        match (ok, static2(t.shape())) {
            (true, Some(nk)) => Ok(nk),
            _ => Err(format!(
                "operand `{role}` (%{name}) of `{}` must be a weight [N, K] (float or quantized) with static dims, found {t}",
                self.op
            )),
        }
    }
    fn sparse(&self, role: &str) -> Result<(u64, u64), String> {
        let (name, t) = self.req(role)?;
        match (t, static2(t.shape())) {
            (Type::Sparse { .. }, Some(nk)) => Ok(nk),
            _ => Err(format!(
                "operand `{role}` (%{name}) of `{}` must be a csr<...>[N, K] matrix, found {t}",
                self.op
            )),
        }
    }
}

fn static2(s: &Shape) -> Option<(u64, u64)> {
    match s.0.as_slice() {
        [Dim::Static(n), Dim::Static(k)] => Some((*n, *k)),
        _ => None,
    }
}

fn last_static(s: &Shape, what: &str) -> Result<u64, String> {
    s.last()
        .and_then(Dim::as_static)
        .ok_or_else(|| format!("{what} must end in a static dimension, found {s}"))
}

/// The type an op's result must have, from its operands and attributes.
pub fn infer(g: &Graph, id: NodeId) -> Result<Expected, String> {
    let node = g.node(id);
    let o = Operands {
        g,
        id,
        op: node.op.name(),
    };
    let declared = Expected {
        shape: node.ty.shape().clone(),
        dtype: None,
        class: Class::Declared,
    };
    match &node.op {
        Op::Input { .. } => {
            if node
                .ty
                .shape()
                .0
                .iter()
                .filter(|d| **d == Dim::Tokens)
                .count()
                > 1
            {
                return Err("an input may use the token dimension `T` at most once".into());
            }
            Ok(declared)
        }
        Op::Weight { density, fold, .. } => {
            if node.ty.shape().0.contains(&Dim::Tokens) {
                return Err(format!("weights have static shapes; {} uses `T`", node.ty));
            }
            if let Some(r) = fold {
                let k = match (&node.ty, static2(node.ty.shape())) {
                    (Type::Tensor { dtype, .. }, Some((_, k))) if dtype.is_float() => k,
                    _ => {
                        return Err(format!(
                            "`fold` applies to float [N, K] weights, not {}",
                            node.ty
                        ))
                    }
                };
                if r.kind != RotKind::Hadamard || !qkc_quant::hadamard::supported(k as usize) {
                    return Err(format!(
                        "`fold` supports a Hadamard of size K; K = {k} has none"
                    ));
                }
            }
            match &node.ty {
                Type::Quant { scheme, shape } => {
                    let (n, k) = static2(shape).ok_or_else(|| {
                        format!("a quantized weight is 2-D [N, K], found {shape}")
                    })?;
                    scheme.check_shape(n as usize, k as usize)?;
                }
                Type::Sparse { val, index, shape } => {
                    static2(shape)
                        .ok_or_else(|| format!("sparse outliers are 2-D [N, K], found {shape}"))?;
                    if !matches!(val, DType::F16 | DType::F32) {
                        return Err(format!("sparse values must be f16 or f32, found {val}"));
                    }
                    if !matches!(index, DType::U16 | DType::U32 | DType::I32) {
                        return Err(format!(
                            "sparse column indices must be u16, u32 or i32, found {index}"
                        ));
                    }
                    if let Some((_, k)) = static2(shape) {
                        if *index == DType::U16 && k > 65536 {
                            return Err(format!("K = {k} does not fit u16 column indices"));
                        }
                    }
                }
                Type::Tensor { .. } => {}
            }
            if let Some(d) = density {
                if !matches!(node.ty, Type::Sparse { .. }) {
                    return Err("`density` applies to csr weights only".into());
                }
                if !(0.0..=1.0).contains(d) {
                    return Err(format!("`density` must be in [0, 1], found {d}"));
                }
            }
            Ok(declared)
        }
        Op::Const { value } => {
            let n = node
                .ty
                .shape()
                .static_numel()
                .ok_or("constants need a static shape")?;
            if value.len() != 1 && value.len() as u64 != n {
                return Err(format!(
                    "constant has {} values for shape {} ({n} elements)",
                    value.len(),
                    node.ty.shape()
                ));
            }
            if !node.ty.is_tensor() {
                return Err("constants are dense tensors".into());
            }
            Ok(declared)
        }
        Op::Linear => {
            let (dt, xs) = o.float("x")?;
            let (n, k) = o.weight("w")?;
            let xk = last_static(xs, "operand `x`")?;
            if xk != k {
                return Err(format!("`x` has K = {xk} but the weight is [{n}, {k}]"));
            }
            check_bias(&o, n)?;
            Ok(Expected::exact(dt, xs.with_last(Dim::Static(n))))
        }
        Op::Matmul => {
            let (dt, a) = o.float("a")?;
            let (_, b) = o.float("b")?;
            let (k, n) = static2(b).ok_or_else(|| format!("`b` must be 2-D [K, N], found {b}"))?;
            if a.rank() < 2 {
                return Err(format!("`a` must be at least 2-D [..., M, K], found {a}"));
            }
            if a.last() != Some(Dim::Static(k)) {
                return Err(format!("inner dimensions differ: `a` is {a}, `b` is {b}"));
            }
            Ok(Expected::exact(dt, a.with_last(Dim::Static(n))))
        }
        Op::Dequant => {
            let (_, t) = o.req("w")?;
            match t {
                Type::Quant { shape, .. } => Ok(Expected::float(shape.clone())),
                _ => Err(format!("`dequant` takes a quantized weight, found {t}")),
            }
        }
        Op::Rotate(r) => {
            let (dt, xs) = o.float("x")?;
            let n = last_static(xs, "the rotated operand")?;
            check_rotation(&o, r.kind, n)?;
            Ok(Expected::exact(dt, xs.clone()))
        }
        Op::Spmm => {
            let (n, k) = o.sparse("s")?;
            let (dt, xs) = o.float("x")?;
            if last_static(xs, "operand `x`")? != k {
                return Err(format!("`x` is {xs} but the sparse matrix is [{n}, {k}]"));
            }
            Ok(Expected::exact(dt, xs.with_last(Dim::Static(n))))
        }
        Op::Add | Op::Mul => {
            let (da, a) = o.float("a")?;
            let (db, b) = o.float("b")?;
            if da != db {
                return Err(format!("operands have different dtypes: {da} and {db}"));
            }
            if b.rank() > a.rank() || a.0[a.rank() - b.rank()..] != b.0[..] {
                return Err(format!("shapes {a} and {b} do not broadcast (the second must be a suffix of the first)"));
            }
            Ok(Expected::exact(da, a.clone()))
        }
        Op::QuantizeAct(a) => {
            let (dt, xs) = o.float("x")?;
            if xs.rank() == 0 {
                return Err("needs at least one dimension".into());
            }
            if a.group.is_some() {
                let k = last_static(xs, "operand `x`")?;
                check_act_group(a, k, "the last axis of `x`")?;
            }
            Ok(Expected::exact(dt, xs.clone()))
        }
        Op::Silu | Op::Softmax => {
            let (dt, xs) = o.float("x")?;
            if xs.rank() == 0 {
                return Err("needs at least one dimension".into());
            }
            Ok(Expected::exact(dt, xs.clone()))
        }
        Op::Rmsnorm { eps } => {
            let (dt, xs) = o.float("x")?;
            let (_, ws) = o.float("w")?;
            let d = last_static(xs, "operand `x`")?;
            if ws.0 != [Dim::Static(d)] {
                return Err(format!("norm weight must be [{d}], found {ws}"));
            }
            if eps.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
                return Err(format!("eps must be positive, found {eps}"));
            }
            Ok(Expected::exact(dt, xs.clone()))
        }
        Op::Rope {
            head_dim, theta, ..
        } => {
            let (dt, xs) = o.float("x")?;
            let ps = o.int("pos")?;
            let d = last_static(xs, "operand `x`")?;
            if *head_dim % 2 != 0 || d % u64::from(*head_dim) != 0 {
                return Err(format!(
                    "head_dim = {head_dim} must be even and divide the last dimension {d}"
                ));
            }
            if ps.0 != xs.prefix() {
                return Err(format!(
                    "`pos` must have shape {} (one position per token), found {ps}",
                    Shape(xs.prefix().to_vec())
                ));
            }
            if theta.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
                return Err(format!("theta must be positive, found {theta}"));
            }
            Ok(Expected::exact(dt, xs.clone()))
        }
        Op::Attention(a) => {
            let (dt, qs) = o.float("q")?;
            let (_, ks) = o.float("k")?;
            let (_, vs) = o.float("v")?;
            if a.heads % a.kv_heads != 0 {
                return Err(format!(
                    "heads = {} must be a multiple of kv_heads = {}",
                    a.heads, a.kv_heads
                ));
            }
            let qd = u64::from(a.heads) * u64::from(a.head_dim);
            let kd = u64::from(a.kv_heads) * u64::from(a.head_dim);
            if qs.rank() != 2 || qs.last() != Some(Dim::Static(qd)) {
                return Err(format!(
                    "`q` must be [T, heads·head_dim = {qd}], found {qs}"
                ));
            }
            for (name, s) in [("k", ks), ("v", vs)] {
                if s.rank() != 2 || s.last() != Some(Dim::Static(kd)) || s.0[0] != qs.0[0] {
                    return Err(format!(
                        "`{name}` must be [{}, kv_heads·head_dim = {kd}], found {s}",
                        qs.0[0]
                    ));
                }
            }
            if a.cache.is_some() && a.max_seq == 0 {
                return Err("a KV cache needs max_seq > 0".into());
            }
            match (a.rope.is_some(), o.get("pos").is_some()) {
                (true, true) => {
                    let ps = o.int("pos")?;
                    if ps.0 != qs.prefix() {
                        return Err(format!(
                            "`pos` must have shape {}, found {ps}",
                            Shape(qs.prefix().to_vec())
                        ));
                    }
                    if a.head_dim % 2 != 0 {
                        return Err(format!("RoPE needs an even head_dim, found {}", a.head_dim));
                    }
                }
                (true, false) => return Err("`rope_theta` needs the `pos` operand".into()),
                (false, true) => return Err("a `pos` operand needs `rope_theta`".into()),
                (false, false) => {}
            }
            Ok(Expected::exact(dt, qs.clone()))
        }
        Op::Embedding => {
            let ids = o.int("ids")?;
            let (_, t) = o.req("table")?;
            let (_, d) = o.weight("table")?;
            let mut shape = ids.0.clone();
            shape.push(Dim::Static(d));
            Ok(match t.dtype() {
                Some(dt) => Expected::exact(dt, Shape(shape)),
                None => Expected::float(Shape(shape)),
            })
        }
        Op::Qlinear(q) => {
            let (dt, xs) = o.float("x")?;
            let (n, k) = o.weight("w")?;
            if last_static(xs, "operand `x`")? != k {
                return Err(format!("`x` is {xs} but the weight is [{n}, {k}]"));
            }
            for role in ["outliers", "up_outliers"] {
                if o.get(role).is_some() {
                    let s = o.sparse(role)?;
                    if s != (n, k) {
                        return Err(format!(
                            "`{role}` is [{}, {}] but the weight is [{n}, {k}]",
                            s.0, s.1
                        ));
                    }
                }
            }
            check_bias(&o, n)?;
            if let Some(a) = &q.act {
                check_act_group(a, k, "K")?;
            }
            if let Some(a) = &q.out_act {
                check_act_group(a, n, "N (the output quantization's axis)")?;
            }
            match (q.silu_gate, o.get("up").is_some()) {
                (true, false) => return Err("`gate = silu` needs the `up` weight".into()),
                (false, true) => return Err("an `up` weight needs `gate = silu`".into()),
                (true, true) if o.weight("up")? != (n, k) => {
                    return Err(format!("`up` must have the same shape as `w`, [{n}, {k}]"));
                }
                _ => {}
            }
            if o.get("up_outliers").is_some() && o.get("up").is_none() {
                return Err("`up_outliers` needs the `up` weight".into());
            }
            match q.rotate {
                Some(r) => check_rotation(&o, r.kind, k)?,
                None if o.get("r").is_some() => {
                    return Err("an `r` operand needs `rotate = dense`".into())
                }
                None => {}
            }
            let out = xs.with_last(Dim::Static(n));
            if let Some((_, rt)) = o.get("residual") {
                if rt != &Type::tensor(dt, out.clone()) {
                    return Err(format!(
                        "`residual` must be {}, found {rt}",
                        Type::tensor(dt, out.clone())
                    ));
                }
            }
            Ok(Expected::exact(dt, out))
        }
        Op::Transpose => {
            let (_, t) = o.req("x")?;
            let Type::Tensor { dtype, shape } = t else {
                return Err(format!("`transpose` takes a tensor, found {t}"));
            };
            if shape.rank() < 2 {
                return Err(format!(
                    "`transpose` needs at least 2 dimensions, found {shape}"
                ));
            }
            let mut s = shape.0.clone();
            let r = s.len();
            s.swap(r - 1, r - 2);
            Ok(Expected::exact(*dtype, Shape(s)))
        }
        Op::Reshape => {
            let (_, t) = o.req("x")?;
            let Type::Tensor { dtype, shape } = t else {
                return Err(format!("`reshape` takes a tensor, found {t}"));
            };
            let split = |s: &Shape| -> (usize, u64) {
                (
                    s.0.iter().filter(|d| **d == Dim::Tokens).count(),
                    s.0.iter().filter_map(|d| d.as_static()).product(),
                )
            };
            let target = node.ty.shape();
            if split(shape) != split(target) {
                return Err(format!(
                    "cannot reshape {shape} to {target}: element counts differ"
                ));
            }
            Ok(Expected::exact(*dtype, target.clone()))
        }
        Op::Cast => {
            let (_, t) = o.req("x")?;
            let Type::Tensor { shape, .. } = t else {
                return Err(format!("`cast` takes a tensor, found {t}"));
            };
            Ok(Expected {
                shape: shape.clone(),
                dtype: None,
                class: Class::Any,
            })
        }
    }
}

fn check_bias(o: &Operands<'_>, n: u64) -> Result<(), String> {
    if o.get("bias").is_some() {
        let (_, bs) = o.float("bias")?;
        if bs.0 != [Dim::Static(n)] {
            return Err(format!("`bias` must be [{n}], found {bs}"));
        }
    }
    Ok(())
}

fn check_rotation(o: &Operands<'_>, kind: RotKind, n: u64) -> Result<(), String> {
    match kind {
        RotKind::Hadamard => {
            if o.get("r").is_some() {
                return Err("a Hadamard rotation takes no `r` operand (use kind = dense)".into());
            }
            if !qkc_quant::hadamard::supported(n as usize) {
                return Err(format!(
                    "no Hadamard of size {n}: sizes are 2^m or K·2^m with K in 12, 20, 28, 36, 40, 44, 52, 60, 108, 140, 156, 172"
                ));
            }
            Ok(())
        }
        RotKind::Dense => {
            let (_, rs) = o
                .float("r")
                .map_err(|_| "a dense rotation needs a float `r` operand [n, n]".to_string())?;
            if rs.0 != [Dim::Static(n), Dim::Static(n)] {
                return Err(format!(
                    "the rotation matrix must be [{n}, {n}], found {rs}"
                ));
            }
            Ok(())
        }
    }
}

/// A grouped activation quantization needs whole groups along its axis of `len` elements.
fn check_act_group(a: &crate::ops::ActQuant, len: u64, what: &str) -> Result<(), String> {
    match a.group {
        Some(g) if g == 0 || len % u64::from(g) != 0 => Err(format!(
            "activation quantization group {g} does not divide {what} = {len}"
        )),
        _ => Ok(()),
    }
}
