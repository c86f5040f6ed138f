//! Loading a registered dataset's split from wherever the search order finds it.

use crate::cifar::{read_cifar10_dir, read_cifar10_tar};
use crate::error::{name, DataError, Result};
use crate::idx::read_idx_pair;
use crate::images::{check_labels, ImageSet, Pixels};
use crate::npz::read_npz;
use crate::registry::{dataset, DataDirs, DatasetSpec};
use crate::svhn::read_svhn_mat;
use crate::usps::{read_usps_h5, read_usps_libsvm};
use std::path::{Path, PathBuf};

/// A dataset split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Split {
    /// The training split (e.g. MNIST's `train-*` idx files, CIFAR-10's `data_batch_1…5`).
    Train,
    /// The test split (e.g. MNIST's `t10k-*` idx files, CIFAR-10's `test_batch`); parsing
    /// accepts `test` and `t10k`.
    Test,
}

impl Split {
    /// `"train"` or `"test"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "test",
        }
    }
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Split {
    type Err = DataError;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "train" => Ok(Split::Train),
            "test" | "t10k" => Ok(Split::Test),
            _ => Err(DataError::Invalid {
                what: format!("split `{s}`"),
                problem: "expected `train` or `test`".to_string(),
            }),
        }
    }
}

/// Loads one split of a registered dataset (`mnist`, `fashion-mnist`, `kmnist`, `usps`,
/// `cifar10`, `svhn`). Files are found with [`DataDirs`]; a missing file is a
/// [`DataError::NotFound`] listing every place searched.
pub fn load_split(dirs: &DataDirs, name: &str, split: Split) -> Result<ImageSet> {
    let ds = dataset(name)?;
    match ds.name {
        "mnist" | "fashion-mnist" => load_idx(dirs, ds, split),
        "kmnist" => load_idx(dirs, ds, split).or_else(|e| match e {
            DataError::NotFound { .. } => load_kmnist_npz(dirs, ds, split).map_err(|e2| match e2 {
                DataError::NotFound { .. } => e, // report the primary (idx) files
                other => other,
            }),
            other => Err(other),
        }),
        "usps" => load_usps(dirs, ds, split),
        "cifar10" => load_cifar(dirs, ds, split),
        "svhn" => read_svhn_mat(&dirs.require(ds, &format!("{}_32x32.mat", split.as_str()))?),
        other => Err(DataError::Invalid {
            what: format!("dataset `{other}`"),
            problem: "registered but has no loader".to_string(),
        }),
    }
}

/// The idx file, or its decompressed twin (people often keep the unpacked files).
fn find_idx(dirs: &DataDirs, ds: &DatasetSpec, file: &str) -> Result<PathBuf> {
    dirs.find(ds, file)
        .or_else(|| file.strip_suffix(".gz").and_then(|raw| dirs.find(ds, raw)))
        .map(|(p, _)| p)
        .ok_or_else(|| dirs.not_found(ds, file))
}

fn load_idx(dirs: &DataDirs, ds: &DatasetSpec, split: Split) -> Result<ImageSet> {
    let prefix = match split {
        Split::Train => "train",
        Split::Test => "t10k",
    };
    let images = find_idx(dirs, ds, &format!("{prefix}-images-idx3-ubyte.gz"))?;
    let labels = find_idx(dirs, ds, &format!("{prefix}-labels-idx1-ubyte.gz"))?;
    read_idx_pair(&images, &labels, ds.classes.len())
}

fn load_kmnist_npz(dirs: &DataDirs, ds: &DatasetSpec, split: Split) -> Result<ImageSet> {
    let images = dirs.require(ds, &format!("kmnist-{}-imgs.npz", split.as_str()))?;
    let labels = dirs.require(ds, &format!("kmnist-{}-labels.npz", split.as_str()))?;
    let take = |p: &Path, dims: usize| -> Result<(Vec<usize>, Vec<u8>)> {
        let file = name(p);
        let arrays = read_npz(p)?;
        let a = arrays
            .get("arr_0")
            .ok_or_else(|| DataError::shape(&file, "no array `arr_0` (the KMNIST npz layout)"))?;
        match &a.data {
            crate::npy::ArrayData::U8(v) if a.shape.len() == dims => {
                Ok((a.shape.clone(), v.clone()))
            }
            _ => Err(DataError::shape(
                &file,
                format!(
                    "array `arr_0` is {} of shape {}, expected uint8 with {dims} dimensions",
                    a.data.dtype_name(),
                    a.shape_string()
                ),
            )),
        }
    };
    let (ishape, pixels) = take(&images, 3)?;
    let (lshape, labs) = take(&labels, 1)?;
    if lshape[0] != ishape[0] {
        return Err(DataError::shape(
            name(&labels),
            format!(
                "{} labels, but {} holds {} images",
                lshape[0],
                name(&images),
                ishape[0]
            ),
        ));
    }
    check_labels(&labs, ds.classes.len(), &name(&labels))?;
    ImageSet::new(
        (1, ishape[1], ishape[2]),
        Pixels::U8(pixels),
        labs,
        ds.classes.len(),
        &name(&images),
    )
}

fn load_usps(dirs: &DataDirs, ds: &DatasetSpec, split: Split) -> Result<ImageSet> {
    if let Some((h5, _)) = dirs.find(ds, "usps.h5") {
        return read_usps_h5(&h5, split.as_str());
    }
    let libsvm = match split {
        Split::Train => "usps.bz2",
        Split::Test => "usps.t.bz2",
    };
    match dirs.find(ds, libsvm) {
        Some((p, _)) => read_usps_libsvm(&p),
        None => Err(dirs.not_found(ds, &format!("usps.h5 (or {libsvm})"))),
    }
}

fn load_cifar(dirs: &DataDirs, ds: &DatasetSpec, split: Split) -> Result<ImageSet> {
    if let Some((tar, _)) = dirs.find(ds, "cifar-10-binary.tar.gz") {
        return read_cifar10_tar(&tar, split.as_str());
    }
    for (dir, _) in dirs.candidates(ds) {
        let unpacked = dir.join("cifar-10-batches-bin");
        if unpacked.is_dir() {
            return read_cifar10_dir(&unpacked, split.as_str());
        }
    }
    Err(dirs.not_found(ds, "cifar-10-binary.tar.gz (or cifar-10-batches-bin/)"))
}
