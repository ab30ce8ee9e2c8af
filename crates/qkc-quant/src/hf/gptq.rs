//! GPTQ checkpoints (AutoGPTQ, GPTQModel, HF optimum; FORMATS.md §1) onto qkc's uniform int
//! ([`crate::uniform`]).
//!
//! Stored per linear layer `{prefix}.qweight` int32 `[K·bits/32, N]` (packed along **K**),
//! `{prefix}.qzeros` int32 `[groups, N·bits/32]` (packed along **N**), `{prefix}.scales` f16
//! `[groups, N]`, `{prefix}.g_idx` int32 `[K]` (optional). Every column of `qweight` (and every
//! row of `qzeros`) is one little-endian bit stream, element `e` at stream bit `e·bits`: for
//! 2/4/8 bits that is `32/bits` fields per word LSB first, for 3 bits three words carry 32
//! elements and fields straddle words (FORMATS.md's `wf` table). Widths are
//! `ceil(len·bits/32)` words (equal to `len·bits/32` whenever the reference packer accepts the
//! shape).
//!
//! Reference dequant (`qlinear_cuda_old.forward`): `W[i, j] = scales[g_idx[j], i] · (q[j, i] −
//! z[g_idx[j], i])` with `z = (stored + 1) & (2^bits − 1)` for checkpoint format v1 (`gptq`; the
//! packer stores `zero − 1`) and `z = stored` for v2 (`gptq_v2`). The field-wise `+1 & mask` is
//! what every reader does, so the v1 bug (a stored −1 ORs ones into the higher fields of its
//! word) is imported exactly as the readers see it.
//!
//! Mapping (bit-exact): codes are transposed into qkc rows (one stream along K per output row,
//! the same natural order), scales transposed to `[N, groups]` keeping their f16 bits; when every
//! zero equals `2^(bits−1)` (GPTQ's `sym=True` zero) the scheme is symmetric and no zeros are
//! stored, otherwise asymmetric with the integer zeros as f16. `g_idx` becomes qkc's act-order
//! `g_idx` part (same meaning: the group of input column `j`, columns in original order) unless
//! it equals `j / group_size` (no `desc_act`, or `static_groups`), in which case plain groups
//! are used. qkc's dequant computes `scale · (q − zero)` exactly and rounds once to f32; the
//! product has at most 11 + 9 significant bits, so it is exact in f32: the f32 reference
//! `f32(scale) · f32(q − z)` equals it bit for bit. GPTQ's torch fallback multiplies in fp16;
//! fp16 multiplication rounds the same exact product once, so `f16(qkc value)` equals that too.

use half::{bf16, f16};

use super::common::{get, get_opt, ImportError, Named};
use super::{Imported, RawDtype, TensorSource};
use crate::scheme::{Group, Packing, UniformInt};
use crate::tensor::{Part, QuantTensor};
use crate::Scheme;

/// Which zero-point convention the checkpoint uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GptqFormat {
    /// `checkpoint_format: "gptq"` (AutoGPTQ, the default): `zero − 1` is stored.
    #[default]
    V1,
    /// `checkpoint_format: "gptq_v2"` (GPTQModel): the true zero is stored.
    V2,
}

/// The GPTQ parameters of a `quantization_config` / `quantize_config.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GptqParams {
    /// `bits`: 2, 3, 4 or 8.
    pub bits: u8,
    /// `group_size`; `None` for `-1` (one group per row).
    pub group_size: Option<u32>,
    /// `desc_act` (act-order). Informational: the stored `g_idx` decides.
    pub desc_act: bool,
    /// `sym`. Informational: the stored zeros decide (sym iff all equal `2^(bits−1)`).
    pub sym: bool,
    /// `checkpoint_format` (GPTQModel: `format`).
    pub format: GptqFormat,
    /// `static_groups`. Informational: `g_idx` is then `j / group_size`.
    pub static_groups: bool,
}

impl Default for GptqParams {
    fn default() -> Self {
        GptqParams {
            bits: 4,
            group_size: Some(128),
            desc_act: false,
            sym: true,
            format: GptqFormat::V1,
            static_groups: false,
        }
    }
}

/// Bit `e·bits` of a stream of 32-bit words, `bits` wide; `word(w)` returns word `w` (0 past the
/// end).
#[inline]
pub(crate) fn stream_field(word: impl Fn(usize) -> u32, bits: u8, e: usize) -> u32 {
    let b = bits as usize;
    let p = e * b;
    let (w, o) = (p / 32, p % 32);
    let mut v = u64::from(word(w)) >> o;
    if o + b > 32 {
        v |= u64::from(word(w + 1)) << (32 - o);
    }
    (v & ((1u64 << b) - 1)) as u32
}

