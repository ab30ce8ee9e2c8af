//! Hand-written KIR kernels covering every op group the verifier accepts on the GPU, each
//! compiled to PTX and assembled by ptxas for sm_90/80/86/89, with the instructions each
//! translation is meant to produce checked in the sm_90 PTX.

mod common;

use common::{assemble_all, have_ptxas, parse};

/// Compile, assemble, and check that the sm_90 PTX contains each of `want`.
fn check(test: &str, src: &str, want: &[&str]) {
    let k = parse(src);
    if !have_ptxas(test) {
        // still check the translation itself
        common::ptx(&k, 90);
        return;
    }
    let (ptx, r) = assemble_all(&k);
    eprintln!(
        "{test}: {} regs, {} B spill stores",
        r.registers, r.spill_stores
    );
    for w in want {
        assert!(ptx.contains(w), "{test}: missing `{w}` in\n{ptx}");
    }
}

#[test]
fn integer_arithmetic_bits_and_compares() {
    check(
        "integer_arithmetic_bits_and_compares",
        "kernel @ints(%p: ptr<global, i32> noalias, %q: ptr<global, i64> noalias, %v: ptr<global, i8> noalias, %h: ptr<global, i16> noalias) gpu grid(2) block(64) {
  %t = axis block.x : i32
  %a = load %p[%t] align 4 : i32
  %c3 = const 3 : i32
  %c7 = const -7 : i32
  %b = add %a, %c3 : i32
  %s = sub %b, %c7 : i32
  %m = mul %s, %a : i32
  %d1 = sdiv %m, %a : i32
  %d2 = udiv %m, %b : i32
  %d3 = srem %m, %s : i32
  %d4 = urem %m, %a : i32
  %e1 = smin %d1, %d2 : i32
  %e2 = smax %e1, %d3 : i32
  %e3 = umin %e2, %d4 : i32
  %e4 = umax %e3, %a : i32
  %f1 = and %e4, %c7 : i32
  %f2 = or %f1, %c3 : i32
  %f3 = xor %f2, %a : i32
  %f4 = shl %f3, %c3 : i32
  %f5 = lshr %f4, %c3 : i32
  %f6 = ashr %f5, %c3 : i32
  %g1 = neg %f6 : i32
  %g2 = not %g1 : i32
  %g3 = abs %g2 : i32
  %g4 = popcnt %g3 : i32
  %k1 = icmp.eq %g4, %a : i1
  %k2 = icmp.ne %g4, %a : i1
  %k3 = icmp.slt %g4, %a : i1
  %k4 = icmp.sle %g4, %a : i1
  %k5 = icmp.sgt %g4, %a : i1
  %k6 = icmp.sge %g4, %a : i1
  %k7 = icmp.ult %g4, %a : i1
  %k8 = icmp.ule %g4, %a : i1
  %k9 = icmp.ugt %g4, %a : i1
  %k10 = icmp.uge %g4, %a : i1
  %o1 = and %k1, %k2 : i1
  %o2 = or %o1, %k3 : i1
  %o3 = xor %o2, %k4 : i1
  %o4 = and %o3, %k5 : i1
  %o5 = or %o4, %k6 : i1
  %o6 = xor %o5, %k7 : i1
  %o7 = and %o6, %k8 : i1
  %o8 = or %o7, %k9 : i1
  %o9 = xor %o8, %k10 : i1
  %o10 = not %o9 : i1
  %r = select %o10, %g4, %f6 : i32
  store %r, %p[%t] align 4
  %x = load %q[%t] align 8 : i64
  %c5 = const 5 : i64
  %y1 = mul %x, %c5 : i64
  %y2 = sdiv %y1, %x : i64
  %y3 = ashr %y2, %c5 : i64
  %y4 = popcnt %y3 : i64
  store %y4, %q[%t] align 8
  %four = const 4 : i32
  %ti = mul %t, %four : i32
  %w = load %p[%ti] align 16 : <4 x i32>
  %sh = const 2 : i32
  %w1 = shl %w, %sh : <4 x i32>
  %w2 = lshr %w1, %w : <4 x i32>
  %w3 = ashr %w2, %sh : <4 x i32>
  %w4 = mul %w3, %w : <4 x i32>
  %w5 = smax %w4, %w : <4 x i32>
  %w6 = abs %w5 : <4 x i32>
  %w7 = neg %w6 : <4 x i32>
  %w8 = not %w7 : <4 x i32>
  %w9 = popcnt %w8 : <4 x i32>
  %lm = icmp.slt %w9, %w : <4 x i1>
  %w10 = select %lm, %w9, %w : <4 x i32>
  store %w10, %p[%ti] align 16
  %sixteen = const 16 : i32
  %bi = mul %t, %sixteen : i32
  %bv = load %v[%bi] align 16 : <16 x i8>
  %b1 = const 1 : i8
  %bv1 = add %bv, %bv : <16 x i8>
  %bv2 = lshr %bv1, %b1 : <16 x i8>
  %bv3 = umin %bv2, %bv : <16 x i8>
  store %bv3, %v[%bi] align 16
  %hv = load %h[%ti] align 8 : <4 x i16>
  %hv1 = mul %hv, %hv : <4 x i16>
  %h1 = const 1 : i16
  %hv2 = ashr %hv1, %h1 : <4 x i16>
  store %hv2, %h[%ti] align 8
}",
        &["div.s32", "div.u32", "rem.s32", "rem.u32", "div.s64", "popc.b32", "min.s32", "max.u32", "popc.b64", "shr.s64", "selp"],
    );
}

