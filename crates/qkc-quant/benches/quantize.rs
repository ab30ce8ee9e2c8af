//! Quantizer throughput per scheme on a 4096×14336 weight (Llama-3-8B's down_proj input side),
//! all cores. Slow schemes (AQLM) take seconds per iteration; criterion runs its minimum of 10.
//!
//! `cargo bench -p qkc-quant --bench quantize [-- FILTER]`; `QKC_BENCH_SHAPE=1024x4096` shrinks it.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use qkc_quant::{QuantTensor, Scheme};

const SCHEMES: &[&str] = &[
    "int4:g128",
    "int4:g128:asym:act",
    "int3:g128:asym",
    "int4:g128:awq",
    "spqr3:g16",
    "lut3",
    "lut4",
    "nf4:b64",
    "nf4:b64:dq",
    "fp4:b64",
    "aqlm:2x8",
    "aqlm:1x16",
    "bin:g128",
    "tern:g128",
    "billm:g128",
];

/// `cargo bench` passes `--bench`; `cargo test --all-targets` runs each bench once without it,
/// and then a small shape keeps the test suite fast.
fn shape() -> (usize, usize) {
    if !std::env::args().any(|a| a == "--bench") {
        return (64, 256);
    }
    std::env::var("QKC_BENCH_SHAPE")
        .ok()
        .and_then(|s| {
            let (a, b) = s.split_once('x')?;
            Some((a.parse().ok()?, b.parse().ok()?))
        })
        .unwrap_or((4096, 14336))
}

fn bench(c: &mut Criterion) {
    let (n, k) = shape();
    let w = qkc_quant::uniform::gaussian(n * k, 0.02, 1);
    let mut g = c.benchmark_group(format!("quantize_{n}x{k}"));
    g.sample_size(10);
    g.warm_up_time(std::time::Duration::from_millis(100));
    g.measurement_time(std::time::Duration::from_secs(5));
    g.throughput(Throughput::Elements((n * k) as u64));
    for s in SCHEMES {
        let scheme: Scheme = s.parse().expect("scheme");
        g.bench_function(*s, |b| {
            b.iter(|| QuantTensor::quantize(scheme, black_box(&w), n, k).expect("quantize"))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
