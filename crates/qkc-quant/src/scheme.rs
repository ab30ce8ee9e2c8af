//! Scheme descriptors: what a quantized weight *is*, independent of any checkpoint or kernel.
//!
//! A [`Scheme`] names one row of the feature table in DESIGN.md together with every parameter a
//! specialized kernel bakes in (bits, group size, table kind, codebook shape, ...). It has a
//! serde form (a tagged struct, for tools) and a short spelling (for humans and the text IR):
//!
//! | spelling | meaning |
//! |---|---|
//! | `int4:g128` | uniform 4-bit, groups of 128 along K, symmetric (GPTQ/AWQ/RTN) |
//! | `int4:g128:asym` | same, asymmetric (with zero points) |
//! | `int4:g32:min` | `w = scale·q + min`, f32 scale and min per group (GGUF Q4_1/Q5_1/K-quants) |
//! | `int3:g64:act` | act-order: groups follow a `g_idx` permutation of K (GPTQ `desc_act`) |
//! | `int8:pc` | per output channel (one group spanning K) |
//! | `spqr3:g16` | SpQR: 3-bit codes, 16-wide groups, 3-bit second-level stats (`:s3`) |
//! | `spqr3:g16:perm` | same, stored in a permuted column order with an `in_perm` part (SpQR's act-order) |
//! | `lut3`, `lut4` | non-uniform, one table of 2^bits values per output row (SqueezeLLM) |
//! | `nf4:b64`, `fp4:b64:dq` | fixed bitsandbytes tables, block-wise absmax, optional double quant |
//! | `aqlm:1x16`, `aqlm:2x8` | additive codebooks: C codebooks of 2^bits entries, 8-wide input groups |
//! | `bin:g128`, `bin:pc` | binary: sign bits with a scale per group / per row |
//! | `tern:g128` | ternary {-1, 0, +1} with a scale per group |
//! | `billm:g128` | BiLLM residual binarization (two binary bases) with a salient-column mask |
//!
//! Options may appear in any order after the head; [`Scheme`]'s `Display` prints the canonical
//! order, which is what `qkc fmt` writes. Defaults that are the same as the spelling without them
//! are omitted when printing (`int4:g128:sym` prints as `int4:g128`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How consecutive weights along K share quantization statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Group {
    /// `g{n}`: groups of `n` consecutive weights along K within one output row.
    Size(u32),
    /// `pc`: one group spanning the whole row (per output channel).
    PerChannel,
}

impl Group {
    /// The group length for a row of `k` weights.
    pub fn len(self, k: usize) -> usize {
        match self {
            Group::Size(g) => g as usize,
            Group::PerChannel => k,
        }
    }

    /// Number of groups for a row of `k` weights (`k` must be a multiple of the group size).
    pub fn count(self, k: usize) -> usize {
        match self {
            Group::Size(g) => k.div_ceil(g as usize),
            Group::PerChannel => 1,
        }
    }
}

impl fmt::Display for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Group::Size(g) => write!(f, "g{g}"),
            Group::PerChannel => f.write_str("pc"),
        }
    }
}

/// Order of codes inside a packed 32-bit word (only matters for importers and packers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Packing {
    /// Codes in natural order, LSB first, along K (GPTQ; 3-bit codes straddle words).
    #[default]
    Gptq,
    /// AWQ's interleaved order `[0, 2, 4, 6, 1, 3, 5, 7]` inside each 32-bit word.
    Awq,
}

