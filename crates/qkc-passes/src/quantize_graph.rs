//! Rewrite a float graph so its linear weights carry the schemes `qkc quantize` chose.
//!
//! For a weight `W` quantized (optionally with QuaRot's offline fold `W·Hᵀ` and with outliers
//! `S`), every `linear(x, W [, b])` becomes the unfused chain the passes expect:
//!
//! ```text
//! linear(rotate(x) {kind = hadamard}, dequant(Wq) [, b]) + spmm(S, rotate(x))
//! ```
//! which means `(W·Hᵀ + S)·(H x) = W x` up to quantization error. `qkc compile` then fuses it into
//! one `qlinear`. This is not a pipeline pass: it changes what the weights are.

use std::collections::HashMap;

use qkc_ir::ops::{RotKind, Rotation};
use qkc_ir::{DType, Graph, NodeId, Op, Shape, Type};
use qkc_quant::Scheme;

/// What was done to one checkpoint weight.
#[derive(Debug, Clone, PartialEq)]
pub struct WeightPlan {
    /// The scheme it is stored in.
    pub scheme: Scheme,
    /// Stored as `W·Hᵀ`: the graph must rotate the input online.
    pub rotated: bool,
    /// Outliers stored as `NAME.outliers` (CSR), with this column-index dtype.
    pub outliers: Option<DType>,
    /// The outliers' value dtype (`f16` as qkc and SpQR store them; `f32` for SqueezeLLM's).
    pub outlier_val: DType,
}

fn fresh(g: &Graph, base: &str) -> String {
    if g.find(base).is_none() {
        return base.to_string();
    }
    (1..)
        .map(|i| format!("{base}_{i}"))
        .find(|n| g.find(n).is_none())
        .unwrap_or_else(|| base.to_string())
}

/// Apply `plans` (by checkpoint name) to every float weight of `g` used by `linear`.
/// Errors name the weight that cannot be rewritten.
pub fn quantize_graph(g: &mut Graph, plans: &HashMap<String, WeightPlan>) -> Result<usize, String> {
    let weights: Vec<NodeId> = g
        .nodes()
        .filter(|&n| matches!(&g.node(n).op, Op::Weight { name, .. } if plans.contains_key(name)))
        .collect();
    let mut rewritten = 0;
    for w in weights {
        let Op::Weight { name, .. } = g.node(w).op.clone() else {
            continue;
        };
        let plan = &plans[&name];
        let Type::Tensor { dtype, shape } = g.node(w).ty.clone() else {
            return Err(format!(
                "weight \"{name}\" is already {}, not a float tensor",
                g.node(w).ty
            ));
        };
        if !dtype.is_float() || shape.rank() != 2 {
            return Err(format!(
                "weight \"{name}\" is {}, not a float [N, K] matrix",
                g.node(w).ty
            ));
        }
        let users = g.users(w);
        if users
            .iter()
            .any(|&u| !matches!(g.node(u).op, Op::Linear) || g.operand(u, "w") != Some(w))
        {
            return Err(format!(
                "weight \"{name}\" is used other than as the weight of a linear layer"
            ));
        }
        g.node_mut(w).ty = Type::Quant {
            scheme: plan.scheme,
            shape: shape.clone(),
        };
        let wname = g.node(w).name.clone();
        let outliers = plan.outliers.map(|index| {
            let ty = Type::Sparse {
                val: plan.outlier_val,
                index,
                shape: shape.clone(),
            };
            let op = Op::Weight {
                name: format!("{name}.outliers"),
                density: None,
                fold: None,
            };
            g.add(fresh(g, &format!("{wname}_outliers")), op, ty, &[])
        });
        for l in users {
            rewrite_use(g, l, w, &wname, dtype, &shape, plan.rotated, outliers);
        }
        rewritten += 1;
    }
    g.reorder_topologically()
        .map_err(|_| "internal error: the rewritten graph has a cycle".to_string())?;
    Ok(rewritten)
}

#[expect(
    clippy::too_many_arguments,
    reason = "one call site; the values are the rewrite's inputs"
)]
fn rewrite_use(
    g: &mut Graph,
    l: NodeId,
    w: NodeId,
    wname: &str,
    dtype: DType,
    shape: &Shape,
    rotated: bool,
    s: Option<NodeId>,
) {
    let dq = g.add(
        fresh(g, &format!("{wname}_dq")),
        Op::Dequant,
        Type::tensor(dtype, shape.clone()),
        &[(0, w)],
    );
    g.set_operand(l, 1, Some(dq));
    let Some(mut x) = g.operand(l, "x") else {
        return;
    };
    if rotated {
        let xt = g.node(x).ty.clone();
        let r = Op::Rotate(Rotation {
            kind: RotKind::Hadamard,
            transpose: false,
        });
        x = g.add(
            fresh(g, &format!("{}_rot", g.node(x).name)),
            r,
            xt,
            &[(0, x)],
        );
        g.set_operand(l, 0, Some(x));
    }
    if let Some(s) = s {
        // y = linear(..) + spmm(S, x): the add takes the linear's name, so outputs keep theirs
        let lname = g.node(l).name.clone();
        let ty = g.node(l).ty.clone();
        g.node_mut(l).name = fresh(g, &format!("{lname}_dense"));
        let sp = g.add(
            fresh(g, &format!("{lname}_sparse")),
            Op::Spmm,
            ty.clone(),
            &[(0, s), (1, x)],
        );
        let users = g.users(l);
        let outs: Vec<NodeId> = g
            .outputs()
            .iter()
            .map(|&o| if o == l { sp } else { o })
            .collect();
        let add = g.add(lname, Op::Add, ty, &[(0, l), (1, sp)]);
        for u in users {
            for (role, v) in g.operands(u) {
                if v == l {
                    g.set_operand(u, role, Some(add));
                }
            }
        }
        g.set_outputs(
            outs.into_iter()
                .map(|o| if o == sp { add } else { o })
                .collect(),
        );
    }
}
