//! Tests on the real dataset files of `shared/data` (see its README for what exists).
//!
//! They are found through `$WOWFLOW_DATA`, else `<repo>/../shared/data` (CI clones the repo
//! with `shared/` beside it). Without the files the tests print SKIPPED and pass, except
//! under CI (`$CI` set), where missing data is a failure.

use std::path::PathBuf;
use wowflow_data::*;

fn shared_data() -> Option<PathBuf> {
    wowflow_testkit::shared_data("the real-data tests", &["mnist"])
}

fn dirs() -> Option<DataDirs> {
    shared_data().map(|p| {
        DataDirs::only(vec![Root {
            path: p,
            origin: Origin::Env,
        }])
    })
}

#[test]
fn mnist_counts_histograms_and_known_pixels() {
    let Some(dirs) = dirs() else { return };
    let train = load_split(&dirs, "mnist", Split::Train).unwrap();
    assert_eq!(
        (train.len(), train.height, train.width, train.channels),
        (60000, 28, 28, 1)
    );
    assert_eq!(
        train.label_counts(),
        vec![5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    );
    // Reference values computed once, independently of this crate, with Python's gzip
    // module on the raw file: `b = gzip.open('train-images-idx3-ubyte.gz').read();
    // img0 = b[16:16+784]`; labels likewise from train-labels (offset 8).
    // Image 0 (a 5): 166 non-zero pixels summing to 27525; (row 5, col 12) = 3,
    // (5, 13) = 18, (17, 17) = 249, (17, 18) = 253. The last image (a 8) sums to 20920.
    let Pixels::U8(px) = &train.pixels else {
        panic!("MNIST pixels are bytes")
    };
    let img0 = &px[..784];
    assert_eq!(img0.iter().filter(|&&v| v != 0).count(), 166);
    assert_eq!(img0.iter().map(|&v| v as u32).sum::<u32>(), 27525);
    assert_eq!(
        [
            img0[5 * 28 + 12],
            img0[5 * 28 + 13],
            img0[17 * 28 + 17],
            img0[17 * 28 + 18]
        ],
        [3, 18, 249, 253]
    );
    assert_eq!(train.image(0)[17 * 28 + 18], 253.0 / 255.0);
    assert_eq!((train.labels[0], train.labels[59999]), (5, 8));
    assert_eq!(
        px[59999 * 784..].iter().map(|&v| v as u32).sum::<u32>(),
        20920
    );

    let test = load_split(&dirs, "mnist", Split::Test).unwrap();
    assert_eq!(
        test.label_counts(),
        vec![980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    );
}

#[test]
fn fashion_and_kmnist() {
    let Some(dirs) = dirs() else { return };
    let f = load_split(&dirs, "fashion-mnist", Split::Test).unwrap();
    assert_eq!(f.label_counts(), vec![1000; 10]);
    // Python gzip on t10k-images: sum of image 0 = 33456.
    let Pixels::U8(px) = &f.pixels else { panic!() };
    assert_eq!(px[..784].iter().map(|&v| v as u32).sum::<u32>(), 33456);
    assert_eq!(
        load_split(&dirs, "fashion-mnist", Split::Train)
            .unwrap()
            .label_counts(),
        vec![6000; 10]
    );

    let k = load_split(&dirs, "kmnist", Split::Test).unwrap();
    assert_eq!(k.label_counts(), vec![1000; 10]);
    let Pixels::U8(kp) = &k.pixels else { panic!() };
    assert_eq!(kp[..784].iter().map(|&v| v as u32).sum::<u32>(), 38509); // Python gzip, image 0
                                                                         // The npz copy holds the same arrays as the idx files.
    let npz = read_npz(&shared_data().unwrap().join("kmnist/kmnist-test-imgs.npz")).unwrap();
    assert_eq!(npz["arr_0"].data, ArrayData::U8(kp.clone()));
    // Train images are missing: a NotFound naming the file, and the documented fallback.
    let e = load_split(&dirs, "kmnist", Split::Train).unwrap_err();
    assert!(matches!(e, DataError::NotFound { .. }), "{e}");
    assert!(e.to_string().contains("train-images-idx3-ubyte.gz"), "{e}");
    let pe = pool_and_eval(&dirs, "kmnist", 0).unwrap();
    assert_eq!(pe.pool.label_counts(), vec![500; 10]);
    assert_eq!(pe.eval.label_counts(), vec![500; 10]);
    assert!(
        pe.note.as_deref().unwrap_or("").contains("fallback split"),
        "{:?}",
        pe.note
    );
    let pe2 = pool_and_eval(&dirs, "kmnist", 0).unwrap();
    assert_eq!(pe.pool, pe2.pool);
}

#[test]
fn usps_both_releases() {
    let Some(dirs) = dirs() else { return };
    let train = load_split(&dirs, "usps", Split::Train).unwrap();
    assert_eq!(
        train.label_counts(),
        vec![1194, 1005, 731, 658, 652, 556, 664, 645, 542, 644]
    );
    let test = load_split(&dirs, "usps", Split::Test).unwrap();
    assert_eq!(
        test.label_counts(),
        vec![359, 264, 198, 166, 200, 160, 170, 147, 166, 177]
    );
    // h5py on usps.h5: test/target[0] = 9, test/data[0] sums to 69.6775, pixel 100 = 0.0245.
    assert_eq!(test.labels[0], 9);
    let img = test.image(0);
    assert!((img.iter().map(|&v| v as f64).sum::<f64>() - 69.6775).abs() < 1e-3);
    assert!((img[100] - 0.0245).abs() < 1e-6);
    // The torchvision LIBSVM test file: same 2007 labels in the same order; Python's bz2
    // module reads feature 100 of line 1 as 0.412527 → (v + 1) / 2.
    let lib = usps::read_usps_libsvm(&shared_data().unwrap().join("usps/usps.t.bz2")).unwrap();
    assert_eq!(lib.labels, test.labels);
    assert!((lib.image(0)[99] - (0.412527 + 1.0) / 2.0).abs() < 1e-6);
    // Sampled in MNIST space: 16×16 → 28×28.
    let cloud = sample_cloud(&train, 5, 1, &Transform::mnist_size(&train)).unwrap();
    assert_eq!(
        (cloud.n_classes(), cloud.class_len(0), cloud.dim()),
        (10, 5, 784)
    );
    assert!(cloud.points().iter().all(|v| (0.0..=1.0).contains(v)));
}

#[test]
fn checksums_of_every_shared_file() {
    let Some(dirs) = dirs() else { return };
    let report = verify(&dirs, None).unwrap();
    let mut verified = 0;
    for ds in &report {
        for f in &ds.files {
            if let (Some((p, _)), Some(c)) = (&f.found, &f.check) {
                assert_eq!(c, &Check::Verified, "{}", p.display());
                verified += 1;
            }
        }
    }
    // 4 MNIST + 4 Fashion + 7 KMNIST (all but the two train-image files) + 2 USPS.
    assert_eq!(verified, 17);
    let by_name = |n: &str| report.iter().find(|d| d.spec.name == n).unwrap();
    assert!(
        by_name("mnist").complete()
            && by_name("fashion-mnist").complete()
            && by_name("usps").complete()
    );
    assert!(!by_name("kmnist").complete());
    assert!(!by_name("cifar10").complete());
    // A wrong file is reported as such.
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("mnist");
    std::fs::create_dir_all(&fake).unwrap();
    std::fs::write(fake.join("t10k-labels-idx1-ubyte.gz"), b"not the labels").unwrap();
    let mine = DataDirs::only(vec![Root {
        path: dir.path().into(),
        origin: Origin::Explicit,
    }]);
    let r = verify(&mine, Some("mnist")).unwrap();
    let f = r[0]
        .files
        .iter()
        .find(|f| f.spec.name == "t10k-labels-idx1-ubyte.gz")
        .unwrap();
    assert!(matches!(f.check, Some(Check::Mismatch(_))), "{:?}", f.check);
    let listed = list(&mine);
    assert!(!listed[0].complete());
}

#[test]
fn sampling_real_mnist_is_balanced_and_disjoint() {
    let Some(dirs) = dirs() else { return };
    let test = load_split(&dirs, "mnist", Split::Test).unwrap();
    let draws = draw_disjoint(&test, &[10, 100], 42).unwrap();
    let pool = to_cloud(&test, &draws[0], &Transform::default()).unwrap();
    let eval = to_cloud(&test, &draws[1], &Transform::default()).unwrap();
    assert!(pool.is_uniform() && eval.is_uniform());
    assert_eq!(
        (pool.n_classes(), pool.class_len(3), pool.dim()),
        (10, 10, 784)
    );
    assert_eq!(eval.n_points(), 1000);
    for (c, (pool_c, eval_c)) in draws[0].iter().zip(&draws[1]).enumerate() {
        assert!(pool_c.iter().all(|i| !eval_c.contains(i)));
        assert!(pool_c.iter().all(|&i| test.labels[i] as usize == c));
    }
    assert!(pool.points().iter().all(|v| (0.0..=1.0).contains(v)));
}
