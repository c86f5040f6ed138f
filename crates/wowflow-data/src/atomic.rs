//! Atomic file writes: write to a temporary file in the destination's directory, flush and
//! sync it, then rename it over the destination.
//!
//! Why: a flow that is interrupted (Ctrl-C, out of memory, a full disk) must never leave a
//! half-written result or checkpoint under the final name, where a later run would read it
//! as complete. A rename inside one directory is atomic on every platform we target.

use crate::error::{DataError, Result};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

/// Writes `path` atomically; `fill` receives a buffered writer on the temporary file.
pub(crate) fn write_atomic<F>(path: &Path, fill: F) -> Result<()>
where
    F: FnOnce(&mut BufWriter<&mut File>) -> Result<()>,
{
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".wowflow-tmp-")
        .tempfile_in(dir)
        .map_err(|e| DataError::io(path, e))?;
    {
        let mut w = BufWriter::new(tmp.as_file_mut());
        fill(&mut w)?;
        w.flush().map_err(|e| DataError::io(path, e))?;
    }
    tmp.as_file()
        .sync_all()
        .map_err(|e| DataError::io(path, e))?;
    tmp.persist(path)
        .map_err(|e| DataError::io(path, e.error))?;
    Ok(())
}

/// Writes `text` to `path` atomically (results and tables that a later run reads back).
pub fn write_text_atomic(path: &Path, text: &str) -> Result<()> {
    write_atomic(path, |w| {
        w.write_all(text.as_bytes())
            .map_err(|e| DataError::io(path, e))
    })
}
