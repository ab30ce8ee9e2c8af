//! Cases for the lowering of non-`qlinear` ops, reusable by any executor.
//!
//! A [`Case`] is a one-op graph in `.qir` text plus the token counts of successive runs (KV caches
//! persist between runs) and a tolerance. [`check`] synthesizes the weights from a seed, makes
//! fresh random inputs (never zeros; positions continue the cache; ids in range), runs the f64
//! reference interpreter, lowers the op for the executor's target, binds every [`Binding`]
//! (weights through `pack`, outputs poisoned with NaN, caches poisoned beyond what was written),
//! runs the kernel through the [`Executor`] and compares element by element:
//! `|got − want| ≤ rel · (|want| + rms(want))`.
#![allow(dead_code)]

use std::collections::HashMap;

use qkc_ir::interp::{Interpreter, Tensor, Weights};
use qkc_ir::{DType, Graph, NodeId, Op};
use qkc_kernel::interp::{Arg, Buffer};
use qkc_kernel::lower::{lower, pack, Binding, CacheHalf, LowerOptions, LowerTarget, Lowered, WeightData};
use qkc_kernel::Scalar;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Something that runs a lowered kernel on bound arguments (the KIR interpreter, a JIT, CUDA).
pub trait Executor {
    /// The target to lower for.
    fn target(&self) -> LowerTarget;
    /// Run `l.kernel` on `args` (one per parameter, in order), updating buffers in place.
    fn run(&mut self, l: &Lowered, args: &mut [Arg]) -> Result<(), String>;
}

/// The KIR interpreter as an executor.
pub struct KirInterp(pub LowerTarget);

impl Executor for KirInterp {
    fn target(&self) -> LowerTarget {
        self.0
    }
    fn run(&mut self, l: &Lowered, args: &mut [Arg]) -> Result<(), String> {
        qkc_kernel::interp::run(&l.kernel, args).map(|_| ()).map_err(|e| e.to_string())
    }
}

/// One test case.
pub struct Case {
    /// A name for messages.
    pub name: &'static str,
    /// A graph whose single output is the op under test; operands are inputs or weights.
    pub qir: String,
    /// Tokens of each successive run.
    pub runs: Vec<usize>,
    /// Relative tolerance (see the module docs).
    pub rel: f64,
    /// Why that tolerance.
    pub why: &'static str,
}

fn case(name: &'static str, body: &str, runs: &[usize], rel: f64, why: &'static str) -> Case {
    Case { name, qir: format!("graph @t {{\n{body}\n  return %y\n}}\n"), runs: runs.to_vec(), rel, why }
}

const F32: &str = "f32 arithmetic, a few roundings per element";
const F16: &str = "f16 inputs/outputs: half an f16 ulp (4.9e-4) plus f32 arithmetic";
const EXP: &str = "exp through exp2 (CPU polynomial / PTX ex2.approx, ~2 ulp) plus f32 sums";
const DOT: &str = "f32 dot products of length ≤ 256 (√K·ε relative to Σ|terms|)";

