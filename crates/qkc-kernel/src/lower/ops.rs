//! Lowering of every op other than `qlinear` (elementwise, RMSNorm, RoPE, softmax, attention, embedding, dense matmul, ...).

use qkc_ir::{Graph, NodeId};

use super::{unsupported, LowerError, LowerOptions, Lowered, PackedBuffer, WeightData};

/// Lower one every op other than `qlinear` (elementwise, RMSNorm, RoPE, softmax, attention, embedding, dense matmul, ...) node.
pub(crate) fn lower(g: &Graph, id: NodeId, opts: &LowerOptions) -> Result<Lowered, LowerError> {
    let _ = opts;
    Err(unsupported(g, id, "no kernel yet"))
}

/// Pack a weight operand of a every op other than `qlinear` (elementwise, RMSNorm, RoPE, softmax, attention, embedding, dense matmul, ...) node.
pub(crate) fn pack(
    g: &Graph,
    id: NodeId,
    role: &str,
    w: WeightData<'_>,
    opts: &LowerOptions,
) -> Result<Vec<PackedBuffer>, LowerError> {
    let _ = (w, opts);
    Err(LowerError::Weight {
        value: g.node(id).name.clone(),
        role: role.into(),
        reason: "no packing rule yet".into(),
    })
}
