//! bitsandbytes 4-bit checkpoints (NF4/FP4, optional double quant; bitsandbytes `functional.py`
//! `QuantState.as_dict(packed=True)`, `dequantize_4bit`; FORMATS.md §7) onto qkc's
//! `nf4:bB[:dq]` / `fp4:bB[:dq]` ([`crate::fixed`]).
//!
//! Stored per linear layer (HF `Linear4bit` state dict):
//! - `{prefix}.weight`: U8 `[ceil(N·K/2), 1]`: W flattened row-major, element 2i in the **high**
//!   nibble of byte i, 2i+1 in the low nibble. Copied byte for byte to qkc's `qweight`.
//! - `{prefix}.weight.quant_state.bitsandbytes__{nf4|fp4}`: U8 tensor holding JSON text with
//!   `quant_type`, `blocksize`, `dtype`, `shape` and, with double quant, `nested_blocksize`,
//!   `nested_dtype`, `nested_offset`.
//! - `{prefix}.weight.quant_map`: F32 `[16]`, the 4-bit code. It must equal qkc's table
//!   ([`crate::fixed::NF4`], [`crate::fixed::fp4_table`]) value for value (±0 compare equal),
//!   else the import fails: a custom code has no qkc scheme.
//! - without double quant: `{prefix}.weight.absmax` F32 `[blocks]` → qkc `absmax`.
//! - with double quant: `{prefix}.weight.absmax` U8 `[blocks]`, `{prefix}.weight.nested_absmax`
//!   F32 `[ceil(blocks/nested_blocksize)]`, `{prefix}.weight.nested_quant_map` F32 `[256]`.
//!   When `nested_blocksize` is 256 and the nested map equals qkc's [`crate::fixed::dynamic_map`],
//!   they map onto qkc's `:dq` parts (`absmax_q`, `nested_absmax`, `nested_offset`); otherwise
//!   the absmax values are decoded here exactly as bitsandbytes does
//!   (`fl(fl(nested_map[c] · nested_absmax[b / nested_blocksize]) + nested_offset)` in f32) and
//!   stored as the plain F32 `absmax` (scheme without `:dq`), which is equally exact.
//!
//! Result: `q.dequant()` is `W_flat[j] = code[q_j] · absmax[j / blocksize]` in f32, exactly
//! bitsandbytes' formula before its final cast to `dtype` (fp16/bf16).

use serde_json::Value;

use super::common::{get, get_opt, ImportError, Named};
use super::{Imported, RawDtype, TensorSource};
use crate::fixed::{self, NESTED_BLOCK};
use crate::scheme::{FixedLut, FixedTable};
use crate::tensor::{Part, QuantTensor};
use crate::Scheme;

/// What the caller knows from `quantization_config` (optional cross-checks).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Params {
    /// `bnb_4bit_quant_type`, if the config names it: must match the stored quant state.
    pub quant_type: Option<FixedTable>,
}

/// The decoded `quant_state` JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantStateJson {
    /// NF4 or FP4.
    pub table: FixedTable,
    /// Absmax block size.
    pub blocksize: usize,
    /// Original shape (`[N, K]` for a linear).
    pub shape: Vec<usize>,
    /// Original dtype name (`float16`, `bfloat16`, ...).
    pub dtype: String,
    /// `(nested_blocksize, nested_offset)` with double quant.
    pub nested: Option<(usize, f32)>,
}

fn parse_state(t: &Named<'_>) -> Result<QuantStateJson, ImportError> {
    let text = std::str::from_utf8(t.t.data)
        .map_err(|e| t.bad(format!("quant state is not UTF-8 JSON text: {e}")))?;
    let v: Value = serde_json::from_str(text)
        .map_err(|e| t.bad(format!("quant state is not valid JSON: {e}")))?;
    let field = |key: &str| {
        v.get(key)
            .ok_or_else(|| t.bad(format!("quant state JSON has no `{key}`")))
    };
    let uint = |key: &str| -> Result<usize, ImportError> {
        field(key)?
            .as_u64()
            .map(|x| x as usize)
            .filter(|&x| x > 0)
            .ok_or_else(|| t.bad(format!("quant state `{key}` is not a positive integer")))
    };
    let table = match field("quant_type")?.as_str() {
        Some("nf4") => FixedTable::Nf4,
        Some("fp4") => FixedTable::Fp4,
        other => {
            return Err(t.bad(format!(
                "quant state `quant_type` is {other:?}, expected \"nf4\" or \"fp4\""
            )))
        }
    };
    let shape = field("shape")?
        .as_array()
        .and_then(|a| {
            a.iter()
                .map(|x| x.as_u64().map(|x| x as usize))
                .collect::<Option<Vec<_>>>()
        })
        .ok_or_else(|| t.bad("quant state `shape` is not a list of integers"))?;
    let dtype = v
        .get("dtype")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let nested = if v.get("nested_blocksize").is_some() {
        let off = field("nested_offset")?
            .as_f64()
            .ok_or_else(|| t.bad("quant state `nested_offset` is not a number"))?;
        Some((uint("nested_blocksize")?, off as f32))
    } else {
        None
    };
    Ok(QuantStateJson {
        table,
        blocksize: uint("blocksize")?,
        shape,
        dtype,
        nested,
    })
}

