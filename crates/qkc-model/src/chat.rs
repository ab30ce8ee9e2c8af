//! Chat templates: render a model's `tokenizer.chat_template` (Jinja) over a conversation with
//! `minijinja`, set up the way HF `transformers` renders them: `trim_blocks` and
//! `lstrip_blocks` on, the `loopcontrols` extension (`break`/`continue`), `raise_exception(msg)`,
//! and Python string/dict methods (`.strip()`, `.startswith()`, `.items()`, ...) through
//! `minijinja-contrib`'s pycompat.
//!
//! The template sees `messages` (a list of `{role, content}`), `add_generation_prompt`,
//! `bos_token` and `eos_token`.

use minijinja::syntax::SyntaxConfig;
use minijinja::value::Serde;
use minijinja::{context, Environment, Error, ErrorKind, Value};
use serde::{Deserialize, Serialize};

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// `"system"`, `"user"` or `"assistant"` (or whatever else the template understands).
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Message {
        Message {
            role: role.into(),
            content: content.into(),
        }
    }

    pub fn system(content: impl Into<String>) -> Message {
        Message::new("system", content)
    }

    pub fn user(content: impl Into<String>) -> Message {
        Message::new("user", content)
    }

    pub fn assistant(content: impl Into<String>) -> Message {
        Message::new("assistant", content)
    }
}

/// Why a chat template could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    /// The template does not parse.
    #[error("chat template syntax error: {0}")]
    Syntax(String),
    /// The template called `raise_exception(message)`.
    #[error("chat template raised an exception: {0}")]
    Raised(String),
    /// Rendering failed (an unknown filter or method, a type error, ...).
    #[error("chat template render error: {0}")]
    Render(String),
    /// The environment could not be configured.
    #[error("chat template setup: {0}")]
    Setup(String),
}

/// Prefix that marks errors coming from `raise_exception`.
const RAISED: &str = "raise_exception: ";

fn describe(e: &Error) -> String {
    // `{:#}` adds the template name, line and source excerpt where minijinja knows them.
    let mut s = e.to_string();
    if let Some(line) = e.line() {
        s.push_str(&format!(" (line {line})"));
    }
    s
}

fn environment() -> Result<Environment<'static>, ChatError> {
    let mut env = Environment::new();
    let syntax = SyntaxConfig::builder()
        .trim_blocks(true)
        .lstrip_blocks(true)
        .build()
        .map_err(|e| ChatError::Setup(describe(&e)))?;
    env.set_syntax(syntax);
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_function("raise_exception", |msg: String| -> Result<String, Error> {
        Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("{RAISED}{msg}"),
        ))
    });
    Ok(env)
}

fn render_error(e: &Error) -> ChatError {
    // The error from raise_exception may be wrapped by the call site: search the chain.
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(mj) = err.downcast_ref::<Error>() {
            if let Some(detail) = mj.detail() {
                if let Some(msg) = detail.strip_prefix(RAISED) {
                    return ChatError::Raised(msg.to_string());
                }
            }
        }
        cur = err.source();
    }
    ChatError::Render(describe(e))
}

/// A parsed chat template, ready to render conversations.
#[derive(Debug, Clone)]
pub struct ChatTemplate {
    source: String,
}

impl ChatTemplate {
    /// Parse `template`; a syntax error is reported here rather than at the first render.
    pub fn new(template: &str) -> Result<ChatTemplate, ChatError> {
        let env = environment()?;
        env.template_from_str(template)
            .map_err(|e| ChatError::Syntax(describe(&e)))?;
        Ok(ChatTemplate {
            source: template.to_string(),
        })
    }

    /// The template's source text.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Render `messages`; with `add_generation_prompt` the template appends the opening of the
    /// assistant's turn.
    pub fn render(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
        bos: &str,
        eos: &str,
    ) -> Result<String, ChatError> {
        let env = environment()?;
        let tmpl = env
            .template_from_str(&self.source)
            .map_err(|e| ChatError::Syntax(describe(&e)))?;
        tmpl.render(context! {
            messages => Value::from(Serde(messages)),
            add_generation_prompt => add_generation_prompt,
            bos_token => bos,
            eos_token => eos,
        })
        .map_err(|e| render_error(&e))
    }
}

/// Render a chat template over `messages` (see [`ChatTemplate::render`]).
pub fn render_chat(
    template: &str,
    messages: &[Message],
    add_generation_prompt: bool,
    bos: &str,
    eos: &str,
) -> Result<String, ChatError> {
    ChatTemplate::new(template)?.render(messages, add_generation_prompt, bos, eos)
}
