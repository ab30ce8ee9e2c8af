//! A plain row-major f64 tensor and the output statistics `qkc run` prints.

use std::fmt;

/// A dense row-major f64 tensor.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Tensor {
    /// Shape.
    pub shape: Vec<usize>,
    /// Values, row-major.
    pub data: Vec<f64>,
}

impl Tensor {
    /// A tensor; `data.len()` must equal the shape's product.
    pub fn new(shape: Vec<usize>, data: Vec<f64>) -> Self {
        debug_assert_eq!(shape.iter().product::<usize>(), data.len());
        Tensor { shape, data }
    }

    /// Length of the last axis (1 for a scalar).
    pub fn last(&self) -> usize {
        self.shape.last().copied().unwrap_or(1)
    }

    /// Number of rows when viewed as `[rows, last]`.
    pub fn rows(&self) -> usize {
        self.data.len() / self.last().max(1)
    }
}

/// Statistics of one output, as `qkc run` prints them.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Shape.
    pub shape: Vec<usize>,
    /// Mean.
    pub mean: f64,
    /// Largest magnitude.
    pub absmax: f64,
    /// Position-weighted sum `Σ x_i · w_i` with fixed pseudo-random weights `w_i ∈ [0, 1)`:
    /// a checksum that changes when values move between positions, yet is stable under
    /// last-bit differences (it is printed to 6 significant digits).
    pub checksum: f64,
    /// Whether every value is finite.
    pub finite: bool,
}

/// Summarize a tensor.
pub fn summary(t: &Tensor) -> Summary {
    let n = t.data.len().max(1) as f64;
    let mean = t.data.iter().sum::<f64>() / n;
    let absmax = t.data.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    let checksum = t
        .data
        .iter()
        .enumerate()
        .map(|(i, x)| x * (((i as u64).wrapping_mul(2654435761) % 1000) as f64 / 1000.0))
        .sum();
    Summary {
        shape: t.shape.clone(),
        mean,
        absmax,
        checksum,
        finite: t.data.iter().all(|x| x.is_finite()),
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shape: Vec<String> = self.shape.iter().map(ToString::to_string).collect();
        write!(
            f,
            "[{}] mean={:.6e} absmax={:.6e} checksum={:.6e}{}",
            shape.join(", "),
            self.mean,
            self.absmax,
            self.checksum,
            if self.finite { "" } else { " NON-FINITE" }
        )
    }
}
