//! The networks on real MNIST / Fashion-MNIST (found through `$WOWFLOW_DATA`, else
//! `<repo>/../shared/data`; without them the tests print SKIPPED and pass, except under CI).
//!
//! Budget: one DA-CNN training (2000 images, 600 steps of 64, ~25 s) shared by every test
//! of this file, a 600-step flow of 10 × 30 images, and small evaluations — about 40 s in
//! the test profile on two cores.

use std::sync::OnceLock;
use wowflow_core::{Flow, FlowConfig, FlowState, Kernel, LabeledCloud, Method, Optimizer, SwMmd};
use wowflow_data::{draw_disjoint, load_split, to_cloud, DataDirs, Origin, Root, Split, Transform};
use wowflow_nn::{
    evaluate, predict, train, Budget, CpuAutodiff, CpuBackend, DaCnn, Evaluation, Images,
    ModelCard, ModelStore, TrainConfig,
};
use wowflow_ot::{assign_by_nearest_neighbor, assign_by_ot, ClassCost};

fn dirs() -> Option<DataDirs> {
    wowflow_testkit::shared_data("the network tests", &["mnist"]).map(|path| {
        DataDirs::only(vec![Root {
            path,
            origin: Origin::Env,
        }])
    })
}

/// `per_class` images per class of `name`/`split` as a (10, n, 784) cloud, seeded.
fn cloud(dirs: &DataDirs, name: &str, split: Split, per_class: usize, seed: u64) -> LabeledCloud {
    let set = load_split(dirs, name, split).unwrap();
    let t = Transform::mnist_size(&set);
    let draw = draw_disjoint(&set, &[per_class], seed).unwrap();
    to_cloud(&set, &draw[0], &t).unwrap()
}

const TRAIN_PER_CLASS: usize = 200;
const TRAIN_STEPS: usize = 600;

struct Trained {
    model: DaCnn<CpuBackend>,
    test: Evaluation,
    images_per_second: f64,
}

/// The DA CNN trained once for this file: 200 MNIST train images per class, AdamW 3e-4,
/// batch 64, 600 steps (about 19 epochs), seed 0.
fn trained(dirs: &DataDirs) -> &'static Trained {
    static MODEL: OnceLock<Trained> = OnceLock::new();
    MODEL.get_or_init(|| {
        let device = Default::default();
        let train_cloud = cloud(dirs, "mnist", Split::Train, TRAIN_PER_CLASS, 0);
        let data = Images::from_cloud(&train_cloud, (1, 28, 28), None, 10).unwrap();
        let config = TrainConfig::new(Budget::Steps(TRAIN_STEPS), 64, 3e-4, 0);
        let model = DaCnn::<CpuAutodiff>::new(10, 0, &device);
        let (model, report) = train(model, &data, &config, &device, &mut |_| {}).unwrap();
        let test_cloud = cloud(dirs, "mnist", Split::Test, 200, 1);
        let test = Images::from_cloud(&test_cloud, (1, 28, 28), None, 10).unwrap();
        let test = evaluate(&model, &test, &device).unwrap();
        println!(
            "DA CNN: {TRAIN_STEPS} steps in {:.1} s ({:.0} images/s), final loss {:.3}, \
             MNIST test accuracy {:.2} % on 2000 images",
            report.seconds,
            report.images_per_second,
            report.final_loss,
            100.0 * test.accuracy
        );
        Trained {
            model,
            test,
            images_per_second: report.images_per_second,
        }
    })
}

#[test]
fn da_classifier_reaches_88_percent_on_mnist_test() {
    let Some(dirs) = dirs() else { return };
    let t = trained(&dirs);
    assert!(t.images_per_second > 0.0);
    // Measured 93–94 % with this budget; 90 % leaves room for platform differences.
    // Measured 90.65 % with this budget (200 per class, 600 steps); 88 % leaves room for
    // platform differences in float summation order.
    assert!(t.test.accuracy >= 0.88, "accuracy {:.4}", t.test.accuracy);
    assert!(
        t.test.per_class.iter().all(|a| a.unwrap() > 0.7),
        "{:?}",
        t.test.per_class
    );
}

