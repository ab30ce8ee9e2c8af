//! The qlinear conformance suite, independent of who runs the kernels: [`conformance_cases`]
//! lists the matrix, [`Executor`] runs one lowered kernel (the KIR interpreter here; the
//! Cranelift JIT and CUDA can implement it later), [`check_case`] builds the graph, packs the
//! weights, runs the kernel on fresh random inputs (output poisoned with NaN) and compares with
//! an f64 reference that mirrors `qkc_ir::interp`'s meaning of `qlinear` step by step.
#![allow(dead_code)]

use qkc_ir::{Graph, NodeId};
use qkc_kernel::interp::{Arg, Buffer};
use qkc_kernel::lower::{lower, node_options, pack, Binding, LowerOptions, LowerTarget, Lowered, WeightData};
use qkc_quant::{Csr, QuantTensor, Scheme};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Runs a lowered kernel on arguments in binding order; returns the output buffer as f32.
pub trait Executor {
    /// The lowering target it runs.
    fn target(&self) -> LowerTarget;
    /// Run; `out` is the index of the output argument.
    fn run(&self, l: &Lowered, args: Vec<Arg>, out: usize, out_f16: bool) -> Result<Vec<f32>, String>;
}

/// The KIR interpreter.
pub struct Interp(pub LowerTarget);

impl Executor for Interp {
    fn target(&self) -> LowerTarget {
        self.0
    }
    fn run(&self, l: &Lowered, mut args: Vec<Arg>, out: usize, out_f16: bool) -> Result<Vec<f32>, String> {
        qkc_kernel::interp::run(&l.kernel, &mut args).map_err(|e| e.to_string())?;
        let b = args[out].buffer().ok_or("output is not a buffer")?;
        Ok(if out_f16 { b.to_f16() } else { b.to_f32() })
    }
}

/// One conformance case.
#[derive(Clone, Debug)]
pub struct Case {
    pub scheme: &'static str,
    pub n: usize,
    pub k: usize,
    pub t: usize,
    /// `Some(transpose)`: online Hadamard.
    pub rot: Option<bool>,
    pub outliers: bool,
    pub bias: bool,
    pub residual: bool,
    /// SiLU gate with an `up` weight of this scheme.
    pub up: Option<&'static str>,
    pub up_outliers: bool,
    /// (bits, sym)
    pub act: Option<(u8, bool)>,
    /// Elements per activation scale along K (`act_group`); `None`: per token.
    pub act_group: Option<u32>,
    pub out_act: Option<(u8, bool)>,
    pub f16: bool,
    /// The CPU a8g templates' stats: `Some(b)` checks that `node_options` decides f16 stats
    /// exactly when `b` (f16-exact weights: GGUF-like sym / `:min` schemes, whose scales and
    /// mins are f16 values; asym offsets −z·s are not); `None` checks nothing.
    pub f16_stats: Option<bool>,
    /// Lower with f32 stats whatever `node_options` decides (the f32 snippet on f16-exact weights).
    pub force_f32_stats: bool,
    /// `:min` schemes: round the synthesized f32 scales and mins to f16 values, as GGUF Q4_1
    /// stores them (`d`, `m`); otherwise they are arbitrary f32 and the stats not f16-exact.
    pub gguf_stats: bool,
}

impl Case {
    pub fn new(scheme: &'static str, n: usize, k: usize, t: usize) -> Self {
        Case {
            scheme,
            n,
            k,
            t,
            rot: None,
            outliers: false,
            bias: false,
            residual: false,
            up: None,
            up_outliers: false,
            act: None,
            act_group: None,
            out_act: None,
            f16: false,
            f16_stats: None,
            force_f32_stats: false,
            gguf_stats: false,
        }
    }

    /// Tolerance on max |err| / max |y|, with the reason.
    pub fn tolerance(&self) -> f64 {
        // f32 accumulation of K products: ~1e-6 relative; 1e-3 leaves room for the f32
        // Hadamard and expanded stats. f16 activations/outputs round each output to 2^-11.
        let mut tol: f64 = if self.f16 { 2e-3 } else { 1e-3 };
        if self.act.is_some() {
            // an f32 vs f64 rounding decision of one x element near a .5 boundary moves y by one
            // quantum times one weight (rare, ≲ 2e-3 of max|y| for int8)
            tol = tol.max(3e-3);
        }
        if let Some((b, sym)) = self.out_act {
            // one output element may round to the neighbouring quantum
            let q = if sym { (1u32 << (b - 1)) - 1 } else { (1u32 << b) - 1 };
            tol = tol.max(1.05 / f64::from(q));
        }
        tol
    }

