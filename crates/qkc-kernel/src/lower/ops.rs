//! Lowering of every op other than `qlinear`: elementwise (`add`, `mul`, `silu`, `cast`), row
//! reductions (`rmsnorm`, `softmax`, `quantize_act`), `rope`, `attention` (GQA, KV cache, fused
//! RoPE), `embedding`, `transpose`, dense products (`linear`, `matmul`, dense `rotate`) and the
//! Hadamard `rotate`.
//!
//! Each op family has one generator, written once for both targets against the emitter in
//! [`emit`] (the target changes the work split, the reductions and two math helpers). Kernels
//! read and write activations in their graph dtypes (f32, f16; i32 token ids) and compute in f32
//! (f64 where the reference's rounding decisions must be matched: RoPE angles, activation
//! quantization).
//!
//! Weight operands are packed by [`pack`] in their graph dtype, row-major, under the buffer name
//! `dense`; a `[K, N]` weight that a kernel reads as `[N, K]` (the `b` of `matmul`, the `r` of a
//! transposed dense rotation) is transposed at pack time and named `dense_t`. Constant operands
//! become [`Binding::Const`]s.

mod attention;
mod elementwise;
mod emit;
mod linear;
mod misc;
mod rows;

use qkc_ir::{DType, Graph, NodeId, Op};

use self::emit::{Kind, E};
use super::{unsupported, Binding, LowerError, LowerOptions, LowerTarget, Lowered, PackedBuffer, WeightData};
use crate::entities::Value;
use crate::types::Scalar;

/// The node being lowered, with the questions every generator asks about it.
pub(crate) struct NodeCx<'a> {
    pub g: &'a Graph,
    pub id: NodeId,
    pub opts: &'a LowerOptions,
}

impl NodeCx<'_> {
    /// An [`LowerError::Unsupported`] for this node.
    pub fn err(&self, reason: impl Into<String>) -> LowerError {
        unsupported(self.g, self.id, reason)
    }
    /// The node's value name.
    pub fn name(&self) -> &str {
        &self.g.node(self.id).name
    }
    /// The emitter kind for the target.
    pub fn kind(&self) -> Kind {
        match self.opts.target {
            LowerTarget::Cpu { chunks } => Kind::Cpu { chunks: chunks.max(1) },
            LowerTarget::Gpu { .. } => Kind::Gpu,
        }
    }
    /// The operand with this role.
    pub fn operand(&self, role: &str) -> Option<NodeId> {
        self.g.operand(self.id, role)
    }
    /// The operand with this role, which the op requires.
    pub fn req(&self, role: &str) -> Result<NodeId, LowerError> {
        self.operand(role).ok_or_else(|| self.err(format!("operand `{role}` is missing")))
    }
    /// A value's shape with `T` resolved.
    pub fn shape(&self, v: NodeId) -> Vec<usize> {
        self.g.node(v).ty.shape().resolve(self.opts.tokens)
    }
    /// The node's result shape.
    pub fn out_shape(&self) -> Vec<usize> {
        self.shape(self.id)
    }
    /// The KIR element type of a value's dtype.
    pub fn scalar(&self, v: NodeId) -> Result<Scalar, LowerError> {
        let node = self.g.node(v);
        let Some(dt) = node.ty.dtype() else {
            return Err(self.err(format!(
                "%{} is a {} value; this kernel takes dense tensors",
                node.name,
                node.ty.kind_name()
            )));
        };
        dtype_scalar(dt).ok_or_else(|| {
            self.err(format!(
                "%{} has dtype {dt}, which no kernel reads or writes yet (f32, f16, i8, i16, i32)",
                node.name
            ))
        })
    }
}

/// The KIR scalar a graph dtype is stored as (unsigned and bf16 are not handled yet).
pub(crate) fn dtype_scalar(d: DType) -> Option<Scalar> {
    Some(match d {
        DType::F32 => Scalar::F32,
        DType::F16 => Scalar::F16,
        DType::I8 => Scalar::I8,
        DType::I16 => Scalar::I16,
        DType::I32 => Scalar::I32,
        _ => return None,
    })
}

