//! Layouts: pack → unpack is the identity, and the crate's reference dequant equals the test's
//! independent formula-level re-implementation, for every scheme, on random codes (odd sizes
//! that end mid-word and partial blocks included) and on quantizer output.

mod common;

use common::*;
use half::f16;
use qkc_quant::scheme::{BinaryKind, Packing};
use qkc_quant::{pack, Part, PartDtype, QuantTensor, Scheme};
use rand::Rng;

/// Every scheme, with a shape that stresses its layout (odd N, K ending mid-word, partial blocks).
const CASES: &[(&str, usize, usize)] = &[
    ("int4:g128", 3, 256),
    ("int3:pc", 5, 37),
    ("int3:g8:asym", 3, 40),
    ("int2:g16:asym:act", 3, 48),
    ("int8:g32", 2, 96),
    ("int4:g8:awq", 3, 24),
    ("int3:g32:asym:act:awq", 2, 96),
    ("int2:g16:awq", 2, 48),
    ("int8:pc:awq", 2, 37),
    ("spqr3:g16", 21, 48),
    ("spqr2:g8:s4", 5, 24),
    ("spqr3:g16:perm", 21, 48),
    ("spqr2:g8:s4:perm", 5, 24),
    ("lut3", 3, 37),
    ("lut4", 2, 19),
    ("lut2", 2, 33),
    ("nf4:b64", 3, 37),
    ("fp4:b64", 2, 21),
    ("nf4:b16:dq", 33, 37),
    ("fp4:b32:dq", 3, 13),
    ("aqlm:2x8", 3, 24),
    ("aqlm:1x16", 3, 16),
    ("aqlm:2x8:g4:o2", 4, 12),
    ("aqlm:1x6", 3, 16),
    ("bin:pc", 3, 37),
    ("bin:g16", 3, 48),
    ("tern:g8", 3, 40),
    ("tern:pc", 2, 37),
    ("billm:g16", 3, 48),
    ("billm:pc", 4, 37),
];

