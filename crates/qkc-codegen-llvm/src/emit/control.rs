//! Structured control flow: `for` becomes a rotated loop (a guard, then a body block that
//! branches back to itself) with phis for the induction variable and the carried values; `if`
//! a diamond joining in a block whose phis are the results. The host chunk loop is the same
//! rotated loop around the kernel body.

use qkc_kernel::{Axis, Inst, MemSpace, Op, Type};

use super::{Emitter, Flavor};
use crate::error::Result;

impl Emitter<'_> {
    /// `for i = lo to hi step s iter(a = x, ...) [unroll U]`:
    /// ```text
    ///   %go = icmp slt lo, hi ; br %go, body, exit
    /// body:
    ///   %i = phi [lo, pre], [%next, latch] ; %a = phi [x, pre], [y, latch] ...
    ///   ...
    ///   %next = add %i, s ; %more = icmp slt %next, hi ; br %more, body, exit  (!llvm.loop)
    /// exit:
    ///   %r = phi [x, pre], [y, latch] ...
    /// ```
    pub(super) fn for_loop(&mut self, i: Inst, unroll: u32) -> Result<()> {
        let d = self.k.inst(i).clone();
        let (lo, hi, step) = (self.arg(i, 0)?, self.arg(i, 1)?, self.arg(i, 2)?);
        let body = *d
            .blocks
            .first()
            .ok_or_else(|| self.internal("for without a body"))?;
        let bd = self.k.block(body).clone();
        let ivt = self.vty(lo);
        let (lo_v, hi_v, step_v) = (self.val(lo)?, self.val(hi)?, self.val(step)?);
        let inits = d.args[3..]
            .iter()
            .map(|&v| self.val(v))
            .collect::<Result<Vec<_>>>()?;
        let (body_l, exit_l) = (self.new_label(), self.new_label());
        let pre = self.cur.clone();
        let go = self.t(&format!("icmp slt {ivt} {lo_v}, {hi_v}"));
        self.line(&format!("br i1 {go}, label %{body_l}, label %{exit_l}"));
        self.start(&body_l);
        let phi_at = self.body.len();
        let iv = *bd
            .args
            .first()
            .ok_or_else(|| self.internal("for body without an induction variable"))?;
        let iv_name = self.name_of(iv);
        self.def(iv, iv_name.clone());
        for &a in &bd.args[1..] {
            let n = self.name_of(a);
            self.def(a, n);
        }
        self.block_insts(body)?;
        let ys = bd
            .yields
            .iter()
            .map(|&v| self.val(v))
            .collect::<Result<Vec<_>>>()?;
        let latch = self.cur.clone();
        let next = self.t(&format!("add {ivt} {iv_name}, {step_v}"));
        let more = self.t(&format!("icmp slt {ivt} {next}, {hi_v}"));
        let md = if unroll > 1 {
            let count = self.add_md(|_| format!("!{{!\"llvm.loop.unroll.count\", i32 {unroll}}}"));
            let id = self.add_md(|n| format!("distinct !{{!{n}, !{count}}}"));
            format!(", !llvm.loop !{id}")
        } else {
            String::new()
        };
        self.line(&format!(
            "br i1 {more}, label %{body_l}, label %{exit_l}{md}"
        ));
        // The phis, now that the latch and the yields are known.
        let mut phis =
            format!("  {iv_name} = phi {ivt} [ {lo_v}, %{pre} ], [ {next}, %{latch} ]\n");
        for ((&a, init), y) in bd.args[1..].iter().zip(&inits).zip(&ys) {
            let (n, t) = (self.name_of(a), self.vty(a));
            phis.push_str(&format!(
                "  {n} = phi {t} [ {init}, %{pre} ], [ {y}, %{latch} ]\n"
            ));
        }
        self.body.insert_str(phi_at, &phis);
        self.start(&exit_l);
        for ((&r, init), y) in d.results.iter().zip(&inits).zip(&ys) {
            let t = self.vty(r);
            self.def_rhs(r, &format!("phi {t} [ {init}, %{pre} ], [ {y}, %{latch} ]"));
        }
        Ok(())
    }

    /// `if c : T... { then } else { else }`: a diamond; results are phis in the join block.
    pub(super) fn if_else(&mut self, i: Inst) -> Result<()> {
        let d = self.k.inst(i).clone();
        let c = self.val(self.arg(i, 0)?)?;
        let (then_l, join_l) = (self.new_label(), self.new_label());
        let else_l = match d.blocks.get(1) {
            Some(_) => self.new_label(),
            None => join_l.clone(),
        };
        let pre = self.cur.clone();
        self.line(&format!("br i1 {c}, label %{then_l}, label %{else_l}"));
        let mut arms = Vec::new();
        for (arm, label) in [then_l, else_l].into_iter().enumerate() {
            let Some(&kb) = d.blocks.get(arm) else {
                arms.push((pre.clone(), Vec::new()));
                continue;
            };
            self.start(&label);
            self.block_insts(kb)?;
            let ys = self
                .k
                .block(kb)
                .yields
                .iter()
                .map(|&v| self.val(v))
                .collect::<Result<Vec<_>>>()?;
            arms.push((self.cur.clone(), ys));
            self.line(&format!("br label %{join_l}"));
        }
        self.start(&join_l);
        for (n, &r) in d.results.iter().enumerate() {
            let t = self.vty(r);
            let inc: Vec<String> = arms
                .iter()
                .map(|(l, ys)| {
                    Ok(format!(
                        "[ {}, %{l} ]",
                        ys.get(n)
                            .ok_or_else(|| self.internal("if arm yields too few values"))?
                    ))
                })
                .collect::<Result<_>>()?;
            self.def_rhs(r, &format!("phi {t} {}", inc.join(", ")));
        }
        Ok(())
    }

    /// The host body: the instructions before the first `axis cpu.chunk` run once per call
    /// when they write no global memory (Cranelift's hoisted prologue), the rest once per chunk
    /// in `chunk_lo..chunk_hi`.
    pub(super) fn host_body(&mut self) -> Result<()> {
        debug_assert_eq!(self.flavor, Flavor::Host);
        let insts = self.k.block(self.k.body()).insts.clone();
        let split = insts
            .iter()
            .position(|&i| matches!(self.k.inst(i).op, Op::Axis(Axis::CpuChunk)))
            .unwrap_or(insts.len());
        let (pre, rest) = if self.writes_global(&insts[..split]) {
            (&[][..], &insts[..])
        } else {
            insts.split_at(split)
        };
        for &i in pre {
            self.inst(i)?;
        }
        let (head, exit) = (self.new_label(), self.new_label());
        let pre_l = self.cur.clone();
        let go = self.t("icmp slt i32 %chunk_lo, %chunk_hi");
        self.line(&format!("br i1 {go}, label %{head}, label %{exit}"));
        self.start(&head);
        let c = "%.chunk".to_string();
        let phi_at = self.body.len();
        self.chunk = Some(c.clone());
        for &i in rest {
            self.inst(i)?;
        }
        let latch = self.cur.clone();
        let next = self.t(&format!("add i32 {c}, 1"));
        let more = self.t(&format!("icmp slt i32 {next}, %chunk_hi"));
        self.line(&format!("br i1 {more}, label %{head}, label %{exit}"));
        self.body.insert_str(
            phi_at,
            &format!("  {c} = phi i32 [ %chunk_lo, %{pre_l} ], [ {next}, %{latch} ]\n"),
        );
        self.start(&exit);
        Ok(())
    }

    /// Does any of these instructions (or their regions) store to or update global memory?
    fn writes_global(&self, insts: &[Inst]) -> bool {
        insts.iter().any(|&i| {
            let d = self.k.inst(i);
            let ptr = match d.op {
                Op::Store(_) => d.args.get(1),
                Op::AtomicAdd => d.args.first(),
                _ => None,
            };
            ptr.is_some_and(|&p| matches!(self.k.ty(p), Type::Ptr(MemSpace::Global, _)))
                || d.blocks
                    .iter()
                    .any(|&b| self.writes_global(&self.k.block(b).insts))
        })
    }
}