/// Import the bitsandbytes 4-bit linear `prefix` (`[n, k]`, HF orientation).
pub fn import(
    src: &dyn TensorSource,
    prefix: &str,
    n: usize,
    k: usize,
    p: Params,
) -> Result<Imported, ImportError> {
    let names = [
        format!("{prefix}.weight.quant_state.bitsandbytes__nf4"),
        format!("{prefix}.weight.quant_state.bitsandbytes__fp4"),
    ];
    let state_t = match names.iter().find_map(|nm| get_opt(src, nm)) {
        Some(t) => t,
        None => get(src, &names[0])?,
    }
    .expect_dtype(&[RawDtype::U8, RawDtype::I8])?;
    let st = parse_state(&state_t)?;
    let suffix_nf4 = state_t.name.ends_with("__nf4");
    if suffix_nf4 != (st.table == FixedTable::Nf4) {
        return Err(state_t.bad(format!(
            "the key names one 4-bit type and the JSON `quant_type` the other ({:?})",
            st.table
        )));
    }
    if let Some(want) = p.quant_type {
        if want != st.table {
            return Err(state_t.bad(format!("stores {:?}, the config says {want:?}", st.table)));
        }
    }
    if st.shape.iter().product::<usize>() != n * k || st.shape.first() != Some(&n) {
        return Err(state_t.bad(format!(
            "quant state shape {:?} does not match the [{n}, {k}] linear",
            st.shape
        )));
    }
    let total = n * k;
    let block = st.blocksize;
    let blocks = total.div_ceil(block);

    let w_name = format!("{prefix}.weight");
    let w = get(src, &w_name)?.expect_dtype(&[RawDtype::U8, RawDtype::I8])?;
    let bytes = total.div_ceil(2);
    if w.t.shape != [bytes, 1] && w.t.shape != [bytes] {
        return Err(w.bad(format!(
            "expected packed shape [{bytes}, 1] (4-bit [{n}, {k}]), found {:?}",
            w.t.shape
        )));
    }

    let qm_name = format!("{prefix}.weight.quant_map");
    let qm = get(src, &qm_name)?.expect(&[RawDtype::F32, RawDtype::F16, RawDtype::BF16], &[16])?;
    let table = fixed::table(st.table);
    let stored_map = qm.floats()?;
    if let Some(i) = (0..16).find(|&i| stored_map[i] != table[i]) {
        return Err(qm.bad(format!(
            "entry {i} is {} but qkc's {:?} table has {}: a custom 4-bit code has no qkc scheme",
            stored_map[i], st.table, table[i]
        )));
    }

    let am_name = format!("{prefix}.weight.absmax");
    let mut q_parts: Vec<(&str, Part)> = Vec::new();
    let double_quant = match st.nested {
        None => {
            let am = get(src, &am_name)?.expect(&[RawDtype::F32], &[blocks])?;
            q_parts.push(("absmax", Part::from_f32(vec![blocks], &am.floats()?)));
            false
        }
        Some((nbs, offset)) => {
            let am = get(src, &am_name)?.expect(&[RawDtype::U8], &[blocks])?;
            let nb = blocks.div_ceil(nbs);
            let na_name = format!("{prefix}.weight.nested_absmax");
            let na = get(src, &na_name)?
                .expect(&[RawDtype::F32], &[nb])?
                .floats()?;
            let nm_name = format!("{prefix}.weight.nested_quant_map");
            let nm_t = get(src, &nm_name)?.expect(&[RawDtype::F32], &[256])?;
            let nm = nm_t.floats()?;
            let dm = fixed::dynamic_map();
            if nbs == NESTED_BLOCK && nm.iter().zip(&dm).all(|(a, b)| a == b) {
                q_parts.push(("absmax_q", Part::from_u8(vec![blocks], am.t.data)));
                q_parts.push(("nested_absmax", Part::from_f32(vec![nb], &na)));
                q_parts.push(("nested_offset", Part::from_f32(vec![1], &[offset])));
                true
            } else {
                // Decode as bitsandbytes does: dequantize_blockwise, then += offset, in f32.
                let absmax: Vec<f32> =
                    am.t.data
                        .iter()
                        .enumerate()
                        .map(|(b, &c)| nm[c as usize] * na[b / nbs] + offset)
                        .collect();
                if let Some(b) = absmax.iter().position(|v| !v.is_finite()) {
                    return Err(am.bad(format!("block {b} decodes to a non-finite absmax")));
                }
                q_parts.push(("absmax", Part::from_f32(vec![blocks], &absmax)));
                false
            }
        }
    };
    let block_u32 =
        u32::try_from(block).map_err(|_| state_t.bad(format!("blocksize {block} is too large")))?;
    let scheme = Scheme::Fixed(FixedLut {
        table: st.table,
        block: block_u32,
        double_quant,
    });
    let mut q = QuantTensor::new(scheme, n, k);
    q.parts
        .insert("qweight".into(), Part::from_u8(vec![bytes], w.t.data));
    for (name, part) in q_parts {
        q.parts.insert(name.into(), part);
    }
    Ok(Imported { q, outliers: None })
}
