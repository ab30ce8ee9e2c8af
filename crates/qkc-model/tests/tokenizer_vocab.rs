//! Tokenizers from small hand-made GGUF vocabularies: errors, the Llama-3 pre-tokenizer, and
//! SentencePiece ("llama") vocabularies.

use qkc_model::tokenizer::{token_type, Tokenizer, TokenizerError, Vocab};

/// A byte-level BPE vocabulary: every printable ASCII byte in GPT-2 form, a few merges and two
/// control tokens.
fn bpe_vocab(pre: &str) -> Vocab {
    let mut tokens: Vec<String> = vec!["<|begin|>".into(), "<|end|>".into()];
    // GPT-2's byte-to-unicode keeps '!'..='~' as themselves; ' ' is 'Ġ', '\n' is 'Ċ'.
    tokens.extend(('!'..='~').map(|c| c.to_string()));
    tokens.extend(
        [
            "Ġ", "Ċ", "he", "ll", "hell", "hello", "Ġw", "Ġwo", "Ġwor", "ld", "Ġworld", "12", "123",
        ]
        .map(String::from),
    );
    let merges = [
        "h e", "l l", "he ll", "hell o", "Ġ w", "Ġw o", "Ġwo r", "l d", "Ġwor ld", "1 2", "12 3",
    ]
    .map(String::from)
    .to_vec();
    let mut token_type = vec![token_type::NORMAL; tokens.len()];
    token_type[0] = token_type::CONTROL;
    token_type[1] = token_type::CONTROL;
    Vocab {
        model: "gpt2".into(),
        pre: Some(pre.into()),
        tokens,
        merges,
        token_type,
        scores: vec![],
        bos: Some(0),
        eos: Some(1),
        add_bos: true,
        add_space_prefix: None,
    }
}

fn pieces(tok: &Tokenizer, ids: &[u32]) -> Vec<String> {
    ids.iter()
        .map(|&id| tok.id_to_token(id).unwrap_or_default())
        .collect()
}

#[test]
fn gpt2_and_llama3_pre_tokenizers() {
    let tok = Tokenizer::from_gguf_vocab(&bpe_vocab("llama-bpe")).expect("build");
    let ids = tok
        .encode("<|begin|>hello world 12345\n", true)
        .expect("encode");
    // add_bos: BOS first, then the BOS written in the text.
    assert_eq!(ids[0], 0);
    assert_eq!(
        pieces(&tok, &ids),
        [
            "<|begin|>",
            "<|begin|>",
            "hello",
            "Ġworld",
            "Ġ",
            "123",
            "4",
            "5",
            "Ċ"
        ]
    );
    assert_eq!(
        tok.decode(&ids[1..]).expect("decode"),
        "<|begin|>hello world 12345\n"
    );

    // GPT-2: digits go as one run after an optional space.
    let tok = Tokenizer::from_gguf_vocab(&bpe_vocab("gpt2")).expect("build");
    let ids = tok.encode("hello 12345", false).expect("encode");
    assert_eq!(pieces(&tok, &ids), ["hello", "Ġ", "123", "4", "5"]);

    // SmolLM: every digit alone.
    let tok = Tokenizer::from_gguf_vocab(&bpe_vocab("smollm")).expect("build");
    let ids = tok.encode("12345", false).expect("encode");
    assert_eq!(pieces(&tok, &ids), ["1", "2", "3", "4", "5"]);

    // Qwen2: single digits too.
    let tok = Tokenizer::from_gguf_vocab(&bpe_vocab("qwen2")).expect("build");
    let ids = tok.encode("hello 12", false).expect("encode");
    assert_eq!(pieces(&tok, &ids), ["hello", "Ġ", "1", "2"]);
}

#[test]
fn duplicate_tokens_decode_as_the_first() {
    let mut v = bpe_vocab("gpt2");
    let first = v.tokens.iter().position(|t| t == "hello").expect("hello") as u32;
    v.tokens.push("hello".into());
    v.token_type.push(token_type::NORMAL);
    let dup = v.tokens.len() as u32 - 1;
    let tok = Tokenizer::from_gguf_vocab(&v).expect("build");
    assert_eq!(tok.encode("hello", false).expect("encode"), [first]);
    assert_eq!(tok.decode(&[dup, dup]).expect("decode"), "hellohello");
    assert_eq!(tok.id_to_token(dup).as_deref(), Some("hello"));
    assert_eq!(
        tok.decoder().push(dup).expect("push").as_deref(),
        Some("hello")
    );
}

