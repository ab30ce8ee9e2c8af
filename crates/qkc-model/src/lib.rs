//! Real models on qkc: a Llama-family graph builder (from GGUF metadata or an HF `config.json`),
//! tokenizers, chat templates, and a generation loop over the CPU and CUDA runtimes.

pub mod chat;
pub mod tokenizer;