/// A kernel being built: the emitter plus one binding per parameter and the bytes it reads.
pub(crate) struct KernelCx<'a> {
    pub n: &'a NodeCx<'a>,
    pub e: E,
    pub bindings: Vec<Binding>,
    pub bytes_read: u64,
}

/// How an operand is laid out for a kernel that reads it as a matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Layout {
    /// As stored, row-major.
    AsIs,
    /// A `[K, N]` weight transposed at pack time to `[N, K]`.
    Transposed,
}

impl<'a> KernelCx<'a> {
    /// A kernel for `n`.
    pub fn new(n: &'a NodeCx<'a>, name_suffix: &str, split: emit::Split) -> Self {
        let t = if n.kind() == Kind::Gpu { "gpu" } else { "cpu" };
        let name = format!("{}_{}_{t}", n.g.node(n.id).op.name(), name_suffix);
        KernelCx { n, e: E::new(&name, n.kind(), split), bindings: Vec::new(), bytes_read: 0 }
    }

    /// A read-only parameter for the operand with role `role` (`elems` elements are read).
    pub fn input(&mut self, role: &str, elems: u64) -> Result<Value, LowerError> {
        self.input_laid(role, elems, Layout::AsIs)
    }

    /// [`KernelCx::input`] with the weight layout a kernel wants (ignored for activations).
    pub fn input_laid(&mut self, role: &str, elems: u64, layout: Layout) -> Result<Value, LowerError> {
        let v = self.n.req(role)?;
        let s = self.n.scalar(v)?;
        let p = self.e.param(role, s, elems, true, false);
        let node = self.n.g.node(v);
        let b = match &node.op {
            Op::Weight { .. } => Binding::Packed {
                role: role.into(),
                buffer: if layout == Layout::Transposed { "dense_t" } else { "dense" }.into(),
            },
            Op::Const { value } => {
                let n = elems as usize;
                let vals: Vec<f64> = if value.len() == 1 {
                    vec![value[0]; n]
                } else {
                    value.iter().copied().cycle().take(n).collect()
                };
                Binding::Const { name: format!("{}.{role}", self.n.name()), elem: s, data: encode(s, &vals) }
            }
            _ => Binding::Operand { role: role.into() },
        };
        self.bindings.push(b);
        self.bytes_read += elems * u64::from(s.bytes());
        Ok(p)
    }

    /// The result parameter (`elems` elements, the node's dtype).
    pub fn output(&mut self, elems: u64) -> Result<Value, LowerError> {
        let s = self.n.scalar(self.n.id)?;
        let p = self.e.param("y", s, elems, false, true);
        self.bindings.push(Binding::Output);
        Ok(p)
    }

    /// A constant buffer the lowering made.
    pub fn constant(&mut self, name: &str, elem: Scalar, vals: &[f64]) -> Value {
        let p = self.e.param(name, elem, vals.len() as u64, true, false);
        self.bindings.push(Binding::Const {
            name: format!("{}.{name}", self.n.name()),
            elem,
            data: encode(elem, vals),
        });
        self.bytes_read += vals.len() as u64 * u64::from(elem.bytes());
        p
    }

    /// Finish: verify and wrap.
    pub fn finish(self, generator: &str) -> Result<Lowered, LowerError> {
        let template = format!("ops::{generator}");
        let kernel = self.e.finish().map_err(|reason| LowerError::Template {
            value: self.n.name().into(),
            template: template.clone(),
            reason,
        })?;
        let errs = crate::verify::verify_all(&kernel);
        if !errs.is_empty() {
            let reason = errs.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n");
            return Err(LowerError::Template { value: self.n.name().into(), template, reason });
        }
        Ok(Lowered {
            kernel,
            bindings: self.bindings,
            template,
            bytes_read: self.bytes_read,
            pre: Vec::new(),
        })
    }
}

