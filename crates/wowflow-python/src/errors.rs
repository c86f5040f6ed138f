//! Rust errors as the Python exceptions users catch: bad values and shapes are
//! `ValueError`, bad types `TypeError`, missing files `FileNotFoundError`, and whatever goes
//! wrong in a computation (a diverged flow, a failed GPU call) `wowflow.WowflowError`, a
//! `RuntimeError`. The message is the whole Rust error chain, which names the argument and
//! what was expected.

use pyo3::create_exception;
use pyo3::exceptions::{PyFileNotFoundError, PyOSError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use wowflow_core::CoreError;
use wowflow_data::DataError;

create_exception!(
    wowflow,
    WowflowError,
    PyRuntimeError,
    "A computation failed (a flow diverged, a GPU call failed, a result could not be written)."
);

/// A `ValueError` with `msg`.
pub fn value_error(msg: impl Into<String>) -> PyErr {
    PyValueError::new_err(msg.into())
}

/// A `TypeError` with `msg`.
pub fn type_error(msg: impl Into<String>) -> PyErr {
    PyTypeError::new_err(msg.into())
}

/// The Python exception for a Rust error, chosen by the first cause that says what kind of
/// failure it is.
pub fn to_py(err: anyhow::Error) -> PyErr {
    let msg = format!("{err:#}");
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<CoreError>() {
            return match e {
                CoreError::Diverged { .. }
                | CoreError::Backend { .. }
                | CoreError::Observer { .. } => WowflowError::new_err(msg),
                _ => value_error(msg),
            };
        }
        if let Some(e) = cause.downcast_ref::<DataError>() {
            return match e {
                DataError::NotFound { .. } => PyFileNotFoundError::new_err(msg),
                DataError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                    PyFileNotFoundError::new_err(msg)
                }
                DataError::Io { .. } | DataError::Unwritable { .. } => PyOSError::new_err(msg),
                DataError::Http { .. } | DataError::Checksum { .. } => WowflowError::new_err(msg),
                _ => value_error(msg),
            };
        }
        if let Some(e) = cause.downcast_ref::<std::io::Error>() {
            if e.kind() == std::io::ErrorKind::NotFound {
                return PyFileNotFoundError::new_err(msg);
            }
        }
    }
    WowflowError::new_err(msg)
}

/// `Result<T, E>` → `PyResult<T>` through [`to_py`].
pub trait IntoPy<T> {
    /// Converts the error.
    fn py(self) -> PyResult<T>;
}

impl<T, E: Into<anyhow::Error>> IntoPy<T> for Result<T, E> {
    fn py(self) -> PyResult<T> {
        self.map_err(|e| to_py(e.into()))
    }
}
