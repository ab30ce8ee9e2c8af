//! GGUF reader tests: files built by a formula-level writer (independent of the reader), an
//! independent per-element decode of every block format, bad input, and the real SmolLM2 file.

use half::{bf16, f16};
use proptest::prelude::*;
use qkc_quant::gguf::{GgmlType, GgufError, GgufFile, GgufValue, GgufWeight};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

// ---------------------------------------------------------------- writer

/// A metadata value for the test writer.
enum V {
    U8(u8),
    I16(i16),
    U32(u32),
    I32(i32),
    U64(u64),
    F32(f32),
    F64(f64),
    Bool(bool),
    Str(String),
    StrArr(Vec<String>),
    I32Arr(Vec<i32>),
    F32Arr(Vec<f32>),
    U64Arr(Vec<u64>),
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_value(out: &mut Vec<u8>, v: &V) {
    let (id, body): (u32, Vec<u8>) = match v {
        V::U8(x) => (0, vec![*x]),
        V::I16(x) => (3, x.to_le_bytes().to_vec()),
        V::U32(x) => (4, x.to_le_bytes().to_vec()),
        V::I32(x) => (5, x.to_le_bytes().to_vec()),
        V::F32(x) => (6, x.to_le_bytes().to_vec()),
        V::Bool(x) => (7, vec![u8::from(*x)]),
        V::Str(s) => {
            let mut b = Vec::new();
            put_str(&mut b, s);
            (8, b)
        }
        V::U64(x) => (10, x.to_le_bytes().to_vec()),
        V::F64(x) => (12, x.to_le_bytes().to_vec()),
        V::StrArr(a) => {
            let mut b = 8u32.to_le_bytes().to_vec();
            b.extend_from_slice(&(a.len() as u64).to_le_bytes());
            for s in a {
                put_str(&mut b, s);
            }
            (9, b)
        }
        V::I32Arr(a) => {
            let mut b = 5u32.to_le_bytes().to_vec();
            b.extend_from_slice(&(a.len() as u64).to_le_bytes());
            a.iter().for_each(|x| b.extend_from_slice(&x.to_le_bytes()));
            (9, b)
        }
        V::F32Arr(a) => {
            let mut b = 6u32.to_le_bytes().to_vec();
            b.extend_from_slice(&(a.len() as u64).to_le_bytes());
            a.iter().for_each(|x| b.extend_from_slice(&x.to_le_bytes()));
            (9, b)
        }
        V::U64Arr(a) => {
            let mut b = 10u32.to_le_bytes().to_vec();
            b.extend_from_slice(&(a.len() as u64).to_le_bytes());
            a.iter().for_each(|x| b.extend_from_slice(&x.to_le_bytes()));
            (9, b)
        }
    };
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(&body);
}

struct Tensor {
    name: String,
    dims: Vec<u64>,
    ty: u32,
    data: Vec<u8>,
}

/// Build a GGUF v3 file. Returns the bytes and the offsets where the metadata, the tensor
/// infos and the data section start.
fn write_gguf(kvs: &[(&str, V)], tensors: &[Tensor], alignment: usize) -> (Vec<u8>, [usize; 3]) {
    let mut out = b"GGUF".to_vec();
    out.extend_from_slice(&3u32.to_le_bytes());
    out.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    out.extend_from_slice(&(kvs.len() as u64).to_le_bytes());
    let kv_at = out.len();
    for (k, v) in kvs {
        put_str(&mut out, k);
        put_value(&mut out, v);
    }
    let ti_at = out.len();
    let mut offset = 0usize;
    let mut offsets = Vec::new();
    for t in tensors {
        put_str(&mut out, &t.name);
        out.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
        for d in &t.dims {
            out.extend_from_slice(&d.to_le_bytes());
        }
        out.extend_from_slice(&t.ty.to_le_bytes());
        out.extend_from_slice(&(offset as u64).to_le_bytes());
        offsets.push(offset);
        offset = (offset + t.data.len()).div_ceil(alignment) * alignment;
    }
    while out.len() % alignment != 0 {
        out.push(0);
    }
    let data_at = out.len();
    for (t, o) in tensors.iter().zip(offsets) {
        out.resize(data_at + o, 0);
        out.extend_from_slice(&t.data);
    }
    (out, [kv_at, ti_at, data_at])
}

// ---------------------------------------------------------------- random blocks

/// (ggml id, elements per block, bytes per block, byte offsets of f16 fields).
const FORMATS: &[(u32, &str, usize, usize, &[usize])] = &[
    (0, "F32", 1, 4, &[]),
    (1, "F16", 1, 2, &[0]),
    (30, "BF16", 1, 2, &[]),
    (2, "Q4_0", 32, 18, &[0]),
    (3, "Q4_1", 32, 20, &[0, 2]),
    (6, "Q5_0", 32, 22, &[0]),
    (7, "Q5_1", 32, 24, &[0, 2]),
    (8, "Q8_0", 32, 34, &[0]),
    (12, "Q4_K", 256, 144, &[0, 2]),
    (13, "Q5_K", 256, 176, &[0, 2]),
    (14, "Q6_K", 256, 210, &[208]),
];

fn random_f16(rng: &mut ChaCha8Rng) -> f16 {
    let v: f32 = rng.gen_range(-1.0..1.0) * 10f32.powi(rng.gen_range(-6..3));
    match rng.gen_range(0..20) {
        0 => f16::from_bits(rng.gen_range(1..0x400)), // subnormal
        1 => f16::ZERO,
        _ => f16::from_f32(v),
    }
}

fn random_data(id: u32, blocks: usize, rng: &mut ChaCha8Rng) -> Vec<u8> {
    let &(_, _, _, bb, halves) = FORMATS.iter().find(|f| f.0 == id).expect("format");
    let mut out = vec![0u8; blocks * bb];
    rng.fill(&mut out[..]);
    for b in out.chunks_exact_mut(bb) {
        match id {
            0 => b.copy_from_slice(&(rng.gen_range(-4.0f32..4.0)).to_le_bytes()),
            30 => b.copy_from_slice(
                &bf16::from_f32(rng.gen_range(-4.0f32..4.0))
                    .to_bits()
                    .to_le_bytes(),
            ),
            _ => {
                for &at in halves {
                    b[at..at + 2].copy_from_slice(&random_f16(rng).to_bits().to_le_bytes());
                }
            }
        }
    }
    out
}

// ---------------------------------------------------------------- independent decode

fn f16_at(b: &[u8], at: usize) -> f64 {
    f64::from(f16::from_bits(u16::from_le_bytes([b[at], b[at + 1]])).to_f32())
}

/// (scale, min) 6-bit pair `j` of a K-quant `scales[12]` (FORMATS.md §7).
fn k_scale_min(s: &[u8], j: usize) -> (f64, f64) {
    let (sc, m) = if j < 4 {
        (s[j] & 63, s[j + 4] & 63)
    } else {
        (
            (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4),
            (s[j + 4] >> 4) | ((s[j] >> 6) << 4),
        )
    };
    (f64::from(sc), f64::from(m))
}

/// Element `i` of one block, from the format's formula, exact in f64, rounded once to f32.
fn decode_element(id: u32, b: &[u8], i: usize) -> f32 {
    let nib = |at: usize, i: usize| -> f64 {
        let byte = b[at + i % 16];
        f64::from(if i < 16 { byte & 15 } else { byte >> 4 })
    };
    let v: f64 = match id {
        0 => return f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        1 => return f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32(),
        30 => return f32::from_bits(u32::from(u16::from_le_bytes([b[0], b[1]])) << 16),
        2 => (nib(2, i) - 8.0) * f16_at(b, 0),
        3 => nib(4, i) * f16_at(b, 0) + f16_at(b, 2),
        6 | 7 => {
            let at = if id == 6 { 2 } else { 4 };
            let qh = u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
            let q = nib(at + 4, i) + 16.0 * f64::from((qh >> i) & 1);
            if id == 6 {
                (q - 16.0) * f16_at(b, 0)
            } else {
                q * f16_at(b, 0) + f16_at(b, 2)
            }
        }
        8 => f64::from(b[2 + i] as i8) * f16_at(b, 0),
        12 | 13 => {
            let (sb, l) = (i / 32, i % 32);
            let qs_at = if id == 12 { 16 } else { 48 };
            let byte = b[qs_at + 32 * (sb / 2) + l];
            let mut q = f64::from(if sb % 2 == 0 { byte & 15 } else { byte >> 4 });
            if id == 13 {
                q += 16.0 * f64::from((b[16 + l] >> sb) & 1);
            }
            let (sc, m) = k_scale_min(&b[4..16], sb);
            f16_at(b, 0) * sc * q - f16_at(b, 2) * m
        }
        14 => {
            let (half, r) = (i / 128, i % 128);
            let (quarter, l) = (r / 32, r % 32);
            let byte = b[64 * half + l + 32 * (quarter % 2)];
            let lo = if quarter < 2 { byte & 15 } else { byte >> 4 };
            let hi = (b[128 + 32 * half + l] >> (2 * quarter)) & 3;
            let q = f64::from(lo | (hi << 4)) - 32.0;
            f16_at(b, 208) * f64::from(b[192 + i / 16] as i8) * q
        }
        _ => unreachable!("format {id}"),
    };
    v as f32
}

fn decode(id: u32, data: &[u8]) -> Vec<f32> {
    let &(_, _, be, bb, _) = FORMATS.iter().find(|f| f.0 == id).expect("format");
    data.chunks_exact(bb)
        .flat_map(|b| (0..be).map(move |i| decode_element(id, b, i)))
        .collect()
}

fn expected_scheme(id: u32) -> Option<&'static str> {
    Some(match id {
        2 => "int4:g32",
        8 => "int8:g32",
        6 => "int8:g32:asym",
        3 => "int4:g32:min",
        7 => "int8:g32:min",
        12 => "int4:g32:min",
        13 => "int8:g32:min",
        14 => "int8:g16:min",
        _ => return None,
    })
}

