//! The canonical KIR text printer. Its output parses back to an equal kernel
//! (`parse(print(k)) == k`, proved by a property test), so it is also the normal form that the
//! specialization key hashes.
//!
//! ```text
//! kernel @silu(%x: ptr<global, f32> noalias readonly len(64), %y: ptr<global, f32>) cpu chunks(2) simd(128) {
//!   %c = axis cpu.chunk : i32
//!   v3 = load %x[%c] align 4 : f32
//!   ...
//! }
//! ```

use std::fmt::Write;

use crate::entities::{Block, Inst, Value};
use crate::kernel::{Kernel, Param, Target};
use crate::ops::{CacheHint, MemFlags, Op};
use crate::types::{Scalar, Type};

/// Print a kernel in canonical text form.
pub fn print(k: &Kernel) -> String {
    let mut out = String::new();
    let params: Vec<String> = k.params.iter().map(|p| param(k, p)).collect();
    let _ = writeln!(out, "kernel @{}({}) {} {{", k.name, params.join(", "), target(&k.target));
    block_body(k, k.body(), 1, &mut out);
    out.push_str("}\n");
    out
}

/// The spelling of a target and launch shape: `gpu grid(x, y, z) block(x, y, z)` or
/// `cpu chunks(n) simd(bits)`.
pub fn target(t: &Target) -> String {
    match t {
        Target::Gpu { grid: g, block: b } => {
            format!("gpu grid({}, {}, {}) block({}, {}, {})", g[0], g[1], g[2], b[0], b[1], b[2])
        }
        Target::Cpu { chunks, simd_bits } => format!("cpu chunks({chunks}) simd({simd_bits})"),
    }
}

fn param(k: &Kernel, p: &Param) -> String {
    let mut s = format!("{}: {}", k.value_spelling(p.value), k.ty(p.value));
    let a = p.attrs;
    for (on, word) in [(a.noalias, "noalias"), (a.readonly, "readonly"), (a.writeonly, "writeonly")] {
        if on {
            s.push(' ');
            s.push_str(word);
        }
    }
    if let Some(n) = a.len {
        let _ = write!(s, " len({n})");
    }
    s
}

fn indent(out: &mut String, depth: usize) {
    for _ in 0..depth {
        out.push_str("  ");
    }
}

fn block_body(k: &Kernel, b: Block, depth: usize, out: &mut String) {
    let bd = k.block(b);
    for &i in &bd.insts {
        indent(out, depth);
        out.push_str(&inst_line(k, i));
        let data = k.inst(i);
        match data.op {
            Op::For { .. } => {
                out.push_str(" {\n");
                block_body(k, data.blocks[0], depth + 1, out);
                indent(out, depth);
                out.push('}');
            }
            Op::If => {
                out.push_str(" {\n");
                block_body(k, data.blocks[0], depth + 1, out);
                indent(out, depth);
                out.push('}');
                if let Some(&els) = data.blocks.get(1) {
                    let e = k.block(els);
                    if !e.insts.is_empty() || !e.yields.is_empty() {
                        out.push_str(" else {\n");
                        block_body(k, els, depth + 1, out);
                        indent(out, depth);
                        out.push('}');
                    }
                }
            }
            _ => {}
        }
        out.push('\n');
    }
    if !bd.yields.is_empty() {
        indent(out, depth);
        let _ = writeln!(out, "yield {}", list(k, &bd.yields));
    }
}

fn list(k: &Kernel, vs: &[Value]) -> String {
    vs.iter().map(|&v| k.value_spelling(v)).collect::<Vec<_>>().join(", ")
}

fn mem(flags: MemFlags) -> String {
    let mut s = format!(" align {}", flags.align);
    if flags.hint != CacheHint::Default {
        s.push(' ');
        s.push_str(flags.hint.name());
    }
    s
}

