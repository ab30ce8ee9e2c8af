//! Tokenizers: built from GGUF tokenizer metadata (`tokenizer.ggml.*`) or loaded from an HF
//! `tokenizer.json`, on top of Hugging Face's `tokenizers` crate (pure Rust: `fancy-regex`, no
//! Oniguruma).
//!
//! GGUF vocabularies supported:
//! - `tokenizer.ggml.model = "gpt2"`: byte-level BPE. The GGUF `tokens` are already in GPT-2's
//!   byte-to-unicode form and `merges` are `"a b"` strings. The pre-tokenizer is chosen by
//!   `tokenizer.ggml.pre` (see [`pre_tokenizer_for`]); an unknown or missing `pre` is an error
//!   ([`TokenizerError::UnknownPreTokenizer`], [`TokenizerError::MissingPreTokenizer`]) rather
//!   than a silent fallback: a caller that knows better may set [`Vocab::pre`] itself (for
//!   example to `"gpt2"`) and try again.
//! - `tokenizer.ggml.model = "llama"` (SentencePiece): BPE over `▁`-words with byte fallback,
//!   merges derived from the token scores the way HF's `LlamaTokenizerFast` converter does it.
//!
//! Token types (`tokenizer.ggml.token_type`, llama.cpp's enum): 3 (CONTROL) tokens are special
//! added tokens and 4 (USER_DEFINED) tokens are plain added tokens; both are matched whole in
//! the input text before pre-tokenization, so `<|im_start|>` written in a prompt maps to its id.
//! A token string that occurs twice in `tokens` encodes to its first id (HF's vocabulary is a
//! map); the later ids decode as the first.
//! Decoding keeps special tokens (`decode(encode(s)) == s`); [`Tokenizer::is_special`] tells a
//! caller which ids to hide.

use std::path::Path;

use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::decoders::DecoderWrapper;
use tokenizers::models::bpe::{Vocab as BpeVocab, BPE};
use tokenizers::normalizers::{NormalizerWrapper, Sequence as NormalizerSequence};
use tokenizers::normalizers::{Prepend, Replace};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence as PreSequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::{AddedToken, SplitDelimiterBehavior};

/// llama.cpp's token types (`tokenizer.ggml.token_type`).
pub mod token_type {
    pub const UNDEFINED: i32 = 0;
    pub const NORMAL: i32 = 1;
    pub const UNKNOWN: i32 = 2;
    pub const CONTROL: i32 = 3;
    pub const USER_DEFINED: i32 = 4;
    pub const UNUSED: i32 = 5;
    pub const BYTE: i32 = 6;
}

