use super::Error;
use std::fmt;

/// Shape of a ternary weight matrix: `rows` output features (M, GGUF `ne[1]`) by `cols` input
/// features (K, GGUF `ne[0]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shape {
    /// M: output features, one row per output channel.
    pub rows: usize,
    /// K: input features, the contiguous dimension.
    pub cols: usize,
}

impl Shape {
    /// A shape of `rows` × `cols`.
    pub const fn new(rows: usize, cols: usize) -> Self {
        Self { rows, cols }
    }

    /// Number of elements, or `None` on overflow.
    pub fn numel(self) -> Option<usize> {
        self.rows.checked_mul(self.cols)
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{} (M x K)", self.rows, self.cols)
    }
}

/// The canonical in-memory ternary tensor: every layout encodes from and decodes to this.
///
/// `codes` holds `rows * cols` values in {-1, 0, +1}, row-major (row r = output channel r).
/// The real weight is `code * scale`.
#[derive(Debug, Clone, PartialEq)]
pub struct TernaryTensor {
    shape: Shape,
    codes: Vec<i8>,
    scale: f32,
}

impl TernaryTensor {
    /// Builds a tensor, checking the code count and that every code is -1, 0 or +1.
    pub fn new(shape: Shape, codes: Vec<i8>, scale: f32) -> Result<Self, Error> {
        let expected = shape.numel().ok_or(Error::CodeCount {
            shape,
            expected: usize::MAX,
            found: codes.len(),
        })?;
        if codes.len() != expected {
            return Err(Error::CodeCount {
                shape,
                expected,
                found: codes.len(),
            });
        }
        // A branch-free scan per chunk (vectorizes); the exact position only on failure.
        let all_ternary = codes.chunks(4096).all(|chunk| {
            chunk.iter().fold(0u8, |bad, &c| {
                bad | (c.wrapping_add(1) as u8).saturating_sub(2)
            }) == 0
        });
        if let Some(index) = (!all_ternary)
            .then(|| codes.iter().position(|&c| !(-1..=1).contains(&c)))
            .flatten()
        {
            return Err(Error::NotTernary {
                layout: "ternary",
                index,
                row: index / shape.cols.max(1),
                col: index % shape.cols.max(1),
                value: f64::from(codes[index]),
                scale: 1.0,
            });
        }
        Ok(Self {
            shape,
            codes,
            scale,
        })
    }

    /// Builds a tensor from codes a decoder has already restricted to {-1, 0, +1}.
    ///
    /// Decoders produce codes from 2-bit fields they have validated, so a second pass over
    /// millions of codes would only cost time. The caller guarantees both invariants.
    pub(crate) fn from_decoded(shape: Shape, codes: Vec<i8>, scale: f32) -> Self {
        debug_assert_eq!(Some(codes.len()), shape.numel());
        debug_assert!(codes.iter().all(|c| (-1..=1).contains(c)));
        Self {
            shape,
            codes,
            scale,
        }
    }

    /// Shape (M × K).
    pub fn shape(&self) -> Shape {
        self.shape
    }

    /// Codes in {-1, 0, +1}, row-major.
    pub fn codes(&self) -> &[i8] {
        &self.codes
    }

    /// One row's codes.
    pub fn row(&self, r: usize) -> &[i8] {
        &self.codes[r * self.shape.cols..(r + 1) * self.shape.cols]
    }

    /// Per-tensor scale: real weight = code × scale.
    pub fn scale(&self) -> f32 {
        self.scale
    }

    /// Same codes with another scale.
    pub fn with_scale(mut self, scale: f32) -> Self {
        self.scale = scale;
        self
    }

    /// Consumes the tensor, returning its codes.
    pub fn into_codes(self) -> Vec<i8> {
        self.codes
    }

    /// Counts of (-1, 0, +1) codes.
    pub fn code_counts(&self) -> [usize; 3] {
        let mut counts = [0usize; 3];
        for &c in &self.codes {
            counts[(c + 1) as usize] += 1;
        }
        counts
    }

    /// Mean of |code × scale| over all elements (the dequantized absmean).
    pub fn dequantized_absmean(&self) -> f64 {
        if self.codes.is_empty() {
            return 0.0;
        }
        let nonzero = self.codes.iter().filter(|&&c| c != 0).count();
        nonzero as f64 * f64::from(self.scale).abs() / self.codes.len() as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_rejects_every_non_ternary_code_and_names_the_first() {
        for bad in [2i8, -2, 3, 127, -128] {
            let mut codes = vec![0i8; 10_000];
            codes[7_777] = bad;
            codes[9_999] = bad;
            let err = TernaryTensor::new(Shape::new(100, 100), codes, 1.0).unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::NotTernary {
                        index: 7_777,
                        row: 77,
                        col: 77,
                        ..
                    }
                ),
                "{bad}: {err:?}"
            );
        }
        assert!(TernaryTensor::new(Shape::new(2, 2), vec![-1, 0, 1, 0], 1.0).is_ok());
    }
}
