//! Reference-interpreter tests: independent re-computations on fresh random inputs, and
//! identities that must hold exactly (up to f64 rounding).

use std::collections::HashMap;

use qkc_ir::interp::{synth_inputs, Interpreter, Tensor, Weights};

fn parse(src: &str) -> qkc_ir::Graph {
    let g = qkc_ir::parse(src).unwrap_or_else(|d| panic!("{d}"));
    qkc_ir::verify::verify(&g).unwrap_or_else(|d| panic!("{d:?}"));
    g
}

fn max_rel_err(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0.0f64, |m, x| m.max(x.abs())).max(1e-30);
    a.iter()
        .zip(b)
        .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()))
        / scale
}

fn fresh_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(7, |d| d.as_nanos() as u64)
}

/// A linear layer on f32 weights from a safetensors file equals a hand-written dot product.
#[test]
fn linear_matches_a_hand_computation_from_a_checkpoint() {
    let (n, k) = (5usize, 7usize);
    let seed = fresh_seed();
    let w: Vec<f32> = (0..n * k)
        .map(|i| (((i as u64 * 2654435761) ^ seed) % 1000) as f32 / 500.0 - 1.0)
        .collect();
    let b: Vec<f32> = (0..n).map(|i| i as f32 * 0.25 - 0.5).collect();
    let bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let (wb, bb) = (bytes(&w), bytes(&b));
    let views = vec![
        (
            "w",
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![n, k], &wb)
                .expect("view"),
        ),
        (
            "b",
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![n], &bb)
                .expect("view"),
        ),
    ];
    let file = safetensors::serialize(views, None).expect("serialize");
    let g = parse(
        "graph @lin {\n  %x = input \"x\" : f32[T, 7]\n  %w = weight \"w\" : f32[5, 7]\n  %b = weight \"b\" : f32[5]\n  %y = linear(%x, %w, bias = %b) : f32[T, 5]\n  return %y\n}\n",
    );
    let mut it = Interpreter::new(&g, &Weights::Checkpoint(file)).expect("bind");
    let inputs = synth_inputs(&g, 3, seed, 0);
    let x = &inputs["x"];
    assert!(x.data.iter().all(|v| *v != 0.0), "inputs must not be zero");
    let y = &it.run(&inputs).expect("run")[0].1;
    for t in 0..3 {
        for o in 0..n {
            let want: f64 = (0..k)
                .map(|j| x.data[t * k + j] * f64::from(w[o * k + j]))
                .sum::<f64>()
                + f64::from(b[o]);
            assert!(
                (y.data[t * n + o] - want).abs() <= 1e-12 * want.abs().max(1.0),
                "[{t},{o}]"
            );
        }
    }
}

/// Decoding token by token through the KV cache gives the same outputs as one prefill.
#[test]
fn decode_through_the_kv_cache_equals_prefill() {
    let src = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../ir/llama_block.qir"
    ))
    .expect("read");
    let g = parse(&src);
    let w = Weights::Seed(fresh_seed());
    let tokens = 5;
    let all = synth_inputs(&g, tokens, fresh_seed(), 0);
    let mut prefill = Interpreter::new(&g, &w).expect("bind");
    let full = prefill.run(&all).expect("prefill")[0].1.clone();
    let mut dec = Interpreter::new(&g, &w).expect("bind");
    let hidden = &all["hidden"];
    let d = hidden.last();
    for t in 0..tokens {
        let mut step = HashMap::new();
        step.insert(
            "hidden".to_string(),
            Tensor::new(vec![1, d], hidden.data[t * d..(t + 1) * d].to_vec()),
        );
        step.insert("pos".to_string(), Tensor::new(vec![1], vec![t as f64]));
        let y = &dec.run(&step).expect("decode")[0].1;
        let err = max_rel_err(&y.data, &full.data[t * d..(t + 1) * d]);
        assert!(err < 1e-12, "token {t}: max rel err {err}");
    }
    // The cache is bounded: max_seq = 256.
    let mut big = Interpreter::new(&g, &w).expect("bind");
    let e = big
        .run(&synth_inputs(&g, 257, 1, 0))
        .expect_err("cache overflow");
    assert!(e.to_string().contains("full"), "{e}");
}

