//! `qkc dequant`: the dense f32 weight `[N, K]` of one module of a checkpoint, the format detected
//! from the path (a `.gguf` file; HF folders through `qkc_quant::hf`) or forced.

use std::path::Path;

use qkc_quant::gguf::GgufFile;

use crate::ModelError;

/// `(n, k, values)` of module `tensor` in `input`.
pub fn dequant(
    input: &Path,
    tensor: &str,
    format: Option<&str>,
) -> Result<(usize, usize, Vec<f32>), ModelError> {
    let is_gguf = match format {
        Some("gguf") => true,
        Some(_) => false,
        None => input.extension().is_some_and(|e| e == "gguf"),
    };
    if is_gguf {
        let f = GgufFile::open(input).map_err(|e| ModelError::Other(e.to_string()))?;
        // a module prefix (`blk.0.ffn_down`) names its `.weight`
        let name = if f.tensor(tensor).is_ok() {
            tensor.to_string()
        } else {
            format!("{tensor}.weight")
        };
        let t = f
            .tensor(&name)
            .map_err(|e| ModelError::Other(e.to_string()))?;
        let (n, k) = t.rows_cols();
        let v = f
            .dequantize(&name)
            .map_err(|e| ModelError::Other(e.to_string()))?;
        return Ok((n, k, v));
    }
    crate::hf::dequant(input, tensor, format)
}
