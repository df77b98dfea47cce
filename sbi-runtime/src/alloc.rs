//! Checked allocation of the large buffers whose size a user chooses (samples, proposals,
//! simulations): a count whose memory cannot be had is [`Error::TooLarge`], not a
//! capacity-overflow panic or an abort of the process.

use crate::error::{Error, Result};

/// `rows × cols` values, or why not.
fn count(rows: usize, cols: usize, what: &str) -> Result<usize> {
    rows.checked_mul(cols).ok_or_else(|| Error::TooLarge { what: what.to_string(), rows, cols })
}

/// An empty vector with room for `rows × cols` values.
///
/// # Errors
/// [`Error::TooLarge`] when the count overflows or the memory cannot be reserved.
pub(crate) fn with_capacity<T>(rows: usize, cols: usize, what: &str) -> Result<Vec<T>> {
    let n = count(rows, cols, what)?;
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| Error::TooLarge { what: what.to_string(), rows, cols })?;
    Ok(v)
}

/// `rows × cols` zeros.
///
/// # Errors
/// As [`with_capacity`].
pub(crate) fn zeros(rows: usize, cols: usize, what: &str) -> Result<Vec<f64>> {
    let mut v = with_capacity(rows, cols, what)?;
    v.resize(rows * cols, 0.0);
    Ok(v)
}

/// Reserves room for `rows × cols` more values in `v`.
///
/// # Errors
/// As [`with_capacity`].
pub(crate) fn reserve<T>(v: &mut Vec<T>, rows: usize, cols: usize, what: &str) -> Result<()> {
    let n = count(rows, cols, what)?;
    v.try_reserve_exact(n).map_err(|_| Error::TooLarge { what: what.to_string(), rows, cols })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn impossible_sizes_are_errors() {
        assert!(matches!(zeros(usize::MAX, 2, "x"), Err(Error::TooLarge { .. })));
        assert!(matches!(with_capacity::<f64>(1 << 60, 1, "x"), Err(Error::TooLarge { .. })));
        assert_eq!(zeros(3, 2, "x").unwrap(), vec![0.0; 6]);
    }
}
