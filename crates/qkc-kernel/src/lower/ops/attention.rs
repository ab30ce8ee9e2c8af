//! Causal grouped-query attention with an optional KV cache and fused RoPE.
//!
//! One row per (token `t`, query head): a GPU block (or, on the CPU, one iteration of a chunk's
//! loop). The row stages its query (rotated when RoPE is fused) and the `T` new keys (rotated)
//! and values of its KV head in shared memory, so the new tokens are read from there, never
//! through the cache: the cache rows `pos..pos+T` are written in the same launch by the rows of
//! the first query head of each group (`head % group == 0`), and no row reads them. Scores go to
//! shared memory (`max_seq` of them with a cache, `T` without), then max, `exp`, sum, and the
//! weighted sum of values with one output element per thread.
//!
//! Bindings: `q`, `k`, `v` (operands), `pos` (the positions operand, when RoPE is fused), the
//! cache halves and [`Binding::Pos`] (with a cache), the RoPE frequency table (a constant), the
//! output. `bytes_read` counts q, k, v and positions, not the cache (its length is `pos`).

use qkc_ir::Op;

use super::emit::{Kind, Split};
use super::misc::{inv_freq, rope_pair, rope_rotate};
use super::{KernelCx, NodeCx};
use crate::lower::{Binding, CacheHalf, LowerError, Lowered};
use crate::ops::{BinaryOp, IntCC};
use crate::types::{Scalar, Type};