/// The Llama-3 pre-tokenizer regex (HF's `tokenizer.json` for Llama 3; llama.cpp's `LLAMA3`).
pub const LLAMA3_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The Qwen2 pre-tokenizer regex: Llama-3's with single digits (llama.cpp's `QWEN2`).
pub const QWEN2_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Tokenizer metadata as stored in a GGUF file (`tokenizer.ggml.*`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Vocab {
    /// `tokenizer.ggml.model`: `"gpt2"` (byte-level BPE) or `"llama"` (SentencePiece).
    pub model: String,
    /// `tokenizer.ggml.pre`, e.g. `"smollm"`, `"gpt2"`, `"llama-bpe"`, `"qwen2"`.
    pub pre: Option<String>,
    /// `tokenizer.ggml.tokens`, indexed by id.
    pub tokens: Vec<String>,
    /// `tokenizer.ggml.merges`: `"a b"` strings, highest priority first (BPE only).
    pub merges: Vec<String>,
    /// `tokenizer.ggml.token_type`, indexed by id (empty: all NORMAL).
    pub token_type: Vec<i32>,
    /// `tokenizer.ggml.scores`, indexed by id (SentencePiece only; empty otherwise).
    pub scores: Vec<f32>,
    /// `tokenizer.ggml.bos_token_id`.
    pub bos: Option<u32>,
    /// `tokenizer.ggml.eos_token_id`.
    pub eos: Option<u32>,
    /// `tokenizer.ggml.add_bos_token`.
    pub add_bos: bool,
    /// `tokenizer.ggml.add_space_prefix` (SentencePiece only): prepend `▁` to the text and
    /// strip one leading space when decoding. `None` means the SentencePiece default, `true`.
    pub add_space_prefix: Option<bool>,
}

/// Why a tokenizer could not be built, or could not encode or decode.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error("unknown tokenizer model type `{0}` (supported: \"gpt2\" byte-level BPE, \"llama\" SentencePiece)")]
    UnknownModel(String),
    #[error("unknown pre-tokenizer `{0}` for a BPE vocabulary (supported: {supported}); set Vocab::pre to one of them if you know it matches", supported = SUPPORTED_PRE.join(", "))]
    UnknownPreTokenizer(String),
    #[error("a BPE vocabulary needs tokenizer.ggml.pre to pick its pre-tokenizer, and it is missing (supported: {supported})", supported = SUPPORTED_PRE.join(", "))]
    MissingPreTokenizer,
    #[error("the vocabulary is empty")]
    EmptyVocab,
    #[error(
        "bad merge line at index {index}: {line:?} (expected two tokens separated by a space)"
    )]
    BadMerge { index: usize, line: String },
    #[error(
        "merge at index {index} ({line:?}) uses token {token:?}, which is not in the vocabulary"
    )]
    MergeTokenNotInVocab {
        index: usize,
        line: String,
        token: String,
    },
    #[error("{what} has {got} entries but the vocabulary has {expected} tokens")]
    LengthMismatch {
        what: &'static str,
        got: usize,
        expected: usize,
    },
    #[error("{what} token id {id} is out of range (vocabulary of {vocab_size})")]
    SpecialIdOutOfRange {
        what: &'static str,
        id: u32,
        vocab_size: usize,
    },
    #[error("token id {id} is out of range (vocabulary of {vocab_size})")]
    IdOutOfRange { id: u32, vocab_size: usize },
    #[error("reading tokenizer file {path}: {message}")]
    File { path: String, message: String },
    #[error("building the tokenizer: {0}")]
    Build(String),
    #[error("encoding: {0}")]
    Encode(String),
    #[error("decoding: {0}")]
    Decode(String),
}

/// The `tokenizer.ggml.pre` values this module understands (BPE vocabularies).
pub const SUPPORTED_PRE: &[&str] = &[
    "gpt2",
    "gpt-2",
    "smollm",
    "starcoder",
    "refact",
    "llama3",
    "llama-v3",
    "llama-bpe",
    "qwen2",
    "deepseek-r1-qwen",
];

/// The pre-tokenizer for a byte-level BPE vocabulary, by its `tokenizer.ggml.pre` name.
/// Also returns whether BPE should skip merges for words found whole in the vocabulary
/// (`ignore_merges`, set by Llama 3's tokenizer.json and by llama.cpp for `LLAMA3`).
///
/// Qwen2's tokenizer.json also NFC-normalizes the text; like llama.cpp, this does not (the ids
/// differ only for text that is not already in NFC).
pub fn pre_tokenizer_for(pre: &str) -> Result<(PreTokenizerWrapper, bool), TokenizerError> {
    let byte_level =
        |use_regex: bool| -> PreTokenizerWrapper { ByteLevel::new(false, true, use_regex).into() };
    let split = |regex: &str| -> Result<PreTokenizerWrapper, TokenizerError> {
        Split::new(
            SplitPattern::Regex(regex.to_string()),
            SplitDelimiterBehavior::Isolated,
            false,
        )
        .map(Into::into)
        .map_err(|e| TokenizerError::Build(format!("pre-tokenizer regex for `{pre}`: {e}")))
    };
    Ok(match pre {
        // GPT-2's regex inside ByteLevel.
        "gpt2" | "gpt-2" => (byte_level(true), false),
        // Every digit alone, then GPT-2's regex (HF's SmolLM2/StarCoder tokenizer.json;
        // llama.cpp's SMOLLM/STARCODER/REFACT).
        "smollm" | "starcoder" | "refact" => (
            PreSequence::new(vec![Digits::new(true).into(), byte_level(true)]).into(),
            false,
        ),
        "llama3" | "llama-v3" | "llama-bpe" => (
            PreSequence::new(vec![split(LLAMA3_REGEX)?, byte_level(false)]).into(),
            true,
        ),
        "qwen2" | "deepseek-r1-qwen" => (
            PreSequence::new(vec![split(QWEN2_REGEX)?, byte_level(false)]).into(),
            false,
        ),
        other => return Err(TokenizerError::UnknownPreTokenizer(other.to_string())),
    })
}

