//! The conformance suite, one body per kernel family, instantiated per backend by
//! [`conformance_suite!`] (STYLE.md item 9). Each body runs the template on the backend and on
//! the KIR interpreter with the same fresh random inputs (never zeros) and NaN-poisoned
//! outputs, and checks the backend against a plain Rust reference in f64 (tolerance stated per
//! body, as in qkc-kernel's template tests) and against the interpreter (tighter: the same
//! operations in the same order; only `exp2`/FMA contraction differences are allowed).

use qkc_kernel::interp::{Arg, Buffer};
use qkc_kernel::template::Args;

use super::{instantiate, quantize, randn, rng, seed, Backend, Interp};

/// Instantiate the suite for a backend: `conformance_suite!(module_name, backend_expr);`
#[macro_export]
macro_rules! conformance_suite {
    ($m:ident, $backend:expr) => {
        mod $m {
            use super::common::conformance as c;
            #[test]
            fn gemv_u4_cpu() {
                c::gemv_u4_cpu(&$backend, 256, 37, 64, 3);
                c::gemv_u4_cpu(&$backend, 512, 9, 128, 4);
            }
            #[test]
            fn gemv_u4_cpu_q8() {
                c::gemv_u4_cpu_q8(&$backend, 512, 19, 64, 3);
            }
            #[test]
            fn gemv_u4_cpu_a8() {
                c::gemv_u4_cpu_a8(&$backend, 512, 19, 128, 1, 3);
                c::gemv_u4_cpu_a8(&$backend, 256, 8, 64, 3, 2);
                c::gemv_u4_cpu_a8(&$backend, 384, 5, 32, 2, 4);
            }
            #[test]
            fn gemv_u4_cpu_epilogue_silu() {
                c::gemv_epilogue_silu(&$backend);
            }
            #[test]
            fn silu_cpu() {
                c::silu_cpu(&$backend, 1000, 3);
            }
            #[test]
            fn rmsnorm_cpu() {
                c::rmsnorm_cpu(&$backend, 5, 260, 3);
            }
        }
    };
}

/// Run on `b` and on the interpreter; return both outputs (argument `out` read as f32).
fn both(
    b: &dyn Backend,
    k: &qkc_kernel::Kernel,
    args: Vec<Arg>,
    out: usize,
) -> (Vec<f32>, Vec<f32>) {
    let mut a = args.clone();
    b.run(k, &mut a)
        .unwrap_or_else(|e| panic!("{}: {e}", b.name()));
    let mut i = args;
    Interp
        .run(k, &mut i)
        .unwrap_or_else(|e| panic!("interp: {e}"));
    let get = |a: &[Arg]| a[out].buffer().expect("output buffer").to_f32();
    (get(&a), get(&i))
}

/// |got − want| ≤ tol · scale for every element, with the worst ratio printed.
fn check(what: &str, got: &[f32], want: &[f64], scale: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let mut worst = 0f64;
    for (n, ((&g, &w), &s)) in got.iter().zip(want).zip(scale).enumerate() {
        let err = (f64::from(g) - w).abs();
        worst = worst.max(err / (s + 1e-30 / tol)); // the same absolute floor as the assertion
        assert!(
            err <= tol * s + 1e-30,
            "{what}: [{n}] got {g}, want {w} (|err| {err:.3e} > {tol:.0e} · {s:.3e})"
        );
    }
    eprintln!("{what}: worst |err|/scale = {worst:.2e} (tolerance {tol:.0e})");
}

/// (y, Σ|w·x|) per row in f64.
fn gemv_ref(deq: &[f32], x: &[f32], n: usize, k: usize) -> (Vec<f64>, Vec<f64>) {
    (0..n)
        .map(|i| {
            let p = deq[i * k..(i + 1) * k]
                .iter()
                .zip(x)
                .map(|(&w, &x)| f64::from(w) * f64::from(x));
            (p.clone().sum::<f64>(), p.map(f64::abs).sum::<f64>())
        })
        .unzip()
}