#[test]
fn save_load_round_trips_exactly() {
    let Some(dirs) = dirs() else { return };
    let t = trained(&dirs);
    let device = Default::default();
    let tmp = tempfile::tempdir().unwrap();
    let store = ModelStore::new(tmp.path().join("models"));
    let config = TrainConfig::new(Budget::Steps(TRAIN_STEPS), 64, 3e-4, 0);
    let report = wowflow_nn::TrainReport {
        steps: TRAIN_STEPS,
        images_seen: 0,
        seconds: 1.0,
        images_per_second: t.images_per_second,
        final_loss: 0.0,
        losses: vec![],
    };
    let mut card = ModelCard::new(
        "da-cnn_test",
        wowflow_nn::Architecture::DaCnn,
        "mnist train 100/class",
        "test",
        config,
        &report,
        "flex",
    );
    card.test = Some(t.test.clone());
    assert!(!store.contains("da-cnn_test"));
    store.save(&t.model, &card).unwrap();
    assert!(store.contains("da-cnn_test"));
    // A fresh model with other initial weights, overwritten by the saved ones.
    let fresh = DaCnn::<CpuBackend>::new(10, 99, &device);
    let (loaded, loaded_card) = store.load("da-cnn_test", fresh, &device).unwrap();
    assert_eq!(loaded_card, card);
    let sample = cloud(&dirs, "mnist", Split::Test, 10, 3);
    let images = Images::from_cloud(&sample, (1, 28, 28), None, 10).unwrap();
    let x = images.batch_images::<CpuBackend>(&(0..images.len()).collect::<Vec<_>>(), &device);
    use wowflow_nn::Network;
    let a = t
        .model
        .forward(x.clone())
        .into_data()
        .to_vec::<f32>()
        .unwrap();
    let b = loaded.forward(x).into_data().to_vec::<f32>().unwrap();
    assert_eq!(a, b, "logits differ after a save/load round trip");
    // Loading a missing key names the file.
    let err = store
        .load("nope", DaCnn::<CpuBackend>::new(10, 0, &device), &device)
        .unwrap_err();
    assert!(err.to_string().contains("nope.json"), "{err}");
}

#[test]
fn assignment_recovers_a_permutation_of_mnist_classes() {
    let Some(dirs) = dirs() else { return };
    let target = cloud(&dirs, "mnist", Split::Train, 40, 5);
    let other = cloud(&dirs, "mnist", Split::Test, 40, 6);
    let perm = [3, 7, 0, 9, 1, 4, 8, 2, 6, 5];
    // Flowed class c holds digit perm[c].
    let points: Vec<f32> = perm
        .iter()
        .flat_map(|&k| other.class_points(k).iter().copied())
        .collect();
    let flowed = LabeledCloud::uniform(10, 40, 784, points).unwrap();
    let sliced = ClassCost::Sliced {
        projections: 500,
        seed: 0,
    };
    for a in [
        assign_by_ot(&flowed, &target, sliced).unwrap(),
        assign_by_ot(&flowed, &target, ClassCost::Wasserstein).unwrap(),
        assign_by_nearest_neighbor(&flowed, &target).unwrap(),
    ] {
        assert_eq!(a.labels, perm, "{:?}", a.method);
    }
}

#[test]
fn a_short_flow_raises_the_frozen_classifier_accuracy() {
    let Some(dirs) = dirs() else { return };
    let t = trained(&dirs);
    let device = Default::default();
    let source = cloud(&dirs, "fashion-mnist", Split::Test, 30, 7);
    let target = cloud(&dirs, "mnist", Split::Train, 30, 8);
    let sliced = ClassCost::Sliced {
        projections: 500,
        seed: 0,
    };
    let accuracy = |flowed: &LabeledCloud| {
        let a = assign_by_ot(flowed, &target, sliced).unwrap();
        let images = Images::from_cloud(flowed, (1, 28, 28), Some(&a.labels), 10).unwrap();
        let pred = predict(&t.model, &images, 500, &device);
        Evaluation::new(&pred, images.labels(), 10)
            .unwrap()
            .accuracy
    };
    let before = accuracy(&source);
    let mut objective = SwMmd::new(target.clone(), Kernel::RIESZ, 200).unwrap();
    // τ = 1 (the transfer-learning step of docs/math.md §9) rather than the DA protocol's 0.1:
    // in d = 784 the τ = 0.1 flow needs thousands of steps to change the accuracy (see
    // experiments/domain-adaptation.toml), too many for a unit test.
    let optimizer = Optimizer::new(Method::Momentum { m: 0.9 }, 1.0).unwrap();
    let source_copy = source.clone();
    let mut state = FlowState::new(source);
    Flow {
        objective: &mut objective,
        optimizer,
        config: FlowConfig {
            steps: 600,
            seed: 0,
            clip: None,
            temperature: None,
        },
    }
    .run(&mut state, &mut [])
    .unwrap();
    let after = accuracy(&state.cloud);
    let moved = state
        .cloud
        .points()
        .iter()
        .zip(source_copy.points())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    println!(
        "loss {:.4e} → {:.4e}, largest pixel change {moved}",
        state.losses[0],
        state.losses.last().unwrap()
    );
    println!(
        "frozen DA CNN on Fashion-MNIST → MNIST: {before:.3} before, {after:.3} after 600 steps"
    );
    // Measured 0.197 → 0.527; the bounds leave room for platform differences.
    assert!(after >= before + 0.2 && after >= 0.4, "{before} → {after}");
}
