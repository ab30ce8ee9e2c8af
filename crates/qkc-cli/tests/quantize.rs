//! `qkc quantize` end to end, as a user runs it: synthesize an fp16 MLP checkpoint, quantize it
//! into every scheme (and with QuaRot's Hadamard and 0.5–1% outliers), run the rewritten graph in
//! the interpreter against the float model, and compile it to two fused kernels.

use std::path::{Path, PathBuf};
use std::process::Command;

const MLP: &str = r#"graph @mlp {
  %x = input "x" : f16[T, 128]
  %w_gate = weight "mlp.gate_proj" : f16[256, 128]
  %w_up = weight "mlp.up_proj" : f16[256, 128]
  %w_down = weight "mlp.down_proj" : f16[128, 256]
  %gate = linear(%x, %w_gate) : f16[T, 256]
  %up = linear(%x, %w_up) : f16[T, 256]
  %act = silu(%gate) : f16[T, 256]
  %h = mul(%act, %up) : f16[T, 256]
  %y = linear(%h, %w_down) : f16[T, 128]
  return %y
}
"#;

fn qkc(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_qkc"))
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

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("qkc-quantize-test-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("tmp");
    d.join(name)
}

/// The output line's statistics: (mean, absmax, checksum).
fn stats(stdout: &str) -> (f64, f64, f64) {
    let line = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("%y:"))
        .unwrap_or_else(|| panic!("no output in {stdout}"));
    let get = |k: &str| -> f64 {
        let s = line
            .split(&format!("{k}="))
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .expect("stat");
        s.parse().expect("number")
    };
    (get("mean"), get("absmax"), get("checksum"))
}

fn p(path: &Path) -> &str {
    path.to_str().expect("utf8 path")
}

