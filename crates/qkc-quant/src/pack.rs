//! Bit streams of small codes in u32 words, shared by every scheme.
//!
//! A row of codes is one little-endian bit stream: code `j` of width `b` occupies stream bits
//! `[j·b, (j+1)·b)`, word `w` holds stream bits `[32w, 32w+32)`, LSB first. So 3-bit codes
//! straddle words exactly as GPTQ's `pack()` lays them along K (FORMATS.md §1: element 10 has its
//! two low bits in word 0 bits 30–31 and its high bit in word 1 bit 0).
//!
//! [`Packing::Awq`] permutes codes inside each packing unit (the smallest run of codes that
//! fills whole words: 16 for 2-bit, 8 for 4-bit, 4 for 8-bit, 32 for 3-bit): slot `p` holds
//! unit element `ORDER[p]` with `ORDER = [0, 2, 4, …, 1, 3, 5, …]`. For 4-bit this is AutoAWQ's
//! `AWQ_ORDER = [0, 2, 4, 6, 1, 3, 5, 7]` (FORMATS.md §2). Rows are padded to whole units.

use crate::error::QuantError;
use crate::scheme::Packing;

/// Words per packed row of `k` codes of `bits` bits (natural order).
pub fn words_per_row(k: usize, bits: u8) -> usize {
    (k * bits as usize).div_ceil(32)
}

/// Codes per AWQ packing unit for `bits`.
pub fn unit_codes(bits: u8) -> usize {
    let b = bits.max(1) as usize;
    // lcm(32, b) / b
    let g = gcd(32, b);
    32 / g
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Words per packed row of `k` codes under `packing`.
pub fn words_per_row_packed(k: usize, bits: u8, packing: Packing) -> usize {
    match packing {
        Packing::Gptq => words_per_row(k, bits),
        Packing::Awq => {
            let u = unit_codes(bits);
            k.div_ceil(u) * u * bits as usize / 32
        }
    }
}

/// Stream position (in codes) of element `j` under `packing`.
#[inline]
pub fn position(j: usize, bits: u8, packing: Packing) -> usize {
    match packing {
        Packing::Gptq => j,
        Packing::Awq => {
            let u = unit_codes(bits);
            let (unit, e) = (j / u, j % u);
            let slot = if e % 2 == 0 { e / 2 } else { u / 2 + e / 2 };
            unit * u + slot
        }
    }
}

/// Write code `c` (< 2^bits) at stream position `pos` (the words must be zeroed there).
#[inline]
pub fn put(out: &mut [u32], bits: u8, pos: usize, c: u32) {
    let bits = bits as usize;
    let p = pos * bits;
    let (w, o) = (p / 32, p % 32);
    out[w] |= c << o;
    if o + bits > 32 {
        out[w + 1] |= c >> (32 - o);
    }
}

/// Read the code at stream position `pos`.
#[inline]
pub fn get(row: &[u32], bits: u8, pos: usize) -> u32 {
    let bits = bits as usize;
    let p = pos * bits;
    let (w, o) = (p / 32, p % 32);
    let mut v = u64::from(row[w]) >> o;
    if o + bits > 32 {
        v |= u64::from(row[w + 1]) << (32 - o);
    }
    (v & ((1u64 << bits) - 1)) as u32
}

/// Pack one row of codes (natural order) into `out` (`words_per_row(codes.len(), bits)` words).
pub fn pack_row(codes: &[u8], bits: u8, out: &mut [u32]) {
    pack_row_with(codes, bits, Packing::Gptq, out);
}

/// Pack one row of codes under `packing` into `out` (`words_per_row_packed` words).
pub fn pack_row_with(codes: &[u8], bits: u8, packing: Packing, out: &mut [u32]) {
    out.fill(0);
    for (j, &c) in codes.iter().enumerate() {
        put(out, bits, position(j, bits, packing), u32::from(c));
    }
}

/// Unpack `k` codes of one row packed under `packing`.
pub fn unpack_row(
    row: &[u32],
    bits: u8,
    packing: Packing,
    k: usize,
) -> Result<Vec<u8>, QuantError> {
    let need = words_per_row_packed(k, bits, packing);
    if row.len() < need {
        return Err(QuantError::Invalid(format!(
            "packed row has {} words, {k} codes of {bits} bits need {need}",
            row.len()
        )));
    }
    Ok((0..k)
        .map(|j| get(row, bits, position(j, bits, packing)) as u8)
        .collect())
}

/// Pack sign-like bits (`true` = 1) of one row, LSB first.
pub fn pack_bits(bits: impl IntoIterator<Item = bool>, out: &mut [u32]) {
    out.fill(0);
    for (j, b) in bits.into_iter().enumerate() {
        if b {
            out[j / 32] |= 1 << (j % 32);
        }
    }
}

/// Bit `j` of a packed bit row.
#[inline]
pub fn bit(row: &[u32], j: usize) -> bool {
    row[j / 32] >> (j % 32) & 1 == 1
}
