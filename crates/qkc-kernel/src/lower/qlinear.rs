//! Lowering of `qlinear`: every weight scheme, the online Hadamard prologue, activation
//! quantization, CSR outliers and the bias / SiLU-gate / residual / output-quant epilogues, for
//! the CPU (Cranelift) and the GPU (NVPTX).
//!
//! # Design
//!
//! Weights are packed once at load ([`pack`]) into one of three *kernel forms* ([`form`]), so a
//! handful of inner loops cover every scheme:
//!
//! - **affine codes** `w = s·q + m` per (row, group): uniform int (GPTQ/AWQ/RTN, sym/asym,
//!   act-order via a column permutation), SpQR (second-level stats expanded to f32 at load;
//!   `:perm` reads x through its `in_perm` like act-order),
//!   binary (`s = 2α, m = −α`) and ternary (`s = α, m = −α`);
//! - **table codes** `w = [s·] T[q]`: SqueezeLLM (one table per row), NF4/FP4 (one fixed table,
//!   absmax per block, double quant expanded at load), BiLLM (an 8-entry table per row and group
//!   indexed by `b1 + 2·b2 + 4·salient`);
//! - **additive codebooks** (AQLM): codes, f32 codebooks, a scale per output group.
//!
//! Codes of the first two forms live in 4-bit containers (8 per u32, LSB first along K; codes
//! of 5–8 bits in bytes, 4 per word), rows contiguous, so one 16-byte load holds 32 (or 16)
//! consecutive codes. The generators are Rust over [`crate::Builder`] ([`cpu`], [`gpu`]): the
//! combinations (T tokens, two weights for the gate, optional epilogues) are too many for text
//! templates with fixed holes.
//!
//! - CPU ([`cpu`]): each chunk owns a contiguous slice of rows. The prologue (once per chunk)
//!   converts x to f32 in local memory, applies the Hadamard (FWHT stages + the had_K step from a
//!   constant sign table) and the activation quantizer, then permutes x per 16-byte code vector
//!   (`xp[B·b + 4j + l] = x[B·b + cpw·l + j]`) so code j of the four words of a load meets one
//!   aligned `<4 x f32>` of x. The main loop: one `<4 x i32>` load per 32 codes, shift/and/convert
//!   per code position, dequant with per-lane stats, one fma per token.
//! - GPU ([`gpu`]): one warp per row (grid-stride over rows), each lane takes 16-byte code
//!   vectors `lane, lane + 32, …` (evict-first loads), f32 accumulation, lanes also split the
//!   row's outliers, a shuffle-xor tree sums the warp, lane 0 runs the epilogue. A rotated or
//!   quantized x (or an act-order one) is prepared once per block in shared memory as f32
//!   (`T·K·4 ≤ 48 KiB`, else the node is rejected); otherwise x is read from global memory.
//! - `out_act` needs every output of a token before quantizing it, so those kernels run as one
//!   chunk (CPU) or one block (GPU, pre-quantization values in a scratch buffer).

mod common;
mod cpu;
mod form;
mod gpu;
mod kb;
mod prep;

use qkc_ir::ops::{ActQuant, QLinearAttrs, RotKind};
use qkc_ir::{DType, Graph, NodeId, Op, Type};
use qkc_quant::Scheme;

use super::{unsupported, Binding, LowerError, LowerOptions, LowerTarget, Lowered, PackedBuffer, WeightData};
use crate::types::Scalar;
use form::Form;

/// Everything the generators need to know about one `qlinear` node.
#[derive(Clone, Debug)]
pub(crate) struct Spec {
    /// Output rows.
    pub n: usize,
    /// Reduction length.
    pub k: usize,
    /// Tokens.
    pub t: usize,
    /// dtype of x.
    pub x_elem: Scalar,
    /// dtype of the output (and of the residual).
    pub out_elem: Scalar,
    /// Hadamard rotation of x: (had_K order, transpose).
    pub rot: Option<(usize, bool)>,
    /// Activation quantization of the rotated x.
    pub act: Option<ActQuant>,
    /// Quantization of the output.
    pub out_act: Option<ActQuant>,
    /// The main weight.
    pub w: Form,
    /// The `up` weight (gate = silu).
    pub up: Option<Form>,
    /// Outliers of w / of up.
    pub outliers: bool,
    /// Outliers of up.
    pub up_outliers: bool,
    /// Bias present.
    pub bias: bool,
    /// Residual present.
    pub residual: bool,
}

fn float_elem(d: DType) -> Option<Scalar> {
    match d {
        DType::F32 => Some(Scalar::F32),
        DType::F16 => Some(Scalar::F16),
        _ => None,
    }
}

fn scheme_of(g: &Graph, id: NodeId, role: &str) -> Option<(Scheme, usize, usize)> {
    let w = g.operand(id, role)?;
    match &g.node(w).ty {
        Type::Quant { scheme, shape } => {
            let d = shape.resolve(1);
            (d.len() == 2).then(|| (*scheme, d[0], d[1]))
        }
        _ => None,
    }
}

fn attrs(g: &Graph, id: NodeId) -> Result<QLinearAttrs, LowerError> {
    match &g.node(id).op {
        Op::Qlinear(q) => Ok(*q),
        _ => Err(unsupported(g, id, "not a qlinear node")),
    }
}

