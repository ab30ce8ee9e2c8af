//! Golden code of one `qlinear` kernel per scheme (K = 128, N = 4, T = 1, f32 activations), as
//! each backend emits it: the Cranelift IR (ids renumbered by `clif::normalize`) and the PTX for
//! sm_90. A change in the lowering or in a backend shows up as a reviewable diff
//! (`cargo insta review`; never accept blindly). The two fast templates get their own entries.

use qkc_codegen_llvm::{compile_ptx, PtxOptions};
use qkc_kernel::lower::{lower, LowerOptions, LowerTarget};

const SCHEMES: [&str; 20] = [
    "int4:g128",
    "int4:g64",
    "int4:g128:asym",
    "int4:g128:awq",
    "int3:g64:act",
    "int2:g32:asym",
    "int8:pc",
    "int8:g64:asym",
    "spqr3:g16",
    "spqr3:g16:perm",
    "lut3",
    "lut4",
    "nf4:b64",
    "nf4:b64:dq",
    "fp4:b64",
    "aqlm:2x8",
    "aqlm:1x16",
    "bin:g128",
    "tern:g64",
    "billm:g128",
];

fn graph(scheme: &str, x: &str, act: bool) -> qkc_ir::Graph {
    let attrs = if act { " {act_bits = 8}" } else { "" };
    let src = format!(
        "graph @s {{\n  %x = input \"x\" : {x}[T, 128]\n  %w = weight \"w\" : q<{scheme}>[4, 128]\n  %y = qlinear(%x, %w){attrs} : {x}[T, 4]\n  return %y\n}}\n"
    );
    qkc_ir::parse(&src).unwrap_or_else(|e| panic!("{scheme}: {e:?}"))
}

fn slug(s: &str) -> String {
    s.replace(':', "_")
}

fn clif(g: &qkc_ir::Graph) -> (String, String) {
    let id = g.find("y").expect("y");
    let l = lower(
        g,
        id,
        &LowerOptions {
            target: LowerTarget::Cpu { chunks: 2 },
            tokens: 1,
            a8g_f16_stats: false,
        },
    )
    .expect("lower cpu");
    let text = qkc_codegen_cranelift::clif_text(&l.kernel).expect("clif");
    (l.template, qkc_codegen_cranelift::clif::normalize(&text))
}

fn ptx(g: &qkc_ir::Graph) -> (String, String) {
    let id = g.find("y").expect("y");
    let l = lower(
        g,
        id,
        &LowerOptions {
            target: LowerTarget::Gpu { sm: 90 },
            tokens: 1,
            a8g_f16_stats: false,
        },
    )
    .expect("lower gpu");
    let art = compile_ptx(&l.kernel, &PtxOptions::sm(90)).expect("ptx");
    let qkc_kernel::Code::Ptx(p) = art.code else {
        unreachable!("PTX")
    };
    (l.template, p)
}

#[test]
fn clif_of_one_kernel_per_scheme() {
    for s in SCHEMES {
        let (template, text) = clif(&graph(s, "f32", false));
        insta::assert_snapshot!(
            format!("clif_{}", slug(s)),
            text,
            &format!("qlinear {s}, K=128 N=4 T=1, CPU, {template}")
        );
    }
    let (template, text) = clif(&graph("int4:g128", "f32", true));
    assert_eq!(template, "gemv_u4_cpu_a8");
    insta::assert_snapshot!(
        "clif_int4_g128_act8_fast",
        text,
        "the CPU fast path gemv_u4_cpu_a8"
    );
}

#[test]
fn ptx_of_one_kernel_per_scheme() {
    for s in SCHEMES {
        let (template, text) = ptx(&graph(s, "f32", false));
        insta::assert_snapshot!(
            format!("ptx_{}", slug(s)),
            text,
            &format!("qlinear {s}, K=128 N=4 T=1, sm_90, {template}")
        );
    }
    let (template, text) = ptx(&graph("int4:g128", "f16", false));
    assert_eq!(template, "gemv_u4_gpu_r2");
    insta::assert_snapshot!(
        "ptx_int4_g128_f16_fast",
        text,
        "the GPU fast path gemv_u4_gpu_r2"
    );
}
