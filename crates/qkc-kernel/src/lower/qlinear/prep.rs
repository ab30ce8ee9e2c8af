//! GPU prologues of `qlinear`: the online Hadamard of x spread over the whole GPU, and the
//! activation quantizer, as kernels of their own that write a prepared x to a
//! [`Binding::Temp`] buffer the GEMV reads. The GEMV then neither stages x in shared memory (no
//! 48 KiB limit on T·K) nor repeats the rotation in every block.
//!
//! The rotation `H_K = (had_k ⊗ S_m)/√K` (S_m Sylvester, m = K/had_k a power of two) is split as
//! `A ⊗ S_b` with `b = min(m, 1024)` and `A = had_k ⊗ S_{m/b}` (a = K/b rows; the Sylvester
//! sign of an index pair factors over its bits). Block (i, t) owns the b outputs `i·b .. i·b + b`
//! of token t: it mixes x's a segments of length b with row i of A (a dense ±1 table, a
//! constant buffer), then runs the length-b FWHT in shared memory. Every block reads x (≤ 57 KB,
//! from L2) once; the work is spread over a·T blocks instead of being repeated by each GEMV
//! block.

use qkc_ir::ops::ActQuant;
use qkc_ir::Graph;

use super::kb::{Kb, R};
use super::Spec;
use crate::kernel::ParamAttrs;
use crate::lower::{Binding, LowerOptions, LowerTarget, Lowered};
use crate::ops::{Axis, BinaryOp};
use crate::types::{MemSpace, Scalar, Type};
use crate::Target;

const THREADS: i64 = 256;

/// The ±1 matrix A = had_k ⊗ S_{ms} (row-major a×a, transposed for Hᵀ) as f32.
fn a_table(hk: usize, ms: usize, transpose: bool) -> Result<Vec<f32>, String> {
    let had: Vec<i8> = if hk == 1 {
        vec![1]
    } else {
        // the rows of had_k, read through the dense normalized H_hk (m = 1), rescaled to ±1
        let d = qkc_quant::hadamard::dense(hk, false).map_err(|e| e.to_string())?;
        let s = (hk as f64).sqrt();
        d.iter().map(|v| if v * s > 0.0 { 1 } else { -1 }).collect()
    };
    let a = hk * ms;
    let mut out = vec![0f32; a * a];
    for i in 0..a {
        for j in 0..a {
            let (i1, i2, j1, j2) = (i / ms, i % ms, j / ms, j % ms);
            let h = if transpose { had[j1 * hk + i1] } else { had[i1 * hk + j1] };
            let sy = if (i2 & j2).count_ones() % 2 == 0 { 1 } else { -1 };
            out[i * a + j] = f32::from(h * sy);
        }
    }
    Ok(out)
}

/// The rotation kernel: x (`x_elem`, [T, K]) → `out` (`out_elem`, [T, K]) as Temp `name`.
pub(super) fn rotation(s: &Spec, name: &str, out_elem: Scalar, out: &str) -> R<Lowered> {
    let Some((hk, transpose)) = s.rot else {
        return Err(crate::KernelError::Builder("rotation prologue without a rotation".into()));
    };
    let (k, t) = (s.k, s.t);
    let m = k / hk;
    let b = m.min(1024);
    let ms = m / b;
    let a = hk * ms;
    let table = a_table(hk, ms, transpose).map_err(crate::KernelError::Builder)?;
    let target = Target::Gpu { grid: [a as u32, t as u32, 1], block: [THREADS as u32, 1, 1] };
    let mut kb = Kb::new(name, target);
    let ro =
        |len: usize| ParamAttrs { noalias: true, readonly: true, writeonly: false, len: Some(len as u64) };
    let wo =
        |len: usize| ParamAttrs { noalias: true, readonly: false, writeonly: true, len: Some(len as u64) };
    let x = kb.param("x", s.x_elem, ro(t * k));
    let at = kb.param("a", Scalar::F32, ro(a * a));
    let y = kb.param("y", out_elem, wo(t * k));
    let sh = kb.alloc(MemSpace::Shared, Scalar::F32, b);
    let bi = kb.axis(Axis::GridX);
    let tok = kb.axis(Axis::GridY);
    let tid = kb.axis(Axis::BlockX);
    let xt = kb.muli(tok, k as i64);
    let arow = kb.muli(bi, a as i64);
    let step = kb.ci(THREADS);
    let cb = kb.ci(b as i64);
    // mix: sh[j] = Σ_i' A[i, i'] · x[t, i'·b + j]
    kb.for_(tid, cb, step, &[], |kb, j, _| {
        let zero = kb.cf(0.0);
        let xj = kb.add(xt, j);
        let acc = kb.for_n(0, a as i64, &[zero], |kb, ii, acc| {
            let ai = kb.add(arow, ii);
            let av = kb.load(at, ai, Type::F32);
            let xi = kb.mad(ii, b as i64, xj);
            let xv = kb.load_act(x, xi, s.x_elem);
            Ok(vec![kb.fma(av, xv, acc[0])])
        })?;
        kb.store(acc[0], sh, j);
        Ok(vec![])
    })?;
    kb.barrier();
    // FWHT of length b in shared memory
    let half = kb.ci((b / 2) as i64);
    for st in 0..b.trailing_zeros() as i64 {
        kb.for_(tid, half, step, &[], |kb, p, _| {
            let sh1 = kb.ci(st);
            let hi = kb.bin(BinaryOp::Lshr, p, sh1);
            let hi = kb.muli(hi, 2 << st);
            let mk = kb.ci((1 << st) - 1);
            let lo = kb.bin(BinaryOp::And, p, mk);
            let i0 = kb.add(hi, lo);
            let i1 = kb.addi(i0, 1 << st);
            let u = kb.load(sh, i0, Type::F32);
            let v = kb.load(sh, i1, Type::F32);
            let s0 = kb.add(u, v);
            let s1 = kb.sub(u, v);
            kb.store(s0, sh, i0);
            kb.store(s1, sh, i1);
            Ok(vec![])
        })?;
        kb.barrier();
    }
    let scale = kb.cf((1.0 / (k as f64).sqrt()) as f32);
    let ob = kb.muli(bi, b as i64);
    let obase = kb.add(xt, ob);
    kb.for_(tid, cb, step, &[], |kb, j, _| {
        let v = kb.load(sh, j, Type::F32);
        let v = kb.mul(v, scale);
        let o = kb.add(obase, j);
        kb.store_act(v, y, o, out_elem);
        Ok(vec![])
    })?;
    let kernel = kb.finish()?;
    let bytes_read = (a * t * k * s.x_elem.bytes() as usize + a * a * 4) as u64;
    Ok(Lowered {
        kernel,
        bindings: vec![
            Binding::Operand { role: "x".into() },
            Binding::Const {
                name: "hadamard_a".into(),
                elem: Scalar::F32,
                data: table.iter().flat_map(|v| v.to_le_bytes()).collect(),
            },
            Binding::Temp { name: out.into(), elem: out_elem, len: (t * k) as u64 },
        ],
        template: format!("hadamard prologue ({a} blocks × FWHT {b})"),
        bytes_read,
        pre: Vec::new(),
    })
}