    fn qir(&self) -> String {
        let dt = if self.f16 { "f16" } else { "f32" };
        let (n, k) = (self.n, self.k);
        let mut s = format!(
            "graph @case {{\n  %x = input \"x\" : {dt}[T, {k}]\n  %w = weight \"w\" : q<{}>[{n}, {k}]\n",
            self.scheme
        );
        let mut ops = vec!["%x".to_string(), "%w".to_string()];
        if self.outliers {
            s += &format!("  %s = weight \"s\" : csr<f32, u32>[{n}, {k}]\n");
            ops.push("outliers = %s".into());
        }
        if self.bias {
            s += &format!("  %b = weight \"b\" : f32[{n}]\n");
            ops.push("bias = %b".into());
        }
        if let Some(u) = self.up {
            s += &format!("  %u = weight \"u\" : q<{u}>[{n}, {k}]\n");
            ops.push("up = %u".into());
            if self.up_outliers {
                s += &format!("  %su = weight \"su\" : csr<f32, u32>[{n}, {k}]\n");
                ops.push("up_outliers = %su".into());
            }
        }
        if self.residual {
            s += &format!("  %r = input \"r\" : {dt}[T, {n}]\n");
            ops.push("residual = %r".into());
        }
        let mut attrs = Vec::new();
        if let Some(tr) = self.rot {
            attrs.push("rotate = hadamard".to_string());
            if tr {
                attrs.push("transpose = true".into());
            }
        }
        if let Some((b, sym)) = self.act {
            attrs.push(format!("act_bits = {b}, act_sym = {sym}"));
            if let Some(g) = self.act_group {
                attrs.push(format!("act_group = {g}"));
            }
        }
        if self.up.is_some() {
            attrs.push("gate = silu".into());
        }
        if let Some((b, sym)) = self.out_act {
            attrs.push(format!("out_act_bits = {b}, out_act_sym = {sym}"));
        }
        let attrs = if attrs.is_empty() { String::new() } else { format!(" {{{}}}", attrs.join(", ")) };
        s += &format!("  %y = qlinear({}){attrs} : {dt}[T, {n}]\n  return %y\n}}\n", ops.join(", "));
        s
    }

    pub fn label(&self) -> String {
        format!("{self:?}")
    }
}

