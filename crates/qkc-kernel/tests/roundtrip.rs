//! `parse(print(k)) == k` on generated kernels: a random but valid kernel is built through the
//! builder from a tape of choices (which proptest shrinks), printed, parsed back and compared;
//! the generated kernels must also pass the verifier.

use proptest::prelude::*;
use qkc_kernel::ops::{Dp4a, Madd, UnaryOp};
use qkc_kernel::{
    parse, print, verify, Axis, BinaryOp, Builder, CacheHint, CastOp, FloatCC, IntCC, MemFlags, MemSpace, Op,
    ParamAttrs, ReduceOp, Scalar, ShflMode, Target, Type, Value,
};

/// Reads choices from the tape (zeros once it runs out).
struct Tape<'a> {
    t: &'a [u32],
    i: usize,
}

impl Tape<'_> {
    fn next(&mut self) -> u32 {
        let v = self.t.get(self.i).copied().unwrap_or(0);
        self.i += 1;
        v
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() as usize) % n.max(1)
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())]
    }
    fn chance(&mut self, pct: u32) -> bool {
        self.next() % 100 < pct
    }
}

struct Gen<'a> {
    tape: Tape<'a>,
    b: Builder,
    gpu: bool,
    /// Values in scope, one list per open region.
    scopes: Vec<Vec<Value>>,
    ptrs: Vec<Value>,
    names: u32,
}

const SCALARS: [Scalar; 9] = [
    Scalar::I1,
    Scalar::I8,
    Scalar::I16,
    Scalar::I32,
    Scalar::I64,
    Scalar::F16,
    Scalar::Bf16,
    Scalar::F32,
    Scalar::F64,
];

impl Gen<'_> {
    fn name(&mut self) -> Option<String> {
        self.names += 1;
        self.tape.chance(50).then(|| format!("n{}", self.names))
    }
    fn ty(&mut self) -> Type {
        let s = self.tape.pick(&SCALARS);
        if s != Scalar::I1 && self.tape.chance(40) {
            let max = if self.gpu { 8 } else { 128 / s.bits() };
            let lanes = self.tape.pick(&[2u32, 4, 8, 16]).min(max.max(2));
            if s.bits() * lanes <= if self.gpu { 512 } else { 128 } {
                return Type::Vector(s, lanes as u8);
            }
        }
        Type::Scalar(s)
    }
    fn in_scope(&self) -> Vec<Value> {
        self.scopes.iter().flatten().copied().collect()
    }
    fn of_type(&mut self, t: Type) -> Value {
        let vs: Vec<Value> = self.in_scope().into_iter().filter(|&v| self.b.kernel().ty(v) == t).collect();
        if !vs.is_empty() && self.tape.chance(70) {
            return self.tape.pick(&vs);
        }
        self.constant(t)
    }
    fn any_value(&mut self) -> Value {
        let vs: Vec<Value> =
            self.in_scope().into_iter().filter(|&v| !self.b.kernel().ty(v).is_ptr()).collect();
        if vs.is_empty() || self.tape.chance(20) {
            let t = self.ty();
            return self.constant(t);
        }
        self.tape.pick(&vs)
    }
    fn emit(&mut self, op: Op, args: &[Value], tys: &[Type]) -> Vec<Value> {
        let res: Vec<(Type, Option<String>)> = tys.iter().map(|&t| (t, self.name())).collect();
        let i = self.b.inst_named(op, args.to_vec(), &res);
        let out = self.b.kernel().inst(i).results.clone();
        if let Some(s) = self.scopes.last_mut() {
            s.extend(&out);
        }
        out
    }
    fn constant(&mut self, t: Type) -> Value {
        let e = t.elem().unwrap_or(Scalar::I32);
        let n = if t.is_vector() && self.tape.chance(50) { t.lanes() } else { 1 };
        let bits: Vec<u64> = (0..n)
            .map(|_| (u64::from(self.tape.next()) << 17 ^ u64::from(self.tape.next())) & e.mask())
            .collect();
        self.emit(Op::Const(bits), &[], &[t])[0]
    }
    fn index(&mut self) -> Value {
        self.of_type(Type::I32)
    }
}

