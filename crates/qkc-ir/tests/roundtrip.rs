//! Property tests: the text form and the JSON form round-trip on generated graphs
//! (`parse(print(g)) == g`, `from_json(to_json(g)) == g`), whether or not the graph verifies:
//! round-tripping is a property of the syntax.

use proptest::prelude::*;
use qkc_ir::ops::{
    ActQuant, AttentionAttrs, QLinearAttrs, RopeAttrs, RopeStyle, RotKind, Rotation,
};
use qkc_ir::{DType, Dim, Graph, Op, Shape, Type};

const SCHEMES: [&str; 11] = [
    "int4:g128",
    "int3:g64:asym",
    "int8:pc",
    "spqr3:g16",
    "spqr3:g16:perm",
    "lut3",
    "nf4:b64:dq",
    "aqlm:2x8",
    "aqlm:1x16",
    "bin:pc",
    "billm:g128",
];

fn dim() -> impl Strategy<Value = Dim> {
    prop_oneof![Just(Dim::Tokens), (1u64..5000).prop_map(Dim::Static)]
}

fn ty() -> impl Strategy<Value = Type> {
    let shape = || prop::collection::vec(dim(), 0..4).prop_map(Shape);
    let dtype = || prop::sample::select(DType::ALL.to_vec());
    prop_oneof![
        4 => (dtype(), shape()).prop_map(|(dtype, shape)| Type::Tensor { dtype, shape }),
        1 => (prop::sample::select(SCHEMES.to_vec()), shape())
            .prop_map(|(s, shape)| Type::Quant { scheme: s.parse().expect("scheme"), shape }),
        1 => (dtype(), dtype(), shape()).prop_map(|(val, index, shape)| Type::Sparse { val, index, shape }),
    ]
}

fn finite() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>().prop_filter("finite", |x| x.is_finite()),
        -10.0f64..10.0,
        Just(1e-5),
        Just(0.0)
    ]
}

fn act() -> impl Strategy<Value = ActQuant> {
    (
        prop::sample::select(vec![4u8, 8]),
        any::<bool>(),
        prop::option::of(prop::sample::select(vec![16u32, 32, 128])),
    )
        .prop_map(|(bits, sym, group)| ActQuant { bits, sym, group })
}

fn rotation() -> impl Strategy<Value = Rotation> {
    (
        prop::sample::select(vec![RotKind::Hadamard, RotKind::Dense]),
        any::<bool>(),
    )
        .prop_map(|(kind, transpose)| Rotation { kind, transpose })
}

fn name() -> impl Strategy<Value = String> {
    "[a-z_][a-z0-9_.]{0,12}"
}

/// Any op with random attributes (operands are chosen separately).
fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        "[ -~]{0,16}".prop_map(|name| Op::Input { name }),
        (
            "[ -~]{0,16}",
            prop::option::of(0.0f64..1.0),
            prop::option::of(rotation())
        )
            .prop_map(|(name, density, fold)| Op::Weight {
                name,
                density,
                fold
            }),
        prop::collection::vec(finite(), 1..5).prop_map(|value| Op::Const { value }),
        Just(Op::Linear),
        Just(Op::Matmul),
        Just(Op::Dequant),
        rotation().prop_map(Op::Rotate),
        Just(Op::Spmm),
        Just(Op::Add),
        Just(Op::Mul),
        act().prop_map(Op::QuantizeAct),
        finite().prop_map(|eps| Op::Rmsnorm { eps }),
        (finite(), 1u32..512, any::<bool>()).prop_map(|(theta, head_dim, i)| Op::Rope {
            theta,
            head_dim,
            style: if i {
                RopeStyle::Interleaved
            } else {
                RopeStyle::Half
            }
        }),
        Just(Op::Silu),
        Just(Op::Softmax),
        (
            1u32..64,
            1u32..64,
            1u32..256,
            prop::option::of("[ -~]{0,8}"),
            1u32..4096,
            prop::option::of((finite(), any::<bool>()))
        )
            .prop_map(
                |(heads, kv_heads, head_dim, cache, max_seq, rope)| Op::Attention(AttentionAttrs {
                    heads,
                    kv_heads,
                    head_dim,
                    max_seq: if cache.is_some() { max_seq } else { 0 },
                    cache,
                    rope: rope.map(|(theta, i)| RopeAttrs {
                        theta,
                        style: if i {
                            RopeStyle::Interleaved
                        } else {
                            RopeStyle::Half
                        }
                    }),
                })
            ),
        Just(Op::Embedding),
        (
            prop::option::of(rotation()),
            prop::option::of(act()),
            any::<bool>(),
            prop::option::of(act())
        )
            .prop_map(
                |(rotate, act, silu_gate, out_act)| Op::Qlinear(QLinearAttrs {
                    rotate,
                    act,
                    silu_gate,
                    out_act
                })
            ),
        Just(Op::Transpose),
        Just(Op::Reshape),
        Just(Op::Cast),
    ]
}