fn gemv_args(q: &super::Quantized, x: &[f32], n: usize) -> Vec<Arg> {
    vec![
        Arg::Buf(Buffer::u32s(&q.words)),
        Arg::Buf(Buffer::f16_bits(&q.scales)),
        Arg::Buf(Buffer::f32s(x)),
        Arg::Buf(Buffer::poison_f32(n)),
    ]
}

fn as_f64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| f64::from(x)).collect()
}

pub fn gemv_u4_cpu(b: &dyn Backend, k: usize, n: usize, group: usize, chunks: i64) {
    let s = seed("gemv_u4_cpu");
    let q = quantize(n, k, group, s);
    let x = randn(&mut rng(s ^ 1), k, 1.0);
    let args = Args::new()
        .int("K", k as i64)
        .int("N", n as i64)
        .int("GROUP", group as i64)
        .int("CHUNKS", chunks);
    let kern = instantiate(
        "gemv_u4_cpu",
        &args
            .snippet("decode", "decode_u4")
            .snippet("epilogue", "epilogue_none"),
    );
    let (y, yi) = both(b, &kern, gemv_args(&q, &x, n), 3);
    let (want, sum) = gemv_ref(&q.deq, &x, n, k);
    // f32 accumulation with the zero point folded out: 5e-6 of Σ|w·x| (qkc-kernel's budget).
    check(
        &format!("{} gemv_u4_cpu vs f64", b.name()),
        &y,
        &want,
        &sum,
        5e-6,
    );
    // Same ops in the same order as the interpreter; FMAs are fused in both: 1e-6 of Σ|w·x|.
    check(
        &format!("{} gemv_u4_cpu vs interp", b.name()),
        &y,
        &as_f64(&yi),
        &sum,
        1e-6,
    );
}

/// x quantized as the q8 template does: per 32-block, scale amax/127, round half to even.
fn quantize_x(x: &[f32]) -> Vec<f32> {
    x.chunks(32)
        .flat_map(|b| {
            let amax = b.iter().fold(0f32, |m, v| m.max(v.abs()));
            let (inv, scale) = (127.0f32 / amax, amax / 127.0f32);
            b.iter()
                .map(move |&v| ((v * inv).round_ties_even() as i32) as f32 * scale)
                .collect::<Vec<_>>()
        })
        .collect()
}

pub fn gemv_u4_cpu_q8(b: &dyn Backend, k: usize, n: usize, group: usize, chunks: i64) {
    let s = seed("gemv_u4_cpu_q8");
    let q = quantize(n, k, group, s);
    let x = randn(&mut rng(s ^ 5), k, 1.0);
    let args = Args::new()
        .int("K", k as i64)
        .int("N", n as i64)
        .int("GROUP", group as i64)
        .int("CHUNKS", chunks);
    let kern = instantiate(
        "gemv_u4_cpu_q8",
        &args
            .snippet("split", "split_u4_bytes")
            .snippet("epilogue", "epilogue_none"),
    );
    let (y, yi) = both(b, &kern, gemv_args(&q, &x, n), 3);
    let (want, sum) = gemv_ref(&q.deq, &quantize_x(&x), n, k);
    // Exact integer dots on the same int8 x, then f32 scaling per block: 5e-6 of Σ|w·x|.
    check(
        &format!("{} gemv_u4_cpu_q8 vs f64 (int8 x)", b.name()),
        &y,
        &want,
        &sum,
        5e-6,
    );
    let (want_f, sum_f) = gemv_ref(&q.deq, &x, n, k);
    // Against the f32 x the int8 rounding of x dominates: 1e-2 of Σ|w·x|.
    check(
        &format!("{} gemv_u4_cpu_q8 vs f64 (f32 x)", b.name()),
        &y,
        &want_f,
        &sum_f,
        1e-2,
    );
    check(
        &format!("{} gemv_u4_cpu_q8 vs interp", b.name()),
        &y,
        &as_f64(&yi),
        &sum,
        1e-6,
    );
}