impl Gen<'_> {
    fn arith(&mut self) {
        let a = self.any_value();
        let t = self.b.kernel().ty(a);
        let int_ops = [
            BinaryOp::Add,
            BinaryOp::Sub,
            BinaryOp::Mul,
            BinaryOp::And,
            BinaryOp::Xor,
            BinaryOp::Umin,
            BinaryOp::Smax,
        ];
        let float_ops = [BinaryOp::Add, BinaryOp::Mul, BinaryOp::Div, BinaryOp::Min, BinaryOp::Max];
        match self.tape.below(6) {
            0 if t.is_int() && t.elem() != Some(Scalar::I1) && (self.gpu || !t.is_vector()) => {
                let sh = self.tape.pick(&[BinaryOp::Shl, BinaryOp::Lshr, BinaryOp::Ashr]);
                let amt = if self.tape.chance(50) { t.scalar_of() } else { t };
                let amt = if self.gpu { amt } else { t.scalar_of() };
                let b = self.of_type(amt);
                self.emit(Op::Binary(sh), &[a, b], &[t]);
            }
            1 if t.is_float() => {
                let (b, c) = (self.of_type(t), self.of_type(t));
                self.emit(Op::Fma, &[a, b, c], &[t]);
            }
            2 => {
                let b = self.of_type(t);
                let cmp = if t.is_int() {
                    Op::Icmp(IntCC::Ult)
                } else {
                    Op::Fcmp(self.tape.pick(&[FloatCC::Olt, FloatCC::Uno]))
                };
                let c = self.emit(cmp, &[a, b], &[t.with_elem(Scalar::I1)])[0];
                self.emit(Op::Select, &[c, a, b], &[t]);
            }
            3 => {
                let u = if t.is_int() {
                    self.tape.pick(&[UnaryOp::Not, UnaryOp::Popcnt, UnaryOp::Neg])
                } else {
                    UnaryOp::Sqrt
                };
                self.emit(Op::Unary(u), &[a], &[t]);
            }
            4 => self.cast(a, t),
            _ => {
                let ops: &[BinaryOp] = if t.is_int() { &int_ops } else { &float_ops };
                let op = self.tape.pick(ops);
                let b = self.of_type(t);
                self.emit(Op::Binary(op), &[a, b], &[t]);
            }
        }
    }
    fn cast(&mut self, a: Value, t: Type) {
        let e = t.elem().unwrap_or(Scalar::I32);
        let to = self.tape.pick(&SCALARS);
        let op = match (e.is_int(), to.is_int()) {
            (true, true) if to.bits() > e.bits() => CastOp::Sext,
            (true, true) if to.bits() < e.bits() => CastOp::Trunc,
            (true, false) => CastOp::Uitofp,
            (false, true) if to != Scalar::I1 => CastOp::Fptosi,
            (false, false) if to.bits() > e.bits() => CastOp::Fpext,
            (false, false) if to.bits() < e.bits() => CastOp::Fptrunc,
            _ => return,
        };
        let rt = t.with_elem(to);
        if !self.gpu && rt.bits() > 128 {
            return;
        }
        self.emit(Op::Cast(op), &[a], &[rt]);
    }
    fn vector(&mut self) {
        let a = self.any_value();
        let t = self.b.kernel().ty(a);
        match t {
            Type::Vector(s, n) => match self.tape.below(4) {
                0 => {
                    let l = self.tape.below(n as usize) as u8;
                    self.emit(Op::Extract(l), &[a], &[Type::Scalar(s)]);
                }
                1 => {
                    let m: Vec<u8> = (0..n).map(|_| self.tape.below(2 * n as usize) as u8).collect();
                    let b = self.of_type(t);
                    self.emit(Op::Shuffle(m), &[a, b], &[t]);
                }
                2 if s != Scalar::I1 => {
                    let r = if s.is_int() { ReduceOp::Umax } else { ReduceOp::Add };
                    self.emit(Op::Reduce(r), &[a], &[Type::Scalar(s)]);
                }
                _ => {
                    let x = self.of_type(Type::Scalar(s));
                    self.emit(Op::Insert(0), &[a, x], &[t]);
                }
            },
            Type::Scalar(s) if s != Scalar::I1 && s.bits() <= 32 => {
                self.emit(Op::Splat, &[a], &[Type::Vector(s, 4)]);
            }
            _ => {}
        }
    }
    fn memory(&mut self) {
        if self.ptrs.is_empty() {
            return;
        }
        let p = self.tape.pick(&self.ptrs.clone());
        let Type::Ptr(space, e) = self.b.kernel().ty(p) else { return };
        let vt = if e.bits() <= 32 && self.tape.chance(40) { Type::Vector(e, 4) } else { Type::Scalar(e) };
        let hint = if space == MemSpace::Global {
            self.tape.pick(&[CacheHint::Default, CacheHint::EvictFirst])
        } else {
            CacheHint::Default
        };
        let flags = MemFlags { align: self.tape.pick(&[1, 4, 16]), hint };
        let i = self.index();
        match self.tape.below(3) {
            0 => {
                let v = self.of_type(vt);
                self.emit(Op::Store(flags), &[v, p, i], &[]);
            }
            1 => {
                self.emit(Op::Offset, &[p, i], &[Type::Ptr(space, e)]);
            }
            _ => {
                self.emit(Op::Load(flags), &[p, i], &[vt]);
            }
        }
    }
    fn intrinsic(&mut self) {
        if self.gpu {
            match self.tape.below(4) {
                0 => {
                    let a = self.tape.pick(&[Axis::GridX, Axis::BlockX, Axis::Warp, Axis::Lane]);
                    self.emit(Op::Axis(a), &[], &[Type::I32]);
                }
                1 => {
                    let (v, x) = (self.of_type(Type::F32), self.index());
                    let m = self.tape.pick(&[ShflMode::Xor, ShflMode::Down, ShflMode::Idx]);
                    self.emit(Op::Shfl(m), &[v, x], &[Type::F32]);
                }
                2 => {
                    let (a, b, c) = (self.index(), self.index(), self.index());
                    let op = if self.tape.chance(50) { Op::Prmt } else { Op::Dp4a(Dp4a::U8S8) };
                    self.emit(op, &[a, b, c], &[Type::I32]);
                }
                _ if self.scopes.len() == 1 => {
                    self.emit(Op::Barrier, &[], &[]);
                }
                _ => {}
            }
        } else {
            let b16 = Type::Vector(Scalar::I8, 16);
            match self.tape.below(3) {
                0 => {
                    self.emit(Op::Axis(Axis::CpuChunk), &[], &[Type::I32]);
                }
                1 => {
                    let (a, b) = (self.of_type(b16), self.of_type(b16));
                    self.emit(Op::Swizzle, &[a, b], &[b16]);
                }
                _ => {
                    let (a, b) = (self.of_type(b16), self.of_type(b16));
                    self.emit(Op::Madd(Madd::U8S8), &[a, b], &[Type::Vector(Scalar::I16, 8)]);
                }
            }
        }
    }
}