#[test]
fn float_arithmetic_compares_and_approximations() {
    check(
        "float_arithmetic_compares_and_approximations",
        "kernel @floats(%p: ptr<global, f32> noalias, %d: ptr<global, f64> noalias) gpu grid(1) block(32) {
  %t = axis block.x : i32
  %a = load %p[%t] align 4 : f32
  %c = const 1.5 : f32
  %nan = const 0x7fc00001 : f32
  %b = add %a, %c : f32
  %isn = fcmp.uno %a, %a : i1
  %bn = select %isn, %nan, %b : f32
  %s = sub %bn, %a : f32
  %m = mul %s, %a : f32
  %q = div %m, %b : f32
  %mn = min %q, %a : f32
  %mx = max %mn, %c : f32
  %f = fma %mx, %a, %c : f32
  %n = neg %f : f32
  %ab = abs %n : f32
  %sq = sqrt %ab : f32
  %rs = rsqrt %sq : f32
  %e = exp2 %rs : f32
  %fl = floor %e : f32
  %re0 = roundeven %e : f32
  %re = add %fl, %re0 : f32
  %k1 = fcmp.oeq %re, %a : i1
  %k2 = fcmp.one %re, %a : i1
  %k3 = fcmp.olt %re, %a : i1
  %k4 = fcmp.ole %re, %a : i1
  %k5 = fcmp.ogt %re, %a : i1
  %k6 = fcmp.oge %re, %a : i1
  %k7 = fcmp.une %re, %a : i1
  %k8 = fcmp.ord %re, %a : i1
  %k9 = fcmp.uno %re, %a : i1
  %o1 = or %k1, %k2 : i1
  %o2 = and %o1, %k3 : i1
  %o3 = xor %o2, %k4 : i1
  %o4 = or %o3, %k5 : i1
  %o5 = and %o4, %k6 : i1
  %o6 = xor %o5, %k7 : i1
  %o7 = or %o6, %k8 : i1
  %o8 = and %o7, %k9 : i1
  %r = select %o8, %re, %a : f32
  store %r, %p[%t] align 4
  %x = load %d[%t] align 8 : f64
  %dc = const 0.25 : f64
  %x1 = fma %x, %x, %dc : f64
  %x2 = div %x1, %x : f64
  %x3 = sqrt %x2 : f64
  %x4 = rsqrt %x3 : f64
  %x5 = min %x4, %x : f64
  %x6 = roundeven %x5 : f64
  %x7 = floor %x6 : f64
  store %x7, %d[%t] align 8
  %four = const 4 : i32
  %ti = mul %t, %four : i32
  %v = load %p[%ti] align 16 : <4 x f32>
  %v1 = fma %v, %v, %v : <4 x f32>
  %v2 = max %v1, %v : <4 x f32>
  %v3 = rsqrt %v2 : <4 x f32>
  %v4 = exp2 %v3 : <4 x f32>
  %v5 = sqrt %v4 : <4 x f32>
  %lm = fcmp.olt %v5, %v : <4 x i1>
  %v6 = select %lm, %v5, %v : <4 x f32>
  store %v6, %p[%ti] align 16
}",
        &["div.rn.f32", "fma.rn.f32", "sqrt.rn.f32", "rsqrt.approx", "ex2.approx", "cvt.rmi.f32.f32", "cvt.rni.f32.f32", "min.NaN.f32", "max.NaN.f32", "rsqrt.approx.f64", "sqrt.rn.f64", "div.rn.f64"],
    );
}

