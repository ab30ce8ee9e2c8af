//! Every built-in template, instantiated and run by the KIR interpreter against a plain Rust
//! reference in f64, on fresh random inputs (never zeros) with output buffers poisoned with NaN.
//! Tolerances are stated per test, relative to Σ|terms| where sums are involved.

mod common;

use common::{randn, rng, seed};
use qkc_kernel::interp::{run, Arg, Buffer};
use qkc_kernel::template::{builtin, Args, Library};
use qkc_kernel::{parse, print, KernelError};
use qkc_quant::QuantTensor;

fn lib() -> Library {
    builtin().expect("built-in templates parse")
}

/// Quantize a random N×K matrix with qkc-quant's own uniform int4 quantizer (`int4:gG`), so
/// the kernels are checked against the real storage layout and the real dequant.
struct Quantized {
    words: Vec<u32>,
    scales: Vec<u16>,
    deq: Vec<f32>,
}

fn quantize(n: usize, k: usize, group: usize, s: u64) -> Quantized {
    let mut r = rng(s);
    let w = randn(&mut r, n * k, 0.05);
    let scheme = format!("int4:g{group}").parse().expect("scheme");
    let q = QuantTensor::quantize(scheme, &w, n, k).expect("quantize");
    Quantized {
        words: q.part("qweight").expect("qweight").to_u32(),
        scales: q.part("scales").expect("scales").to_u16_bits(),
        deq: q.dequant().expect("dequant"),
    }
}

/// (y, Σ|w·x|) per row in f64.
fn gemv_ref(deq: &[f32], x: &[f32], n: usize, k: usize) -> Vec<(f64, f64)> {
    (0..n)
        .map(|i| {
            let row = &deq[i * k..(i + 1) * k];
            let y = row.iter().zip(x).map(|(&w, &x)| f64::from(w) * f64::from(x)).sum();
            let a = row.iter().zip(x).map(|(&w, &x)| (f64::from(w) * f64::from(x)).abs()).sum();
            (y, a)
        })
        .collect()
}

fn check_rows(got: &[f32], want: &[(f64, f64)], rel: f64, what: &str) {
    let worst = got.iter().zip(want).map(|(&g, &(y, a))| (f64::from(g) - y).abs() / a).fold(0.0, f64::max);
    eprintln!("{what}: worst |err| / Σ|w·x| = {worst:.2e} (tolerance {rel:.0e})");
    for (i, (&g, &(y, a))) in got.iter().zip(want).enumerate() {
        let err = (f64::from(g) - y).abs();
        assert!(
            err <= rel * a + 1e-30,
            "{what}: row {i}: got {g}, want {y} (|err| {err:.3e} > {rel:.0e}·Σ|w·x| = {:.3e})",
            rel * a
        );
    }
}

fn run_gemv_cpu(k: usize, n: usize, group: usize, chunks: usize) {
    let s = seed("gemv_u4_cpu");
    let q = quantize(n, k, group, s);
    let x = randn(&mut rng(s ^ 1), k, 1.0);
    let args = Args::new()
        .int("K", k as i64)
        .int("N", n as i64)
        .int("GROUP", group as i64)
        .int("CHUNKS", chunks as i64);
    let inst = lib()
        .instantiate("gemv_u4_cpu", &args.snippet("decode", "decode_u4").snippet("epilogue", "epilogue_none"))
        .expect("instantiate");
    let mut a = [
        Arg::Buf(Buffer::u32s(&q.words)),
        Arg::Buf(Buffer::f16_bits(&q.scales)),
        Arg::Buf(Buffer::f32s(&x)),
        Arg::Buf(Buffer::poison_f32(n)),
    ];
    let stats = run(&inst.kernel, &mut a).expect("run");
    let y = a[3].buffer().expect("y").to_f32();
    // f32 accumulation (≈ √K·ε) with the zero point folded out (s·Σq·x − 8·s·Σx cancels up to
    // ~4x): 5e-6 of Σ|w·x|. Runs show ~5e-8.
    check_rows(&y, &gemv_ref(&q.deq, &x, n, k), 5e-6, "gemv_u4_cpu");
    assert!(stats.bytes_loaded >= (n * k / 2) as u64, "every weight byte is read");
    eprintln!(
        "gemv_u4_cpu: {:.2} KIR thread-instructions per weight",
        stats.thread_insts as f64 / (n * k) as f64
    );
}

