//! KIR text, verifier and interpreter: diagnostics with line:col, every verifier error collected,
//! target legality, and the meaning of the intrinsics (checked against hand-computed values).

use qkc_kernel::diag::{check, check_rendered};
use qkc_kernel::interp::{run, Arg, Buffer};
use qkc_kernel::{parse, print, Artifact, Code, KernelError};

fn kernel(src: &str) -> qkc_kernel::Kernel {
    match check_rendered("test.kir", src) {
        Ok((k, _)) => k,
        Err(r) => panic!("{r}"),
    }
}

#[test]
fn parse_error_points_at_line_and_column() {
    let src = "kernel @k(%p: ptr<global, f32>) cpu chunks(1) {\n  %a = const 1 : i32\n  %b = frobnicate %a : i32\n}\n";
    let err = check_rendered("bad.kir", src).expect_err("fails");
    assert!(err.contains("bad.kir:3:8: unknown op `frobnicate`"), "{err}");
    assert!(err.contains('^') || err.contains('─'), "caret: {err}");
    let src = "kernel @k() cpu chunks(1) {\n  %a = add %nope, %nope : i32\n}\n";
    let err = check_rendered("bad.kir", src).expect_err("fails");
    assert!(err.contains("bad.kir:2:12: use of undefined value `%nope`"), "{err}");
}

#[test]
fn verifier_reports_every_error_with_its_line() {
    let src = "kernel @k(%p: ptr<global, f32> readonly) gpu grid(1) block(48) {
  %a = const 1 : i32
  %f = const 1.0 : f32
  %b = add %a, %f : i32
  %c = fma %a, %a, %a : i32
  store %f, %p[%a] align 4
  %l = for %i = %a to %a step %a iter(%x = %f) : f32 {
    %inner = add %x, %x : f32
    yield %inner
  }
  %bad = add %inner, %l : f32
  %s = swizzle %a, %a : i32
}
";
    let diags = check(src).expect_err("invalid");
    let text = qkc_kernel::diag::render("v.kir", src, &diags);
    for want in [
        "kernel: a GPU block has 48 threads",
        "v.kir:4:3: operands: i32 and f32 differ",
        "v.kir:5:3: fma takes floats",
        "v.kir:6:3: writes through readonly parameter %p",
        "v.kir:11:3: operand %inner is used outside the region that defines it",
        "v.kir:12:3: `swizzle` is not available on the gpu target",
    ] {
        assert!(text.contains(want.trim_start_matches("kernel: ")), "missing `{want}` in\n{text}");
    }
    assert_eq!(diags.len(), 7, "{text}");
}

#[test]
fn cpu_target_legality() {
    let src = "kernel @k(%p: ptr<global, i32>) cpu chunks(2) simd(128) {
  %a = const 1 : <8 x i32>
  %b = const 1 : <4 x i32>
  %c = lshr %b, %b : <4 x i32>
  %l = axis lane : i32
}
";
    let diags = check(src).expect_err("invalid");
    let msgs: Vec<&str> = diags.iter().map(|d| d.message.as_str()).collect();
    assert!(msgs.iter().any(|m| m.contains("<8 x i32> is wider than the target's simd(128)")), "{msgs:?}");
    assert!(msgs.iter().any(|m| m.contains("shifts vectors by a scalar amount")), "{msgs:?}");
    assert!(msgs.iter().any(|m| m.contains("`axis` is not available on the cpu target")), "{msgs:?}");
}

#[test]
fn mma_is_reserved() {
    let src = "kernel @k() gpu grid(1) block(32) {\n  %a = const 0 : i32\n  %d = mma.m16n8k16 %a, %a, %a : i32\n}\n";
    let k = parse(src).expect("parses");
    assert_eq!(parse(&print(&k)).expect("round trip"), k);
    let err = qkc_kernel::verify(&k).expect_err("rejected").to_string();
    assert!(err.contains("reserved"), "{err}");
}

