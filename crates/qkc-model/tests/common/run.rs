//! Opening, compiling and comparing models, shared by the model tests.

use std::path::{Path, PathBuf};

use qkc_model::generate::InterpExecutor;
use qkc_model::{Model, OpenOptions};
use qkc_runtime::{CpuOptions, CpuProgram};

/// SmolLM2-135M-Instruct Q4_1 (`make setup` fetches it into tools/models; `QKC_SMOLLM2_GGUF`
/// overrides), or `None` after printing "skipped".
pub fn smollm2_gguf() -> Option<PathBuf> {
    let p = std::env::var_os("QKC_SMOLLM2_GGUF")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../tools/models/SmolLM2-135M-Instruct.Q4_1.gguf")
        });
    if p.exists() {
        Some(p)
    } else {
        println!("skipped: {} not found (run `make setup`)", p.display());
        None
    }
}

/// Open `p` with f32 activations and a KV cache of `max_seq` tokens.
pub fn open(p: &Path, max_seq: usize) -> Model {
    Model::open(
        p,
        &OpenOptions {
            max_seq,
            act_bits: None,
            act_group: None,
        },
    )
    .unwrap_or_else(|e| panic!("open {}: {e}", p.display()))
}

/// The model through the default fusion pipeline, compiled for the CPU (2 threads, T = 1).
pub fn cpu(m: &Model) -> CpuProgram {
    let mut fused = m.graph.clone();
    qkc_passes::default_pipeline(qkc_passes::Options::default())
        .run(&mut fused)
        .expect("passes");
    CpuProgram::new(&fused, &m.weights, 1, CpuOptions::with_threads(2)).expect("compile")
}

/// The reference interpreter over the model's graph and weights (T = 1).
pub fn interp(m: &Model) -> InterpExecutor<'_> {
    InterpExecutor {
        interp: qkc_ir::interp::Interpreter::new(&m.graph, &m.weights).expect("bind"),
        tokens: 1,
    }
}

/// max |got − want| / max |want|.
pub fn rel_err(got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len());
    let mx = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    got.iter()
        .zip(want)
        .fold(0f32, |e, (a, b)| e.max((a - b).abs()))
        / mx
}
