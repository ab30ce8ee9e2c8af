//! The Llama-family graph builder: embedding, N decoder blocks (RMSNorm, GQA attention with RoPE
//! and a KV cache, SwiGLU MLP), a final norm and a tied or untied head, as `.qir` text.
//!
//! Every importer (GGUF, HF folders) goes through [`build_qir`]: it supplies a [`LlamaConfig`],
//! the checkpoint name of each [`Role`] and each weight's type (a quantized scheme per layer, or
//! a float dtype). The text is the canonical IR, so what `qkc import` writes is exactly what runs.
//!
//! One graph computes one step of `T` tokens at positions `pos` (prefill or decode): inputs
//! `ids: i32[T]` and `pos: i32[T]`, output `logits: f32[T, vocab]`. The KV caches (`layer{i}`)
//! persist between steps inside whichever executor runs the graph.

use std::fmt::Write as _;

use qkc_ir::ops::RopeStyle;
use qkc_ir::{Graph, Type};

use crate::ModelError;

/// The architecture parameters of a Llama-family decoder.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LlamaConfig {
    /// Model name (the graph's name; sanitized to an identifier).
    pub name: String,
    /// Vocabulary size (rows of the embedding).
    pub vocab: usize,
    /// Hidden size.
    pub hidden: usize,
    /// MLP intermediate size.
    pub ffn: usize,
    /// Decoder blocks.
    pub layers: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads (GQA when fewer than `heads`).
    pub kv_heads: usize,
    /// Head dimension.
    pub head_dim: usize,
    /// RoPE base.
    pub rope_theta: f64,
    /// RoPE pairing: GGUF files store q/k rows permuted for interleaved pairs; HF uses halves.
    pub rope_style: RopeStyle,
    /// RMSNorm epsilon.
    pub eps: f64,
    /// KV cache capacity in tokens.
    pub max_seq: usize,
    /// The head reuses the token embedding.
    pub tied: bool,
    /// The model's training context (informational; `max_seq` is what the caches hold).
    pub context: usize,
    /// Symmetric activation quantization (8 or 4 bits) in front of every quantized linear layer,
    /// with a scale per 32-element block of K (per token when K is not a multiple of 32), as
    /// llama.cpp's integer dot products compute it; `None`: f32 activations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act_bits: Option<u8>,
    /// With `act_bits`: one activation scale per this many consecutive elements of a token;
    /// `None`: 32 where K is a multiple of 32 (llama.cpp's Q8 activation blocks), else per token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act_group: Option<u32>,
    /// The q/k/v projections add a bias (Qwen2).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub attn_bias: bool,
}