#[test]
fn half_and_bfloat() {
    check(
        "half_and_bfloat",
        "kernel @halfs(%h: ptr<global, f16> noalias, %b: ptr<global, bf16> noalias) gpu grid(1) block(32) {
  %t = axis block.x : i32
  %two = const 2 : i32
  %ti = mul %t, %two : i32
  %x = load %h[%t] align 2 : f16
  %c = const 0.5 : f16
  %x1 = add %x, %c : f16
  %x2 = mul %x1, %x : f16
  %x3 = fma %x2, %x, %c : f16
  %x4 = min %x3, %c : f16
  %x5 = max %x4, %x : f16
  %x6 = sqrt %x5 : f16
  %x7 = rsqrt %x6 : f16
  %x8 = exp2 %x7 : f16
  %x9 = floor %x8 : f16
  %x10 = roundeven %x9 : f16
  %x11 = neg %x10 : f16
  %x12 = abs %x11 : f16
  %x13 = div %x12, %c : f16
  store %x13, %h[%t] align 2
  %v = load %h[%ti] align 4 : <2 x f16>
  %cv = const 1.0 : <2 x f16>
  %v1 = mul %v, %cv : <2 x f16>
  %v2 = fma %v1, %v, %cv : <2 x f16>
  %v3 = sub %v2, %cv : <2 x f16>
  %v4 = max %v3, %v : <2 x f16>
  %v5 = exp2 %v4 : <2 x f16>
  %lm = fcmp.ogt %v5, %v : <2 x i1>
  %v6 = select %lm, %v5, %v : <2 x f16>
  store %v6, %h[%ti] align 4
  %y = load %b[%t] align 2 : bf16
  %cb = const 1.5 : bf16
  %y1 = add %y, %cb : bf16
  %y2 = fma %y1, %y, %cb : bf16
  %y3 = mul %y2, %y : bf16
  %y4 = max %y3, %cb : bf16
  store %y4, %b[%t] align 2
  %bv = load %b[%ti] align 4 : <2 x bf16>
  %bv1 = fma %bv, %bv, %bv : <2 x bf16>
  store %bv1, %b[%ti] align 4
}",
        &["fma.rn.f16x2", "fma.rn.f16", "ex2.approx"],
    );
}

