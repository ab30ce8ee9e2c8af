//! Pieces both generators share: the parameter list with its bindings, the Hadamard prologue,
//! the activation quantizer, and the per-token epilogue.
//!
//! Loops that a whole GPU block shares take `(start, step, sync)`: the CPU passes `(0, 1,
//! false)`, the GPU `(tid, threads, true)` and gets a barrier after each pass.

use qkc_ir::ops::ActQuant;

use super::form::{Dq, Form};
use super::kb::{Kb, R};
use super::Spec;
use crate::kernel::ParamAttrs;
use crate::lower::Binding;
use crate::ops::{BinaryOp, CastOp, FloatCC};
use crate::types::{Scalar, Type};
use crate::Value;

/// Parameters of one weight operand.
#[derive(Clone, Copy, Debug)]
pub(super) struct WParams {
    pub form: Form,
    pub codes: Option<Value>,
    pub scale: Option<Value>,
    pub offset: Option<Value>,
    pub table: Option<Value>,
    pub perm: Option<Value>,
    pub cb_codes: Option<Value>,
    pub codebooks: Option<Value>,
}

/// CSR parameters.
#[derive(Clone, Copy, Debug)]
pub(super) struct CsrParams {
    pub row_ptr: Value,
    pub col: Value,
    pub val: Value,
}

/// Every kernel parameter.
#[derive(Clone, Copy, Debug)]
pub(super) struct Params {
    pub x: Value,
    pub residual: Option<Value>,
    pub w: WParams,
    pub up: Option<WParams>,
    pub out_w: Option<CsrParams>,
    pub out_up: Option<CsrParams>,
    pub bias: Option<Value>,
    pub had: Option<Value>,
    pub scratch: Option<Value>,
    pub y: Value,
}

fn ro(len: Option<usize>) -> ParamAttrs {
    ParamAttrs { noalias: true, readonly: true, writeonly: false, len: len.map(|l| l as u64) }
}

fn weight_params(kb: &mut Kb, s: &Spec, role: &str, form: Form, binds: &mut Vec<Binding>) -> WParams {
    let mut p = WParams {
        form,
        codes: None,
        scale: None,
        offset: None,
        table: None,
        perm: None,
        cb_codes: None,
        codebooks: None,
    };
    for (name, elem, len) in form.buffers(s.n, s.k) {
        let v = kb.param(&format!("{role}_{name}"), elem, ro(Some(len)));
        binds.push(Binding::Packed { role: role.into(), buffer: name.into() });
        let slot = match name {
            "codes" => &mut p.codes,
            "scale" => &mut p.scale,
            "offset" => &mut p.offset,
            "table" => &mut p.table,
            "perm" => &mut p.perm,
            "cb_codes" => &mut p.cb_codes,
            _ => &mut p.codebooks,
        };
        *slot = Some(v);
    }
    p
}

fn csr_params(kb: &mut Kb, s: &Spec, role: &str, binds: &mut Vec<Binding>) -> CsrParams {
    let mut one = |name: &str, elem: Scalar, len: Option<usize>| {
        binds.push(Binding::Packed { role: role.into(), buffer: name.into() });
        kb.param(&format!("{role}_{name}"), elem, ro(len))
    };
    CsrParams {
        row_ptr: one("row_ptr", Scalar::I32, Some(s.n + 1)),
        col: one("col", Scalar::I32, None),
        val: one("val", Scalar::F32, None),
    }
}

