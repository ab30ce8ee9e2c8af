//! Operand syntax of each op for the parser: `for`/`if` headers, memory operands `p[i]`,
//! immediates, constant literals and types.

use qkc_ir::{Diag, Span};

use crate::entities::Value;
use crate::lexer::Tok;
use crate::ops::{
    Axis, BinaryOp, CacheHint, CastOp, Dp4a, FloatCC, IntCC, Madd, MemFlags, MmaShape, Op, ReduceOp,
    ShflMode, UnaryOp,
};
use crate::parser::{PResult, Parser};
use crate::types::{MemSpace, Scalar, Type};

type Defs = Vec<(Option<String>, String, Span)>;

impl Parser {
    /// A type: `i32`, `<4 x f32>`, `ptr<global, f16>`.
    pub(crate) fn ty(&mut self) -> PResult<Type> {
        let span = self.span();
        if self.eat_punct('<') {
            let n = self.uint("lane count")?;
            self.expect_word("x")?;
            let s = self.scalar()?;
            self.expect_punct('>')?;
            if !Type::valid_lanes(n.min(1 << 20) as u32) {
                return Err(Diag::error(format!("vector of {n} lanes"))
                    .at(span)
                    .help("lane counts are powers of two from 2 to 64"));
            }
            return Ok(Type::Vector(s, n as u8));
        }
        if self.eat_word("ptr") {
            self.expect_punct('<')?;
            let sp = self.ident("a memory space")?;
            let space = MemSpace::from_name(&sp).ok_or_else(|| {
                Diag::error(format!("unknown memory space `{sp}`"))
                    .at(self.prev_span())
                    .help("global, shared or local")
            })?;
            self.expect_punct(',')?;
            let s = self.scalar()?;
            self.expect_punct('>')?;
            return Ok(Type::Ptr(space, s));
        }
        Ok(Type::Scalar(self.scalar()?))
    }

    fn scalar(&mut self) -> PResult<Scalar> {
        match self.peek() {
            Some(Tok::Ident(s)) => match Scalar::from_name(s) {
                Some(t) => {
                    self.pos += 1;
                    Ok(t)
                }
                None => Err(self.err_here("a type (i1 i8 i16 i32 i64 f16 bf16 f32 f64)")),
            },
            _ => Err(self.err_here("a type")),
        }
    }

    pub(crate) fn for_stmt(&mut self, defs: Defs, start: Span) -> PResult<()> {
        let (iv_name, iv_label, iv_span) = self.def_name()?;
        self.expect_punct('=')?;
        let lo = self.use_value()?;
        self.expect_word("to")?;
        let hi = self.use_value()?;
        self.expect_word("step")?;
        let step = self.use_value()?;
        let mut carried = Vec::new();
        if self.eat_word("iter") {
            self.expect_punct('(')?;
            loop {
                let d = self.def_name()?;
                self.expect_punct('=')?;
                carried.push((d, self.use_value()?));
                if self.eat_punct(')') {
                    break;
                }
                self.expect_punct(',')?;
            }
        }
        let unroll = if self.eat_word("unroll") { self.u32_in("unroll factor")? } else { 1 };
        let iter_span = self.prev_span();
        if carried.len() != defs.len() {
            return Err(Diag::error(format!(
                "`for` defines {} result(s) but carries {} value(s)",
                defs.len(),
                carried.len()
            ))
            .at(iter_span)
            .help("each loop result is the final value of one `iter(..)` argument"));
        }
        let tys = self.result_types(defs.len())?;
        self.expect_punct('{')?;
        let results: Vec<(Type, Option<String>)> =
            tys.iter().zip(&defs).map(|(&t, d)| (t, d.0.clone())).collect();
        let inits: Vec<Value> = carried.iter().map(|c| c.1).collect();
        let arg_names: Vec<Option<String>> = carried.iter().map(|c| c.0 .0.clone()).collect();
        let (inst, iv, args) =
            self.builder().begin_for([lo, hi, step], &inits, unroll, &results, iv_name, &arg_names);
        self.finish_inst(inst, defs, start);
        self.bind(iv_label, iv, iv_span);
        for (((_, label, span), _), a) in carried.into_iter().zip(args) {
            self.bind(label, a, span);
        }
        let body = self.builder().kernel().inst(inst).blocks[0];
        let ys = self.block_until_close(body)?;
        self.builder().end(&ys).map_err(|e| Diag::error(e.to_string()).at(start))
    }

    pub(crate) fn if_stmt(&mut self, defs: Defs, start: Span) -> PResult<()> {
        let cond = self.use_value()?;
        let tys = self.result_types(defs.len())?;
        self.expect_punct('{')?;
        let results: Vec<(Type, Option<String>)> =
            tys.iter().zip(&defs).map(|(&t, d)| (t, d.0.clone())).collect();
        let inst = self.builder().begin_if(cond, &results);
        self.finish_inst(inst, defs, start);
        let then = self.builder().kernel().inst(inst).blocks[0];
        let ys = self.block_until_close(then)?;
        if self.eat_word("else") {
            self.expect_punct('{')?;
            self.builder().begin_else(&ys).map_err(|e| Diag::error(e.to_string()).at(start))?;
            let els = self.builder().kernel().inst(inst).blocks[1];
            let ys = self.block_until_close(els)?;
            self.builder().end(&ys).map_err(|e| Diag::error(e.to_string()).at(start))
        } else {
            self.builder().end(&ys).map_err(|e| Diag::error(e.to_string()).at(start))
        }
    }