/// The activation quantizer as a kernel (the `quantize_act` op's own lowering), reading
/// `input` (a Temp, or the operand x when `None`) and writing Temp `out`.
pub(super) fn act_quant(
    s: &Spec,
    a: ActQuant,
    in_elem: Scalar,
    input: Option<&str>,
    out_elem: Scalar,
    out: &str,
    opts: &LowerOptions,
) -> Result<Lowered, String> {
    let dt = |e: Scalar| if e == Scalar::F16 { "f16" } else { "f32" };
    let src = format!(
        "graph @prep {{\n  %x = input \"x\" : {}[T, {k}]\n  %xq = quantize_act(%x) {{bits = {}, sym = {}{}}} : {}[T, {k}]\n  return %xq\n}}\n",
        dt(in_elem),
        a.bits,
        a.sym,
        a.group.map_or(String::new(), |g| format!(", group = {g}")),
        dt(out_elem),
        k = s.k
    );
    let g: Graph = qkc_ir::parse(&src).map_err(|e| format!("{e:?}"))?;
    let id = g.find("xq").ok_or("no %xq")?;
    let mut l = crate::lower::lower(&g, id, &LowerOptions { target: LowerTarget::Gpu { sm: 90 }, ..*opts })
        .map_err(|e| e.to_string())?;
    for b in &mut l.bindings {
        match b {
            Binding::Operand { role } if role == "x" => {
                if let Some(name) = input {
                    *b = Binding::Temp { name: name.into(), elem: in_elem, len: (s.t * s.k) as u64 };
                }
            }
            Binding::Output => {
                *b = Binding::Temp { name: out.into(), elem: out_elem, len: (s.t * s.k) as u64 }
            }
            _ => {}
        }
    }
    Ok(l)
}

/// The CPU rotation prologue: the `rotate` op's own kernel (chunks own tokens) writing the
/// rotated x (f32) to Temp `out`, so the GEMV's chunks do not each repeat the rotation.
pub(super) fn rotation_cpu(s: &Spec, out: &str, opts: &LowerOptions) -> Result<Lowered, String> {
    let Some((_, transpose)) = s.rot else { return Err("no rotation".into()) };
    let dt = if s.x_elem == Scalar::F16 { "f16" } else { "f32" };
    let src = format!(
        "graph @prep {{\n  %x = input \"x\" : {dt}[T, {k}]\n  %xr = rotate(%x) {{kind = hadamard, transpose = {transpose}}} : f32[T, {k}]\n  return %xr\n}}\n",
        k = s.k
    );
    let g: Graph = qkc_ir::parse(&src).map_err(|e| format!("{e:?}"))?;
    let id = g.find("xr").ok_or("no %xr")?;
    let mut l = crate::lower::lower(&g, id, opts).map_err(|e| e.to_string())?;
    for b in &mut l.bindings {
        if matches!(b, Binding::Output) {
            *b = Binding::Temp { name: out.into(), elem: Scalar::F32, len: (s.t * s.k) as u64 };
        }
    }
    Ok(l)
}