/// Declare the parameters in binding order: x, residual, w…, outliers…, bias, up…,
/// up_outliers…, the had_K table, scratch (GPU with out_act), y.
pub(super) fn params(kb: &mut Kb, s: &Spec, scratch: bool) -> (Params, Vec<Binding>) {
    let mut b = Vec::new();
    let x = kb.param("x", s.x_elem, ro(Some(s.t * s.k)));
    b.push(Binding::Operand { role: "x".into() });
    let residual = s.residual.then(|| {
        b.push(Binding::Operand { role: "residual".into() });
        kb.param("residual", s.out_elem, ro(Some(s.t * s.n)))
    });
    let w = weight_params(kb, s, "w", s.w, &mut b);
    let out_w = s.outliers.then(|| csr_params(kb, s, "outliers", &mut b));
    let bias = s.bias.then(|| {
        b.push(Binding::Packed { role: "bias".into(), buffer: "bias".into() });
        kb.param("bias", Scalar::F32, ro(Some(s.n)))
    });
    let up = s.up.map(|f| weight_params(kb, s, "up", f, &mut b));
    let out_up = s.up_outliers.then(|| csr_params(kb, s, "up_outliers", &mut b));
    let had = match s.rot {
        Some((hk, tr)) if hk > 1 => {
            let signs = qkc_quant::hadamard::had_k_table(hk).unwrap_or_default();
            let scale = 1.0 / (s.k as f64).sqrt();
            let data: Vec<u8> = (0..hk * hk)
                .flat_map(|i| {
                    let (a, c) = (i / hk, i % hk);
                    let sg = if tr { signs[c * hk + a] } else { signs[a * hk + c] };
                    ((f64::from(sg) * scale) as f32).to_le_bytes()
                })
                .collect();
            b.push(Binding::Const {
                name: format!("had{hk}{}", if tr { "t" } else { "" }),
                elem: Scalar::F32,
                data,
            });
            Some(kb.param("had", Scalar::F32, ro(Some(hk * hk))))
        }
        _ => None,
    };
    let scratch = scratch.then(|| {
        b.push(Binding::Scratch { bytes: (4 * s.t * s.n) as u64 });
        kb.param(
            "scratch",
            Scalar::F32,
            ParamAttrs { noalias: true, len: Some((s.t * s.n) as u64), ..ParamAttrs::default() },
        )
    });
    let y = kb.param(
        "y",
        s.out_elem,
        ParamAttrs {
            noalias: true,
            readonly: false,
            writeonly: out_writeonly(s),
            len: Some((s.t * s.n) as u64),
        },
    );
    b.push(Binding::Output);
    (Params { x, residual, w, up, out_w, out_up, bias, had, scratch, y }, b)
}

fn out_writeonly(_s: &Spec) -> bool {
    true
}

/// A block-shared (or chunk-serial) loop `for i = start to hi step step`.
pub(super) struct Par {
    pub start: Value,
    pub step: Value,
    pub sync: bool,
}

impl Par {
    pub(super) fn each(&self, kb: &mut Kb, hi: i64, body: impl FnOnce(&mut Kb, Value) -> R<()>) -> R<()> {
        let h = kb.ci(hi);
        kb.for_(self.start, h, self.step, &[], |kb, i, _| {
            body(kb, i)?;
            Ok(vec![])
        })?;
        if self.sync {
            kb.barrier();
        }
        Ok(())
    }
}

/// `H_K` (or its transpose) on `buf[base .. base + K]` in place: FWHT over the `hk` rows of
/// length `m = K/hk`, then the had_K step through `tmp` (a thread's `ceil(K/step)` slots).
pub(super) fn rotate(
    kb: &mut Kb,
    s: &Spec,
    p: &Params,
    par: &Par,
    buf: Value,
    tmp: Option<Value>,
    base: Value,
) -> R<()> {
    let Some((hk, _)) = s.rot else { return Ok(()) };
    let k = s.k;
    let m = k / hk;
    let lm = m.trailing_zeros() as i64;
    let scale = kb.cf((1.0 / (k as f64).sqrt()) as f32);
    for st in 0..lm {
        let h = 1i64 << st;
        let last = st == lm - 1 && hk == 1;
        par.each(kb, (k / 2) as i64, |kb, pi| {
            let sh = kb.ci(st);
            let sh1 = kb.ci(st + 1);
            let hi = kb.bin(BinaryOp::Lshr, pi, sh);
            let hi = kb.bin(BinaryOp::Shl, hi, sh1);
            let mk = kb.ci(h - 1);
            let lo = kb.bin(BinaryOp::And, pi, mk);
            let i0 = kb.add(hi, lo);
            let i = kb.add(i0, base);
            let j = kb.addi(i, h);
            let a = kb.load(buf, i, Type::F32);
            let b = kb.load(buf, j, Type::F32);
            let mut u = kb.add(a, b);
            let mut v = kb.sub(a, b);
            if last {
                u = kb.mul(u, scale);
                v = kb.mul(v, scale);
            }
            kb.store(u, buf, i);
            kb.store(v, buf, j);
            Ok(())
        })?;
    }
    if m == 1 && hk == 1 {
        return Ok(());
    }
    let (Some(had), Some(tmp)) = (p.had, tmp) else { return Ok(()) };
    // tmp[slot] = Σ_b had[a·hk + b] · buf[b·m + c] for idx = a·m + c owned by this thread
    let step = par.step;
    par.each(kb, k as i64, |kb, idx| {
        let cm = kb.ci(m as i64);
        let a = kb.bin(BinaryOp::Udiv, idx, cm);
        let c = kb.bin(BinaryOp::Urem, idx, cm);
        let zero = kb.cf(0.0);
        let hrow = kb.muli(a, hk as i64);
        let bc = kb.add(base, c);
        let acc = kb.for_n(0, hk as i64, &[zero], |kb, bb, acc| {
            let hi = kb.add(hrow, bb);
            let hv = kb.load(had, hi, Type::F32);
            let xi = kb.mad(bb, m as i64, bc);
            let xv = kb.load(buf, xi, Type::F32);
            Ok(vec![kb.fma(hv, xv, acc[0])])
        })?;
        let off = kb.sub(idx, par.start);
        let slot = kb.bin(BinaryOp::Udiv, off, step);
        kb.store(acc[0], tmp, slot);
        Ok(())
    })?;
    par.each(kb, k as i64, |kb, idx| {
        let off = kb.sub(idx, par.start);
        let slot = kb.bin(BinaryOp::Udiv, off, step);
        let v = kb.load(tmp, slot, Type::F32);
        let d = kb.add(base, idx);
        kb.store(v, buf, d);
        Ok(())
    })
}

