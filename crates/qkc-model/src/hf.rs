//! HF model folders (issue 8): to be wired to `qkc_quant::hf`.

use std::path::Path;

use crate::ModelError;

/// `(n, k, values)` of module `prefix` of the HF folder `dir`.
pub fn dequant(
    dir: &Path,
    prefix: &str,
    format: Option<&str>,
) -> Result<(usize, usize, Vec<f32>), ModelError> {
    let _ = (prefix, format);
    Err(ModelError::Other(format!(
        "{}: HF checkpoint folders are not supported by `qkc dequant` yet (GGUF files are)",
        dir.display()
    )))
}