fn assert_bits_eq(what: &str, got: &[f32], want: &[f32], signed_zero_ok: bool) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let same = g.to_bits() == w.to_bits() || (signed_zero_ok && g == 0.0 && w == 0.0);
        assert!(
            same,
            "{what}[{i}]: got {g:e} ({:#x}), want {w:e} ({:#x})",
            g.to_bits(),
            w.to_bits()
        );
    }
}

/// A file with one `[n, k]` tensor of every format (odd n, several blocks per row) plus a
/// rank-1 and a rank-3 quantized tensor.
fn random_file(seed: u64) -> (Vec<u8>, Vec<Tensor>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut tensors = Vec::new();
    for &(id, name, be, _, _) in FORMATS {
        let k = if be == 1 { 37 } else { be * 3 };
        let n = 5;
        tensors.push(Tensor {
            name: format!("w.{name}"),
            dims: vec![k as u64, n],
            ty: id,
            data: random_data(id, k / be * n as usize, &mut rng),
        });
    }
    tensors.push(Tensor {
        name: "vec.Q4_K".into(),
        dims: vec![512],
        ty: 12,
        data: random_data(12, 2, &mut rng),
    });
    tensors.push(Tensor {
        name: "cube.Q8_0".into(),
        dims: vec![64, 3, 2],
        ty: 8,
        data: random_data(8, 12, &mut rng),
    });
    let kvs = meta();
    let (bytes, _) = write_gguf(&kvs, &tensors, 32);
    (bytes, tensors)
}

