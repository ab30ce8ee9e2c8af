//! Expansions of KIR ops Cranelift has no instruction for. `exp2` (KIR.md: "expand `exp2`") is
//! the same algorithm as the `exp2_poly` template snippet: clamp to [−126, 126], n = roundeven,
//! 2^f for f in [−0.5, 0.5] by a degree-7 polynomial, times 2^n built in the exponent bits —
//! about 2 ulp, within KIR's allowance for `exp2`.

use cranelift_codegen::ir::{self, types, InstBuilder};
use qkc_kernel::Inst;

use super::ops::le;
use super::Lower;
use crate::error::Result;

/// Taylor coefficients of e^(f·ln 2), highest degree first (as in `exp2_poly.kir`).
#[expect(
    clippy::excessive_precision,
    reason = "the literals of exp2_poly.kir, digit for digit"
)]
const EXP2_POLY: [f64; 8] = [
    1.5252733804059841e-05,
    0.00015403530393381608,
    0.0013333558146428443,
    0.009618129107628477,
    0.05550410866482158,
    0.2402265069591007,
    std::f64::consts::LN_2,
    1.0,
];

impl Lower<'_, '_> {
    pub(super) fn exp2(&mut self, i: Inst, x: ir::Value) -> Result<ir::Value> {
        let ct = self.b.func.dfg.value_type(x);
        let it = match ct {
            types::F32 => types::I32,
            types::F32X4 => types::I32X4,
            _ => return Err(self.unsup(i, format!("exp2 on {ct} (only f32 lanes are expanded)"))),
        };
        let (lo, hi) = (self.fconst(ct, -126.0), self.fconst(ct, 126.0));
        let xa = self.b.ins().fmax(x, lo);
        let xc = self.b.ins().fmin(xa, hi);
        let n = self.b.ins().nearest(xc);
        let f = self.b.ins().fsub(xc, n);
        let mut p = self.fconst(ct, EXP2_POLY[0]);
        for &c in &EXP2_POLY[1..] {
            let c = self.fconst(ct, c);
            p = self.b.ins().fma(p, f, c);
        }
        let ni = self.b.ins().fcvt_to_sint_sat(it, n);
        let bias = if it.is_vector() {
            let s = self.b.ins().iconst(types::I32, 127);
            self.b.ins().splat(it, s)
        } else {
            self.b.ins().iconst(types::I32, 127)
        };
        let nb = self.b.ins().iadd(ni, bias);
        let eb = self.b.ins().ishl_imm_u(nb, 23);
        let sc = self.b.ins().bitcast(ct, le(), eb);
        Ok(self.b.ins().fmul(p, sc))
    }
}