/// A text tokenizer: encode text to token ids and decode them back.
#[derive(Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    bos: Option<u32>,
    eos: Option<u32>,
    /// Prepend BOS ourselves on `encode(.., add_special = true)` (GGUF vocabularies); a
    /// tokenizer.json carries its own post-processor instead.
    add_bos: bool,
    from_gguf: bool,
    special: Vec<bool>,
    /// Ids whose token string occurred earlier in the vocabulary -> that earlier id.
    alias: std::collections::HashMap<u32, u32>,
    vocab_size: usize,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("vocab_size", &self.vocab_size)
            .field("bos", &self.bos)
            .field("eos", &self.eos)
            .field("add_bos", &self.add_bos)
            .finish_non_exhaustive()
    }
}

fn split_merge(index: usize, line: &str) -> Result<(String, String), TokenizerError> {
    // Like llama.cpp: split at the first space after the first character (a token may itself
    // start with a space in non-byte-level vocabularies).
    let bad = || TokenizerError::BadMerge {
        index,
        line: line.to_string(),
    };
    let start = line.chars().next().map(char::len_utf8).ok_or_else(bad)?;
    let pos = line[start..].find(' ').map(|p| p + start).ok_or_else(bad)?;
    let (a, b) = (&line[..pos], &line[pos + 1..]);
    if a.is_empty() || b.is_empty() {
        return Err(bad());
    }
    Ok((a.to_string(), b.to_string()))
}

/// Merges for a SentencePiece vocabulary, derived from the token scores like HF's
/// `SentencePieceExtractor`: every split of a normal token into two vocabulary pieces is a
/// merge, ranked by the merged token's score (then by the pieces' ids).
fn spm_merges(v: &Vocab, vocab: &BpeVocab) -> Vec<(String, String)> {
    let mut ranked: Vec<(f32, u32, u32, String, String)> = Vec::new();
    for (id, tok) in v.tokens.iter().enumerate() {
        let ty = v.token_type.get(id).copied().unwrap_or(token_type::NORMAL);
        if ty != token_type::NORMAL && ty != token_type::USER_DEFINED {
            continue;
        }
        let score = v.scores.get(id).copied().unwrap_or(0.0);
        for (pos, _) in tok.char_indices().skip(1) {
            let (a, b) = tok.split_at(pos);
            if let (Some(&ia), Some(&ib)) = (vocab.get(a), vocab.get(b)) {
                ranked.push((score, ia, ib, a.to_string(), b.to_string()));
            }
        }
    }
    ranked.sort_by(|x, y| y.0.total_cmp(&x.0).then(x.1.cmp(&y.1)).then(x.2.cmp(&y.2)));
    ranked.into_iter().map(|(_, _, _, a, b)| (a, b)).collect()
}

