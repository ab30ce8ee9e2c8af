//! Filetests (the Cranelift style): each file under tests/filetests holds an input graph, the
//! pass to run, and the exact expected output; `QKC_BLESS=1` rewrites the expectations.
//! Every case is also checked numerically: the reference interpreter gives the same outputs
//! before and after the pass (relative error ≤ 1e-9) on fresh random inputs.

use std::path::{Path, PathBuf};

use qkc_ir::interp::{synth_inputs, Interpreter, Weights};
use qkc_passes::{pass_by_name, PassContext};

const EXPECTED: &str = "// ---- expected ----\n";
const REMARKS: &str = "// ---- remarks ----\n";

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/filetests")
}

fn seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(3, |d| d.as_nanos() as u64)
}

/// Outputs of `g` under seeded weights and inputs.
fn eval(g: &qkc_ir::Graph, wseed: u64, iseed: u64) -> Vec<Vec<f64>> {
    let mut it = Interpreter::new(g, &Weights::Seed(wseed)).unwrap_or_else(|e| panic!("bind: {e}"));
    let inputs = synth_inputs(g, 3, iseed, 0);
    it.run(&inputs)
        .unwrap_or_else(|e| panic!("run: {e}"))
        .into_iter()
        .map(|(_, t)| t.data)
        .collect()
}

fn run_case(path: &Path, bless: bool) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let (input, tail) = match text.find(EXPECTED) {
        Some(i) => (&text[..i], Some(&text[i..])),
        None => (&text[..], None),
    };
    let pass_name = input
        .lines()
        .find_map(|l| l.strip_prefix("// pass: "))
        .ok_or("missing `// pass: NAME` line")?
        .trim()
        .to_string();
    let pass = pass_by_name(&pass_name).ok_or_else(|| format!("unknown pass `{pass_name}`"))?;
    let before = qkc_ir::parse(input).map_err(|d| format!("input does not parse: {d}"))?;
    qkc_ir::verify::verify(&before).map_err(|d| format!("input does not verify: {d:?}"))?;
    let mut after = before.clone();
    let mut cx = PassContext::default();
    pass.run(&mut after, &mut cx);
    qkc_ir::verify::verify(&after).map_err(|d| format!("pass output does not verify: {d:?}"))?;
    after.doc.clear();
    let mut actual = format!("{EXPECTED}{after}");
    if !cx.remarks.is_empty() {
        actual.push_str(REMARKS);
        for r in &cx.remarks {
            actual.push_str(&format!("{r}\n"));
        }
    }
    // numbers: same outputs before and after, fresh seeds each run
    let (ws, is) = (seed(), seed() ^ 0x9e37);
    let (a, b) = (eval(&before, ws, is), eval(&after, ws, is));
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        let scale = x.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-30);
        let err = x
            .iter()
            .zip(y)
            .fold(0.0f64, |m, (p, q)| m.max((p - q).abs()))
            / scale;
        if err > 1e-9 || x.len() != y.len() {
            return Err(format!(
                "output {i} changed: max rel err {err:e} (weight seed {ws}, input seed {is})"
            ));
        }
    }
    match tail {
        Some(t) if t == actual => Ok(()),
        _ if bless => std::fs::write(path, format!("{input}{actual}")).map_err(|e| e.to_string()),
        Some(t) => Err(format!("output differs (re-bless with QKC_BLESS=1 after review)\n--- expected\n{t}\n--- actual\n{actual}")),
        None => Err(format!("no expected section (run with QKC_BLESS=1 and review)\n{actual}")),
    }
}

#[test]
fn filetests() {
    let bless = std::env::var("QKC_BLESS").is_ok_and(|v| v == "1");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir())
        .expect("tests/filetests")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "qir"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 10,
        "expected the filetest corpus, found {}",
        files.len()
    );
    let failures: Vec<String> = files
        .iter()
        .filter_map(|f| {
            run_case(f, bless)
                .err()
                .map(|e| format!("{}: {e}", f.display()))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} filetests failed:\n\n{}",
        failures.len(),
        files.len(),
        failures.join("\n\n")
    );
}
