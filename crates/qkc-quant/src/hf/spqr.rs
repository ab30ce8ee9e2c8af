//! SpQR inference-format checkpoints (Vahe1994/SpQR `inference_lib/src/spqr_quant/inference.py`
//! `QuantizedLinear`, `inference_kernels/spqr_cuda.cpp` `tensor_compress_interleaved` /
//! `dequantize_compressed`, `common.cuh`; FORMATS.md §4) onto qkc's `spqr3:g16` or, with an
//! input permutation, `spqr3:g16:perm` ([`crate::spqr`]), plus a [`Csr`] of outliers.
//!
//! Stored per linear layer (`bits = 3`, `beta1 = beta2 = 16`, the only configuration of the
//! format: its 64-bit tile row is laid out for them):
//! - `{prefix}.dense_weights` I64 `[ceil(N/16)·ceil(K/16)·16]`: 16×16 tiles in tile-row-major
//!   order (row tiles outer, column tiles inner), one u64 per tile row, padding rows zero:
//!   bits 0–2 scale code, 3–5 zero code, 6+3j..8+3j weight code j, 54–61 an 8-bit fragment of
//!   the tile's second-order word (fragment f in tile rows 2f and 2f+1). The second-order word
//!   is recovered exactly as the reference host code does (`w2 |= (row >> 54) << 8·(r/2)` over
//!   the tile's 16 rows): bits 0–15 `s_s`, 16–31 `z_s`, 32–47 `s_z`, 48–63 `z_z` (fp16), so
//!   `s = s_s·(s_code − s_z)`, `z = z_s·(z_code − z_z)`, `w = s·(q − z)`.
//! - `{prefix}.row_offsets` I32: `[N+1]` is CSR; `[ceil(N/16)+1]` is PTCSR (16-row blocks whose
//!   entries interleave the block's rows: entry j of block b belongs to row `16b + j % 16`; zero
//!   padding entries are dropped, they add nothing).
//! - `{prefix}.col_vals` I32 `[nnz]`: low 16 bits the column, high 16 bits the fp16 value,
//!   **added** to the dense weight at (row, column) (so at an outlier the dense code's small
//!   `s·(round(z) − z)` stays, as in the reference).
//! - `{prefix}.in_perm` I32 `[K/2]` (optional, absent or empty means none): u16 pairs, element
//!   2i in the low half of word i.
//!
//! Mapping: the codes and stat codes are re-packed into qkc's per-row bit streams (`qweight`,
//! `stats` with the scale code of group g at 2g and its zero code at 2g+1), the second-order
//! word into `stats2[row_block, group] = (s_s, s_z, z_s, z_z)` (qkc's scale_scale, scale_zero,
//! zero_scale, zero_zero), the outliers into a [`Csr`] with f16-exact f32 values.
//!
//! **Permutation.** SpQR stores the dense weight and the outliers in a permuted column order:
//! the layer computes `y = (W + S) · x̃` with `x̃[i] = x[in_perm[i]]` (the kernel's
//! `s_x2[i] = x[in_order[i]]`), i.e. the weight in the original column order is
//! `W_orig[:, in_perm[i]] = W[:, i]`. A non-identity `in_perm` becomes qkc's
//! `spqr3:g16:perm` ([`crate::spqr`]): codes and statistics stay in SpQR's stored order, the
//! permutation is the part `in_perm` (I32 `[K]`, as stored), and qkc's kernels read x through
//! it in their prologue; [`QuantTensor::dequant`] returns `W_orig`. The outliers' columns are
//! mapped to the original order (`col → in_perm[col]`, rows re-sorted by column), so the
//! [`Csr`] adds to `W_orig`. An identity or absent `in_perm` gives plain `spqr3:g16`.
//! [`Imported::in_perm`] is always `None`.
//!
//! Precision: SpQR computes `s`, `z` and `w` in fp16 (each operation rounded), adds the outliers
//! in f32 and rounds to fp16; qkc's reference computes the same formula in f64 and rounds once to
//! f32. They agree within fp16 rounding.
//!
//! For N not a multiple of 16 the reference writer drops the fragments of the last row block's
//! padding rows (only rows < N carry theirs), so the second-order word of that block is partly
//! zero; it is decoded as stored.

use half::f16;

use super::common::{get, get_opt, in_module, ImportError};
use super::{Imported, RawDtype, TensorSource};
use crate::pack::{self, words_per_row};
use crate::scheme::Spqr;
use crate::spqr::ROW_BLOCK;
use crate::tensor::{Part, QuantTensor};
use crate::{Csr, Scheme};

/// SpQR's `quantization_config` (`bits`, `beta1`, `beta2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    /// Weight and first-order statistic bits (3).
    pub bits: u8,
    /// Tile height (16).
    pub beta1: u32,
    /// Tile width = first-order group along K (16).
    pub beta2: u32,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            bits: 3,
            beta1: 16,
            beta2: 16,
        }
    }
}

