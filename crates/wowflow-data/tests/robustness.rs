//! Damaged files on disk: every reader must return an error that names the file and the
//! problem, never panic. Inputs are derived from small, generated files in each real format
//! (and from the real MNIST test labels when shared/data is present).

use std::io::Write;
use std::path::{Path, PathBuf};
use wowflow_data::*;

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v.extend_from_slice(data);
    v
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn assert_names(e: &DataError, path: &Path, what: &str) {
    let msg = e.to_string();
    assert!(
        msg.contains(&path.display().to_string()),
        "message does not name the file: {msg}"
    );
    assert!(msg.contains(what), "message does not say `{what}`: {msg}");
}

#[test]
fn idx_files_damaged_in_every_way() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let images = idx(&[3, 2, 2], &[7; 12]);
    let labels = idx(&[3], &[0, 1, 2]);
    let img = write(d, "img.gz", &gz(&images));
    let lab = write(d, "lab.gz", &gz(&labels));
    assert_eq!(idx::read_idx_pair(&img, &lab, 10).unwrap().len(), 3);

    // Bad magic: a labels file given as images.
    let e = idx::read_idx_images(&lab).unwrap_err();
    assert_names(&e, &lab, "bad magic number");
    // Truncated payload (valid gzip of a short idx).
    let p = write(d, "short.gz", &gz(&images[..images.len() - 2]));
    assert_names(
        &idx::read_idx_images(&p).unwrap_err(),
        &p,
        "truncated idx data",
    );
    // Truncated gzip stream.
    let g = gz(&images);
    let p = write(d, "cut.gz", &g[..g.len() - 6]);
    assert_names(
        &idx::read_idx_images(&p).unwrap_err(),
        &p,
        "broken gzip stream",
    );
    // Corrupted gzip body.
    let mut g2 = g.clone();
    g2[12] ^= 0xff;
    let p = write(d, "flip.gz", &g2);
    assert!(idx::read_idx_images(&p).is_err());
    // Wrong counts between images and labels.
    let p = write(d, "lab4.gz", &gz(&idx(&[4], &[0, 1, 2, 3])));
    assert_names(
        &idx::read_idx_pair(&img, &p, 10).unwrap_err(),
        &p,
        "4 labels, but",
    );
    // Label out of range.
    let p = write(d, "lab_bad", &idx(&[3], &[0, 1, 10]));
    assert_names(
        &idx::read_idx_pair(&img, &p, 10).unwrap_err(),
        &p,
        "label 10 at index 2 is out of range",
    );
    // Missing file.
    let e = idx::read_idx_images(&d.join("nope.gz")).unwrap_err();
    assert!(matches!(e, DataError::Io { .. }), "{e}");
}

#[test]
fn usps_libsvm_broken_bzip2_and_text() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut line = String::from("3");
    for k in 1..=256 {
        line.push_str(&format!(" {k}:-1.000000"));
    }
    line.push('\n');
    let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
    e.write_all(line.repeat(5).as_bytes()).unwrap();
    let bz = e.finish().unwrap();
    let good = write(d, "usps.t.bz2", &bz);
    assert_eq!(usps::read_usps_libsvm(&good).unwrap().labels, vec![2; 5]);
    let p = write(d, "cut.bz2", &bz[..bz.len() / 2]);
    assert_names(
        &usps::read_usps_libsvm(&p).unwrap_err(),
        &p,
        "broken bzip2 stream",
    );
    let p = write(d, "text", b"0 1:0.5\n");
    assert_names(&usps::read_usps_libsvm(&p).unwrap_err(), &p, "label 0");
}

#[test]
fn usps_h5_not_hdf5_or_damaged() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let p = write(d, "usps.h5", b"definitely not an HDF5 file, just text");
    assert_names(
        &usps::read_usps_h5(&p, "train").unwrap_err(),
        &p,
        "bad magic",
    );
    // A real HDF5 header followed by garbage.
    let mut junk = b"\x89HDF\r\n\x1a\n".to_vec();
    junk.extend((0..4000u32).map(|i| (i * 7919 % 251) as u8));
    let p = write(d, "junk.h5", &junk);
    let e = usps::read_usps_h5(&p, "train").unwrap_err();
    assert!(e.to_string().contains("junk.h5"), "{e}");
    // The real file truncated to half (when present).
    if let Some(data) = wowflow_testkit::shared_data("the truncated usps.h5 case", &["usps"]) {
        let real = data.join("usps/usps.h5");
        let bytes = std::fs::read(&real).expect("usps/usps.h5 in shared/data");
        let p = write(d, "half.h5", &bytes[..bytes.len() / 2]);
        let e = usps::read_usps_h5(&p, "train").unwrap_err();
        assert!(e.to_string().contains("half.h5"), "{e}");
        let e = usps::read_usps_h5(&real, "validation").unwrap_err();
        assert!(e.to_string().contains("validation/data"), "{e}");
    }
}

#[test]
fn npz_and_npy_damaged() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let p = d.join("a.npz");
    write_npz(
        &p,
        &[
            ("x", &NpyArray::f32(vec![2, 2], vec![1.0; 4])),
            ("y", &NpyArray::i64(vec![2], vec![0, 1])),
        ],
    )
    .unwrap();
    let bytes = std::fs::read(&p).unwrap();
    let q = write(d, "cut.npz", &bytes[..bytes.len() - 30]);
    assert!(load_cloud(&q).unwrap_err().to_string().contains("cut.npz"));
    let q = write(d, "x.npy", b"\x93NUMPY\x01\x00\x10\x00{'descr': '<f4'");
    assert_names(&load_cloud(&q).unwrap_err(), &q, "truncated npy header");
}

#[test]
fn real_labels_truncated() {
    let Some(data) = wowflow_testkit::shared_data("real_labels_truncated", &["mnist"]) else {
        return;
    };
    let real = data.join("mnist/t10k-labels-idx1-ubyte.gz");
    let bytes = std::fs::read(&real).expect("the MNIST test labels in shared/data");
    assert_eq!(idx::read_idx_labels(&real).unwrap().dims, vec![10000]);
    let dir = tempfile::tempdir().unwrap();
    for cut in [10, bytes.len() / 2, bytes.len() - 1] {
        let p = write(dir.path(), "t.gz", &bytes[..cut]);
        assert_names(
            &idx::read_idx_labels(&p).unwrap_err(),
            &p,
            "broken gzip stream",
        );
    }
}
