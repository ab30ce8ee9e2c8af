//! The read ceiling: how fast this machine streams memory that is not in any cache, measured by
//! a plain read loop (a wrapping u64 sum the compiler vectorizes) over a buffer far larger than
//! the last-level cache, with the same thread count as the kernels it is compared with.

use std::time::Instant;

/// Bytes the loop reads per pass (larger than any LLC here).
pub const CEILING_BYTES: usize = 512 << 20;

fn sum(xs: &[u64]) -> u64 {
    // four independent accumulators so the loop is bound by loads, not by the add chain
    let mut a = [0u64; 4];
    let mut it = xs.chunks_exact(4);
    for c in &mut it {
        a[0] = a[0].wrapping_add(c[0]);
        a[1] = a[1].wrapping_add(c[1]);
        a[2] = a[2].wrapping_add(c[2]);
        a[3] = a[3].wrapping_add(c[3]);
    }
    it.remainder()
        .iter()
        .fold(a[0] ^ a[1] ^ a[2] ^ a[3], |s, &x| s.wrapping_add(x))
}

/// A buffer for [`read_gbps`], filled with non-zero data (a zeroed allocation may map one shared
/// zero page, which would measure the cache, not memory).
pub fn ceiling_buffer(bytes: usize) -> Vec<u64> {
    (0..bytes / 8)
        .map(|i| (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .collect()
}

/// Median read bandwidth in GB/s (10⁹ bytes per second) over `reps` passes of `buf` with
/// `threads` threads (each reads a contiguous slice).
pub fn read_gbps(buf: &[u64], threads: usize, reps: usize) -> f64 {
    let threads = threads.max(1);
    let per = buf.len().div_ceil(threads);
    let mut times: Vec<f64> = (0..reps.max(1) + 1)
        .map(|_| {
            let t0 = Instant::now();
            let s = std::thread::scope(|sc| {
                let hs: Vec<_> = buf.chunks(per).map(|c| sc.spawn(move || sum(c))).collect();
                hs.into_iter()
                    .map(|h| h.join().unwrap_or(0))
                    .fold(0u64, u64::wrapping_add)
            });
            std::hint::black_box(s);
            t0.elapsed().as_secs_f64()
        })
        .skip(1) // warm-up
        .collect();
    times.sort_by(f64::total_cmp);
    let med = times[times.len() / 2];
    (buf.len() * 8) as f64 / med / 1e9
}