/// One instruction's line, without its regions' bodies: `v3 = add v1, v2 : i32`.
pub fn inst_line(k: &Kernel, i: Inst) -> String {
    let d = k.inst(i);
    let v = |n: usize| d.args.get(n).map_or_else(|| "<missing>".to_string(), |&x| k.value_spelling(x));
    let mut s = String::new();
    if !d.results.is_empty() {
        let _ = write!(s, "{} = ", list(k, &d.results));
    }
    s.push_str(&d.op.mnemonic());
    match &d.op {
        Op::Const(lanes) => {
            let elem = d.results.first().and_then(|&r| k.ty(r).elem()).unwrap_or(Scalar::I32);
            let lits: Vec<String> = lanes.iter().map(|&b| literal(b, elem)).collect();
            match lits.as_slice() {
                [one] => {
                    let _ = write!(s, " {one}");
                }
                many => {
                    let _ = write!(s, " [{}]", many.join(", "));
                }
            }
        }
        Op::Load(f) => {
            let _ = write!(s, " {}[{}]{}", v(0), v(1), mem(*f));
        }
        Op::Prefetch => {
            let _ = write!(s, " {}[{}]", v(0), v(1));
        }
        Op::Store(f) => {
            let _ = write!(s, " {}, {}[{}]{}", v(0), v(1), v(2), mem(*f));
        }
        Op::AtomicAdd => {
            let _ = write!(s, " {}[{}], {}", v(0), v(1), v(2));
        }
        Op::Extract(l) => {
            let _ = write!(s, " {}, {l}", v(0));
        }
        Op::Insert(l) => {
            let _ = write!(s, " {}, {}, {l}", v(0), v(1));
        }
        Op::Shuffle(m) => {
            let m: Vec<String> = m.iter().map(u8::to_string).collect();
            let _ = write!(s, " {}, {}, [{}]", v(0), v(1), m.join(", "));
        }
        Op::Alloc(_, n) => {
            let _ = write!(s, " {n}");
        }
        Op::Axis(a) => {
            let _ = write!(s, " {}", a.name());
        }
        Op::For { unroll } => for_header(k, i, *unroll, &mut s),
        _ => {
            if !d.args.is_empty() {
                let _ = write!(s, " {}", list(k, &d.args));
            }
        }
    }
    if !d.results.is_empty() {
        let tys: Vec<String> = d.results.iter().map(|&r| k.ty(r).to_string()).collect();
        let _ = write!(s, " : {}", tys.join(", "));
    }
    s
}

fn for_header(k: &Kernel, i: Inst, unroll: u32, s: &mut String) {
    let d = k.inst(i);
    let Some(&body) = d.blocks.first() else { return };
    let b = k.block(body);
    let sp = |v: Option<&Value>| v.map_or_else(|| "<missing>".to_string(), |&x| k.value_spelling(x));
    let _ = write!(
        s,
        " {} = {} to {} step {}",
        sp(b.args.first()),
        sp(d.args.first()),
        sp(d.args.get(1)),
        sp(d.args.get(2))
    );
    if d.args.len() > 3 {
        let pairs: Vec<String> = d.args[3..]
            .iter()
            .enumerate()
            .map(|(n, &init)| format!("{} = {}", sp(b.args.get(n + 1)), k.value_spelling(init)))
            .collect();
        let _ = write!(s, " iter({})", pairs.join(", "));
    }
    if unroll != 1 {
        let _ = write!(s, " unroll {unroll}");
    }
}

/// The canonical spelling of a constant lane: integers in signed decimal when small, else hex;
/// finite floats in shortest round-trip decimal; other floats as hex bits.
pub fn literal(bits: u64, elem: Scalar) -> String {
    let bits = bits & elem.mask();
    match elem {
        Scalar::I1 => bits.to_string(),
        s if s.is_int() => {
            let shift = 64 - s.bits();
            let signed = ((bits << shift) as i64) >> shift;
            if (-65536..=65536).contains(&signed) {
                signed.to_string()
            } else {
                format!("{bits:#x}")
            }
        }
        Scalar::F64 => float_lit(f64::from_bits(bits), bits),
        Scalar::F32 => {
            let x = f32::from_bits(bits as u32);
            if x.is_finite() {
                format!("{x:?}")
            } else {
                format!("{bits:#x}")
            }
        }
        Scalar::F16 => half_lit(half::f16::from_bits(bits as u16).to_f32(), bits),
        _ => half_lit(half::bf16::from_bits(bits as u16).to_f32(), bits),
    }
}

fn float_lit(x: f64, bits: u64) -> String {
    if x.is_finite() {
        format!("{x:?}")
    } else {
        format!("{bits:#x}")
    }
}

fn half_lit(x: f32, bits: u64) -> String {
    if x.is_finite() {
        format!("{x:?}")
    } else {
        format!("{bits:#x}")
    }
}

/// A type's spelling (re-exported for symmetry with the parser).
pub fn type_str(t: Type) -> String {
    t.to_string()
}

impl std::fmt::Display for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&print(self))
    }
}
