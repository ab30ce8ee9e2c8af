//! The JSON form of a graph (serde), for tools. `from_json(to_json(g)) == g`.
//!
//! ```json
//! {"name": "mlp", "nodes": [{"result": "x", "op": "input", "name": "x", "type": "f32[T, 576]"}, ...],
//!  "outputs": ["y"]}
//! ```
//! Each node is `{"result": NAME, "op": OPNAME, ...typed attributes, "operands": {ROLE: VALUE},
//! "type": TYPE}`; types use their text spelling (`"q<int4:g128>[1536, 576]"`).

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::diag::Diag;
use crate::graph::{Graph, Node, NodeId, Span};
use crate::ops::Op;
use crate::types::Type;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct GraphJson {
    name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    doc: Vec<String>,
    nodes: Vec<NodeJson>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    return_doc: Vec<String>,
    outputs: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct NodeJson {
    result: String,
    #[serde(flatten)]
    op: Op,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    operands: BTreeMap<String, String>,
    #[serde(rename = "type")]
    ty: Type,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    doc: Vec<String>,
}

/// Serialize to pretty JSON.
pub fn to_json(g: &Graph) -> String {
    let nodes = g
        .nodes()
        .map(|id| {
            let n = g.node(id);
            let roles = n.op.roles();
            let operands = g
                .operands(id)
                .into_iter()
                .map(|(r, v)| {
                    (
                        roles.get(r).map_or("?", |r| r.name).to_string(),
                        g.node(v).name.clone(),
                    )
                })
                .collect();
            NodeJson {
                result: n.name.clone(),
                op: n.op.clone(),
                operands,
                ty: n.ty.clone(),
                doc: n.doc.clone(),
            }
        })
        .collect();
    let gj = GraphJson {
        name: g.name.clone(),
        doc: g.doc.clone(),
        nodes,
        return_doc: g.return_doc.clone(),
        outputs: g
            .outputs()
            .iter()
            .map(|&o| g.node(o).name.clone())
            .collect(),
    };
    let mut s =
        serde_json::to_string_pretty(&gj).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    s.push('\n');
    s
}

/// Parse the JSON form. Errors name the node and operand at fault (JSON syntax errors carry a
/// span computed from serde's line and column).
pub fn from_json(src: &str) -> Result<Graph, Diag> {
    let gj: GraphJson = serde_json::from_str(src).map_err(|e| {
        let offset = offset_of(src, e.line(), e.column());
        // serde appends " at line L column C"; the diagnostic shows the location itself
        let msg = e.to_string();
        let msg = if e.line() > 0 {
            msg.rsplit_once(" at line ")
                .map_or(msg.as_str(), |(m, _)| m)
        } else {
            &msg
        };
        Diag::error(format!("invalid graph JSON: {msg}")).at(Span::new(offset, 1))
    })?;
    let mut g = Graph::new(gj.name);
    g.doc = gj.doc;
    g.return_doc = gj.return_doc;
    let mut ids: HashMap<String, NodeId> = HashMap::new();
    let mut pending: Vec<(NodeId, BTreeMap<String, String>)> = Vec::new();
    let mut cursor = 0;
    for n in gj.nodes {
        // locate `"result": "NAME"` (nodes appear in order) so diagnostics get a line:col
        let span = locate(src, &mut cursor, "result", &n.result);
        if ids.contains_key(&n.result) {
            return Err(
                Diag::error(format!("value `%{}` is defined twice", n.result))
                    .value(n.result)
                    .at_opt(span),
            );
        }
        let id = g.add_node(
            Node {
                name: n.result.clone(),
                op: n.op,
                ty: n.ty,
                span,
                doc: n.doc,
            },
            &[],
        );
        ids.insert(n.result, id);
        pending.push((id, n.operands));
    }
    for (id, operands) in pending {
        let name = g.node(id).name.clone();
        for (role, v) in operands {
            let span = g.node(id).span;
            let r = g.node(id).op.role_index(&role).ok_or_else(|| {
                Diag::error(format!(
                    "`{}` has no operand `{role}`",
                    g.node(id).op.name()
                ))
                .value(name.clone())
                .at_opt(span)
            })?;
            let src = *ids.get(&v).ok_or_else(|| {
                Diag::error(format!("operand `{role}` refers to undefined value `%{v}`"))
                    .value(name.clone())
                    .at_opt(span)
            })?;
            g.connect(src, id, r);
        }
    }
    let outputs_span = src
        .rfind("\"outputs\"")
        .map(|o| Span::new(o, "\"outputs\"".len()));
    g.outputs_span = outputs_span;
    let mut outs = Vec::new();
    for o in gj.outputs {
        outs.push(*ids.get(&o).ok_or_else(|| {
            Diag::error(format!("output `%{o}` is not defined")).at_opt(outputs_span)
        })?);
    }
    g.set_outputs(outs);
    Ok(g)
}

/// Find the next `"key": "value"` at or after `*cursor` (any whitespace around the colon);
/// returns the span of the key and advances the cursor past it.
fn locate(src: &str, cursor: &mut usize, key: &str, value: &str) -> Option<Span> {
    let pat = format!("\"{key}\"");
    let quoted = serde_json::to_string(value).ok()?;
    let mut from = *cursor;
    while let Some(rel) = src.get(from..)?.find(&pat) {
        let at = from + rel;
        let rest = src[at + pat.len()..].trim_start();
        if let Some(after_colon) = rest.strip_prefix(':') {
            if after_colon.trim_start().starts_with(&quoted) {
                *cursor = at + pat.len();
                return Some(Span::new(at, pat.len()));
            }
        }
        from = at + pat.len();
    }
    None
}

fn offset_of(src: &str, line: usize, col: usize) -> usize {
    let start: usize = src
        .split_inclusive('\n')
        .take(line.saturating_sub(1))
        .map(str::len)
        .sum();
    (start + col.saturating_sub(1)).min(src.len())
}
