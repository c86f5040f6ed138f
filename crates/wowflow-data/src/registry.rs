//! The dataset registry: what each dataset's files are (names, sizes, md5, sha256, public
//! download addresses), its class names, and where copies are searched for.
//!
//! Checksums of MNIST, Fashion-MNIST, KMNIST and USPS were checked against the real files
//! (`shared/data/README.md`); md5s equal torchvision's. CIFAR-10 and SVHN values are those
//! published by the dataset authors and torchvision (md5) and by public manifests (sha256);
//! they could not be checked here because the files are not available offline.
//!
//! Search order for a dataset `D` (first hit wins):
//! 1. an explicit directory (`--data-dir`): `DIR/D/` then `DIR/` itself,
//! 2. `$WOWFLOW_DATA/D/`,
//! 3. the user cache directory (`~/.cache/wowflow/D/` on Linux), where `data fetch` writes,
//! 4. system copies: `/usr/share/datasets/fashion-mnist/` (Debian's `dataset-fashion-mnist`).
//!
//! `DIR/` itself is searched only for an explicit directory, because there the user points at
//! one dataset's folder; two datasets share file names (MNIST and Fashion-MNIST), so a
//! generic root must be split by dataset.

use crate::error::{DataError, Result};
use std::path::{Path, PathBuf};

/// One file of a dataset.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FileSpec {
    /// File name inside the dataset's directory, e.g. `train-images-idx3-ubyte.gz`.
    pub name: &'static str,
    /// What the file holds, e.g. "train images".
    pub role: &'static str,
    /// Size in bytes of the reference copy.
    pub bytes: u64,
    /// md5 of the reference copy, lowercase hex (torchvision's value where it has one).
    pub md5: &'static str,
    /// sha256 of the reference copy, lowercase hex; `None` where no value is recorded, and
    /// then verification checks size and md5 only.
    pub sha256: Option<&'static str>,
    /// md5s of other byte streams known to decode to identical content (Debian re-gzipped
    /// Fashion-MNIST); accepted by verification, reported as such.
    pub alt_md5: &'static [&'static str],
    /// Public download addresses, tried in order; empty where none is freely downloadable.
    pub urls: &'static [&'static str],
    /// False for alternative copies (a second format of the same data) that a complete
    /// install does not need.
    pub required: bool,
}

/// One dataset.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DatasetSpec {
    /// Registry name, as typed on the command line.
    pub name: &'static str,
    /// Full name and authors, for listings.
    pub title: &'static str,
    /// Sub-directory of a data root holding the files.
    pub dir: &'static str,
    /// Class names in label order: `classes[k]` is the name of label `k`.
    pub classes: &'static [&'static str],
    /// `(channels, height, width)` of the stored images.
    pub image: (usize, usize, usize),
    /// Every file of the dataset, including optional alternative copies
    /// ([`FileSpec::required`] false).
    pub files: &'static [FileSpec],
    /// Dataset-specific system directories (searched last).
    pub system_dirs: &'static [&'static str],
    /// What is special about this dataset's files (missing splits, releases, …).
    pub notes: &'static str,
}

