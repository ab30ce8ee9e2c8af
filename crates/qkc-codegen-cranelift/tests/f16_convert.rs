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
