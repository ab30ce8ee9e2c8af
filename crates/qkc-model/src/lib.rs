//! Real models on qkc: a Llama-family graph builder (from GGUF metadata or an HF `config.json`),
//! tokenizers, chat templates, and a generation loop over the CPU and CUDA runtimes.

pub mod chat;
pub mod dequant;
pub mod generate;
pub mod gguf;
pub mod hf;
pub mod llama;
mod model;
pub mod npy;
pub mod requant;
pub mod tokenizer;

pub use model::{ImportManifest, Model, OpenOptions};

/// What can go wrong building or running a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The architecture parameters are inconsistent.
    #[error("model config: {0}")]
    Config(String),
    /// The built graph does not parse or verify (a bug in the builder, or a bad type).
    #[error("model graph: {0}")]
    Graph(String),
    /// Compiling or running failed.
    #[error(transparent)]
    Runtime(#[from] qkc_runtime::RuntimeError),
    /// Anything else, with its context.
    #[error("{0}")]
    Other(String),
}
