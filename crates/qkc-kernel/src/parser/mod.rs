//! The KIR text parser: recursive descent over [`crate::lexer`] tokens, building through
//! [`crate::builder::Builder`] so ids come out in text order. Errors are [`qkc_ir::Diag`]s with
//! a span; [`crate::diag`] renders them with `file:line:col` and a caret.
//!
//! ```text
//! kernel  := 'kernel' GLOBAL '(' [param (',' param)*] ')' target '{' stmt* '}'
//! param   := VAL ':' type ('noalias' | 'readonly' | 'writeonly' | 'len' '(' INT ')')*
//! target  := 'gpu' 'grid' dims 'block' dims | 'cpu' 'chunks' '(' INT ')' ['simd' '(' INT ')']
//! stmt    := 'yield' VAL (',' VAL)* | [VAL (',' VAL)* '='] op
//! op      := 'for' VAL '=' VAL 'to' VAL 'step' VAL ['iter' '(' VAL '=' VAL, ... ')'] ['unroll' INT]
//!              [':' types] '{' stmt* '}'
//!          | 'if' VAL [':' types] '{' stmt* '}' ['else' '{' stmt* '}']
//!          | MNEMONIC operands [':' types]            (see ops.rs)
//! VAL     := '%' NAME | 'v' DIGITS                   (unnamed values are renumbered in order)
//! ```

mod cursor;
mod ops;

use std::collections::HashMap;

use qkc_ir::{Diag, Span};

use crate::builder::Builder;
use crate::entities::{Block, Inst, Value};
use crate::kernel::{Kernel, ParamAttrs, Target};
use crate::lexer::{lex, Tok, Token};
use crate::types::Type;

/// Where each entity of a parsed kernel came from, for diagnostics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SourceMap {
    /// Span of each instruction's mnemonic line (by `Inst` index).
    pub insts: Vec<Span>,
    /// Span of each value's definition (by `Value` index).
    pub values: Vec<Span>,
    /// Span of each block's `yield` (or of its opening brace) (by `Block` index).
    pub blocks: Vec<Span>,
    /// Span of the kernel header.
    pub header: Span,
}

impl SourceMap {
    pub(crate) fn set<T: Clone + Default>(v: &mut Vec<T>, i: usize, x: T) {
        if v.len() <= i {
            v.resize(i + 1, T::default());
        }
        v[i] = x;
    }
    /// Span of an instruction.
    pub fn inst(&self, i: Inst) -> Option<Span> {
        self.insts.get(i.index()).copied()
    }
    /// Span of a value's definition.
    pub fn value(&self, v: Value) -> Option<Span> {
        self.values.get(v.index()).copied()
    }
    /// Span of a block's end.
    pub fn block(&self, b: Block) -> Option<Span> {
        self.blocks.get(b.index()).copied()
    }
}

/// Parse one kernel.
pub fn parse(src: &str) -> Result<Kernel, Diag> {
    parse_with_spans(src).map(|(k, _)| k)
}

/// Parse one kernel and return where everything came from.
pub fn parse_with_spans(src: &str) -> Result<(Kernel, SourceMap), Diag> {
    let toks = lex(src)?;
    let mut p =
        Parser { toks, pos: 0, end: src.len(), names: HashMap::new(), map: SourceMap::default(), b: None };
    let k = p.kernel()?;
    Ok((k, p.map))
}

/// Parse a type spelling (`<4 x f32>`, `ptr<global, f16>`).
pub fn parse_type(src: &str) -> Result<Type, Diag> {
    let toks = lex(src)?;
    let mut p =
        Parser { toks, pos: 0, end: src.len(), names: HashMap::new(), map: SourceMap::default(), b: None };
    let t = p.ty()?;
    if p.pos < p.toks.len() {
        return Err(p.err_here("end of type"));
    }
    Ok(t)
}

pub(crate) type PResult<T> = Result<T, Diag>;

pub(crate) struct Parser {
    pub(crate) toks: Vec<Token>,
    pub(crate) pos: usize,
    pub(crate) end: usize,
    pub(crate) names: HashMap<String, Value>,
    pub(crate) map: SourceMap,
    pub(crate) b: Option<Builder>,
}

impl Parser {
    fn kernel(&mut self) -> PResult<Kernel> {
        let start = self.span();
        self.expect_word("kernel")?;
        let name = match self.bump() {
            Some(Tok::Global(n)) => n,
            _ => {
                self.pos -= 1;
                return Err(self.err_here("the kernel name `@name`"));
            }
        };
        self.expect_punct('(')?;
        let mut params = Vec::new();
        if !self.eat_punct(')') {
            loop {
                params.push(self.param()?);
                if self.eat_punct(')') {
                    break;
                }
                self.expect_punct(',')?;
            }
        }
        let target = self.target()?;
        self.map.header =
            Span::new(start.offset, self.prev_span().offset + self.prev_span().len - start.offset);
        self.b = Some(Builder::new(name, target));
        for (label, n, ty, attrs, span) in params {
            let v = self.builder().param(n, ty, attrs);
            self.bind(label, v, span);
        }
        self.expect_punct('{')?;
        let body = self.builder().kernel().body();
        self.block_until_close(body)?;
        if self.pos < self.toks.len() {
            return Err(self.err_here("end of input after the kernel"));
        }
        let b = self.b.take().ok_or_else(|| Diag::error("internal: no builder"))?;
        b.finish().map_err(|e| Diag::error(e.to_string()).at(self.prev_span()))
    }