const TILE: usize = 16;
const FRAG_SHIFT: u32 = 54;

/// Import the SpQR linear `prefix` (`[n, k]`, HF orientation).
pub fn import(
    src: &dyn TensorSource,
    prefix: &str,
    n: usize,
    k: usize,
    p: Params,
) -> Result<Imported, ImportError> {
    if p != Params::default() {
        return Err(ImportError::Unsupported(format!(
            "SpQR layer `{prefix}`: bits={} beta1={} beta2={}; the inference format exists only \
             for bits=3, beta1=beta2=16",
            p.bits, p.beta1, p.beta2
        )));
    }
    if n == 0 || k == 0 {
        return Err(ImportError::BadParams(format!(
            "SpQR layer `{prefix}`: empty shape [{n}, {k}]"
        )));
    }
    if k % TILE != 0 {
        return Err(ImportError::Unsupported(format!(
            "SpQR layer `{prefix}`: K = {k} is not a multiple of 16, qkc's spqr3:g16 group"
        )));
    }
    let (tn, tk) = (n.div_ceil(TILE), k / TILE);
    let groups = tk;

    let dw_name = format!("{prefix}.dense_weights");
    let dw_t = get(src, &dw_name)?.expect(&[RawDtype::I64], &[tn * tk * TILE])?;
    let dw = dw_t.words64();

    let mut codes = vec![0u8; n * k];
    let mut stat_codes = vec![0u8; n * 2 * groups];
    let mut stats2 = vec![f16::ZERO; tn * groups * 4];
    for ti in 0..tn {
        for tj in 0..tk {
            let base = (ti * tk + tj) * TILE;
            let tile = &dw[base..base + TILE];
            let mut w2 = 0u64;
            for (r, &row) in tile.iter().enumerate() {
                w2 |= (row >> FRAG_SHIFT) << (8 * (r / 2));
            }
            let h = |b: u32| f16::from_bits((w2 >> b) as u16);
            // (scale_scale, scale_zero, zero_scale, zero_zero) = (s_s, s_z, z_s, z_z).
            let st = [h(0), h(32), h(16), h(48)];
            stats2[(ti * groups + tj) * 4..][..4].copy_from_slice(&st);
            for (r, &row) in tile.iter().enumerate() {
                let i = ti * TILE + r;
                if i >= n {
                    break;
                }
                stat_codes[i * 2 * groups + 2 * tj] = (row & 7) as u8;
                stat_codes[i * 2 * groups + 2 * tj + 1] = ((row >> 3) & 7) as u8;
                for j in 0..TILE {
                    codes[i * k + tj * TILE + j] = ((row >> (6 + 3 * j)) & 7) as u8;
                }
            }
        }
    }
    let (wq, ws) = (words_per_row(k, 3), words_per_row(2 * groups, 3));
    let mut qweight = vec![0u32; n * wq];
    let mut stats = vec![0u32; n * ws];
    for i in 0..n {
        pack::pack_row(
            &codes[i * k..(i + 1) * k],
            3,
            &mut qweight[i * wq..(i + 1) * wq],
        );
        pack::pack_row(
            &stat_codes[i * 2 * groups..(i + 1) * 2 * groups],
            3,
            &mut stats[i * ws..(i + 1) * ws],
        );
    }
    let in_perm = import_perm(src, prefix, k)?
        .filter(|p| p.iter().enumerate().any(|(i, &c)| c as usize != i));
    let scheme = Scheme::Spqr(Spqr {
        bits: 3,
        group: 16,
        stat_bits: 3,
        perm: in_perm.is_some(),
    });
    let mut q = QuantTensor::new(scheme, n, k);
    q.parts
        .insert("qweight".into(), Part::from_u32(vec![n, wq], &qweight));
    q.parts
        .insert("stats".into(), Part::from_u32(vec![n, ws], &stats));
    q.parts.insert(
        "stats2".into(),
        Part::from_f16(vec![n.div_ceil(ROW_BLOCK), groups, 4], &stats2),
    );
    if let Some(p) = &in_perm {
        let p: Vec<i32> = p.iter().map(|&c| c as i32).collect();
        q.parts
            .insert("in_perm".into(), Part::from_i32(vec![k], &p));
    }

    let outliers = import_outliers(src, prefix, n, k, in_perm.as_deref())?;
    Ok(Imported { q, outliers })
}

