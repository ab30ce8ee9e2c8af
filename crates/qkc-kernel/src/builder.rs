//! Building kernels: a cursor over nested regions that allocates ids in text order.
//!
//! The parser and every generator go through this builder, so a kernel built here and the kernel
//! parsed from its printed text have identical arenas. The order is: an instruction, then its
//! results, then (for `for`) its body block with the induction variable and carried arguments;
//! an `if`'s else block is allocated after the whole then-region.

use crate::entities::{Block, Inst, Value};
use crate::error::KernelError;
use crate::kernel::{BlockData, InstData, Kernel, Param, ParamAttrs, Target, ValueData, ValueDef};
use crate::ops::Op;
use crate::types::Type;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Frame {
    Body,
    ForBody(Inst),
    IfThen(Inst),
    IfElse(Inst),
}

/// Builds a [`Kernel`] in text order.
#[derive(Debug)]
pub struct Builder {
    k: Kernel,
    stack: Vec<(Block, Frame)>,
}

impl Builder {
    /// A kernel with no parameters and an empty body.
    pub fn new(name: impl Into<String>, target: Target) -> Self {
        let k = Kernel {
            name: name.into(),
            params: Vec::new(),
            target,
            values: Vec::new(),
            insts: Vec::new(),
            blocks: vec![BlockData::default()],
            body: Block(0),
        };
        Builder { k, stack: vec![(Block(0), Frame::Body)] }
    }

    fn new_value(&mut self, ty: Type, name: Option<String>, def: ValueDef) -> Value {
        let v = Value::new(self.k.values.len());
        self.k.values.push(ValueData { ty, name, def });
        v
    }

    fn new_block(&mut self, parent: Inst) -> Block {
        let b = Block::new(self.k.blocks.len());
        self.k.blocks.push(BlockData { parent: Some(parent), ..BlockData::default() });
        b
    }

    fn current(&self) -> Block {
        self.stack.last().map_or(self.k.body, |&(b, _)| b)
    }

    /// The kernel so far (for type queries while building).
    pub fn kernel(&self) -> &Kernel {
        &self.k
    }

    /// Add a parameter.
    pub fn param(&mut self, name: Option<String>, ty: Type, attrs: ParamAttrs) -> Value {
        let n = u32::try_from(self.k.params.len()).unwrap_or(u32::MAX);
        let v = self.new_value(ty, name, ValueDef::Param(n));
        self.k.params.push(Param { value: v, attrs });
        v
    }

    fn push_inst(&mut self, op: Op, args: Vec<Value>, results: &[(Type, Option<String>)]) -> Inst {
        let inst = Inst::new(self.k.insts.len());
        self.k.insts.push(InstData { op, args, results: Vec::new(), blocks: Vec::new() });
        let vals: Vec<Value> = results
            .iter()
            .enumerate()
            .map(|(n, (ty, name))| self.new_value(*ty, name.clone(), ValueDef::Result(inst, n as u32)))
            .collect();
        self.k.insts[inst.index()].results = vals;
        let cur = self.current();
        self.k.blocks[cur.index()].insts.push(inst);
        inst
    }

    /// Append a region-less instruction with named results; returns it.
    pub fn inst_named(&mut self, op: Op, args: Vec<Value>, results: &[(Type, Option<String>)]) -> Inst {
        self.push_inst(op, args, results)
    }

    /// Append a region-less instruction with unnamed results; returns its results.
    pub fn ins(&mut self, op: Op, args: &[Value], tys: &[Type]) -> Vec<Value> {
        let res: Vec<(Type, Option<String>)> = tys.iter().map(|&t| (t, None)).collect();
        let i = self.push_inst(op, args.to_vec(), &res);
        self.k.insts[i.index()].results.clone()
    }

    /// Append an instruction with one unnamed result; returns it.
    pub fn ins1(&mut self, op: Op, args: &[Value], ty: Type) -> Value {
        let i = self.push_inst(op, args.to_vec(), &[(ty, None)]);
        self.k.insts[i.index()].results[0]
    }

    /// Start a `for` loop; the cursor moves into its body. Returns the instruction, the
    /// induction variable and the carried arguments. Close it with [`Builder::end`].
    pub fn begin_for(
        &mut self,
        bounds: [Value; 3],
        inits: &[Value],
        unroll: u32,
        results: &[(Type, Option<String>)],
        iv_name: Option<String>,
        arg_names: &[Option<String>],
    ) -> (Inst, Value, Vec<Value>) {
        let mut args = bounds.to_vec();
        args.extend_from_slice(inits);
        let inst = self.push_inst(Op::For { unroll }, args, results);
        let body = self.new_block(inst);
        self.k.insts[inst.index()].blocks.push(body);
        let iv_ty = self.k.ty(bounds[0]);
        let iv = self.new_value(iv_ty, iv_name, ValueDef::BlockArg(body, 0));
        let carried: Vec<Value> = results
            .iter()
            .enumerate()
            .map(|(n, (ty, _))| {
                let name = arg_names.get(n).cloned().flatten();
                self.new_value(*ty, name, ValueDef::BlockArg(body, n as u32 + 1))
            })
            .collect();
        let bd = &mut self.k.blocks[body.index()];
        bd.args.push(iv);
        bd.args.extend_from_slice(&carried);
        self.stack.push((body, Frame::ForBody(inst)));
        (inst, iv, carried)
    }

    /// Start an `if`; the cursor moves into its then-region.
    pub fn begin_if(&mut self, cond: Value, results: &[(Type, Option<String>)]) -> Inst {
        let inst = self.push_inst(Op::If, vec![cond], results);
        let then = self.new_block(inst);
        self.k.insts[inst.index()].blocks.push(then);
        self.stack.push((then, Frame::IfThen(inst)));
        inst
    }

    /// End the then-region with `yields` and move into the else-region.
    pub fn begin_else(&mut self, yields: &[Value]) -> Result<(), KernelError> {
        match self.stack.pop() {
            Some((b, Frame::IfThen(inst))) => {
                self.k.blocks[b.index()].yields = yields.to_vec();
                let els = self.new_block(inst);
                self.k.insts[inst.index()].blocks.push(els);
                self.stack.push((els, Frame::IfElse(inst)));
                Ok(())
            }
            other => {
                if let Some(f) = other {
                    self.stack.push(f);
                }
                Err(KernelError::Builder("`else` outside the then-region of an `if`".into()))
            }
        }
    }

    /// End the innermost region with `yields` (an `if` without else gets an empty else).
    pub fn end(&mut self, yields: &[Value]) -> Result<(), KernelError> {
        match self.stack.pop() {
            Some((b, Frame::ForBody(_) | Frame::IfElse(_))) => {
                self.k.blocks[b.index()].yields = yields.to_vec();
                Ok(())
            }
            Some((b, Frame::IfThen(inst))) => {
                self.k.blocks[b.index()].yields = yields.to_vec();
                let els = self.new_block(inst);
                self.k.insts[inst.index()].blocks.push(els);
                Ok(())
            }
            Some(f @ (_, Frame::Body)) => {
                self.stack.push(f);
                Err(KernelError::Builder("`end` with no open region".into()))
            }
            None => Err(KernelError::Builder("builder stack is empty".into())),
        }
    }

    /// Depth of open regions (0 at the kernel body).
    pub fn depth(&self) -> usize {
        self.stack.len().saturating_sub(1)
    }

    /// Finish: every region must be closed.
    pub fn finish(self) -> Result<Kernel, KernelError> {
        if self.stack.len() != 1 {
            return Err(KernelError::Builder(format!("{} region(s) left open", self.stack.len() - 1)));
        }
        Ok(self.k)
    }
}