/// Every case.
pub fn cases() -> Vec<Case> {
    vec![
        case(
            "rmsnorm_f32",
            "  %x = input \"x\" : f32[T, 256]\n  %w = weight \"w\" : f32[256]\n  %y = rmsnorm(%x, %w) {eps = 1e-5} : f32[T, 256]",
            &[3],
            1e-5,
            F32,
        ),
        case(
            "rmsnorm_f16",
            "  %x = input \"x\" : f16[T, 96]\n  %w = weight \"w\" : f16[96]\n  %y = rmsnorm(%x, %w) {eps = 1e-6} : f16[T, 96]",
            &[2],
            1e-3,
            F16,
        ),
        case("softmax", "  %x = input \"x\" : f32[T, 100]\n  %y = softmax(%x) : f32[T, 100]", &[3], 2e-5, EXP),
        case("silu_f32", "  %x = input \"x\" : f32[T, 200]\n  %y = silu(%x) : f32[T, 200]", &[2], 2e-5, EXP),
        case("silu_f16", "  %x = input \"x\" : f16[T, 72]\n  %y = silu(%x) : f16[T, 72]", &[3], 1.5e-3, F16),
        case(
            "add",
            "  %a = input \"a\" : f32[T, 64]\n  %b = input \"b\" : f32[T, 64]\n  %y = add(%a, %b) : f32[T, 64]",
            &[3],
            1e-6,
            F32,
        ),
        case(
            "add_broadcast_weight",
            "  %a = input \"a\" : f32[T, 64]\n  %b = weight \"b\" : f32[64]\n  %y = add(%a, %b) : f32[T, 64]",
            &[4],
            1e-6,
            F32,
        ),
        case(
            "mul_f16",
            "  %a = input \"a\" : f16[T, 48]\n  %b = input \"b\" : f16[T, 48]\n  %y = mul(%a, %b) : f16[T, 48]",
            &[2],
            1e-3,
            F16,
        ),
        case(
            "mul_const",
            "  %a = input \"a\" : f32[T, 64]\n  %b = const {value = 0.75} : f32[64]\n  %y = mul(%a, %b) : f32[T, 64]",
            &[2],
            1e-6,
            F32,
        ),
        case("cast_f32_f16", "  %x = input \"x\" : f32[T, 40]\n  %y = cast(%x) : f16[T, 40]", &[3], 1e-3, F16),
        case("cast_f16_f32", "  %x = input \"x\" : f16[T, 40]\n  %y = cast(%x) : f32[T, 40]", &[3], 0.0, "exact"),
        case("cast_f32_i32", "  %x = input \"x\" : f32[T, 40]\n  %y = cast(%x) : i32[T, 40]", &[3], 0.0, "exact"),
        case(
            "quantize_act_sym8",
            "  %x = input \"x\" : f32[T, 128]\n  %y = quantize_act(%x) {bits = 8} : f32[T, 128]",
            &[3],
            1e-6,
            "f64 rounding decisions as the reference, one f32 rounding",
        ),
        case(
            "quantize_act_asym4",
            "  %x = input \"x\" : f32[T, 64]\n  %y = quantize_act(%x) {bits = 4, sym = false} : f32[T, 64]",
            &[2],
            1e-6,
            "f64 rounding decisions as the reference, one f32 rounding",
        ),
        case(
            "quantize_act_sym8_g32",
            "  %x = input \"x\" : f32[T, 576]\n  %y = quantize_act(%x) {bits = 8, group = 32} : f32[T, 576]",
            &[3, 1],
            1e-6,
            "f64 rounding decisions as the reference, one f32 rounding",
        ),
        case(
            "quantize_act_asym4_g16",
            "  %x = input \"x\" : f32[T, 64]\n  %y = quantize_act(%x) {bits = 4, sym = false, group = 16} : f32[T, 64]",
            &[2],
            1e-6,
            "f64 rounding decisions as the reference, one f32 rounding",
        ),
        case(
            "rope_half",
            "  %x = input \"x\" : f32[T, 64]\n  %pos = input \"pos\" : i32[T]\n  %y = rope(%x, %pos) {theta = 10000.0, head_dim = 16} : f32[T, 64]",
            &[3],
            1e-5,
            "f64 angle reduction, f32 sin/cos polynomials (< 1e-7)",
        ),
        case(
            "rope_interleaved",
            "  %x = input \"x\" : f16[T, 32]\n  %pos = input \"pos\" : i32[T]\n  %y = rope(%x, %pos) {theta = 500000.0, head_dim = 8, style = interleaved} : f16[T, 32]",
            &[2],
            1e-3,
            F16,
        ),
        case(
            "attention_nocache",
            "  %q = input \"q\" : f32[T, 64]\n  %k = input \"k\" : f32[T, 32]\n  %v = input \"v\" : f32[T, 32]\n  %y = attention(%q, %k, %v) {heads = 4, kv_heads = 2, head_dim = 16} : f32[T, 64]",
            &[4],
            2e-5,
            EXP,
        ),
        case(
            "attention_cache_rope_gqa",
            "  %q = input \"q\" : f32[T, 64]\n  %k = input \"k\" : f32[T, 32]\n  %v = input \"v\" : f32[T, 32]\n  %pos = input \"pos\" : i32[T]\n  %y = attention(%q, %k, %v, pos = %pos) {heads = 4, kv_heads = 2, head_dim = 16, cache = \"l0\", max_seq = 16, rope_theta = 10000.0} : f32[T, 64]",
            &[3, 1],
            2e-5,
            EXP,
        ),
        case(
            "attention_cache_mqa",
            "  %q = input \"q\" : f32[T, 96]\n  %k = input \"k\" : f32[T, 32]\n  %v = input \"v\" : f32[T, 32]\n  %y = attention(%q, %k, %v) {heads = 3, kv_heads = 1, head_dim = 32, cache = \"l0\", max_seq = 12} : f32[T, 96]",
            &[2, 1, 3],
            2e-5,
            EXP,
        ),
        case(
            "embedding_f16",
            "  %ids = input \"ids\" : i32[T]\n  %table = weight \"table\" : f16[50, 32]\n  %y = embedding(%ids, %table) : f16[T, 32]",
            &[5],
            0.0,
            "a copy",
        ),
        case(
            "transpose",
            "  %x = input \"x\" : f32[2, 3, 5]\n  %y = transpose(%x) : f32[2, 5, 3]",
            &[1],
            0.0,
            "a copy",
        ),
        case(
            "linear_f16_bias",
            "  %x = input \"x\" : f16[T, 64]\n  %w = weight \"w\" : f16[40, 64]\n  %b = weight \"b\" : f16[40]\n  %y = linear(%x, %w, bias = %b) : f16[T, 40]",
            &[3],
            2e-3,
            F16,
        ),
        case(
            "linear_f32",
            "  %x = input \"x\" : f32[T, 100]\n  %w = weight \"w\" : f32[33, 100]\n  %y = linear(%x, %w) : f32[T, 33]",
            &[2],
            1e-5,
            DOT,
        ),
        case(
            "matmul_weight",
            "  %a = input \"a\" : f32[T, 48]\n  %b = weight \"b\" : f32[48, 20]\n  %y = matmul(%a, %b) : f32[T, 20]",
            &[3],
            1e-5,
            DOT,
        ),
        case(
            "matmul_activation",
            "  %a = input \"a\" : f32[T, 48]\n  %b = input \"b\" : f32[48, 20]\n  %y = matmul(%a, %b) : f32[T, 20]",
            &[2],
            1e-5,
            DOT,
        ),
        case(
            "rotate_dense",
            "  %x = input \"x\" : f32[T, 32]\n  %r = weight \"r\" : f32[32, 32]\n  %y = rotate(%x, r = %r) {kind = dense} : f32[T, 32]",
            &[2],
            1e-5,
            DOT,
        ),
        case(
            "rotate_dense_t",
            "  %x = input \"x\" : f32[T, 32]\n  %r = weight \"r\" : f32[32, 32]\n  %y = rotate(%x, r = %r) {kind = dense, transpose = true} : f32[T, 32]",
            &[2],
            1e-5,
            DOT,
        ),
        case(
            "rotate_hadamard_pow2",
            "  %x = input \"x\" : f32[T, 64]\n  %y = rotate(%x) {kind = hadamard} : f32[T, 64]",
            &[2],
            1e-5,
            DOT,
        ),
        case(
            "rotate_hadamard_k12_t",
            "  %x = input \"x\" : f32[T, 96]\n  %y = rotate(%x) {kind = hadamard, transpose = true} : f32[T, 96]",
            &[3],
            1e-5,
            DOT,
        ),
    ]
}

