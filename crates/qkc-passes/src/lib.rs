//! qkc-passes: the pass manager and the fusion passes.
//!
//! Fusion is the reason qkc exists: today's peers launch 2–5 kernels per quantized layer
//! (QuaRot: Hadamard, abs-max, quantize, GEMM; SqueezeLLM: LUT GEMV then CSR SpMV). The passes
//! here turn each such chain into one `qlinear`, provably equal to the unfused graph (the
//! reference interpreter checks it in the tests), and [`partition`] then names one kernel per
//! distinct specialization.
//!
//! The pipeline is one readable list ([`default_pipeline`]). Passes never print, read files or
//! touch devices: dumps, timings and fusion remarks are returned in a [`Report`].
#![deny(missing_docs)]

mod manager;
pub mod partition;
pub mod passes;
mod pattern;
pub mod quantize_graph;

pub use manager::{default_pipeline, pass_by_name, Options, PassManager, Report};
pub use partition::{partition, KernelPlan, KernelSpec};

use qkc_ir::Graph;

/// Whether a pass changed the graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Changed {
    /// The graph changed.
    Yes,
    /// The graph is as it was.
    No,
}

impl Changed {
    /// `Yes` if `b`.
    pub fn from_bool(b: bool) -> Self {
        if b {
            Changed::Yes
        } else {
            Changed::No
        }
    }
}

/// Why a rewrite did not fire, for `--explain-fusion`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remark {
    /// The pass.
    pub pass: &'static str,
    /// The value the pattern was rooted at.
    pub value: String,
    /// What matched and what stopped it.
    pub message: String,
}

impl std::fmt::Display for Remark {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: %{}: {}", self.pass, self.value, self.message)
    }
}

/// What a pass may record besides rewriting the graph.
#[derive(Debug, Default)]
pub struct PassContext {
    /// Fusion remarks.
    pub remarks: Vec<Remark>,
}

impl PassContext {
    /// Record why a rewrite rooted at `value` did not fire.
    pub fn remark(&mut self, pass: &'static str, value: &str, message: impl Into<String>) {
        self.remarks.push(Remark {
            pass,
            value: value.to_string(),
            message: message.into(),
        });
    }
}

/// Errors of the pass pipeline.
#[derive(Debug, thiserror::Error)]
pub enum PassError {
    /// The input graph does not verify.
    #[error("the input graph does not verify:\n{0}")]
    InvalidInput(String),
    /// A pass produced a graph that does not verify: a bug in that pass.
    #[error("internal error: pass `{pass}` produced an invalid graph:\n{diags}")]
    BrokeGraph {
        /// The pass.
        pass: &'static str,
        /// The verifier's findings.
        diags: String,
    },
    /// `--print-after=NAME` names no pass in the pipeline.
    #[error("unknown pass `{0}` (passes: {1})")]
    UnknownPass(String, String),
}

/// A graph-to-graph pass.
pub trait Pass {
    /// The pass name used by `--print-after` (kebab-case).
    fn name(&self) -> &'static str;
    /// One-line description.
    fn description(&self) -> &'static str;
    /// Run on `g`.
    fn run(&self, g: &mut Graph, cx: &mut PassContext) -> Changed;
}
