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
pub mod csv;
pub mod error;
pub mod npy;
pub mod npz;
pub mod user;

pub use csv::{read_labeled_csv, write_csv, LabeledRows};
pub use error::{DataError, Result};
pub use npy::{read_npy, write_npy, ArrayData, NpyArray};
pub use npz::{read_npz, write_npz};
pub use user::{load_cloud, save_cloud, LoadedCloud};
