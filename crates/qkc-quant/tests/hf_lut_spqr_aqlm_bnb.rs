//! Importers of SqueezeLLM, SpQR, AQLM and bitsandbytes checkpoints (`qkc_quant::hf`).
//!
//! Each test packs random stored tensors with an independent, formula-level packer written from
//! FORMATS.md (never qkc's own packing code; they live in `common/hf_pack.rs`, shared with
//! qkc-model's HF fixture), serves them through an in-memory
//! [`TensorSource`], imports, and checks `q.dequant()` (+ outliers) against the format's reference
//! formula: bit-exact in f32, SpQR within fp16 rounding (its reference computes in fp16). Shapes
//! are small and odd: N not a multiple of 64, K a multiple of the group but not of 256. SqueezeLLM
//! is also read from a real zip-pickle `.pt` (tests/data/squeezellm_tiny.pt, written by CPython's
//! pickler through make_squeezellm_pt.py). Bad input must give errors naming file and tensor.

#[path = "common/hf_pack.rs"]
mod hf_pack;

use std::collections::HashMap;

use half::f16;
use hf_pack::{h, Bnb, BnbAbsmax};
use qkc_quant::hf::common::ImportError;
use qkc_quant::hf::pt::PtFile;
use qkc_quant::hf::{aqlm, bnb, spqr, squeezellm, Imported, RawDtype, RawTensor, TensorSource};
use qkc_quant::scheme::FixedTable;
use qkc_quant::Scheme;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const FILE: &str = "model-00001-of-00002.safetensors";

#[derive(Default)]
struct MapSource(HashMap<String, (RawDtype, Vec<usize>, Vec<u8>)>);

impl MapSource {
    fn from_tensors(ts: Vec<hf_pack::Tensor>) -> MapSource {
        use safetensors::Dtype as D;
        let mut m = MapSource::default();
        for (name, dtype, shape, bytes) in ts {
            let d = match dtype {
                D::U8 => RawDtype::U8,
                D::I8 => RawDtype::I8,
                D::I16 => RawDtype::I16,
                D::I32 => RawDtype::I32,
                D::I64 => RawDtype::I64,
                D::F16 => RawDtype::F16,
                D::F32 => RawDtype::F32,
                other => panic!("{name}: {other:?}"),
            };
            m.put(&name, d, &shape, bytes);
        }
        m
    }
    fn put(&mut self, name: &str, dtype: RawDtype, shape: &[usize], bytes: Vec<u8>) {
        self.0
            .insert(name.to_string(), (dtype, shape.to_vec(), bytes));
    }
    fn i32s(&mut self, name: &str, shape: &[usize], v: &[i32]) {
        let b = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        self.put(name, RawDtype::I32, shape, b);
    }
    fn f32s(&mut self, name: &str, shape: &[usize], v: &[f32]) {
        let b = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        self.put(name, RawDtype::F32, shape, b);
    }
    fn f16s(&mut self, name: &str, shape: &[usize], v: &[f16]) {
        let b = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        self.put(name, RawDtype::F16, shape, b);
    }
    fn without(&self, name: &str) -> MapSource {
        let mut m = MapSource(self.0.clone());
        assert!(m.0.remove(name).is_some(), "{name}");
        m
    }
    fn reshaped(&self, name: &str, shape: &[usize]) -> MapSource {
        let mut m = MapSource(self.0.clone());
        m.0.get_mut(name).expect(name).1 = shape.to_vec();
        m
    }
}

impl TensorSource for MapSource {
    fn get(&self, name: &str) -> Option<RawTensor<'_>> {
        self.0.get(name).map(|(d, s, b)| RawTensor {
            dtype: *d,
            shape: s,
            data: b,
        })
    }
    fn file_of(&self, _name: &str) -> String {
        FILE.to_string()
    }
}

/// `dequant(q) + S` as a dense `[n, k]` weight (in the importer's column order).
fn dense(imp: &Imported) -> Vec<f32> {
    let mut w = imp.q.dequant().expect("dequant");
    if let Some(s) = &imp.outliers {
        s.validate().expect("valid CSR");
        s.add_to_dense(&mut w).expect("add outliers");
    }
    w
}

/// The error's message must name the file and the tensor.
fn expect_err(r: Result<Imported, ImportError>, file: &str, tensor: &str) -> String {
    let e = r.expect_err("import must fail").to_string();
    assert!(e.contains(file), "`{e}` does not name the file {file}");
    assert!(e.contains(tensor), "`{e}` does not name `{tensor}`");
    e
}