/// Analyze a node: shapes, dtypes, forms, and every rejection the kernels need.
pub(crate) fn spec(g: &Graph, id: NodeId, opts: &LowerOptions) -> Result<Spec, LowerError> {
    let q = attrs(g, id)?;
    let bad = |r: String| unsupported(g, id, r);
    let xid = g.operand(id, "x").ok_or_else(|| bad("no `x` operand".into()))?;
    let x_elem = g.node(xid).ty.dtype().and_then(float_elem);
    let out_elem = g.node(id).ty.dtype().and_then(float_elem);
    let (Some(x_elem), Some(out_elem)) = (x_elem, out_elem) else {
        return Err(bad("x and the output must be f32 or f16".into()));
    };
    let (scheme, n, k) =
        scheme_of(g, id, "w").ok_or_else(|| bad("`w` is not a quantized [N, K] weight".into()))?;
    if opts.tokens == 0 {
        return Err(bad("T = 0 tokens".into()));
    }
    if let Err(e) = scheme.check_shape(n, k) {
        return Err(bad(e));
    }
    let w = form::of(scheme, n, k).map_err(bad)?;
    let up = match (q.silu_gate, scheme_of(g, id, "up")) {
        (true, Some((s, un, uk))) if (un, uk) == (n, k) => {
            s.check_shape(n, k).map_err(bad)?;
            Some(form::of(s, n, k).map_err(bad)?)
        }
        (true, _) => return Err(bad("gate = silu needs a quantized `up` weight of the same shape".into())),
        (false, _) => None,
    };
    if k % 32 != 0 {
        return Err(bad(format!("K = {k} is not a multiple of 32 (the kernels read 32-code vectors)")));
    }
    let rot = match q.rotate {
        None => None,
        Some(r) if r.kind == RotKind::Dense => {
            return Err(bad("dense (learned) rotations have no qlinear kernel yet; only hadamard".into()))
        }
        Some(r) => {
            let hk = qkc_quant::hadamard::get_hadk(k).map_err(|e| bad(e.to_string()))?;
            Some((hk, r.transpose))
        }
    };
    for (a, len, axis) in [(q.act, k, "K"), (q.out_act, n, "N")] {
        let Some(a) = a else { continue };
        if !(2..=8).contains(&a.bits) {
            return Err(bad(format!("activation quantization to {} bits (2..=8 supported)", a.bits)));
        }
        if let Some(g) = a.group {
            if g == 0 || len % g as usize != 0 {
                return Err(bad(format!("activation quantization group {g} does not divide {axis} = {len}")));
            }
        }
    }
    let s = Spec {
        n,
        k,
        t: opts.tokens,
        x_elem,
        out_elem,
        rot,
        act: q.act,
        out_act: q.out_act,
        w,
        up,
        outliers: g.operand(id, "outliers").is_some(),
        up_outliers: g.operand(id, "up_outliers").is_some(),
        bias: g.operand(id, "bias").is_some(),
        residual: g.operand(id, "residual").is_some(),
    };
    Ok(s)
}

/// Outlier density the graph declares (for `bytes_read`), 0.5% when unspecified.
fn density(g: &Graph, id: NodeId, role: &str) -> f64 {
    g.operand(id, role)
        .and_then(|s| match &g.node(s).op {
            Op::Weight { density, .. } => *density,
            _ => None,
        })
        .unwrap_or(0.005)
}

/// The CPU fast path `gemv_u4_cpu_a8` (templates/kir): int4 symmetric weights in GPTQ order with
/// groups of 32..=128, int8 symmetric per-token activation quantization, f32 x and output, and
/// no rotation, outliers or epilogue. It is the fused `quantize_act int8` + `qlinear` with
/// integer dot products (4 rows at a time, one stream of 4-row-interleaved codes). The group
/// size when it applies.
fn cpu_a8(g: &Graph, id: NodeId, s: &Spec, opts: &LowerOptions) -> Option<usize> {
    let LowerTarget::Cpu { .. } = opts.target else { return None };
    let (Scheme::Uniform(u), _, _) = scheme_of(g, id, "w")? else { return None };
    let group = match u.group {
        qkc_quant::scheme::Group::Size(gs) if (32..=128).contains(&gs) && gs % 32 == 0 => gs as usize,
        _ => return None,
    };
    let plain = u.bits == 4 && u.sym && !u.act_order && u.packing == qkc_quant::scheme::Packing::Gptq;
    // per-token only: a grouped quantizer has its own template (`cpu_a8g`)
    let act8 = s.act.is_some_and(|a| a.bits == 8 && a.sym && a.group.is_none_or(|g| g as usize == s.k));
    let bare =
        s.rot.is_none() && s.up.is_none() && !s.outliers && !s.bias && !s.residual && s.out_act.is_none();
    (plain && act8 && bare && s.x_elem == Scalar::F32 && s.out_elem == Scalar::F32).then_some(group)
}

/// The CPU fast paths `gemv_u4_cpu_a8g` / `gemv_u8_cpu_a8g` (templates/kir): uniform int weights
/// without act-order, packed as `w = s·q + o` (sym, asym or `:min`) in 4-bit containers (2–4
/// bits) or bytes (5–8 bits), stats groups a multiple of 32 (expanded to one (s, o) per 32-block
/// at load), with int8 symmetric activations quantized per 32-block (`act_group = 32`, ggml's
/// Q8 activations), f32 x and output, T ≥ 1, and no rotation, outliers or epilogue. The stats
/// are read as f32, or as f16 when every one is an f16 value ([`a8g_f16_exact`], decided per node
/// from the weights: GGUF Q4_0/Q4_1/Q8_0; 16 instead of 32 bytes per 4 rows and 32-block). The
/// container bits (4 or 8) when it applies.
fn cpu_a8g(g: &Graph, id: NodeId, s: &Spec, opts: &LowerOptions) -> Option<u32> {
    let LowerTarget::Cpu { .. } = opts.target else { return None };
    let (Scheme::Uniform(u), _, _) = scheme_of(g, id, "w")? else { return None };
    let Form::Codes { cb, group, dq: form::Dq::Affine, perm: false } = s.w else { return None };
    let act8 = s.act.is_some_and(|a| a.bits == 8 && a.sym && a.group == Some(32));
    let bare =
        s.rot.is_none() && s.up.is_none() && !s.outliers && !s.bias && !s.residual && s.out_act.is_none();
    let fits = !u.act_order && group % 32 == 0 && s.k % 32 == 0;
    (fits && act8 && bare && s.x_elem == Scalar::F32 && s.out_elem == Scalar::F32).then_some(cb)
}

/// `f16`: the stats are read as f16 ([`LowerOptions::a8g_f16_stats`]).
fn lower_a8g(
    g: &Graph,
    id: NodeId,
    s: &Spec,
    cb: u32,
    chunks: u32,
    f16: bool,
) -> Result<Lowered, LowerError> {
    // i32 words of stats per (row block, 32-block): 4 rows' (s, o) as f16 pairs or f32
    let sw: u64 = if f16 { 4 } else { 8 };
    let args = crate::template::Args::new()
        .int("K", s.k as i64)
        .int("N", s.n as i64)
        .int("T", s.t as i64)
        .int("CHUNKS", i64::from(chunks))
        .int("SW", sw as i64)
        .snippet("split", "split_u4_bytes")
        .snippet("stats", if f16 { "a8g_stats_f16" } else { "a8g_stats_f32" })
        .snippet("epilogue", "epilogue_none");
    let (k, t, nb) = (s.k as u64, s.t as u64, s.n.div_ceil(4) as u64);
    // codes, the stats per 32-block of 4·⌈N/4⌉ rows (padding rows are read), f32 x
    let bytes_read = nb * 4 * k * u64::from(cb) / 8 + nb * (k / 32) * sw * 4 + t * k * 4;
    let template = if cb == 4 { "gemv_u4_cpu_a8g" } else { "gemv_u8_cpu_a8g" };
    fast_template(g, id, template, &args, ["codes_r4", "stats_r4"], bytes_read)
}

