//! The user formats end to end: files on disk → `load_cloud` → `save_cloud` → files, plus
//! numpy interoperability when a Python with numpy is available.

use std::path::Path;
use std::process::Command;
use wowflow_data::*;

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

#[test]
fn npy_cloud_round_trip() {
    let dir = tmp();
    let p = dir.path().join("c.npy");
    let vals: Vec<f32> = (0..2 * 3 * 4).map(|v| v as f32 * 0.5).collect();
    write_npy(&p, &NpyArray::f32(vec![2, 3, 4], vals.clone())).unwrap();
    let l = load_cloud(&p).unwrap();
    assert_eq!(
        (l.cloud.n_classes(), l.cloud.class_len(1), l.cloud.dim()),
        (2, 3, 4)
    );
    assert_eq!(l.cloud.points(), &vals[..]);
    assert_eq!(l.order, (0..6).collect::<Vec<_>>());
    let q = dir.path().join("back.npy");
    save_cloud(&q, &l.cloud, None).unwrap();
    assert_eq!(read_npy(&q).unwrap(), read_npy(&p).unwrap());
}

#[test]
fn npy_must_be_three_dimensional_float() {
    let dir = tmp();
    let p = dir.path().join("flat.npy");
    write_npy(&p, &NpyArray::f32(vec![4, 2], vec![0.0; 8])).unwrap();
    let e = load_cloud(&p).unwrap_err().to_string();
    assert!(
        e.contains("flat.npy: array has shape (4, 2), expected 3 dimensions (C, n, d)"),
        "{e}"
    );
    write_npy(&p, &NpyArray::i64(vec![1, 2, 1], vec![1, 2])).unwrap();
    let e = load_cloud(&p).unwrap_err().to_string();
    assert!(e.contains("int64") && e.contains("float32"), "{e}");
    let mut v = vec![0.0f32; 8];
    v[5] = f32::INFINITY;
    write_npy(&p, &NpyArray::f32(vec![2, 2, 2], v)).unwrap();
    let e = load_cloud(&p).unwrap_err().to_string();
    assert!(e.contains("class 1, point 0, feature 1 is inf"), "{e}");
}

#[test]
fn npz_labels_any_class_sizes_and_original_order() {
    let dir = tmp();
    let p = dir.path().join("d.npz");
    let x: Vec<f32> = (0..10).map(|v| v as f32).collect();
    let y = NpyArray::i64(vec![5], vec![7, 2, 7, 7, 2]);
    write_npz(
        &p,
        &[("x", &NpyArray::f32(vec![5, 2], x.clone())), ("y", &y)],
    )
    .unwrap();
    let l = load_cloud(&p).unwrap();
    assert_eq!(l.cloud.class_ids(), &[2, 7]);
    assert_eq!(l.cloud.offsets(), &[0, 2, 5]);
    assert_eq!(l.cloud.to_input_order(&l.order), x);
    // Written back in the file's row order.
    let q = dir.path().join("out.npz");
    save_cloud(&q, &l.cloud, Some(&l.order)).unwrap();
    let back = read_npz(&q).unwrap();
    assert_eq!(back["x"].to_f32(), x);
    assert_eq!(back["y"].to_i64().unwrap(), vec![7, 2, 7, 7, 2]);
    // Float labels holding integers are fine, (N, 1) labels too.
    let yf = NpyArray::f32(vec![5, 1], vec![1.0, 0.0, 1.0, 0.0, 0.0]);
    write_npz(&p, &[("x", &NpyArray::f32(vec![5, 1, 2], x)), ("y", &yf)]).unwrap();
    assert_eq!(load_cloud(&p).unwrap().cloud.class_len(0), 3);
}

