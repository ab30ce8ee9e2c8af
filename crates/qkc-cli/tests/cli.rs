//! End-to-end tests of the `qkc` binary, as a user runs it.
//!
//! - `tests/bad/`: every malformed input fails `qkc check` with exit 1 and a `file:line:col`
//!   diagnostic (snapshotted, one per file), and no subcommand panics on it. Four 10 MB garbage
//!   files, generated at test time (never committed), fail fast with a bounded diagnostic.
//! - `ir/`: every example graph is canonical, checks, converts to JSON and back byte for byte,
//!   and runs in the interpreter (its canonical text and its output summary are snapshotted).
//! - the CLI's promises: `fmt --check` rejects non-canonical text, `--target cpu|cuda` say
//!   "not built yet".
//!
//! Commands run in the repository root with relative paths, so diagnostics and snapshots name
//! `tests/bad/x.qir` exactly as a user would type it, on any machine.
//!
//! Bless new or changed snapshots with `INSTA_UPDATE=always cargo test -p qkc-cli --test cli`
//! (or `cargo insta review`), then read every one.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The repository root (all paths below are relative to it).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Run `qkc ARGS` in the repository root, feeding `stdin`.
fn qkc_with_stdin(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_qkc"))
        .args(args)
        .current_dir(root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn qkc");
    let mut pipe = child.stdin.take().expect("stdin");
    // a writer thread, so a large input cannot deadlock against a full stdout pipe
    let input = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        // qkc may exit before reading everything (an early error): a broken pipe is fine
        let _ = pipe.write_all(&input);
    });
    let out = child.wait_with_output().expect("wait for qkc");
    writer.join().expect("stdin writer");
    out
}

/// Run `qkc ARGS` in the repository root with empty stdin.
fn qkc(args: &[&str]) -> Output {
    qkc_with_stdin(args, b"")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `cmd` exited with code 1 (an input error), not 0, 2 (usage) or 101 (a panic).
fn assert_fails_cleanly(cmd: &str, out: &Output) {
    let err = text(&out.stderr);
    assert!(!err.contains("panicked"), "`{cmd}` panicked:\n{err}");
    assert_eq!(
        out.status.code(),
        Some(1),
        "`{cmd}` should exit 1; stderr:\n{err}"
    );
}

/// `cmd` exited 0.
fn assert_ok(cmd: &str, out: &Output) {
    assert!(
        out.status.success(),
        "`{cmd}` failed ({:?}); stderr:\n{}",
        out.status.code(),
        text(&out.stderr)
    );
}

/// Does `stderr` locate an error as `PATH:LINE:COL`?
fn has_location(stderr: &str, path: &str) -> bool {
    let prefix = format!("{path}:");
    stderr.match_indices(&prefix).any(|(i, _)| {
        let rest = &stderr[i + prefix.len()..];
        let mut parts = rest.splitn(3, ':');
        let line = parts.next().unwrap_or("");
        let col = parts.next().unwrap_or("");
        parts.next().is_some()
            && !line.is_empty()
            && !col.is_empty()
            && line.bytes().all(|b| b.is_ascii_digit())
            && col.bytes().all(|b| b.is_ascii_digit())
    })
}

/// The files of `dir` (relative to the root) whose names end in one of `exts`, sorted.
fn files(dir: &str, exts: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(root().join(dir))
        .unwrap_or_else(|e| panic!("read {dir}: {e}"))
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|n| exts.iter().any(|x| n.ends_with(x)))
        .map(|n| format!("{dir}/{n}"))
        .collect();
    v.sort();
    v
}

/// Snapshot name for a file path: `tests/bad/x.qir` → `x_qir`.
fn snap_name(path: &str) -> String {
    Path::new(path)
        .file_name()
        .map_or(path.into(), |n| n.to_string_lossy().replace('.', "_"))
}

/// Run each check, then fail once listing every failure (one bad snapshot must not hide the rest).
fn all<T>(items: &[T], name: impl Fn(&T) -> String, check: impl Fn(&T)) {
    let failed: Vec<String> = items
        .iter()
        .filter(|item| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(item))).is_err()
        })
        .map(name)
        .collect();
    assert!(failed.is_empty(), "failed for: {}", failed.join(", "));
}

// ---- tests/bad: malformed inputs -------------------------------------------------------------

fn bad_files() -> Vec<String> {
    let v = files("tests/bad", &[".qir", ".json"]);
    assert!(v.len() >= 10, "the tests/bad corpus is missing: {v:?}");
    v
}