const DIGITS: &[&str] = &["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];

macro_rules! file {
    ($name:expr, $role:expr, $bytes:expr, $md5:expr, $sha:expr, [$($url:expr),*]) => {
        FileSpec { name: $name, role: $role, bytes: $bytes, md5: $md5, sha256: $sha, alt_md5: &[], urls: &[$($url),*], required: true }
    };
}

/// Every dataset wowflow knows.
pub static DATASETS: &[DatasetSpec] = &[
    DatasetSpec {
        name: "mnist",
        title: "MNIST handwritten digits (LeCun, Cortes, Burges)",
        dir: "mnist",
        classes: DIGITS,
        image: (1, 28, 28),
        files: &[
            file!("train-images-idx3-ubyte.gz", "train images", 9912422, "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                Some("440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
                ["https://ossci-datasets.s3.amazonaws.com/mnist/train-images-idx3-ubyte.gz"]),
            file!("train-labels-idx1-ubyte.gz", "train labels", 28881, "d53e105ee54ea40749a09fcbcd1e9432",
                Some("3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
                ["https://ossci-datasets.s3.amazonaws.com/mnist/train-labels-idx1-ubyte.gz"]),
            file!("t10k-images-idx3-ubyte.gz", "test images", 1648877, "9fb629c4189551a2d022fa330f9573f3",
                Some("8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
                ["https://ossci-datasets.s3.amazonaws.com/mnist/t10k-images-idx3-ubyte.gz"]),
            file!("t10k-labels-idx1-ubyte.gz", "test labels", 4542, "ec29112dd5afa0611ce80d1b7f02629c",
                Some("f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
                ["https://ossci-datasets.s3.amazonaws.com/mnist/t10k-labels-idx1-ubyte.gz"]),
        ],
        system_dirs: &[],
        notes: "60000 train + 10000 test, 28x28 grayscale.",
    },
    DatasetSpec {
        name: "fashion-mnist",
        title: "Fashion-MNIST (Zalando Research)",
        dir: "fashion-mnist",
        classes: &["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
        image: (1, 28, 28),
        files: &[
            FileSpec {
                alt_md5: &["cf8536b0aa1a6ac5fa3f23001093305c"],
                ..file!("train-images-idx3-ubyte.gz", "train images", 26421880, "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                    Some("3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"),
                    ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/train-images-idx3-ubyte.gz"])
            },
            FileSpec {
                alt_md5: &["10bea18fdb374794d4bb42e356e600c9"],
                ..file!("train-labels-idx1-ubyte.gz", "train labels", 29515, "25c81989df183df01b3e8a0aad5dffbe",
                    Some("a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"),
                    ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/train-labels-idx1-ubyte.gz"])
            },
            FileSpec {
                alt_md5: &["f78720b4224f21cce2f2ccf2d7a94c9a"],
                ..file!("t10k-images-idx3-ubyte.gz", "test images", 4422102, "bef4ecab320f06d8554ea6380940ec79",
                    Some("346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"),
                    ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/t10k-images-idx3-ubyte.gz"])
            },
            FileSpec {
                alt_md5: &["0d30e22e447f3c33dab9ed536400ac01"],
                ..file!("t10k-labels-idx1-ubyte.gz", "test labels", 5148, "bb300cfdad3c16e7a12a480ee83cd310",
                    Some("67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"),
                    ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/t10k-labels-idx1-ubyte.gz"])
            },
        ],
        system_dirs: &["/usr/share/datasets/fashion-mnist"],
        notes: "60000 train + 10000 test, 28x28 grayscale. Debian's package dataset-fashion-mnist \
                re-gzips the files (other md5, same content); those copies verify as such.",
    },
    DatasetSpec {
        name: "kmnist",
        title: "Kuzushiji-MNIST (CODH / NIJL)",
        dir: "kmnist",
        classes: &["お", "き", "す", "つ", "な", "は", "ま", "や", "れ", "を"],
        image: (1, 28, 28),
        files: &[
            file!("train-images-idx3-ubyte.gz", "train images", 18165135, "bdb82020997e1d708af4cf47b453dcf7", None,
                ["http://codh.rois.ac.jp/kmnist/dataset/kmnist/train-images-idx3-ubyte.gz"]),
            file!("train-labels-idx1-ubyte.gz", "train labels", 29497, "e144d726b3acfaa3e44228e80efcd344",
                Some("e38f9ebcd0f3ebcdec7fc8eabdcdaef93bb0df8ea12bee65224341c8183d8e17"),
                ["http://codh.rois.ac.jp/kmnist/dataset/kmnist/train-labels-idx1-ubyte.gz"]),
            file!("t10k-images-idx3-ubyte.gz", "test images", 3041136, "5c965bf0a639b31b8f53240b1b52f4d7",
                Some("edd7a857845ad6bb1d0ba43fe7e794d164fe2dce499a1694695a792adfac43c5"),
                ["http://codh.rois.ac.jp/kmnist/dataset/kmnist/t10k-images-idx3-ubyte.gz"]),
            file!("t10k-labels-idx1-ubyte.gz", "test labels", 5120, "7320c461ea6c1c855c0b718fb2a4b134",
                Some("20bb9a0ef54c7db3efc55a92eef5582c109615df22683c380526788f98e42a1c"),
                ["http://codh.rois.ac.jp/kmnist/dataset/kmnist/t10k-labels-idx1-ubyte.gz"]),
            FileSpec {
                required: false,
                ..file!("kmnist-train-imgs.npz", "train images (npz)", 18384171, "a183fbc01ed9a345513b145673d3d0bb", None,
                    ["http://codh.rois.ac.jp/kmnist/dataset/kmnist/kmnist-train-imgs.npz"])
            },
            FileSpec {
                required: false,
                ..file!("kmnist-train-labels.npz", "train labels (npz)", 29700, "b0e1d240e8afec72b50437fc3bc5908a",
                    Some("a325c877035602cb9b9ba54f4194a2a1b5f718026a463db5b5e0cdc124c03720"),
                    ["http://codh.rois.ac.jp/kmnist/dataset/kmnist/kmnist-train-labels.npz"])
            },
            FileSpec {
                required: false,
                ..file!("kmnist-test-imgs.npz", "test images (npz)", 3079479, "dace6de62ca8b90843cc45366337d02e",
                    Some("692d824896bec8f3c357ebf7a0fe904ed67ac632ce953d0b58f7fbef7bb27d87"),
                    ["http://codh.rois.ac.jp/kmnist/dataset/kmnist/kmnist-test-imgs.npz"])
            },
            FileSpec {
                required: false,
                ..file!("kmnist-test-labels.npz", "test labels (npz)", 5304, "3ae489a79983d0fe386152684e3b5412",
                    Some("660f13a4705431ea2a6391c41ecbe384cd0d932c595a101ec4f3b8989e785046"),
                    ["http://codh.rois.ac.jp/kmnist/dataset/kmnist/kmnist-test-labels.npz"])
            },
            FileSpec {
                required: false,
                ..file!("kmnist_classmap.csv", "class map", 151, "899202f6e8dc29a321ac210a03d0f2f1",
                    Some("88ba4be4bd52d986ae100b425d5c28437c81829c87800c5832a2253edc758374"),
                    ["http://codh.rois.ac.jp/kmnist/dataset/kmnist/kmnist_classmap.csv"])
            },
        ],
        system_dirs: &[],
        notes: "The shared test data lacks the train images. Where they are missing, experiments use \
                the documented fallback: the test split, half of each class as the k-shot pool and \
                the other half for evaluation (seeded).",
    },
    DatasetSpec {
        name: "usps",
        title: "USPS handwritten digits (Hull 1994)",
        dir: "usps",
        classes: DIGITS,
        image: (1, 16, 16),
        files: &[
            file!("usps.h5", "train + test (HDF5, ESL release)", 2913522, "355df6b942eb766252e0340bc019b0b9",
                Some("734f88c541104a956d88be2c95d03b4a463ffd74ccc2ba9c80841fb98e3fcb36"), []),
            FileSpec {
                required: false,
                ..file!("usps.t.bz2", "test (LIBSVM, torchvision)", 1831726, "8ea070ee2aca1ac39742fdd1ef5ed118",
                    Some("a9c0164e797d60142a50604917f0baa604f326e9a689698763793fa5d12ffc4e"),
                    ["https://www.csie.ntu.edu.tw/~cjlin/libsvmtools/datasets/multiclass/usps.t.bz2"])
            },
            FileSpec {
                required: false,
                ..file!("usps.bz2", "train (LIBSVM, torchvision)", 6579383, "ec16c51db3855ca6c91edd34d0e9b197",
                    Some("3771e9dd6ba685185f89867b6e249233dd74652389f263963b3b741e994b034f"),
                    ["https://www.csie.ntu.edu.tw/~cjlin/libsvmtools/datasets/multiclass/usps.bz2"])
            },
        ],
        system_dirs: &[],
        notes: "7291 train + 2007 test, 16x16, resized to 28x28 (bilinear) when sampled for MNIST-size \
                experiments. usps.h5 (Kaggle \"USPS dataset\", no public direct URL: place it by hand) \
                is preferred for both splits; without it the LIBSVM files are used.",
    },
    DatasetSpec {
        name: "cifar10",
        title: "CIFAR-10 (Krizhevsky 2009), binary version",
        dir: "cifar10",
        classes: &["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
        image: (3, 32, 32),
        files: &[file!("cifar-10-binary.tar.gz", "train + test batches", 170052171, "c32a1d4ab5d03f1284b67883e8d87530",
            Some("c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd"),
            ["https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"])],
        system_dirs: &[],
        notes: "50000 train + 10000 test, 32x32 RGB. Read from the tarball or an unpacked cifar-10-batches-bin/.",
    },
    DatasetSpec {
        name: "svhn",
        title: "SVHN cropped digits (Netzer et al. 2011)",
        dir: "svhn",
        classes: DIGITS,
        image: (3, 32, 32),
        files: &[
            file!("train_32x32.mat", "train", 182040794, "e26dedcc434d2e4c54c9b2d4a06d8373",
                Some("435e94d69a87fde4fd4d7f3dd208dfc32cb6ae8af2240d066de1df7508d083b8"),
                ["http://ufldl.stanford.edu/housenumbers/train_32x32.mat"]),
            file!("test_32x32.mat", "test", 64275384, "eb5a983be6a315427106f1b164d9cef3",
                Some("cdce80dfb2a2c4c6160906d0bd7c68ec5a99d7ca4831afa54f09182025b6a75b"),
                ["http://ufldl.stanford.edu/housenumbers/test_32x32.mat"]),
        ],
        system_dirs: &[],
        notes: "73257 train + 26032 test, 32x32 RGB; label 10 of the files is digit 0.",
    },
];

/// The registry entry of `name` (case-insensitive; `fashion_mnist`, `fmnist`, `cifar-10`
/// are accepted as aliases).
pub fn dataset(name: &str) -> Result<&'static DatasetSpec> {
    let key = name.to_ascii_lowercase().replace('_', "-");
    let key = match key.as_str() {
        "fmnist" | "fashion" | "fashionmnist" => "fashion-mnist",
        "cifar-10" | "cifar" => "cifar10",
        other => other,
    };
    DATASETS
        .iter()
        .find(|d| d.name == key)
        .ok_or_else(|| DataError::Invalid {
            what: format!("dataset `{name}`"),
            problem: format!(
                "unknown; known datasets: {}",
                DATASETS
                    .iter()
                    .map(|d| d.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
}

impl DatasetSpec {
    /// The file spec called `file`.
    pub fn file(&self, file: &str) -> Option<&'static FileSpec> {
        // `self` may be a copy; look the file up in the static table to return 'static.
        DATASETS
            .iter()
            .find(|d| d.name == self.name)
            .and_then(|d| d.files.iter().find(|f| f.name == file))
    }
}

/// Where a search root comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// `--data-dir`.
    Explicit,
    /// `$WOWFLOW_DATA`.
    Env,
    /// The user cache directory (where `data fetch` writes by default).
    Cache,
    /// A system-wide copy (Debian package).
    System,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Origin::Explicit => "--data-dir",
            Origin::Env => "$WOWFLOW_DATA",
            Origin::Cache => "cache",
            Origin::System => "system",
        })
    }
}

/// A data root and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root {
    /// The root directory; a dataset `D` is looked for in `path/D/` (and, for
    /// [`Origin::Explicit`], in `path/` itself).
    pub path: PathBuf,
    /// Which setting supplied it.
    pub origin: Origin,
}

/// The user cache directory for downloads: `<cache>/wowflow` (`~/.cache/wowflow` on Linux).
pub fn cache_dir() -> Option<PathBuf> {
    dirs::cache_dir().map(|d| d.join("wowflow"))
}

/// The search roots in order: `explicit`, `$WOWFLOW_DATA`, the cache directory. (System
/// directories are per dataset, see [`DatasetSpec::system_dirs`].)
pub fn search_roots(explicit: Option<&Path>) -> Vec<Root> {
    let mut roots = Vec::new();
    if let Some(p) = explicit {
        roots.push(Root {
            path: p.to_path_buf(),
            origin: Origin::Explicit,
        });
    }
    if let Some(p) = std::env::var_os("WOWFLOW_DATA").filter(|p| !p.is_empty()) {
        roots.push(Root {
            path: PathBuf::from(p),
            origin: Origin::Env,
        });
    }
    if let Some(p) = cache_dir() {
        roots.push(Root {
            path: p,
            origin: Origin::Cache,
        });
    }
    roots
}

/// Where to look for datasets: an ordered list of roots.
#[derive(Debug, Clone, PartialEq)]
pub struct DataDirs {
    /// The roots, searched in this order; the first copy found wins.
    pub roots: Vec<Root>,
    /// Whether dataset-specific system directories are searched (off in tests, so results
    /// do not depend on what the machine has installed).
    pub system: bool,
}

impl DataDirs {
    /// The standard search order with an optional `--data-dir`.
    pub fn new(explicit: Option<&Path>) -> Self {
        Self {
            roots: search_roots(explicit),
            system: true,
        }
    }
    /// Exactly these roots, no environment and no system directories.
    pub fn only(roots: Vec<Root>) -> Self {
        Self {
            roots,
            system: false,
        }
    }

    /// Candidate directories for a dataset, in search order.
    pub fn candidates(&self, ds: &DatasetSpec) -> Vec<(PathBuf, Origin)> {
        let mut out = Vec::new();
        for r in &self.roots {
            out.push((r.path.join(ds.dir), r.origin));
            if r.origin == Origin::Explicit {
                out.push((r.path.clone(), r.origin));
            }
        }
        if self.system {
            out.extend(
                ds.system_dirs
                    .iter()
                    .map(|d| (PathBuf::from(d), Origin::System)),
            );
        }
        out
    }

    /// The first existing copy of `file` of dataset `ds`.
    pub fn find(&self, ds: &DatasetSpec, file: &str) -> Option<(PathBuf, Origin)> {
        self.candidates(ds)
            .into_iter()
            .map(|(d, o)| (d.join(file), o))
            .find(|(p, _)| p.is_file())
    }

    /// Like [`DataDirs::find`], but a missing file is an error listing the searched places.
    pub fn require(&self, ds: &DatasetSpec, file: &str) -> Result<PathBuf> {
        self.find(ds, file)
            .map(|(p, _)| p)
            .ok_or_else(|| self.not_found(ds, file))
    }

    pub(crate) fn not_found(&self, ds: &DatasetSpec, what: &str) -> DataError {
        let searched = self
            .candidates(ds)
            .iter()
            .map(|(d, o)| format!("{} ({o})", d.display()))
            .collect::<Vec<_>>()
            .join(", ");
        DataError::NotFound {
            what: format!("{} `{what}`", ds.name),
            searched: if searched.is_empty() {
                "nowhere (no data directory configured)".to_string()
            } else {
                searched
            },
        }
    }
}
