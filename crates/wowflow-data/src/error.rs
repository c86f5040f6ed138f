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
        /// The file or directory, as the user named it.
        file: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The file does not start with the signature of its format.
    #[error("{file}: bad magic number: expected {expected}, found {found}")]
    BadMagic {
        /// The file, as the user named it.
        file: String,
        /// The signature the format requires, in words (e.g. `0x00000803`).
        expected: String,
        /// The leading bytes actually found, in hex or as text.
        found: String,
    },
    /// The file ends before the data its header announces.
    #[error("{file}: truncated {what}: expected {expected} bytes, found {found}")]
    Truncated {
        /// The file, as the user named it.
        file: String,
        /// The part that is cut short (e.g. `idx header`, a tar member).
        what: String,
        /// Bytes that part needs.
        expected: u64,
        /// Bytes actually left in the file for it.
        found: u64,
    },
    /// An array or record has a shape or count other than the one required.
    #[error("{file}: {problem}")]
    Shape {
        /// The file, as the user named it.
        file: String,
        /// What is wrong, with the shapes or counts found and expected.
        problem: String,
    },
    /// A class label lies outside the range the format allows.
    #[error("{file}: label {label} at index {index} is out of range (expected {expected})")]
    LabelOutOfRange {
        /// The file, as the user named it.
        file: String,
        /// Position of the offending record (0-based).
        index: usize,
        /// The label found there.
        label: i64,
        /// The allowed range, e.g. `0..=9`.
        expected: String,
    },
    /// A feature is NaN or infinite.
    #[error("{file}: {location} is {value}, expected a finite number")]
    NonFinite {
        /// The file, as the user named it.
        file: String,
        /// Where the value sits, e.g. `row 3 (line 5), column 2 (feature 0)`.
        location: String,
        /// The value itself (NaN or ±∞).
        value: f64,
    },
    /// A gzip, bzip2, deflate or zip stream is corrupt.
    #[error("{file}: broken {format} stream: {reason}")]
    Decompress {
        /// The file (and archive member, where there is one), as the user named it.
        file: String,
        /// The stream's format, e.g. `gzip`, `bzip2`, `zip`.
        format: &'static str,
        /// The decoder's message.
        reason: String,
    },
    /// Valid in its format, but a variant this crate does not read.
    #[error("{file}: unsupported {what}")]
    Unsupported {
        /// The file, as the user named it.
        file: String,
        /// The unsupported feature, e.g. `big-endian MAT-file`.
        what: String,
    },
    /// Any other violation of the format (header syntax, bad text, inconsistent fields).
    #[error("{file}: {problem}")]
    Format {
        /// The file, as the user named it.
        file: String,
        /// What is wrong, with its position where known (line and column for CSV).
        problem: String,
    },
    /// A file's digest differs from the registry's.
    #[error("{file}: {algorithm} mismatch: expected {expected}, found {found}")]
    Checksum {
        /// The file, as the user named it.
        file: String,
        /// What differs: `md5`, `sha256`, or `size` (the byte count).
        algorithm: &'static str,
        /// The registry's value: a lowercase hex digest, or a byte count for `size`.
        expected: String,
        /// The file's value, in the same form.
        found: String,
    },
    /// A download failed (connection, HTTP status, server without the file).
    #[error("{url}: {problem}")]
    Http {
        /// The address requested (the registry's file name when it lists no address).
        url: String,
        /// What went wrong: the transport error or the HTTP status.
        problem: String,
    },
    /// A dataset or split was not found in any searched directory.
    #[error("{what} not found; searched: {searched}")]
    NotFound {
        /// The dataset and the file that is missing, e.g. ``mnist `t10k-labels-idx1-ubyte.gz` ``.
        what: String,
        /// The directories looked in, in search order, each with where it came from
        /// (`--data-dir`, `$WOWFLOW_DATA`, `cache`, `system`); or `nowhere (…)` when no
        /// directory was configured.
        searched: String,
    },
    /// A value-level problem outside any file (e.g. converting an array's values).
    #[error("{what}: {problem}")]
    Invalid {
        /// The value concerned, e.g. `class 3` or ``dataset `foo` ``.
        what: String,
        /// What is wrong with it.
        problem: String,
    },
    /// An output that cannot be written, found before the work that would fill it.
    #[error("cannot write {path}: {problem}")]
    Unwritable {
        /// The output path, as the user named it.
        path: String,
        /// Why it cannot be written.
        problem: String,
    },
    /// The data was read but does not make a valid labeled cloud.
    #[error("{file}: {source}")]
    Cloud {
        /// The file the data came from, as the user named it (or a description such as
        /// `sampled images` when it came from no single file).
        file: String,
        /// Why `wowflow-core` rejected the cloud.
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