// ---------------------------------------------------------------- SqueezeLLM

struct Sq {
    src: MapSource,
    reference: Vec<f32>,
    vals: Vec<f32>,
}

fn squeezellm_case(bits: usize, n: usize, k: usize, seed: u64) -> Sq {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let m = 1usize << bits;
    let codes: Vec<u32> = (0..k * n).map(|_| rng.gen_range(0..m as u32)).collect(); // [K, N]
    let lut: Vec<f32> = (0..n * m).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
    let mut outliers = Vec::new();
    for _ in 0..n {
        let cnt = rng.gen_range(0..4usize);
        let mut cs: Vec<i32> = (0..k as i32).collect();
        for i in 0..cnt {
            let j = rng.gen_range(i..k);
            cs.swap(i, j);
        }
        let mut cs = cs[..cnt].to_vec();
        cs.sort_unstable();
        outliers.push(
            cs.into_iter()
                .map(|c| (c, rng.gen_range(-8.0f32..8.0)))
                .collect(),
        );
    }
    let sq = hf_pack::SqueezeLlm {
        n,
        k,
        bits,
        codes,
        lut,
        outliers,
    };
    Sq {
        src: MapSource::from_tensors(sq.tensors(SQ)),
        reference: sq.reference(),
        vals: sq.csr().2,
    }
}

const SQ: &str = "model.layers.3.self_attn.o_proj";

#[test]
fn squeezellm_3_and_4_bit_with_outliers_are_exact() {
    for (bits, n, k) in [
        (3usize, 37usize, 96usize),
        (4, 37, 96),
        (3, 45, 32),
        (4, 29, 200),
    ] {
        let case = squeezellm_case(bits, n, k, 10 + bits as u64);
        let imp = squeezellm::import(&case.src, SQ, n, k, squeezellm::Params { bits: bits as u8 })
            .expect("import");
        assert_eq!(imp.q.scheme, Scheme::Lut { bits: bits as u8 });
        let s = imp.outliers.as_ref().expect("outliers");
        assert_eq!(
            s.val, case.vals,
            "outliers are imported as stored (relative to c0)"
        );
        assert_eq!(dense(&imp), case.reference, "{bits}-bit [{n}, {k}]");
    }
}

