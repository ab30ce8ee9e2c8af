//! Fixed 16-entry tables with block-wise absmax: bitsandbytes NF4 and FP4, with optional double
//! quantization of the absmax (QLoRA, Dettmers et al. 2023, <https://arxiv.org/abs/2305.14314>;
//! code <https://github.com/bitsandbytes-foundation/bitsandbytes> `functional.py`
//! `quantize_4bit` / `dequantize_4bit`, `create_dynamic_map`; FORMATS.md §7).
//!
//! Maths, over the weight flattened row-major (blocks may span rows, as in bitsandbytes):
//! `W_flat[j] = code[q_j] · absmax[j / block]` in f32. With double quant,
//! `absmax[b] = nested_map[absmax_q[b]] · nested_absmax[b / 256] + nested_offset` in f32, where
//! `nested_map` is bitsandbytes' 256-entry signed dynamic map ([`dynamic_map`]), the nested
//! blocks hold 256 absmax values and the offset is their mean (`quantize_4bit(compress_statistics=True)`).
//!
//! qkc storage layout:
//! - `qweight`: U8 `[ceil(n·k/2)]`; flat element 2i in the **high** nibble of byte i and 2i+1 in
//!   the low nibble (bitsandbytes' order).
//! - without double quant: `absmax`: F32 `[ceil(n·k/block)]`.
//! - with double quant: `absmax_q`: U8 `[blocks]`, `nested_absmax`: F32 `[ceil(blocks/256)]`,
//!   `nested_offset`: F32 `[1]`.
//!
//! The tables are constants ([`NF4`], [`fp4_table`]); a bitsandbytes checkpoint's `quant_map`
//! and `nested_quant_map` equal them. Bits per weight: `4 + 32/block`, or with double quant
//! `4 + 8/block + 32/(256·block)`.

use crate::error::QuantError;
use crate::scheme::{FixedLut, FixedTable};
use crate::tensor::{Part, PartDtype, QuantOptions, QuantTensor};

/// Part names this scheme may store.
pub const PARTS: &[&str] = &[
    "qweight",
    "absmax",
    "absmax_q",
    "nested_absmax",
    "nested_offset",
];

/// Absmax values per nested block (bitsandbytes' `blocksize=256` for the statistics).
pub const NESTED_BLOCK: usize = 256;

/// bitsandbytes' NF4 table (`get_4bit_type("nf4")`).
#[expect(
    clippy::excessive_precision,
    reason = "bitsandbytes' literals, verbatim; they round to its f32 values"
)]
pub const NF4: [f32; 16] = [
    -1.0,
    -0.696_192_800_998_687_7,
    -0.525_073_051_452_636_7,
    -0.394_917_488_098_144_53,
    -0.284_441_381_692_886_35,
    -0.184_773_430_228_233_34,
    -0.091_050_036_251_544_95,
    0.0,
    0.079_580_299_556_255_34,
    0.160_930_201_411_247_25,
    0.246_112_301_945_686_34,
    0.337_915_241_718_292_24,
    0.440_709_829_330_444_34,
    0.562_617_003_917_694_1,
    0.722_956_836_223_602_3,
    1.0,
];

/// bitsandbytes' FP4 table in bit-pattern order (`get_4bit_type("fp4")`: the e2m1 values
/// divided by their absmax 12, in f32).
pub fn fp4_table() -> [f32; 16] {
    let raw = [
        0.0f32, 0.0625, 8.0, 12.0, 4.0, 6.0, 2.0, 3.0, -0.0, -0.0625, -8.0, -12.0, -4.0, -6.0,
        -2.0, -3.0,
    ];
    raw.map(|v| v / 12.0)
}

/// The table of a scheme.
pub fn table(t: FixedTable) -> [f32; 16] {
    match t {
        FixedTable::Nf4 => NF4,
        FixedTable::Fp4 => fp4_table(),
    }
}

/// `torch.linspace(start, end, steps, dtype=float32)` as PyTorch's CPU kernel computes it
/// (from the start below the halfway index, from the end above it).
fn linspace_f32(start: f32, end: f32, steps: usize) -> Vec<f32> {
    let step = (end - start) / (steps - 1) as f32;
    let half = steps / 2;
    (0..steps)
        .map(|i| {
            if i < half {
                start + step * i as f32
            } else {
                end - step * (steps - i - 1) as f32
            }
        })
        .collect()
}

/// bitsandbytes' `create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8)`, in f32,
/// sorted ascending: the code of the double-quantized absmax.
pub fn dynamic_map() -> [f32; 256] {
    let mut data: Vec<f32> = Vec::with_capacity(256);
    for i in 0..7i32 {
        let items = (1usize << i) + 1;
        let b = linspace_f32(0.1, 1.0, items);
        let scale = 10f64.powi(-(7 - 1) + i) as f32;
        for w in b.windows(2) {
            let mean = (w[0] + w[1]) / 2.0;
            data.push(scale * mean);
            data.push(-(scale * mean));
        }
    }
    data.push(0.0);
    data.push(1.0);
    data.sort_by(f32::total_cmp);
    let mut out = [0f32; 256];
    out.copy_from_slice(&data[..256]);
    out
}