/// The fused `qlinear` means exactly the unfused chain it replaces.
#[test]
fn qlinear_equals_its_unfused_chain() {
    let unfused = parse(
        r#"graph @unfused {
  %x = input "x" : f32[T, 256]
  %w = weight "w" : q<int4:g64:asym>[96, 256]
  %u = weight "u" : q<int4:g64:asym>[96, 256]
  %s = weight "s" {density = 0.01} : csr<f16, u16>[96, 256]
  %b = weight "b" : f32[96]
  %res = input "res" : f32[T, 96]
  %xr = rotate(%x) {kind = hadamard} : f32[T, 256]
  %xq = quantize_act(%xr) {bits = 8} : f32[T, 256]
  %wf = dequant(%w) : f32[96, 256]
  %g0 = linear(%xq, %wf, bias = %b) : f32[T, 96]
  %gs = spmm(%s, %xq) : f32[T, 96]
  %g = add(%g0, %gs) : f32[T, 96]
  %uf = dequant(%u) : f32[96, 256]
  %up = linear(%xq, %uf) : f32[T, 96]
  %ga = silu(%g) : f32[T, 96]
  %m = mul(%ga, %up) : f32[T, 96]
  %y = add(%m, %res) : f32[T, 96]
  return %y
}
"#,
    );
    let fused = parse(
        r#"graph @fused {
  %x = input "x" : f32[T, 256]
  %w = weight "w" : q<int4:g64:asym>[96, 256]
  %u = weight "u" : q<int4:g64:asym>[96, 256]
  %s = weight "s" {density = 0.01} : csr<f16, u16>[96, 256]
  %b = weight "b" : f32[96]
  %res = input "res" : f32[T, 96]
  %y = qlinear(%x, %w, outliers = %s, bias = %b, up = %u, residual = %res) {rotate = hadamard, act_bits = 8, gate = silu} : f32[T, 96]
  return %y
}
"#,
    );
    let w = Weights::Seed(fresh_seed());
    let inputs = synth_inputs(&unfused, 4, fresh_seed(), 0);
    let a = Interpreter::new(&unfused, &w)
        .expect("bind")
        .run(&inputs)
        .expect("run");
    let b = Interpreter::new(&fused, &w)
        .expect("bind")
        .run(&inputs)
        .expect("run");
    let err = max_rel_err(&b[0].1.data, &a[0].1.data);
    assert!(err < 1e-12, "max rel err {err}");
}

/// A rotation followed by its transpose is the identity, for a Hadamard and a dense R.
#[test]
fn rotation_then_transpose_is_identity() {
    let g = parse(
        r#"graph @rot {
  %x = input "x" : f32[T, 64]
  %a = rotate(%x) {kind = hadamard} : f32[T, 64]
  %b = rotate(%a) {kind = hadamard, transpose = true} : f32[T, 64]
  return %b, %x
}
"#,
    );
    let inputs = synth_inputs(&g, 3, fresh_seed(), 0);
    let out = Interpreter::new(&g, &Weights::Seed(0))
        .expect("bind")
        .run(&inputs)
        .expect("run");
    assert!(max_rel_err(&out[0].1.data, &out[1].1.data) < 1e-13);
}

/// Attention over a single token returns its value row (softmax over one key is 1).
#[test]
fn attention_over_one_token_returns_v() {
    let g = parse(
        r#"graph @attn {
  %q = input "q" : f32[T, 8]
  %k = input "k" : f32[T, 4]
  %v = input "v" : f32[T, 4]
  %o = attention(%q, %k, %v) {heads = 2, kv_heads = 1, head_dim = 4} : f32[T, 8]
  return %o
}
"#,
    );
    let inputs = synth_inputs(&g, 1, fresh_seed(), 0);
    let out = Interpreter::new(&g, &Weights::Seed(0))
        .expect("bind")
        .run(&inputs)
        .expect("run");
    let v = &inputs["v"].data;
    assert_eq!(&out[0].1.data[..4], &v[..]);
    assert_eq!(&out[0].1.data[4..], &v[..]);
}

/// The verifier reports every problem, each located at its op.
#[test]
fn verifier_reports_every_problem() {
    let g = qkc_ir::parse(
        r#"graph @bad {
  %x = input "x" : f32[T, 64]
  %w = weight "w" : q<int4:g128>[32, 64]
  %y = linear(%x, %w) : f32[T, 33]
  %z = silu(%y) : i32[T, 33]
  %p = input "p" : f32[T]
  %r = rope(%x, %p) {theta = 10000.0, head_dim = 16} : f32[T, 64]
  return %z, %r
}
"#,
    )
    .expect("parses");
    let errs = qkc_ir::verify::verify(&g).expect_err("invalid");
    let msgs: Vec<String> = errs.iter().map(ToString::to_string).collect();
    assert_eq!(errs.len(), 4, "{msgs:#?}");
    assert!(msgs[0].contains("not a multiple of 128"), "{msgs:#?}");
    assert!(msgs[1].contains("shape should be [T, 32]"), "{msgs:#?}");
    assert!(msgs[2].contains("dtype should be f32"), "{msgs:#?}");
    assert!(msgs[3].contains("integer"), "{msgs:#?}");
    assert!(errs.iter().all(|e| e.span.is_some()));
}