/// `qkc check` on every malformed file: exit 1, `file:line:col`, no panic, and the diagnostic
/// a user sees (snapshot).
#[test]
fn check_rejects_each_bad_file_with_a_located_diagnostic() {
    all(&bad_files(), Clone::clone, |path| {
        let cmd = format!("qkc check {path}");
        let out = qkc(&["check", path]);
        assert_fails_cleanly(&cmd, &out);
        assert!(
            out.stdout.is_empty(),
            "`{cmd}` printed to stdout: {}",
            text(&out.stdout)
        );
        let err = text(&out.stderr);
        assert!(
            has_location(&err, path),
            "`{cmd}` gave no {path}:line:col location:\n{err}"
        );
        insta::with_settings!({ description => cmd.as_str(), omit_expression => true }, {
            insta::assert_snapshot!(format!("bad__{}", snap_name(path)), err);
        });
    });
}

/// The other subcommands fail on the same files without panicking (`fmt` and `convert` only
/// parse, so a file that parses but does not verify is fine for them; `run` and `compile`
/// verify, so they reject every file).
#[test]
fn no_subcommand_panics_on_bad_files() {
    all(&bad_files(), Clone::clone, |path| {
        for args in [
            vec!["fmt", path.as_str()],
            vec!["fmt", "--check", path.as_str()],
            vec!["convert", path.as_str(), "--to", "json"],
            vec!["run", path.as_str(), "--target", "interp"],
            vec!["compile", path.as_str(), "--emit", "kernels"],
        ] {
            let cmd = format!("qkc {}", args.join(" "));
            let out = qkc(&args);
            let err = text(&out.stderr);
            assert!(
                !err.contains("panicked") && out.status.code() != Some(101),
                "`{cmd}` panicked:\n{err}"
            );
            assert!(
                matches!(out.status.code(), Some(0 | 1)),
                "`{cmd}` exited {:?}:\n{err}",
                out.status.code()
            );
        }
        // `run` and `compile` verify, so they must reject every bad file with a location
        for args in [
            vec!["run", path.as_str(), "--target", "interp"],
            vec!["compile", path.as_str()],
        ] {
            let cmd = format!("qkc {}", args.join(" "));
            let out = qkc(&args);
            assert_fails_cleanly(&cmd, &out);
            assert!(
                has_location(&text(&out.stderr), path),
                "`{cmd}` gave no location:\n{}",
                text(&out.stderr)
            );
        }
    });
}

/// The same malformed text on stdin is reported against `<stdin>`.
#[test]
fn check_reports_stdin_as_stdin() {
    let src = std::fs::read(root().join("tests/bad/dangling_value.qir")).expect("read");
    let out = qkc_with_stdin(&["check", "-"], &src);
    assert_fails_cleanly("qkc check -", &out);
    let err = text(&out.stderr);
    assert!(
        err.starts_with("error: <stdin>:4:16: use of undefined value `%h`"),
        "{err}"
    );
}

