//! AQLM checkpoints (Vahe1994/AQLM `inference_lib/src/aqlm/inference.py`, `utils.py`;
//! FORMATS.md §6) onto qkc's `aqlm:CxB[:gI][:oO]` ([`crate::aqlm`]), whose parts are AQLM's
//! own tensors.
//!
//! Per linear layer `{prefix}.codes` `[N/og, K/ig, C]` (int8 when nbits ≤ 8, int16 when ≤ 16,
//! **stored signed**: the code is `stored mod 2^nbits`, AQLM's `unpack_int_data`),
//! `{prefix}.codebooks` F16 `[C, 2^nbits, og, ig]`, `{prefix}.scales` F16 `[N/og, 1, 1, 1]`.
//! `W[o·og + a, i·ig + b] = scales[o] · Σ_c codebooks[c, codes[o, i, c], a, b]`.
//!
//! The mapping is a copy: codes keep their bit patterns (reduced mod 2^nbits first when a
//! checkpoint stores them wider than AQLM's `get_int_dtype`, e.g. int32/int64), codebooks and
//! scales keep their f16 bits. So `dequant` is AQLM's formula exactly (qkc sums the C entries in
//! f64 and rounds once to f32; AQLM sums in fp16 on the GPU, so AQLM's own output carries fp16
//! rounding that qkc's reference does not).

use super::common::{get, ImportError};
use super::{Imported, RawDtype, TensorSource};
use crate::scheme::Codebook;
use crate::tensor::{Part, QuantTensor};
use crate::Scheme;

/// The AQLM parameters of HF's `quantization_config`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    /// `num_codebooks` (C).
    pub num_codebooks: u8,
    /// `nbits_per_codebook` (1 to 16).
    pub nbits_per_codebook: u8,
    /// `in_group_size` (ig, 8 in the released models).
    pub in_group_size: u32,
    /// `out_group_size` (og, 1 in the released models).
    pub out_group_size: u32,
}

impl Params {
    /// AQLM 1x16 (C=1, 16 bits, ig=8, og=1).
    pub const AQLM_1X16: Params = Params {
        num_codebooks: 1,
        nbits_per_codebook: 16,
        in_group_size: 8,
        out_group_size: 1,
    };
    /// AQLM 2x8 (C=2, 8 bits, ig=8, og=1).
    pub const AQLM_2X8: Params = Params {
        num_codebooks: 2,
        nbits_per_codebook: 8,
        in_group_size: 8,
        out_group_size: 1,
    };

    /// The qkc scheme these parameters map to.
    pub fn scheme(self) -> Scheme {
        Scheme::Codebook(Codebook {
            codebooks: self.num_codebooks,
            bits: self.nbits_per_codebook,
            in_group: self.in_group_size,
            out_group: self.out_group_size,
        })
    }
}

/// Import the AQLM linear `prefix` (`[n, k]`, HF orientation).
pub fn import(
    src: &dyn TensorSource,
    prefix: &str,
    n: usize,
    k: usize,
    p: Params,
) -> Result<Imported, ImportError> {
    let scheme = p.scheme();
    scheme
        .check_params()
        .map_err(|e| ImportError::BadParams(format!("AQLM layer `{prefix}`: {e}")))?;
    scheme
        .check_shape(n, k)
        .map_err(|e| ImportError::BadParams(format!("AQLM layer `{prefix}`: {e}")))?;
    let (c, bits) = (
        usize::from(p.num_codebooks),
        u32::from(p.nbits_per_codebook),
    );
    let (og, ig) = (p.out_group_size as usize, p.in_group_size as usize);
    let (no, ni, m) = (n / og, k / ig, 1usize << bits);

    let codes_name = format!("{prefix}.codes");
    let codes = get(src, &codes_name)?
        .expect(
            &[RawDtype::I8, RawDtype::I16, RawDtype::I32, RawDtype::I64],
            &[no, ni, c],
        )?
        .ints()?;
    let mask = (1i64 << bits) - 1;
    let codes_part = if bits <= 8 {
        let v: Vec<i8> = codes.iter().map(|&x| (x & mask) as u8 as i8).collect();
        Part::from_i8(vec![no, ni, c], &v)
    } else {
        let v: Vec<i16> = codes.iter().map(|&x| (x & mask) as u16 as i16).collect();
        Part::from_i16(vec![no, ni, c], &v)
    };

    let books_name = format!("{prefix}.codebooks");
    let books = get(src, &books_name)?.expect(&[RawDtype::F16], &[c, m, og, ig])?;
    let scales_name = format!("{prefix}.scales");
    let scales = get(src, &scales_name)?.expect(&[RawDtype::F16], &[no, 1, 1, 1])?;

    let mut q = QuantTensor::new(scheme, n, k);
    q.parts.insert("codes".into(), codes_part);
    q.parts.insert(
        "codebooks".into(),
        Part {
            dtype: crate::PartDtype::F16,
            shape: vec![c, m, og, ig],
            bytes: books.t.data.to_vec(),
        },
    );
    q.parts.insert(
        "scales".into(),
        Part {
            dtype: crate::PartDtype::F16,
            shape: vec![no, 1, 1, 1],
            bytes: scales.t.data.to_vec(),
        },
    );
    Ok(Imported { q, outliers: None })
}
