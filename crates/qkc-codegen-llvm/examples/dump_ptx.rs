//! Write the sm_90 PTX of `gemv_u4_gpu` (K, N from the arguments; GROUP=128, WARPS=4,
//! no epilogue) to stdout, for the on-device check in `gpu_check/`.

use qkc_codegen_llvm::{compile_ptx, PtxOptions};
use qkc_kernel::template::{builtin, Args};
use qkc_kernel::Code;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<i64> = std::env::args()
        .skip(1)
        .filter_map(|s| s.parse().ok())
        .collect();
    let (k, n) = (
        a.first().copied().unwrap_or(4096),
        a.get(1).copied().unwrap_or(4096),
    );
    let args = Args::new()
        .int("K", k)
        .int("N", n)
        .int("GROUP", 128)
        .int("WARPS", 4)
        .snippet("dequant", "dequant_u4_h2")
        .snippet("epilogue", "epilogue_none");
    let kern = builtin()?.instantiate("gemv_u4_gpu", &args)?.kernel;
    if let Code::Ptx(p) = compile_ptx(&kern, &PtxOptions::default())?.code {
        print!("{p}");
    }
    Ok(())
}