impl LlamaConfig {
    /// Check the invariants the graph relies on; the message names the field.
    pub fn validate(&self) -> Result<(), ModelError> {
        let bad = |what: String| Err(ModelError::Config(what));
        for (name, v) in [
            ("vocab", self.vocab),
            ("hidden", self.hidden),
            ("ffn", self.ffn),
            ("layers", self.layers),
            ("heads", self.heads),
            ("kv_heads", self.kv_heads),
            ("head_dim", self.head_dim),
            ("max_seq", self.max_seq),
        ] {
            if v == 0 {
                return bad(format!("`{name}` must be positive"));
            }
        }
        if self.heads % self.kv_heads != 0 {
            return bad(format!(
                "{} query heads are not a multiple of {} KV heads",
                self.heads, self.kv_heads
            ));
        }
        if self.head_dim % 2 != 0 {
            return bad(format!(
                "head_dim {} is odd; RoPE needs pairs",
                self.head_dim
            ));
        }
        if !(self.rope_theta.is_finite() && self.rope_theta > 0.0) {
            return bad(format!(
                "rope_theta {} is not a positive number",
                self.rope_theta
            ));
        }
        if let Some(b) = self.act_bits {
            if b != 8 && b != 4 {
                return bad(format!(
                    "activation quantization takes 4 or 8 bits, not {b}"
                ));
            }
        }
        match (self.act_group, self.act_bits) {
            (Some(0), _) => return bad("act_group must be positive".into()),
            (Some(_), None) => return bad("act_group needs act_bits".into()),
            _ => {}
        }
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return bad(format!(
                "the RMSNorm epsilon {} is not a positive number",
                self.eps
            ));
        }
        Ok(())
    }

    /// Query width `heads · head_dim`.
    pub fn q_dim(&self) -> usize {
        self.heads * self.head_dim
    }

    /// Key/value width `kv_heads · head_dim`.
    pub fn kv_dim(&self) -> usize {
        self.kv_heads * self.head_dim
    }

    /// Shape `[N, K]` of a role's weight (`[len]` for norms).
    pub fn shape(&self, role: Role) -> Vec<usize> {
        let (h, f) = (self.hidden, self.ffn);
        match role {
            Role::Embedding | Role::Head => vec![self.vocab, h],
            Role::FinalNorm | Role::AttnNorm(_) | Role::FfnNorm(_) => vec![h],
            Role::QBias(_) => vec![self.q_dim()],
            Role::KBias(_) | Role::VBias(_) => vec![self.kv_dim()],
            Role::Q(_) => vec![self.q_dim(), h],
            Role::K(_) | Role::V(_) => vec![self.kv_dim(), h],
            Role::O(_) => vec![h, self.q_dim()],
            Role::Gate(_) | Role::Up(_) => vec![f, h],
            Role::Down(_) => vec![h, f],
        }
    }

    /// Every weight role of the model, in checkpoint order (the head only when untied).
    pub fn roles(&self) -> Vec<Role> {
        let mut v = vec![Role::Embedding];
        for l in 0..self.layers {
            v.extend([Role::AttnNorm(l), Role::Q(l), Role::K(l), Role::V(l)]);
            if self.attn_bias {
                v.extend([Role::QBias(l), Role::KBias(l), Role::VBias(l)]);
            }
            v.extend([
                Role::O(l),
                Role::FfnNorm(l),
                Role::Gate(l),
                Role::Up(l),
                Role::Down(l),
            ]);
        }
        v.push(Role::FinalNorm);
        if !self.tied {
            v.push(Role::Head);
        }
        v
    }
}

/// One weight of the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Token embedding `[vocab, hidden]` (gathered).
    Embedding,
    /// Output head `[vocab, hidden]` (the embedding's tensor when tied; see [`Binding::name`]).
    Head,
    /// Final RMSNorm gain.
    FinalNorm,
    /// Block `l`'s attention RMSNorm gain.
    AttnNorm(usize),
    /// q projection.
    Q(usize),
    /// k projection.
    K(usize),
    /// v projection.
    V(usize),
    /// Attention output projection.
    O(usize),
    /// q projection bias (with [`LlamaConfig::attn_bias`]).
    QBias(usize),
    /// k projection bias.
    KBias(usize),
    /// v projection bias.
    VBias(usize),
    /// Block `l`'s MLP RMSNorm gain.
    FfnNorm(usize),
    /// MLP gate projection.
    Gate(usize),
    /// MLP up projection.
    Up(usize),
    /// MLP down projection.
    Down(usize),
}

impl Role {
    /// The linear layers (quantizable), as opposed to norms and the embedding table.
    pub fn is_linear(self) -> bool {
        !matches!(
            self,
            Role::Embedding
                | Role::FinalNorm
                | Role::AttnNorm(_)
                | Role::FfnNorm(_)
                | Role::QBias(_)
                | Role::KBias(_)
                | Role::VBias(_)
        )
    }

