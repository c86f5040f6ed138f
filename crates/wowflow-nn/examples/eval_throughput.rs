//! Test-pass throughput (images/s, forward only) of LeNet-5 and the ConvNet (depth 3, width
//! 128) scored by burn's CPU forward ([`evaluate`]) and by the native engine
//! ([`evaluate_with`] with [`Engine::Native`]), side by side in one process, alternating, on
//! random 1×28×28 images. Checks that both give the same predictions.
//!
//! `cargo run --release -p wowflow-nn --example eval_throughput -- [IMAGES] [ROUNDS]`

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Instant;
use wowflow_nn::{
    evaluate, evaluate_with, ConvNet, ConvNetConfig, CpuBackend, Engine, Images, LeNet5, Network,
};

fn time<M: Network<CpuBackend>>(net: &str, model: &M, data: &Images, rounds: usize) {
    let device = Default::default();
    let (mut burn_s, mut native_s) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let t = Instant::now();
        let b = evaluate(model, data, &device).expect("burn scores");
        burn_s.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        let n = evaluate_with(model, data, &device, Engine::Native).expect("native scores");
        native_s.push(t.elapsed().as_secs_f64());
        assert_eq!(b.confusion, n.confusion, "{net}: the engines disagree");
    }
    let best = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    let (b, n) = (best(&burn_s), best(&native_s));
    let images = data.len() as f64;
    println!(
        "{net:<12} burn {:>8.0} images/s   native {:>8.0} images/s   ({:.1}× faster; best of {rounds})",
        images / b,
        images / n,
        b / n
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(2000);
    let rounds: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(3);
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let values = (0..n * 784).map(|_| rng.random::<f32>()).collect();
    let labels = (0..n).map(|i| i % 10).collect();
    let data = Images::new(values, labels, (1, 28, 28), 10).expect("valid images");
    let device = Default::default();
    time(
        "lenet5",
        &LeNet5::<CpuBackend>::new(10, 0, &device),
        &data,
        rounds,
    );
    let config = ConvNetConfig {
        depth: 3,
        width: 128,
        ..ConvNetConfig::standard(1, 28, 10)
    };
    time(
        "convnet-128",
        &ConvNet::<CpuBackend>::new(config, 0, &device),
        &data,
        rounds,
    );
}