impl Gen<'_> {
    fn region(&mut self, depth: u32) {
        let n = self.tape.below(if depth == 0 { 24 } else { 8 });
        for _ in 0..n {
            match self.tape.below(10) {
                0..=2 => self.arith(),
                3 => self.vector(),
                4 => self.memory(),
                5 => self.intrinsic(),
                6 if depth < 3 => self.for_loop(depth),
                7 if depth < 3 => self.if_op(depth),
                _ => {
                    let t = self.ty();
                    self.constant(t);
                }
            }
        }
    }
    fn yields(&mut self, tys: &[Type]) -> Vec<Value> {
        tys.iter().map(|&t| self.of_type(t)).collect()
    }
    fn for_loop(&mut self, depth: u32) {
        let bound = if self.tape.chance(70) { Type::I32 } else { Type::I64 };
        let (lo, hi, st) = (self.of_type(bound), self.of_type(bound), self.of_type(bound));
        let n = self.tape.below(3);
        let tys: Vec<Type> = (0..n).map(|_| self.ty()).collect();
        let inits: Vec<Value> = tys.iter().map(|&t| self.of_type(t)).collect();
        let res: Vec<(Type, Option<String>)> = tys.iter().map(|&t| (t, self.name())).collect();
        let iv_name = self.name();
        let arg_names: Vec<Option<String>> = tys.iter().map(|_| self.name()).collect();
        let unroll = self.tape.pick(&[1, 1, 4]);
        let (inst, iv, args) = self.b.begin_for([lo, hi, st], &inits, unroll, &res, iv_name, &arg_names);
        let mut scope = vec![iv];
        scope.extend(&args);
        self.scopes.push(scope);
        self.region(depth + 1);
        let ys = self.yields(&tys);
        self.scopes.pop();
        self.b.end(&ys).expect("end for");
        let out = self.b.kernel().inst(inst).results.clone();
        self.scopes.last_mut().expect("scope").extend(out);
    }
    fn if_op(&mut self, depth: u32) {
        let c = self.of_type(Type::I1);
        let n = self.tape.below(3);
        let tys: Vec<Type> = (0..n).map(|_| self.ty()).collect();
        let res: Vec<(Type, Option<String>)> = tys.iter().map(|&t| (t, self.name())).collect();
        let inst = self.b.begin_if(c, &res);
        self.scopes.push(Vec::new());
        self.region(depth + 1);
        let ys = self.yields(&tys);
        self.scopes.pop();
        if n > 0 || self.tape.chance(50) {
            self.b.begin_else(&ys).expect("else");
            self.scopes.push(Vec::new());
            self.region(depth + 1);
            let ys = self.yields(&tys);
            self.scopes.pop();
            self.b.end(&ys).expect("end else");
        } else {
            self.b.end(&ys).expect("end then");
        }
        let out = self.b.kernel().inst(inst).results.clone();
        self.scopes.last_mut().expect("scope").extend(out);
    }
}

