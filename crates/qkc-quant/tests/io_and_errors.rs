//! safetensors round trips of every scheme and of outliers, and clear errors (naming the
//! tensor) for bad input.

mod common;

use common::*;
use qkc_quant::io::{self, SafetensorsWriter};
use qkc_quant::outliers::{self, Saliency};
use qkc_quant::{Csr, Part, PartDtype, QuantError, QuantTensor, Scheme};

const SCHEMES: &[&str] = &[
    "int4:g64",
    "int3:g32:asym:act",
    "int4:g32:awq",
    "spqr3:g16",
    "spqr3:g16:perm",
    "lut3",
    "nf4:b64",
    "fp4:b64:dq",
    "aqlm:2x8",
    "aqlm:1x16",
    "bin:g64",
    "tern:pc",
    "billm:g64",
];

fn scheme(s: &str) -> Scheme {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn msg(e: QuantError) -> String {
    e.to_string()
}

#[test]
fn every_scheme_round_trips_through_a_file_with_outliers() {
    let (n, k) = (24, 128);
    let mut writer = SafetensorsWriter::new();
    let mut expected = Vec::new();
    for (i, s) in SCHEMES.iter().enumerate() {
        let w = heavy_tailed(n * k, i as u64);
        let (q, csr) = outliers::quantize_dense_and_sparse(
            scheme(s),
            &w,
            n,
            k,
            0.005,
            Saliency::Magnitude,
            i % 2 == 0,
        )
        .unwrap_or_else(|e| panic!("{s}: {e}"));
        let name = format!("layers.{i}.mlp.down_proj");
        writer
            .add_quant(&name, &q)
            .expect("add")
            .add_outliers(&name, &csr)
            .expect("add outliers");
        expected.push((name, q, csr));
    }
    writer
        .add_part("norm.weight", Part::from_f32(vec![3], &[1.0, 2.0, 3.0]))
        .expect("dense");
    let bytes = writer.to_bytes().expect("serialize");
    let meta = io::read_metadata(&bytes).expect("meta");
    assert_eq!(meta.get("format").map(String::as_str), Some("qkc"));
    for (name, q, csr) in expected {
        assert_eq!(
            meta.get(&format!("{name}.scheme")),
            Some(&q.scheme.to_string())
        );
        let loaded = io::load_weight(&bytes, &name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(loaded.quant, q, "{name}");
        assert_eq!(loaded.outliers.as_ref(), Some(&csr), "{name}");
        // from_safetensors alone ignores the nested `name.outliers.*` tensors.
        let st = safetensors::SafeTensors::deserialize(&bytes).expect("st");
        let alone = QuantTensor::from_safetensors(&st, &name, q.scheme, q.n, q.k).expect("load");
        assert_eq!(alone.dequant().expect("dq"), q.dequant().expect("dq"));
    }
}

#[test]
fn file_round_trip_on_disk() {
    let q = QuantTensor::synthesize(scheme("int4:g32"), 8, 64, 1).expect("synth");
    let dir = std::env::temp_dir().join(format!("qkc-quant-io-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("q.safetensors");
    let mut w = SafetensorsWriter::new();
    w.add_quant("w", &q).expect("add");
    w.write(&path).expect("write");
    let bytes = std::fs::read(&path).expect("read");
    assert_eq!(io::load_weight(&bytes, "w").expect("load").quant, q);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn wrong_part_shapes_and_dtypes_name_the_tensor() {
    let q = QuantTensor::synthesize(scheme("int4:g32:asym"), 4, 64, 1).expect("synth");
    let mut bad = q.clone();
    if let Some(p) = bad.parts.get_mut("scales") {
        p.shape = vec![4, 3];
    }
    let e = msg(bad.dequant().expect_err("bad shape"));
    assert!(e.contains("`scales`") && e.contains("[4, 2]"), "{e}");
    // Through a file, the error names the full tensor.
    let mut w = SafetensorsWriter::new();
    let mut bad_bytes = q.clone();
    bad_bytes
        .parts
        .insert("zeros".into(), Part::from_f32(vec![4, 2], &[0.0; 8]));
    w.add_quant("layer.q", &bad_bytes).expect("add");
    let bytes = w.to_bytes().expect("bytes");
    let e = msg(io::load_weight(&bytes, "layer.q").expect_err("bad dtype"));
    assert!(e.contains("layer.q.zeros") && e.contains("F16"), "{e}");
    // Missing and unknown parts.
    let mut missing = q.clone();
    missing.parts.remove("qweight");
    assert!(matches!(missing.dequant(), Err(QuantError::Missing(p)) if p == "qweight"));
    let mut extra = q;
    extra
        .parts
        .insert("lut".into(), Part::from_f32(vec![1], &[0.0]));
    let e = msg(extra.dequant().expect_err("extra part"));
    assert!(e.contains("`lut`") && e.contains("not a part"), "{e}");
}

#[test]
fn bad_codes_in_parts_are_reported() {
    let q = QuantTensor::synthesize(scheme("int4:g16:act"), 2, 64, 1).expect("synth");
    let mut bad = q.clone();
    bad.parts
        .insert("g_idx".into(), Part::from_i32(vec![64], &[9; 64]));
    let e = msg(bad.dequant().expect_err("g_idx out of range"));
    assert!(e.contains("g_idx") && e.contains("outside [0, 4)"), "{e}");
    // SpQR's in_perm must be a permutation of 0..K, I32 [K], and only in `:perm` schemes.
    let q = QuantTensor::synthesize(scheme("spqr3:g16:perm"), 3, 32, 1).expect("synth");
    let mut p: Vec<i32> = (0..32).collect();
    p[5] = 7;
    for (part, want) in [
        (Part::from_i32(vec![32], &p), "entry 7 is 7"),
        (Part::from_i32(vec![32], &[32; 32]), "entry 0 is 32"),
        (Part::from_i32(vec![32], &[-1; 32]), "entry 0 is -1"),
        (Part::from_u32(vec![32], &[0; 32]), "I32"),
        (Part::from_i32(vec![31], &[0; 31]), "[32]"),
    ] {
        let mut bad = q.clone();
        bad.parts.insert("in_perm".into(), part);
        let e = msg(bad.dequant().expect_err("bad in_perm"));
        assert!(e.contains("`in_perm`") && e.contains(want), "{e}");
    }
    let mut missing = q.clone();
    missing.parts.remove("in_perm");
    assert!(matches!(missing.dequant(), Err(QuantError::Missing(p)) if p == "in_perm"));
    let mut plain = q;
    plain.scheme = scheme("spqr3:g16");
    let e = msg(plain.dequant().expect_err("in_perm without :perm"));
    assert!(e.contains("`in_perm`") && e.contains("`:perm`"), "{e}");
    let mut t = QuantTensor::synthesize(scheme("tern:pc"), 1, 16, 1).expect("synth");
    t.parts
        .insert("qweight".into(), Part::from_u32(vec![1, 1], &[u32::MAX]));
    let e = msg(t.dequant().expect_err("ternary code 3"));
    assert!(e.contains("qweight") && e.contains("code 3"), "{e}");
}

#[test]
fn bad_weights_and_shapes_are_rejected() {
    let s = scheme("int4:g128");
    let mut w = gaussian(4 * 256, 1);
    w[300] = f32::NAN;
    let e = msg(QuantTensor::quantize(s, &w, 4, 256).expect_err("nan"));
    assert!(e.contains("[1, 44]") && e.contains("NaN"), "{e}");
    w[300] = f32::INFINITY;
    assert!(QuantTensor::quantize(s, &w, 4, 256).is_err());
    let e = msg(QuantTensor::quantize(s, &gaussian(4 * 200, 1), 4, 200).expect_err("group"));
    assert!(e.contains("not a multiple of 128"), "{e}");
    let e = msg(
        QuantTensor::quantize(scheme("aqlm:2x8"), &gaussian(4 * 12, 1), 4, 12)
            .expect_err("aqlm group"),
    );
    assert!(e.contains("not a multiple of 8"), "{e}");
    let e = msg(QuantTensor::quantize(s, &gaussian(10, 1), 4, 256).expect_err("len"));
    assert!(e.contains("10 weights"), "{e}");
    for bad in ["int5:g128", "int1", "lut9", "spqr5", "aqlm:5x8"] {
        assert!(bad.parse::<Scheme>().is_err(), "{bad} should not parse");
    }
    // A scheme built through serde bypasses the parser: quantize and dequant still check it.
    let zero_bits: Scheme =
        serde_json::from_str(r#"{"scheme":"uniform","bits":0,"group":{"size":64},"sym":true,"act_order":false,"packing":"gptq"}"#)
            .expect("json");
    let e = msg(QuantTensor::quantize(zero_bits, &gaussian(4 * 256, 1), 4, 256).expect_err("bits"));
    assert!(e.contains("2, 3, 4 or 8 bits"), "{e}");
    let mut q = QuantTensor::synthesize(scheme("int4:g64"), 4, 256, 1).expect("synth");
    q.scheme = zero_bits;
    assert!(q.dequant().is_err());
    // Importance vectors of the wrong size or sign.
    let opts = qkc_quant::QuantOptions {
        input_importance: Some(&[1.0; 3]),
        ..Default::default()
    };
    let e = msg(
        QuantTensor::quantize_with(s, &gaussian(4 * 256, 1), 4, 256, &opts)
            .expect_err("importance"),
    );
    assert!(e.contains("input_importance"), "{e}");
    let neg = vec![-1.0f32; 256];
    let e = msg(
        outliers::extract(&gaussian(4 * 256, 1), 4, 256, 0.1, Saliency::PerInput(&neg))
            .expect_err("neg"),
    );
    assert!(e.contains("sensitivity"), "{e}");
    assert!(outliers::extract(&gaussian(16, 1), 4, 4, 1.5, Saliency::Magnitude).is_err());
}

fn csr_parts(row_ptr: &[i32], col: &[i32], val: &[f32]) -> (Part, Part, Part) {
    (
        Part::from_i32(vec![row_ptr.len()], row_ptr),
        Part::from_i32(vec![col.len()], col),
        Part::from_f32(vec![val.len()], val),
    )
}

#[test]
fn bad_csr_is_rejected_naming_the_tensor() {
    let cases: &[(&[i32], &[i32], &str)] = &[
        (&[0, 2, 3], &[3, 1, 0], "not strictly increasing"),
        (&[0, 2, 3], &[1, 1, 0], "not strictly increasing"),
        (&[0, 2, 3], &[1, 9, 0], "out of range"),
        (&[0, 2, 3], &[1, -2, 0], "negative"),
        (&[0, 3, 2], &[0, 1, 2], "decreases"),
        (&[0, 1, 2], &[0, 1, 2], "end at nnz"),
        (&[0, 3], &[0, 1, 2], "expected I32 [3]"),
    ];
    for (rp, col, want) in cases {
        let (a, b, c) = csr_parts(rp, col, &[1.0, 2.0, 3.0]);
        let e = msg(Csr::from_parts("l.outliers", &a, &b, &c, 2, 4).expect_err(want));
        assert!(e.contains(want) && e.contains("l.outliers."), "{want}: {e}");
    }
    let (a, b, _) = csr_parts(&[0, 2, 3], &[0, 1, 2], &[]);
    let c = Part::from_f32(vec![3], &[1.0, f32::NAN, 0.0]);
    assert!(msg(Csr::from_parts("s", &a, &b, &c, 2, 4).expect_err("nan")).contains("not finite"));
    let c = Part {
        dtype: PartDtype::U8,
        shape: vec![3],
        bytes: vec![0; 3],
    };
    assert!(msg(Csr::from_parts("s", &a, &b, &c, 2, 4).expect_err("dtype")).contains("F16 or F32"));
    let csr = Csr {
        n: 2,
        k: 4,
        row_ptr: vec![0, 1, 2],
        col: vec![3, 5],
        val: vec![1.0, 1.0],
    };
    assert!(msg(csr.validate_named("x").expect_err("range")).contains("x.col"));
    let mut y = vec![0.0; 3];
    assert!(csr.matvec_add(&[0.0; 4], &mut y).is_err());
}
