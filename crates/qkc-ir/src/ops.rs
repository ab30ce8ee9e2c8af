//! The op set of the graph IR, with each op's operand roles and typed attributes.
//!
//! Every op is written in one generic text form:
//!
//! ```text
//! %name = opname ["symbol"] [(%pos0, %pos1, role = %opt)] [{key = value, ...}] : type
//! ```
//!
//! Required operands are positional, optional ones are named by role. The table of roles per op
//! ([`Op::roles`]) is the single description both the printer and the parser use. Attributes
//! are typed fields of [`Op`]; [`Op::attrs`] and [`Op::from_generic`] convert to and from the
//! generic `key = value` form.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A generic attribute value, as written in the text form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Attr {
    /// `true` / `false`
    Bool(bool),
    /// an integer literal
    Int(i64),
    /// a float literal (always printed with a `.` or exponent)
    Float(f64),
    /// a bare identifier (`hadamard`, `half`)
    Ident(String),
    /// a quoted string
    Str(String),
    /// `[a, b, ...]`
    List(Vec<Attr>),
}

impl fmt::Display for Attr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Attr::Bool(b) => write!(f, "{b}"),
            Attr::Int(i) => write!(f, "{i}"),
            Attr::Float(x) => write!(f, "{x:?}"),
            Attr::Ident(s) => f.write_str(s),
            Attr::Str(s) => write!(f, "{s:?}"),
            Attr::List(v) => {
                f.write_str("[")?;
                for (i, a) in v.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{a}")?;
                }
                f.write_str("]")
            }
        }
    }
}

/// An operand slot of an op.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Role {
    /// Role name (used as the keyword for optional operands).
    pub name: &'static str,
    /// Whether the operand may be absent.
    pub optional: bool,
}

const fn req(name: &'static str) -> Role {
    Role {
        name,
        optional: false,
    }
}
const fn opt(name: &'static str) -> Role {
    Role {
        name,
        optional: true,
    }
}

/// Kind of an online rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RotKind {
    /// Hadamard of size n = K·2^m over the last axis (QuaRot/SpinQuant `had_K ⊗ H_{2^m}`).
    Hadamard,
    /// A dense orthogonal matrix given as the `r` operand (SpinQuant/KurTail learned R).
    Dense,
}

/// A rotation applied to the input of a linear layer: `x ← R x` (or `Rᵀ x`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Rotation {
    /// Which rotation.
    pub kind: RotKind,
    /// Apply the transpose instead.
    pub transpose: bool,
}

/// RoPE pairing convention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RopeStyle {
    /// HF Llama `rotate_half`: pairs `(i, i + d/2)`.
    Half,
    /// GPT-J / GGUF: pairs `(2i, 2i + 1)`.
    Interleaved,
}

/// Activation (fake) quantization of a float tensor: per token (last axis), round to a
/// `bits`-bit grid with an abs-max (sym) or min-max (asym) scale, and back to float. With
/// `group = Some(g)`, each consecutive `g` elements of a token's last axis get their own scale
/// (ggml's Q8_0/Q8_1 activations: g = 32); the last axis must be a multiple of g. Values round
/// to the nearest grid point, ties to even (as `torch.round` and every qkc kernel do).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ActQuant {
    /// 4 or 8.
    pub bits: u8,
    /// symmetric?
    pub sym: bool,
    /// Elements per scale along the last axis; `None`: one scale per token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<u32>,
}

/// Attributes of the fused `qlinear` op.
///
/// Meaning, per token x: `x1 = R(x)` if `rotate`; `x2 = Q(x1)` if `act`;
/// `y = (dequant(w) + outliers)·x2 + bias`; with `gate = silu`:
/// `y = silu(y) ⊙ ((dequant(up) + up_outliers)·x2)`; then `y += residual`; then `y = Q(y)` if
/// `out_act`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct QLinearAttrs {
    /// Online rotation of the input (prologue).
    pub rotate: Option<Rotation>,
    /// Activation quantization of the (rotated) input.
    pub act: Option<ActQuant>,
    /// SiLU gating with the `up` weight (fused gate_up).
    pub silu_gate: bool,
    /// Activation quantization of the output for the next layer (epilogue).
    pub out_act: Option<ActQuant>,
}

