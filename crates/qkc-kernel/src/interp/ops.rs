//! Per-thread evaluation of the region-less, thread-local ops.

use crate::entities::Inst;
use crate::interp::exec::{Engine, Val};
use crate::interp::lanes::{self, sx, LResult};
use crate::interp::mem::Ptr;
use crate::ops::{CastOp, Dp4a, Madd, Op, ReduceOp};
use crate::types::{Scalar, Type};

fn elem(t: Type) -> LResult<Scalar> {
    t.elem().ok_or_else(|| format!("internal: {t} has no lanes"))
}

/// Split lane bits into bytes (little-endian, `s.bytes()` per lane).
fn to_bytes(s: Scalar, lanes: &[u64]) -> Vec<u8> {
    lanes.iter().flat_map(|&b| b.to_le_bytes().into_iter().take(s.bytes() as usize)).collect()
}

fn from_bytes(s: Scalar, bytes: &[u8]) -> Vec<u64> {
    bytes
        .chunks_exact(s.bytes() as usize)
        .map(|c| {
            let mut w = [0u8; 8];
            w[..c.len()].copy_from_slice(c);
            u64::from_le_bytes(w) & s.mask()
        })
        .collect()
}

/// Bit-concatenate lanes (lane 0 lowest) and re-split them as `to`.
fn bitcast(from: Type, to: Type, lanes: &[u64]) -> LResult<Vec<u64>> {
    let (fs, ts) = (elem(from)?, elem(to)?);
    let mut bits: Vec<bool> = Vec::with_capacity(from.bits() as usize);
    for &l in lanes {
        bits.extend((0..fs.bits()).map(|j| (l >> j) & 1 == 1));
    }
    Ok(bits
        .chunks(ts.bits() as usize)
        .map(|c| c.iter().rev().fold(0u64, |acc, &b| (acc << 1) | u64::from(b)))
        .collect())
}

fn reduce(op: ReduceOp, s: Scalar, mut v: Vec<u64>) -> LResult<u64> {
    use crate::ops::BinaryOp as B;
    let b = match op {
        ReduceOp::Add => B::Add,
        ReduceOp::Min => B::Min,
        ReduceOp::Max => B::Max,
        ReduceOp::Smin => B::Smin,
        ReduceOp::Smax => B::Smax,
        ReduceOp::Umin => B::Umin,
        ReduceOp::Umax => B::Umax,
    };
    while v.len() > 1 {
        let half = v.len() / 2;
        for j in 0..half {
            v[j] = lanes::binary(b, s, v[j], v[j + half])?;
        }
        v.truncate(half);
    }
    v.first().copied().ok_or_else(|| "reduce of an empty vector".into())
}

fn prmt(a: u64, b: u64, sel: u64) -> u64 {
    let bytes = ((b & 0xffff_ffff) << 32) | (a & 0xffff_ffff);
    (0..4).fold(0u64, |acc, i| {
        let s = (sel >> (4 * i)) & 0xf;
        let mut byte = (bytes >> (8 * (s & 7))) & 0xff;
        if s & 8 != 0 {
            byte = if byte & 0x80 != 0 { 0xff } else { 0 };
        }
        acc | (byte << (8 * i))
    })
}

fn dp4a(kind: Dp4a, a: u64, b: u64, c: u64) -> u64 {
    let (sa, sb) = match kind {
        Dp4a::S8S8 => (true, true),
        Dp4a::U8S8 => (false, true),
        Dp4a::S8U8 => (true, false),
        Dp4a::U8U8 => (false, false),
    };
    let byte = |x: u64, i: u32, signed: bool| {
        let v = (x >> (8 * i)) & 0xff;
        if signed {
            sx(v, Scalar::I8)
        } else {
            v as i64
        }
    };
    let sum: i64 = (0..4).map(|i| byte(a, i, sa) * byte(b, i, sb)).sum();
    (sx(c, Scalar::I32).wrapping_add(sum) as u64) & 0xffff_ffff
}

fn madd(m: Madd, a: &[u64], b: &[u64]) -> Vec<u64> {
    (0..a.len() / 2)
        .map(|i| match m {
            Madd::U8S8 => {
                let p = |j: usize| (a[j] & 0xff) as i64 * sx(b[j], Scalar::I8);
                (p(2 * i) + p(2 * i + 1)).clamp(-32768, 32767) as u64 & 0xffff
            }
            Madd::S16 => {
                let p = |j: usize| sx(a[j], Scalar::I16) * sx(b[j], Scalar::I16);
                (p(2 * i).wrapping_add(p(2 * i + 1)) as u64) & 0xffff_ffff
            }
        })
        .collect()
}