/// (min, max) of `buf[base .. base + len]` over `start, start + step, …`, folded across a warp
/// when `warp` (every lane gets the result). The caller's threads each see the whole range.
fn min_max(
    kb: &mut Kb,
    buf: Value,
    base: Value,
    len: usize,
    start: Value,
    step: Value,
    warp: bool,
) -> R<(Value, Value)> {
    let zero = kb.cf(0.0);
    let hi = kb.ci(len as i64);
    let r = kb.for_(start, hi, step, &[zero, zero], |kb, i, a| {
        let j = kb.add(base, i);
        let v = kb.load(buf, j, Type::F32);
        Ok(vec![kb.bin(BinaryOp::Min, a[0], v), kb.bin(BinaryOp::Max, a[1], v)])
    })?;
    let (mut lo, mut hi) = (r[0], r[1]);
    if warp {
        for m in [16, 8, 4, 2, 1] {
            let l2 = kb.shfl_xor(lo, m);
            let h2 = kb.shfl_xor(hi, m);
            lo = kb.bin(BinaryOp::Min, lo, l2);
            hi = kb.bin(BinaryOp::Max, hi, h2);
        }
    }
    Ok((lo, hi))
}

/// Per-token fake quantization of `buf[base .. base + len]` (the interpreter's
/// `quantize_act`): the range by `(rstart, rstep, warp)` (every thread computes it), then the
/// elements by `par`; each result goes through `emit(kb, index, value)`. With `a.group = g`
/// (g divides `len`: [`super::spec`] checks it) a loop over the token's groups quantizes each
/// `g` elements with their own range.
#[expect(clippy::too_many_arguments, reason = "a loop nest's bounds, spelled out")]
pub(super) fn act_quant(
    kb: &mut Kb,
    a: ActQuant,
    buf: Value,
    base: Value,
    len: usize,
    range: (Value, Value, bool),
    par: &Par,
    emit: impl FnOnce(&mut Kb, Value, Value) -> R<()>,
) -> R<()> {
    match a.group.map(|g| g as usize) {
        Some(g) if g > 0 && g < len && len % g == 0 => {
            kb.for_n(0, (len / g) as i64, &[], |kb, gi, _| {
                let off = kb.muli(gi, g as i64);
                let gb = kb.add(base, off);
                act_quant_range(kb, a, buf, gb, g, range, par, |kb, i, y| {
                    let i = kb.add(off, i);
                    emit(kb, i, y)
                })?;
                Ok(vec![])
            })?;
            Ok(())
        }
        _ => act_quant_range(kb, a, buf, base, len, range, par, emit),
    }
}