#[test]
fn gemv_u4_cpu_matches_reference() {
    run_gemv_cpu(256, 37, 64, 3);
    run_gemv_cpu(512, 9, 128, 4); // more chunks than needed: the last chunk gets no rows
}

#[test]
fn gemv_u4_gpu_matches_reference() {
    let (k, n, group, warps) = (1024, 13, 128, 4);
    let s = seed("gemv_u4_gpu");
    let q = quantize(n, k, group, s);
    let x: Vec<f32> =
        randn(&mut rng(s ^ 2), k, 1.0).iter().map(|&v| half::f16::from_f32(v).to_f32()).collect();
    let args =
        Args::new().int("K", k as i64).int("N", n as i64).int("GROUP", group as i64).int("WARPS", warps);
    let inst = lib()
        .instantiate(
            "gemv_u4_gpu",
            &args.snippet("dequant", "dequant_u4_h2").snippet("epilogue", "epilogue_none"),
        )
        .expect("instantiate");
    let mut a = [
        Arg::Buf(Buffer::u32s(&q.words)),
        Arg::Buf(Buffer::f16_bits(&q.scales)),
        Arg::Buf(Buffer::f16s(&x)),
        Arg::Buf(Buffer::poison_f32(n)),
    ];
    run(&inst.kernel, &mut a).expect("run");
    let y = a[3].buffer().expect("y").to_f32();
    // (q−8)·x products and 8-term partial sums in f16 (hfma2: at most 4 roundings of 2^-11 per
    // term), then f32: 2e-3 of Σ|w·x| worst case. Runs show ~2e-5.
    check_rows(&y, &gemv_ref(&q.deq, &x, n, k), 2e-3, "gemv_u4_gpu");
}