/// Uniform integer quantization (GPTQ, AWQ, RTN, QuantEase, AdaRound):
/// `w = scale[g] · (q − zero[g])`, `q ∈ [0, 2^bits)`; symmetric schemes fix `zero = 2^(bits−1)`.
/// The `:min` form (GGUF Q4_1/Q5_1/Q4_K/Q5_K/Q6_K) stores a float offset instead of a zero
/// point: `w = scale[g] · q + min[g]`, with f32 scales and mins (see [`crate::uniform`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct UniformInt {
    /// Bits per code: 2, 3, 4 or 8.
    pub bits: u8,
    /// Group along K.
    pub group: Group,
    /// Symmetric (no stored zero points) or asymmetric.
    pub sym: bool,
    /// Act-order: group membership follows a stored `g_idx` permutation of K.
    pub act_order: bool,
    /// Word packing order.
    pub packing: Packing,
    /// `:min` form: `w = scale·q + min` with f32 `scales` and `mins` parts instead of zero
    /// points. Implies asymmetric (`sym == false`); combines with act-order.
    #[serde(default)]
    pub min: bool,
}

/// SpQR (Dettmers et al. 2023): small groups whose scales and zeros are themselves quantized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Spqr {
    /// Bits per weight code (SpQR uses 3).
    pub bits: u8,
    /// First-level group width along K (SpQR uses 16).
    pub group: u32,
    /// Bits of the second-level quantized scales and zeros (SpQR uses 3).
    pub stat_bits: u8,
    /// `:perm`: the columns are stored in a permuted order with an `in_perm` part (SpQR's
    /// act-order permutation): stored column i is original column `in_perm[i]`, so the kernel
    /// reads x through `in_perm` (see [`crate::spqr`]).
    #[serde(default)]
    pub perm: bool,
}

/// Which fixed table a [`FixedLut`] uses (bitsandbytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FixedTable {
    /// NormalFloat-4 (QLoRA).
    Nf4,
    /// bitsandbytes FP4 (e2m1 without infinities).
    Fp4,
}

/// A fixed 16-entry table with block-wise absmax scaling (bitsandbytes NF4/FP4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FixedLut {
    /// The table.
    pub table: FixedTable,
    /// Block size of the absmax, over the flattened row-major weight (bitsandbytes default 64).
    pub block: u32,
    /// Double quantization of the absmax values (uint8 with a nested absmax per 256 blocks).
    pub double_quant: bool,
}

/// Additive codebooks (AQLM): `W[o, i·ig + b] = scale[o] · Σ_c codebook[c][code[o,i,c]][b]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Codebook {
    /// Number of codebooks C (1 or 2 in practice).
    pub codebooks: u8,
    /// Bits per code (16 for 1x16, 8 for 2x8).
    pub bits: u8,
    /// Input group size (weights per code along K; AQLM uses 8).
    pub in_group: u32,
    /// Output group size (rows per code; AQLM uses 1).
    pub out_group: u32,
}

/// Kinds of 1-bit-ish schemes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BinaryKind {
    /// `w = α · sign` (one sign bit per weight).
    Binary,
    /// `w = α · t`, `t ∈ {−1, 0, +1}` (2 bits per weight stored).
    Ternary,
    /// BiLLM: residual binarization (two binary bases) on salient columns, one base elsewhere,
    /// with a salient-column mask.
    Residual,
}

/// Binary / ternary schemes (BiLLM, FBI-LLM, ternary LMs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Binary {
    /// Which kind.
    pub kind: BinaryKind,
    /// Scale granularity along K.
    pub group: Group,
}

/// A weight quantization scheme: one row of DESIGN.md's feature table, fully parameterized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "scheme", rename_all = "snake_case")]
pub enum Scheme {
    /// Uniform integer (GPTQ/AWQ/RTN).
    Uniform(UniformInt),
    /// SpQR second-level quantized statistics.
    Spqr(Spqr),
    /// Per-output-row look-up table of 2^bits values (SqueezeLLM).
    Lut {
        /// Bits per code (table has 2^bits entries).
        bits: u8,
    },
    /// Fixed table with block absmax (NF4, FP4).
    Fixed(FixedLut),
    /// Additive codebooks (AQLM).
    Codebook(Codebook),
    /// Binary / ternary / residual binary.
    Binary(Binary),
}