fn generate(tape: &[u32]) -> qkc_kernel::Kernel {
    let mut t = Tape { t: tape, i: 0 };
    let gpu = t.chance(50);
    let target = if gpu {
        Target::Gpu { grid: [1 + t.below(4) as u32, 1, 1], block: [32 * (1 + t.below(4) as u32), 1, 1] }
    } else {
        Target::Cpu { chunks: 1 + t.below(8) as u32, simd_bits: 128 }
    };
    let mut g = Gen {
        tape: t,
        b: Builder::new("gen", target),
        gpu,
        scopes: vec![Vec::new()],
        ptrs: Vec::new(),
        names: 0,
    };
    for _ in 0..1 + g.tape.below(4) {
        let name = g.name();
        if g.tape.chance(70) {
            let e = g.tape.pick(&[Scalar::I8, Scalar::I32, Scalar::F16, Scalar::F32]);
            let attrs = ParamAttrs {
                noalias: g.tape.chance(50),
                len: g.tape.chance(50).then_some(64),
                ..ParamAttrs::default()
            };
            let p = g.b.param(name, Type::Ptr(MemSpace::Global, e), attrs);
            g.ptrs.push(p);
        } else {
            let p = g.b.param(name, Type::I32, ParamAttrs::default());
            g.scopes[0].push(p);
        }
    }
    if g.tape.chance(40) {
        let space = if g.gpu { MemSpace::Shared } else { MemSpace::Local };
        let r = g.emit(Op::Alloc(space, 64), &[], &[Type::Ptr(space, Scalar::F32)]);
        g.ptrs.push(r[0]);
        g.scopes[0].pop();
    }
    g.region(0);
    g.b.finish().expect("generated kernel closes")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]
    #[test]
    fn print_parse_round_trip(tape in proptest::collection::vec(any::<u32>(), 0..400)) {
        let k = generate(&tape);
        let text = print(&k);
        if let Err(e) = verify(&k) {
            panic!("generated kernel does not verify: {e}\n{text}");
        }
        let back = parse(&text).unwrap_or_else(|d| panic!("{d}\n{text}"));
        prop_assert_eq!(&back, &k, "{}", text);
        prop_assert_eq!(print(&back), text);
    }
}

