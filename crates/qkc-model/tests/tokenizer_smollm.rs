//! The SmolLM2 tokenizer built from its GGUF vocabulary, against ids computed with HF's Python
//! `tokenizers` from the same vocabulary and merges (Digits(individual) + ByteLevel, as in
//! SmolLM2's tokenizer.json).
//!
//! The model file is `$QKC_SMOLLM2_GGUF`, or `tools/models/SmolLM2-135M-Instruct.Q4_1.gguf` under
//! the workspace root; the tests print "skipped: ..." and pass when it is absent.

mod common;

use std::path::PathBuf;

use qkc_model::tokenizer::Tokenizer;

fn model_path() -> PathBuf {
    match std::env::var_os("QKC_SMOLLM2_GGUF") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../tools/models/SmolLM2-135M-Instruct.Q4_1.gguf"),
    }
}

fn load() -> Option<(Tokenizer, Option<String>)> {
    let path = model_path();
    if !path.exists() {
        println!("skipped: {} not found", path.display());
        return None;
    }
    let (vocab, template) = common::gguf_vocab::read_vocab(&path).expect("read GGUF vocab");
    assert_eq!(vocab.model, "gpt2");
    assert_eq!(vocab.pre.as_deref(), Some("smollm"));
    let tok = Tokenizer::from_gguf_vocab(&vocab).expect("build tokenizer");
    Some((tok, template))
}

/// (text, ids) from Python `tokenizers` 0.23 over the GGUF vocabulary.
const CASES: &[(&str, &[u32])] = &[
    ("Hello", &[19556]),
    (
        "Hello, world! How are you today?",
        &[19556, 28, 905, 17, 1073, 359, 346, 1834, 47],
    ),
    (
        "  leading spaces and   multiple   inner",
        &[216, 2899, 5600, 284, 256, 2701, 256, 6210],
    ),
    ("12345", &[33, 34, 35, 36, 37]),
    (
        "Price: $3.50 (approx.) -- 'quoted' & done; ok?!",
        &[
            27148, 42, 1885, 35, 30, 37, 32, 365, 22046, 2677, 3009, 637, 385, 5036, 23, 1456,
            2294, 43, 10907, 17593,
        ],
    ),
    (
        "line one\nline two\n\n\tindented\r\n",
        &[1311, 582, 198, 1311, 827, 1116, 197, 526, 6574, 2738],
    ),
    (
        "café naïve résumé 😀🚀 中文字符 日本語",
        &[
            83, 1939, 2756, 15486, 46494, 412, 2756, 5422, 2756, 40303, 218, 10813, 244, 218, 216,
            28589, 29184, 36518, 40562, 116, 17097, 241, 115, 40993, 179, 120, 248,
        ],
    ),
    (
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
        &[1, 4093, 198, 26843, 2, 198, 1, 520, 9531, 198],
    ),
    (
        "I'm sure they'll've done it, we're OK don't",
        &[
            57, 5248, 2090, 502, 3060, 3543, 2294, 357, 28, 392, 2316, 15310, 1326, 982,
        ],
    ),
];

#[test]
fn smollm2_encode_matches_hf() {
    let Some((tok, _)) = load() else { return };
    for (text, want) in CASES {
        let got = tok.encode(text, false).expect("encode");
        assert_eq!(&got, want, "encode({text:?})");
        // SmolLM2's GGUF has add_bos_token = false.
        assert_eq!(tok.encode(text, true).expect("encode"), got);
    }
}

#[test]
fn smollm2_round_trip() {
    let Some((tok, _)) = load() else { return };
    for (text, _) in CASES {
        let ids = tok.encode(text, false).expect("encode");
        assert_eq!(tok.decode(&ids).expect("decode"), *text);
    }
}

#[test]
fn smollm2_specials() {
    let Some((tok, _)) = load() else { return };
    assert_eq!(tok.vocab_size(), 49152);
    assert_eq!(tok.bos(), Some(1));
    assert_eq!(tok.eos(), Some(2));
    assert!(!tok.add_bos());
    assert_eq!(tok.token_to_id("<|im_end|>"), Some(2));
    assert_eq!(tok.id_to_token(0).as_deref(), Some("<|endoftext|>"));
    for id in 0..17 {
        assert!(tok.is_special(id), "id {id} is a control token");
    }
    assert!(!tok.is_special(19556));
    let ids = tok
        .encode("<|im_start|>user\nHi<|im_end|>", false)
        .expect("encode");
    assert_eq!(tok.decode_skip_special(&ids).expect("decode"), "user\nHi");
    assert!(tok.decode(&[49152]).is_err());
}

#[test]
fn smollm2_streaming_decode() {
    let Some((tok, _)) = load() else { return };
    for (text, _) in CASES {
        let ids = tok.encode(text, false).expect("encode");
        let mut dec = tok.decoder();
        let mut out = String::new();
        for &id in &ids {
            if let Some(piece) = dec.push(id).expect("push") {
                out.push_str(&piece);
            }
        }
        if let Some(rest) = dec.flush().expect("flush") {
            out.push_str(&rest);
        }
        assert_eq!(out, *text);
    }
    // "😀" is split over two byte-level tokens: nothing comes out until the character is whole.
    let ids = tok.encode("😀", false).expect("encode");
    assert!(ids.len() > 1, "{ids:?}");
    let mut dec = tok.decoder();
    for &id in &ids[..ids.len() - 1] {
        assert_eq!(dec.push(id).expect("push"), None);
    }
    assert_eq!(
        dec.push(ids[ids.len() - 1]).expect("push").as_deref(),
        Some("😀")
    );
    // Skipping specials.
    let ids = tok
        .encode("<|im_start|>assistant\nOK<|im_end|>", false)
        .expect("encode");
    let mut dec = tok.decoder().skip_special(true);
    let mut out = String::new();
    for &id in &ids {
        if let Some(piece) = dec.push(id).expect("push") {
            out.push_str(&piece);
        }
    }
    assert_eq!(out, "assistant\nOK");
}

#[test]
fn smollm2_chat_prompt() {
    let Some((tok, template)) = load() else {
        return;
    };
    let template = template.expect("SmolLM2's GGUF has tokenizer.chat_template");
    let prompt = qkc_model::chat::render_chat(
        &template,
        &[qkc_model::chat::Message::user("Hi")],
        true,
        "<|im_start|>",
        "<|im_end|>",
    )
    .expect("render");
    assert_eq!(
        prompt,
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n\
         <|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    );
    let ids = tok.encode(&prompt, true).expect("encode");
    let want: &[u32] = &[
        1, 9690, 198, 2683, 359, 253, 5356, 5646, 11173, 3365, 3511, 308, 34519, 28, 7018, 411,
        407, 19712, 8182, 2, 198, 1, 4093, 198, 26843, 2, 198, 1, 520, 9531, 198,
    ];
    assert_eq!(ids, want);
    assert_eq!(tok.decode(&ids).expect("decode"), prompt);
}