/// x quantized per token as `gemv_u4_cpu_a8` does: scale amax/127 over the row, round half to
/// even.
fn quantize_x_token(x: &[f32]) -> Vec<f32> {
    let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    let (inv, scale) = (127.0f32 / amax, amax / 127.0f32);
    x.iter()
        .map(|&v| ((v * inv).round_ties_even() as i32) as f32 * scale)
        .collect()
}

pub fn gemv_u4_cpu_a8(b: &dyn Backend, k: usize, n: usize, group: usize, t: usize, chunks: i64) {
    let s = seed("gemv_u4_cpu_a8") ^ (k * 31 + n) as u64;
    let q = quantize(n, k, group, s);
    let x = randn(&mut rng(s ^ 5), t * k, 1.0);
    let (w4, s4) = qkc_kernel::lower::layout::pack_u4_r4(&q.words, &q.scales, n, k, group);
    let args = Args::new()
        .int("K", k as i64)
        .int("N", n as i64)
        .int("T", t as i64)
        .int("GROUP", group as i64)
        .int("CHUNKS", chunks);
    let kern = instantiate(
        "gemv_u4_cpu_a8",
        &args
            .snippet("split", "split_u4_bytes")
            .snippet("epilogue", "epilogue_none"),
    );
    let kargs = vec![
        Arg::Buf(Buffer::u32s(&w4)),
        Arg::Buf(Buffer::f32s(&s4)),
        Arg::Buf(Buffer::f32s(&x)),
        Arg::Buf(Buffer::poison_f32(t * n)),
    ];
    let (y, yi) = both(b, &kern, kargs, 3);
    for tok in 0..t {
        let xt = &x[tok * k..(tok + 1) * k];
        let (want, sum) = gemv_ref(&q.deq, &quantize_x_token(xt), n, k);
        let yt = &y[tok * n..(tok + 1) * n];
        // Exact integer dots on the same int8 x, f32 scaling per group: 5e-6 of Σ|w·x|.
        check(
            &format!("{} gemv_u4_cpu_a8 vs f64 (int8 x), token {tok}", b.name()),
            yt,
            &want,
            &sum,
            5e-6,
        );
        let (want_f, sum_f) = gemv_ref(&q.deq, xt, n, k);
        // Against the f32 x the per-token int8 rounding dominates: 2e-2 of Σ|w·x|.
        check(
            &format!("{} gemv_u4_cpu_a8 vs f64 (f32 x), token {tok}", b.name()),
            yt,
            &want_f,
            &sum_f,
            2e-2,
        );
        check(
            &format!("{} gemv_u4_cpu_a8 vs interp, token {tok}", b.name()),
            yt,
            &as_f64(&yi[tok * n..(tok + 1) * n]),
            &sum,
            1e-6,
        );
    }
}

pub fn gemv_epilogue_silu(b: &dyn Backend) {
    let (k, n, group) = (256, 10, 64);
    let s = seed("gemv_epilogue_silu");
    let q = quantize(n, k, group, s);
    let x = randn(&mut rng(s ^ 6), k, 1.0);
    let args = Args::new()
        .int("K", k as i64)
        .int("N", n as i64)
        .int("GROUP", group as i64)
        .int("CHUNKS", 2);
    let kern = instantiate(
        "gemv_u4_cpu",
        &args
            .snippet("decode", "decode_u4")
            .snippet("epilogue", "epilogue_silu"),
    );
    let (y, yi) = both(b, &kern, gemv_args(&q, &x, n), 3);
    let (lin, sum) = gemv_ref(&q.deq, &x, n, k);
    let want: Vec<f64> = lin.iter().map(|&v| v / (1.0 + (-v).exp())).collect();
    // SiLU's slope is ≤ 1.1: 1.1 × the GEMV's 5e-6 of Σ|w·x|, plus 5e-6 relative for exp2/div.
    let scale: Vec<f64> = sum
        .iter()
        .zip(&want)
        .map(|(&s, &w)| 1.1 * s + w.abs())
        .collect();
    check(
        &format!("{} gemv_u4_cpu+silu vs f64", b.name()),
        &y,
        &want,
        &scale,
        5e-6,
    );
    // exp2: the interpreter rounds the exact 2^x, Cranelift expands a polynomial (≤ 2 ulp).
    check(
        &format!("{} gemv_u4_cpu+silu vs interp", b.name()),
        &y,
        &as_f64(&yi),
        &scale,
        1e-6,
    );
}

