//! `qkc import` / `qkc generate` on SmolLM2-135M (tools/models, fetched by `make setup`), and the
//! errors a damaged or foreign GGUF gets: each names what is wrong, exits 1, never panics.
//! Skipped (with a line saying so) when the model file is absent.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn model() -> Option<PathBuf> {
    let p = root().join("tools/models/SmolLM2-135M-Instruct.Q4_1.gguf");
    if p.exists() {
        Some(p)
    } else {
        println!("skipped: {} not found (run `make setup`)", p.display());
        None
    }
}

fn qkc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_qkc"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("run qkc")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn find(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len())
        .position(|w| w == needle)
        .expect("pattern in the GGUF")
}

/// Write a damaged copy of the model and run `qkc generate` on it; returns stderr.
fn damaged(name: &str, edit: impl FnOnce(&mut Vec<u8>)) -> Option<String> {
    let src = model()?;
    let mut b = std::fs::read(src).expect("read the model");
    edit(&mut b);
    let dir = std::env::temp_dir().join(format!("qkc-model-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let p = dir.join(name);
    std::fs::write(&p, &b).expect("write");
    let o = qkc(&[
        "generate",
        p.to_str().expect("utf-8 path"),
        "--prompt",
        "Hi",
        "--max-tokens",
        "2",
    ]);
    let (_, err) = text(&o);
    let _ = std::fs::remove_file(&p);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{name}: expected exit 1, stderr:\n{err}"
    );
    assert!(!err.contains("panicked"), "{name}: panicked:\n{err}");
    Some(err)
}

#[test]
fn truncated_gguf_names_the_tensor() {
    let Some(err) = damaged("truncated.gguf", |b| b.truncate(b.len() / 2)) else {
        return;
    };
    assert!(
        err.contains("truncated") || err.contains("past the end"),
        "{err}"
    );
    assert!(err.contains(".weight"), "the error names a tensor: {err}");
}

#[test]
fn truncated_header_is_reported() {
    let Some(err) = damaged("header.gguf", |b| b.truncate(1000)) else {
        return;
    };
    assert!(err.contains("truncated"), "{err}");
}

#[test]
fn foreign_architecture_is_refused() {
    let Some(err) = damaged("arch.gguf", |b| {
        let at = find(b, b"general.architecture") + "general.architecture".len();
        // value: u32 type (8 = string), u64 length 5, "llama"
        let v = at + 4 + 8;
        assert_eq!(&b[v..v + 5], b"llama");
        b[v..v + 5].copy_from_slice(b"gemma");
    }) else {
        return;
    };
    assert!(
        err.contains("architecture `gemma` is not supported"),
        "{err}"
    );
}

#[test]
fn missing_metadata_key_is_named() {
    let Some(err) = damaged("key.gguf", |b| {
        let at = find(b, b"llama.block_count");
        b[at..at + 17].copy_from_slice(b"llama.blockcount_");
    }) else {
        return;
    };
    assert!(err.contains("llama.block_count"), "{err}");
}

#[test]
fn unknown_tensor_type_is_named() {
    let Some(err) = damaged("type.gguf", |b| {
        // tensor info: u64 name length, name, u32 n_dims, u64 dims[n], u32 type
        let name = b"blk.0.attn_q.weight";
        let at = find(b, name) + name.len();
        let nd = u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]) as usize;
        let ty = at + 4 + 8 * nd;
        b[ty..ty + 4].copy_from_slice(&99u32.to_le_bytes());
    }) else {
        return;
    };
    assert!(
        err.contains("blk.0.attn_q.weight") && err.contains("99"),
        "{err}"
    );
}

#[test]
fn import_writes_a_graph_that_generates_like_the_gguf() {
    let Some(p) = model() else { return };
    let out = std::env::temp_dir().join(format!("qkc-import-{}", std::process::id()));
    let o = qkc(&[
        "import",
        p.to_str().expect("path"),
        "-o",
        out.to_str().expect("path"),
    ]);
    let (so, se) = text(&o);
    assert!(o.status.success(), "{so}{se}");
    let g = std::fs::read_to_string(out.join("model.qir")).expect("model.qir");
    assert!(g.contains("%l29_wd = weight \"blk.29.ffn_down.weight\" : q<int4:g32:min>[576, 1536]"));
    assert!(g.contains("%head = weight \"output.weight\" : q<int8:g32>[49152, 576]"));
    // the binding points at the GGUF (memory-mapped, not copied)
    let man = std::fs::read_to_string(out.join("qkc-import.json")).expect("manifest");
    assert!(man.contains("SmolLM2-135M-Instruct.Q4_1.gguf"), "{man}");
    let gen = |m: &str| {
        let o = qkc(&[
            "generate",
            m,
            "--prompt",
            "The capital of France is",
            "--max-tokens",
            "6",
            "-q",
        ]);
        assert!(o.status.success(), "{:?}", text(&o));
        text(&o).0
    };
    let a = gen(out.to_str().expect("path"));
    let b = gen(p.to_str().expect("path"));
    assert_eq!(a, b);
    assert!(a.contains("Paris"), "{a}");
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn dequant_writes_the_gguf_weight_as_npy() {
    let Some(p) = model() else { return };
    let out = std::env::temp_dir().join(format!("qkc-dequant-{}.npy", std::process::id()));
    let o = qkc(&[
        "dequant",
        "--in",
        p.to_str().expect("path"),
        "--tensor",
        "blk.3.ffn_down",
        "--out",
        out.to_str().expect("path"),
    ]);
    assert!(o.status.success(), "{:?}", text(&o));
    let b = std::fs::read(&out).expect("npy");
    let hl = u16::from_le_bytes([b[8], b[9]]) as usize;
    let header = std::str::from_utf8(&b[10..10 + hl]).expect("header");
    assert!(header.contains("'shape': (576, 1536)"), "{header}");
    let got: Vec<f32> = b[10 + hl..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let f = qkc_quant::gguf::GgufFile::open(&p).expect("gguf");
    let want = f.dequantize("blk.3.ffn_down.weight").expect("dequant");
    assert_eq!(got.len(), want.len());
    assert!(
        got.iter()
            .zip(&want)
            .all(|(a, b)| a.to_bits() == b.to_bits()),
        "not bit-exact"
    );
    let _ = std::fs::remove_file(&out);
    // a module that is not there is named
    let o = qkc(&[
        "dequant",
        "--in",
        p.to_str().expect("path"),
        "--tensor",
        "blk.99.ffn_down",
        "--out",
        "/dev/null",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).1.contains("blk.99.ffn_down"), "{:?}", text(&o));
}

#[test]
fn generate_refuses_bad_requests_before_compiling() {
    let Some(p) = model() else { return };
    let m = p.to_str().expect("path");
    for (args, want) in [
        (vec!["--prompt", ""], "the prompt is empty"),
        (vec!["--prompt", "hi", "--ctx", "2"], "raise --ctx"),
        (
            vec!["--prompt", "hi", "--temperature", "-1"],
            "--temperature must be a number >= 0",
        ),
        (
            vec!["--prompt", "hi", "--top-p", "0"],
            "--top-p must be in (0, 1]",
        ),
        (
            vec!["--prompt", "hi", "--act-bits", "5"],
            "4 or 8 bits, not 5",
        ),
    ] {
        let mut a = vec!["generate", m];
        a.extend(args.iter().copied());
        let o = qkc(&a);
        let (_, err) = text(&o);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(!err.contains("panicked"));
    }
}
