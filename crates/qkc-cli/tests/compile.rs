//! `qkc compile` as a user runs it: dumps with MLIR's conventions, timing, remarks, kernels.

use std::process::Command;

fn qkc(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_qkc"))
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .args(args)
        .output()
        .expect("run qkc");
    let (o, e) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert_ne!(out.status.code(), Some(101), "qkc panicked: {e}");
    (out.status.success(), o, e)
}

#[test]
fn print_after_and_print_after_all() {
    let (ok, out, err) = qkc(&[
        "compile",
        "ir/llama_block.qir",
        "--print-after",
        "fuse-dequant",
    ]);
    assert!(ok, "{err}");
    assert_eq!(err.matches("// -----// IR Dump After ").count(), 1, "{err}");
    assert!(err.contains("// -----// IR Dump After fuse-dequant //----- //"));
    assert!(out.contains("qlinear(") && out.starts_with("// One Llama-style"));
    let (ok, _, err) = qkc(&["compile", "ir/llama_block.qir", "--print-after-all"]);
    assert!(ok);
    for pass in [
        "canonicalize",
        "cse",
        "fuse-dequant",
        "fuse-outliers",
        "fuse-act-quant",
        "fuse-rotation",
        "fuse-epilogue",
        "fuse-rope",
        "dce",
    ] {
        assert!(
            err.contains(&format!("// -----// IR Dump After {pass} //----- //")),
            "{pass}"
        );
    }
    // --print-changed skips passes that changed nothing (fuse-act-quant has nothing to do here)
    let (ok, _, err) = qkc(&[
        "compile",
        "ir/llama_block.qir",
        "--print-after-all",
        "--print-changed",
    ]);
    assert!(
        ok && !err.contains("After fuse-act-quant") && err.contains("After fuse-dequant"),
        "{err}"
    );
    let (ok, _, err) = qkc(&[
        "compile",
        "ir/llama_block.qir",
        "--print-after",
        "fuse-everything",
    ]);
    assert!(
        !ok && err.contains("unknown pass `fuse-everything`"),
        "{err}"
    );
}

#[test]
fn dump_dir_time_passes_and_explain() {
    let dir = std::env::temp_dir().join(format!("qkc-dumps-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let d = dir.to_str().expect("utf8");
    let (ok, _, err) = qkc(&[
        "compile",
        "ir/swiglu_mlp_hadamard.qir",
        "--print-after-all",
        "--dump-dir",
        d,
        "--time-passes",
        "--explain-fusion",
    ]);
    assert!(ok, "{err}");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("dump dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(
        files.first().map(String::as_str),
        Some("01-canonicalize.qir"),
        "{files:?}"
    );
    assert_eq!(files.len(), 9, "{files:?}");
    // each dump is a valid graph once the header comment is there
    let last = std::fs::read_to_string(dir.join(&files[8])).expect("dump");
    assert!(qkc_ir_parse_ok(&last), "{last}");
    assert!(
        !err.contains("IR Dump After"),
        "dumps went to files, not stderr"
    );
    assert!(
        err.contains("qkc pass execution timing report") && err.contains("fuse-epilogue"),
        "{err}"
    );
    assert!(
        err.contains("fusion: every candidate pattern fused"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn qkc_ir_parse_ok(text: &str) -> bool {
    let p = std::env::temp_dir().join(format!("qkc-dump-check-{}.qir", std::process::id()));
    std::fs::write(&p, text).expect("write");
    let ok = qkc(&["check", p.to_str().expect("utf8")]).0;
    let _ = std::fs::remove_file(p);
    ok
}

#[test]
fn kernels_table_and_json() {
    let (ok, out, err) = qkc(&["compile", "ir/squeezellm_layer.qir", "--emit", "kernels"]);
    assert!(ok, "{err}");
    assert!(out.starts_with("1 kernel, 1 launch per call"), "{out}");
    let (ok, out, err) = qkc(&[
        "compile",
        "ir/llama_block.qir",
        "--emit",
        "kernels",
        "--json",
    ]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["launches"], 9);
    assert_eq!(v["kernels"].as_array().map(Vec::len), Some(7));
    assert!(v["kernels"][0]["hash"]
        .as_str()
        .is_some_and(|h| h.len() == 16));
}

#[test]
fn explain_fusion_says_why_not() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/filetests/fuse-outliers-other-input.qir"
    ))
    .expect("read");
    let input = text.split("// ---- expected ----").next().expect("input");
    let p = std::env::temp_dir().join(format!("qkc-explain-{}.qir", std::process::id()));
    std::fs::write(&p, input).expect("write");
    let (ok, _, err) = qkc(&["compile", p.to_str().expect("utf8"), "--explain-fusion"]);
    let _ = std::fs::remove_file(&p);
    assert!(ok, "{err}");
    assert!(
        err.contains("fuse-outliers: %y: not fused: %ys multiplies %z but the qlinear reads %x"),
        "{err}"
    );
}
