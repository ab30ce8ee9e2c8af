//! compressed-tensors `pack-quantized` checkpoints (llm-compressor / vLLM;
//! `compressors/quantized_compressors/pack_quantized.py`, FORMATS.md §1 "Related format") onto
//! qkc's uniform int ([`crate::uniform`]).
//!
//! Stored per linear layer:
//! - `{prefix}.weight_packed` int32 `[N, ceil(K/pf)]`, `pf = 32 / bits` (integer division: 10
//!   for 3-bit, whose top 2 bits stay unused): value `j` of a row is in word `j / pf` at bits
//!   `bits·(j % pf)`, LSB first, stored **offset** `q + 2^(bits−1)` (the signed code plus half).
//! - `{prefix}.weight_scale` (the model dtype: f16/bf16/f32) `[N, groups]` (`channel`: `[N, 1]`,
//!   `tensor`: `[1]` or `[1, 1]`).
//! - `{prefix}.weight_zero_point` (asymmetric only): int32 `[ceil(N/pf), groups]` packed along
//!   **N** (dim 0) with the same offset, or, in older files, int8 `[N, groups]` signed.
//! - `{prefix}.weight_g_idx` int32 `[K]` (optional, `actorder: "group"`), `{prefix}.weight_shape`
//!   int `[2]` = `[N, K]`.
//!
//! Dequant (`dequantize`): `W[i, j] = (q_signed − zp_signed) · scale[i, g(j)]`. Since both codes
//! carry the same offset, `q_signed − zp_signed = field_q − field_zp`: qkc's code is the stored
//! field and qkc's zero is the stored zero field (`zp + 2^(bits−1)`; `2^(bits−1)` when
//! symmetric, which maps to qkc's symmetric scheme).
//!
//! Scales: f16 ones (and bf16/f32 ones that f16 holds exactly) keep qkc's f16 form, bit-exact
//! as for GPTQ. Other scales with at most 15 significant bits (every bf16 one) use qkc's `:min`
//! form: f32 `scales` and `mins = −scale·zero`; `scale·q` and `mins` are exact in f32 and so is
//! their sum, so `dequant` is again the exact product `scale · (q − zero)` in f32.
//! compressed-tensors itself computes in the scale dtype, i.e. rounds that exact product once to
//! bf16/f16.

use half::f16;

use super::common::{get, get_opt, ImportError};
use super::gptq::{expect, f16_exact, groups_of, read_g_idx};
use super::{Imported, RawDtype, TensorSource};
use crate::scheme::{Packing, UniformInt};
use crate::tensor::{Part, QuantTensor};
use crate::Scheme;

/// The weight quantization arguments of a compressed-tensors `config_groups` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompressedParams {
    /// `num_bits`.
    pub bits: u8,
    /// `group_size` for `strategy: "group"`; `None` for `channel` / `tensor`.
    pub group_size: Option<u32>,
    /// `symmetric`: no `weight_zero_point` stored.
    pub symmetric: bool,
    /// The `format` (only `pack-quantized` is imported).
    pub format: String,
}

impl Default for CompressedParams {
    fn default() -> Self {
        CompressedParams {
            bits: 4,
            group_size: Some(128),
            symmetric: true,
            format: "pack-quantized".into(),
        }
    }
}

