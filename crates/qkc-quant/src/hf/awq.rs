//! AWQ checkpoints (AutoAWQ `awq/modules/linear/{gemm,gemv}.py`, `awq/utils/packing_utils.py`;
//! llm-awq is the same; FORMATS.md §2) onto qkc's uniform int4 ([`crate::uniform`]).
//!
//! - **GEMM** (`version: "gemm"`, the default): `{prefix}.qweight` int32 `[K, N/8]` packed along
//!   **N**: nibble `p` (bits `4p..4p+3`) of word `(j, c)` holds column `8c + AWQ_ORDER[p]`,
//!   `AWQ_ORDER = [0, 2, 4, 6, 1, 3, 5, 7]`; `{prefix}.qzeros` int32 `[groups, N/8]` in the same
//!   order; `{prefix}.scales` f16 `[groups, N]`.
//! - **GEMV** (`version: "gemv"`): `qweight` int32 `[N, K/8]` packed along K in natural order
//!   (nibble `p` of word `(i, c)` is column `8c + p`); `qzeros` int32 `[N, W]` packed along the
//!   groups in natural order and `scales` f16 `[N, 8·W]`, with `W = calculate_zeros_width(K,
//!   group)` ≥ `ceil(groups/8)` (padded; the padding is ignored).
//!
//! Dequant (`dequantize_gemm`): `W[i, j] = scales[j/g, i] · (q[j, i] − z[j/g, i])`, no `+1`, `z` an
//! integer in [0, 15]. The mapping is the same as GPTQ's ([`super::gptq`]): codes transposed into
//! qkc rows along K (natural order), scales transposed keeping their f16 bits, integer zeros
//! (asymmetric; symmetric only if every zero is 8, so the same weights stored as AWQ and as GPTQ
//! import to identical tensors). Bit-exact in f32 for the same reason as GPTQ.

use half::f16;

use super::common::{get, ImportError};
use super::gptq::{build_uniform, expect, f16_exact, groups_of};
use super::{Imported, RawDtype, TensorSource};

/// AutoAWQ's packing order inside a 32-bit word: nibble `p` holds element `AWQ_ORDER[p]`.
pub const AWQ_ORDER: [usize; 8] = [0, 2, 4, 6, 1, 3, 5, 7];

/// Which AutoAWQ kernel layout the checkpoint was packed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AwqVersion {
    /// `gemm` (packed along N, interleaved order).
    #[default]
    Gemm,
    /// `gemv` (packed along K, natural order, padded zeros/scales).
    Gemv,
}

/// The AWQ parameters of a `quantization_config`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AwqParams {
    /// `bits` (`w_bit`): only 4 is packed by AutoAWQ.
    pub bits: u8,
    /// `group_size` (`q_group_size`); `None` for `-1`.
    pub group_size: Option<u32>,
    /// `zero_point`: AutoAWQ's packed layers always carry `qzeros`.
    pub zero_point: bool,
    /// `version`.
    pub version: AwqVersion,
}

impl Default for AwqParams {
    fn default() -> Self {
        AwqParams {
            bits: 4,
            group_size: Some(128),
            zero_point: true,
            version: AwqVersion::Gemm,
        }
    }
}

