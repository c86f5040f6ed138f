//! The native CPU engine against burn's autodiff: the same loss, every parameter's gradient
//! and the same weights after AdamW steps, on all three networks (and a ConvNet on RGB
//! 32×32 images), with balanced and unbalanced label batches; and the native test pass
//! against burn's forward.

use burn::module::{AutodiffModule, ModuleVisitor, Param};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::Tensor;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use wowflow_nn::native::{read_params, write_params, NativeNet};
use wowflow_nn::{
    evaluate, evaluate_with, train, Budget, ConvNet, ConvNetConfig, CpuAutodiff, CpuBackend, DaCnn,
    Engine, Images, LeNet5, Network, TrainConfig,
};

fn images(n: usize, shape: (usize, usize, usize), labels: Vec<usize>, seed: u64) -> Images {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let len = shape.0 * shape.1 * shape.2;
    let values = (0..n * len).map(|_| rng.random::<f32>()).collect();
    Images::new(values, labels, shape, 10).unwrap()
}

/// burn's loss and the gradient of every parameter (visiting order) on the whole of `data`.
fn burn_gradients<M>(model: &M, data: &Images) -> (f32, Vec<Vec<f32>>)
where
    M: AutodiffModule<CpuAutodiff> + Network<CpuAutodiff>,
{
    struct Grads<'a>(
        &'a <CpuAutodiff as AutodiffBackend>::Gradients,
        Vec<Vec<f32>>,
    );
    impl ModuleVisitor<CpuAutodiff> for Grads<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<CpuAutodiff, D>>) {
            let g = param
                .val()
                .grad(self.0)
                .expect("every parameter has a gradient");
            self.1.push(g.into_data().to_vec::<f32>().unwrap());
        }
    }
    let device = Default::default();
    let all: Vec<usize> = (0..data.len()).collect();
    let x = data.batch_images::<CpuAutodiff>(&all, &device);
    let y = data.batch_labels::<CpuAutodiff>(&all, &device);
    let loss = CrossEntropyLossConfig::new()
        .init(&device)
        .forward(model.forward(x), y);
    let value = loss.clone().into_scalar();
    let grads = loss.backward();
    let mut visitor = Grads(&grads, Vec::new());
    model.visit(&mut visitor);
    (value, visitor.1)
}

/// `|native − burn| ≤ rel · max(largest |burn| of the tensor, floor)`.
fn assert_close(what: &str, native: &[f32], burn: &[f32], rel: f32, floor: f32) {
    assert_eq!(native.len(), burn.len(), "{what}: sizes");
    let scale = burn.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(floor);
    let worst = native
        .iter()
        .zip(burn)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(
        worst <= rel * scale,
        "{what}: max |native − burn| = {worst:e}, largest |burn| = {scale:e}"
    );
}

fn check_gradients<M>(name: &str, model: M, data: &Images)
where
    M: AutodiffModule<CpuAutodiff> + Network<CpuAutodiff>,
{
    let (burn_loss, burn_grads) = burn_gradients(&model, data);
    let spec = model.native_spec(data.shape()).expect("a native network");
    let params = read_params(&model.valid()).unwrap();
    let mut net = NativeNet::new(spec, params.into_iter().map(|(_, v)| v).collect()).unwrap();
    let loss = net.loss_and_gradients(data.values(), data.labels());
    assert!(
        (loss - burn_loss).abs() <= 1e-5 * burn_loss.abs().max(1.0),
        "{name}: loss {loss} vs burn {burn_loss}"
    );
    assert_eq!(net.grads.len(), burn_grads.len(), "{name}: tensors");
    // A convolution's bias before an instance norm has gradient 0 exactly (the norm removes
    // any per-channel constant): both engines give rounding noise there, so each tensor is
    // compared relative to the largest gradient of the network too.
    let largest = burn_grads
        .iter()
        .flatten()
        .fold(0.0f32, |m, v| m.max(v.abs()));
    for (i, (g, b)) in net.grads.iter().zip(&burn_grads).enumerate() {
        let what = format!("{name}: gradient of tensor {i}");
        assert_close(&what, g, b, 2e-4, 1e-2 * largest);
    }
}

#[test]
fn gradients_match_burn_on_every_network() {
    let device = Default::default();
    // Unbalanced: class 3 three times, classes 0 and 9 never.
    let labels = vec![3, 1, 3, 5, 3, 7, 2];
    let gray = images(7, (1, 28, 28), labels.clone(), 1);
    check_gradients("da-cnn", DaCnn::<CpuAutodiff>::new(10, 3, &device), &gray);
    check_gradients("lenet5", LeNet5::<CpuAutodiff>::new(10, 4, &device), &gray);
    let small = ConvNetConfig {
        depth: 3,
        width: 8,
        ..ConvNetConfig::standard(1, 28, 10)
    };
    check_gradients(
        "convnet 28",
        ConvNet::<CpuAutodiff>::new(small, 5, &device),
        &gray,
    );
    let rgb = images(7, (3, 32, 32), labels, 2);
    let cifar = ConvNetConfig {
        depth: 2,
        width: 6,
        ..ConvNetConfig::standard(3, 32, 10)
    };
    check_gradients(
        "convnet rgb",
        ConvNet::<CpuAutodiff>::new(cifar, 6, &device),
        &rgb,
    );
}

/// A few full training steps with each engine from the same weights and batches.
fn trained_weights<M>(
    model: impl Fn() -> M,
    data: &Images,
    engine: Engine,
) -> (Vec<f32>, Vec<Vec<f32>>)
where
    M: AutodiffModule<CpuAutodiff> + Network<CpuAutodiff>,
{
    let device = Default::default();
    let config = TrainConfig {
        engine,
        ..TrainConfig::new(Budget::Steps(4), 5, 1e-3, 11)
    };
    let (trained, report) = train(model(), data, &config, &device, &mut |_| {}).unwrap();
    let params = read_params(&trained).unwrap();
    (report.losses, params.into_iter().map(|(_, v)| v).collect())
}