/// [`act_quant`] with one range over `buf[base .. base + len]`.
#[expect(clippy::too_many_arguments, reason = "a loop nest's bounds, spelled out")]
fn act_quant_range(
    kb: &mut Kb,
    a: ActQuant,
    buf: Value,
    base: Value,
    len: usize,
    range: (Value, Value, bool),
    par: &Par,
    emit: impl FnOnce(&mut Kb, Value, Value) -> R<()>,
) -> R<()> {
    let (lo, hi) = min_max(kb, buf, base, len, range.0, range.1, range.2)?;
    if par.sync {
        kb.barrier();
    }
    let zero = kb.cf(0.0);
    let (s, z, qlo, qhi) = if a.sym {
        let qmax = ((1u32 << (a.bits - 1)) - 1) as f32;
        let nlo = kb.un(crate::ops::UnaryOp::Neg, lo);
        let amax = kb.bin(BinaryOp::Max, nlo, hi);
        let q = kb.cf(qmax);
        let s = kb.bin(BinaryOp::Div, amax, q);
        (s, zero, kb.cf(-qmax - 1.0), q)
    } else {
        let qmax = ((1u32 << a.bits) - 1) as f32;
        let q = kb.cf(qmax);
        let d = kb.sub(hi, lo);
        let s = kb.bin(BinaryOp::Div, d, q);
        let nlo = kb.un(crate::ops::UnaryOp::Neg, lo);
        let zq = kb.bin(BinaryOp::Div, nlo, s);
        let zr = kb.round_away(zq);
        let pos = kb.fcmp(FloatCC::Ogt, s, zero);
        let z = kb.select(pos, zr, zero);
        (s, z, zero, q)
    };
    let pos = kb.fcmp(FloatCC::Ogt, s, zero);
    let zs = kb.mul(z, s);
    par.each(kb, len as i64, |kb, i| {
        let j = kb.add(base, i);
        let v = kb.load(buf, j, Type::F32);
        let d = kb.bin(BinaryOp::Div, v, s);
        let r = kb.round_away(d);
        let r = kb.add(r, z);
        let c = kb.bin(BinaryOp::Max, r, qlo);
        let c = kb.bin(BinaryOp::Min, c, qhi);
        let y = kb.mul(c, s);
        let y = kb.sub(y, zs);
        let y = kb.select(pos, y, zero);
        emit(kb, i, y)
    })
}

/// The epilogue of one token: `y (+ bias)`, SiLU gate with `u`, `+ residual`; returns y.
pub(super) fn epilogue(
    kb: &mut Kb,
    s: &Spec,
    p: &Params,
    row: Value,
    t: usize,
    y: Value,
    u: Option<Value>,
) -> Value {
    let mut y = y;
    if let Some(b) = p.bias {
        let bv = kb.load(b, row, Type::F32);
        y = kb.add(y, bv);
    }
    if let Some(u) = u {
        let sy = kb.silu(y);
        y = kb.mul(sy, u);
    }
    if let Some(r) = p.residual {
        let i = kb.addi(row, (t * s.n) as i64);
        let rv = kb.load_act(r, i, s.out_elem);
        y = kb.add(y, rv);
    }
    y
}

/// Code value `q` (i32 or `<4 x i32>`, already masked) to a weight with stats `sc` / `off`
/// (affine) or table base `tb` (per lane for vectors).
pub(super) fn dequant_scalar(
    kb: &mut Kb,
    w: &WParams,
    q: Value,
    sc: Option<Value>,
    off: Option<Value>,
    tb: Option<Value>,
) -> Value {
    let Form::Codes { dq, .. } = w.form else { return q };
    match dq {
        Dq::Affine => {
            let qf = kb.cast(CastOp::Sitofp, q, Type::F32);
            match (sc, off) {
                (Some(s), Some(m)) => kb.fma(qf, s, m),
                _ => qf,
            }
        }
        Dq::Table { scaled, .. } => {
            let idx = match tb {
                Some(b) => kb.add(b, q),
                None => q,
            };
            let v = match w.table {
                Some(t) => kb.load(t, idx, Type::F32),
                None => kb.cf(0.0),
            };
            match (scaled, sc) {
                (true, Some(s)) => kb.mul(v, s),
                _ => v,
            }
        }
    }
}
