//! Hadamard rotations (QuaRot, SpinQuant): FWHT for 2^m and `had_K ⊗ H_{2^m}` for n = K·2^m.
//!
//! STUB: filled in by the schemes work (issue 3). The signatures below are the contract.

use crate::error::QuantError;

/// Apply the normalized Hadamard `H_n = (had_K ⊗ H_{n/K}) / sqrt(n)` (or its transpose) in place
/// to `x` of length n, choosing K as QuaRot's `get_hadK` does.
pub fn apply(x: &mut [f64], transpose: bool) -> Result<(), QuantError> {
    let _ = transpose;
    let n = x.len();
    if n == 0 || !n.is_power_of_two() {
        return Err(QuantError::Unsupported(format!("Hadamard of size {n} (only powers of two so far)")));
    }
    let mut h = 1;
    while h < n {
        for i in (0..n).step_by(2 * h) {
            for j in i..i + h {
                let (a, b) = (x[j], x[j + h]);
                x[j] = a + b;
                x[j + h] = a - b;
            }
        }
        h *= 2;
    }
    let s = 1.0 / (n as f64).sqrt();
    x.iter_mut().for_each(|v| *v *= s);
    Ok(())
}

/// Whether a Hadamard of size `n` is supported (n = K·2^m with a known had_K, or 2^m).
pub fn supported(n: usize) -> bool {
    n > 0 && n.is_power_of_two()
}
