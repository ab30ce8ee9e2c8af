//! The crate's one error type.

/// Errors from packing, quantizing, dequantizing or loading quantized tensors.
#[derive(Debug, thiserror::Error)]
pub enum QuantError {
    /// The scheme (or an option of it) is not implemented yet; a gap a user can hit.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// A tensor has the wrong shape, dtype or size; the message names the tensor.
    #[error("tensor `{tensor}`: {reason}")]
    BadTensor {
        /// Name of the tensor (or part) at fault.
        tensor: String,
        /// What is wrong.
        reason: String,
    },
    /// A tensor needed by the scheme is absent from the checkpoint.
    #[error("tensor `{0}` is missing")]
    Missing(String),
    /// Bad input values (NaN/Inf weights, out-of-range parameters).
    #[error("invalid input: {0}")]
    Invalid(String),
}

impl QuantError {
    /// Attribute the error to weight `name`: part names become `name.part`, and input errors
    /// name the weight.
    pub fn in_tensor(self, name: &str) -> Self {
        match self {
            QuantError::BadTensor { tensor, reason } => QuantError::BadTensor {
                tensor: format!("{name}.{tensor}"),
                reason,
            },
            QuantError::Missing(t) => QuantError::Missing(format!("{name}.{t}")),
            QuantError::Invalid(reason) => QuantError::BadTensor {
                tensor: name.to_string(),
                reason,
            },
            other @ QuantError::Unsupported(_) => other,
        }
    }
}
