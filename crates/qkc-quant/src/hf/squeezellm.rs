//! SqueezeLLM checkpoints (SqueezeAILab/SqueezeLLM `squeezellm/quant.py` `QuantLinearLUT`,
//! `quant_cuda_kernel.cu`, `quantization/pack.py`; FORMATS.md §3) onto qkc's `lut3` / `lut4`
//! ([`crate::lut`]) plus a [`Csr`] of outliers.
//!
//! SqueezeLLM ships `torch.save(state_dict)` `.pt` files (read them with
//! [`super::pt::PtFile`]) or, converted, safetensors. Per linear layer:
//! - `{prefix}.qweight` I32 `[ceil(K·bits/32), N]`: column n is a little-endian bit stream of
//!   the K codes along K (GPTQ's layout, 3-bit codes straddling words). qkc's `qweight`
//!   `[N, ceil(K·bits/32)]` is the same stream per row, so the map is a transpose of the words.
//! - `{prefix}.lookup_table` F32 `[N, 2^bits]` (F16 in vLLM's conversion): `W[n, k] =
//!   lookup_table[n, q[k, n]]`. Kept in its dtype as qkc's `lut` (BF16 is widened to F32,
//!   exactly).
//! - optional `{prefix}.rows` I32 `[N+1]`, `{prefix}.cols` I32 `[nnz]`, `{prefix}.vals` F32
//!   `[nnz]`: CSR of `[N, K]` (row = output channel). The stored value is `outlier − c0` with
//!   c0 the row's centroid nearest 0, which is what the dense code at that position decodes to;
//!   SqueezeLLM's kernel *adds* it (`y[row] += vals·x[cols]`). qkc's outliers are additive too
//!   (`y = (dequant(Wq) + S)·x`), so the values are imported **as stored**:
//!   `dequant(q) + S = lookup_table[n, q] + vals` is SqueezeLLM's weight exactly. (Adding c0
//!   would count it twice.) Columns are sorted within each row and duplicates summed, if a file
//!   has them; the result is validated.
//! - `sparse_threshold.*` entries are ignored. The hybrid `full_rows` / `full_row_indices` form
//!   is rejected as unsupported.

use half::f16;

use super::common::{get, in_module, ImportError};
use super::{Imported, RawDtype, TensorSource};
use crate::pack::words_per_row;
use crate::tensor::{Part, QuantTensor};
use crate::{Csr, Scheme};

/// `quant_config.json`'s `wbits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    /// 3 or 4.
    pub bits: u8,
}

/// Import the SqueezeLLM linear `prefix` (`[n, k]`, HF orientation).
pub fn import(
    src: &dyn TensorSource,
    prefix: &str,
    n: usize,
    k: usize,
    p: Params,
) -> Result<Imported, ImportError> {
    let bits = p.bits;
    if !matches!(bits, 3 | 4) {
        return Err(ImportError::BadParams(format!(
            "SqueezeLLM layer `{prefix}`: wbits = {bits}, SqueezeLLM has 3- and 4-bit kernels only"
        )));
    }
    if n == 0 || k == 0 {
        return Err(ImportError::BadParams(format!(
            "SqueezeLLM layer `{prefix}`: empty shape [{n}, {k}]"
        )));
    }
    let m = 1usize << bits;
    let wpr = words_per_row(k, bits);

    let qw_name = format!("{prefix}.qweight");
    let qw = get(src, &qw_name)?.expect(&[RawDtype::I32, RawDtype::U32], &[wpr, n])?;
    let words = qw.words32();
    let mut qweight = vec![0u32; n * wpr];
    for w in 0..wpr {
        for (i, &v) in words[w * n..(w + 1) * n].iter().enumerate() {
            qweight[i * wpr + w] = v;
        }
    }

    let lut_name = format!("{prefix}.lookup_table");
    let lut =
        get(src, &lut_name)?.expect(&[RawDtype::F32, RawDtype::F16, RawDtype::BF16], &[n, m])?;
    let lut_part = match lut.t.dtype {
        RawDtype::F16 => Part {
            dtype: crate::PartDtype::F16,
            shape: vec![n, m],
            bytes: lut.t.data.to_vec(),
        },
        _ => Part::from_f32(vec![n, m], &lut.floats()?),
    };
    if let Some(i) = lut.floats()?.iter().position(|v| !v.is_finite()) {
        return Err(lut.bad(format!("entry [{}, {}] is not finite", i / m, i % m)));
    }

    for extra in ["full_rows", "full_row_indices"] {
        let name = format!("{prefix}.{extra}");
        if src.get(&name).is_some() {
            return Err(ImportError::Unsupported(format!(
                "{}: `{name}`: SqueezeLLM's hybrid dense-row form is not imported",
                src.file_of(&name)
            )));
        }
    }

    let outliers = import_outliers(src, prefix, n, k)?;

    let mut q = QuantTensor::new(Scheme::Lut { bits }, n, k);
    q.parts
        .insert("qweight".into(), Part::from_u32(vec![n, wpr], &qweight));
    q.parts.insert("lut".into(), lut_part);
    Ok(Imported { q, outliers })
}