/// The matrix: every scheme × {no rotation, Hadamard} × {no outliers, CSR outliers}, then
/// epilogue, act-quant, dtype and shape cases.
pub fn conformance_cases() -> Vec<Case> {
    let schemes = [
        "int4:g128",
        "int4:g64",
        "int4:g128:asym",
        "int4:g128:awq",
        "int3:g64:act",
        "int2:g32:asym",
        "int8:pc",
        "int8:g64:asym",
        "spqr3:g16",
        "spqr3:g16:perm",
        "lut3",
        "lut4",
        "nf4:b64",
        "nf4:b64:dq",
        "fp4:b64",
        "aqlm:2x8",
        "aqlm:1x16",
        "bin:g128",
        "tern:g64",
        "billm:g128",
    ];
    let mut v = Vec::new();
    for s in schemes {
        for rot in [None, Some(false)] {
            for outliers in [false, true] {
                let t = if rot.is_none() && !outliers { 1 } else { 3 };
                v.push(Case { rot, outliers, ..Case::new(s, 13, 256, t) });
            }
        }
    }
    // had_K sizes: 384 = 12·32 (the SqueezeLLM layer: lut3 + Hadamard + outliers), transposed too
    v.push(Case { rot: Some(false), outliers: true, ..Case::new("lut3", 13, 384, 2) });
    v.push(Case { rot: Some(true), outliers: true, ..Case::new("int4:g128", 13, 384, 1) });
    v.push(Case { rot: Some(false), ..Case::new("int4:g64", 13, 320, 1) }); // 320 = 20·16
                                                                            // epilogues
    v.push(Case { bias: true, ..Case::new("int4:g128", 13, 256, 2) });
    v.push(Case { residual: true, bias: true, ..Case::new("lut3", 13, 256, 2) });
    v.push(Case { up: Some("int4:g64"), ..Case::new("int4:g128", 13, 256, 2) });
    v.push(Case {
        up: Some("lut3"),
        outliers: true,
        up_outliers: true,
        bias: true,
        ..Case::new("int3:g64:act", 13, 256, 2)
    });
    // SpQR's in_perm on both weights of the gate (two different permutations of x) with their
    // outliers (original column order), and on the GPU's global-memory x path (f16, no prologue)
    v.push(Case {
        up: Some("spqr3:g16:perm"),
        outliers: true,
        up_outliers: true,
        ..Case::new("spqr3:g16:perm", 13, 256, 2)
    });
    v.push(Case { f16: true, outliers: true, ..Case::new("spqr3:g16:perm", 7, 256, 8) });
    v.push(Case { out_act: Some((8, true)), residual: true, ..Case::new("int4:g128", 13, 256, 2) });
    v.push(Case { out_act: Some((4, false)), ..Case::new("lut4", 13, 256, 1) });
    // activation quantization (QuaRot W4A4 / W8A8)
    v.push(Case { rot: Some(false), act: Some((4, true)), ..Case::new("int4:g128", 13, 256, 3) });
    v.push(Case { rot: Some(false), act: Some((8, false)), outliers: true, ..Case::new("lut3", 13, 256, 2) });
    v.push(Case { act: Some((8, true)), out_act: Some((8, true)), ..Case::new("int8:pc", 13, 256, 2) });
    // f16 activations and outputs, T = 8, N not a multiple of 8
    v.push(Case { f16: true, residual: true, ..Case::new("int4:g128", 21, 256, 8) });
    v.push(Case { f16: true, rot: Some(false), outliers: true, ..Case::new("lut3", 7, 256, 8) });
    v.push(Case { f16: true, ..Case::new("aqlm:2x8", 5, 128, 8) });
    // the fast paths: gemv_u4_gpu_r2 (GPU: int4 sym GPTQ, f16 x, T ≤ 8, no prologue or
    // epilogue) and gemv_u4_cpu_a8 (CPU: the same weights with int8 per-token activations, f32)
    for (n, k, t) in [(13, 512, 1), (8, 256, 3), (21, 1024, 8), (5, 11008, 2)] {
        let scheme = if k % 128 == 0 { "int4:g128" } else { "int4:g64" };
        v.push(Case { f16: true, ..Case::new(scheme, n, k, t) });
        v.push(Case { act: Some((8, true)), ..Case::new(scheme, n, k, t) });
        // on the GPU a rotated x goes through the spread Hadamard prologue, then the fast kernel
        v.push(Case { f16: true, rot: Some(t % 2 == 0), ..Case::new(scheme, n, k, t) });
    }
    // the GPU LUT3 fast path (f16 x): with and without outliers and rotation, split K
    for (n, k, t, rot, outliers) in [
        (9, 256, 1, None, false),
        (6, 512, 3, None, true),
        (5, 8192, 2, Some(false), true),
        (3, 1024, 8, Some(true), false),
    ] {
        v.push(Case { f16: true, rot, outliers, ..Case::new("lut3", n, k, t) });
    }
    // the GPU NF4/FP4 fast path (f16 x)
    for (scheme, n, k, t, rot, outliers) in [
        ("nf4:b64", 9, 256, 1, None, false),
        ("nf4:b64:dq", 6, 512, 3, None, true),
        ("fp4:b64", 5, 8192, 2, Some(false), false),
        ("nf4:b64", 3, 1024, 8, Some(true), true),
    ] {
        v.push(Case { f16: true, rot, outliers, ..Case::new(scheme, n, k, t) });
    }
    // rotation + act quant at sizes the old shared-memory staging refused (T·K·4 > 48 KiB)
    v.push(Case { rot: Some(false), act: Some((4, true)), ..Case::new("int4:g128", 6, 4096, 4) });
    v.push(Case { rot: Some(false), outliers: true, f16: true, ..Case::new("lut3", 5, 28672, 1) });
    v.push(Case { f16: true, ..Case::new("int4:g32", 7, 256, 4) });
    // activations quantized per 32-block (ggml's Q8 activations): the CPU fast paths
    // gemv_u4_cpu_a8g (2–4-bit codes) and gemv_u8_cpu_a8g (5–8-bit codes), SmolLM2's K = 576 and
    // 1536, N not a multiple of 4, T = 1 and 3; the generic kernels elsewhere
    // the stats read as f16 when every scale and offset is an f16 value (sym: s and −2^(b−1)·s,
    // `:min`: s and the min, as GGUF stores them), as f32 otherwise (asym: −z·s is not)
    let a8g = |scheme: &'static str, n, k, t| Case {
        act: Some((8, true)),
        act_group: Some(32),
        f16_stats: Some(!scheme.ends_with(":asym")),
        gguf_stats: true,
        ..Case::new(scheme, n, k, t)
    };
    for (scheme, n, k, t) in [
        ("int4:g32:min", 13, 576, 1),
        ("int4:g32:min", 6, 1536, 3),
        ("int4:g32", 9, 576, 3),
        ("int4:g32:asym", 7, 1536, 1),
        ("int4:g128", 5, 256, 2),
        ("int3:g64", 6, 128, 1),
        ("int8:g32", 13, 576, 1),
        ("int8:g32", 6, 1536, 3),
        ("int8:g32:asym", 5, 576, 2),
        ("int8:g32:min", 3, 96, 1),
    ] {
        v.push(a8g(scheme, n, k, t));
    }
    // `:min` with arbitrary f32 mins: f32 stats
    v.push(Case { gguf_stats: false, f16_stats: Some(false), ..a8g("int4:g32:min", 13, 576, 2) });
    v.push(Case { gguf_stats: false, f16_stats: Some(false), ..a8g("int8:g32:min", 5, 96, 1) });
    // f16-exact weights through the f32 stats snippet too
    v.push(Case { force_f32_stats: true, ..a8g("int4:g32:min", 13, 576, 2) });
    v.push(Case { force_f32_stats: true, ..a8g("int8:g32", 6, 576, 1) });
    // the split a8g forms (GEMV kernels + an elementwise epilogue): residual; SiLU gate with
    // `up`, f16 stats only when both weights are exact
    v.push(Case { residual: true, ..a8g("int4:g32:min", 9, 576, 2) });
    v.push(Case { up: Some("int4:g32:min"), ..a8g("int4:g32:min", 6, 576, 1) });
    v.push(Case { up: Some("int4:g32:asym"), f16_stats: Some(false), ..a8g("int4:g32:min", 7, 576, 3) });
    v.push(Case { up: Some("int8:g32"), ..a8g("int8:g32", 5, 576, 1) });
    // grouped act quant on the generic kernels: a rotation, a 4-bit grid, an f16 x, an epilogue
    v.push(Case { rot: Some(false), ..a8g("int4:g32:min", 7, 256, 2) });
    v.push(Case { act: Some((4, true)), act_group: Some(64), ..Case::new("lut3", 13, 256, 2) });
    v.push(Case {
        act: Some((8, false)),
        act_group: Some(32),
        f16: true,
        ..Case::new("int4:g32", 5, 128, 3)
    });
    // not the a8g templates: never f16 stats
    v.push(Case { bias: true, outliers: true, f16_stats: Some(false), ..a8g("int8:g32", 6, 128, 1) });
    v
}