/// x quantized as the q8 template does: per 32-block, scale amax/127, round half to even.
fn quantize_x(x: &[f32]) -> Vec<f32> {
    x.chunks(32)
        .flat_map(|b| {
            let amax = b.iter().fold(0f32, |m, v| m.max(v.abs()));
            let (inv, scale) = (127.0f32 / amax, amax / 127.0f32);
            b.iter().map(move |&v| ((v * inv).round_ties_even() as i32) as f32 * scale).collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn gemv_u4_cpu_q8_integer_dot_products() {
    let (k, n, group, chunks) = (512, 19, 64, 3);
    let s = seed("gemv_u4_cpu_q8");
    let q = quantize(n, k, group, s);
    let x = randn(&mut rng(s ^ 5), k, 1.0);
    let args =
        Args::new().int("K", k as i64).int("N", n as i64).int("GROUP", group as i64).int("CHUNKS", chunks);
    let inst = lib()
        .instantiate(
            "gemv_u4_cpu_q8",
            &args.snippet("split", "split_u4_bytes").snippet("epilogue", "epilogue_none"),
        )
        .expect("instantiate");
    let mut a = [
        Arg::Buf(Buffer::u32s(&q.words)),
        Arg::Buf(Buffer::f16_bits(&q.scales)),
        Arg::Buf(Buffer::f32s(&x)),
        Arg::Buf(Buffer::poison_f32(n)),
    ];
    let stats = run(&inst.kernel, &mut a).expect("run");
    eprintln!(
        "gemv_u4_cpu_q8: {:.2} KIR thread-instructions per weight",
        stats.thread_insts as f64 / (n * k) as f64
    );
    let y = a[3].buffer().expect("y").to_f32();
    // Same int8 x as the kernel: exact integer dots, then f32 scaling per block: 5e-6.
    check_rows(&y, &gemv_ref(&q.deq, &quantize_x(&x), n, k), 5e-6, "gemv_u4_cpu_q8 vs int8 x");
    // Against the f32 x: the int8 rounding of x (≤ amax/254 per element) dominates: 1e-2.
    check_rows(&y, &gemv_ref(&q.deq, &x, n, k), 1e-2, "gemv_u4_cpu_q8 vs f32 x");
}

#[test]
fn gemv_u4_gpu_f32_shares_the_cpu_decode_snippet() {
    let (k, n, group, warps) = (512, 11, 64, 2);
    let s = seed("gemv_u4_gpu_f32");
    let q = quantize(n, k, group, s);
    let x = randn(&mut rng(s ^ 4), k, 1.0);
    let args =
        Args::new().int("K", k as i64).int("N", n as i64).int("GROUP", group as i64).int("WARPS", warps);
    let inst = lib()
        .instantiate(
            "gemv_u4_gpu_f32",
            &args.snippet("decode", "decode_u4").snippet("epilogue", "epilogue_none"),
        )
        .expect("instantiate");
    let mut a = [
        Arg::Buf(Buffer::u32s(&q.words)),
        Arg::Buf(Buffer::f16_bits(&q.scales)),
        Arg::Buf(Buffer::f32s(&x)),
        Arg::Buf(Buffer::poison_f32(n)),
    ];
    run(&inst.kernel, &mut a).expect("run");
    // f32 throughout, 8-term chains per word, a 32-way tree: 5e-6 of Σ|w·x|.
    check_rows(&a[3].buffer().expect("y").to_f32(), &gemv_ref(&q.deq, &x, n, k), 5e-6, "gemv_u4_gpu_f32");
}

#[test]
fn gemv_rejects_k_not_multiple_of_group() {
    let args = Args::new()
        .int("K", 1000)
        .int("N", 8)
        .int("GROUP", 128)
        .int("CHUNKS", 2)
        .snippet("decode", "decode_u4")
        .snippet("epilogue", "epilogue_none");
    match lib().instantiate("gemv_u4_cpu", &args) {
        Err(KernelError::Unsupported(m)) => {
            assert!(
                m.contains("K % GROUP == 0")
                    && m.contains("K=1000")
                    && m.contains("multiple of the group size"),
                "{m}"
            )
        }
        other => panic!("expected Unsupported, got {other:?}"),
    }
}

fn silu_ref(x: f32) -> f64 {
    let x = f64::from(x);
    x / (1.0 + (-x).exp())
}

fn silu_inputs(s: u64, n: usize) -> Vec<f32> {
    let mut x = randn(&mut rng(s), n, 4.0);
    // extremes: clamping of the exponent on both sides
    x[1] = 100.0;
    x[2] = -100.0;
    x[3] = 30.0;
    x[4] = -30.0;
    x
}

fn check_silu(name: &str, args: Args, n: usize) {
    let s = seed(name);
    let x = silu_inputs(s, n);
    let inst = lib().instantiate(name, &args).expect("instantiate");
    let mut a = [Arg::Buf(Buffer::f32s(&x)), Arg::Buf(Buffer::poison_f32(n))];
    run(&inst.kernel, &mut a).expect("run");
    for (i, (&g, &xi)) in a[1].buffer().expect("y").to_f32().iter().zip(&x).enumerate() {
        let want = silu_ref(xi);
        // exp2 to ~2 ulp, one add, one div: 5e-6 relative (plus a floor far below f32's normal range)
        assert!(
            (f64::from(g) - want).abs() <= 5e-6 * want.abs() + 1e-30,
            "{name}: x[{i}] = {xi}: got {g}, want {want}"
        );
    }
}

#[test]
fn silu_cpu_polynomial_exp2() {
    check_silu("silu_cpu", Args::new().int("N", 1000).int("CHUNKS", 3).snippet("exp2", "exp2_poly"), 1000);
}

#[test]
fn silu_gpu_exp2_op_and_polynomial() {
    check_silu("silu_gpu", Args::new().int("N", 1000).int("THREADS", 128).snippet("exp2", "exp2_op"), 1000);
    check_silu("silu_gpu", Args::new().int("N", 77).int("THREADS", 32).snippet("exp2", "exp2_poly"), 77);
}

fn check_rmsnorm(name: &str, args: Args, m: usize, d: usize, eps: f64) {
    let s = seed(name);
    let x = randn(&mut rng(s), m * d, 2.0);
    let w = randn(&mut rng(s ^ 3), d, 1.0);
    let inst = lib().instantiate(name, &args).expect("instantiate");
    let mut a = [Arg::Buf(Buffer::f32s(&x)), Arg::Buf(Buffer::f32s(&w)), Arg::Buf(Buffer::poison_f32(m * d))];
    run(&inst.kernel, &mut a).expect("run");
    let y = a[2].buffer().expect("y").to_f32();
    for r in 0..m {
        let row = &x[r * d..(r + 1) * d];
        let ms = row.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>() / d as f64;
        let inv = 1.0 / (ms + eps).sqrt();
        for i in 0..d {
            let want = f64::from(row[i]) * inv * f64::from(w[i]);
            let got = f64::from(y[r * d + i]);
            // f32 sum of squares over D terms, sqrt and two multiplies: 1e-5 relative
            assert!(
                (got - want).abs() <= 1e-5 * want.abs() + 1e-30,
                "{name}: y[{r},{i}] = {got}, want {want}"
            );
        }
    }
}

#[test]
fn rmsnorm_cpu_matches_reference() {
    let args = Args::new().int("D", 260).int("M", 5).float("EPS", 1e-5).int("CHUNKS", 2);
    check_rmsnorm("rmsnorm_cpu", args, 5, 260, 1e-5);
}

#[test]
fn rmsnorm_gpu_matches_reference() {
    let args = Args::new().int("D", 264).int("M", 3).float("EPS", 1e-6).int("THREADS", 64);
    check_rmsnorm("rmsnorm_gpu", args, 3, 264, 1e-6);
}

/// Sample arguments for every template, for the round-trip test.
fn samples() -> Vec<(&'static str, Args)> {
    vec![
        (
            "gemv_u4_cpu",
            Args::new()
                .int("K", 256)
                .int("N", 8)
                .int("GROUP", 128)
                .int("CHUNKS", 2)
                .snippet("decode", "decode_u4")
                .snippet("epilogue", "epilogue_none"),
        ),
        (
            "gemv_u4_cpu_q8",
            Args::new()
                .int("K", 256)
                .int("N", 8)
                .int("GROUP", 64)
                .int("CHUNKS", 2)
                .snippet("split", "split_u4_bytes")
                .snippet("epilogue", "epilogue_none"),
        ),
        (
            "gemv_u4_gpu_f32",
            Args::new()
                .int("K", 256)
                .int("N", 8)
                .int("GROUP", 64)
                .int("WARPS", 2)
                .snippet("decode", "decode_u4")
                .snippet("epilogue", "epilogue_none"),
        ),
        (
            "gemv_u4_gpu",
            Args::new()
                .int("K", 256)
                .int("N", 8)
                .int("GROUP", 64)
                .int("WARPS", 2)
                .snippet("dequant", "dequant_u4_h2")
                .snippet("epilogue", "epilogue_none"),
        ),
        (
            "gemv_u4_cpu_a8",
            Args::new()
                .int("K", 256)
                .int("N", 7)
                .int("T", 2)
                .int("GROUP", 64)
                .int("CHUNKS", 2)
                .snippet("split", "split_u4_bytes")
                .snippet("epilogue", "epilogue_none"),
        ),
        (
            "gemv_u4_cpu_a8g",
            Args::new()
                .int("K", 96)
                .int("N", 7)
                .int("T", 2)
                .int("CHUNKS", 2)
                .int("SW", 8)
                .snippet("split", "split_u4_bytes")
                .snippet("stats", "a8g_stats_f32")
                .snippet("epilogue", "epilogue_none"),
        ),
        (
            "gemv_u4_cpu_a8g",
            Args::new()
                .int("K", 96)
                .int("N", 7)
                .int("T", 2)
                .int("CHUNKS", 2)
                .int("SW", 4)
                .snippet("split", "split_u4_bytes")
                .snippet("stats", "a8g_stats_f16")
                .snippet("epilogue", "epilogue_none"),
        ),
        (
            "gemv_u8_cpu_a8g",
            Args::new()
                .int("K", 96)
                .int("N", 7)
                .int("T", 2)
                .int("CHUNKS", 2)
                .int("SW", 8)
                .snippet("split", "split_u4_bytes")
                .snippet("stats", "a8g_stats_f32")
                .snippet("epilogue", "epilogue_none"),
        ),
        (
            "gemv_u8_cpu_a8g",
            Args::new()
                .int("K", 96)
                .int("N", 7)
                .int("T", 2)
                .int("CHUNKS", 2)
                .int("SW", 4)
                .snippet("split", "split_u4_bytes")
                .snippet("stats", "a8g_stats_f16")
                .snippet("epilogue", "epilogue_none"),
        ),
        (
            "gemv_u4_gpu_r2",
            Args::new()
                .int("K", 256)
                .int("N", 7)
                .int("T", 2)
                .int("GROUP", 64)
                .int("PAIRS", 2)
                .int("KSPLIT", 2)
                .int("YALIGN", 2)
                .ty("YT", qkc_kernel::Type::Scalar(qkc_kernel::Scalar::F16))
                .snippet("dequant", "dequant_u4_h2")
                .snippet("cvt", "cvt_f16"),
        ),
        (
            "gemv_lut3_gpu_r2",
            Args::new()
                .int("K", 256)
                .int("N", 7)
                .int("T", 2)
                .int("KSPLIT", 2)
                .int("YALIGN", 2)
                .ty("YT", qkc_kernel::Type::Scalar(qkc_kernel::Scalar::F16))
                .snippet("cvt", "cvt_f16"),
        ),
        (
            "gemv_nf4_gpu_r2",
            Args::new()
                .int("K", 256)
                .int("N", 7)
                .int("T", 2)
                .int("GROUP", 64)
                .int("KSPLIT", 2)
                .int("YALIGN", 2)
                .ty("YT", qkc_kernel::Type::Scalar(qkc_kernel::Scalar::F16))
                .snippet("cvt", "cvt_f16"),
        ),
        ("silu_cpu", Args::new().int("N", 64).int("CHUNKS", 2).snippet("exp2", "exp2_poly")),
        ("silu_gpu", Args::new().int("N", 64).int("THREADS", 32).snippet("exp2", "exp2_op")),
        ("rmsnorm_cpu", Args::new().int("D", 64).int("M", 2).float("EPS", 1e-5).int("CHUNKS", 2)),
        ("rmsnorm_gpu", Args::new().int("D", 64).int("M", 2).float("EPS", 1e-5).int("THREADS", 32)),
    ]
}

#[test]
fn every_template_round_trips() {
    let lib = lib();
    let names: Vec<&str> = lib.names().filter(|n| lib.get(n).is_some_and(|t| !t.snippet)).collect();
    let samples = samples();
    for n in &names {
        assert!(samples.iter().any(|(s, _)| s == n), "template {n} has no sample arguments in this test");
    }
    for (name, args) in samples {
        let k = lib.instantiate(name, &args).expect("instantiate").kernel;
        let text = print(&k);
        let back = parse(&text).unwrap_or_else(|d| panic!("{name}: {d}"));
        assert_eq!(back, k, "{name}: parse(print(k)) != k");
        assert_eq!(print(&back), text, "{name}: printing is not stable");
    }
}

#[test]
fn builtin_files_match_the_tree() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../templates/kir");
    let from_dir = Library::from_dir(&dir).expect("templates/kir loads");
    let embedded = lib();
    assert_eq!(
        from_dir.names().collect::<Vec<_>>(),
        embedded.names().collect::<Vec<_>>(),
        "add new files to library.rs FILES"
    );
}

/// KIR thread-instructions per weight in the steady state: the difference between two row
/// counts with one chunk, so prologues cancel. A guard against template regressions; what the
/// backends emit per KIR op is their business (constants, for one, cost nothing in machine code).
fn marginal_ops_per_weight(name: &str, extra: Args, k: i64) -> f64 {
    let count = |n: i64| {
        let mut args = extra.clone().int("K", k).int("N", n).int("GROUP", 128);
        if name.contains("cpu") {
            args = args.int("CHUNKS", 1);
        } else {
            args = args.int("WARPS", 1);
        }
        let inst = lib().instantiate(name, &args).expect("instantiate");
        let x = if name == "gemv_u4_gpu" {
            Buffer::f16s(&vec![0.5; k as usize])
        } else {
            Buffer::f32s(&vec![0.5; k as usize])
        };
        let mut a = [
            Arg::Buf(Buffer::u32s(&vec![0x9abc_def1; (n * k / 8) as usize])),
            Arg::Buf(Buffer::f16s(&vec![0.01; (n * k / 128) as usize])),
            Arg::Buf(x),
            Arg::Buf(Buffer::poison_f32(n as usize)),
        ];
        run(&inst.kernel, &mut a).expect("run").thread_insts as f64
    };
    (count(8) - count(4)) / (4 * k) as f64
}

#[test]
fn gemv_instruction_budget() {
    for (name, snippet, budget) in [
        ("gemv_u4_cpu", Args::new().snippet("decode", "decode_u4").snippet("epilogue", "epilogue_none"), 2.0),
        (
            "gemv_u4_cpu_q8",
            Args::new().snippet("split", "split_u4_bytes").snippet("epilogue", "epilogue_none"),
            1.0,
        ),
        (
            "gemv_u4_gpu",
            Args::new().snippet("dequant", "dequant_u4_h2").snippet("epilogue", "epilogue_none"),
            7.0,
        ),
        (
            "gemv_u4_gpu_f32",
            Args::new().snippet("decode", "decode_u4").snippet("epilogue", "epilogue_none"),
            10.5,
        ),
    ] {
        let per = marginal_ops_per_weight(name, snippet, 1024);
        eprintln!("{name}: {per:.3} KIR ops per weight (budget {budget})");
        assert!(per <= budget, "{name}: {per:.3} KIR ops per weight exceeds {budget}");
    }
}

/// The `epilogue` hole: SiLU applied to each row's result, on both targets.
#[test]
fn gemv_epilogue_silu() {
    let (k, n, group) = (256, 10, 64);
    for (name, extra, x_f16) in [
        ("gemv_u4_cpu", Args::new().int("CHUNKS", 2).snippet("decode", "decode_u4"), false),
        ("gemv_u4_gpu_f32", Args::new().int("WARPS", 2).snippet("decode", "decode_u4"), false),
        ("gemv_u4_gpu", Args::new().int("WARPS", 2).snippet("dequant", "dequant_u4_h2"), true),
    ] {
        let s = seed(name);
        let q = quantize(n, k, group, s);
        let mut x = randn(&mut rng(s ^ 6), k, 1.0);
        if x_f16 {
            x.iter_mut().for_each(|v| *v = half::f16::from_f32(*v).to_f32());
        }
        let args = extra
            .int("K", k as i64)
            .int("N", n as i64)
            .int("GROUP", group as i64)
            .snippet("epilogue", "epilogue_silu");
        let inst = lib().instantiate(name, &args).expect("instantiate");
        let xb = if x_f16 { Buffer::f16s(&x) } else { Buffer::f32s(&x) };
        let mut a = [
            Arg::Buf(Buffer::u32s(&q.words)),
            Arg::Buf(Buffer::f16_bits(&q.scales)),
            Arg::Buf(xb),
            Arg::Buf(Buffer::poison_f32(n)),
        ];
        run(&inst.kernel, &mut a).expect("run");
        let got = a[3].buffer().expect("y").to_f32();
        // SiLU has slope at most 1.1: the GEMV's tolerance (2e-3 of Σ|w·x| for half2, 5e-6
        // otherwise) times 1.1, plus 5e-6 relative for exp2, add and div.
        let rel = if x_f16 { 2e-3 } else { 5e-6 };
        for (i, (&g, &(y, sum))) in got.iter().zip(&gemv_ref(&q.deq, &x, n, k)).enumerate() {
            let want = y / (1.0 + (-y).exp());
            let err = (f64::from(g) - want).abs();
            assert!(err <= 1.1 * rel * sum + 5e-6 * want.abs(), "{name}: row {i}: got {g}, want {want}");
        }
    }
}
