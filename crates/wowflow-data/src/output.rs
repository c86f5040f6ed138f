//! Outputs checked before the work that fills them, and a place for a result whose
//! destination failed anyway.
//!
//! Why: a flow of 500 000 steps that discovers at the end that its output directory does
//! not exist has lost hours. Commands therefore call [`prepare_output_file`] or
//! [`prepare_output_dir`] on every output before loading data or starting a flow: the
//! directory is created if it is missing, and a probe file is created and removed in it,
//! so a missing, read-only or non-directory parent fails at once with the path named. If a
//! write still fails at the end (the disk filled, the directory was removed), the command
//! writes the result to [`rescue_path`] instead and says where.

use crate::error::{name, DataError, Result};
use std::path::{Path, PathBuf};

fn unwritable(path: &Path, problem: impl Into<String>) -> DataError {
    DataError::Unwritable {
        path: name(path),
        problem: problem.into(),
    }
}

/// Makes sure `dir` exists (creating it and its parents) and that files can be created in
/// it.
pub fn prepare_output_dir(dir: &Path) -> Result<()> {
    if dir.exists() && !dir.is_dir() {
        return Err(unwritable(
            dir,
            "it exists and is not a directory (an output directory was expected)",
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| {
        unwritable(
            dir,
            format!("the directory does not exist and cannot be created: {e}"),
        )
    })?;
    tempfile::Builder::new()
        .prefix(".wowflow-probe-")
        .tempfile_in(dir)
        .map(drop)
        .map_err(|e| unwritable(dir, format!("files cannot be created in it: {e}")))
}

/// Makes sure the file `path` can be written: it is not a directory, and its directory
/// exists (or is created) and accepts new files. An existing file is fine: writers replace
/// it atomically.
pub fn prepare_output_file(path: &Path) -> Result<()> {
    if path.is_dir() {
        return Err(unwritable(
            path,
            "it is a directory; give a file name inside it",
        ));
    }
    if path.file_name().is_none() {
        return Err(unwritable(path, "the path names no file"));
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    prepare_output_dir(dir).map_err(|e| match e {
        DataError::Unwritable { path: d, problem } => unwritable(path, format!("{d}: {problem}")),
        other => other,
    })
}

/// Where a result goes when `path` could not be written at the end: the system's
/// temporary directory (`$TMPDIR` on Unix), under a name that keeps the original file name
/// and cannot collide with another process's.
pub fn rescue_path(path: &Path) -> PathBuf {
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| "output".into());
    std::env::temp_dir().join(format!("wowflow-rescued-{}-{file}", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_directory_is_created_and_a_file_path_is_accepted() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("new/deeper/out.npz");
        prepare_output_file(&out).unwrap();
        assert!(out.parent().unwrap().is_dir());
        // The probe leaves nothing behind.
        assert_eq!(std::fs::read_dir(out.parent().unwrap()).unwrap().count(), 0);
        prepare_output_dir(&tmp.path().join("runs/a")).unwrap();
        assert!(tmp.path().join("runs/a").is_dir());
    }

    #[test]
    fn a_directory_or_a_file_in_the_way_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let e = prepare_output_file(tmp.path()).unwrap_err().to_string();
        assert!(e.contains("is a directory"), "{e}");
        // A regular file where a directory is needed: even root cannot create under it.
        let file = tmp.path().join("plain");
        std::fs::write(&file, b"x").unwrap();
        let e = prepare_output_file(&file.join("out.npz"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("out.npz") && e.contains("plain"), "{e}");
        let e = prepare_output_dir(&file).unwrap_err().to_string();
        assert!(e.contains("not a directory"), "{e}");
    }

    #[cfg(unix)]
    #[test]
    fn a_read_only_directory_is_refused_unless_permissions_do_not_bind() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("ro");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o555)).unwrap();
        let probe = std::fs::File::create(dir.join("p"));
        let result = prepare_output_file(&dir.join("out.npz"));
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        match probe {
            // root (CI, containers): the kernel lets it write anyway, and so must we.
            Ok(_) => {
                eprintln!("SKIPPED read-only refusal: this user writes in read-only directories");
                assert!(result.is_ok());
            }
            Err(_) => {
                let e = result.unwrap_err().to_string();
                assert!(e.contains("ro") && e.contains("cannot be created"), "{e}");
            }
        }
    }

    #[test]
    fn the_rescue_path_keeps_the_file_name() {
        let p = rescue_path(Path::new("/no/such/dir/flowed.npz"));
        assert!(p.starts_with(std::env::temp_dir()));
        assert!(p.to_string_lossy().ends_with("-flowed.npz"));
    }
}