fn dtype(g: &Graph, v: NodeId) -> DType {
    g.node(v).ty.dtype().expect("dense")
}

fn round_to(d: DType, x: f64) -> f64 {
    match d {
        DType::F16 => half::f16::from_f64(x).to_f64(),
        DType::F32 => f64::from(x as f32),
        _ => x.round(),
    }
}

fn encode(d: DType, xs: &[f64]) -> Buffer {
    match d {
        DType::F32 => Buffer::f32s(&xs.iter().map(|&x| x as f32).collect::<Vec<_>>()),
        DType::F16 => Buffer::f16s(&xs.iter().map(|&x| x as f32).collect::<Vec<_>>()),
        DType::I32 => Buffer::i32s(&xs.iter().map(|&x| x as i32).collect::<Vec<_>>()),
        other => panic!("test inputs in {other} are not encoded"),
    }
}

fn decode(d: DType, b: &Buffer) -> Vec<f64> {
    match d {
        DType::F32 => b.to_f32().into_iter().map(f64::from).collect(),
        DType::F16 => b.to_f16().into_iter().map(f64::from).collect(),
        DType::I32 => b.to_u32().into_iter().map(|u| f64::from(u as i32)).collect(),
        other => panic!("outputs in {other} are not decoded"),
    }
}

fn poison(d: DType, n: usize) -> Buffer {
    match d {
        DType::F32 => Buffer::poison_f32(n),
        DType::F16 => Buffer::poison_f16(n),
        DType::I32 => Buffer::i32s(&vec![i32::MIN; n]),
        other => panic!("outputs in {other} are not poisoned"),
    }
}

