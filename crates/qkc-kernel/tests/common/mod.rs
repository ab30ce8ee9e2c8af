//! Shared helpers for the integration tests: fresh seeds and random inputs.
#![allow(dead_code)]

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A fresh seed per run (QKC_TEST_SEED to replay one), printed so failures can be replayed.
pub fn seed(test: &str) -> u64 {
    let s = std::env::var("QKC_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64)
    });
    eprintln!("{test}: QKC_TEST_SEED={s}");
    s
}

/// A deterministic RNG for a seed.
pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// Gaussian-ish nonzero values (sum of uniforms), scaled; never exactly zero.
pub fn randn(r: &mut ChaCha8Rng, n: usize, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|_| {
            let v: f32 = (0..4).map(|_| r.gen::<f32>() - 0.5).sum::<f32>() * 1.7 * scale;
            if v == 0.0 {
                scale * 1e-3
            } else {
                v
            }
        })
        .collect()
}
