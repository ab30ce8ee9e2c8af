//! Chat templates rendered with minijinja, checked against the text HF `transformers` produces.

use qkc_model::chat::{render_chat, ChatError, ChatTemplate, Message};

/// `tokenizer.chat_template` of SmolLM2-135M-Instruct (copied from its GGUF).
const SMOLLM2: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

#[test]
fn smollm2_single_user_message() {
    let out = render_chat(
        SMOLLM2,
        &[Message::user("What is 2+2?")],
        true,
        "<|im_start|>",
        "<|im_end|>",
    )
    .expect("render");
    assert_eq!(
        out,
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n\
         <|im_start|>user\nWhat is 2+2?<|im_end|>\n\
         <|im_start|>assistant\n"
    );
}

#[test]
fn smollm2_system_and_turns() {
    let msgs = [
        Message::system("Be brief."),
        Message::user("Hi"),
        Message::assistant("Hello!"),
        Message::user("Bye"),
    ];
    let out = render_chat(SMOLLM2, &msgs, false, "", "").expect("render");
    assert_eq!(
        out,
        "<|im_start|>system\nBe brief.<|im_end|>\n\
         <|im_start|>user\nHi<|im_end|>\n\
         <|im_start|>assistant\nHello!<|im_end|>\n\
         <|im_start|>user\nBye<|im_end|>\n"
    );
    // Without a generation prompt and with the template parsed once.
    let t = ChatTemplate::new(SMOLLM2).expect("parse");
    assert_eq!(t.render(&msgs, false, "", "").expect("render"), out);
    assert!(t
        .render(&msgs, true, "", "")
        .expect("render")
        .ends_with("<|im_end|>\n<|im_start|>assistant\n"));
}

/// A Llama-3-style template: `bos_token`, `.strip()` (a Python method), `raise_exception`, and
/// block tags on their own lines (trim_blocks + lstrip_blocks, as in transformers).
const LLAMA3ISH: &str = "{{- bos_token }}
{% for message in messages %}
    {% if message['role'] not in ['system', 'user', 'assistant'] %}
        {{ raise_exception('unknown role ' + message['role']) }}
    {% endif %}
    {{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}
{% endfor %}
{% if add_generation_prompt %}
    {{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}
{% endif %}";

#[test]
fn llama3_style_template() {
    let out = render_chat(
        LLAMA3ISH,
        &[Message::user("  Hello  ")],
        true,
        "<|begin_of_text|>",
        "<|eot_id|>",
    )
    .expect("render");
    assert_eq!(
        out,
        // What jinja2 renders with transformers' settings (trim_blocks, lstrip_blocks).
        "<|begin_of_text|>\n    <|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>\n    \
         <|start_header_id|>assistant<|end_header_id|>\n\n\n"
    );
}

#[test]
fn python_methods_and_loop_controls() {
    let t = "{% for m in messages %}{% if m.role == 'system' %}{% continue %}{% endif %}\
             {{ m.content.strip().upper() }}{% if m.content.startswith('a') %}!{% endif %};{% endfor %}";
    let out = render_chat(
        t,
        &[
            Message::system("sys"),
            Message::user(" abc "),
            Message::user("xyz"),
        ],
        false,
        "",
        "",
    )
    .expect("render");
    assert_eq!(out, "ABC;XYZ;");
}

#[test]
fn raise_exception_is_reported() {
    let err =
        render_chat(LLAMA3ISH, &[Message::new("tool", "x")], false, "", "").expect_err("must fail");
    match err {
        ChatError::Raised(msg) => assert_eq!(msg, "unknown role tool"),
        other => panic!("expected Raised, got {other:?}"),
    }
}

#[test]
fn syntax_error_is_reported() {
    let err = render_chat("{% for m in messages %}{{ m.content }}", &[], false, "", "")
        .expect_err("must fail");
    assert!(matches!(err, ChatError::Syntax(_)), "{err:?}");
    assert!(err.to_string().contains("syntax error"), "{err}");
}

#[test]
fn render_error_is_reported() {
    let err =
        render_chat("{{ messages | no_such_filter }}", &[], false, "", "").expect_err("must fail");
    assert!(
        matches!(err, ChatError::Syntax(_) | ChatError::Render(_)),
        "{err:?}"
    );
    assert!(err.to_string().contains("no_such_filter"), "{err}");
}
