//! Packed weight layouts that several kernels share, computed once at load.

/// Interleave qkc's int4 layout (N rows of K/8 little-endian words, codes LSB-first; f16 scales
/// `[N, K/group]`) into the 4-row-block layout of `gemv_u4_cpu_a8`: for row block b and 32-block
/// j, 16 words at `(b·K/32 + j)·16`, row r's 4 words at `+4r`; f32 scales at
/// `(b·K/group + g)·4 + r`. Rows N..4·⌈N/4⌉ are zero codes with zero scales.
pub fn pack_u4_r4(
    words: &[u32],
    scales_f16: &[u16],
    n: usize,
    k: usize,
    group: usize,
) -> (Vec<u32>, Vec<f32>) {
    let (wpr, kb, g) = (k / 8, k / 32, k / group);
    let nb = n.div_ceil(4);
    let mut w = vec![0u32; nb * kb * 16];
    let mut s = vec![0f32; nb * g * 4];
    for row in 0..n {
        let (b, r) = (row / 4, row % 4);
        for j in 0..kb {
            let dst = (b * kb + j) * 16 + 4 * r;
            w[dst..dst + 4].copy_from_slice(&words[row * wpr + 4 * j..row * wpr + 4 * j + 4]);
        }
        for gi in 0..g {
            s[(b * g + gi) * 4 + r] = half::f16::from_bits(scales_f16[row * g + gi]).to_f32();
        }
    }
    (w, s)
}
