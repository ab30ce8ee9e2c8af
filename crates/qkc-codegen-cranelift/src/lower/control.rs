//! Structured control flow: `for` becomes a rotated loop (a guard, then a body block that
//! branches back to itself), `if` a diamond; loop-carried values and region results are block
//! parameters (KIR.md: "blocks with block parameters").

use cranelift_codegen::ir::{self, condcodes::IntCC, BlockArg, InstBuilder};
use qkc_kernel::Inst;

use super::Lower;
use crate::error::{CodegenError, Result};

fn args(vs: &[ir::Value]) -> Vec<BlockArg> {
    vs.iter().map(|&v| BlockArg::Value(v)).collect()
}

impl Lower<'_, '_> {
    /// `for i = lo to hi step s iter(a = x, ...)`:
    /// ```text
    ///   brif lo < hi, body(lo, x...), exit(x...)
    /// body(i, a...):
    ///   ...; i' = i + s; brif i' < hi, body(i', y...), exit(y...)
    /// exit(r...):
    /// ```
    /// One compare-and-branch per iteration. The `unroll` hint is not applied yet.
    pub(super) fn for_loop(&mut self, i: Inst) -> Result<()> {
        let d = self.k.inst(i).clone();
        let (Some(&lo), Some(&hi), Some(&step)) = (d.args.first(), d.args.get(1), d.args.get(2))
        else {
            return Err(CodegenError::Internal("for without bounds".into()));
        };
        let body = *d
            .blocks
            .first()
            .ok_or_else(|| CodegenError::Internal("for without a body".into()))?;
        let bd = self.k.block(body).clone();
        let (lo, hi, step) = (self.val(lo)?, self.val(hi)?, self.val(step)?);
        let inits = d.args[3..]
            .iter()
            .map(|&v| self.val(v))
            .collect::<Result<Vec<_>>>()?;
        let (head, exit) = (self.b.create_block(), self.b.create_block());
        let iv_ty = self.b.func.dfg.value_type(lo);
        let mut head_params = vec![self.b.append_block_param(head, iv_ty)];
        for &a in bd.args.iter().skip(1) {
            let t = self.clif_ty(i, self.ty(a))?;
            head_params.push(self.b.append_block_param(head, t));
        }
        for &r in &d.results {
            let t = self.clif_ty(i, self.ty(r))?;
            let p = self.b.append_block_param(exit, t);
            self.def(r, p);
        }
        let go = self.b.ins().icmp(IntCC::SignedLessThan, lo, hi);
        let mut entry_args = vec![lo];
        entry_args.extend(&inits);
        self.b
            .ins()
            .brif(go, head, &args(&entry_args), exit, &args(&inits));
        self.b.switch_to_block(head);
        for (&a, &p) in bd.args.iter().zip(&head_params) {
            self.def(a, p);
        }
        self.block_insts(body)?;
        let ys = bd
            .yields
            .iter()
            .map(|&v| self.val(v))
            .collect::<Result<Vec<_>>>()?;
        let next = self.b.ins().iadd(head_params[0], step);
        let more = self.b.ins().icmp(IntCC::SignedLessThan, next, hi);
        let mut back = vec![next];
        back.extend(&ys);
        self.b
            .ins()
            .brif(more, head, &args(&back), exit, &args(&ys));
        self.b.switch_to_block(exit);
        Ok(())
    }

    /// `if c : T... { then } else { else }`: a diamond joining in a block with the results as
    /// parameters.
    pub(super) fn if_else(&mut self, i: Inst) -> Result<()> {
        let d = self.k.inst(i).clone();
        let c = self.val(
            *d.args
                .first()
                .ok_or_else(|| CodegenError::Internal("if without a condition".into()))?,
        )?;
        let join = self.b.create_block();
        for &r in &d.results {
            let t = self.clif_ty(i, self.ty(r))?;
            let p = self.b.append_block_param(join, t);
            self.def(r, p);
        }
        let then_b = self.b.create_block();
        let else_b = self.b.create_block();
        self.b.ins().brif(c, then_b, &[], else_b, &[]);
        for (arm, blk) in [then_b, else_b].into_iter().enumerate() {
            self.b.switch_to_block(blk);
            let mut ys = Vec::new();
            if let Some(&kb) = d.blocks.get(arm) {
                self.block_insts(kb)?;
                ys = self
                    .k
                    .block(kb)
                    .yields
                    .iter()
                    .map(|&v| self.val(v))
                    .collect::<Result<Vec<_>>>()?;
            }
            self.b.ins().jump(join, &args(&ys));
        }
        self.b.switch_to_block(join);
        Ok(())
    }
}
