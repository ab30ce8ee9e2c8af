//! User-facing diagnostics for the text IR: a message, an optional source span, a label and a
//! help line, rendered by miette with `file:line:col` and a caret.
//!
//! Parse errors are one [`Diag`]; the verifier returns every broken invariant as a list.

use std::fmt;

use miette::{Diagnostic, GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource};

use crate::graph::Span;
use crate::parser::line_col;

/// One diagnostic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diag {
    /// What is wrong.
    pub message: String,
    /// Where (absent for graphs that did not come from text).
    pub span: Option<Span>,
    /// The text under the caret.
    pub label: Option<String>,
    /// How to fix it.
    pub help: Option<String>,
    /// The value the problem is about (`%h`), used when there is no span.
    pub value: Option<String>,
}

impl Diag {
    /// A new error with a message.
    pub fn error(message: impl Into<String>) -> Self {
        Diag {
            message: message.into(),
            span: None,
            label: None,
            help: None,
            value: None,
        }
    }
    /// Set the span.
    pub fn at(mut self, span: Span) -> Self {
        self.span = Some(span);
        self
    }
    /// Set the span if any.
    pub fn at_opt(mut self, span: Option<Span>) -> Self {
        self.span = span.or(self.span);
        self
    }
    /// Set the label.
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }
    /// Set the help.
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
    /// Name the value concerned.
    pub fn value(mut self, v: impl Into<String>) -> Self {
        self.value = Some(v.into());
        self
    }
}

impl fmt::Display for Diag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(v) = &self.value {
            write!(f, "%{v}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for Diag {}

#[derive(Debug)]
struct Rendered {
    message: String,
    src: NamedSource<String>,
    span: Span,
    label: Option<String>,
    help: Option<String>,
}

impl fmt::Display for Rendered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}
impl std::error::Error for Rendered {}
impl Diagnostic for Rendered {
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(&self.src)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        Some(Box::new(std::iter::once(
            LabeledSpan::new_primary_with_span(self.label.clone(), self.span),
        )))
    }
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }
}

/// The source to show for a span: everything up to the error's line plus a little after,
/// with very long lines cut after the span (offsets before the span are unchanged, so line and
/// column stay right). `None` when the span sits too far into a huge line to show.
fn window(src: &str, span: Span) -> Option<String> {
    const MAX_LINE: usize = 240;
    let off = span.offset.min(src.len());
    let line_start = src[..off].rfind('\n').map_or(0, |p| p + 1);
    if off - line_start > MAX_LINE {
        return None;
    }
    let line_end = src[off..].find('\n').map_or(src.len(), |p| off + p);
    // show at most MAX_LINE bytes of a long span, so a 10 MB token cannot make a 10 MB snippet
    let mut cut = line_end.min((off + span.len.min(MAX_LINE)).max(line_start + MAX_LINE));
    while !src.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut out = String::with_capacity(cut + 200);
    out.push_str(&src[..cut]);
    if cut < line_end {
        out.push_str(" …");
    } else {
        // two lines of context after the error line
        let rest = &src[line_end..];
        let take = rest
            .match_indices('\n')
            .nth(2)
            .map_or(rest.len(), |(i, _)| i);
        if take <= 2 * MAX_LINE {
            out.push_str(&rest[..take]);
        }
    }
    Some(out)
}

/// The longest message, label or help line [`render`] prints, in bytes.
const MAX_MESSAGE: usize = 400;

/// `s` cut to at most `max` bytes (on a char boundary), with `…` marking a cut.
pub(crate) fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Render diagnostics against the source they came from, one after another.
pub fn render(path: &str, src: &str, diags: &[Diag]) -> String {
    let handler =
        GraphicalReportHandler::new_themed(GraphicalTheme::unicode_nocolor()).with_width(110);
    let mut out = String::new();
    for d in diags {
        // messages may quote user text (names, attribute values): keep the output bounded
        let message = clip(
            &match &d.value {
                Some(v) => format!("%{v}: {}", d.message),
                None => d.message.clone(),
            },
            MAX_MESSAGE,
        );
        let d = Diag {
            label: d.label.as_deref().map(|l| clip(l, MAX_MESSAGE)),
            help: d.help.as_deref().map(|h| clip(h, MAX_MESSAGE)),
            ..d.clone()
        };
        match d.span.and_then(|s| window(src, s).map(|w| (s, w))) {
            Some((span, mut text)) => {
                if span.offset >= text.len() {
                    // miette draws no label past the last character: give an end-of-file span a
                    // blank to point at (line and column come from `src`, so they are unchanged)
                    text.push(' ');
                }
                let span = Span::new(
                    span.offset.min(text.len()),
                    span.len.min(text.len().saturating_sub(span.offset)),
                );
                let (line, col) = line_col(src, span.offset);
                out.push_str(&format!("error: {path}:{line}:{col}: {message}\n"));
                let r = Rendered {
                    message,
                    src: NamedSource::new(path, text),
                    span,
                    label: d.label.clone(),
                    help: d.help.clone(),
                };
                if handler.render_report(&mut out, &r).is_err() {
                    out.push_str("  (could not render the source snippet)\n");
                }
            }
            None => {
                match d.span {
                    Some(s) => {
                        let (line, col) = line_col(src, s.offset);
                        out.push_str(&format!("error: {path}:{line}:{col}: {message}\n"));
                    }
                    None => out.push_str(&format!("error: {path}: {message}\n")),
                }
                if let Some(h) = &d.help {
                    out.push_str(&format!("  help: {h}\n"));
                }
            }
        }
    }
    out
}
