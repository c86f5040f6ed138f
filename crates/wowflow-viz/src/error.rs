//! The one error type of this crate.
//!
//! Every variant names the argument at fault and what was expected, so that a caller (the CLI,
//! a notebook) can show the message as is and the user knows which input to fix.

use std::path::PathBuf;

/// Why a picture could not be made or saved.
#[derive(Debug, thiserror::Error)]
pub enum VizError {
    /// An argument has the wrong length or dimensions.
    #[error("`{argument}`: expected {expected}, got {got}")]
    Shape {
        /// The argument at fault, e.g. `labels` or `series[\"loss\"].y`.
        argument: String,
        /// What it should have been, e.g. `length 200 (one label per point)`.
        expected: String,
        /// What it was.
        got: String,
    },
    /// An argument holds NaN or ±∞ where a finite number is needed.
    #[error("`{argument}`: value at index {index} is not finite ({value})")]
    NonFinite {
        /// The argument at fault.
        argument: String,
        /// Index of the first offending value.
        index: usize,
        /// The value itself, for the message.
        value: f64,
    },
    /// An argument is empty where at least one element is needed.
    #[error("`{argument}` is empty: {why}")]
    Empty {
        /// The argument at fault.
        argument: String,
        /// Why something is needed.
        why: String,
    },
    /// An argument is out of its allowed range (sizes, bounds, scales).
    #[error("`{argument}`: {reason}")]
    Invalid {
        /// The argument at fault.
        argument: String,
        /// What is wrong and what is allowed.
        reason: String,
    },
    /// Writing a file failed.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file that was being written.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The PNG or GIF encoder refused the data.
    #[error("cannot encode {format}: {message}")]
    Encode {
        /// `PNG` or `GIF`.
        format: &'static str,
        /// The encoder's message.
        message: String,
    },
}

impl VizError {
    pub(crate) fn shape(
        argument: impl Into<String>,
        expected: impl Into<String>,
        got: impl Into<String>,
    ) -> Self {
        VizError::Shape {
            argument: argument.into(),
            expected: expected.into(),
            got: got.into(),
        }
    }

    pub(crate) fn invalid(argument: impl Into<String>, reason: impl Into<String>) -> Self {
        VizError::Invalid {
            argument: argument.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn empty(argument: impl Into<String>, why: impl Into<String>) -> Self {
        VizError::Empty {
            argument: argument.into(),
            why: why.into(),
        }
    }
}

/// Returns an error naming `argument` and the first index whose value is NaN or infinite.
pub(crate) fn check_finite<I>(argument: impl FnOnce() -> String, values: I) -> Result<(), VizError>
where
    I: IntoIterator<Item = f64>,
{
    match values.into_iter().enumerate().find(|(_, v)| !v.is_finite()) {
        None => Ok(()),
        Some((index, value)) => Err(VizError::NonFinite {
            argument: argument(),
            index,
            value,
        }),
    }
}