#[test]
fn squeezellm_without_outliers_and_f16_table() {
    let (n, k) = (37, 64);
    let case = squeezellm_case(4, n, k, 3);
    let mut src = case.src;
    for s in ["rows", "cols", "vals"] {
        src = src.without(&format!("{SQ}.{s}"));
    }
    // vLLM's conversion stores the table in f16.
    let lut_name = format!("{SQ}.lookup_table");
    let lut: Vec<f16> = src.0[&lut_name]
        .2
        .chunks_exact(4)
        .map(|c| f16::from_f32(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
        .collect();
    src.f16s(&lut_name, &[n, 16], &lut);
    let imp = squeezellm::import(&src, SQ, n, k, squeezellm::Params { bits: 4 }).expect("import");
    assert!(imp.outliers.is_none());
    let w = imp.q.dequant().expect("test setup");
    // Reference with the f16 table: recompute codes from the packed words.
    let words = &src.0[&format!("{SQ}.qweight")].2;
    for r in 0..n {
        for c in 0..k {
            let word = i32::from_le_bytes(
                words[((c / 8) * n + r) * 4..][..4]
                    .try_into()
                    .expect("test setup"),
            );
            let code = (word as u32 >> (4 * (c % 8))) & 15;
            assert_eq!(w[r * k + c], lut[r * 16 + code as usize].to_f32());
        }
    }
}

#[test]
fn squeezellm_bad_input_names_file_and_tensor() {
    let (n, k) = (37, 96);
    let case = squeezellm_case(3, n, k, 5);
    let p = squeezellm::Params { bits: 3 };
    let lut = format!("{SQ}.lookup_table");
    let e = expect_err(
        squeezellm::import(&case.src.without(&lut), SQ, n, k, p),
        FILE,
        &lut,
    );
    assert!(e.contains("missing"), "{e}");
    let qw = format!("{SQ}.qweight");
    let e = expect_err(
        squeezellm::import(&case.src.reshaped(&qw, &[10, n]), SQ, n, k, p),
        FILE,
        &qw,
    );
    assert!(e.contains("shape"), "{e}");
    // Wrong bit width for the stored tensors.
    expect_err(
        squeezellm::import(&case.src, SQ, n, k, squeezellm::Params { bits: 4 }),
        FILE,
        &qw,
    );
    // Outlier triplet incomplete.
    let cols = format!("{SQ}.cols");
    expect_err(
        squeezellm::import(&case.src.without(&cols), SQ, n, k, p),
        FILE,
        &cols,
    );
    // Out-of-range column.
    let mut bad = MapSource(case.src.0.clone());
    let nnz = bad.0[&cols].1[0];
    bad.i32s(&cols, &[nnz], &vec![k as i32; nnz]);
    expect_err(squeezellm::import(&bad, SQ, n, k, p), FILE, &cols);
    // Unsupported bit width.
    let e = squeezellm::import(&case.src, SQ, n, k, squeezellm::Params { bits: 2 })
        .expect_err("2-bit")
        .to_string();
    assert!(e.contains(SQ) && e.contains("wbits"), "{e}");
}

// The closed formulas of make_squeezellm_pt.py.
const PT_N: usize = 37;
const PT_K: usize = 64;
const PT_P: &str = "model.layers.0.mlp.down_proj";

fn pt_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/squeezellm_tiny.pt")
}

#[test]
fn squeezellm_from_torch_pt_file() {
    let pt = PtFile::open(pt_path()).expect("open .pt");
    let names: Vec<&str> = pt.names().collect();
    assert_eq!(
        names.len(),
        5,
        "{names:?} (the int sparse_threshold entry is skipped)"
    );
    let (n, k, wpr) = (PT_N, PT_K, PT_K * 4 / 32);
    // qweight, exactly as written.
    let qw = pt.get(&format!("{PT_P}.qweight")).expect("test setup");
    assert_eq!((qw.dtype, qw.shape), (RawDtype::I32, &[wpr, n][..]));
    for w in 0..wpr {
        for c in 0..n {
            let want = (((w * n + c) as u64 * 2_654_435_761 + 12345) % (1 << 32)) as u32;
            let got = u32::from_le_bytes(
                qw.data[(w * n + c) * 4..][..4]
                    .try_into()
                    .expect("test setup"),
            );
            assert_eq!(got, want);
        }
    }
    // lookup_table is a transposed view (stride (1, N)): materialized row-major.
    let lut_at = |r: usize, e: usize| {
        ((((r * 16 + e) % 29) as f64 - 14.0) * 0.125 + r as f64 * 0.001) as f32
    };
    let lut = pt.get(&format!("{PT_P}.lookup_table")).expect("test setup");
    assert_eq!(lut.shape, &[n, 16]);
    for r in 0..n {
        for e in 0..16 {
            let v = f32::from_le_bytes(
                lut.data[(r * 16 + e) * 4..][..4]
                    .try_into()
                    .expect("test setup"),
            );
            assert_eq!(v, lut_at(r, e));
        }
    }
    let imp =
        squeezellm::import(&pt, PT_P, n, k, squeezellm::Params { bits: 4 }).expect("import .pt");
    // Reference from the formulas.
    let mut reference = vec![0f32; n * k];
    for r in 0..n {
        for c in 0..k {
            let w = (c / 8) * n + r;
            let word = ((w as u64 * 2_654_435_761 + 12345) % (1 << 32)) as u32;
            reference[r * k + c] = lut_at(r, ((word >> (4 * (c % 8))) & 15) as usize);
        }
        let cnt = r % 3;
        let mut cs: Vec<usize> = (0..cnt).map(|t| (r * 7 + t * 21) % k).collect();
        cs.sort_unstable();
        for (t, c) in cs.into_iter().enumerate() {
            reference[r * k + c] += ((r as f64 - 18.0) * 0.5 + t as f64 * 0.25 + 0.0625) as f32;
        }
    }
    assert_eq!(dense(&imp), reference);

    // the same file as an HF folder's only weights (SqueezeLLM ships `.pt` state dicts):
    // config.json + the .pt, read through HfFolder's torch-file path
    let dir = std::env::temp_dir().join(format!("qkc-hf-ptdir-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("test setup");
    std::fs::copy(pt_path(), dir.join("squeezellm-4bit.pt")).expect("test setup");
    let cfg = serde_json::json!({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "hidden_size": n, "intermediate_size": k, "num_hidden_layers": 1,
        "num_attention_heads": 1, "vocab_size": 32,
        "quantization_config": {"quant_method": "squeezellm", "wbits": 4}
    });
    std::fs::write(dir.join("config.json"), cfg.to_string()).expect("test setup");
    let folder = qkc_quant::hf::HfFolder::open(&dir).expect("open the folder");
    let (fn_, fk, w) = qkc_quant::hf::dequant_module(&folder, PT_P).expect("dequant");
    assert_eq!((fn_, fk), (n, k));
    assert_eq!(w, reference, "the folder's .pt decodes like the file");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn corrupt_pt_files_give_errors_naming_the_file() {
    let dir = std::env::temp_dir().join(format!("qkc-hf-pt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("test setup");
    let good = std::fs::read(pt_path()).expect("test setup");
    let check = |name: &str, bytes: &[u8], what: &str| {
        let path = dir.join(name);
        std::fs::write(&path, bytes).expect("test setup");
        let e = PtFile::open(&path).expect_err(name).to_string();
        assert!(
            e.contains(&path.display().to_string()),
            "`{e}` does not name the file"
        );
        assert!(e.contains(what), "`{e}` does not say `{what}`");
    };
    check("truncated.pt", &good[..good.len() / 2], "zip");
    check("garbage.pt", b"definitely not a checkpoint", "zip");
    check("legacy.pt", &[0x80, 0x02, 0x8a, 0x0a], "legacy");
    // A zip whose data.pkl is cut short / holds an unknown opcode.
    let zip_with = |pkl: &[u8]| {
        use std::io::Write;
        let mut buf = std::io::Cursor::new(Vec::new());
        let mut z = zip::ZipWriter::new(&mut buf);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        z.start_file("archive/data.pkl", opts).expect("test setup");
        z.write_all(pkl).expect("test setup");
        z.finish().expect("test setup");
        buf.into_inner()
    };
    check(
        "cut.pt",
        &zip_with(b"\x80\x02}q\x00(X\x05\x00\x00\x00ab"),
        "corrupt pickle",
    );
    check("opcode.pt", &zip_with(b"\x80\x02\xff."), "corrupt pickle");
    // A tensor whose storage entry is absent.
    let pkl = b"\x80\x02}(X\x01\x00\x00\x00wctorch._utils\n_rebuild_tensor_v2\n\
((X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x04tQK\x00K\x04\x85K\x01\x85\x89)tRu.";
    check("nostorage.pt", &zip_with(pkl), "data/0");
    // Byte flips anywhere in the pickle: an error or a (different) file, never a panic.
    let pkl_at = good
        .windows(7)
        .position(|w| w == b"\x80\x02ccoll")
        .expect("pickle in fixture");
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for i in 0..300 {
        let mut bytes = good.clone();
        let at = pkl_at + rng.gen_range(0..900);
        bytes[at] = rng.gen();
        let path = dir.join(format!("flip{i}.pt"));
        std::fs::write(&path, &bytes).expect("write");
        if let Ok(pt) = PtFile::open(&path) {
            let _ = squeezellm::import(&pt, PT_P, PT_N, PT_K, squeezellm::Params { bits: 4 });
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

// ---------------------------------------------------------------- SpQR

struct SpqrCase {
    src: MapSource,
    /// fp16 host reference (`dequantize_compressed`) + outliers, f32 view, SpQR's stored
    /// (permuted) column order.
    reference: Vec<f32>,
    /// Per-element tolerance: a few fp16 ulps of the terms.
    tol: Vec<f32>,
    perm: Vec<u32>,
}

fn spqr_case(n: usize, k: usize, ptcsr: bool, seed: u64) -> SpqrCase {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (tn, tk) = (n.div_ceil(16), k / 16);
    let stats = (0..tn * tk)
        .map(|_| {
            let (ss, sz) = (h(rng.gen_range(0.005..0.02)), h(rng.gen_range(-2.0..-0.1)));
            let (zs, zz) = (h(rng.gen_range(0.3..1.2)), h(rng.gen_range(-0.5..0.5)));
            [ss, zs, sz, zz]
        })
        .collect();
    let sz_codes = (0..n * tk)
        .map(|_| (rng.gen_range(0..8u8), rng.gen_range(0..8u8)))
        .collect();
    let q = (0..n * k).map(|_| rng.gen_range(0..8u8)).collect();
    // Outliers: a few per row, CSR sorted by column.
    let mut outliers: Vec<Vec<(u16, f16)>> = Vec::new();
    for _ in 0..n {
        let cnt = rng.gen_range(0..4usize);
        let mut cs: Vec<u16> = Vec::new();
        while cs.len() < cnt {
            let c = rng.gen_range(0..k as u16);
            if !cs.contains(&c) {
                cs.push(c);
            }
        }
        cs.sort_unstable();
        outliers.push(
            cs.into_iter()
                .map(|c| (c, h(rng.gen_range(-3.0..3.0))))
                .collect(),
        );
    }
    // A random input permutation, u16 pairs.
    let perm: Vec<u32> = hf_pack::random_perm(&mut rng, k)
        .into_iter()
        .map(|v| v as u32)
        .collect();
    let sp = hf_pack::Spqr {
        n,
        k,
        stats,
        sz_codes,
        q,
        outliers,
        perm: Some(perm.clone()),
    };
    let (reference, tol) = sp.reference();
    SpqrCase {
        src: MapSource::from_tensors(sp.tensors(SP, ptcsr)),
        reference,
        tol,
        perm,
    }
}

const SP: &str = "model.layers.1.mlp.up_proj";

/// A stored-order `[n, k]` array in the original column order: `out[:, perm[i]] = v[:, i]`.
fn unpermute(v: &[f32], perm: &[u32], n: usize, k: usize) -> Vec<f32> {
    let mut out = vec![f32::NAN; n * k];
    for r in 0..n {
        for (i, &c) in perm.iter().enumerate() {
            out[r * k + c as usize] = v[r * k + i];
        }
    }
    out
}

/// The stored `in_perm` part of a `:perm` import.
fn in_perm_part(imp: &Imported) -> Vec<u32> {
    let p = imp.q.parts.get("in_perm").expect("in_perm part");
    assert_eq!(p.dtype, qkc_quant::PartDtype::I32);
    assert_eq!(p.shape, [imp.q.k]);
    p.to_f64().into_iter().map(|v| v as u32).collect()
}

#[test]
fn spqr_csr_and_ptcsr_within_fp16_rounding() {
    for (n, k, ptcsr) in [
        (48usize, 80usize, false),
        (48, 80, true),
        (16, 16, false),
        (80, 48, true),
        (40, 48, false),
        (7, 32, false),
    ] {
        let case = spqr_case(n, k, ptcsr, n as u64 * 7 + k as u64 + u64::from(ptcsr));
        let imp = spqr::import(&case.src, SP, n, k, spqr::Params::default()).expect("import");
        let identity = case.perm.iter().enumerate().all(|(i, &c)| c as usize == i);
        assert!(!identity, "test setup: [{n}, {k}] drew the identity");
        assert_eq!(imp.q.scheme.to_string(), "spqr3:g16:perm");
        assert_eq!(in_perm_part(&imp), case.perm, "in_perm as stored");
        // dequant() + outliers is the weight in the ORIGINAL column order: the stored-order
        // fp16 reference with column i moved to in_perm[i].
        let want = unpermute(&case.reference, &case.perm, n, k);
        let tol = unpermute(&case.tol, &case.perm, n, k);
        let w = dense(&imp);
        for (i, ((&a, &r), &t)) in w.iter().zip(&want).zip(&tol).enumerate() {
            assert!(
                (a - r).abs() <= t,
                "[{n}, {k}] ptcsr={ptcsr} at ({}, {}): {a} vs reference {r} (tol {t})",
                i / k,
                i % k,
            );
        }
    }
}

#[test]
fn spqr_permutation_direction() {
    // SpQR's layer: y = (W + S) · x̃ with x̃[i] = x[in_perm[i]], W and S in stored order (the
    // fp16 host reference `case.reference`). qkc's dequant() + outliers must give W_orig with
    // y = W_orig · x for every x, fresh random x (never zeros), f64 sums; tolerance: the
    // reference's per-element fp16 tolerance times |x|.
    let (n, k) = (32, 64);
    let case = spqr_case(n, k, false, 99);
    let imp = spqr::import(&case.src, SP, n, k, spqr::Params::default()).expect("test setup");
    assert_eq!(imp.q.scheme.to_string(), "spqr3:g16:perm");
    let w = dense(&imp);
    let perm = &case.perm;
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for _ in 0..3 {
        let x: Vec<f64> = (0..k)
            .map(|_| {
                let v: f64 = rng.gen_range(-1.0..1.0);
                if v == 0.0 {
                    0.5
                } else {
                    v
                }
            })
            .collect();
        let mut wrong_way = 0f64;
        for r in 0..n {
            let spqr_y: f64 = (0..k)
                .map(|i| f64::from(case.reference[r * k + i]) * x[perm[i] as usize])
                .sum();
            let tol: f64 = (0..k)
                .map(|i| f64::from(case.tol[r * k + i]) * x[perm[i] as usize].abs())
                .sum();
            let qkc_y: f64 = (0..k).map(|c| f64::from(w[r * k + c]) * x[c]).sum();
            assert!(
                (qkc_y - spqr_y).abs() <= tol + 1e-9,
                "row {r}: qkc {qkc_y} vs SpQR {spqr_y} (tol {tol})"
            );
            // the inverse permutation (x̃[in_perm[i]] = x[i]) must not fit as well
            let inv_y: f64 = (0..k)
                .map(|i| f64::from(case.reference[r * k + perm[i] as usize]) * x[i])
                .sum();
            wrong_way = wrong_way.max((qkc_y - inv_y).abs());
        }
        assert!(
            wrong_way > 0.1,
            "test cannot tell the directions apart ({wrong_way})"
        );
    }
    // The part survives a safetensors round trip of the QuantTensor.
    let mut wr = qkc_quant::io::SafetensorsWriter::new();
    wr.add_quant("l", &imp.q).expect("add");
    let bytes = wr.to_bytes().expect("serialize");
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("parse");
    let back =
        qkc_quant::QuantTensor::from_safetensors(&st, "l", imp.q.scheme, n, k).expect("load");
    assert_eq!(back, imp.q);
}

#[test]
fn spqr_identity_or_absent_perm_is_plain_spqr() {
    let (n, k) = (48, 80);
    let case = spqr_case(n, k, true, 3);
    let ip = format!("{SP}.in_perm");
    let pr = spqr::Params::default();
    // No in_perm: stored order is the original order.
    let imp = spqr::import(&case.src.without(&ip), SP, n, k, pr).expect("import");
    assert_eq!(imp.q.scheme.to_string(), "spqr3:g16");
    assert!(!imp.q.parts.contains_key("in_perm"));
    let check = |imp: &Imported| {
        for (i, ((&a, &r), &t)) in dense(imp)
            .iter()
            .zip(&case.reference)
            .zip(&case.tol)
            .enumerate()
        {
            assert!(
                (a - r).abs() <= t,
                "({}, {}): {a} vs {r} (tol {t})",
                i / k,
                i % k
            );
        }
    };
    check(&imp);
    // An identity in_perm, stored: the same.
    let mut src = MapSource(case.src.0.clone());
    let id: Vec<i32> = (0..k as i32 / 2)
        .map(|i| (2 * i) | (2 * i + 1) << 16)
        .collect();
    src.i32s(&ip, &[k / 2], &id);
    let imp = spqr::import(&src, SP, n, k, pr).expect("import");
    assert_eq!(imp.q.scheme.to_string(), "spqr3:g16");
    assert!(!imp.q.parts.contains_key("in_perm"));
    check(&imp);
}

#[test]
fn spqr_bad_input() {
    let (n, k) = (48, 80);
    let case = spqr_case(n, k, false, 1);
    let pr = spqr::Params::default();
    let dw = format!("{SP}.dense_weights");
    expect_err(
        spqr::import(&case.src.without(&dw), SP, n, k, pr),
        FILE,
        &dw,
    );
    expect_err(
        spqr::import(&case.src.reshaped(&dw, &[7]), SP, n, k, pr),
        FILE,
        &dw,
    );
    let ro = format!("{SP}.row_offsets");
    let mut bad = MapSource(case.src.0.clone());
    bad.i32s(&ro, &[5], &[0, 0, 0, 0, 0]);
    expect_err(spqr::import(&bad, SP, n, k, pr), FILE, &ro);
    // Offsets that jump past the entries (and come back): an error, not a panic.
    let nnz = case.src.0[&format!("{SP}.col_vals")].1[0] as i32;
    let mut jump = vec![nnz; n + 1];
    jump[0] = 0;
    jump[1] = nnz + 10;
    let mut bad = MapSource(case.src.0.clone());
    bad.i32s(&ro, &[n + 1], &jump);
    expect_err(spqr::import(&bad, SP, n, k, pr), FILE, &ro);
    let ip = format!("{SP}.in_perm");
    let mut bad = MapSource(case.src.0.clone());
    bad.i32s(&ip, &[k / 2], &vec![0; k / 2]);
    let e = expect_err(spqr::import(&bad, SP, n, k, pr), FILE, &ip);
    assert!(e.contains("permutation"), "{e}");
    // No in_perm at all is fine (spqr_identity_or_absent_perm_is_plain_spqr checks the values).
    let imp = spqr::import(&case.src.without(&ip), SP, n, k, pr).expect("test setup");
    assert!(!imp.q.parts.contains_key("in_perm"));
    // Unsupported configurations.
    let e = spqr::import(&case.src, SP, n, k, spqr::Params { bits: 4, ..pr })
        .expect_err("4-bit")
        .to_string();
    assert!(e.contains(SP) && e.contains("bits=4"), "{e}");
    assert!(spqr::import(&case.src, SP, n, 72, pr).is_err());
}

// ---------------------------------------------------------------- AQLM

#[test]
fn aqlm_every_shape_is_exact() {
    // (C, nbits, og, ig): 1x16, 2x8, and other shapes the format allows.
    for (seed, (c, nbits, og, ig)) in [
        (1usize, 16usize, 1usize, 8usize),
        (2, 8, 1, 8),
        (1, 12, 1, 8),
        (3, 6, 2, 4),
        (4, 4, 1, 8),
    ]
    .into_iter()
    .enumerate()
    {
        let (n, k) = (38usize, 88usize);
        let mut rng = ChaCha8Rng::seed_from_u64(seed as u64);
        let (no, ni, m) = (n / og, k / ig, 1usize << nbits);
        let aq = hf_pack::Aqlm {
            n,
            k,
            c,
            nbits,
            og,
            ig,
            codes: (0..no * ni * c)
                .map(|_| rng.gen_range(0..m as u32))
                .collect(),
            books: (0..c * m * og * ig)
                .map(|_| h(rng.gen_range(-1.0..1.0)))
                .collect(),
            scales: (0..no).map(|_| h(rng.gen_range(0.01..0.2))).collect(),
        };
        let p = "model.layers.2.self_attn.k_proj";
        let src = MapSource::from_tensors(aq.tensors(p));
        let params = aqlm::Params {
            num_codebooks: c as u8,
            nbits_per_codebook: nbits as u8,
            in_group_size: ig as u32,
            out_group_size: og as u32,
        };
        let imp = aqlm::import(&src, p, n, k, params).expect("import");
        let w = imp.q.dequant().expect("test setup");
        let want = aq.reference();
        for (i, (a, b)) in w.iter().zip(&want).enumerate() {
            assert_eq!(a, b, "{c}x{nbits} at {i}");
        }
        assert_eq!(w.len(), want.len());
        let books = &aq.books;
        if (c, nbits) == (1, 16) {
            assert_eq!(imp.q.scheme.to_string(), "aqlm:1x16");
            assert_eq!(aqlm::Params::AQLM_1X16, params);
        }
        if (c, nbits) == (2, 8) {
            assert_eq!(imp.q.scheme.to_string(), "aqlm:2x8");
        }
        // Bad input.
        let cb = format!("{p}.codebooks");
        expect_err(aqlm::import(&src.without(&cb), p, n, k, params), FILE, &cb);
        let cd = format!("{p}.codes");
        expect_err(
            aqlm::import(&src.reshaped(&cd, &[no, ni + 1, c]), p, n, k, params),
            FILE,
            &cd,
        );
        let mut bad = MapSource(src.0.clone());
        let f32books: Vec<f32> = books.iter().map(|v| v.to_f32()).collect();
        bad.f32s(&cb, &[c, m, og, ig], &f32books);
        let e = expect_err(aqlm::import(&bad, p, n, k, params), FILE, &cb);
        assert!(e.contains("F16"), "{e}");
    }
}

// ---------------------------------------------------------------- bitsandbytes

struct BnbCase {
    src: MapSource,
    reference: Vec<f32>,
}

/// `nested`: None, Some(true) = bitsandbytes' dynamic map, Some(false) = some other map.
fn bnb_case(
    t: FixedTable,
    n: usize,
    k: usize,
    bs: usize,
    nested: Option<bool>,
    seed: u64,
) -> BnbCase {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let total = n * k;
    let blocks = total.div_ceil(bs);
    let codes: Vec<u8> = (0..total).map(|_| rng.gen_range(0..16u8)).collect();
    let absmax = match nested {
        None => BnbAbsmax::Plain((0..blocks).map(|_| rng.gen_range(0.01..2.0)).collect()),
        Some(dynamic) => {
            let nbs = 256;
            let q: Vec<u8> = (0..blocks).map(|_| rng.gen()).collect();
            let nested_absmax: Vec<f32> = (0..blocks.div_ceil(nbs))
                .map(|_| rng.gen_range(0.1..1.0))
                .collect();
            let offset: f32 = rng.gen_range(0.5..1.5);
            let map: Vec<f32> = if dynamic {
                qkc_quant::fixed::dynamic_map().to_vec()
            } else {
                (0..256).map(|i| (i as f32 - 127.5) / 128.0).collect()
            };
            BnbAbsmax::Nested {
                q,
                nested_absmax,
                nbs,
                offset,
                map,
            }
        }
    };
    let b = Bnb {
        n,
        k,
        nf4: t == FixedTable::Nf4,
        bs,
        codes,
        absmax,
    };
    BnbCase {
        src: MapSource::from_tensors(b.tensors(BB, "bfloat16")),
        reference: b.reference(),
    }
}

const BB: &str = "model.layers.5.mlp.gate_proj";

#[test]
fn bnb_nf4_fp4_plain_and_double_quant_are_exact() {
    for t in [FixedTable::Nf4, FixedTable::Fp4] {
        for (n, k, bs, nested) in [
            (37usize, 51usize, 64usize, None),
            (37, 51, 128, None),
            (37, 501, 64, Some(true)),
            (29, 600, 64, Some(false)),
        ] {
            let case = bnb_case(t, n, k, bs, nested, (n * k + bs) as u64);
            let imp = bnb::import(
                &case.src,
                BB,
                n,
                k,
                bnb::Params {
                    quant_type: Some(t),
                },
            )
            .expect("import");
            let want_scheme = format!(
                "{}:b{bs}{}",
                if t == FixedTable::Nf4 { "nf4" } else { "fp4" },
                if nested == Some(true) { ":dq" } else { "" }
            );
            assert_eq!(imp.q.scheme.to_string(), want_scheme);
            let w = imp.q.dequant().expect("test setup");
            assert_eq!(w.len(), case.reference.len());
            for (i, (a, b)) in w.iter().zip(&case.reference).enumerate() {
                assert!(
                    a == b,
                    "{t:?} [{n}, {k}] b{bs} {nested:?} at {i}: {a} vs {b}"
                );
            }
        }
    }
}

#[test]
fn bnb_bad_input() {
    let (n, k) = (37, 51);
    let case = bnb_case(FixedTable::Nf4, n, k, 64, None, 4);
    let pr = bnb::Params::default();
    let am = format!("{BB}.weight.absmax");
    expect_err(bnb::import(&case.src.without(&am), BB, n, k, pr), FILE, &am);
    let w = format!("{BB}.weight");
    expect_err(
        bnb::import(&case.src.reshaped(&w, &[5, 1]), BB, n, k, pr),
        FILE,
        &w,
    );
    // A custom 4-bit code has no qkc scheme.
    let qm = format!("{BB}.weight.quant_map");
    let mut bad = MapSource(case.src.0.clone());
    bad.f32s(&qm, &[16], &[0.5; 16]);
    expect_err(bnb::import(&bad, BB, n, k, pr), FILE, &qm);
    // Quant state: wrong shape, corrupt JSON, missing, type disagreeing with the config.
    let qs = format!("{BB}.weight.quant_state.bitsandbytes__nf4");
    expect_err(bnb::import(&case.src, BB, n, k + 1, pr), FILE, &qs);
    let mut bad = MapSource(case.src.0.clone());
    bad.put(&qs, RawDtype::U8, &[5], b"{oops".to_vec());
    let e = expect_err(bnb::import(&bad, BB, n, k, pr), FILE, &qs);
    assert!(e.contains("JSON"), "{e}");
    expect_err(bnb::import(&case.src.without(&qs), BB, n, k, pr), FILE, &qs);
    let fp4 = bnb::Params {
        quant_type: Some(FixedTable::Fp4),
    };
    expect_err(bnb::import(&case.src, BB, n, k, fp4), FILE, &qs);
}