#[test]
fn adamw_steps_match_burn() {
    let device = Default::default();
    let labels: Vec<usize> = (0..12).map(|i| (i * 7) % 10).collect();
    let data = images(12, (1, 28, 28), labels, 9);
    let (nl, np) = trained_weights(
        || LeNet5::<CpuAutodiff>::new(10, 2, &device),
        &data,
        Engine::Native,
    );
    let (bl, bp) = trained_weights(
        || LeNet5::<CpuAutodiff>::new(10, 2, &device),
        &data,
        Engine::Burn,
    );
    for (a, b) in nl.iter().zip(&bl) {
        assert!(
            (a - b).abs() < 1e-4 * b.abs().max(1.0),
            "losses {nl:?} vs {bl:?}"
        );
    }
    // Every weight moves by at most 4 · lr; agreement to 1 % of that bound.
    for (i, (a, b)) in np.iter().zip(&bp).enumerate() {
        let worst = a
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max);
        assert!(
            worst < 4e-5,
            "tensor {i}: weights differ by {worst:e} after 4 steps"
        );
    }
    let (_, start) = trained_weights(
        || LeNet5::<CpuAutodiff>::new(10, 2, &device),
        &data,
        Engine::Native,
    );
    assert_eq!(start, np, "same seed, same weights");
}

#[test]
fn images_that_do_not_fit_the_network_are_refused_with_their_shape() {
    let device = Default::default();
    let data = images(4, (1, 32, 32), vec![0, 1, 2, 3], 0);
    let config = TrainConfig::new(Budget::Steps(1), 4, 1e-3, 0);
    let err = train(
        LeNet5::<CpuAutodiff>::new(10, 0, &device),
        &data,
        &config,
        &device,
        &mut |_| {},
    )
    .expect_err("a 32×32 image does not fit LeNet-5's 120-feature layer")
    .to_string();
    assert!(err.contains("1×32×32"), "{err}");
}

/// Scores `model` both ways on `data` and checks that every image gets the same class.
fn check_evaluation<M: Network<CpuBackend>>(name: &str, model: &M, data: &Images) {
    let device = Default::default();
    let burn = evaluate(model, data, &device).unwrap();
    let native = evaluate_with(model, data, &device, Engine::Native).unwrap();
    assert_eq!(native.total, data.len(), "{name}");
    assert_eq!(
        native.confusion, burn.confusion,
        "{name}: predictions differ"
    );
    // Burn only, whatever the network: the same function as `evaluate`.
    assert_eq!(
        evaluate_with(model, data, &device, Engine::Burn).unwrap(),
        burn,
        "{name}"
    );
}

/// Trains `model` 20 steps on `data` then scores it both ways ([`check_evaluation`]).
fn check_trained_evaluation<M>(name: &str, model: M, data: &Images)
where
    M: AutodiffModule<CpuAutodiff> + Network<CpuAutodiff>,
    M::InnerModule: Network<CpuBackend>,
{
    let config = TrainConfig::new(Budget::Steps(20), 32, 3e-3, 1);
    let (trained, _) = train(model, data, &config, &Default::default(), &mut |_| {}).unwrap();
    check_evaluation(name, &trained, data);
}

/// The native test pass predicts what burn's forward predicts, on every network, trained a
/// few steps so the logits are not all alike; 150 images run as two full 64-image chunks
/// and a partial one.
#[test]
fn native_evaluation_predicts_what_burn_predicts() {
    let device = Default::default();
    let labels: Vec<usize> = (0..150).map(|i| (i * 7) % 10).collect();
    let gray = images(150, (1, 28, 28), labels.clone(), 3);
    check_trained_evaluation("lenet5", LeNet5::<CpuAutodiff>::new(10, 2, &device), &gray);
    check_trained_evaluation("da-cnn", DaCnn::<CpuAutodiff>::new(10, 3, &device), &gray);
    let small = ConvNetConfig {
        depth: 3,
        width: 8,
        ..ConvNetConfig::standard(1, 28, 10)
    };
    let convnet = ConvNet::<CpuAutodiff>::new(small, 5, &device);
    check_trained_evaluation("convnet", convnet, &gray);
    // An untrained RGB ConvNet, scored as it is.
    let rgb = images(70, (3, 32, 32), labels[..70].to_vec(), 4);
    let cifar = ConvNetConfig {
        depth: 2,
        width: 6,
        ..ConvNetConfig::standard(3, 32, 10)
    };
    let convnet = ConvNet::<CpuBackend>::new(cifar, 6, &device);
    check_evaluation("convnet rgb", &convnet, &rgb);
}

/// A network whose weights went non-finite is an error naming its logits, not a score.
#[test]
fn native_evaluation_refuses_non_finite_logits() {
    let device = Default::default();
    let model = LeNet5::<CpuBackend>::new(10, 2, &device);
    let params: Vec<Vec<f32>> = read_params(&model)
        .unwrap()
        .into_iter()
        .map(|(_, v)| vec![f32::NAN; v.len()])
        .collect();
    let broken = write_params(model, params);
    let data = images(5, (1, 28, 28), vec![0, 1, 2, 3, 4], 0);
    let err = evaluate_with(&broken, &data, &device, Engine::Native)
        .unwrap_err()
        .to_string();
    assert!(err.contains("logits") && err.contains("NaN"), "{err}");
}
