//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod gguf_vocab;
pub mod hf_fixture;
pub mod run;