/// Whether node `id` takes the a8g templates ([`cpu_a8g`] or [`cpu_a8g_split`]) and every
/// per-32-block scale and offset [`pack_a8g`] would write for its `w` (and `up`) is finite and
/// an f16 value: then the kernels read them as f16, exactly (GGUF Q4_0/Q4_1/Q8_0 store f16 `d`
/// and `m`). `opts` must have `a8g_f16_stats` false (the decision does not depend on it).
pub(crate) fn a8g_f16_exact<'w>(
    g: &Graph,
    id: NodeId,
    opts: &LowerOptions,
    weight: &dyn Fn(&str) -> Option<WeightData<'w>>,
) -> bool {
    let Ok(s) = main_spec(g, id, opts) else { return false };
    let roles: &[&str] = if cpu_a8g(g, id, &s, opts).is_some() {
        &["w"]
    } else if cpu_a8g_split(g, id, &s, opts).is_some() {
        if s.up.is_some() {
            &["w", "up"]
        } else {
            &["w"]
        }
    } else {
        return false;
    };
    // the per-group stats: [`pack_a8g`] writes each of them (expanded per 32-block) and zeros
    roles.iter().all(|&role| match (weight(role), scheme_of(g, id, role)) {
        (Some(WeightData::Quant(q)), Some((scheme, n, k))) if (q.scheme, q.n, q.k) == (scheme, n, k) => {
            Form::uniform_stats(q).is_ok_and(|(sc, of)| sc.iter().chain(&of).all(|&v| f16_exact(v)))
        }
        _ => false,
    })
}

/// `v` is finite and converts to f16 and back unchanged (bit for bit: −0 stays −0).
fn f16_exact(v: f32) -> bool {
    v.is_finite() && half::f16::from_f32(v).to_f32().to_bits() == v.to_bits()
}

/// The a8g templates have no epilogue beyond a plain store. A `qlinear` whose only extras are
/// a residual add or a SiLU gate with `up` (o_proj / down_proj / gate+up of a Llama block) still
/// takes them: the GEMV(s) run as prologue kernels into node-local buffers and a small
/// elementwise kernel finishes (`y = y_w + residual`; `y = silu(y_w) ⊙ y_up`). A few extra
/// launches of microseconds cost far less than the generic GEMV. The code container width when
/// this applies.
fn cpu_a8g_split(g: &Graph, id: NodeId, s: &Spec, opts: &LowerOptions) -> Option<u32> {
    if !(s.residual || s.up.is_some()) || (s.residual && s.up.is_some()) {
        return None;
    }
    if s.bias || s.outliers || s.up_outliers || s.out_act.is_some() || s.rot.is_some() {
        return None;
    }
    let cb = cpu_a8g(g, id, &bare_gemv(s), opts)?;
    if let Some(up) = s.up {
        // the up weight must take the same template: same form, uniform, not act-order
        let (Scheme::Uniform(u), _, _) = scheme_of(g, id, "up")? else { return None };
        if up != s.w || u.act_order {
            return None;
        }
    }
    Some(cb)
}

/// `s` without its epilogue (what each GEMV of [`cpu_a8g_split`] computes).
fn bare_gemv(s: &Spec) -> Spec {
    let mut b = s.clone();
    b.residual = false;
    b.up = None;
    b.up_outliers = false;
    b
}

/// One op of a tiny graph over `[T, N]` f32 values, lowered for `opts`, its operands rebound by
/// `bind` (op role → binding) and its output to `out`.
fn elementwise(
    src_ops: &str,
    value: &str,
    s: &Spec,
    opts: &LowerOptions,
    bind: &dyn Fn(&str) -> Option<Binding>,
    out: Binding,
) -> Result<Lowered, String> {
    let src = format!(
        "graph @epi {{\n  %a = input \"a\" : f32[T, {n}]\n  %b = input \"b\" : f32[T, {n}]\n{src_ops}  return %{value}\n}}\n",
        n = s.n
    );
    let g: Graph = qkc_ir::parse(&src).map_err(|e| format!("{e:?}"))?;
    let id = g.find(value).ok_or("no value")?;
    let mut l = crate::lower::lower(&g, id, opts).map_err(|e| e.to_string())?;
    for b in &mut l.bindings {
        match b {
            Binding::Operand { role } => {
                *b = bind(role).ok_or_else(|| format!("unexpected operand `{role}`"))?;
            }
            Binding::Output => *b = out.clone(),
            _ => {}
        }
    }
    Ok(l)
}

fn lower_a8g_split(
    g: &Graph,
    id: NodeId,
    s: &Spec,
    cb: u32,
    chunks: u32,
    opts: &LowerOptions,
) -> Result<Lowered, LowerError> {
    let terr = |reason: String| LowerError::Template {
        value: g.node(id).name.clone(),
        template: "qlinear a8g epilogue".into(),
        reason,
    };
    let len = (s.t * s.n) as u64;
    let temp = |name: &str| Binding::Temp { name: name.into(), elem: Scalar::F32, len };
    let bare = bare_gemv(s);
    let gemv = |role: &str, out: &str| -> Result<Lowered, LowerError> {
        let mut l = lower_a8g(g, id, &bare, cb, chunks, opts.a8g_f16_stats)?;
        for b in &mut l.bindings {
            match b {
                Binding::Packed { role: r, .. } => *r = role.into(),
                Binding::Output => *b = temp(out),
                _ => {}
            }
        }
        Ok(l)
    };
    let mut pre = vec![gemv("w", "y_w")?];
    let mut main = if s.residual {
        elementwise(
            "  %y = add(%a, %b) : f32[T, N]\n".replace('N', &s.n.to_string()).as_str(),
            "y",
            s,
            opts,
            &|r| match r {
                "a" => Some(temp("y_w")),
                "b" => Some(Binding::Operand { role: "residual".into() }),
                _ => None,
            },
            Binding::Output,
        )
        .map_err(terr)?
    } else {
        pre.push(gemv("up", "y_up")?);
        pre.push(
            elementwise(
                "  %y = silu(%a) : f32[T, N]\n".replace('N', &s.n.to_string()).as_str(),
                "y",
                s,
                opts,
                &|r| (r == "x").then(|| temp("y_w")),
                temp("y_act"),
            )
            .map_err(terr)?,
        );
        elementwise(
            "  %y = mul(%a, %b) : f32[T, N]\n".replace('N', &s.n.to_string()).as_str(),
            "y",
            s,
            opts,
            &|r| match r {
                "a" => Some(temp("y_act")),
                "b" => Some(temp("y_up")),
                _ => None,
            },
            Binding::Output,
        )
        .map_err(terr)?
    };
    main.template = format!("{} + {}", pre[0].template, main.template);
    main.pre = pre;
    Ok(main)
}