/// Lower an `attention` node.
pub(crate) fn lower(n: &NodeCx<'_>) -> Result<Lowered, LowerError> {
    let Op::Attention(a) = n.g.node(n.id).op.clone() else {
        return Err(n.err("not attention"));
    };
    let (h, kvh, hd) = (u64::from(a.heads), u64::from(a.kv_heads), u64::from(a.head_dim));
    if kvh == 0 || h % kvh != 0 {
        return Err(n.err(format!("kv_heads {kvh} must divide heads {h}")));
    }
    let group = h / kvh;
    let t = n.opts.tokens as u64;
    let (qd, kd) = (h * hd, kvh * hd);
    for (role, w) in [("q", qd), ("k", kd), ("v", kd)] {
        let s = n.shape(n.req(role)?);
        if s.iter().product::<usize>() as u64 != t * w {
            return Err(n.err(format!("`{role}` has shape {s:?}; expected [{t}, {w}]")));
        }
    }
    let rope = match (a.rope, n.operand("pos")) {
        (Some(r), Some(_)) => {
            if hd % 2 != 0 {
                return Err(n.err("RoPE needs an even head_dim"));
            }
            Some(r)
        }
        _ => None,
    };
    let cached = a.cache.is_some();
    let max_seq = u64::from(a.max_seq);
    if cached && t > max_seq {
        return Err(n.err(format!("{t} tokens exceed max_seq = {max_seq}")));
    }
    let slots = if cached { max_seq } else { t };
    if n.kind() == Kind::Gpu {
        let bytes = (slots + 2 * t * hd + hd + 4) * 4;
        if bytes > 48 * 1024 {
            return Err(n.err(format!(
                "scores and staged keys/values need {bytes} bytes of shared memory (> 48 KiB): \
                 max_seq {max_seq} is too long for this kernel"
            )));
        }
    }
    let rows = t * h;
    let mut k = KernelCx::new(n, &format!("t{t}_h{h}_kv{kvh}_d{hd}"), Split::Rows(rows));
    let q = k.input("q", t * qd)?;
    let kn = k.input("k", t * kd)?;
    let vn = k.input("v", t * kd)?;
    let pos_in = match rope {
        Some(_) => {
            let ps = n.scalar(n.req("pos")?)?;
            if ps != Scalar::I32 {
                return Err(n.err("positions must be i32"));
            }
            Some(k.input("pos", t)?)
        }
        None => None,
    };
    let cache = if cached {
        let ck = k.e.param_rw("cache_k", Scalar::F32, max_seq * kd);
        k.bindings.push(Binding::Cache(CacheHalf::K));
        let cv = k.e.param_rw("cache_v", Scalar::F32, max_seq * kd);
        k.bindings.push(Binding::Cache(CacheHalf::V));
        // read from memory: the arguments stay fixed across decode steps
        let pb = k.e.param("past", Scalar::I32, 1, true, false);
        k.bindings.push(Binding::Pos);
        let c0 = k.e.i32(0);
        let p = k.e.load_raw(pb, c0);
        Some((ck, cv, p))
    } else {
        None
    };
    let inv = rope.map(|r| k.constant("inv_freq", Scalar::F64, &inv_freq(r.theta, hd as usize)));
    let y = k.output(t * qd)?;
    let y_f32 = matches!(k.e.ty(y), Type::Ptr(_, Scalar::F32));
    let qs = k.e.shared(Scalar::F32, hd as u32);
    let ks = k.e.shared(Scalar::F32, (t * hd) as u32);
    let vs = k.e.shared(Scalar::F32, (t * hd) as u32);
    let sc = k.e.shared(Scalar::F32, slots as u32);
    // the CPU accumulates the weighted values row by row of the cache (sequential reads) into
    // a head_dim accumulator; the GPU keeps one output element per thread
    let cpu = matches!(n.kind(), Kind::Cpu { .. });
    let accs = cpu.then(|| k.e.shared(Scalar::F32, hd as u32));
    k.e.setup_rows();
    let scale = 1.0 / (hd as f64).sqrt();
    k.e.rows(rows, |e, row| {
        let tt = e.divi(row, h as i64);
        let head = e.remi(row, h as i64);
        let kv = e.divi(head, group as i64);
        let c0 = e.i32(0);
        let c1 = e.i32(1);
        let chd = e.i32(hd as i64);
        let past = match cache {
            Some((_, _, p)) => p,
            None => c0,
        };
        // stage q (rotated)
        let qb0 = e.muli(tt, qd as i64);
        let qh = e.muli(head, hd as i64);
        let qb = e.add(qb0, qh);
        let qrow = e.offset(q, qb);
        let kvb = e.muli(kv, hd as i64);
        match (rope, pos_in, inv) {
            (Some(r), Some(pos), Some(inv)) => {
                let chalf = e.i32((hd / 2) as i64);
                let pt = e.load_raw(pos, tt);
                e.stride(c0, chalf, &[], |e, i, _| {
                    let (ia, ib) = rope_pair(e, r.style, hd, i);
                    let xa = e.load_f32(qrow, ia);
                    let xb = e.load_f32(qrow, ib);
                    let (ya, yb) = rope_rotate(e, inv, pt, i, xa, xb);
                    e.store_raw(ya, qs, ia);
                    e.store_raw(yb, qs, ib);
                    vec![]
                });
                let cp = e.i32((t * hd / 2) as i64);
                e.stride(c0, cp, &[], |e, p, _| {
                    let u = e.divi(p, (hd / 2) as i64);
                    let i = e.remi(p, (hd / 2) as i64);
                    let (ia, ib) = rope_pair(e, r.style, hd, i);
                    let rb0 = e.muli(u, kd as i64);
                    let rb = e.add(rb0, kvb);
                    let krow = e.offset(kn, rb);
                    let xa = e.load_f32(krow, ia);
                    let xb = e.load_f32(krow, ib);
                    let pu = e.load_raw(pos, u);
                    let (ya, yb) = rope_rotate(e, inv, pu, i, xa, xb);
                    let sb = e.muli(u, hd as i64);
                    let sa = e.add(sb, ia);
                    let sbb = e.add(sb, ib);
                    e.store_raw(ya, ks, sa);
                    e.store_raw(yb, ks, sbb);
                    vec![]
                });
            }
            _ => {
                e.stride(c0, chd, &[], |e, i, _| {
                    let v = e.load_f32(qrow, i);
                    e.store_raw(v, qs, i);
                    vec![]
                });
                let ct = e.i32((t * hd) as i64);
                e.stride(c0, ct, &[], |e, p, _| {
                    let u = e.divi(p, hd as i64);
                    let d = e.remi(p, hd as i64);
                    let rb0 = e.muli(u, kd as i64);
                    let rb = e.add(rb0, kvb);
                    let src = e.add(rb, d);
                    let v = e.load_f32(kn, src);
                    e.store_raw(v, ks, p);
                    vec![]
                });
            }
        }
        let ct = e.i32((t * hd) as i64);
        e.stride(c0, ct, &[], |e, p, _| {
            let u = e.divi(p, hd as i64);
            let d = e.remi(p, hd as i64);
            let rb0 = e.muli(u, kd as i64);
            let rb = e.add(rb0, kvb);
            let src = e.add(rb, d);
            let v = e.load_f32(vn, src);
            e.store_raw(v, vs, p);
            vec![]
        });
        e.barrier();
        // append this token's key and value to the cache (first query head of the group only)
        if let Some((ck, cv, _)) = cache {
            let g0 = e.remi(head, group as i64);
            let lead = e.icmp(IntCC::Eq, g0, c0);
            e.if_(lead, |e| {
                let slot = e.add(past, tt);
                let cb0 = e.muli(slot, kd as i64);
                let cb = e.add(cb0, kvb);
                let sb = e.muli(tt, hd as i64);
                e.stride(c0, chd, &[], |e, d, _| {
                    let si = e.add(sb, d);
                    let ci = e.add(cb, d);
                    let kv_ = e.load_raw(ks, si);
                    e.store_raw(kv_, ck, ci);
                    let vv = e.load_raw(vs, si);
                    e.store_raw(vv, cv, ci);
                    vec![]
                });
            });
        }
        // scores
        let pt1 = e.add(past, tt);
        let visible = e.add(pt1, c1);
        let csc = e.f32(scale);
        // the CPU works on 4-lane vectors along head_dim (Cranelift's 128-bit SIMD)
        let vec4 = cpu && hd % 4 == 0;
        let c4 = e.i32(4);
        let dot = |e: &mut super::emit::E, rowp: crate::entities::Value, j: crate::entities::Value| {
            let z = e.f32(0.0);
            let sum = if vec4 {
                // unrolled over head_dim with 4 independent accumulators: one chain of hd/4
                // dependent FMAs (4 cycles each) was the attention's bottleneck
                let zv = e.splat(z, 4);
                let mut accs = [zv; 4];
                for i in 0..hd / 4 {
                    let d = e.i32((4 * i) as i64);
                    let a = e.load_vec(qs, d, 4);
                    let b = e.load_vec(rowp, d, 4);
                    let slot = (i % 4) as usize;
                    accs[slot] = e.fma(a, b, accs[slot]);
                }
                let s01 = e.add(accs[0], accs[1]);
                let s23 = e.add(accs[2], accs[3]);
                let s = e.add(s01, s23);
                e.reduce_add(s)
            } else {
                let acc = e.for_(c0, chd, c1, &[z], |e, d, acc| {
                    let a = e.load_raw(qs, d);
                    let b = e.load_raw(rowp, d);
                    vec![e.fma(a, b, acc[0])]
                });
                acc[0]
            };
            let s = e.mul(sum, csc);
            e.store_raw(s, sc, j);
        };
        if let Some((ck, _, _)) = cache {
            let mut from = c0;
            if vec4 {
                // four cached keys at a time: each q vector is loaded once for the four, and
                // one transpose-add of the four accumulators gives the four scores
                let m4 = e.i32(-4);
                let past4 = e.bin(BinaryOp::And, past, m4);
                e.for_(c0, past4, c4, &[], |e, j, _| {
                    let z = e.f32(0.0);
                    let zv = e.splat(z, 4);
                    let rows: Vec<_> = (0..4)
                        .map(|r| {
                            let jr = e.addi(j, r);
                            let rb0 = e.muli(jr, kd as i64);
                            let rb = e.add(rb0, kvb);
                            e.offset(ck, rb)
                        })
                        .collect();
                    let mut acc = [zv; 4];
                    for i in 0..hd / 4 {
                        let d = e.i32((4 * i) as i64);
                        let qv = e.load_vec(qs, d, 4);
                        for (a, &rowp) in acc.iter_mut().zip(&rows) {
                            let kv_ = e.load_vec(rowp, d, 4);
                            *a = e.fma(qv, kv_, *a);
                        }
                    }
                    // lanes: t0 = (a0₀, a1₀, a0₁, a1₁), t1 = (a0₂, a1₂, a0₃, a1₃), ...
                    let t0 = e.shuffle4(acc[0], acc[1], [0, 4, 1, 5]);
                    let t1 = e.shuffle4(acc[0], acc[1], [2, 6, 3, 7]);
                    let u0 = e.add(t0, t1);
                    let t2 = e.shuffle4(acc[2], acc[3], [0, 4, 1, 5]);
                    let t3 = e.shuffle4(acc[2], acc[3], [2, 6, 3, 7]);
                    let u1 = e.add(t2, t3);
                    let v0 = e.shuffle4(u0, u1, [0, 1, 4, 5]);
                    let v1 = e.shuffle4(u0, u1, [2, 3, 6, 7]);
                    let sum = e.add(v0, v1);
                    let cs = e.splat(csc, 4);
                    let sv = e.mul(sum, cs);
                    e.store_vec(sv, sc, j);
                    vec![]
                });
                from = past4;
            }
            e.stride(from, past, &[], |e, j, _| {
                let rb0 = e.muli(j, kd as i64);
                let rb = e.add(rb0, kvb);
                let rowp = e.offset(ck, rb);
                dot(e, rowp, j);
                vec![]
            });
        }
        e.stride(past, visible, &[], |e, j, _| {
            let u = e.sub(j, past);
            let rb = e.muli(u, hd as i64);
            let rowp = e.offset(ks, rb);
            dot(e, rowp, j);
            vec![]
        });
        e.barrier();
        // max and exp: the CPU takes 4 scores at a time up to visible & !3, then the rest
        // one by one, in the loops every target runs
        let vis4 = vec4.then(|| {
            let m4 = e.i32(-4);
            e.bin(BinaryOp::And, visible, m4)
        });
        let ninf = e.f32(f64::NEG_INFINITY);
        let m_init = match vis4 {
            Some(v4) => {
                let ninfv = e.splat(ninf, 4);
                let mv = e.for_(c0, v4, c4, &[ninfv], |e, j, acc| {
                    let s = e.load_vec(sc, j, 4);
                    vec![e.bin(BinaryOp::Max, acc[0], s)]
                });
                e.reduce_max(mv[0])
            }
            None => ninf,
        };
        let lo = vis4.unwrap_or(c0);
        let pm = e.stride(lo, visible, &[m_init], |e, j, acc| {
            let s = e.load_raw(sc, j);
            vec![e.bin(BinaryOp::Max, acc[0], s)]
        });
        let m = e.block_reduce(pm[0], BinaryOp::Max);
        let z = e.f32(0.0);
        let s_init = match vis4 {
            Some(v4) => {
                let mv = e.splat(m, 4);
                let l2e0 = e.f32(std::f64::consts::LOG2_E);
                let l2e = e.splat(l2e0, 4);
                let zv = e.splat(z, 4);
                let pv = e.for_(c0, v4, c4, &[zv], |e, j, acc| {
                    let s = e.load_vec(sc, j, 4);
                    let d = e.sub(s, mv);
                    let t = e.mul(d, l2e);
                    let p = e.exp2_v4(t);
                    e.store_vec(p, sc, j);
                    vec![e.add(acc[0], p)]
                });
                e.reduce_add(pv[0])
            }
            None => z,
        };
        let ps = e.stride(lo, visible, &[s_init], |e, j, acc| {
            let s = e.load_raw(sc, j);
            let d = e.sub(s, m);
            let p = e.exp(d);
            e.store_raw(p, sc, j);
            vec![e.add(acc[0], p)]
        });
        let sum = e.block_reduce(ps[0], BinaryOp::Add);
        let one = e.f32(1.0);
        let rinv = e.div(one, sum);
        let yrow = e.offset(y, qb);
        if let Some(acc) = accs {
            if vec4 {
                // the CPU keeps up to 8 vectors (32 lanes) of the output in registers and walks
                // the positions once per such slice (hd = 64: two passes), instead of a load,
                // an FMA and a store of the accumulator per vector and position
                let nv = hd / 4;
                let mut v0 = 0u64;
                while v0 < nv {
                    let v1 = (v0 + 8).min(nv);
                    let z = e.f32(0.0);
                    let zv = e.splat(z, 4);
                    let init = vec![zv; (v1 - v0) as usize];
                    let slice = |e: &mut super::emit::E,
                                 p: crate::entities::Value,
                                 vrow: crate::entities::Value,
                                 acc: &[crate::entities::Value]|
                     -> Vec<crate::entities::Value> {
                        let pv = e.splat(p, 4);
                        (v0..v1)
                            .zip(acc)
                            .map(|(vi, &a)| {
                                let d = e.i32((4 * vi) as i64);
                                let v = e.load_vec(vrow, d, 4);
                                e.fma(pv, v, a)
                            })
                            .collect()
                    };
                    let mut cur = init;
                    if let Some((_, cv, _)) = cache {
                        cur = e.for_(c0, past, c1, &cur, |e, j, acc| {
                            let p = e.load_raw(sc, j);
                            let rb0 = e.muli(j, kd as i64);
                            let rb = e.add(rb0, kvb);
                            let vrow = e.offset(cv, rb);
                            slice(e, p, vrow, acc)
                        });
                    }
                    cur = e.for_(past, visible, c1, &cur, |e, j, acc| {
                        let p = e.load_raw(sc, j);
                        let u = e.sub(j, past);
                        let rb = e.muli(u, hd as i64);
                        let vrow = e.offset(vs, rb);
                        slice(e, p, vrow, acc)
                    });
                    let rv = e.splat(rinv, 4);
                    for (vi, &a) in (v0..v1).zip(&cur) {
                        let d = e.i32((4 * vi) as i64);
                        if y_f32 {
                            let o = e.mul(a, rv);
                            e.store_vec(o, yrow, d);
                        } else {
                            e.store_vec(a, acc, d);
                        }
                    }
                    v0 = v1;
                }
                if y_f32 {
                    e.barrier();
                    return;
                }
                // another output dtype: the sums are in `acc`, converted below
            } else {
                e.stride(c0, chd, &[], |e, d, _| {
                    let z = e.f32(0.0);
                    e.store_raw(z, acc, d);
                    vec![]
                });
                let axpy =
                    |e: &mut super::emit::E, p: crate::entities::Value, vrow: crate::entities::Value| {
                        e.for_(c0, chd, c1, &[], |e, d, _| {
                            let v = e.load_raw(vrow, d);
                            let a = e.load_raw(acc, d);
                            let r = e.fma(p, v, a);
                            e.store_raw(r, acc, d);
                            vec![]
                        });
                    };
                if let Some((_, cv, _)) = cache {
                    e.for_(c0, past, c1, &[], |e, j, _| {
                        let p = e.load_raw(sc, j);
                        let rb0 = e.muli(j, kd as i64);
                        let rb = e.add(rb0, kvb);
                        let vrow = e.offset(cv, rb);
                        axpy(e, p, vrow);
                        vec![]
                    });
                }
                e.for_(past, visible, c1, &[], |e, j, _| {
                    let p = e.load_raw(sc, j);
                    let u = e.sub(j, past);
                    let rb = e.muli(u, hd as i64);
                    let vrow = e.offset(vs, rb);
                    axpy(e, p, vrow);
                    vec![]
                });
            }
            e.stride(c0, chd, &[], |e, d, _| {
                let a = e.load_raw(acc, d);
                let o = e.mul(a, rinv);
                e.store_f32(o, yrow, d);
                vec![]
            });
            e.barrier();
            return;
        }
        e.stride(c0, chd, &[], |e, d, _| {
            let z = e.f32(0.0);
            let acc = match cache {
                Some((_, cv, _)) => {
                    let r = e.for_(c0, past, c1, &[z], |e, j, acc| {
                        let p = e.load_raw(sc, j);
                        let rb0 = e.muli(j, kd as i64);
                        let rb = e.add(rb0, kvb);
                        let vi = e.add(rb, d);
                        let v = e.load_raw(cv, vi);
                        vec![e.fma(p, v, acc[0])]
                    });
                    r[0]
                }
                None => z,
            };
            let r = e.for_(past, visible, c1, &[acc], |e, j, acc| {
                let p = e.load_raw(sc, j);
                let u = e.sub(j, past);
                let rb = e.muli(u, hd as i64);
                let vi = e.add(rb, d);
                let v = e.load_raw(vs, vi);
                vec![e.fma(p, v, acc[0])]
            });
            let o = e.mul(r[0], rinv);
            e.store_f32(o, yrow, d);
            vec![]
        });
        e.barrier();
    });
    k.finish("attention")
}
