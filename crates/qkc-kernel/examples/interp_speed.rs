//! How fast the interpreter runs the GEMV templates (thread-instructions per second).
use qkc_kernel::interp::{run, Arg, Buffer};
use qkc_kernel::template::{builtin, Args};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let lib = builtin()?;
    for (name, hole, snip, k, n) in [
        ("gemv_u4_cpu", "decode", "decode_u4", 4096i64, 256i64),
        ("gemv_u4_gpu", "dequant", "dequant_u4_h2", 4096, 64),
    ] {
        let mut args = Args::new()
            .int("K", k)
            .int("N", n)
            .int("GROUP", 128)
            .snippet(hole, snip)
            .snippet("epilogue", "epilogue_none");
        args = if name.contains("cpu") { args.int("CHUNKS", 2) } else { args.int("WARPS", 4) };
        let inst = lib.instantiate(name, &args)?;
        let x = if name.contains("gpu") {
            Buffer::f16s(&vec![0.5; k as usize])
        } else {
            Buffer::f32s(&vec![0.5; k as usize])
        };
        let mut a = [
            Arg::Buf(Buffer::u32s(&vec![0x9abc_def1; (n * k / 8) as usize])),
            Arg::Buf(Buffer::f16s(&vec![0.01; (n * k / 128) as usize])),
            Arg::Buf(x),
            Arg::Buf(Buffer::poison_f32(n as usize)),
        ];
        let t = std::time::Instant::now();
        let s = run(&inst.kernel, &mut a)?;
        let dt = t.elapsed().as_secs_f64();
        println!("{name} {k}x{n}: {:.2}s, {:.1} M thread-insts/s", dt, s.thread_insts as f64 / dt / 1e6);
    }
    Ok(())
}