/// A [`ImportError::BadTensor`] for a shape that disagrees with config.json.
pub(crate) fn shape_mismatch(t: &Named<'_>, want: &[usize], why: &str) -> ImportError {
    t.bad(format!(
        "shape {:?} disagrees with config.json: expected {want:?} ({why})",
        t.t.shape
    ))
}

/// Check dtype (one of `dtypes`) and shape, with a config.json-aware message.
pub(crate) fn expect<'a>(
    t: Named<'a>,
    dtypes: &[RawDtype],
    want: &[usize],
    why: &str,
) -> Result<Named<'a>, ImportError> {
    let t = t.expect_dtype(dtypes)?;
    if t.t.shape != want {
        return Err(shape_mismatch(&t, want, why));
    }
    Ok(t)
}

/// The values of a float tensor as f16, exactly (F16 bit copy; BF16/F32 must be representable).
pub(crate) fn f16_exact(t: &Named<'_>) -> Result<Vec<f16>, ImportError> {
    let d = t.t.data;
    match t.t.dtype {
        RawDtype::F16 => Ok(d
            .chunks_exact(2)
            .map(|c| f16::from_le_bytes([c[0], c[1]]))
            .collect()),
        RawDtype::BF16 | RawDtype::F32 => {
            let v: Vec<f32> = if t.t.dtype == RawDtype::BF16 {
                d.chunks_exact(2)
                    .map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32())
                    .collect()
            } else {
                d.chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect()
            };
            v.iter()
                .enumerate()
                .map(|(i, &x)| {
                    let h = f16::from_f32(x);
                    if h.to_f32() == x || (x.is_nan() && h.is_nan()) {
                        Ok(h)
                    } else {
                        Err(t.bad(format!(
                            "unsupported: element {i} = {x:e} ({:?}) is not exactly \
                             representable as the f16 scale qkc's uniform int stores",
                            t.t.dtype
                        )))
                    }
                })
                .collect()
        }
        other => Err(t.bad(format!("expected dtype F16 (or BF16/F32), found {other:?}"))),
    }
}

/// Group length and count of a row of `k` for `group_size` (None = whole row); K must be a
/// multiple of the group (qkc's uniform int needs it).
pub(crate) fn groups_of(
    group_size: Option<u32>,
    k: usize,
    what: &str,
) -> Result<(Group, usize, usize), ImportError> {
    match group_size {
        None => Ok((Group::PerChannel, k, 1)),
        Some(0) => Err(ImportError::BadParams(format!("{what}: group_size 0"))),
        Some(g) => {
            let gl = g as usize;
            if k % gl != 0 {
                return Err(ImportError::Unsupported(format!(
                    "{what}: K = {k} is not a multiple of group_size {g} (qkc's uniform int needs whole groups)"
                )));
            }
            Ok((Group::Size(g), gl, k / gl))
        }
    }
}

/// Build the qkc uniform-int tensor from codes `[n][k]` (row-major), f16 scales `[n, groups]`,
/// integer zeros `[n, groups]` and the per-column group `gidx` (`None` = `j / g`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn build_uniform(
    bits: u8,
    group: Group,
    n: usize,
    k: usize,
    codes: &[u8],
    scales: &[f16],
    zeros: &[u32],
    gidx: Option<Vec<i32>>,
) -> QuantTensor {
    let sym = zeros.iter().all(|&z| z == 1u32 << (bits - 1));
    let u = UniformInt {
        bits,
        group,
        sym,
        act_order: gidx.is_some(),
        packing: Packing::Gptq,
        min: false,
    };
    let groups = group.count(k);
    let wpr = crate::pack::words_per_row(k, bits);
    let mut qw = vec![0u32; n * wpr];
    for (i, row) in qw.chunks_exact_mut(wpr).enumerate() {
        crate::pack::pack_row(&codes[i * k..(i + 1) * k], bits, row);
    }
    let mut q = QuantTensor::new(Scheme::Uniform(u), n, k);
    q.parts
        .insert("qweight".into(), Part::from_u32(vec![n, wpr], &qw));
    q.parts
        .insert("scales".into(), Part::from_f16(vec![n, groups], scales));
    if !sym {
        let z: Vec<f16> = zeros.iter().map(|&z| f16::from_f32(z as f32)).collect();
        q.parts
            .insert("zeros".into(), Part::from_f16(vec![n, groups], &z));
    }
    if let Some(g) = gidx {
        q.parts.insert("g_idx".into(), Part::from_i32(vec![k], &g));
    }
    q
}