/// Storage bits per weight of the layout above.
pub fn bits_estimate(f: FixedLut, n: usize, k: usize) -> f64 {
    let total = n * k;
    let blocks = total.div_ceil(f.block as usize);
    let stats = if f.double_quant {
        blocks * 8 + blocks.div_ceil(NESTED_BLOCK) * 32 + 32
    } else {
        blocks * 32
    };
    (total.div_ceil(2) * 8 + stats) as f64 / total as f64
}

/// Index of the table entry `t[q]` minimizing `|v − t[q]·a|`.
fn nearest_code(tab: &[f32; 16], v: f32, a: f32) -> u8 {
    let mut best = (0u8, f32::INFINITY);
    for (q, &t) in tab.iter().enumerate() {
        let e = (v - t * a).abs();
        if e < best.1 {
            best = (q as u8, e);
        }
    }
    best.0
}

/// Double quantization of the absmax values: (absmax_q, nested_absmax, offset, reconstructed).
fn double_quant(absmax: &[f32]) -> (Vec<u8>, Vec<f32>, f32, Vec<f32>) {
    let offset =
        (absmax.iter().map(|&v| f64::from(v)).sum::<f64>() / absmax.len().max(1) as f64) as f32;
    let map = dynamic_map();
    let mapd: Vec<f64> = map.iter().map(|&v| f64::from(v)).collect();
    let (mut codes, mut nested, mut recon) = (Vec::new(), Vec::new(), Vec::new());
    for blk in absmax.chunks(NESTED_BLOCK) {
        let centered: Vec<f32> = blk.iter().map(|&a| a - offset).collect();
        let na = centered.iter().fold(0f32, |m, v| m.max(v.abs()));
        let na = if na > 0.0 { na } else { 1.0 };
        nested.push(na);
        for &c in &centered {
            let q = crate::lut::nearest_sorted(&mapd, f64::from(c / na));
            codes.push(q as u8);
            recon.push(map[q] * na + offset);
        }
    }
    (codes, nested, offset, recon)
}

/// Block absmax quantization (and double quant), blocks in parallel.
pub fn quantize(
    f: FixedLut,
    w: &[f32],
    n: usize,
    k: usize,
    opts: &QuantOptions<'_>,
) -> Result<QuantTensor, QuantError> {
    let (total, block) = (n * k, f.block as usize);
    let absmax: Vec<f32> = w
        .chunks(block)
        .map(|b| b.iter().fold(0f32, |m, v| m.max(v.abs())))
        .collect();
    let mut q = QuantTensor::new(crate::Scheme::Fixed(f), n, k);
    let scale: Vec<f32> = if f.double_quant {
        let (codes, nested, offset, recon) = double_quant(&absmax);
        q.parts
            .insert("absmax_q".into(), Part::from_u8(vec![codes.len()], &codes));
        q.parts.insert(
            "nested_absmax".into(),
            Part::from_f32(vec![nested.len()], &nested),
        );
        q.parts
            .insert("nested_offset".into(), Part::from_f32(vec![1], &[offset]));
        recon
    } else {
        q.parts
            .insert("absmax".into(), Part::from_f32(vec![absmax.len()], &absmax));
        absmax
    };
    let tab = table(f.table);
    // Codes, one per byte, then nibble-packed. Chunks are whole numbers of blocks (and pairs).
    let mut codes = vec![0u8; total];
    let row = block * 2;
    let progress = opts.progress_tracker(n);
    crate::par::for_each_row_chunk(&mut codes, row, |first, chunk| {
        for (t, c) in chunk.iter_mut().enumerate() {
            let j = first * row + t;
            *c = nearest_code(&tab, w[j], scale[j / block]);
        }
        progress.add((chunk.len() * n).div_ceil(total));
        Ok(())
    })?;
    let packed: Vec<u8> = codes
        .chunks(2)
        .map(|p| (p[0] << 4) | p.get(1).copied().unwrap_or(0))
        .collect();
    q.parts.insert(
        "qweight".into(),
        Part::from_u8(vec![total.div_ceil(2)], &packed),
    );
    Ok(q)
}

/// Exact reference dequantization to row-major `[n, k]` f32.
pub fn dequant(f: FixedLut, q: &QuantTensor) -> Result<Vec<f32>, QuantError> {
    let (total, block) = (q.n * q.k, f.block as usize);
    let blocks = total.div_ceil(block);
    let packed = &q
        .expect_part("qweight", PartDtype::U8, &[total.div_ceil(2)])?
        .bytes;
    let absmax: Vec<f32> = if f.double_quant {
        let codes = &q.expect_part("absmax_q", PartDtype::U8, &[blocks])?.bytes;
        let nested = q
            .expect_part(
                "nested_absmax",
                PartDtype::F32,
                &[blocks.div_ceil(NESTED_BLOCK)],
            )?
            .to_f32();
        let offset = q
            .expect_part("nested_offset", PartDtype::F32, &[1])?
            .to_f32()[0];
        let map = dynamic_map();
        codes
            .iter()
            .enumerate()
            .map(|(b, &c)| map[c as usize] * nested[b / NESTED_BLOCK] + offset)
            .collect()
    } else {
        q.expect_part("absmax", PartDtype::F32, &[blocks])?.to_f32()
    };
    let tab = table(f.table);
    Ok((0..total)
        .map(|j| {
            let byte = packed[j / 2];
            let c = if j % 2 == 0 { byte >> 4 } else { byte & 0xF };
            tab[c as usize] * absmax[j / block]
        })
        .collect())
}
