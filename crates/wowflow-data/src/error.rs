//! One error type for everything that reads, writes, fetches or samples data.
//!
//! Every variant that concerns a file carries the file's name as the user gave it (`file`),
//! and says what was found against what was expected, so the CLI can print the message as
//! is: `data.npz: array `y` has shape (99,), expected (100,) to match `x` (100, 784)`.
//! Parsers never panic on bad input; they return one of these.

use std::path::Path;
use thiserror::Error;
use wowflow_core::CoreError;

/// Errors raised by `wowflow-data`.
#[derive(Debug, Error)]
pub enum DataError {
    /// The operating system refused a read, write, rename or directory listing.
    #[error("{file}: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
    /// The file does not start with the signature of its format.
    #[error("{file}: bad magic number: expected {expected}, found {found}")]
    BadMagic {
        file: String,
        expected: String,
        found: String,
    },
    /// The file ends before the data its header announces.
    #[error("{file}: truncated {what}: expected {expected} bytes, found {found}")]
    Truncated {
        file: String,
        what: String,
        expected: u64,
        found: u64,
    },
    /// An array or record has a shape or count other than the one required.
    #[error("{file}: {problem}")]
    Shape { file: String, problem: String },
    /// A class label lies outside the range the format allows.
    #[error("{file}: label {label} at index {index} is out of range (expected {expected})")]
    LabelOutOfRange {
        file: String,
        index: usize,
        label: i64,
        expected: String,
    },
    /// A feature is NaN or infinite.
    #[error("{file}: {location} is {value}, expected a finite number")]
    NonFinite {
        file: String,
        location: String,
        value: f64,
    },
    /// A gzip, bzip2, deflate or zip stream is corrupt.
    #[error("{file}: broken {format} stream: {reason}")]
    Decompress {
        file: String,
        format: &'static str,
        reason: String,
    },
    /// Valid in its format, but a variant this crate does not read.
    #[error("{file}: unsupported {what}")]
    Unsupported { file: String, what: String },
    /// Any other violation of the format (header syntax, bad text, inconsistent fields).
    #[error("{file}: {problem}")]
    Format { file: String, problem: String },
    /// A file's digest differs from the registry's.
    #[error("{file}: {algorithm} mismatch: expected {expected}, found {found}")]
    Checksum {
        file: String,
        algorithm: &'static str,
        expected: String,
        found: String,
    },
    /// A download failed (connection, HTTP status, server without the file).
    #[error("{url}: {problem}")]
    Http { url: String, problem: String },
    /// A dataset or split was not found in any searched directory.
    #[error("{what} not found; searched: {searched}")]
    NotFound { what: String, searched: String },
    /// A value-level problem outside any file (e.g. converting an array's values).
    #[error("{what}: {problem}")]
    Invalid { what: String, problem: String },
    /// An output that cannot be written, found before the work that would fill it.
    #[error("cannot write {path}: {problem}")]
    Unwritable { path: String, problem: String },
    /// The data was read but does not make a valid labeled cloud.
    #[error("{file}: {source}")]
    Cloud {
        file: String,
        #[source]
        source: CoreError,
    },
}

/// Convenience alias used across the crate.
pub type Result<T, E = DataError> = std::result::Result<T, E>;

/// The name under which a path appears in messages: as the user wrote it.
pub(crate) fn name(path: &Path) -> String {
    path.display().to_string()
}

impl DataError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        DataError::Io {
            file: name(path),
            source,
        }
    }
    pub(crate) fn format(file: impl Into<String>, problem: impl Into<String>) -> Self {
        DataError::Format {
            file: file.into(),
            problem: problem.into(),
        }
    }
    pub(crate) fn shape(file: impl Into<String>, problem: impl Into<String>) -> Self {
        DataError::Shape {
            file: file.into(),
            problem: problem.into(),
        }
    }
    pub(crate) fn truncated(
        file: impl Into<String>,
        what: impl Into<String>,
        expected: u64,
        found: u64,
    ) -> Self {
        DataError::Truncated {
            file: file.into(),
            what: what.into(),
            expected,
            found,
        }
    }
}