/// Import the compressed-tensors linear `prefix` (`[n, k]`, HF orientation).
pub fn import(
    src: &dyn TensorSource,
    prefix: &str,
    n: usize,
    k: usize,
    p: &CompressedParams,
) -> Result<Imported, ImportError> {
    let wp_name = format!("{prefix}.weight_packed");
    let wp = get(src, &wp_name)?;
    if p.format != "pack-quantized" {
        return Err(ImportError::Unsupported(format!(
            "{}: tensor `{wp_name}`: compressed-tensors format `{}` is not supported (qkc imports `pack-quantized`)",
            src.file_of(&wp_name),
            p.format
        )));
    }
    let bits = p.bits;
    if !matches!(bits, 2 | 3 | 4 | 8) {
        return Err(ImportError::Unsupported(format!(
            "{}: tensor `{wp_name}`: {bits}-bit compressed-tensors weights are not supported (qkc imports 2, 3, 4 and 8 bits)",
            src.file_of(&wp_name)
        )));
    }
    let what = format!("compressed-tensors layer `{prefix}`");
    let (group, g, groups) = groups_of(p.group_size, k, &what)?;
    let pf = 32 / bits as usize;
    let kw = k.div_ceil(pf);
    let ints = [RawDtype::I32, RawDtype::U32];
    let wp = expect(
        wp,
        &ints,
        &[n, kw],
        &format!("[N, ceil(K/{pf})] for K = {k}, N = {n}, bits = {bits}"),
    )?;
    if let Some(ws) = get_opt(src, &format!("{prefix}.weight_shape")) {
        let ws = ws.expect_dtype(&[RawDtype::I32, RawDtype::I64])?;
        let v = ws.ints()?;
        if v != [n as i64, k as i64] {
            return Err(ws.bad(format!(
                "holds {v:?}, which disagrees with config.json's [N, K] = [{n}, {k}]"
            )));
        }
    }
    let mask = (1u32 << bits) - 1;
    let words = wp.words32();
    let mut codes = vec![0u8; n * k];
    for i in 0..n {
        for j in 0..k {
            let w = words[i * kw + j / pf];
            codes[i * k + j] = ((w >> (bits as usize * (j % pf))) & mask) as u8;
        }
    }

    // scales [n, groups] as f32 values (tensor-wise scales are broadcast)
    let sn = format!("{prefix}.weight_scale");
    let st = get(src, &sn)?.expect_dtype(&[RawDtype::F16, RawDtype::BF16, RawDtype::F32])?;
    let per_tensor = st.numel() == 1 && groups == 1;
    if !per_tensor && st.t.shape != [n, groups] {
        return Err(super::gptq::shape_mismatch(
            &st,
            &[n, groups],
            &format!("[N, groups] for K = {k}, group {g}, N = {n}"),
        ));
    }
    let sv = st.floats()?;
    let sv: Vec<f32> = if per_tensor { vec![sv[0]; n] } else { sv };

    // zeros [n, groups] in stored-field units
    let half = 1u32 << (bits - 1);
    let zn = format!("{prefix}.weight_zero_point");
    let zeros: Vec<u32> = match get_opt(src, &zn) {
        None if p.symmetric => vec![half; n * groups],
        None => {
            return Err(ImportError::Missing {
                file: src.file_of(&zn),
                tensor: zn,
            })
        }
        Some(zt) => {
            let zt = zt.expect_dtype(&[RawDtype::I8, RawDtype::I32, RawDtype::U32])?;
            let nw = n.div_ceil(pf);
            match (zt.t.dtype, zt.t.shape) {
                (RawDtype::I8, [r, c]) if *r == n && *c == groups => zt
                    .ints()?
                    .iter()
                    .map(|&z| (z + i64::from(half)) as u32 & mask)
                    .collect(),
                (RawDtype::I32 | RawDtype::U32, [r, c]) if *r == nw && *c == groups => {
                    let zw = zt.words32();
                    let mut z = vec![0u32; n * groups];
                    for i in 0..n {
                        for gi in 0..groups {
                            z[i * groups + gi] =
                                (zw[(i / pf) * groups + gi] >> (bits as usize * (i % pf))) & mask;
                        }
                    }
                    z
                }
                _ => {
                    return Err(super::gptq::shape_mismatch(
                        &zt,
                        &[nw, groups],
                        &format!(
                            "int32 [ceil(N/{pf}), groups] packed along N, or int8 [N, groups], for K = {k}, group {g}, N = {n}"
                        ),
                    ))
                }
            }
        }
    };
    let gidx = read_g_idx(src, &format!("{prefix}.weight_g_idx"), k, g, groups)?;

    // f16 form when the scales fit f16 exactly
    if let Ok(s16) = f16_exact(&st) {
        let s16: Vec<f16> = if per_tensor { vec![s16[0]; n] } else { s16 };
        let q = super::gptq::build_uniform(bits, group, n, k, &codes, &s16, &zeros, gidx);
        return Ok(Imported { q, outliers: None });
    }
    // `:min` form: exact when every scale has at most 15 significant bits
    if let Some((idx, s)) = sv
        .iter()
        .enumerate()
        .find(|(_, s)| !s.is_finite() || s.to_bits() & 0x1ff != 0)
    {
        return Err(st.bad(format!(
            "unsupported: scale {idx} = {s:e} has more significant bits than qkc's exact f32 \
             dequant of `scale·(q − zero)` can carry (at most 15; f16 and bf16 scales are fine)"
        )));
    }
    let mins: Vec<f32> = sv
        .iter()
        .zip(&zeros)
        .map(|(&s, &z)| -(s * z as f32))
        .collect();
    let u = UniformInt {
        bits,
        group,
        sym: false,
        act_order: gidx.is_some(),
        packing: Packing::Gptq,
        min: true,
    };
    let wpr = crate::pack::words_per_row(k, bits);
    let mut qw = vec![0u32; n * wpr];
    for (i, row) in qw.chunks_exact_mut(wpr).enumerate() {
        crate::pack::pack_row(&codes[i * k..(i + 1) * k], bits, row);
    }
    let mut q = QuantTensor::new(Scheme::Uniform(u), n, k);
    q.parts
        .insert("qweight".into(), Part::from_u32(vec![n, wpr], &qw));
    q.parts
        .insert("scales".into(), Part::from_f32(vec![n, groups], &sv));
    q.parts
        .insert("mins".into(), Part::from_f32(vec![n, groups], &mins));
    if let Some(gi) = gidx {
        q.parts.insert("g_idx".into(), Part::from_i32(vec![k], &gi));
    }
    Ok(Imported { q, outliers: None })
}