fn find(g: &Graph, name: &str) -> NodeId {
    g.find(name).unwrap_or_else(|| panic!("no %{name}"))
}

fn round_f16(v: f64) -> f64 {
    half::f16::from_f64(v).to_f64()
}

/// `quantize_act` of qkc_ir's interpreter, verbatim.
fn quantize_act(row: &mut [f64], bits: u8, sym: bool) {
    if sym {
        let qmax = f64::from((1u32 << (bits - 1)) - 1);
        let amax = row.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let s = amax / qmax;
        for v in row.iter_mut() {
            *v = if s > 0.0 { (*v / s).round().clamp(-qmax - 1.0, qmax) * s } else { 0.0 };
        }
    } else {
        let qmax = f64::from((1u32 << bits) - 1);
        let (lo, hi) = row.iter().fold((0.0f64, 0.0f64), |(l, h), &v| (l.min(v), h.max(v)));
        let s = (hi - lo) / qmax;
        let z = if s > 0.0 { (-lo / s).round() } else { 0.0 };
        for v in row.iter_mut() {
            *v = if s > 0.0 { ((*v / s).round() + z).clamp(0.0, qmax) * s - z * s } else { 0.0 };
        }
    }
}

fn matvec(w: &[f32], csr: Option<&Csr>, x: &[f64], n: usize, k: usize) -> Vec<f64> {
    let mut y: Vec<f64> = (0..n).map(|r| (0..k).map(|j| f64::from(w[r * k + j]) * x[j]).sum()).collect();
    if let Some(c) = csr {
        for (r, yr) in y.iter_mut().enumerate() {
            for e in c.row_ptr[r] as usize..c.row_ptr[r + 1] as usize {
                *yr += f64::from(c.val[e]) * x[c.col[e] as usize];
            }
        }
    }
    y
}

