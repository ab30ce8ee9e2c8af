//! The secondary host path: CPU templates → an x86-64 (host) object exporting
//! `NAME(params..., chunk_lo, chunk_hi)`.

mod common;

use qkc_codegen_llvm::{compile_host_object, host_llvm_ir};
use qkc_kernel::template::Args;

#[test]
fn cpu_templates_compile_to_host_objects() {
    let cases = [
        (
            "gemv_u4_cpu",
            Args::new()
                .int("K", 4096)
                .int("N", 4096)
                .int("GROUP", 128)
                .int("CHUNKS", 64)
                .snippet("decode", "decode_u4")
                .snippet("epilogue", "epilogue_silu"),
        ),
        (
            "gemv_u4_cpu_q8",
            Args::new()
                .int("K", 4096)
                .int("N", 512)
                .int("GROUP", 128)
                .int("CHUNKS", 16)
                .snippet("split", "split_u4_bytes")
                .snippet("epilogue", "epilogue_none"),
        ),
        (
            "rmsnorm_cpu",
            Args::new()
                .int("D", 4096)
                .int("M", 4)
                .float("EPS", 1e-5)
                .int("CHUNKS", 4),
        ),
        (
            "silu_cpu",
            Args::new()
                .int("N", 4096)
                .int("CHUNKS", 8)
                .snippet("exp2", "exp2_poly"),
        ),
    ];
    for (name, args) in cases {
        let k = common::instantiate(name, &args);
        let ir = host_llvm_ir(&k).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(ir.contains("i32 %chunk_lo, i32 %chunk_hi"), "{ir}");
        let (obj, art) = compile_host_object(&k).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(&obj[..4], b"\x7fELF", "{name}: not an ELF object");
        assert!(
            obj.windows(name.len()).any(|w| w == name.as_bytes()),
            "{name}: symbol missing"
        );
        assert_eq!(art.entry, name);
        assert!(matches!(art.launch, qkc_kernel::LaunchConfig::Cpu { .. }));
    }
}
