//! Training throughput (images/s: forward, backward and AdamW update, batch 64) of each
//! network on the CPU backend, on random 1×28×28 images.
//!
//! `cargo run --release -p wowflow-nn --example throughput [STEPS_SCALE]`

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use wowflow_nn::{
    train, Budget, ConvNet, ConvNetConfig, CpuAutodiff, DaCnn, Images, LeNet5, TrainConfig,
};

fn main() -> wowflow_nn::Result<()> {
    let scale: f64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let n = 2048;
    let values: Vec<f32> = (0..n * 784).map(|_| rng.random::<f32>()).collect();
    let labels: Vec<usize> = (0..n).map(|i| i % 10).collect();
    let data = Images::new(values, labels, (1, 28, 28), 10)?;
    let device = Default::default();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("CPU backend (burn flex), {threads} threads, batch 64, 1×28×28 inputs");
    let steps = |s: f64| ((s * scale).round() as usize).max(2);
    let run = |name: &str, report: wowflow_nn::TrainReport| {
        println!(
            "{name:<8} {:>5} steps  {:>7.2} s  {:>8.0} images/s",
            report.steps, report.seconds, report.images_per_second
        );
    };
    let cfg = |s| TrainConfig::new(Budget::Steps(s), 64, 3e-4, 0);
    let (_, r) = train(
        DaCnn::<CpuAutodiff>::new(10, 0, &device),
        &data,
        &cfg(steps(200.0)),
        &device,
        &mut |_| {},
    )?;
    run("da-cnn", r);
    let (_, r) = train(
        LeNet5::<CpuAutodiff>::new(10, 0, &device),
        &data,
        &cfg(steps(200.0)),
        &device,
        &mut |_| {},
    )?;
    run("lenet5", r);
    let (_, r) = train(
        ConvNet::<CpuAutodiff>::new(ConvNetConfig::standard(1, 28, 10), 0, &device),
        &data,
        &cfg(steps(10.0)),
        &device,
        &mut |_| {},
    )?;
    run("convnet", r);
    Ok(())
}
