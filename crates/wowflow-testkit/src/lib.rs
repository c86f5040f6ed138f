//! # wowflow-testkit
//!
//! Helpers for wowflow's tests and examples (a dev-dependency only, never part of the
//! library API):
//!
//! - [`shared_data`]: the directory of the real datasets (`$WOWFLOW_DATA`, else
//!   `<repo>/../shared/data`, where CI clones the repository beside `shared/`), or a visible
//!   `SKIPPED` line when they are absent — a failure under CI (`$CI` set), where a test that
//!   silently skipped would hide that it never ran.
//! - [`golden`]: results recorded once that a change must reproduce bit for bit, compared
//!   through a platform-stable fingerprint ([`Fnv`]) and re-recorded on purpose with
//!   `WOWFLOW_BLESS=1`.

#![warn(missing_docs)]

use std::path::{Path, PathBuf};

/// The repository's root (this crate lives in `crates/wowflow-testkit`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The directory holding the real datasets, when it has every sub-directory in `needs`
/// (e.g. `["mnist", "usps"]`).
///
/// Searched: `$WOWFLOW_DATA`, then `<repo>/../shared/data`. When neither has them the
/// caller's test should return early: this prints `SKIPPED: <what>` so the skip shows in the
/// test output, and panics instead under CI, where the data is always laid out.
pub fn shared_data(what: &str, needs: &[&str]) -> Option<PathBuf> {
    let found = [
        std::env::var_os("WOWFLOW_DATA").map(PathBuf::from),
        Some(repo_root().join("../shared/data")),
    ]
    .into_iter()
    .flatten()
    .find(|p| needs.iter().all(|n| p.join(n).is_dir()));
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI run without shared/data ({}): {what} needs it",
            needs.join(", ")
        );
        println!("SKIPPED {what}: shared/data not found (set WOWFLOW_DATA)");
    }
    found
}

/// FNV-1a over 64 bits: a fingerprint that is the same on every platform and Rust version
/// (unlike `std`'s `DefaultHasher`), for comparing exact bits of results.
#[derive(Debug, Clone, Copy)]
pub struct Fnv(pub u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    /// Folds `bytes` into the fingerprint.
    pub fn bytes(mut self, bytes: &[u8]) -> Self {
        for &b in bytes {
            self.0 ^= b as u64;
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
        self
    }
    /// Folds the exact bits of `f32` values.
    pub fn f32s(self, values: &[f32]) -> Self {
        values
            .iter()
            .fold(self, |h, v| h.bytes(&v.to_bits().to_le_bytes()))
    }
    /// Folds the exact bits of `f64` values.
    pub fn f64s(self, values: &[f64]) -> Self {
        values
            .iter()
            .fold(self, |h, v| h.bytes(&v.to_bits().to_le_bytes()))
    }
    /// Folds integers.
    pub fn i64s(self, values: &[i64]) -> Self {
        values.iter().fold(self, |h, v| h.bytes(&v.to_le_bytes()))
    }
    /// The fingerprint as 16 hex digits.
    pub fn hex(self) -> String {
        format!("{:016x}", self.0)
    }
}

/// The widest SIMD instruction set this CPU offers the kernels that dispatch at run time
/// (`gemm`, burn's CPU backend): `avx512`, `avx2` (x86-64 without AVX-512) or `portable`.
///
/// Why: trained networks see the float sums of those kernels, whose order depends on the
/// vector width, so a golden *accuracy* is bit-exact per instruction set, not across them
/// (measured: the tiny Table 1/2 cells differ by 0.04–0.1 points between an AVX2 and an
/// AVX-512 machine, with the flows themselves identical).
pub fn isa_tag() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return "avx512";
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            return "avx2";
        }
    }
    "portable"
}

/// Compares `lines` with the recorded `dir/<name>.txt`, line by line, or records them when
/// `WOWFLOW_BLESS` is set. The panic message shows each line that changed.
pub fn golden(dir: &Path, name: &str, lines: &[String]) {
    let path = dir.join(format!("{name}.txt"));
    let text = lines.join("\n") + "\n";
    if std::env::var_os("WOWFLOW_BLESS").is_some() {
        std::fs::create_dir_all(dir).expect("create the golden directory");
        std::fs::write(&path, &text).expect("write the golden file");
        println!("recorded {}", path.display());
        return;
    }
    let recorded = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (record it with WOWFLOW_BLESS=1)", path.display()));
    let differ: Vec<String> = recorded
        .lines()
        .zip(text.lines())
        .filter(|(a, b)| a != b)
        .map(|(a, b)| format!("  recorded {a}\n  now      {b}"))
        .collect();
    assert!(
        differ.is_empty() && recorded.lines().count() == text.lines().count(),
        "{name}: results changed ({} recorded lines, {} now):\n{}",
        recorded.lines().count(),
        text.lines().count(),
        differ.join("\n")
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_matches_the_published_test_vectors() {
        // FNV-1a 64 of "" and "a" (from the algorithm's reference test suite).
        assert_eq!(Fnv::default().bytes(b"").0, 0xcbf2_9ce4_8422_2325);
        assert_eq!(Fnv::default().bytes(b"a").0, 0xaf63_dc4c_8601_ec8c);
        assert_eq!(Fnv::default().bytes(b"foobar").0, 0x8594_4171_f739_67e8);
        // One bit of one value changes the fingerprint.
        let a = Fnv::default().f64s(&[1.0, 2.0]).0;
        let b = Fnv::default()
            .f64s(&[1.0, f64::from_bits(2f64.to_bits() + 1)])
            .0;
        assert_ne!(a, b);
    }

    #[test]
    fn golden_files_compare_line_by_line() {
        if std::env::var_os("WOWFLOW_BLESS").is_some() {
            return; // recording mode compares nothing
        }
        let dir = std::env::temp_dir().join(format!("wowflow-testkit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("g.txt"), "a 1\nb 2\n").unwrap();
        golden(&dir, "g", &["a 1".into(), "b 2".into()]);
        let changed = std::panic::catch_unwind(|| golden(&dir, "g", &["a 1".into(), "b 3".into()]));
        let shorter = std::panic::catch_unwind(|| golden(&dir, "g", &["a 1".into()]));
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(changed.is_err() && shorter.is_err());
    }
}