/// Run a one-thread CPU kernel that stores `i32` results into `%out`.
fn eval_i32(body: &str, n: usize) -> Vec<u32> {
    let src =
        format!("kernel @k(%out: ptr<global, i32>) cpu chunks(1) {{\n  %c0 = const 0 : i32\n{body}\n}}\n");
    let k = kernel(&src);
    let mut a = [Arg::Buf(Buffer::u32s(&vec![0; n]))];
    run(&k, &mut a).unwrap_or_else(|e| panic!("{e}\n{src}"));
    a[0].buffer().expect("out").to_u32()
}

#[test]
fn byte_and_dot_intrinsics() {
    // prmt is GPU-only: check it on a one-warp GPU kernel, lane 0 storing.
    let src = "kernel @k(%out: ptr<global, i32>) gpu grid(1) block(32) {
  %l = axis lane : i32
  %a = const 0x44332211 : i32
  %b = const 0x88776655 : i32
  %s1 = const 0x5140 : i32
  %s2 = const 0x0008 : i32
  %r1 = prmt %a, %b, %s1 : i32
  %r2 = prmt %a, %b, %s2 : i32
  %x = const 0x04030201 : i32
  %y = const 0xfffefdfc : i32
  %acc = const 10 : i32
  %d1 = dp4a.s8s8 %x, %y, %acc : i32
  %d2 = dp4a.u8u8 %x, %y, %acc : i32
  %zero = const 0 : i32
  %is0 = icmp.eq %l, %zero : i1
  if %is0 {
    %i1 = const 1 : i32
    %i2 = const 2 : i32
    %i3 = const 3 : i32
    store %r1, %out[%zero] align 4
    store %r2, %out[%i1] align 4
    store %d1, %out[%i2] align 4
    store %d2, %out[%i3] align 4
  }
}
";
    let k = kernel(src);
    let mut a = [Arg::Buf(Buffer::u32s(&[0; 4]))];
    run(&k, &mut a).expect("run");
    let out = a[0].buffer().expect("out").to_u32();
    // selector nibbles 0,4,1,5 pick bytes 11,55,22,66; nibble 8 replicates the sign of byte 0 (0x11 → 00)
    assert_eq!(out[0], 0x6622_5511);
    assert_eq!(out[1], 0x1111_1100);
    // s8: 1·(−4) + 2·(−3) + 3·(−2) + 4·(−1) = −20, + 10
    assert_eq!(out[2] as i32, -10);
    // u8: 1·252 + 2·253 + 3·254 + 4·255 = 2540, + 10
    assert_eq!(out[3], 2550);
}

#[test]
fn cpu_dot_products_and_swizzle() {
    let out = eval_i32(
        "  %a = const [255, 255, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14] : <16 x i8>
  %b = const [127, 127, -1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7] : <16 x i8>
  %m = madd.u8s8 %a, %b : <8 x i16>
  %one = const 1 : <8 x i16>
  %d = madd.s16 %m, %one : <4 x i32>
  %t = const [10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25] : <16 x i8>
  %i = const [15, 0, 16, -1, 3, 3, 3, 3, 0, 0, 0, 0, 0, 0, 0, 0] : <16 x i8>
  %s = swizzle %t, %i : <16 x i8>
  %sw = bitcast %s : <4 x i32>
  %m0 = extract %m, 0 : i16
  %m0w = sext %m0 : i32
  store %m0w, %out[%c0] align 4
  %c1 = const 1 : i32
  store %d, %out[%c1] align 4
  %c5 = const 5 : i32
  store %sw, %out[%c5] align 4",
        9,
    );
    assert_eq!(out[0] as i32, 32767, "255·127·2 saturates to i16");
    // lanes of %m: 32767, 1, 14, 33, 60, 95, 138, 189 → pairwise sums
    assert_eq!(&out[1..5], &[32768, 47, 155, 327]);
    assert_eq!(out[5], u32::from_le_bytes([25, 10, 0, 0]), "index ≥ 16 (and −1 = 255) gives 0");
    assert_eq!(out[6], u32::from_le_bytes([13, 13, 13, 13]));
}