impl Engine<'_> {
    fn lanes_of(&self, i: Inst, n: usize, t: usize) -> LResult<Vec<u64>> {
        self.get(self.k.inst(i).args[n], t).lanes()
    }

    fn address(&self, i: Inst, t: usize) -> LResult<(Ptr, Scalar)> {
        let d = self.k.inst(i);
        let (p_arg, i_arg) = match d.op {
            Op::Store(_) => (1, 2),
            _ => (0, 1),
        };
        let p = self.get(d.args[p_arg], t).ptr()?;
        let Type::Ptr(_, e) = self.k.ty(d.args[p_arg]) else {
            return Err(format!("{} is not a pointer", self.k.ty(d.args[p_arg])));
        };
        let s = elem(self.k.ty(d.args[i_arg]))?;
        let idx = sx(self.get(d.args[i_arg], t).bits()?, s);
        let off = idx
            .checked_mul(i64::from(e.bytes()))
            .and_then(|o| o.checked_add(p.off))
            .ok_or("address overflow")?;
        Ok((Ptr { buf: p.buf, off }, e))
    }

    /// Evaluate instruction `i` for thread `t`; returns its (single) result, if any.
    pub(crate) fn eval(&mut self, i: Inst, t: usize) -> LResult<Option<Val>> {
        let d = self.k.inst(i);
        let rt = d.results.first().map(|&r| self.k.ty(r));
        let lanes_of = |n: usize| self.lanes_of(i, n, t);
        let map2 = |f: &dyn Fn(u64, u64) -> LResult<u64>| -> LResult<Vec<u64>> {
            let (a, b) = (lanes_of(0)?, lanes_of(1)?);
            let b = if b.len() == 1 && a.len() > 1 { vec![b[0]; a.len()] } else { b };
            a.iter().zip(&b).map(|(&x, &y)| f(x, y)).collect()
        };
        let out = match &d.op {
            Op::Const(bits) => {
                let n = rt.map_or(1, Type::lanes) as usize;
                if bits.len() == 1 {
                    vec![bits[0]; n]
                } else {
                    bits.clone()
                }
            }
            Op::Unary(u) => {
                let s = elem(self.k.ty(d.args[0]))?;
                lanes_of(0)?.into_iter().map(|a| lanes::unary(*u, s, a)).collect::<LResult<_>>()?
            }
            Op::Binary(b) => {
                let s = elem(self.k.ty(d.args[0]))?;
                map2(&|x, y| lanes::binary(*b, s, x, y))?
            }
            Op::Fma => {
                let s = elem(self.k.ty(d.args[0]))?;
                let (a, b, c) = (lanes_of(0)?, lanes_of(1)?, lanes_of(2)?);
                (0..a.len()).map(|j| lanes::fma(s, a[j], b[j], c[j])).collect()
            }
            Op::Icmp(cc) => {
                let s = elem(self.k.ty(d.args[0]))?;
                map2(&|x, y| Ok(u64::from(lanes::icmp(*cc, s, x, y))))?
            }
            Op::Fcmp(cc) => {
                let s = elem(self.k.ty(d.args[0]))?;
                map2(&|x, y| Ok(u64::from(lanes::fcmp(*cc, s, x, y))))?
            }
            Op::Select => {
                let (c, a, b) = (lanes_of(0)?, lanes_of(1)?, lanes_of(2)?);
                if matches!(self.get(d.args[1], t), Val::P(_)) {
                    let pick = if c[0] & 1 == 1 { 1 } else { 2 };
                    return Ok(Some(self.get(d.args[pick], t).clone()));
                }
                (0..a.len()).map(|j| if c[j.min(c.len() - 1)] & 1 == 1 { a[j] } else { b[j] }).collect()
            }
            Op::Cast(CastOp::Bitcast) => bitcast(self.k.ty(d.args[0]), rt.ok_or("result")?, &lanes_of(0)?)?,
            Op::Cast(c) => {
                let (from, to) = (elem(self.k.ty(d.args[0]))?, elem(rt.ok_or("result")?)?);
                lanes_of(0)?.into_iter().map(|a| lanes::cast(*c, from, to, a)).collect()
            }
            Op::Splat
            | Op::Extract(_)
            | Op::Insert(_)
            | Op::Shuffle(_)
            | Op::Reduce(_)
            | Op::Axis(_)
            | Op::Prmt
            | Op::Dp4a(_)
            | Op::Madd(_)
            | Op::Swizzle => self.eval_lanes(i, t, rt)?,
            Op::Load(_) | Op::Store(_) | Op::AtomicAdd | Op::Prefetch | Op::Offset => {
                return self.memory(i, t)
            }
            Op::Mma(_) => return Err("`mma` is reserved and not interpreted yet".into()),
            Op::For { .. } | Op::If | Op::Barrier | Op::Shfl(_) | Op::Alloc(..) => {
                return Err(format!("internal: {} reached eval", d.op))
            }
        };
        Ok(rt.map(|t| Val::of(t, out)))
    }

    /// Vector lane ops and thread-local intrinsics.
    fn eval_lanes(&self, i: Inst, t: usize, rt: Option<Type>) -> LResult<Vec<u64>> {
        let d = self.k.inst(i);
        let lanes_of = |n: usize| self.lanes_of(i, n, t);
        Ok(match &d.op {
            Op::Splat => vec![self.get(d.args[0], t).bits()?; rt.map_or(1, Type::lanes) as usize],
            Op::Extract(l) => vec![lanes_of(0)?[*l as usize]],
            Op::Insert(l) => {
                let mut v = lanes_of(0)?;
                v[*l as usize] = self.get(d.args[1], t).bits()?;
                v
            }
            Op::Shuffle(mask) => {
                let mut ab = lanes_of(0)?;
                ab.extend(lanes_of(1)?);
                mask.iter().map(|&m| ab[m as usize]).collect()
            }
            Op::Reduce(r) => vec![reduce(*r, elem(self.k.ty(d.args[0]))?, lanes_of(0)?)?],
            Op::Axis(a) => vec![self.axis(*a, t)],
            Op::Prmt => vec![prmt(lanes_of(0)?[0], lanes_of(1)?[0], lanes_of(2)?[0])],
            Op::Dp4a(kind) => vec![dp4a(*kind, lanes_of(0)?[0], lanes_of(1)?[0], lanes_of(2)?[0])],
            Op::Madd(m) => madd(*m, &lanes_of(0)?, &lanes_of(1)?),
            Op::Swizzle => {
                let (tab, idx) = (lanes_of(0)?, lanes_of(1)?);
                idx.iter().map(|&j| if j < 16 { tab[j as usize] } else { 0 }).collect()
            }
            _ => return Err(format!("internal: {} reached eval_lanes", d.op)),
        })
    }

    fn memory(&mut self, i: Inst, t: usize) -> LResult<Option<Val>> {
        let d = self.k.inst(i);
        let who = self.who(t);
        match &d.op {
            Op::Offset => {
                let (p, _) = self.address(i, t)?;
                Ok(Some(Val::P(p)))
            }
            Op::Prefetch => Ok(None),
            Op::Load(f) => {
                let rt = self.k.ty(d.results[0]);
                let (p, e) = self.address(i, t)?;
                let bytes = self.mem.read(p, rt.bytes(), f.align.max(e.bytes()), who)?;
                Ok(Some(Val::of(rt, from_bytes(e, &bytes))))
            }
            Op::Store(f) => {
                let (p, e) = self.address(i, t)?;
                let bytes = to_bytes(e, &self.get(d.args[0], t).lanes()?);
                self.mem.write(p, &bytes, f.align.max(e.bytes()), who, false)?;
                Ok(None)
            }
            _ => {
                let (p, e) = self.address(i, t)?;
                let vt = self.k.ty(d.args[2]);
                let old = from_bytes(e, &self.mem.read(p, vt.bytes(), vt.bytes(), who)?);
                let add = self.get(d.args[2], t).lanes()?;
                let new: Vec<u64> = old
                    .iter()
                    .zip(&add)
                    .map(|(&a, &b)| lanes::binary(crate::ops::BinaryOp::Add, e, a, b))
                    .collect::<LResult<_>>()?;
                self.mem.write(p, &to_bytes(e, &new), vt.bytes(), who, true)?;
                Ok(Some(Val::of(vt, old)))
            }
        }
    }
}