    /// llama.cpp's GGUF tensor name.
    pub fn gguf_name(self) -> String {
        match self {
            Role::Embedding => "token_embd.weight".into(),
            Role::Head => "output.weight".into(),
            Role::FinalNorm => "output_norm.weight".into(),
            Role::AttnNorm(l) => format!("blk.{l}.attn_norm.weight"),
            Role::Q(l) => format!("blk.{l}.attn_q.weight"),
            Role::K(l) => format!("blk.{l}.attn_k.weight"),
            Role::V(l) => format!("blk.{l}.attn_v.weight"),
            Role::O(l) => format!("blk.{l}.attn_output.weight"),
            Role::QBias(l) => format!("blk.{l}.attn_q.bias"),
            Role::KBias(l) => format!("blk.{l}.attn_k.bias"),
            Role::VBias(l) => format!("blk.{l}.attn_v.bias"),
            Role::FfnNorm(l) => format!("blk.{l}.ffn_norm.weight"),
            Role::Gate(l) => format!("blk.{l}.ffn_gate.weight"),
            Role::Up(l) => format!("blk.{l}.ffn_up.weight"),
            Role::Down(l) => format!("blk.{l}.ffn_down.weight"),
        }
    }

    /// The HF checkpoint tensor name (`{module}.weight`, `{module}.bias` for bias roles).
    pub fn hf_tensor(self) -> String {
        match self {
            Role::QBias(_) | Role::KBias(_) | Role::VBias(_) => format!("{}.bias", self.hf_name()),
            _ => format!("{}.weight", self.hf_name()),
        }
    }

    /// The HF transformers module name (without `.weight`; a bias role names its module).
    pub fn hf_name(self) -> String {
        match self {
            Role::QBias(l) => Role::Q(l).hf_name(),
            Role::KBias(l) => Role::K(l).hf_name(),
            Role::VBias(l) => Role::V(l).hf_name(),
            Role::Embedding => "model.embed_tokens".into(),
            Role::Head => "lm_head".into(),
            Role::FinalNorm => "model.norm".into(),
            Role::AttnNorm(l) => format!("model.layers.{l}.input_layernorm"),
            Role::Q(l) => format!("model.layers.{l}.self_attn.q_proj"),
            Role::K(l) => format!("model.layers.{l}.self_attn.k_proj"),
            Role::V(l) => format!("model.layers.{l}.self_attn.v_proj"),
            Role::O(l) => format!("model.layers.{l}.self_attn.o_proj"),
            Role::FfnNorm(l) => format!("model.layers.{l}.post_attention_layernorm"),
            Role::Gate(l) => format!("model.layers.{l}.mlp.gate_proj"),
            Role::Up(l) => format!("model.layers.{l}.mlp.up_proj"),
            Role::Down(l) => format!("model.layers.{l}.mlp.down_proj"),
        }
    }
}

/// How each weight is named and typed in the graph.
pub struct Binding<'a> {
    /// Checkpoint name of a role's tensor. A tied head keeps its own name (`output.weight`,
    /// `lm_head`) and the weight source resolves it to the embedding, as llama.cpp does: one
    /// checkpoint tensor then has two views (a float table to gather from, and the head's
    /// quantized form), which the IR keeps as two weights.
    pub name: &'a dyn Fn(Role) -> String,
    /// The element type of a role's weight as IR text without the shape: `f32`, `f16`, or
    /// `q<int4:g32:min>`. For a tied head this is the type the head reads the embedding as.
    pub ty: &'a dyn Fn(Role) -> String,
}