#[test]
fn errors_name_the_problem() {
    let mut v = bpe_vocab("gpt2");
    v.model = "wordpiece".into();
    let e = Tokenizer::from_gguf_vocab(&v).expect_err("unknown model");
    assert!(
        matches!(e, TokenizerError::UnknownModel(ref m) if m == "wordpiece"),
        "{e}"
    );
    assert!(e.to_string().contains("wordpiece"));

    let e = Tokenizer::from_gguf_vocab(&bpe_vocab("tekken")).expect_err("unknown pre");
    assert!(
        matches!(e, TokenizerError::UnknownPreTokenizer(ref p) if p == "tekken"),
        "{e}"
    );
    assert!(
        e.to_string().contains("tekken") && e.to_string().contains("smollm"),
        "{e}"
    );

    let mut v = bpe_vocab("gpt2");
    v.pre = None;
    let e = Tokenizer::from_gguf_vocab(&v).expect_err("missing pre");
    assert!(matches!(e, TokenizerError::MissingPreTokenizer), "{e}");

    let mut v = bpe_vocab("gpt2");
    v.merges[3] = "hello".into();
    let e = Tokenizer::from_gguf_vocab(&v).expect_err("bad merge");
    assert!(
        matches!(e, TokenizerError::BadMerge { index: 3, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("index 3"), "{e}");

    let mut v = bpe_vocab("gpt2");
    v.merges[5] = "Ġw zz".into();
    let e = Tokenizer::from_gguf_vocab(&v).expect_err("merge token not in vocab");
    assert!(
        matches!(e, TokenizerError::MergeTokenNotInVocab { index: 5, ref token, .. } if token == "zz"),
        "{e}"
    );

    let mut v = bpe_vocab("gpt2");
    v.token_type.pop();
    let e = Tokenizer::from_gguf_vocab(&v).expect_err("length mismatch");
    assert!(matches!(e, TokenizerError::LengthMismatch { .. }), "{e}");

    let mut v = bpe_vocab("gpt2");
    v.eos = Some(100_000);
    let e = Tokenizer::from_gguf_vocab(&v).expect_err("eos out of range");
    assert!(
        matches!(e, TokenizerError::SpecialIdOutOfRange { what: "EOS", .. }),
        "{e}"
    );

    let v = Vocab {
        model: "gpt2".into(),
        ..Vocab::default()
    };
    assert!(matches!(
        Tokenizer::from_gguf_vocab(&v),
        Err(TokenizerError::EmptyVocab)
    ));

    let tok = Tokenizer::from_gguf_vocab(&bpe_vocab("gpt2")).expect("build");
    let n = tok.vocab_size() as u32;
    assert!(matches!(
        tok.decode(&[n]),
        Err(TokenizerError::IdOutOfRange { .. })
    ));
    assert!(tok.decoder().push(n).is_err());

    let e = Tokenizer::from_json_file(std::path::Path::new("/nonexistent/tokenizer.json"))
        .expect_err("missing file");
    assert!(e.to_string().contains("/nonexistent/tokenizer.json"), "{e}");
}

/// A SentencePiece vocabulary: <unk>, <s>, </s>, 256 byte tokens, then pieces with scores.
fn spm_vocab() -> Vocab {
    let mut tokens: Vec<String> = vec!["<unk>".into(), "<s>".into(), "</s>".into()];
    let mut token_type = vec![
        token_type::UNKNOWN,
        token_type::CONTROL,
        token_type::CONTROL,
    ];
    let mut scores = vec![0.0, 0.0, 0.0];
    for b in 0..=255u32 {
        tokens.push(format!("<0x{b:02X}>"));
        token_type.push(token_type::BYTE);
        scores.push(0.0);
    }
    for (i, p) in [
        "▁", "h", "e", "l", "o", "w", "r", "d", "he", "ll", "▁he", "llo", "▁hello", "or", "▁w",
        "▁wor", "ld", "▁world",
    ]
    .iter()
    .enumerate()
    {
        tokens.push(p.to_string());
        token_type.push(token_type::NORMAL);
        scores.push(-(i as f32));
    }
    Vocab {
        model: "llama".into(),
        pre: None,
        tokens,
        merges: vec![],
        token_type,
        scores,
        bos: Some(1),
        eos: Some(2),
        add_bos: true,
        add_space_prefix: None,
    }
}

#[test]
fn sentencepiece_vocab() {
    let tok = Tokenizer::from_gguf_vocab(&spm_vocab()).expect("build");
    let ids = tok.encode("hello world é", true).expect("encode");
    assert_eq!(ids[0], 1, "BOS");
    assert_eq!(
        pieces(&tok, &ids[1..]),
        ["▁hello", "▁world", "▁", "<0xC3>", "<0xA9>"]
    );
    assert_eq!(tok.decode(&ids[1..]).expect("decode"), "hello world é");
    assert_eq!(
        tok.decode_skip_special(&ids).expect("decode"),
        "hello world é"
    );

    // Streaming: the leading space is stripped once, later pieces keep theirs; "é" comes out
    // whole after its second byte.
    let mut dec = tok.decoder().skip_special(true);
    let mut out = Vec::new();
    for &id in &ids {
        out.push(dec.push(id).expect("push"));
    }
    assert_eq!(
        out,
        [
            None,
            Some("hello".to_string()),
            Some(" world".to_string()),
            Some(" ".to_string()),
            None,
            Some("é".to_string())
        ]
    );

    // As in llama.cpp and HF, the space prefix also goes after a special token in the text.
    let ids = tok.encode("hello</s>world", false).expect("encode");
    assert_eq!(pieces(&tok, &ids), ["▁hello", "</s>", "▁world"]);

    // Without add_space_prefix, no ▁ is prepended and no space stripped.
    let mut v = spm_vocab();
    v.add_space_prefix = Some(false);
    let tok = Tokenizer::from_gguf_vocab(&v).expect("build");
    let ids = tok.encode("hello world", false).expect("encode");
    assert_eq!(pieces(&tok, &ids), ["he", "llo", "▁world"]);
    assert_eq!(tok.decode(&ids).expect("decode"), "hello world");
    let ids = tok.encode(" world", false).expect("encode");
    assert_eq!(tok.decode(&ids).expect("decode"), " world");
}

/// A tiny HF tokenizer.json: byte-level BPE with `<s>` prepended by its post-processor.
const TOKENIZER_JSON: &str = r#"{
  "version": "1.0",
  "truncation": null,
  "padding": null,
  "added_tokens": [
    {"id": 0, "content": "<s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
    {"id": 1, "content": "</s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}
  ],
  "normalizer": null,
  "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
  "post_processor": {
    "type": "TemplateProcessing",
    "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
    "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
    "special_tokens": {"<s>": {"id": "<s>", "ids": [0], "tokens": ["<s>"]}}
  },
  "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
  "model": {
    "type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
    "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
    "vocab": {"<s>": 0, "</s>": 1, "h": 2, "i": 3, "Ġ": 4, "t": 5, "hi": 6, "Ġt": 7, "Ġthi": 8, "Ġth": 9},
    "merges": ["Ġ t", "Ġt h", "Ġth i", "h i"]
  }
}"#;

#[test]
fn tokenizer_json() {
    let path = std::env::temp_dir().join(format!(
        "qkc-model-test-{}-tokenizer.json",
        std::process::id()
    ));
    std::fs::write(&path, TOKENIZER_JSON).expect("write");
    let tok = Tokenizer::from_json_file(&path);
    let _ = std::fs::remove_file(&path);
    let tok = tok.expect("load");
    assert_eq!(tok.bos(), Some(0));
    assert_eq!(tok.eos(), Some(1));
    assert_eq!(tok.vocab_size(), 10);
    assert!(tok.is_special(1) && !tok.is_special(6));
    assert_eq!(tok.encode("hi thi</s>", false).expect("encode"), [6, 8, 1]);
    assert_eq!(tok.encode("hi thi", true).expect("encode"), [0, 6, 8]);
    assert_eq!(tok.decode(&[0, 6, 8, 1]).expect("decode"), "<s>hi thi</s>");
    assert_eq!(
        tok.decode_skip_special(&[0, 6, 8, 1]).expect("decode"),
        "hi thi"
    );
}
