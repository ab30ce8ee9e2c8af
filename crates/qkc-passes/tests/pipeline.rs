//! The whole pipeline on every ir/ graph: the fused graph means the same as the original (the
//! reference interpreter agrees to 1e-9 relative, over two decode steps so KV caches are
//! exercised), and each graph compiles to the asserted number of kernels.

use std::path::{Path, PathBuf};

use qkc_ir::interp::{synth_inputs, Interpreter, Weights};
use qkc_ir::{Graph, Op};
use qkc_passes::{default_pipeline, partition, Options};

fn ir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../ir")
        .join(name)
}

fn load(path: &Path) -> Graph {
    let src = std::fs::read_to_string(path).expect("read");
    qkc_ir::parse(&src).unwrap_or_else(|d| panic!("{}: {d}", path.display()))
}

fn opts() -> Options {
    Options {
        print_after_all: true,
        verify_each: true,
        ..Options::default()
    }
}

fn fuse(g: &Graph) -> (Graph, qkc_passes::Report) {
    let mut f = g.clone();
    let report = default_pipeline(opts()).run(&mut f).expect("pipeline");
    (f, report)
}

fn seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(5, |d| d.as_nanos() as u64)
}

/// Max relative error between the outputs of `a` and `b` over two steps of `tokens` tokens.
fn compare(a: &Graph, b: &Graph, tokens: usize) -> f64 {
    let (ws, is) = (seed(), seed() ^ 0x5151);
    let w = Weights::Seed(ws);
    let mut ia = Interpreter::new(a, &w).expect("bind a");
    let mut ib = Interpreter::new(b, &w).expect("bind b");
    let mut worst = 0.0f64;
    for step in 0..2 {
        let inputs = synth_inputs(a, tokens, is + step, ia.cached_tokens());
        let (oa, ob) = (
            ia.run(&inputs).expect("run a"),
            ib.run(&inputs).expect("run b"),
        );
        assert_eq!(oa.len(), ob.len());
        for ((_, x), (_, y)) in oa.iter().zip(&ob) {
            assert!(
                x.data.iter().any(|v| *v != 0.0),
                "an all-zero output tests nothing"
            );
            let scale = x.data.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            let err = x
                .data
                .iter()
                .zip(&y.data)
                .fold(0.0f64, |m, (p, q)| m.max((p - q).abs()))
                / scale;
            worst = worst.max(err);
        }
    }
    worst
}

fn linear_layers(g: &Graph) -> usize {
    g.nodes()
        .filter(|&n| matches!(g.node(n).op, Op::Linear | Op::Matmul))
        .count()
}

#[test]
fn every_ir_graph_means_the_same_after_fusion() {
    let mut seen = 0;
    let mut files: Vec<PathBuf> = std::fs::read_dir(ir(""))
        .expect("ir/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    for p in files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "qir"))
    {
        let g = load(p);
        let (f, _) = fuse(&g);
        let err = compare(&g, &f, 3);
        assert!(
            err <= 1e-9,
            "{}: max rel err {err:e} after fusion",
            p.display()
        );
        let plan = partition(&f);
        // a linear layer never becomes more than one kernel
        assert!(plan.launches <= g.len(), "{}", p.display());
        seen += 1;
    }
    assert!(seen >= 5, "expected the ir/ examples");
}

#[test]
fn squeezellm_layer_is_one_kernel() {
    let (f, _) = fuse(&load(&ir("squeezellm_layer.qir")));
    let plan = partition(&f);
    assert_eq!(plan.launches, 1, "{}", plan.table());
    assert!(
        plan.kernels[0].key.contains("lut3")
            && plan.kernels[0].key.contains("rotate=hadamard")
            && plan.kernels[0].key.contains("outliers=csr")
    );
}

#[test]
fn quarot_w4a4_layer_is_one_kernel() {
    let (f, _) = fuse(&load(&ir("quarot_w4a4.qir")));
    let plan = partition(&f);
    assert_eq!(plan.launches, 1, "{}", plan.table());
    assert!(
        plan.kernels[0].key.contains("act=int4") && plan.kernels[0].key.contains("out_act=int8")
    );
}

#[test]
fn one_qlinear_is_one_kernel() {
    let (f, _) = fuse(&load(&ir("qlinear_int4.qir")));
    assert_eq!(partition(&f).launches, 1);
}

#[test]
fn swiglu_mlp_fuses_gate_and_up() {
    let g = load(&ir("swiglu_mlp_hadamard.qir"));
    let (f, _) = fuse(&g);
    let plan = partition(&f);
    assert_eq!(linear_layers(&g), 3);
    assert_eq!(plan.launches, 2, "gate_up + down\n{}", plan.table());
}

/// A Llama block: at most one kernel per linear layer (gate/up fuse), plus attention and norms;
/// k and v share a specialization, so they compile once.
#[test]
fn llama_block_kernels() {
    let g = load(&ir("llama_block.qir"));
    let (f, _) = fuse(&g);
    let plan = partition(&f);
    let count = |op: &str| {
        plan.kernels
            .iter()
            .filter(|k| k.op == op)
            .map(|k| k.instances.len())
            .sum::<usize>()
    };
    assert_eq!(linear_layers(&g), 7);
    assert_eq!(
        count("qlinear"),
        6,
        "q, k, v, o+residual, gate_up, down+rotation+outliers+residual\n{}",
        plan.table()
    );
    assert_eq!(
        count("attention"),
        1,
        "RoPE fused into attention\n{}",
        plan.table()
    );
    assert_eq!(count("rmsnorm"), 2);
    assert_eq!(plan.launches, 9, "{}", plan.table());
    let kv = plan.kernels.iter().find(|k| k.instances == ["k", "v"]);
    assert!(kv.is_some(), "k and v share one kernel\n{}", plan.table());
    insta::assert_snapshot!("llama_block_kernels", plan.table());
}

#[test]
fn llama_block_print_after_all() {
    let (_, report) = fuse(&load(&ir("llama_block.qir")));
    let dumps: String = report.dumps.iter().map(|(_, t)| t.as_str()).collect();
    insta::assert_snapshot!("llama_block_print_after_all", dumps);
}

#[test]
fn unknown_print_after_is_an_error() {
    let mut g = load(&ir("qlinear_int4.qir"));
    let pm = default_pipeline(Options {
        print_after: vec!["fuse-nothing".into()],
        ..Options::default()
    });
    let e = pm.run(&mut g).expect_err("unknown pass");
    assert!(e.to_string().contains("unknown pass `fuse-nothing`"), "{e}");
}