    fn param(&mut self) -> PResult<(String, Option<String>, Type, ParamAttrs, Span)> {
        let (name, label, span) = self.def_name()?;
        self.names.insert(label.clone(), Value(u32::MAX)); // reserve; rebound in kernel()
        self.expect_punct(':')?;
        let ty = self.ty()?;
        let mut attrs = ParamAttrs::default();
        loop {
            if self.eat_word("noalias") {
                attrs.noalias = true;
            } else if self.eat_word("readonly") {
                attrs.readonly = true;
            } else if self.eat_word("writeonly") {
                attrs.writeonly = true;
            } else if self.eat_word("len") {
                self.expect_punct('(')?;
                attrs.len = Some(self.uint("length")?);
                self.expect_punct(')')?;
            } else {
                break;
            }
        }
        Ok((label, name, ty, attrs, span))
    }

    fn dims(&mut self) -> PResult<[u32; 3]> {
        self.expect_punct('(')?;
        let mut d = [1u32; 3];
        d[0] = self.u32_in("dimension")?;
        for slot in d.iter_mut().skip(1) {
            if !self.eat_punct(',') {
                break;
            }
            *slot = self.u32_in("dimension")?;
        }
        self.expect_punct(')')?;
        Ok(d)
    }

    fn target(&mut self) -> PResult<Target> {
        if self.eat_word("gpu") {
            self.expect_word("grid")?;
            let grid = self.dims()?;
            self.expect_word("block")?;
            let block = self.dims()?;
            Ok(Target::Gpu { grid, block })
        } else if self.eat_word("cpu") {
            self.expect_word("chunks")?;
            self.expect_punct('(')?;
            let chunks = self.u32_in("chunk count")?;
            self.expect_punct(')')?;
            let mut simd_bits = 128;
            if self.eat_word("simd") {
                self.expect_punct('(')?;
                simd_bits = self.u32_in("SIMD width in bits")?;
                self.expect_punct(')')?;
            }
            Ok(Target::Cpu { chunks, simd_bits })
        } else {
            Err(self.err_here("a target (`gpu grid(..) block(..)` or `cpu chunks(..)`)"))
        }
    }

    /// Statements up to the closing `}` of block `b` (the `{` is already consumed).
    pub(crate) fn block_until_close(&mut self, b: Block) -> PResult<Vec<Value>> {
        let open = self.prev_span();
        SourceMap::set(&mut self.map.blocks, b.index(), open);
        loop {
            if self.eat_punct('}') {
                return Ok(Vec::new());
            }
            if self.peek().is_none() {
                return Err(self.err_here("`}`"));
            }
            if self.eat_word("yield") {
                let at = self.prev_span();
                SourceMap::set(&mut self.map.blocks, b.index(), at);
                let vs = self.value_list()?;
                self.expect_punct('}')
                    .map_err(|d| d.help("`yield` must be the last statement of a region"))?;
                return Ok(vs);
            }
            self.stmt()?;
        }
    }

    fn stmt(&mut self) -> PResult<()> {
        let start = self.span();
        let mut defs = Vec::new();
        if self.at_value() {
            loop {
                defs.push(self.def_name()?);
                if !self.eat_punct(',') {
                    break;
                }
            }
            self.expect_punct('=')?;
        }
        let op_span = self.span();
        let mnemonic = self.ident("an op mnemonic")?;
        match mnemonic.as_str() {
            "for" => self.for_stmt(defs, start),
            "if" => self.if_stmt(defs, start),
            _ => self.op_stmt(&mnemonic, op_span, defs, start),
        }
    }

    /// Parse `: T, ...` when there are definitions; returns the types.
    pub(crate) fn result_types(&mut self, n: usize) -> PResult<Vec<Type>> {
        if n == 0 {
            return Ok(Vec::new());
        }
        self.expect_punct(':').map_err(|d| d.help("every instruction with results ends with `: type`"))?;
        let mut tys = vec![self.ty()?];
        while self.eat_punct(',') {
            tys.push(self.ty()?);
        }
        if tys.len() != n {
            return Err(Diag::error(format!("{n} result(s) but {} type(s)", tys.len())).at(self.prev_span()));
        }
        Ok(tys)
    }

    /// Record an instruction's span and bind its results.
    pub(crate) fn finish_inst(&mut self, inst: Inst, defs: Vec<(Option<String>, String, Span)>, start: Span) {
        let end = self.prev_span();
        let span = Span::new(start.offset, (end.offset + end.len).saturating_sub(start.offset));
        SourceMap::set(&mut self.map.insts, inst.index(), span);
        let results = self.builder().kernel().inst(inst).results.clone();
        for ((_, label, s), v) in defs.into_iter().zip(results) {
            self.bind(label, v, s);
        }
    }
}