    /// `p[i]`.
    fn mem_operand(&mut self) -> PResult<(Value, Value)> {
        let p = self.use_value()?;
        self.expect_punct('[')?;
        let i = self.use_value()?;
        self.expect_punct(']')?;
        Ok((p, i))
    }

    /// `[align N] [hint]`, defaulting to the pointer's element size.
    fn mem_flags(&mut self, ptr: Value) -> PResult<MemFlags> {
        let natural = match self.builder().kernel().ty(ptr) {
            Type::Ptr(_, s) => s.bytes(),
            _ => 1,
        };
        let align = if self.eat_word("align") { self.u32_in("alignment")? } else { natural };
        let mut hint = CacheHint::Default;
        if let Some(Tok::Ident(s)) = self.peek() {
            if let Some(h) = CacheHint::from_name(s) {
                hint = h;
                self.pos += 1;
            }
        }
        Ok(MemFlags { align, hint })
    }

    fn lane(&mut self) -> PResult<u8> {
        let span = self.span();
        let n = self.uint("lane index")?;
        u8::try_from(n).map_err(|_| Diag::error(format!("lane {n} is out of range")).at(span))
    }

    pub(crate) fn op_stmt(&mut self, m: &str, op_span: Span, defs: Defs, start: Span) -> PResult<()> {
        let (op, args, lits) = self.operands(m, op_span)?;
        let tys = self.result_types(defs.len())?;
        let op = match (op, lits) {
            (Op::Const(_), Some(lits)) => {
                let elem = tys
                    .first()
                    .and_then(|t| t.elem())
                    .ok_or_else(|| Diag::error("`const` needs a scalar or vector result type").at(op_span))?;
                let bits =
                    lits.iter().map(|(t, s)| literal_bits(t, elem, *s)).collect::<PResult<Vec<u64>>>()?;
                Op::Const(bits)
            }
            (op, _) => op,
        };
        let results: Vec<(Type, Option<String>)> =
            tys.iter().zip(&defs).map(|(&t, d)| (t, d.0.clone())).collect();
        let inst = self.builder().inst_named(op, args, &results);
        self.finish_inst(inst, defs, start);
        Ok(())
    }

    #[expect(clippy::type_complexity, reason = "private helper returning op, operands and raw literals")]
    fn operands(&mut self, m: &str, op_span: Span) -> PResult<(Op, Vec<Value>, Option<Vec<(String, Span)>>)> {
        let unknown = || Diag::error(format!("unknown op `{m}`")).at(op_span).label("not a KIR mnemonic");
        if m == "const" {
            return Ok((Op::Const(Vec::new()), Vec::new(), Some(self.literals()?)));
        }
        if let Some((op, args)) = self.memory_operands(m)? {
            return Ok((op, args, None));
        }
        if let Some((op, args)) = self.lane_operands(m)? {
            return Ok((op, args, None));
        }
        let (head, sub) = m.split_once('.').unwrap_or((m, ""));
        let op = match head {
            "alloc" => {
                let space =
                    MemSpace::from_name(sub).filter(|s| *s != MemSpace::Global).ok_or_else(unknown)?;
                return Ok((Op::Alloc(space, self.u32_in("element count")?), Vec::new(), None));
            }
            "axis" => {
                let name = self.ident("an axis name")?;
                let a = Axis::from_name(&name).ok_or_else(|| {
                    Diag::error(format!("unknown axis `{name}`"))
                        .at(self.prev_span())
                        .help("grid.x|y|z, block.x|y|z, warp, lane, cpu.chunk")
                })?;
                return Ok((Op::Axis(a), Vec::new(), None));
            }
            "barrier" => return Ok((Op::Barrier, Vec::new(), None)),
            _ => simple_op(head, sub).ok_or_else(unknown)?,
        };
        Ok((op, self.value_list()?, None))
    }

    /// `load p[i] ...`, `store v, p[i] ...`, `prefetch p[i]`, `atomic.add p[i], v`.
    fn memory_operands(&mut self, m: &str) -> PResult<Option<(Op, Vec<Value>)>> {
        Ok(Some(match m {
            "load" => {
                let (p, i) = self.mem_operand()?;
                (Op::Load(self.mem_flags(p)?), vec![p, i])
            }
            "store" => {
                let v = self.use_value()?;
                self.expect_punct(',')?;
                let (p, i) = self.mem_operand()?;
                (Op::Store(self.mem_flags(p)?), vec![v, p, i])
            }
            "prefetch" => {
                let (p, i) = self.mem_operand()?;
                (Op::Prefetch, vec![p, i])
            }
            "atomic.add" => {
                let (p, i) = self.mem_operand()?;
                self.expect_punct(',')?;
                (Op::AtomicAdd, vec![p, i, self.use_value()?])
            }
            _ => return Ok(None),
        }))
    }