impl Tokenizer {
    /// Build a tokenizer from GGUF tokenizer metadata.
    pub fn from_gguf_vocab(v: &Vocab) -> Result<Tokenizer, TokenizerError> {
        let n = v.tokens.len();
        if n == 0 {
            return Err(TokenizerError::EmptyVocab);
        }
        if !v.token_type.is_empty() && v.token_type.len() != n {
            return Err(TokenizerError::LengthMismatch {
                what: "tokenizer.ggml.token_type",
                got: v.token_type.len(),
                expected: n,
            });
        }
        for (what, id) in [("BOS", v.bos), ("EOS", v.eos)] {
            if let Some(id) = id {
                if id as usize >= n {
                    return Err(TokenizerError::SpecialIdOutOfRange {
                        what,
                        id,
                        vocab_size: n,
                    });
                }
            }
        }
        let ty = |id: usize| v.token_type.get(id).copied().unwrap_or(token_type::NORMAL);

        // Token -> id; a duplicated token string keeps its first id (HF's vocab is a map).
        let mut vocab = BpeVocab::with_capacity(n);
        let mut alias = std::collections::HashMap::new();
        for (id, tok) in v.tokens.iter().enumerate() {
            let first = *vocab.entry(tok.clone()).or_insert(id as u32);
            if first != id as u32 {
                alias.insert(id as u32, first);
            }
        }

        let mut inner = match v.model.as_str() {
            "gpt2" => {
                let pre = v
                    .pre
                    .as_deref()
                    .ok_or(TokenizerError::MissingPreTokenizer)?;
                let (pre_tokenizer, ignore_merges) = pre_tokenizer_for(pre)?;
                let mut merges = Vec::with_capacity(v.merges.len());
                for (index, line) in v.merges.iter().enumerate() {
                    let (a, b) = split_merge(index, line)?;
                    for token in [&a, &b] {
                        if !vocab.contains_key(token.as_str()) {
                            return Err(TokenizerError::MergeTokenNotInVocab {
                                index,
                                line: line.clone(),
                                token: token.clone(),
                            });
                        }
                    }
                    merges.push((a, b));
                }
                let bpe = BPE::builder()
                    .vocab_and_merges(vocab, merges)
                    .ignore_merges(ignore_merges)
                    .build()
                    .map_err(|e| TokenizerError::Build(e.to_string()))?;
                let mut t = tokenizers::Tokenizer::new(bpe);
                t.with_pre_tokenizer(Some(pre_tokenizer));
                t.with_decoder(Some(ByteLevel::default()));
                t
            }
            "llama" => {
                if !v.scores.is_empty() && v.scores.len() != n {
                    return Err(TokenizerError::LengthMismatch {
                        what: "tokenizer.ggml.scores",
                        got: v.scores.len(),
                        expected: n,
                    });
                }
                let merges = spm_merges(v, &vocab);
                let unk = (0..n)
                    .find(|&id| ty(id) == token_type::UNKNOWN)
                    .map(|id| v.tokens[id].clone());
                let mut builder = BPE::builder()
                    .vocab_and_merges(vocab, merges)
                    .byte_fallback(true)
                    .fuse_unk(true);
                if let Some(unk) = unk {
                    builder = builder.unk_token(unk);
                }
                let bpe = builder
                    .build()
                    .map_err(|e| TokenizerError::Build(e.to_string()))?;
                let mut t = tokenizers::Tokenizer::new(bpe);
                let space_prefix = v.add_space_prefix.unwrap_or(true);
                let replace = |from: &str, to: &str| {
                    Replace::new(from, to).map_err(|e| TokenizerError::Build(e.to_string()))
                };
                let mut normalizers: Vec<NormalizerWrapper> = Vec::new();
                if space_prefix {
                    normalizers.push(Prepend::new("▁".to_string()).into());
                }
                normalizers.push(replace(" ", "▁")?.into());
                t.with_normalizer(Some(NormalizerSequence::new(normalizers)));
                let mut decoders: Vec<DecoderWrapper> = vec![
                    replace("▁", " ")?.into(),
                    ByteFallback::default().into(),
                    Fuse::default().into(),
                ];
                if space_prefix {
                    decoders.push(Strip::new(' ', 1, 0).into());
                }
                let decoder: DecoderWrapper = DecoderSequence::new(decoders).into();
                t.with_decoder(Some(decoder));
                t
            }
            other => return Err(TokenizerError::UnknownModel(other.to_string())),
        };

        // Control tokens are special added tokens, user-defined ones plain added tokens: both
        // are matched whole in the text before pre-tokenization.
        let mut special = vec![false; n];
        let mut control = Vec::new();
        let mut user = Vec::new();
        for (id, tok) in v.tokens.iter().enumerate() {
            match ty(id) {
                token_type::CONTROL => {
                    special[id] = true;
                    control.push(AddedToken::from(tok.clone(), true).normalized(false));
                }
                token_type::USER_DEFINED => {
                    user.push(AddedToken::from(tok.clone(), false).normalized(false));
                }
                _ => {}
            }
        }
        for id in [v.bos, v.eos].into_iter().flatten() {
            special[id as usize] = true;
        }
        inner.add_special_tokens(&control);
        inner.add_tokens(&user);

        Ok(Tokenizer {
            inner,
            bos: v.bos,
            eos: v.eos,
            add_bos: v.add_bos && v.bos.is_some(),
            from_gguf: true,
            special,
            vocab_size: n,
            alias,
        })
    }