/// Codes, scales, offsets: what [`a8g_stats`] returns.
type A8gParts = (Vec<u32>, Vec<f32>, Vec<f32>);

/// The codes (4-row interleaved words) and the scales and offsets of `gemv_u{4,8}_cpu_a8g` (the
/// generic affine packing, [`Form::pack`]: codes in `cb`-bit containers, f32 scale and offset per
/// group), the stats expanded to one per 32-block and interleaved by 4 rows
/// (`[(rb·K/32 + j)·4 + r]`).
fn a8g_stats(f: &Form, q: &qkc_quant::QuantTensor) -> Result<A8gParts, String> {
    let Form::Codes { cb, group, .. } = *f else { return Err("not a code form".into()) };
    let generic = f.pack(q)?;
    let find = |name: &str| generic.iter().find(|b| b.name == name).ok_or(format!("no `{name}` buffer"));
    let words: Vec<u32> =
        find("codes")?.data.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    let (n, k) = (q.n, q.k);
    let (groups, per) = (k / group, group / 32);
    let stats = |name: &str| -> Result<Vec<f32>, String> {
        let v: Vec<f32> =
            find(name)?.data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        if v.len() != n * groups {
            return Err(format!("{} `{name}` values for [{n}, {groups}] groups", v.len()));
        }
        let expanded: Vec<f32> =
            (0..n * k / 32).map(|i| v[(i / (k / 32)) * groups + (i % (k / 32)) / per]).collect();
        Ok(super::layout::interleave_stats_r4(&expanded, n, k / 32))
    };
    let w4 = super::layout::interleave_codes_r4(&words, n, k, cb as usize);
    Ok((w4, stats("scale")?, stats("offset")?))
}

/// `gemv_u{4,8}_cpu_a8g`'s buffers: `codes_r4` and `stats_r4`, per (row block, 32-block) the 4
/// rows' scales then offsets as 8 f32 words, or with `f16` ([`LowerOptions::a8g_f16_stats`],
/// exact values only) 4 words `f16(s_r) | f16(o_r) << 16`.
fn pack_a8g(f: &Form, q: &qkc_quant::QuantTensor, f16: bool) -> Result<Vec<PackedBuffer>, String> {
    let (w4, s, o) = a8g_stats(f, q)?;
    let mut st: Vec<u32> = Vec::with_capacity(s.len() * if f16 { 1 } else { 2 });
    for (s4, o4) in s.chunks_exact(4).zip(o.chunks_exact(4)) {
        if f16 {
            for (&sv, &ov) in s4.iter().zip(o4) {
                if !f16_exact(sv) || !f16_exact(ov) {
                    return Err(format!(
                        "stats ({sv}, {ov}) are not f16 values but the lowering reads them as f16 (options \
                         not from `node_options` of these weights)"
                    ));
                }
                let h = |v: f32| u32::from(half::f16::from_f32(v).to_bits());
                st.push(h(sv) | h(ov) << 16);
            }
        } else {
            st.extend(s4.iter().chain(o4).map(|v| v.to_bits()));
        }
    }
    let words = |name: &str, v: &[u32]| PackedBuffer {
        name: name.into(),
        elem: Scalar::I32,
        data: v.iter().flat_map(|w| w.to_le_bytes()).collect(),
    };
    Ok(vec![words("codes_r4", &w4), words("stats_r4", &st)])
}

/// A fast path: instantiate `template` with `args`; it reads the packed buffers `w.<buffers>`,
/// then x, then writes y.
fn fast_template(
    g: &Graph,
    id: NodeId,
    template: &str,
    args: &crate::template::Args,
    buffers: [&str; 2],
    bytes_read: u64,
) -> Result<Lowered, LowerError> {
    let terr = |reason: String| LowerError::Template {
        value: g.node(id).name.clone(),
        template: template.into(),
        reason,
    };
    let lib = crate::template::builtin().map_err(|e| terr(e.to_string()))?;
    let kernel = lib.instantiate(template, args).map_err(|e| terr(e.to_string()))?.kernel;
    let mut bindings: Vec<Binding> =
        buffers.iter().map(|b| Binding::Packed { role: "w".into(), buffer: (*b).into() }).collect();
    bindings.push(Binding::Operand { role: "x".into() });
    bindings.push(Binding::Output);
    Ok(Lowered { kernel, bindings, template: template.into(), bytes_read, pre: Vec::new() })
}

fn lower_a8(g: &Graph, id: NodeId, s: &Spec, group: usize, chunks: u32) -> Result<Lowered, LowerError> {
    let args = crate::template::Args::new()
        .int("K", s.k as i64)
        .int("N", s.n as i64)
        .int("T", s.t as i64)
        .int("GROUP", group as i64)
        .int("CHUNKS", i64::from(chunks))
        .snippet("split", "split_u4_bytes")
        .snippet("epilogue", "epilogue_none");
    let (k, t, nb) = (s.k as u64, s.t as u64, s.n.div_ceil(4) as u64);
    // codes and f32 scales of 4·⌈N/4⌉ rows (padding rows included: they are read), x in f32
    let bytes_read = nb * 4 * k / 2 + nb * 4 * (k / group as u64) * 4 + t * k * 4;
    fast_template(g, id, "gemv_u4_cpu_a8", &args, ["codes_r4", "scales_r4"], bytes_read)
}

/// The GPU fast path `gemv_u4_gpu_r2` (templates/kir): int4 symmetric weights in GPTQ order
/// (read exactly as stored: no repacking, f16 scales), groups a multiple of 32, f16 x, T ≤ 8,
/// and no rotation, activation quantization, outliers or epilogue. The group size when it
/// applies.
fn gpu_r2(g: &Graph, id: NodeId, s: &Spec, opts: &LowerOptions) -> Option<usize> {
    let LowerTarget::Gpu { .. } = opts.target else { return None };
    let (Scheme::Uniform(u), _, _) = scheme_of(g, id, "w")? else { return None };
    let group = match u.group {
        qkc_quant::scheme::Group::Size(gs) if gs % 32 == 0 => gs as usize,
        _ => return None,
    };
    let plain = u.bits == 4 && u.sym && !u.act_order && u.packing == qkc_quant::scheme::Packing::Gptq;
    let bare = s.rot.is_none()
        && s.act.is_none()
        && s.up.is_none()
        && !s.outliers
        && !s.bias
        && !s.residual
        && s.out_act.is_none();
    (plain && bare && s.x_elem == Scalar::F16 && s.t <= 8).then_some(group)
}

