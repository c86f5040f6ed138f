//! One error type for `wowflow-nn`; every variant names the file, field or shape involved.

use std::path::PathBuf;
use thiserror::Error;

/// Errors raised by `wowflow-nn`.
#[derive(Debug, Error)]
pub enum NnError {
    /// Data with the wrong number of values, labels or channels for what was asked.
    #[error("{what}: expected {expected}, got {got}")]
    Shape {
        /// The data concerned, e.g. `predictions` or `pixel values of 100 images of 1×28×28`.
        what: String,
        /// What was required: a count, or a description such as `a value below 10`.
        expected: String,
        /// What was found.
        got: String,
    },
    /// A setting outside its valid range.
    #[error("invalid setting `{name}`: {reason}")]
    Invalid {
        /// The setting or input, e.g. `batch_size`, `lr`, `labels`.
        name: String,
        /// Why its value is rejected.
        reason: String,
    },
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// burn's recorder could not save or load the weights.
    #[error("model weights {}: {message}", path.display())]
    Record {
        /// The weights file (`KEY.mpk`, or its temporary name while saving).
        path: PathBuf,
        /// burn's recorder error, as text.
        message: String,
    },
    /// A model card (the JSON beside saved weights) could not be read or written.
    #[error("model card {}: {message}", path.display())]
    Card {
        /// The card file (`KEY.json`).
        path: PathBuf,
        /// The JSON (de)serialisation error, as text.
        message: String,
    },
    /// Training produced a non-finite loss.
    #[error("training diverged at step {step}: loss {loss}")]
    Diverged {
        /// The failing step's 0-based index, i.e. the number of steps completed before it
        /// (one less than the 1-based [`TrainProgress::step`](crate::TrainProgress::step)).
        step: usize,
        /// The batch loss found at that step: NaN or ±∞.
        loss: f32,
    },
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
