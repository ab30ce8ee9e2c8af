//! Lowering: one fused graph node → one specialized KIR kernel, plus the rules that pack its
//! weights once at load.
//!
//! This is the contract between the lowering (here), the code generators (which only see
//! [`Kernel`]s) and the runtime (which owns buffers):
//!
//! - [`lower`] takes a graph node that qkc-passes' partitioning made a
//!   kernel (every op except sources and `reshape`) and concrete sizes ([`LowerOptions::tokens`]
//!   resolves the symbolic `T`), and returns a [`Lowered`]: the kernel and, for each KIR parameter
//!   in order, a [`Binding`] that says which buffer the runtime passes.
//! - Activations (graph values that are not weights) live in buffers of their graph dtype
//!   (f32 as f32, f16 as IEEE half, i32 as i32), row-major, `[T, …]`. A kernel reads its operands
//!   and writes its result in those dtypes.
//! - Weights are packed once, at load, by [`pack`]: it turns the stored form (a quantized tensor
//!   in qkc's layout, a CSR matrix, or dense floats) into the named buffers the kernel's
//!   [`Binding::Packed`] parameters name. The packed layout is the lowering's business.
//! - Bad input (a scheme or shape a kernel cannot handle, K not a multiple of the group size)
//!   is a [`LowerError`] that names the node and the problem, never a panic.

pub mod layout;
mod ops;
mod qlinear;

use qkc_ir::{Graph, NodeId, Op};

use crate::kernel::Kernel;
use crate::types::Scalar;

/// Which code generator the kernel is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LowerTarget {
    /// The host CPU through Cranelift: `cpu chunks(C) simd(128)` kernels.
    Cpu {
        /// Chunks to split the parallel axis into (the runtime spreads chunks over its threads;
        /// more chunks than threads balance better).
        chunks: u32,
    },
    /// An NVIDIA GPU through LLVM/NVPTX.
    Gpu {
        /// Compute capability ×10: 80, 86, 89, 90.
        sm: u32,
    },
}

/// Everything [`lower`] needs besides the node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LowerOptions {
    /// The target.
    pub target: LowerTarget,
    /// The token count `T` (batch for decode; 1..=8 for the GEMV kernels).
    pub tokens: usize,
    /// Per node, from its weights ([`node_options`]): the `qlinear` node takes the CPU a8g
    /// templates and every per-32-block scale and offset of its `w` (and `up`) is an f16 value,
    /// so the kernel reads them as f16 (`a8g_stats_f16`, 16 bytes per 4 rows and 32-block
    /// instead of 32). [`lower`] and [`pack`] must see the same value; `false` is always valid.
    pub a8g_f16_stats: bool,
}

/// Which half of an attention node's KV cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheHalf {
    /// Keys.
    K,
    /// Values.
    V,
}

/// What the runtime passes for one KIR parameter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Binding {
    /// The activation buffer of the node's operand with this role (`x`, `residual`, ...), in the
    /// operand's graph dtype.
    Operand {
        /// The operand role.
        role: String,
    },
    /// A buffer made by [`pack`] from the weight operand with this role.
    Packed {
        /// The operand role (`w`, `up`, `outliers`, `bias`, `gamma`, `table`, ...).
        role: String,
        /// The buffer's name among those [`pack`] returns for that role.
        buffer: String,
    },
    /// The node's result buffer, in its graph dtype, `[T, …]`.
    Output,
    /// The attention node's KV cache half: f32 `[max_seq, kv_heads·head_dim]`, persistent across
    /// runs. Rows `0..pos` hold earlier tokens; the kernel appends rows `pos..pos+T`.
    Cache(CacheHalf),
    /// The tokens already in the node's KV cache (the position of the first token), as a
    /// one-element i32 buffer the kernel reads at run time: a launch's arguments then never
    /// change from one decode step to the next (the CPU resolves them once; a captured CUDA
    /// graph replays them as they are).
    Pos,
    /// A constant buffer the lowering made (a Hadamard factor's sign matrix, an NF4 table, ...):
    /// the runtime uploads it once with the kernel.
    Const {
        /// A name for manifests.
        name: String,
        /// The element type the kernel reads it as.
        elem: Scalar,
        /// The bytes (little-endian elements).
        data: Vec<u8>,
    },
    /// A buffer the node's kernels share (see [`Lowered::pre`]): a prologue kernel writes it, a
    /// later one reads it. Allocated once per node; its contents never outlive a run.
    Temp {
        /// Its name within the node.
        name: String,
        /// The element type.
        elem: Scalar,
        /// Elements.
        len: u64,
    },
    /// Scratch memory private to this launch, zero-initialised, of this many bytes.
    Scratch {
        /// Size in bytes.
        bytes: u64,
    },
}