fn meta() -> Vec<(&'static str, V)> {
    vec![
        ("general.architecture", V::Str("llama".into())),
        ("llama.block_count", V::U32(30)),
        ("llama.context_length", V::U64(8192)),
        ("llama.attention.head_count", V::I32(9)),
        ("llama.rope.freq_base", V::F32(100000.0)),
        ("test.f64", V::F64(0.25)),
        ("test.u8", V::U8(7)),
        ("test.neg", V::I16(-3)),
        ("test.flag", V::Bool(true)),
        (
            "tokenizer.ggml.tokens",
            V::StrArr(vec!["<s>".into(), "a".into(), "ü b".into()]),
        ),
        ("tokenizer.ggml.token_type", V::I32Arr(vec![3, 1, -1])),
        ("test.floats", V::F32Arr(vec![0.5, -2.0])),
        ("test.u64s", V::U64Arr(vec![1, 2, u64::MAX])),
    ]
}

// ---------------------------------------------------------------- tests

#[test]
fn every_format_decodes_like_ggml_and_maps_exactly() {
    for seed in 0..4 {
        let (bytes, tensors) = random_file(seed);
        let g = GgufFile::parse(&bytes).expect("parse");
        assert_eq!(g.version, 3);
        assert_eq!(g.tensors.len(), tensors.len());
        for t in &tensors {
            let info = g.tensor(&t.name).expect("info");
            assert_eq!(info.dims, t.dims);
            assert_eq!(info.ggml_type, GgmlType(t.ty));
            assert_eq!(g.tensor_bytes(&t.name).expect("bytes"), &t.data[..]);
            let want = decode(t.ty, &t.data);
            let got = g.dequantize(&t.name).expect("dequantize");
            assert_bits_eq(&format!("seed {seed} {}", t.name), &got, &want, false);

            let k = t.dims[0] as usize;
            let n = t.dims[1..].iter().product::<u64>() as usize;
            match g.to_quant(&t.name).expect("to_quant") {
                GgufWeight::Dense { n: dn, k: dk, data } => {
                    assert!(
                        expected_scheme(t.ty).is_none() || t.dims.len() != 2,
                        "{} should be quantized",
                        t.name
                    );
                    assert_eq!((dn, dk), (n, k), "{}", t.name);
                    assert_bits_eq(&t.name, &data, &want, false);
                }
                GgufWeight::Quant(q) => {
                    assert_eq!(Some(q.scheme.to_string().as_str()), expected_scheme(t.ty));
                    assert_eq!((q.n, q.k), (n, k), "{}", t.name);
                    let d = q.dequant().expect("QuantTensor::dequant");
                    // Q6_K: `s·q + min` gives +0 where ggml's `d·sc·0` gives −0 (sc < 0).
                    assert_bits_eq(&format!("mapped {}", t.name), &d, &want, t.ty == 14);
                }
            }
        }
    }
}

