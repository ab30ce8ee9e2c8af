//! Memory: `load`/`store` through an in-bounds GEP with the KIR alignment, `offset`,
//! `atomic.add` (`atomicrmw add`/`fadd`, monotonic; `<2 x f16>` is PTX `atom.add.noftz.f16x2`),
//! `prefetch` (`prefetch.global.L2`), `alloc.shared` (an `addrspace(3)` global) and
//! `alloc.local` (an entry-block `alloca`).
//!
//! Cache hints on global accesses are inline PTX, since LLVM 19 has no IR for them:
//! `evict_first` → `ld.global.cs` / `st.global.cs`, `no_l1` → `ld.global.cg` / `st.global.cg`,
//! `evict_last` → `ld.global.L1::evict_last` / `st.global.L1::evict_last`. The access is split
//! into 4-, 8- or 16-byte pieces as its alignment allows (`.v4.u32` for an aligned 16-byte
//! vector) and the words are reassembled into the KIR type. Hinted loads are `memory(read)`
//! calls, so LLVM still orders them after earlier stores; hinted stores are side effects.

use qkc_kernel::{CacheHint, Inst, MemFlags, MemSpace, Op, Scalar, Type, Value};

use super::{scalar_ty, Emitter, Flavor};
use crate::error::Result;

impl Emitter<'_> {
    pub(super) fn mem(&mut self, i: Inst) -> Result<()> {
        let d = self.k.inst(i).clone();
        match &d.op {
            Op::Load(f) => {
                let r = self.result(i)?;
                let g = self.gep(self.arg(i, 0)?, self.arg(i, 1)?)?;
                let pt = self.k.ty(self.arg(i, 0)?);
                if let Some(v) = self.hinted_load(*f, pt, self.k.ty(r), &g)? {
                    self.def(r, v);
                } else {
                    let (rty, pty) = (self.vty(r), self.ty(pt));
                    self.def_rhs(r, &format!("load {rty}, {pty} {g}, align {}", f.align));
                }
            }
            Op::Store(f) => {
                let v = self.arg(i, 0)?;
                let g = self.gep(self.arg(i, 1)?, self.arg(i, 2)?)?;
                let pt = self.k.ty(self.arg(i, 1)?);
                if !self.hinted_store(*f, pt, v, &g)? {
                    let pty = self.ty(pt);
                    let tv = self.tval(v)?;
                    self.line(&format!("store {tv}, {pty} {g}, align {}", f.align));
                }
            }
            Op::Offset => {
                let r = self.result(i)?;
                let rhs = self.gep_rhs(self.arg(i, 0)?, self.arg(i, 1)?)?;
                self.def_rhs(r, &rhs);
            }
            Op::Alloc(space, n) => {
                let r = self.result(i)?;
                let Type::Ptr(_, e) = self.k.ty(r) else {
                    return Err(self.internal("alloc of a non-pointer"));
                };
                let e = scalar_ty(e);
                match (space, self.flavor) {
                    (MemSpace::Shared, Flavor::Nvptx) => {
                        let g = format!("@smem.{}", r.index());
                        self.add_global(&format!(
                            "{g} = internal addrspace(3) global [{n} x {e}] undef, align 16"
                        ));
                        self.def(r, g);
                    }
                    _ => {
                        let name = self.name_of(r);
                        self.add_alloca(&format!("{name} = alloca [{n} x {e}], align 16"));
                        self.def(r, name);
                    }
                }
            }
            Op::AtomicAdd => {
                let r = self.result(i)?;
                let g = self.gep(self.arg(i, 0)?, self.arg(i, 1)?)?;
                let pt = self.k.ty(self.arg(i, 0)?);
                let v = self.arg(i, 2)?;
                let vt = self.k.ty(v);
                if vt == Type::Vector(Scalar::F16, 2) {
                    let space = match (pt, self.flavor) {
                        (Type::Ptr(MemSpace::Global, _), Flavor::Nvptx) => "global",
                        (Type::Ptr(MemSpace::Shared, _), Flavor::Nvptx) => "shared",
                        _ => {
                            return Err(self.unsup(
                                i,
                                "atomic.add on <2 x f16> outside PTX global/shared memory",
                            ))
                        }
                    };
                    let pty = self.ty(pt);
                    let a = self.t(&format!("ptrtoint {pty} {g} to i64"));
                    let x = self.tval(v)?;
                    let w = self.t(&format!("bitcast {x} to i32"));
                    let old = self.t(&format!(
                        "call i32 asm sideeffect \"atom.{space}.add.noftz.f16x2 $0, [$1], $2;\", \"=r,l,r,~{{memory}}\"(i64 {a}, i32 {w})"
                    ));
                    self.def_rhs(r, &format!("bitcast i32 {old} to <2 x half>"));
                } else {
                    let op = if vt.is_float() { "fadd" } else { "add" };
                    let pty = self.ty(pt);
                    let x = self.tval(v)?;
                    self.def_rhs(
                        r,
                        &format!(
                            "atomicrmw {op} {pty} {g}, {x} monotonic, align {}",
                            vt.bytes()
                        ),
                    );
                }
            }
            Op::Prefetch => {
                let pt = self.k.ty(self.arg(i, 0)?);
                if let (Type::Ptr(MemSpace::Global, _), Flavor::Nvptx) = (pt, self.flavor) {
                    let g = self.gep(self.arg(i, 0)?, self.arg(i, 1)?)?;
                    let pty = self.ty(pt);
                    let a = self.t(&format!("ptrtoint {pty} {g} to i64"));
                    self.line(&format!(
                        "call void asm sideeffect \"prefetch.global.L2 [$0];\", \"l\"(i64 {a})"
                    ));
                } else if self.flavor == Flavor::Host {
                    let g = self.gep(self.arg(i, 0)?, self.arg(i, 1)?)?;
                    let rhs = self.call_rhs(
                        "void",
                        "llvm.prefetch.p0",
                        &[
                            ("ptr".into(), g),
                            ("i32".into(), "0".into()),
                            ("i32".into(), "3".into()),
                            ("i32".into(), "1".into()),
                        ],
                    );
                    self.line(&rhs);
                }
            }
            _ => return Err(self.internal("mem() on a non-memory op")),
        }
        Ok(())
    }

    fn gep_rhs(&mut self, p: Value, idx: Value) -> Result<String> {
        let Type::Ptr(_, e) = self.k.ty(p) else {
            return Err(self.internal("indexing a non-pointer"));
        };
        let (tp, ti) = (self.tval(p)?, self.tval(idx)?);
        Ok(format!(
            "getelementptr inbounds {}, {tp}, {ti}",
            scalar_ty(e)
        ))
    }

    /// The address of `p[idx]` (elements; the index is sign-extended by the GEP).
    fn gep(&mut self, p: Value, idx: Value) -> Result<String> {
        let rhs = self.gep_rhs(p, idx)?;
        Ok(self.t(&rhs))
    }

    /// The PTX cache qualifier of a hint, for a global access on the GPU.
    fn hint_qual(&self, f: MemFlags, pt: Type, load: bool) -> Option<&'static str> {
        if self.flavor != Flavor::Nvptx || !matches!(pt, Type::Ptr(MemSpace::Global, _)) {
            return None;
        }
        match (f.hint, load) {
            (CacheHint::Default, _) => None,
            (CacheHint::EvictFirst, _) => Some("cs"),
            (CacheHint::NoL1, _) => Some("cg"),
            (CacheHint::EvictLast, _) => Some("L1::evict_last"),
        }
    }

    /// The piece size (bytes) of a hinted access of `bytes` at alignment `align`, if any.
    fn pieces(bytes: u32, align: u32) -> Option<(u32, u32)> {
        if bytes < 4 {
            return (align >= bytes).then_some((bytes, 1));
        }
        let piece = bytes.min(align).min(16);
        (piece >= 4 && bytes.is_multiple_of(piece)).then_some((piece, bytes / piece))
    }

    /// A hinted load as inline PTX; `None` when it stays a plain load.
    fn hinted_load(&mut self, f: MemFlags, pt: Type, rt: Type, g: &str) -> Result<Option<String>> {
        let Some(q) = self.hint_qual(f, pt, true) else {
            return Ok(None);
        };
        let bytes = rt.bytes();
        let Some((piece, count)) = Self::pieces(bytes, f.align) else {
            return Ok(None);
        };
        let rty = self.ty(rt);
        let pty = self.ty(pt);
        let addr = self.t(&format!("ptrtoint {pty} {g} to i64"));
        let ro = self.attrs("nounwind willreturn memory(read)");
        if bytes < 4 {
            // one byte or one 16-bit word, in a 16-bit register
            let w = self.t(&format!(
                "call i16 asm \"ld.global.{q}.u{} $0, [$1];\", \"=h,l\"(i64 {addr}) #{ro}",
                bytes * 8
            ));
            let v = if bytes == 1 {
                self.t(&format!("trunc i16 {w} to i8"))
            } else {
                w
            };
            let it = if bytes == 1 { "i8" } else { "i16" };
            if rt == Type::Scalar(Scalar::I1) {
                return Ok(Some(self.t(&format!("trunc {it} {v} to i1"))));
            }
            return Ok(Some(self.t(&format!("bitcast {it} {v} to {rty}"))));
        }
        let words_per = piece / 4;
        let total = bytes / 4;
        let mut vec = "poison".to_string();
        let vt = format!("<{total} x i32>");
        for p in 0..count {
            let a = if p == 0 {
                addr.clone()
            } else {
                self.t(&format!("add i64 {addr}, {}", p * piece))
            };
            let (shape, outs, regs) = match words_per {
                1 => ("u32".to_string(), "$0".to_string(), "=r".to_string()),
                n => (
                    format!("v{n}.u32"),
                    format!(
                        "{{{}}}",
                        (0..n)
                            .map(|k| format!("${k}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    vec!["=r"; n as usize].join(","),
                ),
            };
            let ret = if words_per == 1 {
                "i32".to_string()
            } else {
                format!("{{ {} }}", vec!["i32"; words_per as usize].join(", "))
            };
            let call = self.t(&format!(
                "call {ret} asm \"ld.global.{q}.{shape} {outs}, [${words_per}];\", \"{regs},l\"(i64 {a}) #{ro}"
            ));
            for w in 0..words_per {
                let word = if words_per == 1 {
                    call.clone()
                } else {
                    self.t(&format!("extractvalue {ret} {call}, {w}"))
                };
                vec = self.t(&format!(
                    "insertelement {vt} {vec}, i32 {word}, i32 {}",
                    p * words_per + w
                ));
            }
        }
        let whole = if total == 1 {
            self.t(&format!("extractelement {vt} {vec}, i32 0"))
        } else {
            vec
        };
        let wt = if total == 1 { "i32".to_string() } else { vt };
        if wt == rty {
            return Ok(Some(whole));
        }
        Ok(Some(self.t(&format!("bitcast {wt} {whole} to {rty}"))))
    }

    /// A hinted store as inline PTX; `false` when it stays a plain store.
    fn hinted_store(&mut self, f: MemFlags, pt: Type, v: Value, g: &str) -> Result<bool> {
        let Some(q) = self.hint_qual(f, pt, false) else {
            return Ok(false);
        };
        let vt = self.k.ty(v);
        let bytes = vt.bytes();
        let Some((piece, count)) = Self::pieces(bytes, f.align) else {
            return Ok(false);
        };
        if vt.elem() == Some(Scalar::I1) {
            return Ok(false);
        }
        let pty = self.ty(pt);
        let addr = self.t(&format!("ptrtoint {pty} {g} to i64"));
        let x = self.tval(v)?;
        if bytes < 4 {
            let it = if bytes == 1 { "i8" } else { "i16" };
            let b = self.t(&format!("bitcast {x} to {it}"));
            let w = if bytes == 1 {
                self.t(&format!("zext i8 {b} to i16"))
            } else {
                b
            };
            self.line(&format!(
                "call void asm sideeffect \"st.global.{q}.u{} [$0], $1;\", \"l,h,~{{memory}}\"(i64 {addr}, i16 {w})",
                bytes * 8
            ));
            return Ok(true);
        }
        let total = bytes / 4;
        let wt = if total == 1 {
            "i32".to_string()
        } else {
            format!("<{total} x i32>")
        };
        let words = if self.vty(v) == wt {
            self.val(v)?
        } else {
            self.t(&format!("bitcast {x} to {wt}"))
        };
        let words_per = piece / 4;
        for p in 0..count {
            let a = if p == 0 {
                addr.clone()
            } else {
                self.t(&format!("add i64 {addr}, {}", p * piece))
            };
            let mut ops = vec![format!("i64 {a}")];
            for w in 0..words_per {
                if total == 1 {
                    ops.push(format!("i32 {words}"));
                } else {
                    let e = self.t(&format!(
                        "extractelement {wt} {words}, i32 {}",
                        p * words_per + w
                    ));
                    ops.push(format!("i32 {e}"));
                }
            }
            let (shape, ins) = match words_per {
                1 => ("u32".to_string(), "$1".to_string()),
                n => (
                    format!("v{n}.u32"),
                    format!(
                        "{{{}}}",
                        (1..=n)
                            .map(|k| format!("${k}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ),
            };
            let regs = vec!["r"; words_per as usize].join(",");
            self.line(&format!(
                "call void asm sideeffect \"st.global.{q}.{shape} [$0], {ins};\", \"l,{regs},~{{memory}}\"({})",
                ops.join(", ")
            ));
        }
        Ok(true)
    }
}
