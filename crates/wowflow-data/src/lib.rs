//! # wowflow-data
//!
//! Everything between files and [`wowflow_core::LabeledCloud`]:
//!
//! - **User formats** of `wowflow flow` — numpy `.npy`/`.npz` and CSV — read and written here
//!   so the CLI and the library share one implementation: [`load_cloud`], [`save_cloud`],
//!   [`read_npy`], [`read_npz`], [`write_npy`], [`write_npz`], [`write_csv`].
//! - **Dataset parsers**: idx (MNIST, Fashion-MNIST, KMNIST; gzip or raw), KMNIST `.npz`,
//!   USPS (`usps.h5` and torchvision's LIBSVM `usps*.bz2`), CIFAR-10 binary batches (also
//!   straight from the tarball), SVHN `.mat` (MAT v5). Each decodes to an [`ImageSet`].
//! - **Registry** ([`registry`]): files, sizes, md5, sha256, public addresses and class names
//!   per dataset, and the search order `--data-dir`, `$WOWFLOW_DATA`, user cache directory,
//!   `/usr/share/datasets/fashion-mnist`. [`load_split`] finds and decodes a split;
//!   [`list`] and [`verify()`] report what is where; [`fetch()`] downloads with resume and
//!   checksum verification.
//! - **Sampling** ([`sample`]): seeded, class-balanced, disjoint draws into `(C, n, d)` clouds,
//!   values in `[0, 1]`, optional normalisation, bilinear resizing (USPS 16→28), and the
//!   documented fallback split where a train split is missing ([`pool_and_eval`]).
//!
//! Dependency choices: decompression is pure Rust (`flate2` on `zlib-rs`, `bzip2` on
//! `libbz2-rs-sys`); `usps.h5` is read with the pure-Rust `rust-hdf5` crate, which reads this
//! file's gzip-chunked datasets without libhdf5 (calls are guarded with `catch_unwind`, see
//! [`usps`]); npz uses the `zip` crate; downloads use `ureq` with rustls. Nothing needs a
//! system library.
//!
//! Every reader returns a [`DataError`] naming the file and the problem on bad input; none
//! panics. Every writer is atomic (temporary file in the same directory, then rename) and
//! leaves files with the mode a plain create would give under the user's umask; commands
//! check their outputs with [`prepare_output_file`] / [`prepare_output_dir`] before any
//! work, and put a result whose destination failed at the end under [`rescue_path`].

#![warn(missing_docs)]

mod atomic;
pub mod cifar;
pub mod compress;
pub mod csv;
pub mod error;
pub mod fetch;
pub mod idx;
pub mod images;
pub mod load;
pub mod mat;
pub mod npy;
pub mod npz;
pub mod output;
pub mod registry;
pub mod sample;
pub mod svhn;
pub mod user;
pub mod usps;
pub mod verify;

pub use atomic::write_text_atomic;
pub use csv::{read_labeled_csv, write_csv, LabeledRows};
pub use error::{DataError, Result};
pub use fetch::{fetch, fetch_with_progress, FetchOutcome, FetchReport};
pub use images::{ImageSet, Pixels};
pub use load::{load_split, Split};
pub use npy::{read_npy, shape_string, write_npy, ArrayData, NpyArray};
pub use npz::{read_npz, write_npz};
pub use output::{prepare_output_dir, prepare_output_file, rescue_path};
pub use registry::{cache_dir, dataset, DataDirs, DatasetSpec, FileSpec, Origin, Root, DATASETS};
pub use sample::{
    draw_disjoint, pool_and_eval, sample_cloud, to_cloud, Normalize, PoolEval, Transform,
};
pub use user::{load_cloud, save_cloud, LoadedCloud};
pub use verify::{digest_file, list, verify, verify_file, Check, DatasetStatus, FileStatus};