#[test]
fn mapped_tensors_round_trip_through_safetensors_parts() {
    let (bytes, _) = random_file(9);
    let g = GgufFile::parse(&bytes).expect("parse");
    let GgufWeight::Quant(q) = g.to_quant("w.Q4_K").expect("to_quant") else {
        panic!("Q4_K should map to a QuantTensor")
    };
    assert_eq!(q.parts["scales"].dtype, qkc_quant::PartDtype::F32);
    assert_eq!(q.parts["mins"].shape, vec![5, 24]);
    assert_eq!(q.parts["qweight"].shape, vec![5, 768 / 8]);
    let GgufWeight::Quant(q6) = g.to_quant("w.Q6_K").expect("to_quant") else {
        panic!("Q6_K should map to a QuantTensor")
    };
    assert_eq!(q6.parts["scales"].shape, vec![5, 48]);
}

#[test]
fn metadata_getters() {
    let (bytes, _) = random_file(1);
    let g = GgufFile::parse_named(&bytes, "test.gguf").expect("parse");
    assert_eq!(g.get_str("general.architecture").expect("arch"), "llama");
    assert_eq!(g.get_u32("llama.block_count").expect("u32"), 30);
    assert_eq!(g.get_u32("llama.context_length").expect("u64 as u32"), 8192);
    assert_eq!(
        g.get_u64("llama.attention.head_count").expect("i32 as u64"),
        9
    );
    assert_eq!(g.get_usize("test.u8").expect("u8"), 7);
    assert_eq!(g.get_i32("test.neg").expect("i16"), -3);
    assert_eq!(g.get_f32("llama.rope.freq_base").expect("f32"), 100000.0);
    assert_eq!(g.get_f64("test.f64").expect("f64"), 0.25);
    assert_eq!(g.get_f32("llama.block_count").expect("int as f32"), 30.0);
    assert!(g.get_bool("test.flag").expect("bool"));
    assert_eq!(
        g.get_str_array("tokenizer.ggml.tokens").expect("strs"),
        vec!["<s>", "a", "ü b"]
    );
    assert_eq!(
        g.get_i32_array("tokenizer.ggml.token_type").expect("i32s"),
        vec![3, 1, -1]
    );
    assert_eq!(
        g.get_f32_array("test.floats").expect("f32s"),
        vec![0.5, -2.0]
    );
    assert_eq!(g.alignment, 32);
    assert!(matches!(g.get("test.u64s"), Some(GgufValue::Array(_, v)) if v.len() == 3));

    let e = g.get_u32("llama.missing").expect_err("missing");
    assert!(matches!(e, GgufError::MissingKey { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("llama.missing") && msg.contains("test.gguf"),
        "{msg}"
    );

    for (key, call) in [
        ("test.neg", 0),
        ("general.architecture", 0),
        ("llama.block_count", 1),
        ("tokenizer.ggml.token_type", 2),
        ("test.u64s", 3),
        ("test.floats", 4),
    ] {
        let e = match call {
            0 => g.get_u32(key).map(|_| ()),
            1 => g.get_str(key).map(|_| ()),
            2 => g.get_u32_array(key).map(|_| ()),
            3 => g.get_i32_array(key).map(|_| ()),
            _ => g.get_str_array(key).map(|_| ()),
        }
        .expect_err(key);
        assert!(matches!(e, GgufError::WrongKeyType { .. }), "{key}: {e:?}");
        assert!(e.to_string().contains(key), "{e}");
    }
}

#[test]
fn alignment_key_is_honoured() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let tensors = vec![
        Tensor {
            name: "a".into(),
            dims: vec![32, 1],
            ty: 2,
            data: random_data(2, 1, &mut rng),
        },
        Tensor {
            name: "b".into(),
            dims: vec![7],
            ty: 0,
            data: random_data(0, 7, &mut rng),
        },
    ];
    let (bytes, [_, _, data_at]) = write_gguf(&[("general.alignment", V::U32(64))], &tensors, 64);
    let g = GgufFile::parse(&bytes).expect("parse");
    assert_eq!(g.alignment, 64);
    assert_eq!(g.data_start, data_at as u64);
    assert_eq!(g.tensor("b").expect("b").offset, 64);
    assert_eq!(g.dequantize("b").expect("b"), decode(0, &tensors[1].data));

    let (bad, _) = write_gguf(&[("general.alignment", V::U32(48))], &tensors, 64);
    let e = GgufFile::parse(&bad).expect_err("alignment 48");
    assert!(e.to_string().contains("general.alignment"), "{e}");
}

#[test]
fn open_memory_maps_a_file() {
    let (bytes, tensors) = random_file(5);
    let path = std::env::temp_dir().join(format!("qkc-gguf-test-{}.gguf", std::process::id()));
    std::fs::write(&path, &bytes).expect("write");
    let g = GgufFile::open(&path).expect("open");
    for t in &tensors {
        assert_eq!(
            g.dequantize(&t.name).expect("dequantize"),
            decode(t.ty, &t.data)
        );
    }
    assert!(g.file_name().contains("qkc-gguf-test"));
    drop(g);
    let _ = std::fs::remove_file(&path);
    let e = GgufFile::open("/nonexistent/x.gguf").expect_err("no file");
    assert!(matches!(e, GgufError::Io { .. }) && e.to_string().contains("/nonexistent/x.gguf"));
}

#[test]
fn bad_magic_and_version() {
    let (mut bytes, _) = random_file(0);
    bytes[0] = b'X';
    let e = GgufFile::parse(&bytes).expect_err("magic");
    assert!(matches!(e, GgufError::BadMagic { .. }), "{e:?}");
    assert!(e.to_string().contains("not a GGUF file"));
    for v in [1u32, 4, 0x0300_0000] {
        let (mut bytes, _) = random_file(0);
        bytes[4..8].copy_from_slice(&v.to_le_bytes());
        let e = GgufFile::parse(&bytes).expect_err("version");
        assert!(
            matches!(e, GgufError::UnsupportedVersion { version, .. } if version == v),
            "{e:?}"
        );
    }
}

#[test]
fn truncation_is_reported_with_what_and_where() {
    let (bytes, _) = random_file(2);
    let g = GgufFile::parse(&bytes).expect("parse");
    let [kv_at, ti_at, data_at] = {
        let (b2, at) = write_gguf(&meta(), &random_file(2).1, 32);
        assert_eq!(b2, bytes);
        at
    };
    assert_eq!(g.data_start, data_at as u64);
    for (cut, want) in [
        (0, "magic"),
        (3, "magic"),
        (6, "version"),
        (12, "tensor count"),
        (kv_at + 3, "metadata"),
        (kv_at + 30, "general.architecture"),
        (ti_at - 2, "test.u64s"),
        (ti_at + 5, "tensor"),
        (ti_at + 20, "w.F32"),
    ] {
        let e = GgufFile::parse(&bytes[..cut]).expect_err("truncated");
        assert!(matches!(e, GgufError::Truncated { .. }), "cut {cut}: {e:?}");
        let msg = e.to_string();
        assert!(msg.contains(want), "cut {cut}: `{msg}` lacks `{want}`");
        assert!(msg.contains(&format!("the file has {cut} bytes")), "{msg}");
    }
    // Cut inside the data: the header parses, the tensors past the cut report their extent.
    let last = g.tensors.last().expect("tensors");
    let end = g.data_start + last.offset + last.n_bytes().expect("size");
    let cut = (end - 5) as usize;
    let short = GgufFile::parse(&bytes[..cut]).expect("header still parses");
    let e = short.tensor_bytes(&last.name).expect_err("data truncated");
    let msg = e.to_string();
    assert!(matches!(e, GgufError::Truncated { .. }), "{e:?}");
    assert!(
        msg.contains(&last.name)
            && msg.contains(&end.to_string())
            && msg.contains(&cut.to_string()),
        "{msg}"
    );
    assert!(short.to_quant(&last.name).is_err());
    assert!(short.dequantize("w.F32").is_ok());
}

#[test]
fn unknown_and_unsupported_types_and_missing_tensors() {
    let tensors = vec![
        Tensor {
            name: "mystery".into(),
            dims: vec![32, 2],
            ty: 200,
            data: vec![0; 64],
        },
        Tensor {
            name: "q2k".into(),
            dims: vec![256, 1],
            ty: 10,
            data: vec![0; 84],
        },
        Tensor {
            name: "short_row".into(),
            dims: vec![48, 1],
            ty: 2,
            data: vec![0; 36],
        },
    ];
    let (bytes, _) = write_gguf(&[], &tensors, 32);
    let g = GgufFile::parse(&bytes).expect("unknown types still parse");
    for e in [
        g.dequantize("mystery").expect_err("unknown"),
        g.to_quant("mystery").expect_err("unknown"),
        g.tensor_bytes("mystery").expect_err("unknown"),
    ] {
        assert!(
            matches!(e, GgufError::UnknownType { type_id: 200, .. }),
            "{e:?}"
        );
        assert!(e.to_string().contains("mystery") && e.to_string().contains("200"));
    }
    assert_eq!(g.tensor_bytes("q2k").expect("Q2_K size is known").len(), 84);
    let e = g.to_quant("q2k").expect_err("Q2_K");
    assert!(matches!(e, GgufError::UnsupportedType { .. }), "{e:?}");
    assert!(e.to_string().contains("q2k") && e.to_string().contains("Q2_K"));
    let e = g.dequantize("short_row").expect_err("48 % 32");
    assert!(matches!(e, GgufError::BadTensor { .. }) && e.to_string().contains("short_row"));
    let e = g.tensor("nope").expect_err("missing");
    assert!(matches!(e, GgufError::TensorNotFound { .. }) && e.to_string().contains("nope"));
}

#[test]
fn malformed_fields_are_errors() {
    // Unknown value type, bad bool, invalid UTF-8, too many dims, absurd counts.
    let mut base = b"GGUF".to_vec();
    base.extend_from_slice(&3u32.to_le_bytes());
    let hdr = |nt: u64, nkv: u64| {
        let mut b = base.clone();
        b.extend_from_slice(&nt.to_le_bytes());
        b.extend_from_slice(&nkv.to_le_bytes());
        b
    };
    let mut f = hdr(0, 1);
    put_str(&mut f, "k");
    f.extend_from_slice(&99u32.to_le_bytes());
    f.extend_from_slice(&[0; 16]);
    assert!(GgufFile::parse(&f)
        .expect_err("type 99")
        .to_string()
        .contains("unknown value type 99"));
    let mut f = hdr(0, 1);
    put_str(&mut f, "flag");
    f.extend_from_slice(&7u32.to_le_bytes());
    f.push(2);
    assert!(GgufFile::parse(&f)
        .expect_err("bool")
        .to_string()
        .contains("flag"));
    let mut f = hdr(0, 1);
    f.extend_from_slice(&2u64.to_le_bytes());
    f.extend_from_slice(&[0xff, 0xfe]);
    f.extend_from_slice(&[0; 16]);
    assert!(GgufFile::parse(&f)
        .expect_err("utf8")
        .to_string()
        .contains("UTF-8"));
    let mut f = hdr(1, 0);
    put_str(&mut f, "t");
    f.extend_from_slice(&9u32.to_le_bytes());
    f.extend_from_slice(&[0; 64]);
    assert!(GgufFile::parse(&f)
        .expect_err("dims")
        .to_string()
        .contains("at most 4"));
    let mut f = hdr(1, 0);
    put_str(&mut f, "huge");
    f.extend_from_slice(&3u32.to_le_bytes());
    for _ in 0..3 {
        f.extend_from_slice(&(1u64 << 40).to_le_bytes());
    }
    f.extend_from_slice(&[0; 12]);
    assert!(GgufFile::parse(&f)
        .expect_err("overflow")
        .to_string()
        .contains("huge"));
    let f = hdr(u64::MAX, u64::MAX);
    assert!(matches!(
        GgufFile::parse(&f).expect_err("counts"),
        GgufError::Truncated { .. }
    ));
    let mut f = hdr(0, 1);
    put_str(&mut f, "arr");
    f.extend_from_slice(&9u32.to_le_bytes());
    f.extend_from_slice(&8u32.to_le_bytes());
    f.extend_from_slice(&u64::MAX.to_le_bytes());
    assert!(GgufFile::parse(&f)
        .expect_err("array")
        .to_string()
        .contains("arr"));
}

/// Parse, then touch every tensor: must return, never panic.
fn exercise(bytes: &[u8]) {
    if let Ok(g) = GgufFile::parse(bytes) {
        for t in g.tensors.clone() {
            let _ = g.tensor_bytes(&t.name);
            let _ = g.dequantize(&t.name);
            if let Ok(GgufWeight::Quant(q)) = g.to_quant(&t.name) {
                let _ = q.dequant();
            }
        }
        let _ = g.get_u32("llama.block_count");
        let _ = g.get_str_array("tokenizer.ggml.tokens");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn truncated_files_never_panic(cut in 0usize..20_000) {
        let (bytes, _) = random_file(0);
        let cut = cut.min(bytes.len());
        exercise(&bytes[..cut]);
        if (cut as u64) < GgufFile::parse(&bytes).map(|g| g.data_start).unwrap_or(0)
            .saturating_sub(31)
        {
            let e = GgufFile::parse(&bytes[..cut]).expect_err("cut before the data");
            prop_assert!(matches!(e, GgufError::Truncated { .. }), "{:?}", e);
        }
    }

    #[test]
    fn corrupted_files_never_panic(flips in proptest::collection::vec((0usize..20_000, any::<u8>()), 1..8)) {
        let (mut bytes, _) = random_file(1);
        for (at, v) in flips {
            let n = bytes.len();
            bytes[at % n] = v;
        }
        exercise(&bytes);
    }

    #[test]
    fn random_bytes_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut bytes = b"GGUF\x03\0\0\0".to_vec();
        bytes.extend_from_slice(&tail);
        exercise(&bytes);
        exercise(&tail);
    }
}

// ---------------------------------------------------------------- the real file

fn real_file() -> Option<GgufFile<'static>> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tools/models/SmolLM2-135M-Instruct.Q4_1.gguf");
    if !path.exists() {
        println!("skipped: {} not found", path.display());
        return None;
    }
    Some(GgufFile::open(&path).expect("open SmolLM2"))
}