/// Build, lower, pack, run and compare one case; returns the worst relative error.
pub fn check_case(c: &Case, ex: &dyn Executor, seed: u64) -> Result<f64, String> {
    let g = qkc_ir::parse(&c.qir()).map_err(|e| format!("parse: {e:?}"))?;
    let id = find(&g, "y");
    let (n, k, t) = (c.n, c.k, c.t);
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    let scheme: Scheme = c.scheme.parse().map_err(|e| format!("{e}"))?;
    let gguf_like = |mut q: QuantTensor| -> QuantTensor {
        let min = matches!(q.scheme, Scheme::Uniform(u) if u.min);
        for (name, p) in q.parts.iter_mut() {
            if c.gguf_stats && min && (name == "scales" || name == "mins") {
                for b in p.bytes.chunks_exact_mut(4) {
                    let v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                    b.copy_from_slice(&half::f16::from_f32(v).to_f32().to_le_bytes());
                }
            }
        }
        q
    };
    let wq = gguf_like(QuantTensor::synthesize(scheme, n, k, seed ^ 1).map_err(|e| e.to_string())?);
    let wd = wq.dequant().map_err(|e| e.to_string())?;
    let uq = match c.up {
        Some(u) => Some(gguf_like(
            QuantTensor::synthesize(u.parse().map_err(|e| format!("{e}"))?, n, k, seed ^ 2)
                .map_err(|e| e.to_string())?,
        )),
        None => None,
    };
    let scale = 2.0 / (k as f32).sqrt();
    let s = c.outliers.then(|| Csr::synthesize(n, k, 0.02, scale, seed ^ 3));
    let su = c.up_outliers.then(|| Csr::synthesize(n, k, 0.02, scale, seed ^ 4));
    let rnd = |r: &mut ChaCha8Rng, len: usize| -> Vec<f64> {
        (0..len)
            .map(|_| {
                let v: f64 = (0..4).map(|_| r.gen::<f64>() - 0.5).sum::<f64>() * 1.7;
                let v = if v == 0.0 { 1e-3 } else { v };
                if c.f16 {
                    round_f16(v)
                } else {
                    f64::from(v as f32)
                }
            })
            .collect()
    };
    let x = rnd(&mut r, t * k);
    let bias: Vec<f64> = rnd(&mut r, n).iter().map(|&v| f64::from((0.1 * v) as f32)).collect();
    let weight = |role: &str| -> Option<WeightData<'_>> {
        Some(match role {
            "w" => WeightData::Quant(&wq),
            "up" => WeightData::Quant(uq.as_ref()?),
            "outliers" => WeightData::Sparse(s.as_ref()?),
            "up_outliers" => WeightData::Sparse(su.as_ref()?),
            "bias" => WeightData::Dense(&bias),
            _ => return None,
        })
    };
    // the options the runtime's plan uses: refined per node from the weights
    let base = LowerOptions { target: ex.target(), tokens: t, a8g_f16_stats: false };
    let mut opts = node_options(&g, id, &base, &weight);
    if let Some(want) = c.f16_stats {
        // only the CPU a8g templates read f16 stats
        let want = want && matches!(base.target, LowerTarget::Cpu { .. });
        if opts.a8g_f16_stats != want {
            return Err(format!("node_options decided f16 stats = {}, want {want}", opts.a8g_f16_stats));
        }
    }
    if c.force_f32_stats {
        opts.a8g_f16_stats = false;
    }
    let l = lower(&g, id, &opts).map_err(|e| format!("lower: {e}"))?;
    let res = rnd(&mut r, t * n);
    // reference (qkc_ir::interp's qlinear, step by step)
    let ud = match &uq {
        Some(u) => Some(u.dequant().map_err(|e| e.to_string())?),
        None => None,
    };
    let mut want = vec![0f64; t * n];
    // with grouped activations, the per-token quantization's result too: the kernel must be
    // clearly nearer the grouped one (a silently per-token kernel fits the tolerance otherwise)
    let mut per_token = vec![0f64; t * n];
    if let (Some((b, sym)), Some(_)) = (c.act, c.act_group) {
        for tt in 0..t {
            let mut xr = x[tt * k..(tt + 1) * k].to_vec();
            if let Some(tr) = c.rot {
                qkc_quant::hadamard::apply(&mut xr, tr).map_err(|e| e.to_string())?;
            }
            quantize_act(&mut xr, b, sym);
            per_token[tt * n..(tt + 1) * n].copy_from_slice(&matvec(&wd, s.as_ref(), &xr, n, k));
        }
    }
    for tt in 0..t {
        let mut xr = x[tt * k..(tt + 1) * k].to_vec();
        if let Some(tr) = c.rot {
            qkc_quant::hadamard::apply(&mut xr, tr).map_err(|e| e.to_string())?;
        }
        if let Some((b, sym)) = c.act {
            let g = c.act_group.map_or(k, |g| g as usize);
            for blk in xr.chunks_mut(g) {
                quantize_act(blk, b, sym);
            }
        }
        let mut y = matvec(&wd, s.as_ref(), &xr, n, k);
        if c.bias {
            for (yv, b) in y.iter_mut().zip(&bias) {
                *yv += b;
            }
        }
        if let Some(ud) = &ud {
            let u = matvec(ud, su.as_ref(), &xr, n, k);
            for (yv, uv) in y.iter_mut().zip(&u) {
                *yv = *yv / (1.0 + (-*yv).exp()) * uv;
            }
        }
        if c.residual {
            for (yv, rv) in y.iter_mut().zip(&res[tt * n..]) {
                *yv += rv;
            }
        }
        if let Some((b, sym)) = c.out_act {
            quantize_act(&mut y, b, sym);
        }
        want[tt * n..(tt + 1) * n].copy_from_slice(&y);
    }
    // arguments in binding order
    let act_buf = |v: &[f64]| -> Buffer {
        let f: Vec<f32> = v.iter().map(|&a| a as f32).collect();
        if c.f16 {
            Buffer::f16s(&f)
        } else {
            Buffer::f32s(&f)
        }
    };
    let packed = |role: &str| -> Result<Vec<qkc_kernel::lower::PackedBuffer>, String> {
        let data = weight(role).ok_or(format!("no weight for role {role}"))?;
        let bufs = pack(&g, id, role, data, &opts).map_err(|e| format!("pack {role}: {e}"))?;
        // the a8g stats: 4 rows' (s, o) per 32-block as f16 pairs (16 bytes) or f32 (32 bytes)
        if let Some(st) = bufs.iter().find(|b| b.name == "stats_r4") {
            let per = if opts.a8g_f16_stats { 16 } else { 32 };
            if st.data.len() != n.div_ceil(4) * (k / 32) * per {
                return Err(format!(
                    "stats_r4 of {} bytes, want {per} per 4 rows and 32-block",
                    st.data.len()
                ));
            }
        }
        Ok(bufs)
    };
    let mut cache: std::collections::HashMap<String, Vec<qkc_kernel::lower::PackedBuffer>> =
        Default::default();
    // prologue kernels first (GPU: the spread Hadamard, the activation quantizer), through
    // Temp buffers, then the GEMV
    let mut temps: std::collections::HashMap<String, Buffer> = Default::default();
    let mut stages: Vec<&qkc_kernel::lower::Lowered> = l.pre.iter().collect();
    stages.push(&l);
    let mut got = Vec::new();
    for (si, st) in stages.iter().enumerate() {
        let main = si + 1 == stages.len();
        let mut args = Vec::new();
        let mut out = usize::MAX;
        let mut out_temp: Option<(String, bool)> = None;
        for (pi, b) in st.bindings.iter().enumerate() {
            args.push(match b {
                Binding::Operand { role } if role == "x" => Arg::Buf(act_buf(&x)),
                Binding::Operand { role } if role == "residual" => Arg::Buf(act_buf(&res)),
                Binding::Packed { role, buffer } => {
                    if !cache.contains_key(role) {
                        cache.insert(role.clone(), packed(role)?);
                    }
                    let pb = cache[role]
                        .iter()
                        .find(|p| &p.name == buffer)
                        .ok_or(format!("no packed {role}.{buffer}"))?;
                    Arg::Buf(Buffer::from_bytes(pb.data.clone()))
                }
                Binding::Const { data, .. } => Arg::Buf(Buffer::from_bytes(data.clone())),
                Binding::Scratch { bytes } => Arg::Buf(Buffer::from_bytes(vec![0; *bytes as usize])),
                Binding::Temp { name, elem, len } => {
                    let f16 = *elem == qkc_kernel::Scalar::F16;
                    if !st.kernel.params[pi].attrs.readonly {
                        out = pi;
                        out_temp = Some((name.clone(), f16));
                        Arg::Buf(if f16 {
                            Buffer::poison_f16(*len as usize)
                        } else {
                            Buffer::poison_f32(*len as usize)
                        })
                    } else {
                        Arg::Buf(
                            temps.get(name).cloned().ok_or(format!("Temp `{name}` read before written"))?,
                        )
                    }
                }
                Binding::Output if main => {
                    out = args.len();
                    Arg::Buf(if c.f16 { Buffer::poison_f16(t * n) } else { Buffer::poison_f32(t * n) })
                }
                other => return Err(format!("unexpected binding {other:?}")),
            });
        }
        if main {
            got = ex.run(st, args, out, c.f16)?;
        } else {
            let (name, f16) = out_temp.ok_or("a prologue kernel writes no Temp")?;
            let v = ex.run(st, args, out, f16)?;
            temps.insert(name, if f16 { Buffer::f16s(&v) } else { Buffer::f32s(&v) });
        }
    }
    let ymax = want.iter().fold(0f64, |m, v| m.max(v.abs())).max(1e-6);
    let mut worst = 0f64;
    for (i, (&gv, &wv)) in got.iter().zip(&want).enumerate() {
        let e = (f64::from(gv) - wv).abs() / ymax;
        if !e.is_finite() || e > c.tolerance() {
            return Err(format!("y[{i}] = {gv}, want {wv} (rel err {e:.2e} > {:.1e})", c.tolerance()));
        }
        worst = worst.max(e);
    }
    if c.act_group.is_some() && !c.bias && c.up.is_none() && !c.residual && c.out_act.is_none() {
        let alt =
            got.iter().zip(&per_token).fold(0f64, |m, (&gv, &pv)| m.max((f64::from(gv) - pv).abs())) / ymax;
        if worst * 4.0 > alt {
            return Err(format!(
                "as near the per-token quantization ({alt:.2e}) as the grouped one ({worst:.2e})"
            ));
        }
    }
    Ok(worst)
}

/// Run every case on an executor; panics with every failure listed.
pub fn run_suite(cases: &[Case], ex: &dyn Executor, seed: u64) {
    let mut fails = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        let t0 = std::time::Instant::now();
        match check_case(c, ex, seed.wrapping_add(i as u64)) {
            Ok(e) => eprintln!("ok   {:>6.2e} {:>6.2}s {}", e, t0.elapsed().as_secs_f64(), c.label()),
            Err(e) => {
                eprintln!("FAIL {}: {e}", c.label());
                fails.push(format!("{}: {e}", c.label()));
            }
        }
    }
    assert!(fails.is_empty(), "{} of {} cases failed:\n{}", fails.len(), cases.len(), fails.join("\n"));
}