#[test]
fn npz_errors_name_the_array_and_shapes() {
    let dir = tmp();
    let p = dir.path().join("data.npz");
    let x = NpyArray::f32(vec![100, 784], vec![0.0; 78400]);
    let y = NpyArray::i64(vec![99], vec![0; 99]);
    write_npz(&p, &[("x", &x), ("y", &y)]).unwrap();
    let e = load_cloud(&p).unwrap_err().to_string();
    assert!(
        e.ends_with("data.npz: array `y` has shape (99,), expected (100,) to match `x` (100, 784)"),
        "{e}"
    );
    write_npz(&p, &[("features", &x)]).unwrap();
    let e = load_cloud(&p).unwrap_err().to_string();
    assert!(e.contains("no array `x` (found: `features`)"), "{e}");
    let mut v = vec![0.0f32; 6];
    v[4] = f32::NAN;
    let yl = NpyArray::i64(vec![3], vec![0, 1, 0]);
    write_npz(&p, &[("x", &NpyArray::f32(vec![3, 2], v)), ("y", &yl)]).unwrap();
    let e = load_cloud(&p).unwrap_err().to_string();
    assert!(e.contains("array `x` row 2, column 0 is NaN"), "{e}");
    let yb = NpyArray::f32(vec![3], vec![0.0, 0.5, 1.0]);
    write_npz(
        &p,
        &[("x", &NpyArray::f32(vec![3, 2], vec![0.0; 6])), ("y", &yb)],
    )
    .unwrap();
    let e = load_cloud(&p).unwrap_err().to_string();
    assert!(
        e.contains("array `y`: element 1: value 0.5 is not an integer"),
        "{e}"
    );
}