    /// `extract v, L`, `insert v, s, L`, `shuffle a, b, [L, ...]`.
    fn lane_operands(&mut self, m: &str) -> PResult<Option<(Op, Vec<Value>)>> {
        if !matches!(m, "extract" | "insert" | "shuffle") {
            return Ok(None);
        }
        let a = self.use_value()?;
        self.expect_punct(',')?;
        if m == "extract" {
            return Ok(Some((Op::Extract(self.lane()?), vec![a])));
        }
        let b = self.use_value()?;
        self.expect_punct(',')?;
        if m == "insert" {
            return Ok(Some((Op::Insert(self.lane()?), vec![a, b])));
        }
        self.expect_punct('[')?;
        let mut mask = vec![self.lane()?];
        while self.eat_punct(',') {
            mask.push(self.lane()?);
        }
        self.expect_punct(']')?;
        Ok(Some((Op::Shuffle(mask), vec![a, b])))
    }

    /// `LIT` or `[LIT, ...]`, kept as text until the type is known.
    fn literals(&mut self) -> PResult<Vec<(String, Span)>> {
        let one = |p: &mut Parser| -> PResult<(String, Span)> {
            let span = p.span();
            match p.peek().cloned() {
                Some(Tok::Num(s) | Tok::Ident(s)) => {
                    p.pos += 1;
                    Ok((s, span))
                }
                _ => Err(p.err_here("a literal")),
            }
        };
        if self.eat_punct('[') {
            let mut v = vec![one(self)?];
            while self.eat_punct(',') {
                v.push(one(self)?);
            }
            self.expect_punct(']')?;
            Ok(v)
        } else {
            Ok(vec![one(self)?])
        }
    }
}

/// Ops whose operands are a plain value list: `icmp.slt`, `add`, `sitofp`, `shfl.xor`, ...
fn simple_op(head: &str, sub: &str) -> Option<Op> {
    match head {
        "icmp" => IntCC::from_name(sub).map(Op::Icmp),
        "fcmp" => FloatCC::from_name(sub).map(Op::Fcmp),
        "reduce" => ReduceOp::from_name(sub).map(Op::Reduce),
        "shfl" => ShflMode::from_name(sub).map(Op::Shfl),
        "madd" => Madd::from_name(sub).map(Op::Madd),
        "dp4a" => Dp4a::from_name(sub).map(Op::Dp4a),
        "mma" => MmaShape::from_name(sub).map(Op::Mma),
        _ if !sub.is_empty() => None,
        "fma" => Some(Op::Fma),
        "select" => Some(Op::Select),
        "splat" => Some(Op::Splat),
        "offset" => Some(Op::Offset),
        "prmt" => Some(Op::Prmt),
        "swizzle" => Some(Op::Swizzle),
        _ => UnaryOp::from_name(head)
            .map(Op::Unary)
            .or_else(|| BinaryOp::from_name(head).map(Op::Binary))
            .or_else(|| CastOp::from_name(head).map(Op::Cast)),
    }
}

/// The bits of literal `text` as lane type `elem`.
pub(crate) fn literal_bits(text: &str, elem: Scalar, span: Span) -> PResult<u64> {
    let bad = |why: &str| Diag::error(format!("`{text}` is not a valid {elem} literal: {why}")).at(span);
    let clean = text.replace('_', "");
    let hex = clean.strip_prefix("0x").or_else(|| clean.strip_prefix("0X"));
    if let Some(h) = hex {
        let v = u64::from_str_radix(h, 16).map_err(|_| bad("bad hex digits"))?;
        if v & !elem.mask() != 0 {
            return Err(bad("does not fit"));
        }
        return Ok(v);
    }
    if elem.is_int() {
        let v: i128 = match clean.as_str() {
            "true" => 1,
            "false" => 0,
            s => s.parse().map_err(|_| bad("expected an integer"))?,
        };
        let w = elem.bits();
        let (lo, hi) = (-(1i128 << (w - 1)), 1i128 << w);
        if v < lo || v >= hi {
            return Err(bad("out of range"));
        }
        return Ok((v as u64) & elem.mask());
    }
    let f64v = |s: &str| -> PResult<f64> {
        match s {
            "inf" => Ok(f64::INFINITY),
            "-inf" => Ok(f64::NEG_INFINITY),
            "nan" => Ok(f64::NAN),
            _ => s.parse::<f64>().map_err(|_| bad("expected a number")),
        }
    };
    Ok(match elem {
        Scalar::F64 => f64v(&clean)?.to_bits(),
        Scalar::F32 => match clean.as_str() {
            "inf" | "-inf" | "nan" => (f64v(&clean)? as f32).to_bits().into(),
            s => s.parse::<f32>().map_err(|_| bad("expected a number"))?.to_bits().into(),
        },
        Scalar::F16 => half::f16::from_f64(f64v(&clean)?).to_bits().into(),
        _ => half::bf16::from_f64(f64v(&clean)?).to_bits().into(),
    })
}