#[test]
fn conversions() {
    check(
        "conversions",
        "kernel @casts(%p: ptr<global, f32> noalias, %i: ptr<global, i32> noalias, %h: ptr<global, f16> noalias, %b: ptr<global, bf16> noalias, %c: ptr<global, i8> noalias, %d: ptr<global, f64> noalias) gpu grid(1) block(32) {
  %t = axis block.x : i32
  %f = load %p[%t] align 4 : f32
  %n = load %i[%t] align 4 : i32
  %s1 = fptosi %f : i32
  %s2 = fptoui %f : i32
  %s3 = fptosi %f : i8
  %s4 = sext %s3 : i32
  %s5 = add %s1, %s2 : i32
  %s6 = add %s5, %s4 : i32
  %z = trunc %n : i16
  %z1 = zext %z : i64
  %z2 = trunc %z1 : i32
  %s7 = add %s6, %z2 : i32
  store %s7, %i[%t] align 4
  %hf = fptrunc %f : f16
  %bf = fptrunc %f : bf16
  %fh = fpext %hf : f32
  %fb = fpext %bf : f32
  %fi = sitofp %n : f32
  %fu = uitofp %n : f32
  %hi = sitofp %n : f16
  %fd = fpext %f : f64
  %df = fptrunc %fd : f32
  %a1 = add %fh, %fb : f32
  %a2 = add %a1, %fi : f32
  %a3 = add %a2, %fu : f32
  %a4 = add %a3, %df : f32
  store %a4, %p[%t] align 4
  store %hi, %h[%t] align 2
  store %bf, %b[%t] align 2
  %dd = sitofp %n : f64
  %di = fptosi %dd : i64
  %dd2 = sitofp %di : f64
  store %dd2, %d[%t] align 8
  %hh = bitcast %n : <2 x f16>
  %hw = fpext %hh : <2 x f32>
  %hq = fptosi %hw : <2 x i32>
  %e0 = extract %hq, 0 : i32
  %bytes = bitcast %e0 : <4 x i8>
  %wide = sext %bytes : <4 x i32>
  %fv = sitofp %wide : <4 x f32>
  %hv = fptrunc %fv : <4 x f16>
  %bits = bitcast %hv : <2 x i32>
  %w0 = extract %bits, 1 : i32
  store %w0, %i[%t] align 4
  %sat = fptoui %fv : <4 x i8>
  %sw = bitcast %sat : i32
  %four = const 4 : i32
  %ci = mul %t, %four : i32
  store %sat, %c[%ci] align 4
  %hs = fptosi %hf : i16
  %hs2 = sext %hs : i32
  %sum = add %hs2, %sw : i32
  store %sum, %i[%t] align 4
}",
        &["cvt.rn.f16.f32", "cvt.rn.bf16.f32", "cvt.f32.f16", "cvt.rzi.s32.f32", "cvt.rn.f32.s32", "cvt.rn.f32.u32"],
    );
}