/// One lowered node.
#[derive(Clone, Debug)]
pub struct Lowered {
    /// The kernel (verified).
    pub kernel: Kernel,
    /// One binding per KIR parameter, in order.
    pub bindings: Vec<Binding>,
    /// The template (or generator) it came from, for `--explain` and manifests.
    pub template: String,
    /// Bytes a launch must read from memory (weights, scales, tables, outliers, activations):
    /// the numerator of a bench's GB/s.
    pub bytes_read: u64,
    /// Kernels to launch before this one, in order, for the same node (e.g. the online
    /// Hadamard of x spread over the whole GPU, then the activation quantizer), communicating
    /// through [`Binding::Temp`] buffers. Empty for most nodes.
    pub pre: Vec<Lowered>,
}

/// A weight in its stored form, as the runtime loaded it.
#[derive(Clone, Copy, Debug)]
pub enum WeightData<'a> {
    /// Dense floats (any float dtype, widened), row-major in the weight's shape.
    Dense(&'a [f64]),
    /// A quantized tensor in qkc's layout.
    Quant(&'a qkc_quant::QuantTensor),
    /// Sparse outliers.
    Sparse(&'a qkc_quant::Csr),
}

/// One packed buffer.
#[derive(Clone, Debug, PartialEq)]
pub struct PackedBuffer {
    /// Its name, as a [`Binding::Packed`] refers to it.
    pub name: String,
    /// The element type the kernel reads it as.
    pub elem: Scalar,
    /// The bytes (little-endian elements).
    pub data: Vec<u8>,
}

/// Why a node cannot be lowered.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum LowerError {
    /// The node's op, scheme or shape has no kernel (yet), or violates a kernel's requirement.
    #[error("%{value} ({op}): {reason}")]
    Unsupported {
        /// The node's value name.
        value: String,
        /// The op name.
        op: String,
        /// What is wrong, in words.
        reason: String,
    },
    /// A weight's stored form does not match what the graph declares.
    #[error("%{value}: weight operand `{role}`: {reason}")]
    Weight {
        /// The node's value name.
        value: String,
        /// The operand role.
        role: String,
        /// What is wrong.
        reason: String,
    },
    /// A template failed to instantiate or verify (a bug in qkc, reported with the template's
    /// diagnostics).
    #[error("%{value}: template `{template}`: {reason}")]
    Template {
        /// The node's value name.
        value: String,
        /// The template name.
        template: String,
        /// The diagnostics.
        reason: String,
    },
}

/// Lower one kernel node.
pub fn lower(g: &Graph, id: NodeId, opts: &LowerOptions) -> Result<Lowered, LowerError> {
    match &g.node(id).op {
        Op::Qlinear(_) => qlinear::lower(g, id, opts),
        _ => ops::lower(g, id, opts),
    }
}

/// `opts` refined for node `id` from its bound weights (`weight(role)`, `None` when absent): the
/// options to pass to both [`lower`] and [`pack`] of that node. Deterministic: it depends only on
/// the graph, `opts` and the weights' values. Today it decides [`LowerOptions::a8g_f16_stats`].
pub fn node_options<'w>(
    g: &Graph,
    id: NodeId,
    opts: &LowerOptions,
    weight: &dyn Fn(&str) -> Option<WeightData<'w>>,
) -> LowerOptions {
    let base = LowerOptions { a8g_f16_stats: false, ..*opts };
    match &g.node(id).op {
        Op::Qlinear(_) => {
            LowerOptions { a8g_f16_stats: qlinear::a8g_f16_exact(g, id, &base, weight), ..base }
        }
        _ => base,
    }
}

/// Pack the weight operand `role` of node `id` for the kernel [`lower`] makes for it.
pub fn pack(
    g: &Graph,
    id: NodeId,
    role: &str,
    w: WeightData<'_>,
    opts: &LowerOptions,
) -> Result<Vec<PackedBuffer>, LowerError> {
    match &g.node(id).op {
        Op::Qlinear(_) => qlinear::pack(g, id, role, w, opts),
        _ => ops::pack(g, id, role, w, opts),
    }
}

/// The error for a node no kernel handles.
pub(crate) fn unsupported(g: &Graph, id: NodeId, reason: impl Into<String>) -> LowerError {
    let node = g.node(id);
    LowerError::Unsupported {
        value: node.name.clone(),
        op: node.op.name().to_string(),
        reason: reason.into(),
    }
}