/// Why a scheme spelling was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid scheme `{spelling}`: {reason}")]
pub struct SchemeParseError {
    /// The text that was parsed.
    pub spelling: String,
    /// What is wrong with it.
    pub reason: String,
}

impl Scheme {
    /// The scheme's short family name (`int`, `spqr`, `lut`, `nf4`, `fp4`, `aqlm`, `bin`, ...).
    pub fn family(&self) -> &'static str {
        match self {
            Scheme::Uniform(_) => "int",
            Scheme::Spqr(_) => "spqr",
            Scheme::Lut { .. } => "lut",
            Scheme::Fixed(f) => match f.table {
                FixedTable::Nf4 => "nf4",
                FixedTable::Fp4 => "fp4",
            },
            Scheme::Codebook(_) => "aqlm",
            Scheme::Binary(b) => match b.kind {
                BinaryKind::Binary => "bin",
                BinaryKind::Ternary => "tern",
                BinaryKind::Residual => "billm",
            },
        }
    }

    /// The alignment K must satisfy for a weight of this scheme (a group or block length), or
    /// `None` when any K works.
    pub fn k_multiple(&self) -> Option<usize> {
        match self {
            Scheme::Uniform(u) => match u.group {
                Group::Size(g) => Some(g as usize),
                Group::PerChannel => None,
            },
            Scheme::Spqr(s) => Some(s.group as usize),
            Scheme::Lut { .. } | Scheme::Fixed(_) => None,
            Scheme::Codebook(c) => Some(c.in_group as usize),
            Scheme::Binary(b) => match b.group {
                Group::Size(g) => Some(g as usize),
                Group::PerChannel => None,
            },
        }
    }

    /// The N alignment (rows per code), or `None`.
    pub fn n_multiple(&self) -> Option<usize> {
        match self {
            Scheme::Codebook(c) if c.out_group > 1 => Some(c.out_group as usize),
            _ => None,
        }
    }

    /// Storage bits per weight of a `[n, k]` weight in this scheme, from the layout formulas of
    /// its module (codes, scales, zeros, tables, codebooks, masks and padding; outliers are
    /// separate). Exact for every scheme but BiLLM, whose salient share is data-dependent (the
    /// estimate uses its upper bound of k/8 salient columns).
    pub fn bits_per_weight(&self, n: usize, k: usize) -> f64 {
        let (n, k) = (n.max(1), k.max(1));
        match *self {
            Scheme::Uniform(u) => crate::uniform::bits_estimate(u, n, k),
            Scheme::Spqr(s) => crate::spqr::bits_estimate(s, n, k),
            Scheme::Lut { bits } => crate::lut::bits_estimate(bits, k),
            Scheme::Fixed(f) => crate::fixed::bits_estimate(f, n, k),
            Scheme::Codebook(c) => crate::aqlm::bits_estimate(c, n, k),
            Scheme::Binary(b) => crate::binary::bits_estimate(b, n, k),
        }
    }

    /// Check that a `[n, k]` weight can be stored in this scheme; the message names the rule.
    pub fn check_shape(&self, n: usize, k: usize) -> Result<(), String> {
        if let Some(m) = self.k_multiple() {
            if k % m != 0 {
                return Err(format!(
                    "K = {k} is not a multiple of {m}, the group size of scheme `{self}`"
                ));
            }
        }
        if let Some(m) = self.n_multiple() {
            if n % m != 0 {
                return Err(format!(
                    "N = {n} is not a multiple of {m}, the output group of scheme `{self}`"
                ));
            }
        }
        Ok(())
    }

    /// Check the scheme's parameters (bits, group sizes, ...) as parsing does; schemes built in
    /// code or through serde bypass the parser, so the quantizers and dequant call this.
    pub fn check_params(&self) -> Result<(), SchemeParseError> {
        self.validate(&self.to_string()).map(|_| ())
    }

    fn validate(self, spelling: &str) -> Result<Self, SchemeParseError> {
        let err = |reason: String| SchemeParseError {
            spelling: spelling.to_string(),
            reason,
        };
        let check_group = |g: Group| match g {
            Group::Size(0) => Err(err("group size must be positive".into())),
            _ => Ok(()),
        };
        match self {
            Scheme::Uniform(u) => {
                if !matches!(u.bits, 2 | 3 | 4 | 8) {
                    return Err(err(format!(
                        "uniform int supports 2, 3, 4 or 8 bits, not {}",
                        u.bits
                    )));
                }
                check_group(u.group)?;
                if u.min && u.sym {
                    return Err(err(
                        "`:min` (w = scale·q + min) is asymmetric and cannot be combined with `:sym`"
                            .into(),
                    ));
                }
                if u.act_order && u.group == Group::PerChannel {
                    return Err(err(
                        "act-order needs groups (`:act` with `:pc` has no effect)".into(),
                    ));
                }
            }
            Scheme::Spqr(s) => {
                if !(2..=4).contains(&s.bits) {
                    return Err(err(format!("SpQR supports 2 to 4 bits, not {}", s.bits)));
                }
                if s.group == 0 || !(2..=8).contains(&s.stat_bits) {
                    return Err(err(
                        "SpQR needs a positive group and 2 to 8 stat bits".into()
                    ));
                }
            }
            Scheme::Lut { bits } => {
                if !(2..=8).contains(&bits) {
                    return Err(err(format!("LUT supports 2 to 8 bits, not {bits}")));
                }
            }
            Scheme::Fixed(f) => {
                if f.block == 0 {
                    return Err(err("block size must be positive".into()));
                }
            }
            Scheme::Codebook(c) => {
                if !(1..=4).contains(&c.codebooks) || !(1..=16).contains(&c.bits) {
                    return Err(err("AQLM needs 1 to 4 codebooks of 1 to 16 bits".into()));
                }
                if c.in_group == 0 || c.out_group == 0 {
                    return Err(err("AQLM group sizes must be positive".into()));
                }
            }
            Scheme::Binary(b) => check_group(b.group)?,
        }
        Ok(self)
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scheme::Uniform(u) => {
                write!(f, "int{}:{}", u.bits, u.group)?;
                if u.min {
                    f.write_str(":min")?;
                } else if !u.sym {
                    f.write_str(":asym")?;
                }
                if u.act_order {
                    f.write_str(":act")?;
                }
                if u.packing == Packing::Awq {
                    f.write_str(":awq")?;
                }
                Ok(())
            }
            Scheme::Spqr(s) => {
                write!(f, "spqr{}:g{}", s.bits, s.group)?;
                if s.stat_bits != 3 {
                    write!(f, ":s{}", s.stat_bits)?;
                }
                if s.perm {
                    f.write_str(":perm")?;
                }
                Ok(())
            }
            Scheme::Lut { bits } => write!(f, "lut{bits}"),
            Scheme::Fixed(x) => {
                write!(f, "{}:b{}", self.family(), x.block)?;
                if x.double_quant {
                    f.write_str(":dq")?;
                }
                Ok(())
            }
            Scheme::Codebook(c) => {
                write!(f, "aqlm:{}x{}", c.codebooks, c.bits)?;
                if c.in_group != 8 {
                    write!(f, ":g{}", c.in_group)?;
                }
                if c.out_group != 1 {
                    write!(f, ":o{}", c.out_group)?;
                }
                Ok(())
            }
            Scheme::Binary(b) => write!(f, "{}:{}", self.family(), b.group),
        }
    }
}