/// (row pairs per block, warps per row pair) for `gemv_u4_gpu_r2`. Measured on the H100
/// (benches/gpu_r2_shape_sweep.txt, batch 1): layers with N ≥ 12288 fill the GPU with one warp
/// per row pair; smaller ones gain 8–14 points from splitting K while every warp keeps at least
/// four 1024-code steps (70B down 92%, 8B down 78%, 7B down 72%); four warps per block.
pub(crate) fn r2_shape(n: usize, k: usize) -> (i64, i64) {
    let steps = k as f64 / 1024.0;
    let mut ksplit = 1usize;
    if n < 12288 {
        while ksplit < 8 && steps / (2 * ksplit) as f64 >= 4.0 {
            ksplit *= 2;
        }
    }
    ((4 / ksplit).max(1) as i64, ksplit as i64)
}

fn lower_r2(g: &Graph, id: NodeId, s: &Spec, group: usize) -> Result<Lowered, LowerError> {
    let (pairs, ksplit) = r2_shape(s.n, s.k);
    let (yt, cvt, align) = match s.out_elem {
        Scalar::F16 => (Scalar::F16, "cvt_f16", 2),
        _ => (Scalar::F32, "epilogue_none", 4),
    };
    let args = crate::template::Args::new()
        .int("K", s.k as i64)
        .int("N", s.n as i64)
        .int("T", s.t as i64)
        .int("GROUP", group as i64)
        .int("PAIRS", pairs)
        .int("KSPLIT", ksplit)
        .int("YALIGN", align)
        .ty("YT", crate::types::Type::Scalar(yt))
        .snippet("dequant", "dequant_u4_h2")
        .snippet("cvt", cvt);
    let (n, k, t) = (s.n as u64, s.k as u64, s.t as u64);
    let bytes_read = n * k / 2 + n * (k / group as u64) * 2 + t * k * 2;
    fast_template(g, id, "gemv_u4_gpu_r2", &args, ["qweight", "scales"], bytes_read)
}

/// The GPU fast path `gemv_lut3_gpu_r2` (templates/kir): SqueezeLLM 3-bit tables, f16 x (so the
/// f16 table entries and half2 products are the precision the graph declares), T ≤ 8, CSR
/// outliers fused or none, and no activation quantization, bias, gate, residual or output
/// quantization (a rotation runs as the prologue).
fn gpu_lut3(g: &Graph, id: NodeId, s: &Spec, opts: &LowerOptions) -> bool {
    let LowerTarget::Gpu { .. } = opts.target else { return false };
    let Some((Scheme::Lut { bits: 3 }, _, _)) = scheme_of(g, id, "w") else { return false };
    let bare =
        s.rot.is_none() && s.act.is_none() && s.up.is_none() && !s.bias && !s.residual && s.out_act.is_none();
    bare && s.x_elem == Scalar::F16 && s.t <= 8 && s.k % 32 == 0
}

fn lower_lut3(g: &Graph, id: NodeId, s: &Spec) -> Result<Lowered, LowerError> {
    let ksplit: i64 = if s.n < 12288 && s.k >= 8192 {
        4
    } else if s.n < 12288 {
        2
    } else {
        1
    };
    let (yt, cvt, align) = match s.out_elem {
        Scalar::F16 => (Scalar::F16, "cvt_f16", 2),
        _ => (Scalar::F32, "epilogue_none", 4),
    };
    let args = crate::template::Args::new()
        .int("K", s.k as i64)
        .int("N", s.n as i64)
        .int("T", s.t as i64)
        .int("KSPLIT", ksplit)
        .int("YALIGN", align)
        .ty("YT", crate::types::Type::Scalar(yt))
        .snippet("cvt", cvt);
    let template = "gemv_lut3_gpu_r2";
    let terr = |reason: String| LowerError::Template {
        value: g.node(id).name.clone(),
        template: template.into(),
        reason,
    };
    let lib = crate::template::builtin().map_err(|e| terr(e.to_string()))?;
    let kernel = lib.instantiate(template, &args).map_err(|e| terr(e.to_string()))?.kernel;
    let mut bindings = vec![
        Binding::Packed { role: "w".into(), buffer: "pairs".into() },
        Binding::Packed { role: "w".into(), buffer: "lut_f16".into() },
    ];
    let (n, k, t) = (s.n as u64, s.k as u64, s.t as u64);
    let mut bytes_read = n * k / 2 + n * 16 + t * k * 2;
    bytes_read += table_tail(g, id, s, &mut bindings);
    Ok(Lowered { kernel, bindings, template: template.into(), bytes_read, pre: Vec::new() })
}

/// The GPU fast path `gemv_nf4_gpu_r2` (templates/kir): bitsandbytes NF4/FP4 (a fixed 16-entry
/// table, absmax per block, double quant expanded at load) with groups of 32k codes, f16 x,
/// T ≤ 8, CSR outliers fused or none, no other epilogue. The group size when it applies.
fn gpu_nf4(g: &Graph, id: NodeId, s: &Spec, opts: &LowerOptions) -> Option<usize> {
    let LowerTarget::Gpu { .. } = opts.target else { return None };
    let (Scheme::Fixed(f), _, _) = scheme_of(g, id, "w")? else { return None };
    let group = form::gcd(f.block as usize, s.k);
    let bare =
        s.rot.is_none() && s.act.is_none() && s.up.is_none() && !s.bias && !s.residual && s.out_act.is_none();
    (bare && s.x_elem == Scalar::F16 && s.t <= 8 && group % 32 == 0).then_some(group)
}

/// The bindings of the table templates after the weight's own buffers: the CSR outliers (or an
/// empty CSR), x, y; and the outliers' bytes.
fn table_tail(g: &Graph, id: NodeId, s: &Spec, bindings: &mut Vec<Binding>) -> u64 {
    let (n, k) = (s.n as u64, s.k as u64);
    let mut bytes = 0;
    if s.outliers {
        for b in ["row_ptr", "col", "val"] {
            bindings.push(Binding::Packed { role: "outliers".into(), buffer: b.into() });
        }
        bytes += 4 * (n + 1) + (density(g, id, "outliers") * (n * k) as f64 * 8.0) as u64;
    } else {
        // an empty CSR: every row has no outliers
        bindings.push(Binding::Const {
            name: "row_ptr_empty".into(),
            elem: Scalar::I32,
            data: vec![0; 4 * (s.n + 1)],
        });
        bindings.push(Binding::Const { name: "col_empty".into(), elem: Scalar::I32, data: vec![0; 4] });
        bindings.push(Binding::Const { name: "val_empty".into(), elem: Scalar::F32, data: vec![0; 4] });
    }
    bindings.push(Binding::Operand { role: "x".into() });
    bindings.push(Binding::Output);
    bytes
}