/// Run one case on an executor; panics with a message on any mismatch.
pub fn check(c: &Case, exec: &mut dyn Executor, seed: u64) {
    let g = qkc_ir::parse(&c.qir).unwrap_or_else(|e| panic!("{}: {e:?}", c.name));
    let op = g.outputs()[0];
    let weights = Weights::Seed(seed);
    let mut interp = Interpreter::new(&g, &weights).expect("interpreter");
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
    // weight values, as the interpreter binds them
    let mut wvals: HashMap<NodeId, Vec<f64>> = HashMap::new();
    for id in g.nodes() {
        if let Op::Weight { name, .. } = &g.node(id).op {
            let t = weights.synthesize_dense(name, dtype(&g, id), g.node(id).ty.shape()).expect("weight");
            wvals.insert(id, t.data);
        }
    }
    let mut caches: HashMap<bool, Buffer> = HashMap::new();
    let mut past = 0usize;
    for &t in &c.runs {
        let opts = LowerOptions { target: exec.target(), tokens: t, a8g_f16_stats: false };
        let mut inputs: HashMap<String, Tensor> = HashMap::new();
        let mut bufs: HashMap<NodeId, Buffer> = HashMap::new();
        for id in g.nodes() {
            let Op::Input { name } = &g.node(id).op else {
                continue;
            };
            let shape = g.node(id).ty.shape().resolve(t);
            let n: usize = shape.iter().product();
            let d = dtype(&g, id);
            let data: Vec<f64> = match name.as_str() {
                "pos" => (0..n).map(|i| (past + i) as f64).collect(),
                "ids" => (0..n).map(|_| f64::from(rng.gen_range(0..50))).collect(),
                _ => (0..n)
                    .map(|_| {
                        let v: f64 = (0..4).map(|_| rng.gen::<f64>() - 0.5).sum::<f64>() * 1.7 * 2.0;
                        round_to(d, if v == 0.0 { 1e-3 } else { v })
                    })
                    .collect(),
            };
            bufs.insert(id, encode(d, &data));
            inputs.insert(name.clone(), Tensor::new(shape, data));
        }
        let want = interp.run(&inputs).unwrap_or_else(|e| panic!("{}: reference: {e}", c.name)).remove(0).1;
        let l = lower(&g, op, &opts).unwrap_or_else(|e| panic!("{}: lower: {e}", c.name));
        let od = dtype(&g, op);
        let mut args: Vec<Arg> = Vec::new();
        let mut out_ix = None;
        for b in &l.bindings {
            args.push(match b {
                Binding::Operand { role } => Arg::Buf(bufs[&g.operand(op, role).expect("operand")].clone()),
                Binding::Packed { role, buffer } => {
                    let v = g.operand(op, role).expect("weight operand");
                    let packed = pack(&g, op, role, WeightData::Dense(&wvals[&v]), &opts)
                        .unwrap_or_else(|e| panic!("{}: pack: {e}", c.name));
                    let p = packed.into_iter().find(|p| &p.name == buffer).expect("packed buffer");
                    Arg::Buf(Buffer::from_bytes(p.data))
                }
                Binding::Output => {
                    out_ix = Some(args.len());
                    Arg::Buf(poison(od, want.data.len()))
                }
                Binding::Cache(h) => {
                    let Op::Attention(a) = &g.node(op).op else { panic!("cache binding on a non-attention") };
                    let n = (a.max_seq * a.kv_heads * a.head_dim) as usize;
                    Arg::Buf(
                        caches.entry(*h == CacheHalf::K).or_insert_with(|| Buffer::poison_f32(n)).clone(),
                    )
                }
                Binding::Pos => Arg::Buf(Buffer::from_bytes((past as i32).to_le_bytes().to_vec())),
                Binding::Const { elem, data, .. } => {
                    assert!(matches!(elem, Scalar::F32 | Scalar::F64 | Scalar::F16 | Scalar::I32));
                    Arg::Buf(Buffer::from_bytes(data.clone()))
                }
                Binding::Temp { name, .. } => {
                    panic!("{}: unexpected Temp `{name}` in an op kernel", c.name)
                }
                Binding::Scratch { bytes } => Arg::Buf(Buffer::from_bytes(vec![0; *bytes as usize])),
            });
        }
        exec.run(&l, &mut args).unwrap_or_else(|e| panic!("{}: run (T = {t}, pos = {past}): {e}", c.name));
        for (b, a) in l.bindings.iter().zip(&args) {
            if let Binding::Cache(h) = b {
                caches.insert(*h == CacheHalf::K, a.buffer().expect("cache").clone());
            }
        }
        let got = decode(od, args[out_ix.expect("an output binding")].buffer().expect("out"));
        assert_eq!(got.len(), want.data.len(), "{}: output length", c.name);
        let rms = (want.data.iter().map(|x| x * x).sum::<f64>() / want.data.len() as f64).sqrt();
        let mut worst = 0.0f64;
        for (i, (&gv, &wv)) in got.iter().zip(&want.data).enumerate() {
            let err = (gv - wv).abs();
            let bound = c.rel * (wv.abs() + rms);
            assert!(
                err <= bound,
                "{} (T = {t}, pos = {past}, {:?}): element {i}: got {gv}, want {wv} (|err| {err:.3e} > {bound:.3e}; {})",
                c.name,
                exec.target(),
                c.why
            );
            worst = worst.max(err / (wv.abs() + rms).max(1e-300));
        }
        eprintln!(
            "{} {:?} T={t} pos={past}: worst rel err {worst:.2e} (tol {:.0e}: {})",
            c.name,
            exec.target(),
            c.rel,
            c.why
        );
        past += t;
    }
}
