//! The deployment path end to end: `qkc compile --target cpu -o DIR` on a two-layer graph, the
//! weights packed as the manifest names them, a C program generated from manifest.json that
//! includes the generated header, links the `.o` files, runs the kernels in order on random
//! inputs (outputs poisoned with 0xFF = NaN first) and writes y; y must match the reference
//! interpreter (f64) within 1e-3 of max |y| (an f32 graph). Without a C compiler it says
//! "skipped" (it never passes silently).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use qkc_ir::interp::{synth_inputs, Interpreter, StoredWeight, Weights};
use qkc_kernel::lower::{pack, LowerOptions, LowerTarget, WeightData};

const GRAPH: &str = "graph @deploy {
  %x = input \"x\" : f32[T, 256]
  %w1 = weight \"w1\" : q<int4:g64>[64, 256]
  %w2 = weight \"w2\" : q<lut3>[32, 64]
  %xq = quantize_act(%x) {bits = 8} : f32[T, 256]
  %w1d = dequant(%w1) : f32[64, 256]
  %h = linear(%xq, %w1d) : f32[T, 64]
  %a = silu(%h) : f32[T, 64]
  %w2d = dequant(%w2) : f32[32, 64]
  %y = linear(%a, %w2d) : f32[T, 32]
  return %y
}
";