fn scheme(s: &str) -> Scheme {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn put(q: &mut QuantTensor, name: &str, dtype: PartDtype, shape: Vec<usize>, bytes: Vec<u8>) {
    q.parts.insert(
        name.into(),
        Part {
            dtype,
            shape,
            bytes,
        },
    );
}

/// A tensor of `s` filled with random codes and statistics by the test's own packer.
fn random_tensor(s: Scheme, n: usize, k: usize, seed: u64) -> QuantTensor {
    let mut r = rng(seed);
    let mut q = QuantTensor::new(s, n, k);
    match s {
        Scheme::Uniform(u) => {
            let (b, g) = (u.bits as usize, u.group.len(k));
            let groups = k / g;
            let mut words = Vec::new();
            for _ in 0..n {
                let codes: Vec<u32> = (0..k).map(|_| r.gen_range(0..1u32 << b)).collect();
                words.extend(common::pack(&codes, b, u.packing));
            }
            let wpr = common::words(k, b, u.packing);
            put(
                &mut q,
                "qweight",
                PartDtype::U32,
                vec![n, wpr],
                u32_bytes(&words),
            );
            put(
                &mut q,
                "scales",
                PartDtype::F16,
                vec![n, groups],
                f16_bytes(&rand_f16(&mut r, n * groups, 1e-3, 0.1)),
            );
            if !u.sym {
                let z: Vec<f16> = (0..n * groups)
                    .map(|_| f16::from_f32(r.gen_range(0..1u32 << b) as f32))
                    .collect();
                put(
                    &mut q,
                    "zeros",
                    PartDtype::F16,
                    vec![n, groups],
                    f16_bytes(&z),
                );
            }
            if u.act_order {
                let gi: Vec<u8> = (0..k)
                    .flat_map(|_| (r.gen_range(0..groups) as i32).to_le_bytes())
                    .collect();
                put(&mut q, "g_idx", PartDtype::I32, vec![k], gi);
            }
        }
        Scheme::Spqr(sp) => {
            let (b, sb, groups) = (
                sp.bits as usize,
                sp.stat_bits as usize,
                k / sp.group as usize,
            );
            let (mut qw, mut st) = (Vec::new(), Vec::new());
            for _ in 0..n {
                qw.extend(common::pack(
                    &(0..k)
                        .map(|_| r.gen_range(0..1u32 << b))
                        .collect::<Vec<_>>(),
                    b,
                    Packing::Gptq,
                ));
                st.extend(common::pack(
                    &(0..2 * groups)
                        .map(|_| r.gen_range(0..1u32 << sb))
                        .collect::<Vec<_>>(),
                    sb,
                    Packing::Gptq,
                ));
            }
            put(
                &mut q,
                "qweight",
                PartDtype::U32,
                vec![n, (k * b).div_ceil(32)],
                u32_bytes(&qw),
            );
            put(
                &mut q,
                "stats",
                PartDtype::U32,
                vec![n, (2 * groups * sb).div_ceil(32)],
                u32_bytes(&st),
            );
            let s2 = rand_f16(&mut r, n.div_ceil(16) * groups * 4, -2.0, 2.0);
            put(
                &mut q,
                "stats2",
                PartDtype::F16,
                vec![n.div_ceil(16), groups, 4],
                f16_bytes(&s2),
            );
            if sp.perm {
                // a random permutation of 0..k (Fisher-Yates)
                let mut p: Vec<i32> = (0..k as i32).collect();
                for i in (1..k).rev() {
                    p.swap(i, r.gen_range(0..=i));
                }
                let bytes = p.iter().flat_map(|v| v.to_le_bytes()).collect();
                put(&mut q, "in_perm", PartDtype::I32, vec![k], bytes);
            }
        }
        Scheme::Lut { bits } => {
            let (b, m) = (bits as usize, 1usize << bits);
            let mut qw = Vec::new();
            for _ in 0..n {
                qw.extend(common::pack(
                    &(0..k).map(|_| r.gen_range(0..m as u32)).collect::<Vec<_>>(),
                    b,
                    Packing::Gptq,
                ));
            }
            put(
                &mut q,
                "qweight",
                PartDtype::U32,
                vec![n, (k * b).div_ceil(32)],
                u32_bytes(&qw),
            );
            put(
                &mut q,
                "lut",
                PartDtype::F16,
                vec![n, m],
                f16_bytes(&rand_f16(&mut r, n * m, -1.0, 1.0)),
            );
        }
        Scheme::Fixed(f) => {
            let (total, block) = (n * k, f.block as usize);
            let blocks = total.div_ceil(block);
            put(
                &mut q,
                "qweight",
                PartDtype::U8,
                vec![total.div_ceil(2)],
                (0..total.div_ceil(2)).map(|_| r.gen()).collect(),
            );
            let f32b = |v: Vec<f32>| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
            if f.double_quant {
                put(
                    &mut q,
                    "absmax_q",
                    PartDtype::U8,
                    vec![blocks],
                    (0..blocks).map(|_| r.gen()).collect(),
                );
                let nb = blocks.div_ceil(256);
                put(
                    &mut q,
                    "nested_absmax",
                    PartDtype::F32,
                    vec![nb],
                    f32b((0..nb).map(|_| r.gen_range(0.01..1.0)).collect()),
                );
                put(
                    &mut q,
                    "nested_offset",
                    PartDtype::F32,
                    vec![1],
                    f32b(vec![r.gen_range(0.0..1.0)]),
                );
            } else {
                put(
                    &mut q,
                    "absmax",
                    PartDtype::F32,
                    vec![blocks],
                    f32b((0..blocks).map(|_| r.gen_range(0.0..1.0)).collect()),
                );
            }
        }
        Scheme::Codebook(c) => {
            let (cb, og, ig, m) = (
                c.codebooks as usize,
                c.out_group as usize,
                c.in_group as usize,
                1usize << c.bits,
            );
            let count = (n / og) * (k / ig) * cb;
            let shape = vec![n / og, k / ig, cb];
            // Random stored values over the whole signed range: decoding is mod 2^bits.
            if c.bits <= 8 {
                put(
                    &mut q,
                    "codes",
                    PartDtype::I8,
                    shape,
                    (0..count).map(|_| r.gen()).collect(),
                );
            } else {
                put(
                    &mut q,
                    "codes",
                    PartDtype::I16,
                    shape,
                    (0..count)
                        .flat_map(|_| r.gen::<i16>().to_le_bytes())
                        .collect(),
                );
            }
            let books = rand_f16(&mut r, cb * m * og * ig, -1.0, 1.0);
            put(
                &mut q,
                "codebooks",
                PartDtype::F16,
                vec![cb, m, og, ig],
                f16_bytes(&books),
            );
            put(
                &mut q,
                "scales",
                PartDtype::F16,
                vec![n / og, 1, 1, 1],
                f16_bytes(&rand_f16(&mut r, n / og, 0.01, 0.1)),
            );
        }
        Scheme::Binary(bz) => {
            let groups = bz.group.count(k);
            let wb = k.div_ceil(32);
            let rand_words = |r: &mut rand_chacha::ChaCha8Rng, len: usize| {
                u32_bytes(&(0..len).map(|_| r.gen()).collect::<Vec<u32>>())
            };
            match bz.kind {
                BinaryKind::Binary => {
                    put(
                        &mut q,
                        "signs",
                        PartDtype::U32,
                        vec![n, wb],
                        rand_words(&mut r, n * wb),
                    );
                    put(
                        &mut q,
                        "scales",
                        PartDtype::F16,
                        vec![n, groups],
                        f16_bytes(&rand_f16(&mut r, n * groups, 0.0, 0.1)),
                    );
                }
                BinaryKind::Ternary => {
                    let mut qw = Vec::new();
                    for _ in 0..n {
                        qw.extend(common::pack(
                            &(0..k).map(|_| r.gen_range(0..3u32)).collect::<Vec<_>>(),
                            2,
                            Packing::Gptq,
                        ));
                    }
                    put(
                        &mut q,
                        "qweight",
                        PartDtype::U32,
                        vec![n, (2 * k).div_ceil(32)],
                        u32_bytes(&qw),
                    );
                    put(
                        &mut q,
                        "scales",
                        PartDtype::F16,
                        vec![n, groups],
                        f16_bytes(&rand_f16(&mut r, n * groups, 0.0, 0.1)),
                    );
                }
                BinaryKind::Residual => {
                    let mask: Vec<u32> = common::pack(
                        &(0..k)
                            .map(|_| u32::from(r.gen_bool(0.2)))
                            .collect::<Vec<_>>(),
                        1,
                        Packing::Gptq,
                    );
                    let s = (0..k).filter(|&j| stream_bit(&mask, j) == 1).count();
                    put(&mut q, "mask", PartDtype::U32, vec![wb], u32_bytes(&mask));
                    put(
                        &mut q,
                        "signs",
                        PartDtype::U32,
                        vec![n, wb],
                        rand_words(&mut r, n * wb),
                    );
                    put(
                        &mut q,
                        "res_signs",
                        PartDtype::U32,
                        vec![n, s.div_ceil(32)],
                        rand_words(&mut r, n * s.div_ceil(32)),
                    );
                    put(
                        &mut q,
                        "scales",
                        PartDtype::F16,
                        vec![n, groups, 3],
                        f16_bytes(&rand_f16(&mut r, n * groups * 3, 0.0, 0.1)),
                    );
                }
            }
        }
    }
    q
}

fn assert_matches_reference(q: &QuantTensor, what: &str) {
    let d = q.dequant().unwrap_or_else(|e| panic!("{what}: {e}"));
    let want = reference_dequant(q);
    let scale = want.iter().fold(0f64, |m, v| m.max(v.abs())).max(1e-30);
    // The reference uses FORMATS.md's 5-decimal NF4 table; everything else is exact up to the
    // f32 rounding of the output.
    let tol = if matches!(q.scheme, Scheme::Fixed(_)) {
        1e-5 * scale
    } else {
        1e-6 * scale
    };
    for (i, (&a, &b)) in d.iter().zip(&want).enumerate() {
        assert!(
            (f64::from(a) - b).abs() <= tol,
            "{what}: element [{}, {}] = {a}, reference {b}",
            i / q.k,
            i % q.k
        );
    }
}

#[test]
fn bit_streams_round_trip_for_every_width_and_packing() {
    let mut r = rng(1);
    for bits in 1..=8u8 {
        for packing in [Packing::Gptq, Packing::Awq] {
            for k in [1, 5, 7, 31, 33, 37, 64, 101] {
                let codes: Vec<u8> = (0..k).map(|_| r.gen_range(0..1u32 << bits) as u8).collect();
                let mut words = vec![0u32; pack::words_per_row_packed(k, bits, packing)];
                pack::pack_row_with(&codes, bits, packing, &mut words);
                // The test packer knows AWQ's order for the widths AWQ-style kernels use.
                if packing == Packing::Gptq || matches!(bits, 2 | 3 | 4 | 8) {
                    let mine = common::pack(
                        &codes.iter().map(|&c| u32::from(c)).collect::<Vec<_>>(),
                        bits as usize,
                        packing,
                    );
                    assert_eq!(
                        words, mine,
                        "bits {bits} {packing:?} k {k}: crate packer vs test packer"
                    );
                }
                assert_eq!(
                    pack::unpack_row(&words, bits, packing, k).expect("unpack"),
                    codes,
                    "bits {bits} {packing:?} k {k}"
                );
            }
        }
    }
}

#[test]
fn gptq_3bit_straddling_matches_formats_md() {
    // Element 10: 2 low bits in word 0 bits 30-31, high bit in word 1 bit 0.
    // Element 21: low bit in word 1 bit 31, 2 high bits in word 2 bits 0-1.
    let mut codes = vec![0u8; 32];
    codes[10] = 0b111;
    codes[21] = 0b111;
    let mut w = vec![0u32; 3];
    pack::pack_row(&codes, 3, &mut w);
    assert_eq!(w, vec![0b11 << 30, 1 | 1 << 31, 0b11]);
}

#[test]
fn awq_4bit_order_is_autoawq() {
    let codes: Vec<u8> = (0..8).collect();
    let mut w = [0u32; 1];
    pack::pack_row_with(&codes, 4, Packing::Awq, &mut w);
    // nibble i holds element AWQ_ORDER[i] = [0, 2, 4, 6, 1, 3, 5, 7]
    let nibbles: Vec<u32> = (0..8).map(|i| (w[0] >> (4 * i)) & 15).collect();
    assert_eq!(nibbles, vec![0, 2, 4, 6, 1, 3, 5, 7]);
}

#[test]
fn random_codes_dequant_matches_reference_for_every_scheme() {
    for (i, &(s, n, k)) in CASES.iter().enumerate() {
        let q = random_tensor(scheme(s), n, k, 100 + i as u64);
        assert_matches_reference(&q, s);
    }
}

#[test]
fn quantizer_output_dequant_matches_reference_for_every_scheme() {
    for (i, &(s, n, k)) in CASES.iter().enumerate() {
        let w = gaussian(n * k, 200 + i as u64);
        let q = QuantTensor::quantize(scheme(s), &w, n, k).unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_matches_reference(&q, s);
        // Every layout is exactly what the bits-per-weight formula counts.
        let (got, est) = (q.bits_per_weight(), q.scheme.bits_per_weight(n, k));
        if s.starts_with("billm") {
            assert!(got <= est + 1e-9, "{s}: {got} > bound {est}");
        } else {
            assert!(
                (got - est).abs() < 1e-9,
                "{s}: stored {got} bits/weight, formula {est}"
            );
        }
    }
}

#[test]
fn stored_tables_match_bitsandbytes() {
    for (a, b) in qkc_quant::fixed::NF4.iter().zip(NF4_ROUNDED) {
        assert!((f64::from(*a) - b).abs() < 5e-6, "nf4 {a} vs {b}");
    }
    let map = qkc_quant::fixed::dynamic_map();
    for (a, b) in map.iter().zip(dynamic_map_f64()) {
        assert!(
            (f64::from(*a) - b).abs() <= 1e-6 * b.abs().max(1e-6),
            "dynamic map {a} vs {b}"
        );
    }
    assert!(map.windows(2).all(|w| w[0] <= w[1]));
}