pub fn silu_cpu(b: &dyn Backend, n: usize, chunks: i64) {
    let s = seed("silu_cpu");
    let mut x = randn(&mut rng(s), n, 4.0);
    // extremes: the exponent clamps on both sides
    (x[1], x[2], x[3], x[4]) = (100.0, -100.0, 30.0, -30.0);
    let kern = instantiate(
        "silu_cpu",
        &Args::new()
            .int("N", n as i64)
            .int("CHUNKS", chunks)
            .snippet("exp2", "exp2_poly"),
    );
    let (y, yi) = both(
        b,
        &kern,
        vec![Arg::Buf(Buffer::f32s(&x)), Arg::Buf(Buffer::poison_f32(n))],
        1,
    );
    let want: Vec<f64> = x
        .iter()
        .map(|&v| f64::from(v) / (1.0 + (-f64::from(v)).exp()))
        .collect();
    let scale: Vec<f64> = want.iter().map(|w| w.abs()).collect();
    // exp2 to ~2 ulp, one add, one div: 5e-6 relative.
    check(
        &format!("{} silu_cpu vs f64", b.name()),
        &y,
        &want,
        &scale,
        5e-6,
    );
    // The same polynomial (a snippet) on both: bit-exact but for FMA vs mul+add: 1e-6 relative.
    check(
        &format!("{} silu_cpu vs interp", b.name()),
        &y,
        &as_f64(&yi),
        &scale,
        1e-6,
    );
}

pub fn rmsnorm_cpu(b: &dyn Backend, m: usize, d: usize, chunks: i64) {
    let s = seed("rmsnorm_cpu");
    let x = randn(&mut rng(s), m * d, 2.0);
    let w = randn(&mut rng(s ^ 3), d, 1.0);
    let args = Args::new()
        .int("D", d as i64)
        .int("M", m as i64)
        .float("EPS", 1e-5)
        .int("CHUNKS", chunks);
    let kern = instantiate("rmsnorm_cpu", &args);
    let bufs = vec![
        Arg::Buf(Buffer::f32s(&x)),
        Arg::Buf(Buffer::f32s(&w)),
        Arg::Buf(Buffer::poison_f32(m * d)),
    ];
    let (y, yi) = both(b, &kern, bufs, 2);
    let mut want = Vec::new();
    for r in 0..m {
        let row = &x[r * d..(r + 1) * d];
        let ms = row.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / d as f64;
        let inv = 1.0 / (ms + 1e-5).sqrt();
        want.extend(
            row.iter()
                .zip(&w)
                .map(|(&v, &g)| f64::from(v) * inv * f64::from(g)),
        );
    }
    let scale: Vec<f64> = want.iter().map(|v| v.abs()).collect();
    // f32 sum of squares over D terms, sqrt, a division and two multiplies: 1e-5 relative.
    check(
        &format!("{} rmsnorm_cpu vs f64", b.name()),
        &y,
        &want,
        &scale,
        1e-5,
    );
    check(
        &format!("{} rmsnorm_cpu vs interp", b.name()),
        &y,
        &as_f64(&yi),
        &scale,
        1e-6,
    );
}
