//! Every non-`qlinear` op lowered for the CPU and the GPU target and run by the KIR interpreter
//! against the f64 reference interpreter (cases in `lower_ops_cases`).

mod common;
mod lower_ops_cases;

use lower_ops_cases::{cases, check, KirInterp};
use qkc_kernel::lower::LowerTarget;

fn run_all(target: LowerTarget, what: &str) {
    let s = common::seed(what);
    let mut failures = Vec::new();
    for c in cases() {
        let r =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&c, &mut KirInterp(target), s)));
        if let Err(e) = r {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()));
            failures.push(format!("{}: {}", c.name, msg.unwrap_or_default()));
        }
    }
    assert!(failures.is_empty(), "{} case(s) failed:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn ops_on_cpu_target() {
    run_all(LowerTarget::Cpu { chunks: 3 }, "ops_on_cpu_target");
}

#[test]
fn ops_on_gpu_target() {
    run_all(LowerTarget::Gpu { sm: 90 }, "ops_on_gpu_target");
}

/// Every case again at each token count 1..=8 (attention: a prefill of T, then one more token).
#[test]
fn ops_at_every_token_count() {
    let s = common::seed("ops_at_every_token_count");
    for target in [LowerTarget::Cpu { chunks: 2 }, LowerTarget::Gpu { sm: 80 }] {
        for t in 1..=8 {
            for mut c in cases() {
                if !c.qir.contains("[T") {
                    continue;
                }
                c.runs = if c.qir.contains("cache") { vec![t, 1] } else { vec![t] };
                check(&c, &mut KirInterp(target), s ^ t as u64);
            }
        }
    }
}

/// The non-`qlinear` kernels of `ir/llama_block.qir` after the default pipeline (RMSNorm and
/// attention with fused RoPE, GQA, a 256-token cache) at its real sizes: decode steps on top
/// of a prefill, on both targets.
#[test]
fn llama_block_kernels() {
    let s = common::seed("llama_block_kernels");
    let bodies = [
        "  %x = input \"hidden\" : f32[T, 256]\n  %w = weight \"model.layers.0.input_layernorm.weight\" : f32[256]\n  %y = rmsnorm(%x, %w) {eps = 1e-5} : f32[T, 256]",
        "  %q = input \"q\" : f32[T, 256]\n  %k = input \"k\" : f32[T, 128]\n  %v = input \"v\" : f32[T, 128]\n  %pos = input \"pos\" : i32[T]\n  %y = attention(%q, %k, %v, pos = %pos) {heads = 4, kv_heads = 2, head_dim = 64, cache = \"layer0\", max_seq = 256, rope_theta = 10000.0} : f32[T, 256]",
    ];
    for target in [LowerTarget::Cpu { chunks: 4 }, LowerTarget::Gpu { sm: 90 }] {
        for body in bodies {
            let c = lower_ops_cases::Case {
                name: "llama_block",
                qir: format!("graph @t {{\n{body}\n  return %y\n}}\n"),
                runs: vec![5, 1, 1],
                rel: 2e-5,
                why: "f32 sums of ≤ 256 terms, exp through exp2",
            };
            check(&c, &mut KirInterp(target), s);
        }
    }
}

/// Ops with no kernel of their own say why instead of panicking.
#[test]
fn unsupported_ops_are_errors() {
    use qkc_kernel::lower::{lower, LowerError, LowerOptions};
    let src = "graph @t {\n  %x = input \"x\" : f32[T, 256]\n  %wq = weight \"wq\" : q<int4:g128>[64, 256]\n  %s = weight \"s\" {density = 0.01} : csr<f16, u16>[64, 256]\n  %wd = dequant(%wq) : f32[64, 256]\n  %sp = spmm(%s, %x) : f32[T, 64]\n  %r = reshape(%x) : f32[T, 16, 16]\n  %h = rotate(%x) {kind = hadamard} : f32[T, 256]\n  return %wd, %sp, %r, %h\n}\n";
    let g = qkc_ir::parse(src).expect("parse");
    for target in [LowerTarget::Cpu { chunks: 1 }, LowerTarget::Gpu { sm: 90 }] {
        let opts = LowerOptions { target, tokens: 2, a8g_f16_stats: false };
        for name in ["x", "wq", "wd", "sp", "r"] {
            let id = g.find(name).expect("node");
            match lower(&g, id, &opts) {
                Err(LowerError::Unsupported { reason, .. }) => eprintln!("%{name}: {reason}"),
                other => panic!("%{name}: expected Unsupported, got {other:?}"),
            }
        }
        assert!(lower(&g, g.find("h").expect("h"), &opts).is_ok());
    }
}