fn lower_nf4(g: &Graph, id: NodeId, s: &Spec, group: usize) -> Result<Lowered, LowerError> {
    let ksplit: i64 = if s.n < 12288 && s.k >= 8192 {
        4
    } else if s.n < 12288 {
        2
    } else {
        1
    };
    let (yt, cvt, align) = match s.out_elem {
        Scalar::F16 => (Scalar::F16, "cvt_f16", 2),
        _ => (Scalar::F32, "epilogue_none", 4),
    };
    let args = crate::template::Args::new()
        .int("K", s.k as i64)
        .int("N", s.n as i64)
        .int("T", s.t as i64)
        .int("GROUP", group as i64)
        .int("KSPLIT", ksplit)
        .int("YALIGN", align)
        .ty("YT", crate::types::Type::Scalar(yt))
        .snippet("cvt", cvt);
    let template = "gemv_nf4_gpu_r2";
    let terr = |reason: String| LowerError::Template {
        value: g.node(id).name.clone(),
        template: template.into(),
        reason,
    };
    let lib = crate::template::builtin().map_err(|e| terr(e.to_string()))?;
    let kernel = lib.instantiate(template, &args).map_err(|e| terr(e.to_string()))?.kernel;
    let mut bindings = vec![
        Binding::Packed { role: "w".into(), buffer: "pairs".into() },
        Binding::Packed { role: "w".into(), buffer: "table_f16".into() },
        Binding::Packed { role: "w".into(), buffer: "scale".into() },
    ];
    let (n, k, t) = (s.n as u64, s.k as u64, s.t as u64);
    let mut bytes_read = n * k / 2 + 32 + n * (k / group as u64) * 4 + t * k * 2;
    bytes_read += table_tail(g, id, s, &mut bindings);
    Ok(Lowered { kernel, bindings, template: template.into(), bytes_read, pre: Vec::new() })
}

/// `gemv_nf4_gpu_r2`'s layout: a byte per pair of adjacent codes (qa | qb << 4; qkc stores the
/// even code in the high nibble), the table as f16 (the precision of the f16 activations), the
/// per-group f32 scales of the generic packing (double quant expanded).
fn pack_nf4_pairs(q: &qkc_quant::QuantTensor) -> Result<Vec<PackedBuffer>, String> {
    let bytes = &q.part("qweight").map_err(|e| e.to_string())?.bytes;
    if bytes.len() * 2 < q.n * q.k {
        return Err(format!("{} code bytes for {} weights", bytes.len(), q.n * q.k));
    }
    let pairs: Vec<u8> = bytes[..q.n * q.k / 2].iter().map(|&b| (b >> 4) | ((b & 15) << 4)).collect();
    let generic = form::of(q.scheme, q.n, q.k)?.pack(q)?;
    let find =
        |name: &str| generic.iter().find(|b| b.name == name).cloned().ok_or(format!("no `{name}` buffer"));
    let table = find("table")?;
    let table_f16: Vec<u8> = table
        .data
        .chunks_exact(4)
        .flat_map(|c| half::f16::from_f32(f32::from_le_bytes([c[0], c[1], c[2], c[3]])).to_le_bytes())
        .collect();
    Ok(vec![
        PackedBuffer { name: "pairs".into(), elem: Scalar::I32, data: pairs },
        PackedBuffer { name: "table_f16".into(), elem: Scalar::F16, data: table_f16 },
        find("scale")?,
    ])
}

/// On the GPU, a rotation or activation quantization of x runs as prologue kernels
/// ([`prep`]) and the GEMV reads the prepared x: this is the GEMV's spec (no rotation, no
/// act-quant, x in f16 when the fast int4 kernel takes it and x was f16, else f32).
fn gpu_main_spec(g: &Graph, id: NodeId, s: &Spec, opts: &LowerOptions) -> Option<Spec> {
    let LowerTarget::Gpu { .. } = opts.target else { return None };
    if s.rot.is_none() && s.act.is_none() {
        return None;
    }
    let mut m = s.clone();
    m.rot = None;
    m.act = None;
    m.x_elem = Scalar::F16;
    if s.x_elem != Scalar::F16
        || (gpu_r2(g, id, &m, opts).is_none()
            && !gpu_lut3(g, id, &m, opts)
            && gpu_nf4(g, id, &m, opts).is_none())
    {
        m.x_elem = Scalar::F32;
    }
    Some(m)
}

/// The spec of the kernel that reads the weights (the GEMV, after any prologue).
fn main_spec(g: &Graph, id: NodeId, opts: &LowerOptions) -> Result<Spec, LowerError> {
    let s = spec(g, id, opts)?;
    Ok(gpu_main_spec(g, id, &s, opts).or_else(|| cpu_main_spec(&s, opts)).unwrap_or(s))
}

fn lower_gpu_prepped(
    g: &Graph,
    id: NodeId,
    s: &Spec,
    m: Spec,
    opts: &LowerOptions,
) -> Result<Lowered, LowerError> {
    let base = format!("qlinear_{}", g.node(id).name.replace(|c: char| !c.is_ascii_alphanumeric(), "_"));
    let terr = |reason: String| LowerError::Template {
        value: g.node(id).name.clone(),
        template: "qlinear prologue".into(),
        reason,
    };
    let e = m.x_elem;
    let mut pre = Vec::new();
    match (s.rot, s.act) {
        (Some(_), None) => {
            pre.push(prep::rotation(s, &format!("{base}_rot"), e, "x_prep").map_err(|x| terr(x.to_string()))?)
        }
        (Some(_), Some(a)) => {
            pre.push(
                prep::rotation(s, &format!("{base}_rot"), Scalar::F32, "x_rot")
                    .map_err(|x| terr(x.to_string()))?,
            );
            pre.push(prep::act_quant(s, a, Scalar::F32, Some("x_rot"), e, "x_prep", opts).map_err(terr)?);
        }
        (None, Some(a)) => pre.push(prep::act_quant(s, a, s.x_elem, None, e, "x_prep", opts).map_err(terr)?),
        (None, None) => return Err(terr("no prologue needed".into())),
    }
    let mut main = if let Some(group) = gpu_r2(g, id, &m, opts) {
        lower_r2(g, id, &m, group)?
    } else if gpu_lut3(g, id, &m, opts) {
        lower_lut3(g, id, &m)?
    } else if let Some(group) = gpu_nf4(g, id, &m, opts) {
        lower_nf4(g, id, &m, group)?
    } else {
        lower_spec(g, id, &m, opts)?
    };
    for b in &mut main.bindings {
        if matches!(b, Binding::Operand { role } if role == "x") {
            *b = Binding::Temp { name: "x_prep".into(), elem: e, len: (s.t * s.k) as u64 };
        }
    }
    main.pre = pre;
    Ok(main)
}