fn import_outliers(
    src: &dyn TensorSource,
    prefix: &str,
    n: usize,
    k: usize,
) -> Result<Option<Csr>, ImportError> {
    let names = ["rows", "cols", "vals"].map(|s| format!("{prefix}.{s}"));
    let present: Vec<bool> = names.iter().map(|nm| src.get(nm).is_some()).collect();
    if present.iter().all(|&b| !b) {
        return Ok(None);
    }
    // Some but not all: name the first missing one.
    let rows_t = get(src, &names[0])?;
    let cols_t = get(src, &names[1])?;
    let vals_t = get(src, &names[2])?;
    let rows_t = rows_t.expect(&[RawDtype::I32, RawDtype::I64], &[n + 1])?;
    let rows = rows_t.ints()?;
    let nnz = usize::try_from(rows[n]).unwrap_or(usize::MAX);
    let cols_t = cols_t.expect_dtype(&[RawDtype::I32, RawDtype::I64, RawDtype::I16])?;
    if cols_t.t.shape.len() != 1 || cols_t.numel() != nnz {
        return Err(cols_t.bad(format!(
            "expected shape [{nnz}] (rows[{n}] = nnz), found {:?}",
            cols_t.t.shape
        )));
    }
    let cols = cols_t.ints()?;
    let vals_t = vals_t.expect(&[RawDtype::F32, RawDtype::F16, RawDtype::BF16], &[nnz])?;
    let vals = vals_t.floats()?;
    if rows[0] != 0 {
        return Err(rows_t.bad(format!("must start at 0, starts at {}", rows[0])));
    }
    let mut row_ptr = Vec::with_capacity(n + 1);
    let (mut col, mut val) = (Vec::with_capacity(nnz), Vec::with_capacity(nnz));
    row_ptr.push(0u32);
    for r in 0..n {
        let (a, b) = (rows[r], rows[r + 1]);
        if a > b || b as usize > nnz {
            return Err(rows_t.bad(format!("row {r}: offsets {a}..{b} are not within 0..{nnz}")));
        }
        let mut ent: Vec<(i64, f32)> = (a as usize..b as usize)
            .map(|t| (cols[t], vals[t]))
            .collect();
        if let Some(&(c, _)) = ent.iter().find(|e| e.0 < 0 || e.0 as usize >= k) {
            return Err(cols_t.bad(format!("row {r}: column {c} is outside 0..{k}")));
        }
        if let Some(&(_, v)) = ent.iter().find(|e| !e.1.is_finite()) {
            return Err(vals_t.bad(format!("row {r}: value {v} is not finite")));
        }
        ent.sort_by_key(|e| e.0);
        for (c, v) in ent {
            if col.len() > row_ptr[r] as usize && col.last() == Some(&(c as u32)) {
                if let Some(last) = val.last_mut() {
                    *last += v;
                }
            } else {
                col.push(c as u32);
                val.push(v);
            }
        }
        row_ptr.push(col.len() as u32);
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

/// The row's centroid nearest 0 (`c0`, SqueezeLLM's `zero_mapping`) of an imported LUT tensor:
/// what the dense code at an outlier position decodes to, so `c0 + S[r, c]` is the full outlier
/// weight. Useful for inspection; the import keeps `S` as stored.
pub fn nearest_zero_centroid(q: &QuantTensor, row: usize) -> Option<f32> {
    let lut = q.parts.get("lut")?;
    let m = *lut.shape.get(1)?;
    let vals: Vec<f32> = match lut.dtype {
        crate::PartDtype::F16 => lut
            .bytes
            .get(row * m * 2..(row + 1) * m * 2)?
            .chunks_exact(2)
            .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        _ => lut
            .bytes
            .get(row * m * 4..(row + 1) * m * 4)?
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    };
    vals.into_iter().min_by(|a, b| a.abs().total_cmp(&b.abs()))
}
