//! Lowering of `qlinear` (every scheme, rotation prologue, act-quant, outlier and bias/residual/gate epilogues).

use qkc_ir::{Graph, NodeId};

use super::{unsupported, LowerError, LowerOptions, Lowered, PackedBuffer, WeightData};

/// Lower one `qlinear` (every scheme, rotation prologue, act-quant, outlier and bias/residual/gate epilogues) node.
pub(crate) fn lower(g: &Graph, id: NodeId, opts: &LowerOptions) -> Result<Lowered, LowerError> {
    let _ = opts;
    Err(unsupported(g, id, "no kernel yet"))
}

/// Pack a weight operand of a `qlinear` (every scheme, rotation prologue, act-quant, outlier and bias/residual/gate epilogues) node.
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
