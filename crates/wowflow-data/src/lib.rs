//! # wowflow-data
//!
//! Everything between files and [`wowflow_core::LabeledCloud`]:
//!
//! - the user formats of `wowflow flow` — numpy `.npy`/`.npz` and CSV — read and written
//!   here so the CLI and the library share one implementation ([`load_cloud`],
//!   [`save_cloud`], [`read_npy`], [`write_npz`], [`write_csv`], …);
//!
//! Every reader returns a [`DataError`] naming the file and the problem on bad input; none
//! panics. Every writer is atomic (temporary file in the same directory, then rename).

mod atomic;
pub mod cifar;
pub mod compress;
pub mod csv;
pub mod error;
pub mod idx;
pub mod images;
pub mod load;
pub mod mat;
pub mod npy;
pub mod npz;
pub mod registry;
pub mod sample;
pub mod svhn;
pub mod user;
pub mod usps;
pub mod verify;

pub use csv::{read_labeled_csv, write_csv, LabeledRows};
pub use error::{DataError, Result};
pub use images::{ImageSet, Pixels};
pub use load::{load_split, Split};
pub use npy::{read_npy, write_npy, ArrayData, NpyArray};
pub use npz::{read_npz, write_npz};
pub use registry::{cache_dir, dataset, DataDirs, DatasetSpec, FileSpec, Origin, Root, DATASETS};
pub use sample::{
    draw_disjoint, pool_and_eval, sample_cloud, to_cloud, Normalize, PoolEval, Transform,
};
pub use user::{load_cloud, save_cloud, LoadedCloud};
pub use verify::{digest_file, list, verify, verify_file, Check, DatasetStatus, FileStatus};