fn doc() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(
        prop_oneof![
            Just(String::new()),
            "// [ -~]{0,20}".prop_map(|s| s.trim_end().to_string())
        ],
        0..3,
    )
    .prop_map(|mut v| {
        v.dedup_by(|a, b| a.is_empty() && b.is_empty());
        v
    })
}

/// A graph of up to 12 nodes; operands pick earlier nodes, optional operands are coin flips.
fn graph() -> impl Strategy<Value = Graph> {
    let node = (
        op(),
        ty(),
        doc(),
        prop::collection::vec((any::<bool>(), any::<prop::sample::Index>()), 8),
    );
    (
        name(),
        prop::collection::vec(node, 1..12),
        prop::collection::vec(any::<prop::sample::Index>(), 0..3),
        doc(),
    )
        .prop_map(|(gname, nodes, outs, gdoc)| {
            let mut g = Graph::new(gname.replace('.', "_"));
            g.doc = gdoc.into_iter().filter(|l| !l.is_empty()).collect();
            let mut ids = Vec::new();
            for (i, (op, ty, doc, picks)) in nodes.into_iter().enumerate() {
                let roles = op.roles();
                let mut operands = Vec::new();
                let op = if ids.is_empty() && !roles.is_empty() {
                    Op::Input {
                        name: format!("in{i}"),
                    }
                } else {
                    op
                };
                for (r, role) in op.roles().iter().enumerate() {
                    let (take, which) = &picks[r];
                    if !role.optional || *take {
                        operands.push((r, *which.get(&ids)));
                    }
                }
                let mut doc = doc;
                if i == 0 {
                    while doc.first().is_some_and(String::is_empty) {
                        doc.remove(0);
                    }
                }
                let id = g.add_node(
                    qkc_ir::Node {
                        name: format!("v{i}"),
                        op,
                        ty,
                        span: None,
                        doc,
                    },
                    &operands,
                );
                ids.push(id);
            }
            let mut o: Vec<_> = outs.iter().map(|ix| *ix.get(&ids)).collect();
            o.dedup();
            g.set_outputs(o);
            g
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn text_round_trips(g in graph()) {
        let text = g.to_string();
        let back = qkc_ir::parse(&text).map_err(|d| TestCaseError::fail(format!("{d}\n{text}")))?;
        prop_assert_eq!(&back, &g, "\n{}", text);
        prop_assert_eq!(back.to_string(), text);
    }

    #[test]
    fn json_round_trips(g in graph()) {
        let json = qkc_ir::json::to_json(&g);
        let back = qkc_ir::json::from_json(&json).map_err(|d| TestCaseError::fail(format!("{d}\n{json}")))?;
        prop_assert_eq!(&back, &g);
        prop_assert_eq!(qkc_ir::json::to_json(&back), json);
    }

    /// The parser never panics, whatever the bytes.
    #[test]
    fn parser_never_panics(s in "\\PC{0,200}") {
        let _ = qkc_ir::parse(&s);
    }

    /// Mutating a valid file (deleting a char) yields a graph or a located error, never a panic.
    #[test]
    fn parser_survives_edits(cut in 0usize..2000) {
        let src = include_str!("../../../ir/llama_block.qir");
        let cut = cut.min(src.len() - 1);
        if src.is_char_boundary(cut) && src.is_char_boundary(cut + 1) {
            let mut s = src.to_string();
            s.remove(cut);
            if let Err(d) = qkc_ir::parse(&s) {
                prop_assert!(d.span.is_some(), "no location for {}", d);
            }
        }
    }
}

#[test]
fn every_ir_file_round_trips_exactly() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../ir");
    let mut n = 0;
    for e in std::fs::read_dir(dir).expect("ir/") {
        let p = e.expect("entry").path();
        if p.extension().is_some_and(|e| e == "qir") {
            let src = std::fs::read_to_string(&p).expect("read");
            let g = qkc_ir::parse(&src).unwrap_or_else(|d| panic!("{}: {d}", p.display()));
            assert_eq!(g.to_string(), src, "{} is not canonical", p.display());
            qkc_ir::verify::verify(&g).unwrap_or_else(|d| panic!("{}: {d:?}", p.display()));
            let j = qkc_ir::json::from_json(&qkc_ir::json::to_json(&g)).expect("json");
            assert_eq!(j, g);
            n += 1;
        }
    }
    assert!(n >= 3, "expected the ir/ examples, found {n}");
}
