//! Every GPU template in templates/kir, instantiated with a few argument sets, compiled to PTX
//! and assembled by ptxas for sm_90/80/86/89. GEMV kernels must not spill.

mod common;

use common::{assemble_all, have_ptxas, instantiate, lib};
use qkc_kernel::template::Args;

fn gemv_args(k: i64, n: i64, group: i64, warps: i64) -> Args {
    Args::new()
        .int("K", k)
        .int("N", n)
        .int("GROUP", group)
        .int("WARPS", warps)
}

/// (template, args) for every GPU template.
fn cases() -> Vec<(&'static str, Args)> {
    let mut v = Vec::new();
    for (k, n, g, w) in [
        (256, 64, 128, 4),
        (4096, 4096, 128, 4),
        (4096, 14336, 64, 8),
        (14336, 4096, 128, 2),
        (512, 7, 32, 1),
    ] {
        for epi in ["epilogue_none", "epilogue_silu"] {
            v.push((
                "gemv_u4_gpu",
                gemv_args(k, n, g, w)
                    .snippet("dequant", "dequant_u4_h2")
                    .snippet("epilogue", epi),
            ));
        }
    }
    for (k, n, g, w) in [
        (256, 64, 128, 4),
        (4096, 4096, 128, 4),
        (4096, 11008, 32, 8),
        (512, 5, 64, 1),
    ] {
        for epi in ["epilogue_none", "epilogue_silu"] {
            v.push((
                "gemv_u4_gpu_f32",
                gemv_args(k, n, g, w)
                    .snippet("decode", "decode_u4")
                    .snippet("epilogue", epi),
            ));
        }
    }
    for (k, n, g, (p, ks), t, f16) in [
        (256, 64, 128, (4, 1), 1, true),
        (8192, 57344, 128, (8, 1), 1, true),
        (28672, 8192, 128, (4, 2), 8, true),
        (11008, 4096, 64, (2, 4), 4, false),
        (512, 7, 32, (1, 1), 3, true),
    ] {
        let (yt, cvt, align) = if f16 {
            (qkc_kernel::Scalar::F16, "cvt_f16", 2)
        } else {
            (qkc_kernel::Scalar::F32, "epilogue_none", 4)
        };
        v.push((
            "gemv_u4_gpu_r2",
            Args::new()
                .int("K", k)
                .int("N", n)
                .int("GROUP", g)
                .int("PAIRS", p)
                .int("KSPLIT", ks)
                .int("T", t)
                .int("YALIGN", align)
                .ty("YT", qkc_kernel::Type::Scalar(yt))
                .snippet("dequant", "dequant_u4_h2")
                .snippet("cvt", cvt),
        ));
    }
    for (k, n, ks, t) in [
        (256, 64, 1, 1),
        (28672, 8192, 4, 8),
        (11008, 4096, 2, 1),
        (512, 7, 1, 3),
    ] {
        v.push((
            "gemv_lut3_gpu_r2",
            Args::new()
                .int("K", k)
                .int("N", n)
                .int("KSPLIT", ks)
                .int("T", t)
                .int("YALIGN", 2)
                .ty("YT", qkc_kernel::Type::Scalar(qkc_kernel::Scalar::F16))
                .snippet("cvt", "cvt_f16"),
        ));
    }
    for (k, n, g, ks, t) in [
        (256, 64, 64, 1, 1),
        (8192, 57344, 64, 1, 1),
        (28672, 8192, 64, 4, 8),
        (512, 7, 32, 1, 3),
    ] {
        v.push((
            "gemv_nf4_gpu_r2",
            Args::new()
                .int("K", k)
                .int("N", n)
                .int("GROUP", g)
                .int("KSPLIT", ks)
                .int("T", t)
                .int("YALIGN", 2)
                .ty("YT", qkc_kernel::Type::Scalar(qkc_kernel::Scalar::F16))
                .snippet("cvt", "cvt_f16"),
        ));
    }
    for (n, t) in [(1000, 128), (4096, 256), (33, 32), (1 << 20, 1024)] {
        for e in ["exp2_op", "exp2_poly"] {
            v.push((
                "silu_gpu",
                Args::new().int("N", n).int("THREADS", t).snippet("exp2", e),
            ));
        }
    }
    for (d, m, t) in [(4096, 1, 256), (4096, 8, 1024), (64, 3, 32), (5120, 2, 128)] {
        v.push((
            "rmsnorm_gpu",
            Args::new()
                .int("D", d)
                .int("M", m)
                .float("EPS", 1e-5)
                .int("THREADS", t),
        ));
    }
    v
}

#[test]
fn every_gpu_template_is_covered() {
    let covered: std::collections::BTreeSet<&str> = cases().iter().map(|(n, _)| *n).collect();
    for name in lib().names() {
        if name.ends_with("_gpu") || name.contains("_gpu_") {
            assert!(
                covered.contains(name),
                "GPU template {name} has no test case here"
            );
        }
    }
}

#[test]
fn gpu_templates_assemble_with_ptxas() {
    if !have_ptxas("gpu_templates_assemble_with_ptxas") {
        return;
    }
    for (name, args) in cases() {
        let k = instantiate(name, &args);
        let (ptx, r) = assemble_all(&k);
        eprintln!(
            "{name} {:?}: {} regs, {} B spill stores, {} B spill loads, {} B smem",
            args.0
                .iter()
                .filter(|(_, v)| !matches!(v, qkc_kernel::template::ArgValue::Snippet(_)))
                .collect::<Vec<_>>(),
            r.registers,
            r.spill_stores,
            r.spill_loads,
            r.shared_bytes
        );
        assert!(ptx.contains(&format!(".entry {}(", k.name)), "{ptx}");
        assert!(ptx.contains(".maxntid"), "launch bounds missing:\n{ptx}");
        if name.starts_with("gemv") {
            assert_eq!(r.spill_stores, 0, "{name}: spills\n{}", r.log);
            assert_eq!(r.stack_frame, 0, "{name}: stack frame\n{}", r.log);
        }
        if name == "rmsnorm_gpu" {
            assert!(r.shared_bytes > 0, "{}", r.log);
            assert!(ptx.contains("bar.sync"), "{ptx}");
        }
    }
}

#[test]
fn gemv_u4_gpu_uses_the_intended_instructions() {
    let k = instantiate(
        "gemv_u4_gpu",
        &gemv_args(4096, 4096, 128, 4)
            .snippet("dequant", "dequant_u4_h2")
            .snippet("epilogue", "epilogue_silu"),
    );
    let p = common::ptx(&k, 90);
    for want in [
        "ld.global.cs.v4.u32",
        "fma.rn.f16x2",
        "shfl.sync.bfly.b32",
        "ex2.approx",
        "ld.global.nc",
    ] {
        assert!(p.contains(want), "missing {want}:\n{p}");
    }
    assert!(!p.contains(".local"), "local memory:\n{p}");
}