#[test]
fn vector_ops_and_reductions() {
    check(
        "vector_ops_and_reductions",
        "kernel @vecs(%p: ptr<global, f32> noalias, %h: ptr<global, f16> noalias, %b: ptr<global, i8> noalias, %i: ptr<global, i32> noalias, %d: ptr<global, f64> noalias) gpu grid(1) block(32) {
  %t = axis block.x : i32
  %c8 = const 8 : i32
  %c16 = const 16 : i32
  %o8 = mul %t, %c8 : i32
  %o16 = mul %t, %c16 : i32
  %f = load %p[%t] align 4 : f32
  %s = splat %f : <8 x f32>
  %v = load %p[%o8] align 32 : <8 x f32>
  %v1 = add %v, %s : <8 x f32>
  %v2 = insert %v1, %f, 3 : <8 x f32>
  %lo = shuffle %v2, %v, [0, 9, 2, 11] : <4 x f32>
  %e = extract %lo, 2 : f32
  %r1 = reduce.add %v2 : f32
  %r2 = reduce.min %v2 : f32
  %r3 = reduce.max %lo : f32
  %a1 = add %r1, %r2 : f32
  %a2 = add %a1, %r3 : f32
  %a3 = add %a2, %e : f32
  store %a3, %p[%t] align 4
  %hv = load %h[%o8] align 16 : <8 x f16>
  %hr = reduce.add %hv : f16
  %hm = reduce.max %hv : f16
  %hs = add %hr, %hm : f16
  store %hs, %h[%t] align 2
  %bv = load %b[%o16] align 16 : <16 x i8>
  %br1 = reduce.add %bv : i8
  %br2 = reduce.smin %bv : i8
  %br3 = reduce.umax %bv : i8
  %br4 = reduce.smax %bv : i8
  %br5 = reduce.umin %bv : i8
  %bs1 = add %br1, %br2 : i8
  %bs2 = add %bs1, %br3 : i8
  %bs3 = add %bs2, %br4 : i8
  %bs4 = add %bs3, %br5 : i8
  store %bs4, %b[%t] align 1
  %iv = load %i[%o8] align 16 : <4 x i32>
  %ir = reduce.umax %iv : i32
  %iw = shuffle %iv, %iv, [3, 2, 1, 0, 7, 6, 5, 4] : <8 x i32>
  %ir2 = reduce.add %iw : i32
  %is = add %ir, %ir2 : i32
  store %is, %i[%t] align 4
  %dv = load %d[%o8] align 32 : <4 x f64>
  %dr = reduce.add %dv : f64
  store %dr, %d[%t] align 8
  %bits = const [1, 0, 1, 1] : <4 x i1>
  %z = const 0 : <4 x i32>
  %sel = select %bits, %iv, %z : <4 x i32>
  %sr = reduce.smin %sel : i32
  store %sr, %i[%t] align 4
}",
        &["ld.global.v4.f32", "add.rn.f32"],
    );
}

#[test]
fn memory_hints_atomics_shared_and_local() {
    check(
        "memory_hints_atomics_shared_and_local",
        "kernel @mem(%w: ptr<global, i32> noalias readonly len(4096), %h: ptr<global, f16> noalias, %f: ptr<global, f32> noalias, %d: ptr<global, f64> noalias, %q: ptr<global, i64> noalias, %b: ptr<global, i8> noalias, %ctr: ptr<global, i32> noalias) gpu grid(4) block(128) {
  %sm = alloc.shared 128 : ptr<shared, f32>
  %sh = alloc.shared 64 : ptr<shared, f16>
  %loc = alloc.local 8 : ptr<local, f32>
  %t = axis block.x : i32
  %c0 = const 0 : i32
  %c1 = const 1 : i32
  %c4 = const 4 : i32
  %t4 = mul %t, %c4 : i32
  %a = load %w[%t4] align 16 evict_first : <4 x i32>
  %a2 = load %w[%t4] align 8 no_l1 : <2 x i32>
  %a3 = load %w[%t] align 4 evict_last : i32
  %a4 = load %w[%t4] align 4 evict_first : <4 x i32>
  %hv = load %h[%t] align 2 evict_first : f16
  %bv = load %b[%t] align 1 no_l1 : i8
  %fv = load %f[%t4] align 16 evict_first : <4 x f32>
  %x0 = extract %a, 0 : i32
  %x1 = extract %a2, 1 : i32
  %x2 = extract %a4, 2 : i32
  %y0 = add %x0, %x1 : i32
  %y1 = add %y0, %x2 : i32
  %y2 = add %y1, %a3 : i32
  %yf = sitofp %y2 : f32
  store %yf, %sm[%t] align 4
  store %hv, %sh[%c0] align 2
  barrier
  %wp = offset %w, %c4 : ptr<global, i32>
  prefetch %wp[%t]
  %n = load %sm[%c0] align 4 : f32
  %lv = splat %n : <4 x f32>
  store %lv, %loc[%c0] align 16
  store %fv, %loc[%c4] align 16
  %j = and %t, %c4 : i32
  %l1 = load %loc[%j] align 4 : f32
  %old = atomic.add %f[%c0], %l1 : f32
  %dv = fpext %old : f64
  %old2 = atomic.add %d[%c1], %dv : f64
  %one = const 1 : i64
  %old3 = atomic.add %q[%c0], %one : i64
  %cp = offset %ctr, %c4 : ptr<global, i32>
  %oi = atomic.add %cp[%c0], %y2 : i32
  %hh = const 1.0 : <2 x f16>
  %old4 = atomic.add %h[%c4], %hh : <2 x f16>
  %old5 = atomic.add %sm[%c1], %n : f32
  %old6 = atomic.add %sh[%c4], %hh : <2 x f16>
  %fo = add %old5, %l1 : f32
  store %fo, %f[%t] align 4 evict_first
  %oh = fptrunc %fo : f16
  store %oh, %h[%t] align 2 no_l1
  store %bv, %b[%t] align 1 evict_first
  %v4 = splat %fo : <4 x f32>
  store %v4, %f[%t4] align 16 evict_last
  store %old2, %d[%t] align 8 no_l1
  store %old3, %q[%t] align 8
  %o4f = bitcast %old4 : f32
  %o6f = bitcast %old6 : f32
  %s46 = add %o4f, %o6f : f32
  store %s46, %f[%c1] align 4
  %oi2 = sitofp %oi : f32
  store %oi2, %f[%c4] align 4
}",
        &[
            "ld.global.cs.v4.u32",
            "ld.global.cg.v2.u32",
            "ld.global.L1::evict_last.u32",
            "ld.global.cs.u16",
            "ld.global.cg.u8",
            "st.global.cs.u32",
            "st.global.cg.u16",
            "st.global.L1::evict_last.v4.u32",
            "st.global.cg.v2.u32",
            "atom.global.add.f32",
            "atom.global.add.f64",
            "atom.global.add.u64",
            "atom.global.add.u32",
            "atom.global.add.noftz.f16x2",
            "atom.shared.add.noftz.f16x2",
            "atom.shared.add.f32",
            "prefetch.global.L2",
            "bar.sync",
            ".shared",
        ],
    );
}

