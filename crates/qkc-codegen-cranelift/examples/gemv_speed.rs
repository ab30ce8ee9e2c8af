//! Time the JIT-compiled int4 g128 GEMV templates at 4096×14336 (K×N), batch 1, on 1 and 2
//! threads, against a plain read loop over 512 MiB measured in the same run. Weights rotate over
//! 4 copies so that the last-level cache does not serve them.
//!
//! `cargo run --release -p qkc-codegen-cranelift --example gemv_speed`
//!
//! The packed weights and scales are random bit patterns of the right layout (speed does not
//! depend on the values); correctness of these kernels is the conformance suite's job.

use std::time::Instant;

use qkc_codegen_cranelift::JitKernel;
use qkc_kernel::template::{builtin, Args};

const K: usize = 4096;
const N: usize = 14336;
const GROUP: usize = 128;
/// Chunks per launch (QKC_CHUNKS overrides).
fn chunks() -> usize {
    std::env::var("QKC_CHUNKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(112)
}

#[repr(C, align(256))]
#[derive(Clone, Copy)]
struct Blk([u8; 256]);

fn aligned(bytes: usize, fill: impl Fn(usize) -> u8) -> Vec<Blk> {
    let mut v = vec![Blk([0; 256]); bytes.div_ceil(256)];
    for (i, b) in v.iter_mut().enumerate() {
        for (j, x) in b.0.iter_mut().enumerate() {
            *x = fill(i * 256 + j);
        }
    }
    v
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Median seconds of `f` over `reps` runs after 3 warm-ups.
fn time(reps: usize, mut f: impl FnMut()) -> f64 {
    for _ in 0..3 {
        f();
    }
    median(
        (0..reps)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64()
            })
            .collect(),
    )
}

fn read_ceiling(threads: usize) -> f64 {
    let words = 64 << 20; // 512 MiB of u64
    let buf: Vec<u64> = (0..words as u64)
        .map(|i| i.wrapping_mul(0x9e3779b97f4a7c15))
        .collect();
    let per = words / threads;
    let secs = time(5, || {
        let s: u64 = std::thread::scope(|sc| {
            let hs: Vec<_> = buf
                .chunks(per)
                .map(|c| sc.spawn(move || c.iter().fold(0u64, |a, &b| a.wrapping_add(b))))
                .collect();
            hs.into_iter()
                .map(|h| h.join().unwrap_or(0))
                .fold(0, u64::wrapping_add)
        });
        std::hint::black_box(s);
    });
    (words * 8) as f64 / secs / 1e9
}

fn main() {
    let lib = builtin().expect("templates");
    let base = Args::new()
        .int("K", K as i64)
        .int("N", N as i64)
        .int("GROUP", GROUP as i64)
        .int("CHUNKS", chunks() as i64);
    let kernels = [
        (
            "gemv_u4_cpu_a8",
            base.clone()
                .int("T", 1)
                .snippet("split", "split_u4_bytes")
                .snippet("epilogue", "epilogue_none"),
        ),
        (
            "gemv_u4_cpu_q8",
            base.clone()
                .snippet("split", "split_u4_bytes")
                .snippet("epilogue", "epilogue_none"),
        ),
        (
            "gemv_u4_cpu",
            base.clone()
                .snippet("decode", "decode_u4")
                .snippet("epilogue", "epilogue_none"),
        ),
    ];
    // 4 copies of the weights (≈ 118 MB), used in turn, so the last level cache (32 MiB here)
    // never serves them across runs: the same method as ANCHORS' GPU numbers.
    let mut ws: Vec<Vec<Blk>> = (0..4)
        .map(|c| aligned(N * K / 2, |i| ((i + c).wrapping_mul(2654435761) >> 7) as u8))
        .collect();
    // f16 scales around 0.01 (0x211e), x around ±1
    let mut s = aligned(
        N * (K / GROUP) * 4,
        |i| if i % 2 == 0 { 0x1e } else { 0x21 },
    );
    let mut x = aligned(K * 4, |i| if i % 4 == 3 { 0x3f } else { (i * 37) as u8 });
    let mut y = aligned(N * 4, |_| 0xff);
    let bytes = (N * K / 2 + N * (K / GROUP) * 2 + K * 4) as f64;
    let c1 = read_ceiling(1);
    let c2 = read_ceiling(2);
    println!("read ceiling (512 MiB sum): 1 thread {c1:.1} GB/s, 2 threads {c2:.1} GB/s");
    println!(
        "bytes read per GEMV: {:.1} MB (weights, f16 scales, f32 x)",
        bytes / 1e6
    );
    for (name, args) in &kernels {
        let k = lib.instantiate(name, args).expect("instantiate").kernel;
        let jit = JitKernel::compile(&k).expect("compile");
        let wptrs: Vec<u64> = ws.iter_mut().map(|w| w.as_mut_ptr() as u64).collect();
        let mut turn = 0usize;
        let raw = [
            0u64,
            s.as_mut_ptr() as u64,
            x.as_mut_ptr() as u64,
            y.as_mut_ptr() as u64,
        ];
        type Entry = extern "C" fn(u64, u64, u64, u64, u32, u32);
        // SAFETY: the entry has the KIR calling convention `(params..., chunk_lo, chunk_hi)` with
        // four pointer parameters (KIR.md); the code lives as long as `jit`.
        let entry: Entry = unsafe { std::mem::transmute::<*const u8, Entry>(jit.entry()) };
        for threads in [1usize, 2] {
            let per = (chunks() / threads) as u32;
            let secs = time(30, || {
                turn += 1;
                let mut raw = raw;
                raw[0] = wptrs[turn % wptrs.len()];
                std::thread::scope(|sc| {
                    for t in 0..threads as u32 {
                        let r = raw;
                        let hi = if t as usize == threads - 1 {
                            chunks() as u32
                        } else {
                            (t + 1) * per
                        };
                        // buffers have the template's lengths and are 256-byte aligned; threads
                        // write disjoint chunk ranges of y
                        sc.spawn(move || entry(r[0], r[1], r[2], r[3], t * per, hi));
                    }
                });
            });
            let gbs = bytes / secs / 1e9;
            let ceil = if threads == 1 { c1 } else { c2 };
            println!(
                "{name:<15} {threads} thread{}: {:7.3} ms  {gbs:5.1} GB/s  {:4.0}% of the read ceiling",
                if threads == 1 { " " } else { "s" },
                secs * 1e3,
                100.0 * gbs / ceil
            );
        }
    }
    let y0 = f32::from_le_bytes([y[0].0[0], y[0].0[1], y[0].0[2], y[0].0[3]]);
    assert!(y0.is_finite(), "output poisoned");
}