    /// Load an HF `tokenizer.json`. BOS/EOS are taken from its special added tokens when they
    /// have a well-known name (`<s>`/`</s>`, `<|begin_of_text|>`/`<|end_of_text|>`,
    /// `<|endoftext|>`, `<|im_end|>`, ...); `encode(.., add_special = true)` runs the file's own
    /// post-processor.
    pub fn from_json_file(path: &Path) -> Result<Tokenizer, TokenizerError> {
        let inner = tokenizers::Tokenizer::from_file(path).map_err(|e| TokenizerError::File {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        let vocab_size = inner.get_vocab_size(true);
        let added = inner.get_added_tokens_decoder();
        let max_id = added.keys().copied().max().map_or(0, |m| m as usize + 1);
        let mut special = vec![false; vocab_size.max(max_id)];
        for (id, tok) in &added {
            if tok.special {
                special[*id as usize] = true;
            }
        }
        let find = |names: &[&str]| {
            names.iter().find_map(|name| {
                added
                    .iter()
                    .find(|(_, t)| t.special && t.content == *name)
                    .map(|(id, _)| *id)
            })
        };
        let bos = find(&["<s>", "<|begin_of_text|>", "<bos>", "<|startoftext|>"]);
        let eos = find(&[
            "</s>",
            "<|end_of_text|>",
            "<|eot_id|>",
            "<eos>",
            "<|im_end|>",
            "<|endoftext|>",
        ]);
        Ok(Tokenizer {
            inner,
            bos,
            eos,
            add_bos: false,
            from_gguf: false,
            special,
            vocab_size: vocab_size.max(max_id),
            alias: std::collections::HashMap::new(),
        })
    }

    /// Encode `text`. Special tokens written in the text (`<|im_start|>`) map to their ids.
    /// With `add_special`, BOS is prepended when the vocabulary asks for it
    /// (`tokenizer.ggml.add_bos_token`), or the tokenizer.json's post-processor runs.
    pub fn encode(&self, text: &str, add_special: bool) -> Result<Vec<u32>, TokenizerError> {
        let hf_special = add_special && !self.from_gguf;
        let enc = self
            .inner
            .encode(text, hf_special)
            .map_err(|e| TokenizerError::Encode(e.to_string()))?;
        let ids = enc.get_ids();
        let mut out = Vec::with_capacity(ids.len() + 1);
        if add_special && self.from_gguf && self.add_bos {
            if let Some(bos) = self.bos {
                out.push(bos);
            }
        }
        out.extend_from_slice(ids);
        Ok(out)
    }

    /// Decode ids to text, special tokens included (so `decode(encode(s)) == s`).
    pub fn decode(&self, ids: &[u32]) -> Result<String, TokenizerError> {
        self.check_ids(ids)?;
        self.inner
            .decode(&self.resolve(ids), false)
            .map_err(|e| TokenizerError::Decode(e.to_string()))
    }

    /// Decode ids to text, leaving out special (control, BOS, EOS) tokens.
    pub fn decode_skip_special(&self, ids: &[u32]) -> Result<String, TokenizerError> {
        self.check_ids(ids)?;
        let kept: Vec<u32> = ids
            .iter()
            .copied()
            .filter(|&id| !self.is_special(id))
            .collect();
        self.inner
            .decode(&self.resolve(&kept), false)
            .map_err(|e| TokenizerError::Decode(e.to_string()))
    }

    /// Duplicate-token ids replaced by the id the model's vocabulary knows them by.
    fn resolve<'i>(&self, ids: &'i [u32]) -> std::borrow::Cow<'i, [u32]> {
        if self.alias.is_empty() || !ids.iter().any(|id| self.alias.contains_key(id)) {
            return std::borrow::Cow::Borrowed(ids);
        }
        std::borrow::Cow::Owned(
            ids.iter()
                .map(|id| self.alias.get(id).copied().unwrap_or(*id))
                .collect(),
        )
    }

    fn check_ids(&self, ids: &[u32]) -> Result<(), TokenizerError> {
        match ids.iter().find(|&&id| id as usize >= self.vocab_size) {
            Some(&id) => Err(TokenizerError::IdOutOfRange {
                id,
                vocab_size: self.vocab_size,
            }),
            None => Ok(()),
        }
    }