/// Quantized weights and CSR outliers bound from a qkc safetensors checkpoint give
/// `y = (dequant(W) + S)·x`, recomputed here from the stored parts.
#[test]
fn quantized_weights_and_outliers_from_a_checkpoint() {
    use qkc_quant::{io::SafetensorsWriter, Csr, QuantTensor};
    let (n, k) = (48usize, 128usize);
    let seed = fresh_seed();
    let q = QuantTensor::synthesize("int3:g32:asym".parse().expect("scheme"), n, k, seed)
        .expect("quantize");
    let csr = Csr::synthesize(n, k, 0.02, 0.5, seed ^ 1);
    let mut w = SafetensorsWriter::new();
    w.add_quant("layer.w", &q).expect("add");
    for (name, part) in csr.to_parts("layer.s") {
        w.add_part(&name, part).expect("add");
    }
    let file = w.to_bytes().expect("bytes");
    let g = parse(
        r#"graph @ck {
  %x = input "x" : f32[T, 128]
  %w = weight "layer.w" : q<int3:g32:asym>[48, 128]
  %s = weight "layer.s" : csr<f16, u16>[48, 128]
  %wf = dequant(%w) : f32[48, 128]
  %y0 = linear(%x, %wf) : f32[T, 48]
  %ys = spmm(%s, %x) : f32[T, 48]
  %y = add(%y0, %ys) : f32[T, 48]
  return %y
}
"#,
    );
    let inputs = synth_inputs(&g, 2, seed, 0);
    let y = Interpreter::new(&g, &Weights::Checkpoint(file))
        .expect("bind")
        .run(&inputs)
        .expect("run")[0]
        .1
        .clone();
    let (wd, sd) = (q.dequant().expect("dequant"), csr.to_dense());
    let x = &inputs["x"].data;
    let want: Vec<f64> = (0..2)
        .flat_map(|t| {
            let (wd, sd) = (&wd, &sd);
            (0..n).map(move |o| {
                (0..k)
                    .map(|j| x[t * k + j] * (f64::from(wd[o * k + j]) + f64::from(sd[o * k + j])))
                    .sum()
            })
        })
        .collect();
    assert!(max_rel_err(&y.data, &want) < 1e-12);
}

/// A checkpoint whose tensor disagrees with the graph is rejected with the tensor's name.
#[test]
fn checkpoint_shape_mismatch_names_the_tensor() {
    use qkc_quant::{io::SafetensorsWriter, Part};
    let mut w = SafetensorsWriter::new();
    w.add_part("norm", Part::from_f32(vec![3], &[1.0, 2.0, 3.0]))
        .expect("add");
    let g = parse("graph @g {\n  %x = input \"x\" : f32[T, 4]\n  %n = weight \"norm\" : f32[4]\n  %y = rmsnorm(%x, %n) {eps = 1e-5} : f32[T, 4]\n  return %y\n}\n");
    let e = Interpreter::new(&g, &Weights::Checkpoint(w.to_bytes().expect("bytes")))
        .err()
        .expect("must fail");
    let msg = e.to_string();
    assert!(msg.contains("norm") && msg.contains("[3]"), "{msg}");
    let e = Interpreter::new(&g, &Weights::Checkpoint(b"garbage".to_vec()))
        .err()
        .expect("must fail");
    assert!(e.to_string().contains("cannot read the checkpoint"), "{e}");
}

/// Grouped activation quantization: each 32-block of a token has its own abs-max scale, so a
/// block's values are multiples of (its amax / 127) within half a step of x, and a block's
/// amax itself is exact; the per-token form differs once the blocks' ranges differ.
#[test]
fn grouped_act_quant_scales_each_block() {
    let g = parse(
        r#"graph @qa {
  %x = input "x" : f32[T, 96]
  %a = quantize_act(%x) {bits = 8, group = 32} : f32[T, 96]
  %b = quantize_act(%x) {bits = 8} : f32[T, 96]
  return %a, %b
}
"#,
    );
    let mut inputs = synth_inputs(&g, 2, fresh_seed(), 0);
    // block 1 of each token 100x smaller: a per-token scale would flush it to a few levels
    for t in 0..2 {
        for v in &mut inputs.get_mut("x").expect("x").data[t * 96 + 32..t * 96 + 64] {
            *v *= 0.01;
        }
    }
    let out = Interpreter::new(&g, &Weights::Seed(0))
        .expect("bind")
        .run(&inputs)
        .expect("run");
    let x = &inputs["x"].data;
    let (a, b) = (&out[0].1.data, &out[1].1.data);
    for blk in 0..6 {
        let r = blk * 32..blk * 32 + 32;
        let amax = x[r.clone()].iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let s = amax / 127.0;
        for i in r {
            assert!((a[i] - x[i]).abs() <= 0.5 * s * (1.0 + 1e-12), "[{i}]");
            let q = a[i] / s;
            assert!(
                (q - q.round()).abs() < 1e-9,
                "[{i}] not on the block's grid"
            );
        }
    }
    assert!(
        max_rel_err(a, b) > 0.0,
        "the grouped form must differ from per-token"
    );
    // and the verifier names the group and the axis when they do not divide
    let bad = qkc_ir::parse(
        "graph @qa {\n  %x = input \"x\" : f32[T, 48]\n  %a = quantize_act(%x) {bits = 8, group = 32} : f32[T, 48]\n  return %a\n}\n",
    )
    .expect("parse");
    let e = format!(
        "{:?}",
        qkc_ir::verify::verify(&bad).expect_err("48 % 32 != 0")
    );
    assert!(e.contains("32") && e.contains("48"), "{e}");
}