/// Attention with an optional KV cache, grouped-query when `kv_heads < heads`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AttentionAttrs {
    /// Query heads.
    pub heads: u32,
    /// Key/value heads (divides `heads`).
    pub kv_heads: u32,
    /// Head dimension.
    pub head_dim: u32,
    /// Name of the KV cache this layer appends to and reads; `None` means no cache.
    pub cache: Option<String>,
    /// Capacity of the cache in tokens.
    pub max_seq: u32,
    /// RoPE applied to q and k inside the op (prologue), with positions from the `pos` operand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope: Option<RopeAttrs>,
}

/// RoPE parameters when fused into attention (`head_dim` is the attention's).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RopeAttrs {
    /// base
    pub theta: f64,
    /// pairing
    pub style: RopeStyle,
}

impl Eq for RopeAttrs {}
impl std::hash::Hash for RopeAttrs {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.theta.to_bits().hash(h);
        self.style.hash(h);
    }
}

/// An operation. Operands live on the graph's edges; see [`Op::roles`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// A graph input, bound by name at run time.
    Input {
        /// binding name
        name: String,
    },
    /// A weight, bound by name to a checkpoint tensor (or synthesized from a seed).
    Weight {
        /// checkpoint tensor name
        name: String,
        /// For sparse weights synthesized from a seed: fraction of non-zeros.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        density: Option<f64>,
        /// An offline fold: the value is `W·R` (or `W·Rᵀ`) for the bound tensor `W` of a float
        /// `[N, K]` weight, recorded when a pass folds an online rotation into the weight.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fold: Option<Rotation>,
    },
    /// A constant; one value is splatted over the shape.
    Const {
        /// values, row-major
        value: Vec<f64>,
    },
    /// `y = x·wᵀ (+ bias)`, `x: [..., K]`, `w: [N, K]` (PyTorch `nn.Linear`).
    Linear,
    /// `y = a·b`, `a: [..., M, K]`, `b: [K, N]`.
    Matmul,
    /// Dense float form of a quantized weight.
    Dequant,
    /// An online rotation of the last axis.
    Rotate(Rotation),
    /// `y = S·x` per token, `S: csr[N, K]`, `x: [..., K]`.
    Spmm,
    /// Elementwise sum (the second operand broadcasts over leading dims).
    Add,
    /// Elementwise product (the second operand broadcasts over leading dims).
    Mul,
    /// Per-token activation quantization (fake-quant: result stays float).
    QuantizeAct(ActQuant),
    /// RMSNorm over the last axis with a weight.
    Rmsnorm {
        /// epsilon
        eps: f64,
    },
    /// Rotary embedding of `x: [T, heads·head_dim]` at positions `pos: i32[T]`.
    Rope {
        /// base
        theta: f64,
        /// head dimension
        head_dim: u32,
        /// pairing
        style: RopeStyle,
    },
    /// `x·sigmoid(x)`.
    Silu,
    /// Softmax over the last axis.
    Softmax,
    /// Causal scaled-dot-product attention.
    Attention(AttentionAttrs),
    /// Row gather `table[ids]`.
    Embedding,
    /// The fused quantized linear layer produced by the passes.
    Qlinear(QLinearAttrs),
    /// Swap the last two axes.
    Transpose,
    /// Same elements, new shape (from the result type).
    Reshape,
    /// Convert dtype (from the result type).
    Cast,
}

static NO_ROLES: [Role; 0] = [];
static X: [Role; 1] = [req("x")];
static AB: [Role; 2] = [req("a"), req("b")];
static LINEAR: [Role; 3] = [req("x"), req("w"), opt("bias")];
static DEQUANT: [Role; 1] = [req("w")];
static ROTATE: [Role; 2] = [req("x"), opt("r")];
static SPMM: [Role; 2] = [req("s"), req("x")];
static NORM: [Role; 2] = [req("x"), req("w")];
static ROPE: [Role; 2] = [req("x"), req("pos")];
static ATTN: [Role; 4] = [req("q"), req("k"), req("v"), opt("pos")];
static EMBED: [Role; 2] = [req("ids"), req("table")];
static QLINEAR: [Role; 8] = [
    req("x"),
    req("w"),
    opt("outliers"),
    opt("bias"),
    opt("r"),
    opt("up"),
    opt("up_outliers"),
    opt("residual"),
];