    /// The text of one token as stored in the vocabulary (byte-level form for GPT-2 BPE).
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner
            .id_to_token(self.alias.get(&id).copied().unwrap_or(id))
    }

    /// The id of a token written in vocabulary form (`"<|im_end|>"`, `"Ġthe"`).
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    pub fn eos(&self) -> Option<u32> {
        self.eos
    }

    pub fn bos(&self) -> Option<u32> {
        self.bos
    }

    /// The tokenizer as HF `tokenizer.json` text (what [`Tokenizer::from_json_file`] reads).
    pub fn to_json(&self) -> Result<String, TokenizerError> {
        self.inner
            .to_string(true)
            .map_err(|e| TokenizerError::Build(e.to_string()))
    }

    /// Override BOS/EOS (an HF folder's `tokenizer_config.json` names them).
    pub fn set_bos_eos(&mut self, bos: Option<u32>, eos: Option<u32>) {
        self.bos = bos;
        self.eos = eos;
    }

    /// Whether `encode(.., add_special = true)` prepends BOS (GGUF vocabularies).
    pub fn add_bos(&self) -> bool {
        self.add_bos
    }

    /// Number of token ids (including added tokens).
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    /// Control tokens, BOS and EOS (GGUF); special added tokens (tokenizer.json).
    pub fn is_special(&self, id: u32) -> bool {
        self.special.get(id as usize).copied().unwrap_or(false)
    }

    /// A streaming decoder over this tokenizer.
    pub fn decoder(&self) -> Decoder<'_> {
        Decoder::new(self)
    }
}

/// Incremental decoding for generation: push ids one at a time and get the text each newly
/// completes. Text is held back while it would end in an incomplete UTF-8 sequence (a
/// character split over byte-level tokens), and decoders that look at neighbouring tokens
/// (SentencePiece's leading-space strip) are given the preceding ids as context.
pub struct Decoder<'a> {
    tok: &'a Tokenizer,
    skip_special: bool,
    /// Ids since the last context point: `ids[..prefix_ids]` decode to `prefix`.
    ids: Vec<u32>,
    prefix: String,
    prefix_ids: usize,
}

impl<'a> Decoder<'a> {
    /// A streaming decoder that keeps special tokens in its output.
    pub fn new(tok: &'a Tokenizer) -> Decoder<'a> {
        Decoder {
            tok,
            skip_special: false,
            ids: Vec::new(),
            prefix: String::new(),
            prefix_ids: 0,
        }
    }

    /// Leave special tokens (control, BOS, EOS) out of the text.
    pub fn skip_special(mut self, skip: bool) -> Self {
        self.skip_special = skip;
        self
    }

    /// Push the next id; returns the text it completes, if any.
    pub fn push(&mut self, id: u32) -> Result<Option<String>, TokenizerError> {
        self.tok.check_ids(&[id])?;
        if self.skip_special && self.tok.is_special(id) {
            return Ok(None);
        }
        self.ids.push(id);
        let text = self.tok.decode(&self.ids)?;
        if text.len() <= self.prefix.len() || text.ends_with('\u{FFFD}') {
            return Ok(None);
        }
        let Some(new) = text.strip_prefix(self.prefix.as_str()) else {
            return Err(TokenizerError::Decode(format!(
                "streaming: decoded text {text:?} does not extend the previous {:?}",
                self.prefix
            )));
        };
        let new = new.to_string();
        // Keep the ids after the old context point as the context for the next push.
        self.ids.drain(..self.prefix_ids);
        self.prefix_ids = self.ids.len();
        self.prefix = self.tok.decode(&self.ids)?;
        Ok(Some(new))
    }

    /// Text still held back (an incomplete UTF-8 sequence at the end), decoded lossily.
    pub fn flush(&mut self) -> Result<Option<String>, TokenizerError> {
        let text = self.tok.decode(&self.ids)?;
        self.ids.clear();
        self.prefix_ids = 0;
        let prefix = std::mem::take(&mut self.prefix);
        match text.strip_prefix(prefix.as_str()) {
            Some(rest) if !rest.is_empty() => Ok(Some(rest.to_string())),
            _ => Ok(None),
        }
    }
}