#[test]
fn conversions_and_vectors() {
    let out = eval_i32(
        "  %h = const [1.5, -2.0] : <2 x f16>
  %hb = bitcast %h : i32
  store %hb, %out[%c0] align 4
  %big = const 3.0e9 : f32
  %sat = fptosi %big : i32
  %c1 = const 1 : i32
  store %sat, %out[%c1] align 4
  %nan = const 0x7fc00000 : f32
  %z = fptosi %nan : i32
  %c2 = const 2 : i32
  store %z, %out[%c2] align 4
  %v = const [1, 2, 3, 4] : <4 x i32>
  %w = const [5, 6, 7, 8] : <4 x i32>
  %sh = shuffle %v, %w, [7, 0, 5, 2] : <4 x i32>
  %c3 = const 3 : i32
  store %sh, %out[%c3] align 4
  %r = reduce.add %w : i32
  %c7 = const 7 : i32
  store %r, %out[%c7] align 4",
        8,
    );
    assert_eq!(out[0], 0xc000_3e00, "f16 1.5 = 0x3e00 in the low half, −2.0 = 0xc000 high");
    assert_eq!(out[1], i32::MAX as u32, "fptosi saturates");
    assert_eq!(out[2], 0, "NaN converts to 0");
    assert_eq!(&out[3..7], &[8, 1, 6, 3]);
    assert_eq!(out[7], 26);
}

/// A GPU kernel where each of 64 threads stores shfl(value) at its index.
fn shuffle_kernel(mode: &str, operand: i32) -> Vec<u32> {
    let src = format!(
        "kernel @k(%out: ptr<global, i32>) gpu grid(1) block(64) {{
  %t = axis block.x : i32
  %x = const {operand} : i32
  %s = shfl.{mode} %t, %x : i32
  store %s, %out[%t] align 4
}}
"
    );
    let k = kernel(&src);
    let mut a = [Arg::Buf(Buffer::u32s(&[0; 64]))];
    run(&k, &mut a).expect("run");
    a[0].buffer().expect("out").to_u32()
}

#[test]
fn warp_shuffles_stay_in_their_warp() {
    let xor = shuffle_kernel("xor", 1);
    assert_eq!(&xor[..4], &[1, 0, 3, 2]);
    assert_eq!(xor[33], 32);
    let down = shuffle_kernel("down", 4);
    assert_eq!(
        (down[0], down[27], down[28], down[31], down[32]),
        (4, 31, 28, 31, 36),
        "out of range keeps its own"
    );
    let up = shuffle_kernel("up", 1);
    assert_eq!((up[0], up[1], up[32], up[33]), (0, 0, 32, 32));
    let idx = shuffle_kernel("idx", 5);
    assert_eq!((idx[0], idx[40]), (5, 37));
}

fn run_err(src: &str, args: &mut [Arg]) -> String {
    let k = kernel(src);
    match run(&k, args) {
        Err(KernelError::Interp(m)) => m,
        other => panic!("expected an interpreter error, got {other:?}"),
    }
}

#[test]
fn divergent_barrier_and_partial_warp_shuffle_are_errors() {
    let src = "kernel @k() gpu grid(1) block(64) {
  %t = axis block.x : i32
  %c = const 10 : i32
  %lt = icmp.slt %t, %c : i1
  if %lt {
    barrier
  }
}
";
    let m = run_err(src, &mut []);
    assert!(m.contains("barrier reached by 10 of 64 threads"), "{m}");
    let src = "kernel @k() gpu grid(1) block(32) {
  %t = axis lane : i32
  %c = const 10 : i32
  %lt = icmp.slt %t, %c : i1
  if %lt {
    %s = shfl.xor %t, %c : i32
  }
}
";
    let m = run_err(src, &mut []);
    assert!(m.contains("shuffle in warp 0 with 10 of 32 lanes active"), "{m}");
}

