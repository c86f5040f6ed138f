//! One error type for `wowflow-nn`; every variant names the file, field or shape involved.

use std::path::PathBuf;
use thiserror::Error;

/// Errors raised by `wowflow-nn`.
#[derive(Debug, Error)]
pub enum NnError {
    /// Data with the wrong number of values, labels or channels for what was asked.
    #[error("{what}: expected {expected}, got {got}")]
    Shape {
        what: String,
        expected: String,
        got: String,
    },
    /// A setting outside its valid range.
    #[error("invalid setting `{name}`: {reason}")]
    Invalid { name: String, reason: String },
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// burn's recorder could not save or load the weights.
    #[error("model weights {}: {message}", path.display())]
    Record { path: PathBuf, message: String },
    /// A model card (the JSON beside saved weights) could not be read or written.
    #[error("model card {}: {message}", path.display())]
    Card { path: PathBuf, message: String },
    /// Training produced a non-finite loss.
    #[error("training diverged at step {step}: loss {loss}")]
    Diverged { step: usize, loss: f32 },
}

/// Convenience alias used across the crate.
pub type Result<T, E = NnError> = std::result::Result<T, E>;

pub(crate) fn shape(
    what: impl Into<String>,
    expected: impl ToString,
    got: impl ToString,
) -> NnError {
    NnError::Shape {
        what: what.into(),
        expected: expected.to_string(),
        got: got.to_string(),
    }
}

pub(crate) fn invalid(name: impl Into<String>, reason: impl Into<String>) -> NnError {
    NnError::Invalid {
        name: name.into(),
        reason: reason.into(),
    }
}