fn cc() -> Option<String> {
    ["cc", "gcc", "clang"]
        .into_iter()
        .find(|c| {
            Command::new(c)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .map(String::from)
}

fn f32_bytes(v: &[f64]) -> Vec<u8> {
    v.iter().flat_map(|&x| (x as f32).to_le_bytes()).collect()
}

#[test]
fn compiled_objects_run_from_c_through_the_generated_header() {
    let Some(cc) = cc() else {
        println!("skipped: no C compiler (cc/gcc/clang) on this machine");
        return;
    };
    let dir = std::env::temp_dir().join(format!("qkc-deploy-c-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let p = |f: &str| dir.join(f);
    std::fs::write(p("g.qir"), GRAPH).expect("graph");
    let out = Command::new(env!("CARGO_BIN_EXE_qkc"))
        .args(["compile", "--target", "cpu", "-o"])
        .arg(&dir)
        .arg(p("g.qir"))
        .output()
        .expect("qkc");
    assert!(
        out.status.success(),
        "qkc compile: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p("manifest.json")).expect("manifest"))
            .expect("json");

    // the fused graph qkc compiled, its weights (seed 5) packed as the manifest names them
    let g = qkc_ir::parse(GRAPH).expect("parse");
    let mut fused = g.clone();
    qkc_passes::default_pipeline(qkc_passes::Options::default())
        .run(&mut fused)
        .expect("fuse");
    let weights = Weights::Seed(5);
    let bound = Interpreter::new(&fused, &weights).expect("bind");
    let opts = LowerOptions {
        target: LowerTarget::Cpu { chunks: 16 },
        tokens: 1,
        a8g_f16_stats: false,
    };
    let inputs = synth_inputs(&g, 1, 11, 0);
    std::fs::write(p("v_x.bin"), f32_bytes(&inputs["x"].data)).expect("x");

    // C: one buffer per graph value, loads, calls in manifest order, y out
    let mut values: BTreeMap<String, usize> = BTreeMap::new();
    let mut body = String::new();
    let mut loads = String::new();
    for k in manifest["kernels"].as_array().expect("kernels") {
        let sym = k["symbol"].as_str().expect("symbol");
        let id = fused
            .find(k["value"].as_str().expect("value"))
            .expect("node");
        let mut args = Vec::new();
        for prm in k["params"].as_array().expect("params") {
            let b = &prm["bind"];
            let bytes = prm["len"].as_u64().unwrap_or(0) as usize
                * match prm["type"].as_str().unwrap_or("") {
                    t if t.contains("f16") || t.contains("i16") => 2,
                    t if t.contains("i8") => 1,
                    _ => 4,
                };
            match b["kind"].as_str().expect("kind") {
                "operand" | "output" => {
                    let v = b["value"].as_str().expect("value").to_string();
                    values.insert(v.clone(), bytes);
                    args.push(format!("v_{v}"));
                }
                "packed" => {
                    let (role, buffer) = (
                        b["role"].as_str().expect("role"),
                        b["buffer"].as_str().expect("buffer"),
                    );
                    let w = fused.operand(id, role).expect("weight operand");
                    let data = match bound.stored_weight(w).expect("stored") {
                        StoredWeight::Dense(t) => WeightData::Dense(&t.data),
                        StoredWeight::Quant(q) => WeightData::Quant(q),
                        StoredWeight::Sparse(c) => WeightData::Sparse(c),
                    };
                    let bufs = pack(&fused, id, role, data, &opts).expect("pack");
                    let pb = bufs.iter().find(|x| x.name == buffer).expect("buffer");
                    let name = format!("{sym}_{role}_{buffer}");
                    std::fs::write(p(&format!("{name}.bin")), &pb.data).expect("write packed");
                    let _ = writeln!(
                        loads,
                        "  void *{name} = load(\"{name}.bin\", {});",
                        pb.data.len()
                    );
                    args.push(name);
                }
                "const" => {
                    let file = b["file"].as_str().expect("file");
                    let name = format!("{sym}_c{}", args.len());
                    let len = std::fs::metadata(p(file)).expect("const file").len();
                    let _ = writeln!(loads, "  void *{name} = load(\"{file}\", {len});");
                    args.push(name);
                }
                other => panic!("binding kind {other} not used by this graph"),
            }
        }
        let _ = writeln!(
            body,
            "  {sym}({}, 0, {}_CHUNKS);",
            args.join(", "),
            sym.to_uppercase()
        );
    }
    let mut c = String::from("#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n#include \"qkc_kernels.h\"\n\n");
    c += "static void *load(const char *f, size_t n) {\n  void *p = aligned_alloc(64, (n + 63) / 64 * 64);\n  FILE *fp = fopen(f, \"rb\");\n  if (!p || !fp || fread(p, 1, n, fp) != n) { fprintf(stderr, \"cannot read %s\\n\", f); exit(1); }\n  fclose(fp);\n  return p;\n}\n\nint main(void) {\n";
    for (v, bytes) in &values {
        if v == "x" {
            let _ = writeln!(c, "  void *v_x = load(\"v_x.bin\", {bytes});");
        } else {
            let _ = writeln!(
                c,
                "  void *v_{v} = aligned_alloc(64, {});\n  memset(v_{v}, 0xFF, {bytes});",
                bytes.div_ceil(64) * 64
            );
        }
    }
    c += &loads;
    c += &body;
    let ybytes = values["y"];
    let _ = writeln!(c, "  FILE *fp = fopen(\"y.bin\", \"wb\");\n  fwrite(v_y, 1, {ybytes}, fp);\n  fclose(fp);\n  return 0;\n}}");
    std::fs::write(p("main.c"), &c).expect("main.c");
    let objects: Vec<_> = std::fs::read_dir(&dir)
        .expect("dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|x| x.extension().is_some_and(|e| e == "o"))
        .collect();
    assert_eq!(
        objects.len(),
        3,
        "qlinear (int4 × int8), silu, qlinear (lut3)"
    );
    let out = Command::new(&cc)
        .current_dir(&dir)
        .args(["-O1", "-std=c11", "-o", "prog", "main.c"])
        .args(&objects)
        .arg("-lm")
        .output()
        .expect("cc");
    assert!(
        out.status.success(),
        "{cc}:\n{}\n{c}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = Command::new(p("prog"))
        .current_dir(&dir)
        .output()
        .expect("prog");
    assert!(
        run.status.success(),
        "prog: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let y: Vec<f32> = std::fs::read(p("y.bin"))
        .expect("y")
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let want = &Interpreter::new(&g, &weights)
        .expect("interp")
        .run(&inputs)
        .expect("run")[0]
        .1;
    let ymax = want.data.iter().fold(0f64, |m, v| m.max(v.abs()));
    assert!(ymax > 0.0);
    for (i, (&a, &b)) in y.iter().zip(&want.data).enumerate() {
        let e = (f64::from(a) - b).abs() / ymax;
        assert!(
            e.is_finite() && e <= 1e-3,
            "y[{i}] = {a}, want {b} (rel {e:.2e})"
        );
    }
    assert_eq!(y.len(), 32);
    let _ = std::fs::remove_dir_all(Path::new(&dir));
}