/// Little-endian bytes of values in a KIR element type (floats rounded to nearest, ints
/// truncated toward zero).
pub(crate) fn encode(s: Scalar, vals: &[f64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(vals.len() * s.bytes() as usize);
    for &v in vals {
        match s {
            Scalar::F64 => out.extend_from_slice(&v.to_le_bytes()),
            Scalar::F32 => out.extend_from_slice(&(v as f32).to_le_bytes()),
            Scalar::F16 => out.extend_from_slice(&half::f16::from_f64(v).to_le_bytes()),
            Scalar::Bf16 => out.extend_from_slice(&half::bf16::from_f64(v).to_le_bytes()),
            Scalar::I1 | Scalar::I8 => out.push(v as i8 as u8),
            Scalar::I16 => out.extend_from_slice(&(v as i16).to_le_bytes()),
            Scalar::I32 => out.extend_from_slice(&(v as i32).to_le_bytes()),
            Scalar::I64 => out.extend_from_slice(&(v as i64).to_le_bytes()),
        }
    }
    out
}

/// Lower one node whose op is not `qlinear`.
pub(crate) fn lower(g: &Graph, id: NodeId, opts: &LowerOptions) -> Result<Lowered, LowerError> {
    let n = NodeCx { g, id, opts };
    if opts.tokens == 0 {
        return Err(n.err("T = 0 tokens"));
    }
    match &g.node(id).op {
        Op::Input { .. } | Op::Weight { .. } | Op::Const { .. } => {
            Err(n.err("a source (input, weight or const) is data, not a kernel"))
        }
        Op::Reshape => Err(n.err("`reshape` is a view of its operand's buffer, not a kernel")),
        Op::Qlinear(_) => Err(n.err("`qlinear` is lowered by lower::qlinear")),
        Op::Dequant => Err(n.err(
            "a standalone `dequant` would materialize the dense weight; fuse-dequant folds \
             `linear(x, dequant(Wq))` into `qlinear`, which is the supported form",
        )),
        Op::Spmm => Err(n.err(
            "a standalone `spmm` has no kernel; fuse-outliers folds `add(qlinear, spmm(S, x))` \
             into the qlinear's CSR epilogue, which is the supported form",
        )),
        Op::Add | Op::Mul | Op::Silu | Op::Cast => elementwise::lower(&n),
        Op::Rmsnorm { .. } | Op::Softmax | Op::QuantizeAct(_) => rows::lower(&n),
        Op::Rope { .. } => misc::rope(&n),
        Op::Embedding => misc::embedding(&n),
        Op::Transpose => misc::transpose(&n),
        Op::Rotate(r) if r.kind == qkc_ir::ops::RotKind::Hadamard => misc::hadamard(&n, r.transpose),
        Op::Linear | Op::Matmul | Op::Rotate(_) => linear::lower(&n),
        Op::Attention(_) => attention::lower(&n),
    }
}

/// Pack a weight operand of a node whose op is not `qlinear`: dense floats in the weight's
/// dtype, row-major (`dense`), or transposed for the roles a kernel reads as `[N, K]`
/// (`dense_t`: see [`linear::weight_layout`]).
pub(crate) fn pack(
    g: &Graph,
    id: NodeId,
    role: &str,
    w: WeightData<'_>,
    opts: &LowerOptions,
) -> Result<Vec<PackedBuffer>, LowerError> {
    let n = NodeCx { g, id, opts };
    let werr =
        |reason: String| LowerError::Weight { value: g.node(id).name.clone(), role: role.into(), reason };
    let v = n.operand(role).ok_or_else(|| werr("the node has no such operand".into()))?;
    if !matches!(g.node(v).op, Op::Weight { .. }) {
        return Err(werr(format!("%{} is not a weight; it is bound at run time", g.node(v).name)));
    }
    let WeightData::Dense(data) = w else {
        return Err(werr("this op takes dense float weights, not quantized or sparse ones".into()));
    };
    let s = n.scalar(v)?;
    let shape = n.shape(v);
    let numel: usize = shape.iter().product();
    if data.len() != numel {
        return Err(werr(format!("{} values for shape {shape:?} ({numel} elements)", data.len())));
    }
    if linear::weight_layout(g, id, role) == Layout::Transposed {
        let (r, c) = (shape[0], shape[1]);
        let mut t = vec![0.0; numel];
        for i in 0..r {
            for j in 0..c {
                t[j * r + i] = data[i * c + j];
            }
        }
        return Ok(vec![PackedBuffer { name: "dense_t".into(), elem: s, data: encode(s, &t) }]);
    }
    Ok(vec![PackedBuffer { name: "dense".into(), elem: s, data: encode(s, data) }])
}