#[test]
fn control_flow_loops_ifs_and_masks() {
    check(
        "control_flow_loops_ifs_and_masks",
        "kernel @ctl(%p: ptr<global, f32> noalias, %i: ptr<global, i32> noalias) gpu grid(1) block(64) {
  %t = axis block.x : i32
  %c0 = const 0 : i32
  %c1 = const 1 : i32
  %c3 = const 3 : i32
  %c10 = const 10 : i32
  %z = const 0.0 : f32
  %zm = const 0 : <4 x i1>
  %four = const 4 : i64
  %lo = const 0 : i64
  %hi = const 64 : i64
  %s, %m = for %k = %c0 to %c10 step %c1 iter(%a = %z, %mk = %zm) unroll 4 : f32, <4 x i1> {
    %kf = sitofp %k : f32
    %a1 = add %a, %kf : f32
    %inner = for %j = %lo to %hi step %four iter(%b = %a1) : f32 {
      %jf = sitofp %j : f32
      %b1 = fma %b, %jf, %a1 : f32
      yield %b1
    }
    %sp = splat %k : <4 x i32>
    %three = splat %c3 : <4 x i32>
    %mm = icmp.sgt %sp, %three : <4 x i1>
    %mk1 = xor %mk, %mm : <4 x i1>
    yield %inner, %mk1
  }
  %odd = and %t, %c1 : i32
  %isodd = icmp.ne %odd, %c0 : i1
  %r, %flag = if %isodd : f32, i1 {
    %r1 = add %s, %s : f32
    %f1 = icmp.eq %t, %c1 : i1
    yield %r1, %f1
  } else {
    %r2 = sub %s, %s : f32
    yield %r2, %isodd
  }
  if %flag {
    store %r, %p[%t] align 4
  }
  for %u = %t to %c10 step %c3 {
    %mw = zext %m : <4 x i32>
    %red = reduce.add %mw : i32
    store %red, %i[%u] align 4
  }
}",
        &["bra", "st.global.f32"],
    );
}