/// Attributes by key, as parsed from text (the value's span index is kept by the parser).
pub type AttrMap = BTreeMap<String, Attr>;

impl Op {
    /// Every op name, for diagnostics ("expected one of ...").
    pub const NAMES: [&'static str; 21] = [
        "input",
        "weight",
        "const",
        "linear",
        "matmul",
        "dequant",
        "rotate",
        "spmm",
        "add",
        "mul",
        "quantize_act",
        "rmsnorm",
        "rope",
        "silu",
        "softmax",
        "attention",
        "embedding",
        "qlinear",
        "transpose",
        "reshape",
        "cast",
    ];

    /// The op's text name.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Input { .. } => "input",
            Op::Weight { .. } => "weight",
            Op::Const { .. } => "const",
            Op::Linear => "linear",
            Op::Matmul => "matmul",
            Op::Dequant => "dequant",
            Op::Rotate(_) => "rotate",
            Op::Spmm => "spmm",
            Op::Add => "add",
            Op::Mul => "mul",
            Op::QuantizeAct(_) => "quantize_act",
            Op::Rmsnorm { .. } => "rmsnorm",
            Op::Rope { .. } => "rope",
            Op::Silu => "silu",
            Op::Softmax => "softmax",
            Op::Attention(_) => "attention",
            Op::Embedding => "embedding",
            Op::Qlinear(_) => "qlinear",
            Op::Transpose => "transpose",
            Op::Reshape => "reshape",
            Op::Cast => "cast",
        }
    }

    /// Operand roles, required ones first.
    pub fn roles(&self) -> &'static [Role] {
        Self::roles_of(self.name()).unwrap_or(&NO_ROLES)
    }

    /// Operand roles of the op called `name`, or `None` for an unknown op.
    pub fn roles_of(name: &str) -> Option<&'static [Role]> {
        Some(match name {
            "input" | "weight" | "const" => &NO_ROLES,
            "linear" => &LINEAR,
            "matmul" | "add" | "mul" => &AB,
            "dequant" => &DEQUANT,
            "rotate" => &ROTATE,
            "spmm" => &SPMM,
            "quantize_act" | "silu" | "softmax" | "transpose" | "reshape" | "cast" => &X,
            "rmsnorm" => &NORM,
            "rope" => &ROPE,
            "attention" => &ATTN,
            "embedding" => &EMBED,
            "qlinear" => &QLINEAR,
            _ => return None,
        })
    }

    /// Index of role `name` in [`Op::roles`].
    pub fn role_index(&self, name: &str) -> Option<usize> {
        self.roles().iter().position(|r| r.name == name)
    }

    /// The quoted symbol written right after the op name (`input "x"`, `weight "w.q"`).
    pub fn symbol(&self) -> Option<&str> {
        match self {
            Op::Input { name } | Op::Weight { name, .. } => Some(name),
            _ => None,
        }
    }

    /// Whether the op takes a symbol.
    pub fn takes_symbol(name: &str) -> bool {
        matches!(name, "input" | "weight")
    }

    /// Is this a source (no operands: input, weight, const)?
    pub fn is_source(&self) -> bool {
        matches!(
            self,
            Op::Input { .. } | Op::Weight { .. } | Op::Const { .. }
        )
    }

    /// The generic attributes, in canonical (printing) order.
    pub fn attrs(&self) -> Vec<(&'static str, Attr)> {
        let mut v = Vec::new();
        let act = |v: &mut Vec<(&'static str, Attr)>,
                   bits: &'static str,
                   sym: &'static str,
                   group: &'static str,
                   a: &Option<ActQuant>| {
            if let Some(a) = a {
                v.push((bits, Attr::Int(i64::from(a.bits))));
                if !a.sym {
                    v.push((sym, Attr::Bool(false)));
                }
                if let Some(g) = a.group {
                    v.push((group, Attr::Int(i64::from(g))));
                }
            }
        };
        match self {
            Op::Weight { density, fold, .. } => {
                if let Some(d) = density {
                    v.push(("density", Attr::Float(*d)));
                }
                if let Some(r) = fold {
                    push_rotation(&mut v, "fold", r);
                }
            }
            Op::Const { value } => {
                let attr = if value.len() == 1 {
                    Attr::Float(value[0])
                } else {
                    Attr::List(value.iter().map(|x| Attr::Float(*x)).collect())
                };
                v.push(("value", attr));
            }
            Op::Rotate(r) => push_rotation(&mut v, "kind", r),
            Op::QuantizeAct(a) => act(&mut v, "bits", "sym", "group", &Some(*a)),
            Op::Rmsnorm { eps } => v.push(("eps", Attr::Float(*eps))),
            Op::Rope {
                theta,
                head_dim,
                style,
            } => {
                v.push(("theta", Attr::Float(*theta)));
                v.push(("head_dim", Attr::Int(i64::from(*head_dim))));
                if *style == RopeStyle::Interleaved {
                    v.push(("style", Attr::Ident("interleaved".into())));
                }
            }
            Op::Attention(a) => {
                v.push(("heads", Attr::Int(i64::from(a.heads))));
                v.push(("kv_heads", Attr::Int(i64::from(a.kv_heads))));
                v.push(("head_dim", Attr::Int(i64::from(a.head_dim))));
                if let Some(c) = &a.cache {
                    v.push(("cache", Attr::Str(c.clone())));
                    v.push(("max_seq", Attr::Int(i64::from(a.max_seq))));
                }
                if let Some(r) = &a.rope {
                    v.push(("rope_theta", Attr::Float(r.theta)));
                    if r.style == RopeStyle::Interleaved {
                        v.push(("rope_style", Attr::Ident("interleaved".into())));
                    }
                }
            }
            Op::Qlinear(q) => {
                if let Some(r) = &q.rotate {
                    push_rotation(&mut v, "rotate", r);
                }
                act(&mut v, "act_bits", "act_sym", "act_group", &q.act);
                if q.silu_gate {
                    v.push(("gate", Attr::Ident("silu".into())));
                }
                act(
                    &mut v,
                    "out_act_bits",
                    "out_act_sym",
                    "out_act_group",
                    &q.out_act,
                );
            }
            _ => {}
        }
        v
    }

    /// Build an op from its generic form. `attrs` is drained; unknown or ill-typed attributes
    /// are errors `(attribute key or "", message)`.
    pub fn from_generic(
        name: &str,
        symbol: Option<String>,
        attrs: &mut AttrMap,
    ) -> Result<Op, (String, String)> {
        if !Op::takes_symbol(name) {
            if let Some(s) = &symbol {
                return Err((
                    String::new(),
                    format!("op `{name}` takes no name, found \"{s}\""),
                ));
            }
        }
        let mut a = Attrs {
            map: attrs,
            op: name,
        };
        let op = match name {
            "input" => Op::Input {
                name: a.symbol(symbol)?,
            },
            "weight" => {
                let name = a.symbol(symbol)?;
                let density = a.opt_float("density")?;
                let fold = a.rotation("fold")?;
                Op::Weight {
                    name,
                    density,
                    fold,
                }
            }
            "const" => Op::Const {
                value: a.floats("value")?,
            },
            "linear" => Op::Linear,
            "matmul" => Op::Matmul,
            "dequant" => Op::Dequant,
            "rotate" => Op::Rotate(a.rotation("kind")?.ok_or_else(|| {
                (
                    String::new(),
                    "`rotate` needs `kind = hadamard` or `kind = dense`".to_string(),
                )
            })?),
            "spmm" => Op::Spmm,
            "add" => Op::Add,
            "mul" => Op::Mul,
            "quantize_act" => Op::QuantizeAct(a.act("bits", "sym", "group")?.ok_or_else(|| {
                (
                    String::new(),
                    "`quantize_act` needs `bits` (4 or 8)".to_string(),
                )
            })?),
            "rmsnorm" => Op::Rmsnorm {
                eps: a.float("eps")?,
            },
            "rope" => Op::Rope {
                theta: a.float("theta")?,
                head_dim: a.u32("head_dim")?,
                style: a.rope_style("style")?,
            },
            "silu" => Op::Silu,
            "softmax" => Op::Softmax,
            "attention" => {
                let heads = a.u32("heads")?;
                let kv_heads = a.u32("kv_heads")?;
                let head_dim = a.u32("head_dim")?;
                let cache = a.opt_str("cache")?;
                let max_seq = match cache {
                    Some(_) => a.u32("max_seq")?,
                    None => 0,
                };
                let rope = match a.opt_float("rope_theta")? {
                    None => {
                        if a.map.contains_key("rope_style") {
                            return Err((
                                "rope_style".into(),
                                "`rope_style` needs `rope_theta`".into(),
                            ));
                        }
                        None
                    }
                    Some(theta) => Some(RopeAttrs {
                        theta,
                        style: a.rope_style("rope_style")?,
                    }),
                };
                Op::Attention(AttentionAttrs {
                    heads,
                    kv_heads,
                    head_dim,
                    cache,
                    max_seq,
                    rope,
                })
            }
            "embedding" => Op::Embedding,
            "qlinear" => {
                let rotate = a.rotation("rotate")?;
                let act = a.act("act_bits", "act_sym", "act_group")?;
                let silu_gate = match a.opt_ident("gate")?.as_deref() {
                    None => false,
                    Some("silu") => true,
                    Some(o) => {
                        return Err(("gate".into(), format!("unknown gate `{o}` (expected silu)")))
                    }
                };
                let out_act = a.act("out_act_bits", "out_act_sym", "out_act_group")?;
                Op::Qlinear(QLinearAttrs {
                    rotate,
                    act,
                    silu_gate,
                    out_act,
                })
            }
            "transpose" => Op::Transpose,
            "reshape" => Op::Reshape,
            "cast" => Op::Cast,
            _ => return Err((String::new(), format!("unknown op `{name}`"))),
        };
        if let Some(k) = a.map.keys().next() {
            return Err((k.clone(), format!("op `{name}` has no attribute `{k}`")));
        }
        Ok(op)
    }
}