fn import_outliers(
    src: &dyn TensorSource,
    prefix: &str,
    n: usize,
    k: usize,
    in_perm: Option<&[u32]>,
) -> Result<Option<Csr>, ImportError> {
    let ro_name = format!("{prefix}.row_offsets");
    let cv_name = format!("{prefix}.col_vals");
    let ro_t = get(src, &ro_name)?;
    let cv_t = get(src, &cv_name)?;
    let ro_t = ro_t.expect_dtype(&[RawDtype::I32])?;
    let ro = ro_t.ints()?;
    let blocks = n.div_ceil(TILE);
    let ptcsr = if ro.len() == n + 1 {
        false
    } else if ro.len() == blocks + 1 && ro_t.t.shape.len() == 1 {
        true
    } else {
        return Err(ro_t.bad(format!(
            "expected [{}] (CSR) or [{}] (PTCSR) offsets for {n} rows, found shape {:?}",
            n + 1,
            blocks + 1,
            ro_t.t.shape
        )));
    };
    // An empty col_vals is written as `torch.zeros(0)` (f32) by the reference.
    let words: Vec<u32> = if cv_t.numel() == 0 {
        Vec::new()
    } else {
        let cv_t = cv_t.expect_dtype(&[RawDtype::I32])?;
        if cv_t.t.shape.len() != 1 {
            return Err(cv_t.bad(format!("expected a 1-D tensor, found {:?}", cv_t.t.shape)));
        }
        cv_t.words32()
    };
    let nnz = words.len();
    if ro[0] != 0 || ro.last().copied() != Some(nnz as i64) {
        return Err(ro_t.bad(format!(
            "must run from 0 to nnz = {nnz} (the length of `{cv_name}`), runs {}..{}",
            ro[0],
            ro.last().copied().unwrap_or(0)
        )));
    }
    let mut per_row: Vec<Vec<(u32, f32)>> = vec![Vec::new(); n];
    for r in 0..ro.len() - 1 {
        let (a, b) = (ro[r], ro[r + 1]);
        if a < 0 || a > b || b as usize > nnz {
            return Err(ro_t.bad(format!(
                "entries {r}..{} are {a}..{b}, not increasing within 0..{nnz}",
                r + 1
            )));
        }
        let (a, b) = (a as usize, b as usize);
        for (j, &word) in words[a..b].iter().enumerate().map(|(t, w)| (a + t, w)) {
            let (c, v) = (word & 0xFFFF, f16::from_bits((word >> 16) as u16));
            if v.to_f32() == 0.0 {
                continue; // PTCSR padding (or a stored zero): adds nothing
            }
            let row = if ptcsr { r * TILE + j % TILE } else { r };
            if row >= n || c as usize >= k {
                return Err(ImportError::BadTensor {
                    file: src.file_of(&cv_name),
                    tensor: cv_name.clone(),
                    reason: format!("entry {j} at ({row}, {c}) is outside the [{n}, {k}] weight"),
                });
            }
            if !v.is_finite() {
                return Err(ImportError::BadTensor {
                    file: src.file_of(&cv_name),
                    tensor: cv_name.clone(),
                    reason: format!("entry {j} has the non-finite value {v}"),
                });
            }
            // stored column → original column (the Csr adds to W_orig)
            let c = in_perm.map_or(c, |p| p[c as usize]);
            per_row[row].push((c, v.to_f32()));
        }
    }
    let mut row_ptr = vec![0u32];
    let (mut col, mut val) = (Vec::new(), Vec::new());
    for ent in &mut per_row {
        ent.sort_by_key(|e| e.0);
        let start = col.len();
        for &(c, v) in ent.iter() {
            if col.len() > start && col.last() == Some(&c) {
                if let Some(last) = val.last_mut() {
                    *last += v;
                }
            } else {
                col.push(c);
                val.push(v);
            }
        }
        row_ptr.push(col.len() as u32);
    }
    if col.is_empty() {
        return Ok(None);
    }
    let csr = Csr {
        n,
        k,
        row_ptr,
        col,
        val,
    };
    csr.validate_named(&format!("{prefix}.outliers"))
        .map_err(in_module(prefix))?;
    Ok(Some(csr))
}

fn import_perm(
    src: &dyn TensorSource,
    prefix: &str,
    k: usize,
) -> Result<Option<Vec<u32>>, ImportError> {
    let name = format!("{prefix}.in_perm");
    let Some(t) = get_opt(src, &name) else {
        return Ok(None);
    };
    if t.numel() == 0 {
        return Ok(None);
    }
    let t = t.expect(&[RawDtype::I32], &[k / 2])?;
    let perm: Vec<u32> = t
        .words32()
        .into_iter()
        .flat_map(|w| [w & 0xFFFF, w >> 16])
        .collect();
    let mut seen = vec![false; k];
    for (i, &p) in perm.iter().enumerate() {
        match seen.get_mut(p as usize) {
            Some(s) if !*s => *s = true,
            _ => {
                return Err(t.bad(format!(
                    "is not a permutation of 0..{k}: entry {i} is {p} (out of range or repeated)"
                )))
            }
        }
    }
    Ok(Some(perm))
}
