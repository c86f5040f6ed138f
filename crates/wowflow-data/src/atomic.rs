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

/// Gives the temporary file the mode `File::create(path)` would leave `path` with: a new
/// file gets `0o666` less the process's umask (the kernel applies the umask to the mode
/// given to `open`); an existing file keeps its own mode.
///
/// Why: `tempfile` creates its files `0o600` so that nobody else can read a temporary file,
/// and the rename would carry that private mode to the result, which a colleague or a web
/// server on a shared machine then could not read.
#[cfg(unix)]
mod mode {
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    /// The mode to create the temporary file with.
    pub fn for_new_file(builder: &mut tempfile::Builder) {
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }

    /// The mode of an existing destination, to be set on the temporary file (outside the
    /// umask, as an in-place create would keep it).
    pub fn of_existing(path: &Path) -> Option<std::fs::Permissions> {
        std::fs::metadata(path)
            .ok()
            .filter(|m| m.is_file())
            .map(|m| m.permissions())
    }
}

/// Elsewhere the default permissions of a new file are already those of a plain create.
#[cfg(not(unix))]
mod mode {
    use std::path::Path;
    pub fn for_new_file(_builder: &mut tempfile::Builder) {}
    pub fn of_existing(_path: &Path) -> Option<std::fs::Permissions> {
        None
    }
}

/// Writes `path` atomically; `fill` receives a buffered writer on the temporary file.
pub(crate) fn write_atomic<F>(path: &Path, fill: F) -> Result<()>
where
    F: FnOnce(&mut BufWriter<&mut File>) -> Result<()>,
{
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut builder = tempfile::Builder::new();
    builder.prefix(".wowflow-tmp-");
    mode::for_new_file(&mut builder);
    let mut tmp = builder
        .tempfile_in(dir)
        .map_err(|e| DataError::io(path, e))?;
    if let Some(existing) = mode::of_existing(path) {
        tmp.as_file()
            .set_permissions(existing)
            .map_err(|e| DataError::io(path, e))?;
    }
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

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn new_files_get_the_mode_of_a_plain_create() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain.txt");
        File::create(&plain).unwrap();
        let atomic = dir.path().join("atomic.txt");
        write_text_atomic(&atomic, "x").unwrap();
        // Both went through the same umask; tempfile alone would give 0o600.
        assert_eq!(mode(&atomic), mode(&plain), "{:o}", mode(&atomic));
    }

    #[test]
    fn an_existing_file_keeps_its_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kept.txt");
        File::create(&path).unwrap();
        for wanted in [0o640, 0o604, 0o666] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(wanted)).unwrap();
            write_text_atomic(&path, "again").unwrap();
            assert_eq!(mode(&path), wanted, "{:o}", mode(&path));
            assert_eq!(std::fs::read_to_string(&path).unwrap(), "again");
        }
    }
}