fn push_rotation(v: &mut Vec<(&'static str, Attr)>, key: &'static str, r: &Rotation) {
    let kind = match r.kind {
        RotKind::Hadamard => "hadamard",
        RotKind::Dense => "dense",
    };
    v.push((key, Attr::Ident(kind.into())));
    if r.transpose {
        v.push((transpose_key(key), Attr::Bool(true)));
    }
}

/// The attribute holding a rotation's transpose flag.
fn transpose_key(key: &str) -> &'static str {
    if key == "fold" {
        "fold_transpose"
    } else {
        "transpose"
    }
}

/// Typed access to a generic attribute map, draining what it reads.
struct Attrs<'a> {
    map: &'a mut AttrMap,
    op: &'a str,
}

type AResult<T> = Result<T, (String, String)>;

impl Attrs<'_> {
    fn missing(&self, key: &str) -> (String, String) {
        (
            String::new(),
            format!("op `{}` needs attribute `{key}`", self.op),
        )
    }
    fn wrong(key: &str, want: &str, got: &Attr) -> (String, String) {
        (
            key.to_string(),
            format!("attribute `{key}` must be {want}, found `{got}`"),
        )
    }
    fn symbol(&self, s: Option<String>) -> AResult<String> {
        s.ok_or_else(|| {
            (
                String::new(),
                format!(
                    "op `{}` needs a quoted name, e.g. {} \"x\"",
                    self.op, self.op
                ),
            )
        })
    }
    fn opt_float(&mut self, key: &str) -> AResult<Option<f64>> {
        match self.map.remove(key) {
            None => Ok(None),
            Some(Attr::Float(x)) => Ok(Some(x)),
            Some(Attr::Int(i)) => Ok(Some(i as f64)),
            Some(o) => Err(Self::wrong(key, "a number", &o)),
        }
    }
    fn float(&mut self, key: &str) -> AResult<f64> {
        self.opt_float(key)?.ok_or_else(|| self.missing(key))
    }
    fn floats(&mut self, key: &str) -> AResult<Vec<f64>> {
        match self.map.remove(key) {
            None => Err(self.missing(key)),
            Some(Attr::Float(x)) => Ok(vec![x]),
            Some(Attr::Int(i)) => Ok(vec![i as f64]),
            Some(Attr::List(v)) => v
                .iter()
                .map(|a| match a {
                    Attr::Float(x) => Ok(*x),
                    Attr::Int(i) => Ok(*i as f64),
                    o => Err(Self::wrong(key, "a list of numbers", o)),
                })
                .collect(),
            Some(o) => Err(Self::wrong(key, "a number or a list of numbers", &o)),
        }
    }
    fn opt_int(&mut self, key: &str) -> AResult<Option<i64>> {
        match self.map.remove(key) {
            None => Ok(None),
            Some(Attr::Int(i)) => Ok(Some(i)),
            Some(o) => Err(Self::wrong(key, "an integer", &o)),
        }
    }
    fn u32(&mut self, key: &str) -> AResult<u32> {
        let v = self.opt_int(key)?.ok_or_else(|| self.missing(key))?;
        u32::try_from(v).ok().filter(|&v| v > 0).ok_or_else(|| {
            (
                key.to_string(),
                format!("attribute `{key}` must be a positive integer, found {v}"),
            )
        })
    }
    fn opt_bool(&mut self, key: &str) -> AResult<Option<bool>> {
        match self.map.remove(key) {
            None => Ok(None),
            Some(Attr::Bool(b)) => Ok(Some(b)),
            Some(o) => Err(Self::wrong(key, "true or false", &o)),
        }
    }
    fn opt_ident(&mut self, key: &str) -> AResult<Option<String>> {
        match self.map.remove(key) {
            None => Ok(None),
            Some(Attr::Ident(s)) => Ok(Some(s)),
            Some(o) => Err(Self::wrong(key, "an identifier", &o)),
        }
    }
    fn opt_str(&mut self, key: &str) -> AResult<Option<String>> {
        match self.map.remove(key) {
            None => Ok(None),
            Some(Attr::Str(s)) => Ok(Some(s)),
            Some(o) => Err(Self::wrong(key, "a quoted string", &o)),
        }
    }
    fn rope_style(&mut self, key: &str) -> AResult<RopeStyle> {
        match self.opt_ident(key)?.as_deref() {
            None | Some("half") => Ok(RopeStyle::Half),
            Some("interleaved") => Ok(RopeStyle::Interleaved),
            Some(o) => Err((
                key.into(),
                format!("unknown RoPE style `{o}` (expected half or interleaved)"),
            )),
        }
    }
    fn rotation(&mut self, key: &str) -> AResult<Option<Rotation>> {
        let kind = match self.opt_ident(key)?.as_deref() {
            None => {
                let tk = transpose_key(key);
                if self.map.contains_key(tk) {
                    return Err((tk.into(), format!("`{tk}` needs `{key}`")));
                }
                return Ok(None);
            }
            Some("hadamard") => RotKind::Hadamard,
            Some("dense") => RotKind::Dense,
            Some(o) => {
                return Err((
                    key.into(),
                    format!("unknown rotation `{o}` (expected hadamard or dense)"),
                ))
            }
        };
        let transpose = self.opt_bool(transpose_key(key))?.unwrap_or(false);
        Ok(Some(Rotation { kind, transpose }))
    }
    fn act(&mut self, bits_key: &str, sym_key: &str, group_key: &str) -> AResult<Option<ActQuant>> {
        let Some(bits) = self.opt_int(bits_key)? else {
            for key in [sym_key, group_key] {
                if self.map.contains_key(key) {
                    return Err((key.into(), format!("`{key}` needs `{bits_key}`")));
                }
            }
            return Ok(None);
        };
        if !matches!(bits, 4 | 8) {
            return Err((
                bits_key.into(),
                format!("activation quantization supports 4 or 8 bits, not {bits}"),
            ));
        }
        let sym = self.opt_bool(sym_key)?.unwrap_or(true);
        let group = match self.opt_int(group_key)? {
            None => None,
            Some(g) if (1..=i64::from(u32::MAX)).contains(&g) => Some(g as u32),
            Some(g) => {
                return Err((
                    group_key.into(),
                    format!("an activation group must be positive, not {g}"),
                ))
            }
        };
        Ok(Some(ActQuant {
            bits: bits as u8,
            sym,
            group,
        }))
    }
}
