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

/// Interleave codes packed row-major (`words_per_row` u32 words per row, `wpb` words per 32-code
/// block: 4 for 4-bit containers, 8 for bytes) into 4-row blocks, the layout of
/// `gemv_u{4,8}_cpu_a8g`: for row block b and 32-block j, `4·wpb` words at
/// `(b·K/32 + j)·4·wpb`, row r's `wpb` words at `+wpb·r`. Rows N..4·⌈N/4⌉ are zero.
pub fn interleave_codes_r4(words: &[u32], n: usize, k: usize, wpb: usize) -> Vec<u32> {
    let (kb, wpr) = (k / 32, k / 32 * wpb);
    let nb = n.div_ceil(4);
    let mut w = vec![0u32; nb * kb * 4 * wpb];
    for row in 0..n {
        let (b, r) = (row / 4, row % 4);
        for j in 0..kb {
            let dst = (b * kb + j) * 4 * wpb + wpb * r;
            let src = row * wpr + j * wpb;
            w[dst..dst + wpb].copy_from_slice(&words[src..src + wpb]);
        }
    }
    w
}

/// Interleave per-(row, group) stats `[N, K/group]` into 4-row blocks: `(b·K/group + g)·4 + r`
/// (the layout of `scales_r4`, for f32 stats; the a8g `stats_r4` pairs two of these). Rows
/// N..4·⌈N/4⌉ are zero.
pub fn interleave_stats_r4(v: &[f32], n: usize, groups: usize) -> Vec<f32> {
    let nb = n.div_ceil(4);
    let mut s = vec![0f32; nb * groups * 4];
    for row in 0..n {
        let (b, r) = (row / 4, row % 4);
        for g in 0..groups {
            s[(b * groups + g) * 4 + r] = v[row * groups + g];
        }
    }
    s
}
