//! f32 → f16 → f32 through the JIT'd software conversions, against `half` (IEEE round to nearest
//! even) on every f16 boundary region: normals, subnormals, ties, overflow, infinities, NaN.

use qkc_codegen_cranelift::JitKernel;

const N: usize = 1 << 16;

#[test]
fn fptrunc_f32_to_f16_matches_ieee() {
    let src = format!(
        "kernel @k(%x: ptr<global, f32> noalias readonly len({N}), %y: ptr<global, f16> noalias writeonly len({N})) cpu chunks(1) simd(128) {{
  %c0 = const 0 : i32
  %c1 = const 1 : i32
  %n = const {N} : i32
  for %i = %c0 to %n step %c1 {{
    %v = load %x[%i] align 4 : f32
    %h = fptrunc %v : f16
    store %h, %y[%i] align 2
  }}
}}"
    );
    let k = qkc_kernel::parse(&src).expect("parse");
    let jit = JitKernel::compile(&k).expect("compile");
    // every f16 value, each neighbour half-way point (ties), and points just off the ties
    let mut xs: Vec<f32> = Vec::with_capacity(N);
    let mut i = 0u32;
    while xs.len() < N {
        let h = half::f16::from_bits((i % 65536) as u16).to_f32();
        let next = half::f16::from_bits(((i % 65536) as u16).wrapping_add(1)).to_f32();
        let x = match i / 65536 {
            0 => h,
            _ if !h.is_finite() || !next.is_finite() => 70000.0 * (i as f32 - 65536.0),
            1 => (h + next) / 2.0,
            _ => f32::from_bits(((h + next) / 2.0).to_bits() + 1),
        };
        xs.push(x);
        i = i.wrapping_add(if xs.len() % 3 == 0 { 1 } else { 21845 });
    }
    xs[0] = f32::NAN;
    xs[1] = f32::INFINITY;
    xs[2] = f32::NEG_INFINITY;
    xs[3] = 65520.0; // rounds to inf
    xs[4] = 65519.0; // rounds to 65504
    xs[5] = 1e-8; // below half the smallest subnormal: ±0
    xs[6] = -2.98e-8; // just above half the smallest subnormal
    let mut y = vec![0xAAAAu16; N];
    // SAFETY: both buffers hold N elements; the kernel has two pointer parameters.
    unsafe { jit.call(&[xs.as_ptr() as u64, y.as_mut_ptr() as u64], 0, 1) }.expect("call");
    for (x, h) in xs.iter().zip(&y) {
        let want = half::f16::from_f32(*x);
        if want.is_nan() {
            assert!(
                half::f16::from_bits(*h).is_nan(),
                "{x}: got {h:#06x}, want NaN"
            );
        } else {
            assert_eq!(
                *h,
                want.to_bits(),
                "{x:e} ({:#010x}): got {h:#06x}, want {:#06x}",
                x.to_bits(),
                want.to_bits()
            );
        }
    }
}

/// The a8g templates' `a8g_stats_f16` snippet (f16 → f32 with integer ops and one multiply by
/// 2^112) on every finite f16 bit pattern in both halves of a stats word, through the KIR
/// interpreter and the JIT, against `half`'s conversion (bit for bit: −0 too).
#[test]
fn a8g_stats_f16_converts_every_finite_f16_exactly() {
    use qkc_kernel::interp::{Arg, Buffer};
    use qkc_kernel::template::{builtin_files, Args, Library};
    // words of 4-word blocks, as the template reads them: word r = s_r | o_r << 16
    const BLOCKS: usize = N / 4;
    let probe = format!(
        "#template a8g_stats_probe
#param SW: int
#param stats: snippet
kernel @a8g_stats_probe(%st: ptr<global, i32> noalias readonly len({{{{{BLOCKS} * SW}}}}), %s: ptr<global, f32> noalias writeonly len({N}), %o: ptr<global, f32> noalias writeonly len({N})) cpu chunks(1) simd(128) {{
  %c0 = const 0 : i32
  %c1 = const 1 : i32
  %c4 = const 4 : i32
  %nb = const {BLOCKS} : i32
  for %wj = %c0 to %nb step %c1 {{
    {{{{stats %st, %wj -> %sv, %ov}}}}
    %i = mul %wj, %c4 : i32
    store %sv, %s[%i] align 16
    store %ov, %o[%i] align 16
  }}
}}
"
    );
    let mut files: Vec<(&str, &str)> = builtin_files().to_vec();
    files.push(("a8g_stats_probe.kir", probe.as_str()));
    let lib = Library::from_sources(files).expect("library");
    let args = Args::new().int("SW", 4).snippet("stats", "a8g_stats_f16");
    let k = lib
        .instantiate("a8g_stats_probe", &args)
        .expect("instantiate")
        .kernel;
    // every pattern in the low half (word i), and in the high half in another order; the
    // non-finite ones (exponent 31) replaced by finite neighbours of the same word
    let finite = |h: u32| if h & 0x7c00 == 0x7c00 { h ^ 0x4000 } else { h };
    let words: Vec<u32> = (0..N as u32)
        .map(|i| finite(i) | finite((i.wrapping_mul(40503) ^ 0x5a5a) & 0xffff) << 16)
        .collect();
    let want = |w: u32| -> (f32, f32) {
        (
            half::f16::from_bits(w as u16).to_f32(),
            half::f16::from_bits((w >> 16) as u16).to_f32(),
        )
    };
    let check = |who: &str, s: &[f32], o: &[f32]| {
        let mut seen = std::collections::HashSet::new();
        for (i, &w) in words.iter().enumerate() {
            let (ws, wo) = want(w);
            assert_eq!(
                s[i].to_bits(),
                ws.to_bits(),
                "{who}: s of {:#06x}: got {}, want {ws}",
                w & 0xffff,
                s[i]
            );
            assert_eq!(
                o[i].to_bits(),
                wo.to_bits(),
                "{who}: o of {:#06x}: got {}, want {wo}",
                w >> 16,
                o[i]
            );
            seen.insert(w & 0xffff);
            seen.insert(w >> 16);
        }
        assert_eq!(
            seen.len(),
            63488,
            "every finite f16 (65536 − 2·1024 with exponent 31)"
        );
    };
    // KIR interpreter
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    let mut a = vec![
        Arg::Buf(Buffer::from_bytes(bytes)),
        Arg::Buf(Buffer::poison_f32(N)),
        Arg::Buf(Buffer::poison_f32(N)),
    ];
    qkc_kernel::interp::run(&k, &mut a).expect("interp");
    let s = a[1].buffer().expect("s").to_f32();
    let o = a[2].buffer().expect("o").to_f32();
    check("interp", &s, &o);
    // JIT
    let jit = JitKernel::compile(&k).expect("compile");
    let mut s = vec![f32::NAN; N];
    let mut o = vec![f32::NAN; N];
    // SAFETY: the buffers hold N words / N floats each; the kernel has three pointer parameters.
    unsafe {
        jit.call(
            &[
                words.as_ptr() as u64,
                s.as_mut_ptr() as u64,
                o.as_mut_ptr() as u64,
            ],
            0,
            1,
        )
    }
    .expect("call");
    check("jit", &s, &o);
}