/// Read an optional act-order `g_idx` (`[k]`, int32/int64): `Ok(None)` when absent or equal to
/// `j / g` (plain groups), else the validated indices.
pub(crate) fn read_g_idx(
    src: &dyn TensorSource,
    name: &str,
    k: usize,
    g: usize,
    groups: usize,
) -> Result<Option<Vec<i32>>, ImportError> {
    let Some(t) = get_opt(src, name) else {
        return Ok(None);
    };
    let t = expect(
        t,
        &[RawDtype::I32, RawDtype::I64],
        &[k],
        &format!("[K] with K = {k}"),
    )?;
    let v = t.ints()?;
    let mut out = Vec::with_capacity(k);
    for (j, &x) in v.iter().enumerate() {
        if x < 0 || x as usize >= groups {
            return Err(t.bad(format!(
                "entry {j} is {x}, outside [0, {groups}) (the number of groups)"
            )));
        }
        out.push(x as i32);
    }
    if out.iter().enumerate().all(|(j, &x)| x as usize == j / g) {
        Ok(None)
    } else {
        Ok(Some(out))
    }
}

/// Import the GPTQ linear `prefix` (`[n, k]`, HF orientation).
pub fn import(
    src: &dyn TensorSource,
    prefix: &str,
    n: usize,
    k: usize,
    p: &GptqParams,
) -> Result<Imported, ImportError> {
    let bits = p.bits;
    let qw_name = format!("{prefix}.qweight");
    let qweight = get(src, &qw_name)?;
    if !matches!(bits, 2 | 3 | 4 | 8) {
        return Err(ImportError::Unsupported(format!(
            "{}: tensor `{qw_name}`: GPTQ {bits}-bit is not supported (qkc imports 2, 3, 4 and 8 bits)",
            src.file_of(&qw_name)
        )));
    }
    let what = format!("GPTQ layer `{prefix}`");
    let (group, g, groups) = groups_of(p.group_size, k, &what)?;
    let b = bits as usize;
    let rows = (k * b).div_ceil(32);
    let qweight = expect(
        qweight,
        &[RawDtype::I32, RawDtype::U32],
        &[rows, n],
        &format!("[K·bits/32, N] for K = {k}, N = {n}, bits = {bits}"),
    )?;
    let zw = (n * b).div_ceil(32);
    let zn = format!("{prefix}.qzeros");
    let qzeros = expect(
        get(src, &zn)?,
        &[RawDtype::I32, RawDtype::U32],
        &[groups, zw],
        &format!("[groups, N·bits/32] for K = {k}, group {g}, N = {n}, bits = {bits}"),
    )?;
    let sn = format!("{prefix}.scales");
    let scales_t = expect(
        get(src, &sn)?,
        &[RawDtype::F16, RawDtype::BF16, RawDtype::F32],
        &[groups, n],
        &format!("[groups, N] for K = {k}, group {g}, N = {n}"),
    )?;
    let scales_gn = f16_exact(&scales_t)?;
    let gidx = read_g_idx(src, &format!("{prefix}.g_idx"), k, g, groups)?;

    let qw = qweight.words32();
    let mut codes = vec![0u8; n * k];
    for i in 0..n {
        let word = |w: usize| if w < rows { qw[w * n + i] } else { 0 };
        for j in 0..k {
            codes[i * k + j] = stream_field(word, bits, j) as u8;
        }
    }
    let qz = qzeros.words32();
    let mask = (1u32 << bits) - 1;
    let mut zeros = vec![0u32; n * groups];
    let mut scales = vec![f16::ZERO; n * groups];
    for gi in 0..groups {
        let row = &qz[gi * zw..(gi + 1) * zw];
        let word = |w: usize| row.get(w).copied().unwrap_or(0);
        for i in 0..n {
            let f = stream_field(word, bits, i);
            zeros[i * groups + gi] = match p.format {
                GptqFormat::V1 => (f + 1) & mask,
                GptqFormat::V2 => f,
            };
            scales[i * groups + gi] = scales_gn[gi * n + i];
        }
    }
    let q = build_uniform(bits, group, n, k, &codes, &scales, &zeros, gidx);
    Ok(Imported { q, outliers: None })
}