/// A deterministic xorshift64* byte stream.
fn xorshift(seed: u64) -> impl FnMut() -> u64 {
    let mut s = seed;
    move || {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        s.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

const TEN_MB: usize = 10 << 20;

/// The 10 MB garbage inputs: (name, bytes).
fn garbage() -> Vec<(&'static str, Vec<u8>)> {
    // random bytes: not UTF-8
    let mut r = xorshift(0x9e37_79b9_7f4a_7c15);
    let binary: Vec<u8> = (0..TEN_MB).map(|_| (r() >> 56) as u8).collect();
    // random text over the IR's own alphabet, so it reaches the parser
    let alphabet = b"graph@%={}()[],:<>\"/ \n\tTqfi0123456789abcdefxyz_.-";
    let mut r = xorshift(42);
    let tokens: Vec<u8> = (0..TEN_MB)
        .map(|_| alphabet[(r() % alphabet.len() as u64) as usize])
        .collect();
    // a plausible start, then one 10 MB token on the same line
    let mut long_line = b"graph @g {\n  %x = input \"x\" : f32[T, ".to_vec();
    long_line.resize(TEN_MB, b'7');
    // a 10 MB op name (once took a minute: the "did you mean" edit distance is quadratic)
    let mut long_op = b"graph @g {\n  %x = ".to_vec();
    long_op.resize(TEN_MB, b'q');
    vec![
        ("binary", binary),
        ("ir_alphabet", tokens),
        ("long_line", long_line),
        ("long_op", long_op),
    ]
}

/// 10 MB of garbage: exit 1 fast with a short `:line:col` diagnostic, never a panic.
#[test]
fn ten_megabytes_of_garbage_fail_fast_with_a_short_diagnostic() {
    let dir = std::env::temp_dir().join(format!("qkc-cli-test-garbage-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let inputs = garbage();
    all(
        &inputs,
        |(name, _)| (*name).to_string(),
        |(name, bytes)| {
            let file = dir.join(format!("{name}.qir"));
            std::fs::write(&file, bytes).expect("write garbage");
            let path = file.to_string_lossy().into_owned();
            let cmd = format!("qkc check <10 MB of {name}>");
            let t0 = Instant::now();
            let out = qkc(&["check", &path]);
            let took = t0.elapsed();
            assert_fails_cleanly(&cmd, &out);
            assert!(took < Duration::from_secs(5), "`{cmd}` took {took:?}");
            assert!(
                out.stderr.len() < 10 * 1024,
                "`{cmd}` wrote {} bytes to stderr",
                out.stderr.len()
            );
            let err = text(&out.stderr);
            assert!(
                has_location(&err, &path),
                "`{cmd}` gave no line:col:\n{err}"
            );
            let err = err.replace(&path, &format!("<tmp>/{name}.qir"));
            insta::with_settings!({ description => cmd.as_str(), omit_expression => true }, {
                insta::assert_snapshot!(format!("garbage__{name}"), err);
            });
        },
    );
    let _ = std::fs::remove_dir_all(&dir);
}

// ---- ir/: the example graphs -----------------------------------------------------------------

fn ir_files() -> Vec<String> {
    let v = files("ir", &[".qir"]);
    assert!(!v.is_empty(), "no graphs in ir/");
    v
}

/// Every example is already canonical, and `qkc fmt` prints exactly the file (snapshot: the
/// canonical text of every ir/ graph).
#[test]
fn ir_examples_are_canonical() {
    all(&ir_files(), Clone::clone, |path| {
        assert_ok(
            &format!("qkc fmt --check {path}"),
            &qkc(&["fmt", "--check", path]),
        );
        let out = qkc(&["fmt", path]);
        assert_ok(&format!("qkc fmt {path}"), &out);
        let src = std::fs::read(root().join(path)).expect("read");
        assert!(out.stdout == src, "`qkc fmt {path}` differs from the file");
        insta::with_settings!({ description => format!("qkc fmt {path}"), omit_expression => true }, {
            insta::assert_snapshot!(format!("ir_text__{}", snap_name(path)), text(&out.stdout));
        });
    });
}

/// `qkc check` passes every example with a one-line summary on stdout.
#[test]
fn ir_examples_check_with_a_one_line_summary() {
    all(&ir_files(), Clone::clone, |path| {
        let out = qkc(&["check", path]);
        assert_ok(&format!("qkc check {path}"), &out);
        let stdout = text(&out.stdout);
        assert_eq!(
            stdout.lines().count(),
            1,
            "`qkc check {path}` printed:\n{stdout}"
        );
        assert!(
            stdout.starts_with(&format!("ok: {path}: graph @")),
            "`qkc check {path}` printed: {stdout}"
        );
        assert!(
            out.stderr.is_empty(),
            "`qkc check {path}` wrote to stderr: {}",
            text(&out.stderr)
        );
    });
}

/// `qkc convert x --to json | qkc convert - --to qir` reproduces x byte for byte, and the JSON
/// is itself a fixed point.
#[test]
fn ir_examples_round_trip_through_json() {
    all(&ir_files(), Clone::clone, |path| {
        let json = qkc(&["convert", path, "--to", "json"]);
        assert_ok(&format!("qkc convert {path} --to json"), &json);
        let back = qkc_with_stdin(&["convert", "-", "--to", "qir"], &json.stdout);
        assert_ok("qkc convert - --to qir", &back);
        let src = std::fs::read(root().join(path)).expect("read");
        assert!(
            back.stdout == src,
            "{path} → json → qir differs:\n{}",
            text(&back.stdout)
        );
        let json2 = qkc_with_stdin(&["convert", "-", "--to", "json"], &json.stdout);
        assert_ok("qkc convert - --to json", &json2);
        assert!(
            json2.stdout == json.stdout,
            "{path}: json → json is not a fixed point"
        );
    });
}

/// The interpreter's output summary with synthesized weights (seed 0) on two tokens. The
/// timing line on stderr is not part of the snapshot.
#[test]
fn ir_examples_run_in_the_interpreter() {
    all(&ir_files(), Clone::clone, |path| {
        let args = [
            "run", path, "--target", "interp", "--seed", "0", "--batch", "2",
        ];
        let cmd = format!("qkc {}", args.join(" "));
        let out = qkc(&args);
        assert_ok(&cmd, &out);
        insta::with_settings!({ description => cmd.as_str(), omit_expression => true }, {
            insta::assert_snapshot!(format!("ir_run__{}", snap_name(path)), text(&out.stdout));
        });
    });
}

// ---- CLI promises ----------------------------------------------------------------------------

/// The demo as `make demo` runs it: the Llama block compiled for this CPU, two decode steps of
/// 4 tokens, checked against the interpreter (exit 0, `check: ... ok`).
#[test]
fn llama_block_runs_on_the_cpu_and_checks() {
    let args = [
        "run",
        "ir/llama_block.qir",
        "--target",
        "cpu",
        "--check",
        "--batch",
        "4",
        "--steps",
        "2",
    ];
    let out = qkc(&args);
    assert_ok("qkc run ir/llama_block.qir --target cpu --check", &out);
    let so = text(&out.stdout);
    assert!(so.contains("max_rel_err") && so.contains("): ok"), "{so}");
    assert_eq!(
        so.matches("max_rel_err").count(),
        3,
        "2 steps + the verdict:\n{so}"
    );
}

/// Without a CUDA driver, `--target cuda` says so plainly and exits 1 (never a panic); with one,
/// the graph runs and checks.
#[test]
fn cuda_target_without_a_driver_says_so() {
    let cmd = "qkc run ir/qlinear_int4.qir --target cuda --check";
    let out = qkc(&["run", "ir/qlinear_int4.qir", "--target", "cuda", "--check"]);
    let err = text(&out.stderr);
    assert!(!err.contains("panicked"), "`{cmd}` panicked:\n{err}");
    if out.status.success() {
        println!("a CUDA device is present: {}", text(&out.stdout));
        return;
    }
    assert_fails_cleanly(cmd, &out);
    assert!(
        err.contains("--target cuda")
            && (err.contains("no CUDA driver") || err.contains("no CUDA device")),
        "{err}"
    );
}

/// `compile --target cpu -o DIR` writes objects, a header and a manifest; `--target ptx` writes
/// PTX that ptxas accepts.
#[test]
fn compile_to_a_directory() {
    let dir = std::env::temp_dir().join(format!("qkc-cli-compile-{}", std::process::id()));
    let d = dir.to_string_lossy().into_owned();
    let out = qkc(&["compile", "ir/llama_block.qir", "--target", "cpu", "-o", &d]);
    assert_ok("qkc compile ir/llama_block.qir --target cpu -o DIR", &out);
    let h = std::fs::read_to_string(dir.join("qkc_kernels.h")).expect("header");
    assert!(
        h.contains("uint32_t chunk_lo") && h.contains("#define QKC_"),
        "{h}"
    );
    let m: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("manifest.json")).expect("manifest"),
    )
    .expect("json");
    assert_eq!(m["target"], "cpu");
    let objects = std::fs::read_dir(&dir)
        .expect("dir")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "o"))
        })
        .count();
    assert!(objects >= 5, "{objects} objects");
    let pd = dir.join("ptx");
    let p = pd.to_string_lossy().into_owned();
    let out = qkc(&[
        "compile",
        "ir/squeezellm_layer.qir",
        "--target",
        "ptx",
        "--sm",
        "80",
        "-o",
        &p,
    ]);
    assert_ok(
        "qkc compile ir/squeezellm_layer.qir --target ptx -o DIR",
        &out,
    );
    let ptx: Vec<_> = std::fs::read_dir(&pd)
        .expect("dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "ptx"))
        .collect();
    assert_eq!(ptx.len(), 2, "the Hadamard prologue and the GEMV");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `fmt --check` exits 1 on valid text that is not canonical, naming the first differing line;
/// plain `fmt` prints the canonical text.
#[test]
fn fmt_check_rejects_non_canonical_text() {
    let canonical = std::fs::read_to_string(root().join("ir/qlinear_int4.qir")).expect("read");
    let messy = canonical
        .replace(
            "%wd = dequant(%w) : f16[4096, 4096]",
            "%wd   =  dequant( %w ):f16[4096,4096]",
        )
        .replace("  return %y\n", "  return %y  \n");
    assert_ne!(messy, canonical, "the edit did not apply");
    let dir = std::env::temp_dir().join(format!("qkc-cli-test-fmt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("messy.qir");
    std::fs::write(&file, &messy).expect("write");
    let path = file.to_string_lossy().into_owned();

    assert_ok(&format!("qkc check {path}"), &qkc(&["check", &path]));
    let out = qkc(&["fmt", "--check", &path]);
    assert_fails_cleanly("qkc fmt --check messy.qir", &out);
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("{path}:7: not in canonical form")),
        "{err}"
    );
    assert!(
        out.stdout.is_empty(),
        "fmt --check printed: {}",
        text(&out.stdout)
    );

    let out = qkc(&["fmt", &path]);
    assert_ok("qkc fmt messy.qir", &out);
    assert_eq!(text(&out.stdout), canonical);

    let out = qkc_with_stdin(&["fmt", "--check", "-"], messy.as_bytes());
    assert_fails_cleanly("qkc fmt --check -", &out);
    assert!(
        text(&out.stderr).contains("<stdin>:7: not in canonical form"),
        "{}",
        text(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