/// (sequential f64 sum, Σ bits·(i+1) mod 2^64) of a vector: both computed with numpy from
/// gguf-py's dequantization.
fn checksums(v: &[f32]) -> (f64, u64) {
    let sum = v.iter().fold(0f64, |a, &x| a + f64::from(x));
    let hash = v.iter().enumerate().fold(0u64, |h, (i, x)| {
        h.wrapping_add(u64::from(x.to_bits()).wrapping_mul(i as u64 + 1))
    });
    (sum, hash)
}

#[test]
fn real_smollm2_metadata() {
    let Some(g) = real_file() else { return };
    assert_eq!(g.version, 3);
    assert_eq!(g.tensors.len(), 272);
    assert_eq!(g.get_str("general.architecture").expect("arch"), "llama");
    assert_eq!(g.get_u32("llama.block_count").expect("blocks"), 30);
    assert_eq!(g.get_u32("llama.embedding_length").expect("hidden"), 576);
    assert_eq!(g.get_u32("llama.attention.head_count").expect("heads"), 9);
    assert_eq!(g.get_u32("llama.attention.head_count_kv").expect("kv"), 3);
    assert_eq!(g.get_u32("llama.feed_forward_length").expect("ffn"), 1536);
    assert_eq!(g.get_f32("llama.rope.freq_base").expect("rope"), 100000.0);
    assert_eq!(
        g.get_f32("llama.attention.layer_norm_rms_epsilon")
            .expect("eps"),
        1e-5_f32
    );
    let tokens = g.get_str_array("tokenizer.ggml.tokens").expect("tokens");
    assert_eq!(tokens.len(), 49152);
    assert_eq!(
        &tokens[..3],
        &["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    );
    let merges = g.get_str_array("tokenizer.ggml.merges").expect("merges");
    assert_eq!(merges.len(), 48900);
    assert_eq!(merges[0], "Ġ t");
    assert_eq!(
        g.get_i32_array("tokenizer.ggml.token_type")
            .expect("types")
            .len(),
        49152
    );
    assert_eq!(g.alignment, 32);
    assert_eq!(g.data_start, 1_785_664);
    let counts = |ty| g.tensors.iter().filter(|t| t.ggml_type == ty).count();
    assert_eq!(
        (
            counts(GgmlType::Q4_1),
            counts(GgmlType::F32),
            counts(GgmlType::Q8_0)
        ),
        (210, 61, 1)
    );
    let e = g.get_u32("llama.nope").expect_err("missing");
    assert!(
        e.to_string().contains("SmolLM2-135M-Instruct.Q4_1.gguf"),
        "{e}"
    );
}

#[test]
fn real_smollm2_tensors_match_gguf_py() {
    let Some(g) = real_file() else { return };
    // (tensor, sum, hash, first 8 values as f32 bits), from gguf-py 's `quants.dequantize`.
    let cases: [(&str, f64, u64, [u32; 8]); 3] = [
        (
            "blk.0.attn_q.weight",
            59.22322082519531,
            0x4985974afd7c1a00,
            [
                0xbdc54000, 0x3e212000, 0xbdc54000, 0xbf3b0000, 0x3f960400, 0xbdc54000, 0x3cfa0000,
                0x3f2a2800,
            ],
        ),
        (
            "blk.29.ffn_down.weight",
            49.83570861816406,
            0xbbdb33a363dc2000,
            [
                0xbe8bf000, 0x3e3ec000, 0x3e3ec000, 0x3d464000, 0x3e3ec000, 0x3e3ec000, 0xbea37800,
                0xbe39c000,
            ],
        ),
        (
            "blk.0.attn_norm.weight",
            0.6129436492919922,
            0x132a306ab0000,
            [
                0x3c650000, 0x3cc30000, 0xbca20000, 0xbcf80000, 0xbca10000, 0xbd100000, 0x3cb90000,
                0xbca40000,
            ],
        ),
    ];
    for (name, sum, hash, first) in cases {
        let v = g.dequantize(name).expect(name);
        let bits: Vec<u32> = v[..8].iter().map(|x| x.to_bits()).collect();
        assert_eq!(bits, first, "{name}");
        assert_eq!(checksums(&v), (sum, hash), "{name}");
        match g.to_quant(name).expect(name) {
            GgufWeight::Quant(q) => {
                assert_eq!(q.scheme.to_string(), "int4:g32:min", "{name}");
                let info = g.tensor(name).expect(name);
                assert_eq!((q.k as u64, q.n as u64), (info.dims[0], info.dims[1]));
                assert_bits_eq(name, &q.dequant().expect("dequant"), &v, false);
            }
            GgufWeight::Dense { n, k, data } => {
                assert_eq!((n, k), (1, 576));
                assert_eq!(data, v);
            }
        }
    }
    let GgufWeight::Quant(q) = g.to_quant("token_embd.weight").expect("embd") else {
        panic!("token_embd.weight is Q8_0")
    };
    assert_eq!(q.scheme.to_string(), "int8:g32");
    assert_eq!((q.n, q.k), (49152, 576));
    let all = g.dequantize("token_embd.weight").expect("embd");
    assert_eq!(checksums(&all), (-15353.04449415207, 0x779fe7cb39c5bf80));
    let row = &all[100 * 576..101 * 576];
    let first: Vec<u32> = row[..8].iter().map(|x| x.to_bits()).collect();
    assert_eq!(
        first,
        [
            0x3c9c1400, 0xbdaccd00, 0xbe2a0380, 0xbdce3f00, 0x3e2f9680, 0xbb326000, 0xbdce3f00,
            0xbd05c800
        ]
    );
    assert_eq!(checksums(row), (2.175539016723633, 0x1348a0bcdaf40));
    assert_bits_eq("token_embd", &q.dequant().expect("dequant"), &all, false);
}