#[test]
fn races_bounds_and_uninitialized_reads_are_errors() {
    let race = "kernel @k(%o: ptr<global, f32>) gpu grid(2) block(32) {
  %z = const 0 : i32
  %v = const 1.0 : f32
  %l = axis lane : i32
  %first = icmp.eq %l, %z : i1
  if %first {
    store %v, %o[%z] align 4
  }
}
";
    let m = run_err(race, &mut [Arg::Buf(Buffer::poison_f32(1))]);
    assert!(m.contains("race") && m.contains("block 0") && m.contains("block 1"), "{m}");
    let shared = "kernel @k(%o: ptr<global, f32>) gpu grid(1) block(64) {
  %sm = alloc.shared 64 : ptr<shared, f32>
  %t = axis block.x : i32
  %v = const 1.0 : f32
  store %v, %sm[%t] align 4
  %c1 = const 1 : i32
  %n = xor %t, %c1 : i32
  %r = load %sm[%n] align 4 : f32
  store %r, %o[%t] align 4
}
";
    let m = run_err(shared, &mut [Arg::Buf(Buffer::poison_f32(64))]);
    assert!(m.contains("no barrier between"), "{m}");
    let fixed = shared.replace("  %c1 = const 1 : i32", "  barrier\n  %c1 = const 1 : i32");
    run(&kernel(&fixed), &mut [Arg::Buf(Buffer::poison_f32(64))]).expect("with a barrier it is fine");
    let oob = "kernel @k(%o: ptr<global, f32>) cpu chunks(1) {\n  %i = const 4 : i32\n  %r = load %o[%i] align 4 : <4 x f32>\n}\n";
    let m = run_err(oob, &mut [Arg::Buf(Buffer::poison_f32(6))]);
    assert!(m.contains("out of bounds: bytes 16..32"), "{m}");
    let uninit = "kernel @k() cpu chunks(1) {\n  %l = alloc.local 4 : ptr<local, f32>\n  %i = const 0 : i32\n  %r = load %l[%i] align 4 : f32\n}\n";
    assert!(run_err(uninit, &mut []).contains("uninitialized"));
    let misaligned = "kernel @k(%o: ptr<global, f32>) cpu chunks(1) {\n  %i = const 1 : i32\n  %r = load %o[%i] align 16 : <4 x f32>\n}\n";
    assert!(run_err(misaligned, &mut [Arg::Buf(Buffer::poison_f32(8))]).contains("misaligned"));
}

#[test]
fn artifact_prints_and_keys_are_stable() {
    let src = "kernel @axpy(%x: ptr<global, f32> noalias readonly len(64), %y: ptr<global, f32> noalias len(64)) cpu chunks(4) simd(128) {
  %c = axis cpu.chunk : i32
  %k16 = const 16 : i32
  %i = mul %c, %k16 : i32
  %a = load %x[%i] align 16 : <4 x f32>
  %b = load %y[%i] align 16 : <4 x f32>
  %s = add %a, %b : <4 x f32>
  store %s, %y[%i] align 16
}
";
    let k = kernel(src);
    let art = Artifact::new(&k, Code::Kir(print(&k)), "interp");
    let text = art.to_string();
    assert!(text.starts_with("artifact @axpy key "), "{text}");
    assert!(text.contains("launch: chunks(4)"), "{text}");
    assert!(text.contains("0: %x: ptr<global, f32> r align 16 len 64 (256 B)"), "{text}");
    assert!(text.contains("1: %y: ptr<global, f32> rw align 16 len 64 (256 B)"), "{text}");
    // the key is a pure function of the canonical text and the code generator
    assert_eq!(
        art.key,
        Artifact::new(&parse(&print(&k)).expect("parse"), Code::Kir(String::new()), "interp").key
    );
    assert_eq!(
        art.key.to_string(),
        "81f3bcc9207f0146df89cb43d31444aa",
        "the key changed: only OK if the KIR text format changed"
    );
    let k2 = kernel(&src.replace("const 16", "const 8"));
    assert_ne!(art.key, Artifact::new(&k2, Code::Kir(String::new()), "interp").key);
    assert_ne!(art.key, Artifact::new(&k, Code::Kir(String::new()), "cranelift").key);
}