#[test]
fn csv_cloud_and_errors() {
    let dir = tmp();
    let p = dir.path().join("d.csv");
    std::fs::write(&p, "label,a,b\n1,0.5,1\n0,2,3\n1,4,5\n").unwrap();
    let l = load_cloud(&p).unwrap();
    assert_eq!(l.cloud.class_ids(), &[0, 1]);
    assert_eq!(l.cloud.class_points(0), &[2.0, 3.0]);
    let q = dir.path().join("o.csv");
    save_cloud(&q, &l.cloud, Some(&l.order)).unwrap();
    assert_eq!(
        std::fs::read_to_string(&q).unwrap(),
        "label,x1,x2\n1,0.5,1\n0,2,3\n1,4,5\n"
    );
    let e = load_cloud(&dir.path().join("d.txt"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("unsupported file type `.txt`"), "{e}");
    let e = load_cloud(&dir.path().join("missing.csv")).unwrap_err();
    assert!(matches!(e, DataError::Io { .. }), "{e}");
    std::fs::write(&p, "1,2\n1,inf\n").unwrap();
    assert!(matches!(
        load_cloud(&p).unwrap_err(),
        DataError::NonFinite { .. }
    ));
}

fn numpy_available() -> bool {
    Command::new("python3")
        .args(["-c", "import numpy"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn python(script: &str, dir: &Path) {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Files written here load in numpy with the same values, and files numpy writes (every
/// dtype and layout variant we claim to read) load here.
#[test]
fn numpy_interoperability() {
    if !numpy_available() {
        println!("SKIPPED numpy_interoperability: python3 with numpy not found (pip install numpy to run it)");
        return;
    }
    let dir = tmp();
    let d = dir.path();
    let x: Vec<f32> = (0..12).map(|v| v as f32 / 3.0).collect();
    write_npy(&d.join("a.npy"), &NpyArray::f32(vec![2, 3, 2], x.clone())).unwrap();
    write_npz(
        &d.join("b.npz"),
        &[
            ("x", &NpyArray::f32(vec![6, 2], x.clone())),
            ("y", &NpyArray::i64(vec![6], vec![0, 1, 2, 0, 1, 2])),
        ],
    )
    .unwrap();
    python(
        r#"
import numpy as np
a = np.load('a.npy')
assert a.dtype == np.float32 and a.shape == (2, 3, 2), (a.dtype, a.shape)
assert np.array_equal(a.ravel(), (np.arange(12) / np.float32(3)).astype(np.float32))
b = np.load('b.npz')
assert sorted(b.files) == ['x', 'y'] and b['y'].dtype == np.int64
assert list(b['y']) == [0, 1, 2, 0, 1, 2]
r = np.arange(24, dtype=np.float64).reshape(2, 3, 4) / 7
np.save('f64.npy', r)
np.save('fortran.npy', np.asfortranarray(r.astype(np.float32)))
np.save('big.npy', r.astype('>f4'))
np.savez_compressed('comp.npz', x=r.reshape(6, 4).astype(np.float32), y=np.array([3, 3, 1, 1, 2, 2], dtype=np.uint8))
np.savez('plain.npz', x=r.reshape(6, 4), y=np.array([3, 3, 1, 1, 2, 2], dtype=np.int32))
"#,
        d,
    );
    let expect: Vec<f32> = (0..24).map(|v| (v as f64 / 7.0) as f32).collect();
    for f in ["f64.npy", "fortran.npy", "big.npy"] {
        let l = load_cloud(&d.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert_eq!(l.cloud.points(), &expect[..], "{f}");
    }
    for f in ["comp.npz", "plain.npz"] {
        let l = load_cloud(&d.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert_eq!(l.cloud.class_ids(), &[1, 2, 3], "{f}");
        assert_eq!(l.cloud.to_input_order(&l.order), expect, "{f}");
    }
}

#[test]
fn npz_weights_follow_their_rows_and_class_weights_their_labels() {
    use wowflow_core::ClassWeighting;
    let dir = tmp();
    let p = dir.path().join("w.npz");
    // Labels 7, 3, 7, 5, 3, 7 (interleaved, not sorted): classes 3 = rows {1, 4},
    // 5 = {3}, 7 = {0, 2, 5}. Each row's mass is 1 + its index, so where each mass lands
    // shows the permutation.
    let y = vec![7i64, 3, 7, 5, 3, 7];
    let x: Vec<f32> = (0..6).map(|i| i as f32).collect();
    let w: Vec<f64> = (0..6).map(|i| 1.0 + i as f64).collect();
    let a = vec![1.0, 2.0, 5.0]; // for labels 3, 5, 7 (ascending)
    write_npz(
        &p,
        &[
            ("x", &NpyArray::f32(vec![6, 1], x)),
            ("y", &NpyArray::i64(vec![6], y)),
            ("weights", &NpyArray::f64(vec![6], w)),
            ("class_weights", &NpyArray::f64(vec![3], a)),
        ],
    )
    .unwrap();
    let l = load_cloud(&p).unwrap();
    let c = &l.cloud;
    assert_eq!(c.class_ids(), &[3, 5, 7]);
    assert_eq!(c.class_weights(), &[0.125, 0.25, 0.625]);
    // Class 3: rows 1, 4 with masses 2, 5 → 2/7, 5/7; class 7: rows 0, 2, 5 → 1, 3, 6 of 10.
    let pw = c.particle_weights().unwrap();
    let expected = [2.0 / 7.0, 5.0 / 7.0, 1.0, 0.1, 0.3, 0.6];
    for (got, want) in pw.iter().zip(expected) {
        assert!((got - want).abs() < 1e-15, "{pw:?}");
    }
    assert_eq!(c.points(), &[1.0, 4.0, 3.0, 0.0, 2.0, 5.0]);
    // The file's class weights stand; asking for others as well is an error naming it.
    assert_eq!(
        l.weighted(None, ClassWeighting::Uniform)
            .unwrap()
            .class_weights(),
        &[0.125, 0.25, 0.625]
    );
    let e = l
        .weighted(Some(ClassWeighting::Uniform), ClassWeighting::Uniform)
        .unwrap_err()
        .to_string();
    assert!(e.contains("w.npz") && e.contains("class_weights"), "{e}");
    // Without them the caller's convention applies.
    let plain = dir.path().join("plain.npz");
    write_npz(
        &plain,
        &[
            ("x", &NpyArray::f32(vec![6, 1], vec![0.0; 6])),
            ("y", &NpyArray::i64(vec![6], vec![7, 3, 7, 5, 3, 7])),
        ],
    )
    .unwrap();
    let l = load_cloud(&plain).unwrap();
    assert_eq!(
        l.weighted(None, ClassWeighting::Proportional)
            .unwrap()
            .class_weights(),
        &[2.0 / 6.0, 1.0 / 6.0, 3.0 / 6.0]
    );
    assert_eq!(
        l.weighted(Some(ClassWeighting::Uniform), ClassWeighting::Proportional)
            .unwrap()
            .class_weights(),
        &[1.0 / 3.0; 3]
    );
}