fn parse_group(opt: &str) -> Option<Group> {
    if opt == "pc" {
        return Some(Group::PerChannel);
    }
    opt.strip_prefix('g')
        .and_then(|n| n.parse().ok())
        .map(Group::Size)
}

fn parse_num<T: FromStr>(s: &str, what: &str, spelling: &str) -> Result<T, SchemeParseError> {
    s.parse().map_err(|_| SchemeParseError {
        spelling: spelling.to_string(),
        reason: format!("`{s}` is not a valid {what}"),
    })
}

impl FromStr for Scheme {
    type Err = SchemeParseError;

    fn from_str(spelling: &str) -> Result<Self, Self::Err> {
        let err = |reason: String| SchemeParseError {
            spelling: spelling.to_string(),
            reason,
        };
        let mut parts = spelling.split(':');
        let head = parts.next().unwrap_or_default();
        let opts: Vec<&str> = parts.collect();
        let unknown = |o: &str| err(format!("unknown option `{o}` for `{head}`"));

        let scheme = if let Some(bits) = head.strip_prefix("int") {
            let mut u = UniformInt {
                bits: parse_num(bits, "bit width", spelling)?,
                group: Group::Size(128),
                sym: true,
                act_order: false,
                packing: Packing::Gptq,
                min: false,
            };
            let mut explicit_sym = false;
            for o in &opts {
                match *o {
                    "sym" => (u.sym, explicit_sym) = (true, true),
                    "asym" => u.sym = false,
                    "min" => u.min = true,
                    "act" => u.act_order = true,
                    "awq" => u.packing = Packing::Awq,
                    "gptq" => u.packing = Packing::Gptq,
                    _ => u.group = parse_group(o).ok_or_else(|| unknown(o))?,
                }
            }
            if u.min {
                // `:min` implies asymmetric; an explicit `:sym` is a contradiction `validate` reports.
                u.sym = explicit_sym;
            }
            Scheme::Uniform(u)
        } else if let Some(bits) = head.strip_prefix("spqr") {
            let bits = if bits.is_empty() {
                3
            } else {
                parse_num(bits, "bit width", spelling)?
            };
            let mut s = Spqr {
                bits,
                group: 16,
                stat_bits: 3,
                perm: false,
            };
            for o in &opts {
                if *o == "perm" {
                    s.perm = true;
                } else if let Some(n) = o.strip_prefix('g') {
                    s.group = parse_num(n, "group size", spelling)?;
                } else if let Some(n) = o.strip_prefix('s') {
                    s.stat_bits = parse_num(n, "stat bit width", spelling)?;
                } else {
                    return Err(unknown(o));
                }
            }
            Scheme::Spqr(s)
        } else if let Some(bits) = head.strip_prefix("lut") {
            if let Some(o) = opts.first() {
                return Err(unknown(o));
            }
            Scheme::Lut {
                bits: parse_num(bits, "bit width", spelling)?,
            }
        } else if head == "nf4" || head == "fp4" {
            let table = if head == "nf4" {
                FixedTable::Nf4
            } else {
                FixedTable::Fp4
            };
            let mut x = FixedLut {
                table,
                block: 64,
                double_quant: false,
            };
            for o in &opts {
                if *o == "dq" {
                    x.double_quant = true;
                } else if let Some(n) = o.strip_prefix('b') {
                    x.block = parse_num(n, "block size", spelling)?;
                } else {
                    return Err(unknown(o));
                }
            }
            Scheme::Fixed(x)
        } else if head == "aqlm" {
            let shape = opts
                .first()
                .ok_or_else(|| err("AQLM needs a shape such as `aqlm:2x8`".into()))?;
            let (c, b) = shape
                .split_once('x')
                .ok_or_else(|| err(format!("AQLM shape `{shape}` is not CxB (e.g. 1x16, 2x8)")))?;
            let mut cb = Codebook {
                codebooks: parse_num(c, "codebook count", spelling)?,
                bits: parse_num(b, "codebook bit width", spelling)?,
                in_group: 8,
                out_group: 1,
            };
            for o in &opts[1..] {
                if let Some(n) = o.strip_prefix('g') {
                    cb.in_group = parse_num(n, "input group size", spelling)?;
                } else if let Some(n) = o.strip_prefix('o') {
                    cb.out_group = parse_num(n, "output group size", spelling)?;
                } else {
                    return Err(unknown(o));
                }
            }
            Scheme::Codebook(cb)
        } else if let Some(kind) = match head {
            "bin" => Some(BinaryKind::Binary),
            "tern" => Some(BinaryKind::Ternary),
            "billm" => Some(BinaryKind::Residual),
            _ => None,
        } {
            let mut b = Binary {
                kind,
                group: Group::Size(128),
            };
            for o in &opts {
                b.group = parse_group(o).ok_or_else(|| unknown(o))?;
            }
            Scheme::Binary(b)
        } else {
            return Err(err(format!(
                "unknown scheme family `{head}` (expected int<b>, spqr<b>, lut<b>, nf4, fp4, aqlm, bin, tern or billm)"
            )));
        };
        scheme.validate(spelling)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_round_trip() {
        for s in [
            "int4:g128",
            "int4:g128:asym",
            "int3:g64:act",
            "int8:pc",
            "int2:g32:asym:act:awq",
            "int4:g32:min",
            "int8:g16:min:act",
            "int8:g32:min:awq",
            "spqr3:g16",
            "spqr3:g16:s4",
            "spqr3:g16:perm",
            "spqr3:g16:s4:perm",
            "lut3",
            "lut4",
            "nf4:b64",
            "fp4:b64:dq",
            "aqlm:1x16",
            "aqlm:2x8",
            "aqlm:2x8:g16:o2",
            "bin:g128",
            "bin:pc",
            "tern:g64",
            "billm:g128",
        ] {
            let parsed: Scheme = s.parse().unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(parsed.to_string(), s);
            let json = serde_json::to_string(&parsed).expect("serialize");
            let back: Scheme = serde_json::from_str(&json).expect("deserialize");
            assert_eq!(back, parsed);
        }
    }

    #[test]
    fn defaults_are_canonicalized() {
        assert_eq!(
            "int4".parse::<Scheme>().map(|s| s.to_string()),
            Ok("int4:g128".into())
        );
        assert_eq!(
            "int4:sym:g64".parse::<Scheme>().map(|s| s.to_string()),
            Ok("int4:g64".into())
        );
        assert_eq!(
            "int4:min:g32:asym".parse::<Scheme>().map(|s| s.to_string()),
            Ok("int4:g32:min".into())
        );
        assert_eq!(
            "nf4".parse::<Scheme>().map(|s| s.to_string()),
            Ok("nf4:b64".into())
        );
        assert_eq!(
            "spqr3:perm:s4:g16".parse::<Scheme>().map(|s| s.to_string()),
            Ok("spqr3:g16:s4:perm".into())
        );
    }

    #[test]
    fn spqr_without_perm_deserializes_from_old_json() {
        let old = r#"{"scheme":"spqr","bits":3,"group":16,"stat_bits":3}"#;
        let s: Scheme = serde_json::from_str(old).expect("deserialize");
        assert_eq!(s.to_string(), "spqr3:g16");
    }

    #[test]
    fn bad_spellings_are_rejected_with_reasons() {
        for (s, want) in [
            ("int5:g128", "2, 3, 4 or 8 bits"),
            ("int4:g0", "positive"),
            ("int4:g32:min:sym", "cannot be combined with `:sym`"),
            ("int4:sym:g32:min", "cannot be combined with `:sym`"),
            ("int4:gx", "unknown option"),
            ("foo4", "unknown scheme family"),
            ("aqlm", "needs a shape"),
            ("aqlm:2y8", "not CxB"),
            ("lut9", "2 to 8 bits"),
            ("spqr3:g16:prem", "unknown option `prem`"),
            ("", "unknown scheme family"),
        ] {
            let e = s.parse::<Scheme>().expect_err(s);
            assert!(e.to_string().contains(want), "{s}: {e}");
        }
    }
}