#[test]
fn generator_covers_the_op_set() {
    use rand::{Rng, SeedableRng};
    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut seen = std::collections::BTreeSet::new();
    let mut total = 0;
    for _ in 0..300 {
        let tape: Vec<u32> = (0..400).map(|_| r.gen()).collect();
        let k = generate(&tape);
        total += k.num_insts();
        for i in k.inst_ids() {
            seen.insert(k.inst(i).op.mnemonic().split('.').next().unwrap_or("").to_string());
        }
    }
    eprintln!("{total} instructions; ops: {seen:?}");
    let mut outcomes = std::collections::BTreeMap::new();
    for _ in 0..300 {
        use qkc_kernel::interp::{run_with, Arg, Buffer, RunOptions};
        let tape: Vec<u32> = (0..400).map(|_| r.gen()).collect();
        let k = generate(&tape);
        let mut args: Vec<Arg> = k
            .params
            .iter()
            .map(|p| match k.ty(p.value) {
                Type::Ptr(_, e) => Arg::Buf(Buffer::from_bytes(vec![0x3c; 64 * e.bytes() as usize])),
                _ => Arg::Int(3),
            })
            .collect();
        let key = match run_with(&k, &mut args, RunOptions { max_thread_insts: 20_000 }) {
            Ok(_) => "ok".to_string(),
            Err(e) => {
                let m = e.to_string();
                let tail = m.rsplit(": ").next().unwrap_or("").to_string();
                tail.split_whitespace()
                    .take_while(|w| !w.contains(|c: char| c.is_ascii_digit()))
                    .collect::<Vec<_>>()
                    .join(" ")
            }
        };
        *outcomes.entry(key).or_insert(0) += 1;
    }
    eprintln!("interpreter outcomes: {outcomes:?}");
    assert!(outcomes.get("ok").copied().unwrap_or(0) >= 60, "most random kernels should run: {outcomes:?}");
    for op in [
        "for", "if", "load", "store", "shfl", "shuffle", "barrier", "madd", "fma", "select", "const",
        "offset",
    ] {
        assert!(seen.contains(op), "the generator never emits `{op}`");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]
    /// Damaged text (a printed kernel with a token dropped, duplicated or swapped) never panics
    /// the parser or the verifier, and whatever parses and verifies still round-trips.
    #[test]
    fn damaged_text_never_panics(tape in proptest::collection::vec(any::<u32>(), 0..200), cut in any::<u32>(), how in 0u8..3) {
        let text = print(&generate(&tape));
        let toks: Vec<&str> = text.split_inclusive(|c: char| c.is_whitespace() || ",:[](){}<>=".contains(c)).collect();
        let i = cut as usize % toks.len().max(1);
        let mut damaged: Vec<&str> = toks.clone();
        match how {
            0 => { damaged.remove(i); }
            1 => damaged.insert(i, toks[i]),
            _ => damaged.swap(i, (i + 1) % toks.len()),
        }
        let src: String = damaged.concat();
        if let Ok((k, map)) = qkc_kernel::parse_with_spans(&src) {
            let errors = qkc_kernel::verify::verify_all(&k);
            let _ = qkc_kernel::diag::render("x.kir", &src, &qkc_kernel::verify::diagnostics(&errors, &map));
            if errors.is_empty() {
                prop_assert_eq!(parse(&print(&k)).expect("reparse"), k);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]
    /// The interpreter never panics on a valid kernel: it runs or reports an error.
    #[test]
    fn interpreter_never_panics(tape in proptest::collection::vec(any::<u32>(), 0..300)) {
        use qkc_kernel::interp::{run_with, Arg, Buffer, RunOptions};
        let k = generate(&tape);
        let mut args: Vec<Arg> = k
            .params
            .iter()
            .map(|p| match k.ty(p.value) {
                Type::Ptr(_, e) => Arg::Buf(Buffer::from_bytes(vec![0x3c; 64 * e.bytes() as usize])),
                _ => Arg::Int(3),
            })
            .collect();
        let _ = run_with(&k, &mut args, RunOptions { max_thread_insts: 20_000 });
    }
}
