//! One error type for the mathematical core.
//!
//! Every variant names *what* was wrong (the field or argument) and *what was expected*, so
//! a CLI can pass the message straight to a person without adding context it does not have.

use thiserror::Error;

/// An error from outside the mathematics (a GPU backend, a file an observer writes), kept
/// whole as the [`std::error::Error::source`] of a [`CoreError`] (downcast it to the
/// backend's own error type).
pub type ErrorSource = Box<dyn std::error::Error + Send + Sync>;

/// Errors raised by `wowflow-core`.
#[derive(Debug, Error)]
pub enum CoreError {
    /// An array does not have the length its declared shape implies.
    #[error("{what}: expected {expected}, got {got}")]
    Shape {
        /// The array, e.g. `points` or `cost matrix`.
        what: String,
        /// The length (or shape) it should have, in words, e.g. `N × d = 1200 values`.
        expected: String,
        /// What it has.
        got: String,
    },
    /// A value is NaN or infinite where a finite number is required.
    #[error("{what}: non-finite value {value} at index {index}")]
    NonFinite {
        /// The array, often with the row and column of the bad entry, e.g.
        /// `points (particle 3, feature 7)`.
        what: String,
        /// Flat (row-major) index of the first non-finite entry.
        index: usize,
        /// The entry itself (NaN or ±∞), widened to `f64`.
        value: f64,
    },
    /// A class has no particles.
    #[error("class {class} (id {id}) is empty: every class needs at least one particle")]
    EmptyClass {
        /// Position of the class in the cloud (0-based, the order of the class offsets).
        class: usize,
        /// The class's label id.
        id: i64,
    },
    /// A weight is zero, negative or not finite.
    #[error("{what}: weight {value} at index {index} must be finite and > 0")]
    BadWeight {
        /// Which weights, e.g. `class weights` or a histogram's name.
        what: String,
        /// Index of the first bad weight.
        index: usize,
        /// The bad weight.
        value: f64,
    },
    /// The feature dimension is zero.
    #[error("feature dimension d must be at least 1 (got d = 0)")]
    ZeroDimension,
    /// Two clouds or a cloud and directions disagree on the feature dimension.
    #[error("dimension mismatch: {what} has d = {got}, expected d = {expected}")]
    DimensionMismatch {
        /// The object whose dimension is wrong.
        what: String,
        /// The feature dimension `d` it should have.
        expected: usize,
        /// The feature dimension it has.
        got: usize,
    },
    /// A parameter is outside its valid range.
    #[error("invalid parameter `{name}`: {reason}")]
    InvalidParameter {
        /// The parameter (field or argument name), e.g. `lr`.
        name: String,
        /// Why it is invalid, with the valid range and the value given.
        reason: String,
    },
    /// The flow produced a non-finite loss or gradient; the last good state is kept.
    #[error(
        "flow diverged at step {step}: {reason} (the state of step {last_good_step} was kept)"
    )]
    Diverged {
        /// The step (0-based) whose loss or gradient was not finite.
        step: usize,
        /// Steps applied in the state that was kept (its [`FlowState::step`]): equal to
        /// `step` when the bad update was never applied.
        ///
        /// [`FlowState::step`]: crate::flow::FlowState::step
        last_good_step: usize,
        /// What was not finite, e.g. `the objective is NaN`.
        reason: String,
    },
    /// A checkpoint does not match the run it is asked to resume.
    #[error("cannot resume: {0}")]
    Resume(String),
    /// A compute backend failed (e.g. the CUDA engine: a library that cannot be loaded, a
    /// kernel launch); its own error is the source.
    #[error("{backend}: {source}")]
    Backend {
        /// Which backend, e.g. `CUDA engine`.
        backend: &'static str,
        /// The backend's error.
        #[source]
        source: ErrorSource,
    },
    /// An observer of a flow failed (e.g. writing a checkpoint); its error is the source.
    #[error("{what}: {source}")]
    Observer {
        /// What the observer was doing, e.g. `writing checkpoint run.ckpt.npz`.
        what: String,
        /// The observer's error.
        #[source]
        source: ErrorSource,
    },
}

impl CoreError {
    /// An [`CoreError::Observer`] error from any error type.
    pub fn observer(
        what: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        CoreError::Observer {
            what: what.into(),
            source: source.into(),
        }
    }
}

/// Errors compare by variant and message: the sources of [`CoreError::Backend`] and
/// [`CoreError::Observer`] are compared through their messages.
impl PartialEq for CoreError {
    fn eq(&self, other: &Self) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other)
            && self.to_string() == other.to_string()
    }
}

/// Convenience alias used across the crate.
pub type Result<T, E = CoreError> = std::result::Result<T, E>;

/// A shape error: `what` should have `expected` and has `got`.
pub fn shape(what: impl Into<String>, expected: impl ToString, got: impl ToString) -> CoreError {
    CoreError::Shape {
        what: what.into(),
        expected: expected.to_string(),
        got: got.to_string(),
    }
}

/// An invalid-parameter error naming the parameter and why.
pub fn invalid(name: impl Into<String>, reason: impl Into<String>) -> CoreError {
    CoreError::InvalidParameter {
        name: name.into(),
        reason: reason.into(),
    }
}