/// Import the AWQ linear `prefix` (`[n, k]`, HF orientation).
pub fn import(
    src: &dyn TensorSource,
    prefix: &str,
    n: usize,
    k: usize,
    p: &AwqParams,
) -> Result<Imported, ImportError> {
    let qw_name = format!("{prefix}.qweight");
    let qweight = get(src, &qw_name)?;
    if p.bits != 4 {
        return Err(ImportError::Unsupported(format!(
            "{}: tensor `{qw_name}`: AWQ {}-bit is not supported (AutoAWQ packs 4-bit only)",
            src.file_of(&qw_name),
            p.bits
        )));
    }
    let what = format!("AWQ layer `{prefix}`");
    let (group, g, groups) = groups_of(p.group_size, k, &what)?;
    let zn = format!("{prefix}.qzeros");
    let sn = format!("{prefix}.scales");
    let qzeros = get(src, &zn).map_err(|e| match e {
        ImportError::Missing { file, tensor } if !p.zero_point => ImportError::Unsupported(
            format!("{file}: tensor `{tensor}` is missing: AWQ without zero points (zero_point: false) is not supported"),
        ),
        e => e,
    })?;
    let ints = [RawDtype::I32, RawDtype::U32];
    let floats = [RawDtype::F16, RawDtype::BF16, RawDtype::F32];
    let mut codes = vec![0u8; n * k];
    let mut zeros = vec![0u32; n * groups];
    let mut scales = vec![f16::ZERO; n * groups];
    match p.version {
        AwqVersion::Gemm => {
            if n % 8 != 0 {
                return Err(ImportError::BadParams(format!(
                    "{what}: N = {n} is not a multiple of 8 (AWQ GEMM packs 8 columns per word)"
                )));
            }
            let nw = n / 8;
            let qweight = expect(
                qweight,
                &ints,
                &[k, nw],
                &format!("[K, N/8] for K = {k}, N = {n} (AWQ GEMM)"),
            )?;
            let qzeros = expect(
                qzeros,
                &ints,
                &[groups, nw],
                &format!("[groups, N/8] for K = {k}, group {g}, N = {n}"),
            )?;
            let st = expect(
                get(src, &sn)?,
                &floats,
                &[groups, n],
                &format!("[groups, N] for K = {k}, group {g}, N = {n}"),
            )?;
            let sv = f16_exact(&st)?;
            let qw = qweight.words32();
            for j in 0..k {
                for c in 0..nw {
                    let w = qw[j * nw + c];
                    for (pp, &o) in AWQ_ORDER.iter().enumerate() {
                        codes[(8 * c + o) * k + j] = ((w >> (4 * pp)) & 15) as u8;
                    }
                }
            }
            let qz = qzeros.words32();
            for gi in 0..groups {
                for c in 0..nw {
                    let w = qz[gi * nw + c];
                    for (pp, &o) in AWQ_ORDER.iter().enumerate() {
                        zeros[(8 * c + o) * groups + gi] = (w >> (4 * pp)) & 15;
                    }
                }
                for i in 0..n {
                    scales[i * groups + gi] = sv[gi * n + i];
                }
            }
        }
        AwqVersion::Gemv => {
            if k % 8 != 0 {
                return Err(ImportError::BadParams(format!(
                    "{what}: K = {k} is not a multiple of 8 (AWQ GEMV packs 8 inputs per word)"
                )));
            }
            let kw = k / 8;
            let qweight = expect(
                qweight,
                &ints,
                &[n, kw],
                &format!("[N, K/8] for K = {k}, N = {n} (AWQ GEMV)"),
            )?
            .words32();
            let qzeros = qzeros.expect_dtype(&ints)?;
            let need = groups.div_ceil(8);
            let zw = match qzeros.t.shape {
                [r, w] if *r == n && *w >= need => *w,
                _ => {
                    return Err(super::gptq::shape_mismatch(
                        &qzeros,
                        &[n, need],
                        &format!(
                            "[N, ≥ ceil(groups/8)] for K = {k}, group {g}, N = {n} (AWQ GEMV)"
                        ),
                    ))
                }
            };
            let st = get(src, &sn)?.expect_dtype(&floats)?;
            let sw = match st.t.shape {
                [r, w] if *r == n && *w >= groups => *w,
                _ => {
                    return Err(super::gptq::shape_mismatch(
                        &st,
                        &[n, zw * 8],
                        &format!("[N, ≥ groups] for K = {k}, group {g}, N = {n} (AWQ GEMV)"),
                    ))
                }
            };
            let sv = f16_exact(&st)?;
            let qz = qzeros.words32();
            for i in 0..n {
                for c in 0..kw {
                    let w = qweight[i * kw + c];
                    for pp in 0..8 {
                        codes[i * k + 8 * c + pp] = ((w >> (4 * pp)) & 15) as u8;
                    }
                }
                for gi in 0..groups {
                    zeros[i * groups + gi] = (qz[i * zw + gi / 8] >> (4 * (gi % 8))) & 15;
                    scales[i * groups + gi] = sv[i * sw + gi];
                }
            }
        }
    }
    let q = build_uniform(4, group, n, k, &codes, &scales, &zeros, None);
    Ok(Imported { q, outliers: None })
}