#[test]
fn gpu_axes_shuffles_prmt_and_dp4a() {
    check(
        "gpu_axes_shuffles_prmt_and_dp4a",
        "kernel @warp(%p: ptr<global, i32> noalias, %f: ptr<global, f32> noalias, %h: ptr<global, f16> noalias, %q: ptr<global, i64> noalias, %d: ptr<global, f64> noalias) gpu grid(3, 2, 1) block(32, 2, 2) {
  %gx = axis grid.x : i32
  %gy = axis grid.y : i32
  %gz = axis grid.z : i32
  %bx = axis block.x : i32
  %by = axis block.y : i32
  %bz = axis block.z : i32
  %wp = axis warp : i32
  %ln = axis lane : i32
  %s1 = add %gx, %gy : i32
  %s2 = add %s1, %gz : i32
  %s3 = add %s2, %bx : i32
  %s4 = add %s3, %by : i32
  %s5 = add %s4, %bz : i32
  %s6 = add %s5, %wp : i32
  %v = add %s6, %ln : i32
  %c1 = const 1 : i32
  %c5 = const 5 : i32
  %x1 = shfl.xor %v, %c1 : i32
  %x2 = shfl.down %x1, %c5 : i32
  %x3 = shfl.up %x2, %c1 : i32
  %x4 = shfl.idx %x3, %ln : i32
  %sel = const 0x5140 : i32
  %pm = prmt %x4, %v, %sel : i32
  %d1 = dp4a.s8s8 %pm, %v, %x1 : i32
  %d2 = dp4a.u8s8 %d1, %v, %x2 : i32
  %d3 = dp4a.s8u8 %d2, %v, %x3 : i32
  %d4 = dp4a.u8u8 %d3, %v, %x4 : i32
  %flat = mul %wp, %c5 : i32
  %idx = add %flat, %ln : i32
  store %d4, %p[%idx] align 4
  %fv = load %f[%idx] align 4 : f32
  %f1 = shfl.xor %fv, %c1 : f32
  store %f1, %f[%idx] align 4
  %hv = load %h[%idx] align 2 : f16
  %h1 = shfl.down %hv, %c1 : f16
  store %h1, %h[%idx] align 2
  %two = const 2 : i32
  %i2 = mul %idx, %two : i32
  %h2v = load %h[%i2] align 4 : <2 x f16>
  %h2 = shfl.xor %h2v, %c5 : <2 x f16>
  store %h2, %h[%i2] align 4
  %qv = load %q[%idx] align 8 : i64
  %q1 = shfl.idx %qv, %c5 : i64
  store %q1, %q[%idx] align 8
  %dv = load %d[%idx] align 8 : f64
  %dd = shfl.up %dv, %c1 : f64
  store %dd, %d[%idx] align 8
  %four = const 4 : i32
  %i4 = mul %idx, %four : i32
  %vv = load %f[%i4] align 8 : <2 x f32>
  %v1 = shfl.xor %vv, %c1 : <2 x f32>
  store %v1, %f[%i4] align 8
  %b = icmp.eq %ln, %c5 : i1
  %b1 = shfl.idx %b, %c5 : i1
  %bi = zext %b1 : i32
  %bb = trunc %v : i8
  %bb1 = shfl.down %bb, %c1 : i8
  %bbi = zext %bb1 : i32
  %sum = add %bi, %bbi : i32
  store %sum, %p[%ln] align 4
}",
        &[
            "%ctaid.x", "%ctaid.y", "%ctaid.z", "%tid.x", "%tid.y", "%tid.z", "%laneid",
            "shfl.sync.bfly.b32", "shfl.sync.down.b32", "shfl.sync.up.b32", "shfl.sync.idx.b32",
            "prmt.b32", "dp4a.s32.s32", "dp4a.u32.s32", "dp4a.s32.u32", "dp4a.u32.u32", ".maxntid 32, 2, 2",
        ],
    );
}