fn ident(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if !out.starts_with(|c: char| c.is_ascii_alphabetic()) {
        out.insert(0, 'm');
    }
    out
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// The model as `.qir` text (see the module docs for its inputs and output).
pub fn build_qir(cfg: &LlamaConfig, b: &Binding<'_>) -> Result<String, ModelError> {
    cfg.validate()?;
    let mut s = String::new();
    let w = &mut s;
    let (h, f, qd, kvd) = (cfg.hidden, cfg.ffn, cfg.q_dim(), cfg.kv_dim());
    let style = match cfg.rope_style {
        RopeStyle::Half => "",
        RopeStyle::Interleaved => ", style = interleaved",
    };
    let weight = |w: &mut String, var: &str, role: Role| {
        let shape = cfg.shape(role);
        let dims: Vec<String> = shape.iter().map(ToString::to_string).collect();
        let _ = writeln!(
            w,
            "  %{var} = weight \"{}\" : {}[{}]",
            esc(&(b.name)(role)),
            (b.ty)(role),
            dims.join(", ")
        );
    };
    let lin = |w: &mut String, out: &str, x: &str, wv: &str, role: Role, n: usize| {
        let quant = (b.ty)(role).starts_with("q<");
        if quant {
            let k = cfg.shape(role)[1];
            let _ = writeln!(w, "  %{wv}_f = dequant(%{wv}) : f32[{n}, {k}]");
            let x = match cfg.act_bits {
                Some(bits) => {
                    // one quantized copy per (input, layer): CSE merges the q/k/v and gate/up ones
                    // --act-group, else per 32-block scales (ggml's Q8 activations) when K
                    // allows, else per token
                    let group = cfg
                        .act_group
                        .or((k % 32 == 0).then_some(32))
                        .map_or(String::new(), |g| format!(", group = {g}"));
                    let _ = writeln!(
                        w,
                        "  %{out}_xq = quantize_act(%{x}) {{bits = {bits}{group}}} : f32[T, {k}]"
                    );
                    format!("{out}_xq")
                }
                None => x.to_string(),
            };
            let _ = writeln!(w, "  %{out} = linear(%{x}, %{wv}_f) : f32[T, {n}]");
        } else {
            let _ = writeln!(w, "  %{out} = linear(%{x}, %{wv}) : f32[T, {n}]");
        }
    };
    let _ = writeln!(
        w,
        "// {}: a Llama-family decoder built by qkc-model (hidden {h}, FFN {f}, {} blocks, {} query / {} KV heads of {}, RoPE base {}, {} head).",
        cfg.name, cfg.layers, cfg.heads, cfg.kv_heads, cfg.head_dim, cfg.rope_theta,
        if cfg.tied { "tied" } else { "untied" }
    );
    let _ = writeln!(w, "graph @{} {{", ident(&cfg.name));
    let _ = writeln!(w, "  %ids = input \"ids\" : i32[T]");
    let _ = writeln!(w, "  %pos = input \"pos\" : i32[T]");
    weight(w, "embd", Role::Embedding);
    let _ = writeln!(w, "  %h0 = embedding(%ids, %embd) : f32[T, {h}]");
    for l in 0..cfg.layers {
        let p = format!("l{l}_");
        let _ = writeln!(w, "\n  // block {l}");
        weight(w, &format!("{p}attn_norm"), Role::AttnNorm(l));
        weight(w, &format!("{p}wq"), Role::Q(l));
        weight(w, &format!("{p}wk"), Role::K(l));
        weight(w, &format!("{p}wv"), Role::V(l));
        weight(w, &format!("{p}wo"), Role::O(l));
        weight(w, &format!("{p}ffn_norm"), Role::FfnNorm(l));
        weight(w, &format!("{p}wg"), Role::Gate(l));
        weight(w, &format!("{p}wu"), Role::Up(l));
        weight(w, &format!("{p}wd"), Role::Down(l));
        let _ = writeln!(
            w,
            "  %{p}x = rmsnorm(%h{l}, %{p}attn_norm) {{eps = {:?}}} : f32[T, {h}]",
            cfg.eps
        );
        for (t, role, bias, n) in [
            ("q", Role::Q(l), Role::QBias(l), qd),
            ("k", Role::K(l), Role::KBias(l), kvd),
            ("v", Role::V(l), Role::VBias(l), kvd),
        ] {
            if cfg.attn_bias {
                weight(w, &format!("{p}b{t}"), bias);
                let raw = format!("{p}{t}_nb");
                lin(w, &raw, &format!("{p}x"), &format!("{p}w{t}"), role, n);
                let _ = writeln!(w, "  %{p}{t} = add(%{raw}, %{p}b{t}) : f32[T, {n}]");
            } else {
                lin(
                    w,
                    &format!("{p}{t}"),
                    &format!("{p}x"),
                    &format!("{p}w{t}"),
                    role,
                    n,
                );
            }
        }
        for (t, n) in [("q", qd), ("k", kvd)] {
            let _ = writeln!(
                w,
                "  %{p}{t}_rot = rope(%{p}{t}, %pos) {{theta = {:?}, head_dim = {}{style}}} : f32[T, {n}]",
                cfg.rope_theta, cfg.head_dim
            );
        }
        let _ = writeln!(
            w,
            "  %{p}attn = attention(%{p}q_rot, %{p}k_rot, %{p}v) {{heads = {}, kv_heads = {}, head_dim = {}, cache = \"layer{l}\", max_seq = {}}} : f32[T, {qd}]",
            cfg.heads, cfg.kv_heads, cfg.head_dim, cfg.max_seq
        );
        lin(
            w,
            &format!("{p}o"),
            &format!("{p}attn"),
            &format!("{p}wo"),
            Role::O(l),
            h,
        );
        let _ = writeln!(w, "  %{p}h = add(%h{l}, %{p}o) : f32[T, {h}]");
        let _ = writeln!(
            w,
            "  %{p}x2 = rmsnorm(%{p}h, %{p}ffn_norm) {{eps = {:?}}} : f32[T, {h}]",
            cfg.eps
        );
        lin(
            w,
            &format!("{p}gate"),
            &format!("{p}x2"),
            &format!("{p}wg"),
            Role::Gate(l),
            f,
        );
        lin(
            w,
            &format!("{p}up"),
            &format!("{p}x2"),
            &format!("{p}wu"),
            Role::Up(l),
            f,
        );
        let _ = writeln!(w, "  %{p}act = silu(%{p}gate) : f32[T, {f}]");
        let _ = writeln!(w, "  %{p}m = mul(%{p}act, %{p}up) : f32[T, {f}]");
        lin(
            w,
            &format!("{p}down"),
            &format!("{p}m"),
            &format!("{p}wd"),
            Role::Down(l),
            h,
        );
        let _ = writeln!(w, "  %h{} = add(%{p}h, %{p}down) : f32[T, {h}]", l + 1);
    }
    let _ = writeln!(w, "\n  // head");
    weight(w, "final_norm", Role::FinalNorm);
    weight(w, "head", Role::Head);
    let _ = writeln!(
        w,
        "  %hn = rmsnorm(%h{}, %final_norm) {{eps = {:?}}} : f32[T, {h}]",
        cfg.layers, cfg.eps
    );
    lin(w, "logits", "hn", "head", Role::Head, cfg.vocab);
    let _ = writeln!(w, "  return %logits");
    let _ = writeln!(w, "}}");
    Ok(s)
}

/// [`build_qir`], parsed and verified.
pub fn build_graph(cfg: &LlamaConfig, b: &Binding<'_>) -> Result<Graph, ModelError> {
    let text = build_qir(cfg, b)?;
    parse_graph(&text)
}

/// Parse and verify a model graph.
pub fn parse_graph(text: &str) -> Result<Graph, ModelError> {
    let g = qkc_ir::parse(text).map_err(|d| ModelError::Graph(d.to_string()))?;
    if let Err(diags) = qkc_ir::verify::verify(&g) {
        let msgs: Vec<String> = diags.iter().map(ToString::to_string).collect();
        return Err(ModelError::Graph(msgs.join("\n")));
    }
    Ok(g)
}

/// The element type text of a dense or quantized weight type (for [`Binding::ty`]).
pub fn type_head(ty: &Type) -> String {
    match ty {
        Type::Tensor { dtype, .. } => dtype.to_string(),
        Type::Quant { scheme, .. } => format!("q<{scheme}>"),
        Type::Sparse { .. } => "csr".into(),
    }
}