/// On the CPU, a rotation of x runs once per call as the `rotate` op's kernel (not once per
/// chunk); the GEMV's spec then reads the rotated x in f32 (activation quantization stays in the
/// GEMV, which quantizes per chunk cheaply, so int4 + Hadamard + int8 still takes the a8 path).
fn cpu_main_spec(s: &Spec, opts: &LowerOptions) -> Option<Spec> {
    let LowerTarget::Cpu { .. } = opts.target else { return None };
    s.rot?;
    let mut m = s.clone();
    m.rot = None;
    m.x_elem = Scalar::F32;
    Some(m)
}

fn lower_cpu_prepped(
    g: &Graph,
    id: NodeId,
    s: &Spec,
    m: Spec,
    opts: &LowerOptions,
) -> Result<Lowered, LowerError> {
    let terr = |reason: String| LowerError::Template {
        value: g.node(id).name.clone(),
        template: "qlinear prologue".into(),
        reason,
    };
    let pre = prep::rotation_cpu(s, "x_prep", opts).map_err(terr)?;
    let mut main = lower_spec(g, id, &m, opts)?;
    for b in &mut main.bindings {
        if matches!(b, Binding::Operand { role } if role == "x") {
            *b = Binding::Temp { name: "x_prep".into(), elem: Scalar::F32, len: (s.t * s.k) as u64 };
        }
    }
    main.pre = vec![pre];
    Ok(main)
}

/// Lower one `qlinear` node.
pub(crate) fn lower(g: &Graph, id: NodeId, opts: &LowerOptions) -> Result<Lowered, LowerError> {
    let s = spec(g, id, opts)?;
    if let Some(m) = gpu_main_spec(g, id, &s, opts) {
        return lower_gpu_prepped(g, id, &s, m, opts);
    }
    if let Some(m) = cpu_main_spec(&s, opts) {
        return lower_cpu_prepped(g, id, &s, m, opts);
    }
    lower_spec(g, id, &s, opts)
}

fn lower_spec(g: &Graph, id: NodeId, s: &Spec, opts: &LowerOptions) -> Result<Lowered, LowerError> {
    let s = s.clone();
    if let (Some(group), LowerTarget::Cpu { chunks }) = (cpu_a8(g, id, &s, opts), opts.target) {
        return lower_a8(g, id, &s, group, chunks.max(1));
    }
    if let (Some(cb), LowerTarget::Cpu { chunks }) = (cpu_a8g(g, id, &s, opts), opts.target) {
        return lower_a8g(g, id, &s, cb, chunks.max(1), opts.a8g_f16_stats);
    }
    if let (Some(cb), LowerTarget::Cpu { chunks }) = (cpu_a8g_split(g, id, &s, opts), opts.target) {
        return lower_a8g_split(g, id, &s, cb, chunks.max(1), opts);
    }
    if let Some(group) = gpu_r2(g, id, &s, opts) {
        return lower_r2(g, id, &s, group);
    }
    if gpu_lut3(g, id, &s, opts) {
        return lower_lut3(g, id, &s);
    }
    if let Some(group) = gpu_nf4(g, id, &s, opts) {
        return lower_nf4(g, id, &s, group);
    }
    let name = format!("qlinear_{}", g.node(id).name.replace(|c: char| !c.is_ascii_alphanumeric(), "_"));
    let (kernel, bindings, template) = match opts.target {
        LowerTarget::Cpu { chunks } => cpu::generate(&s, &name, chunks.max(1)),
        LowerTarget::Gpu { .. } => gpu::generate(&s, &name),
    }
    .map_err(|e| LowerError::Template {
        value: g.node(id).name.clone(),
        template: "qlinear generator".into(),
        reason: e.to_string(),
    })?;
    crate::verify::verify(&kernel).map_err(|e| LowerError::Template {
        value: g.node(id).name.clone(),
        template: template.clone(),
        reason: e.to_string(),
    })?;
    let bytes_read = bytes_read(g, id, &s, &bindings);
    Ok(Lowered { kernel, bindings, template, bytes_read, pre: Vec::new() })
}

/// Weights, stats, tables, outliers (estimated from the declared density), constants and
/// activations one launch reads.
fn bytes_read(g: &Graph, id: NodeId, s: &Spec, bindings: &[Binding]) -> u64 {
    let (n, k, t) = (s.n as u64, s.k as u64, s.t as u64);
    let mut total = t * k * u64::from(s.x_elem.bytes());
    for b in bindings {
        total += match b {
            Binding::Operand { role } if role == "residual" => t * n * u64::from(s.out_elem.bytes()),
            Binding::Packed { role, buffer } => match (role.as_str(), buffer.as_str()) {
                ("outliers" | "up_outliers", "row_ptr") => 4 * (n + 1),
                ("outliers" | "up_outliers", _) => (density(g, id, role) * (n * k) as f64 * 4.0) as u64,
                ("bias", _) => 4 * n,
                (role, buf) => {
                    let f = if role == "up" { s.up.as_ref() } else { Some(&s.w) };
                    f.map_or(0, |f| f.buffer_bytes(buf, s.n, s.k))
                }
            },
            Binding::Const { data, .. } => data.len() as u64,
            _ => 0,
        };
    }
    total
}

fn werr(g: &Graph, id: NodeId, role: &str, reason: impl Into<String>) -> LowerError {
    LowerError::Weight { value: g.node(id).name.clone(), role: role.into(), reason: reason.into() }
}

