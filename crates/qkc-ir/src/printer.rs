//! The canonical text printer. `qkc fmt` output is exactly this; the parser reads it back to an
//! equal graph (`parse(print(g)) == g`, checked by a property test).
//!
//! Canonical form: two-space indent, one op per line, operands positional then `role = %v` in role
//! order, attributes in the op's canonical order, comments kept on their own lines above the op
//! they precede, at most one blank line in a row.

use std::fmt::{self, Write};

use crate::graph::Graph;

impl fmt::Display for Graph {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for line in &self.doc {
            print_doc_line(f, "", line)?;
        }
        writeln!(f, "graph @{} {{", self.name)?;
        for id in self.nodes() {
            let node = self.node(id);
            for line in &node.doc {
                print_doc_line(f, "  ", line)?;
            }
            let mut line = String::new();
            let _ = write!(line, "  %{} = {}", node.name, node.op.name());
            if let Some(sym) = node.op.symbol() {
                let _ = write!(line, " {sym:?}");
            }
            let roles = node.op.roles();
            let operands = self.operands(id);
            if !operands.is_empty() {
                line.push('(');
                for (i, (role, v)) in operands.iter().enumerate() {
                    if i > 0 {
                        line.push_str(", ");
                    }
                    let r = roles.get(*role).copied();
                    if r.is_some_and(|r| r.optional) {
                        let _ = write!(line, "{} = ", r.map_or("?", |r| r.name));
                    }
                    let _ = write!(line, "%{}", self.node(*v).name);
                }
                line.push(')');
            }
            let attrs = node.op.attrs();
            if !attrs.is_empty() {
                line.push_str(" {");
                for (i, (k, v)) in attrs.iter().enumerate() {
                    if i > 0 {
                        line.push_str(", ");
                    }
                    let _ = write!(line, "{k} = {v}");
                }
                line.push('}');
            }
            let _ = write!(line, " : {}", node.ty);
            writeln!(f, "{line}")?;
        }
        for line in &self.return_doc {
            print_doc_line(f, "  ", line)?;
        }
        f.write_str("  return")?;
        for (i, o) in self.outputs().iter().enumerate() {
            f.write_str(if i == 0 { " " } else { ", " })?;
            write!(f, "%{}", self.node(*o).name)?;
        }
        f.write_str("\n}\n")
    }
}

fn print_doc_line(f: &mut fmt::Formatter<'_>, indent: &str, line: &str) -> fmt::Result {
    if line.is_empty() {
        writeln!(f)
    } else {
        writeln!(f, "{indent}{}", line.trim_end())
    }
}