#[test]
fn every_scheme_quantizes_runs_and_fuses() {
    let graph = tmp("mlp.qir");
    std::fs::write(&graph, MLP).expect("write");
    let fp = tmp("mlp.safetensors");
    let (ok, _, e) = qkc(&["synth-weights", p(&graph), "--seed", "11", "-o", p(&fp)]);
    assert!(ok, "{e}");
    let (ok, out, e) = qkc(&["run", p(&graph), "--weights", p(&fp), "--batch", "2"]);
    assert!(ok, "{e}");
    let (_, fp_absmax, fp_sum) = stats(&out);
    // (scheme, extra args, tolerated relative checksum deviation from the float model)
    let cases: &[(&str, &[&str], f64)] = &[
        ("int8:pc", &[], 0.02),
        ("int4:g32", &[], 0.25),
        ("int4:g32:asym", &["--rotate", "hadamard"], 0.25),
        ("int3:g32:act", &[], 0.5),
        ("int2:g32:asym", &[], 1.5),
        ("spqr3:g16", &["--outliers", "1%"], 0.5),
        ("lut3", &["--rotate", "hadamard", "--outliers", "0.5%"], 0.5),
        ("lut4", &[], 0.25),
        ("nf4:b64", &[], 0.25),
        ("fp4:b64:dq", &[], 0.4),
        ("aqlm:2x8", &[], 1.0),
        ("aqlm:1x16", &[], 1.0),
        ("bin:g32", &[], 3.0),
        ("tern:g32", &[], 3.0),
        ("billm:g32", &[], 3.0),
    ];
    let mut failures = Vec::new();
    for (scheme, extra, tol) in cases {
        let q = tmp(&format!("{}.safetensors", scheme.replace(':', "_")));
        let g2 = tmp(&format!("{}.qir", scheme.replace(':', "_")));
        let mut args = vec![
            "quantize",
            "--scheme",
            scheme,
            "--in",
            p(&fp),
            "--out",
            p(&q),
            "--graph",
            p(&graph),
            "--graph-out",
            p(&g2),
        ];
        args.extend_from_slice(extra);
        let (ok, _, e) = qkc(&args);
        if !ok {
            failures.push(format!("{scheme}: quantize failed: {e}"));
            continue;
        }
        let (ok, out, e) = qkc(&["run", p(&g2), "--weights", p(&q), "--batch", "2"]);
        if !ok {
            failures.push(format!("{scheme}: run failed: {e}"));
            continue;
        }
        let (_, absmax, sum) = stats(&out);
        let dev = (sum - fp_sum).abs() / fp_absmax.max(fp_sum.abs());
        if !absmax.is_finite() || dev > *tol {
            failures.push(format!(
                "{scheme}: checksum {sum} vs float {fp_sum} (deviation {dev:.3} > {tol})"
            ));
        }
        let (ok, kernels, e) = qkc(&["compile", p(&g2), "--emit", "kernels"]);
        if !ok || !kernels.starts_with("2 kernels, 2 launches") {
            failures.push(format!(
                "{scheme}: expected gate_up + down as 2 kernels, got:\n{kernels}{e}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn bad_quantize_requests_get_clear_errors() {
    let graph = tmp("mlp2.qir");
    std::fs::write(&graph, MLP).expect("write");
    let fp = tmp("mlp2.safetensors");
    assert!(qkc(&["synth-weights", p(&graph), "-o", p(&fp)]).0);
    let out = tmp("never.safetensors");
    // group size that does not divide K
    let (ok, _, e) = qkc(&[
        "quantize",
        "--scheme",
        "int4:g96",
        "--in",
        p(&fp),
        "--out",
        p(&out),
    ]);
    assert!(!ok && e.contains("mlp.") && e.contains("96"), "{e}");
    // unknown scheme
    let (ok, _, e) = qkc(&[
        "quantize",
        "--scheme",
        "int5",
        "--in",
        p(&fp),
        "--out",
        p(&out),
    ]);
    assert!(!ok && e.contains("int5"), "{e}");
    // not a checkpoint
    let (ok, _, e) = qkc(&[
        "quantize",
        "--scheme",
        "int4",
        "--in",
        p(&graph),
        "--out",
        p(&out),
    ]);
    assert!(!ok && e.contains("not a safetensors file"), "{e}");
    // a recipe with a typo names its line
    let recipe = tmp("bad.recipe");
    std::fs::write(
        &recipe,
        "# comment\n*.down_proj lut3 outliers=0.5%\n* int4:g32 rotate=sideways\n",
    )
    .expect("write");
    let (ok, _, e) = qkc(&[
        "quantize",
        "--recipe",
        p(&recipe),
        "--in",
        p(&fp),
        "--out",
        p(&out),
    ]);
    assert!(
        !ok && e.contains(":3:") && e.contains("rotate=sideways"),
        "{e}"
    );
}

#[test]
fn recipes_mix_schemes_per_layer() {
    let graph = tmp("mlp3.qir");
    std::fs::write(&graph, MLP).expect("write");
    let fp = tmp("mlp3.safetensors");
    assert!(qkc(&["synth-weights", p(&graph), "-o", p(&fp)]).0);
    let recipe = tmp("mixed.recipe");
    std::fs::write(
        &recipe,
        "*.down_proj  lut3  rotate=hadamard outliers=0.5%\n*.gate_proj  int4:g64\n*  int8:pc\n",
    )
    .expect("write");
    let (q, g2) = (tmp("mixed.safetensors"), tmp("mixed.qir"));
    let (ok, _, e) = qkc(&[
        "quantize",
        "--recipe",
        p(&recipe),
        "--in",
        p(&fp),
        "--out",
        p(&q),
        "--graph",
        p(&graph),
        "--graph-out",
        p(&g2),
    ]);
    assert!(ok, "{e}");
    let text = std::fs::read_to_string(&g2).expect("graph");
    assert!(
        text.contains("q<lut3>[128, 256]")
            && text.contains("q<int4:g64>[256, 128]")
            && text.contains("q<int8:pc>[256, 128]"),
        "{text}"
    );
    let (ok, _, e) = qkc(&["run", p(&g2), "--weights", p(&q)]);
    assert!(ok, "{e}");
}