/// Pack a weight operand of a `qlinear` node: `w` and `up` (quantized), `outliers` and
/// `up_outliers` (CSR), `bias` (dense). The residual is an activation, not packed.
pub(crate) fn pack(
    g: &Graph,
    id: NodeId,
    role: &str,
    w: WeightData<'_>,
    opts: &LowerOptions,
) -> Result<Vec<PackedBuffer>, LowerError> {
    attrs(g, id)?;
    let wid = g.operand(id, role).ok_or_else(|| werr(g, id, role, "the node has no such operand"))?;
    let ty = &g.node(wid).ty;
    let dims = ty.shape().resolve(1);
    match (role, w, ty) {
        ("w" | "up", WeightData::Quant(q), Type::Quant { scheme, .. }) => {
            if q.scheme != *scheme || [q.n, q.k] != dims[..] {
                return Err(werr(
                    g,
                    id,
                    role,
                    format!(
                        "stored `{}` [{}, {}] but the graph declares q<{scheme}>{dims:?}",
                        q.scheme, q.n, q.k
                    ),
                ));
            }
            if let Some(s) = main_spec(g, id, opts).ok().filter(|s| cpu_a8g_split(g, id, s, opts).is_some()) {
                let f = if role == "up" { s.up.unwrap_or(s.w) } else { s.w };
                return pack_a8g(&f, q, opts.a8g_f16_stats).map_err(|e| werr(g, id, role, e));
            }
            if role == "w" {
                if let Some(s) = main_spec(g, id, opts).ok().filter(|s| cpu_a8g(g, id, s, opts).is_some()) {
                    return pack_a8g(&s.w, q, opts.a8g_f16_stats).map_err(|e| werr(g, id, role, e));
                }
                if let Some(group) = main_spec(g, id, opts).ok().and_then(|s| cpu_a8(g, id, &s, opts)) {
                    let words = q.part("qweight").map_err(|e| werr(g, id, role, e.to_string()))?.to_u32();
                    let scales =
                        q.part("scales").map_err(|e| werr(g, id, role, e.to_string()))?.to_u16_bits();
                    let (w4, s4) = super::layout::pack_u4_r4(&words, &scales, q.n, q.k, group);
                    return Ok(vec![
                        PackedBuffer {
                            name: "codes_r4".into(),
                            elem: Scalar::I32,
                            data: w4.iter().flat_map(|w| w.to_le_bytes()).collect(),
                        },
                        form::f32_buffer("scales_r4", s4.into_iter()),
                    ]);
                }
            }
            if role == "w" && main_spec(g, id, opts).ok().and_then(|s| gpu_r2(g, id, &s, opts)).is_some() {
                // u32 words of 8 codes with nibbles reordered [0, 2, 4, 6, 1, 3, 5, 7] (AWQ's
                // order: nibble pairs (j, j + 4) are adjacent codes), f16 scales as stored
                let words: Vec<u32> = q
                    .part("qweight")
                    .map_err(|e| werr(g, id, role, e.to_string()))?
                    .to_u32()
                    .into_iter()
                    .map(|w| {
                        [0u32, 2, 4, 6, 1, 3, 5, 7]
                            .iter()
                            .enumerate()
                            .fold(0u32, |o, (slot, &code)| o | (((w >> (4 * code)) & 15) << (4 * slot)))
                    })
                    .collect();
                let scales = q.part("scales").map_err(|e| werr(g, id, role, e.to_string()))?.to_u16_bits();
                return Ok(vec![
                    PackedBuffer {
                        name: "qweight".into(),
                        elem: Scalar::I32,
                        data: words.iter().flat_map(|w| w.to_le_bytes()).collect(),
                    },
                    PackedBuffer {
                        name: "scales".into(),
                        elem: Scalar::F16,
                        data: scales.iter().flat_map(|h| h.to_le_bytes()).collect(),
                    },
                ]);
            }
            if role == "w" && main_spec(g, id, opts).ok().is_some_and(|s| gpu_lut3(g, id, &s, opts)) {
                return pack_lut3_pairs(q).map_err(|e| werr(g, id, role, e));
            }
            if role == "w" && main_spec(g, id, opts).ok().is_some_and(|s| gpu_nf4(g, id, &s, opts).is_some())
            {
                return pack_nf4_pairs(q).map_err(|e| werr(g, id, role, e));
            }
            let f = form::of(*scheme, q.n, q.k).map_err(|e| werr(g, id, role, e))?;
            f.pack(q).map_err(|e| werr(g, id, role, e))
        }
        ("outliers" | "up_outliers", WeightData::Sparse(c), Type::Sparse { .. }) => {
            if [c.n, c.k] != dims[..] {
                return Err(werr(
                    g,
                    id,
                    role,
                    format!("CSR is [{}, {}] but the graph declares {dims:?}", c.n, c.k),
                ));
            }
            c.validate().map_err(|e| werr(g, id, role, e.to_string()))?;
            Ok(form::pack_csr(c))
        }
        ("bias", WeightData::Dense(d), Type::Tensor { .. }) => {
            let n: usize = dims.iter().product();
            if d.len() != n {
                return Err(werr(g, id, role, format!("{} values for a bias of {n}", d.len())));
            }
            Ok(vec![form::f32_buffer("bias", d.iter().map(|&v| v as f32))])
        }
        ("residual" | "x", _, _) => Err(werr(g, id, role, "an activation, not a weight: nothing to pack")),
        (_, w, ty) => {
            let got = match w {
                WeightData::Dense(_) => "dense floats",
                WeightData::Quant(_) => "a quantized tensor",
                WeightData::Sparse(_) => "a CSR matrix",
            };
            Err(werr(g, id, role, format!("got {got} but the graph declares {ty}")))
        }
    }
}

/// `gemv_lut3_gpu_r2`'s layout: a byte per pair of adjacent codes (qa | qb << 3), K/2 bytes per
/// row; the row tables as f16 (exact when stored in f16; an f32 table is rounded to the f16 the
/// kernel computes in, the precision of its f16 activations).
fn pack_lut3_pairs(q: &qkc_quant::QuantTensor) -> Result<Vec<PackedBuffer>, String> {
    let (n, k) = (q.n, q.k);
    let words = q.part("qweight").map_err(|e| e.to_string())?.to_u32();
    let lut = q.part("lut").map_err(|e| e.to_string())?.to_f32();
    let wpr = words.len() / n.max(1);
    let mut pairs = Vec::with_capacity(n * k / 2);
    for r in 0..n {
        let row = &words[r * wpr..(r + 1) * wpr];
        for j in (0..k).step_by(2) {
            let (a, b) = (qkc_quant::pack::get(row, 3, j), qkc_quant::pack::get(row, 3, j + 1));
            pairs.push((a | (b << 3)) as u8);
        }
    }
    if lut.len() != n * 8 {
        return Err(format!("a lut3 table of {} values for {n} rows", lut.len()));
    }
    Ok(vec![
        PackedBuffer { name: "pairs".into(), elem: Scalar::I32, data: pairs },
        PackedBuffer {
            name: "lut_f16".into(),
            elem: Scalar::F16,
            data: lut.iter().flat_map(|&v| half::f16::from_f32(v).to_le_bytes()).collect(),
        },
    ])
}
