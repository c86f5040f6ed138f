//! Training throughput (images/s: forward, backward and AdamW update, batch 64) of each
//! network, on random 1×28×28 images, by wowflow's native engine or by burn's autodiff on
//! one of its CPU backends.
//!
//! `cargo run --release -p wowflow-nn --example throughput [--features bench-ndarray|bench-openblas|bench-candle] -- [ENGINE,...] [STEPS_SCALE]`
//! with ENGINE among `native` (the default engine of `train`), `flex` (burn's default
//! CPU backend), `ndarray`, `candle`; several, comma-separated, run one after the other
//! (side by side in one process, as BENCHMARKS.md compares them).

use burn::tensor::backend::AutodiffBackend;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use wowflow_nn::{
    train, Budget, ConvNet, ConvNetConfig, DaCnn, Engine, Images, LeNet5, TrainConfig,
};

fn run<B: AutodiffBackend>(
    name: &str,
    engine: Engine,
    data: &Images,
    scale: f64,
) -> wowflow_nn::Result<()> {
    let device = B::Device::default();
    let steps = |s: f64| ((s * scale).round() as usize).max(2);
    let show = |net: &str, report: wowflow_nn::TrainReport| {
        println!(
            "{name:<8} {net:<8} {:>5} steps  {:>7.2} s  {:>8.0} images/s",
            report.steps, report.seconds, report.images_per_second
        );
    };
    // burn-candle lacks some operations (max pooling with indices, which the DA CNN's
    // backward needs): a network a backend cannot train is reported, not fatal.
    let attempt =
        |net: &str, f: &mut dyn FnMut() -> wowflow_nn::Result<wowflow_nn::TrainReport>| {
            let silent = std::panic::take_hook();
            std::panic::set_hook(Box::new(|_| {}));
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
            std::panic::set_hook(silent);
            match outcome {
                Ok(Ok(report)) => show(net, report),
                Ok(Err(e)) => println!("{name:<8} {net:<8} failed: {e}"),
                Err(payload) => {
                    let why = payload
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default();
                    println!("{name:<8} {net:<8} not supported by this backend: {why}")
                }
            }
        };
    let cfg = |s| TrainConfig {
        engine,
        ..TrainConfig::new(Budget::Steps(s), 64, 3e-4, 0)
    };
    attempt("da-cnn", &mut || {
        let model = DaCnn::<B>::new(10, 0, &device);
        Ok(train(model, data, &cfg(steps(200.0)), &device, &mut |_| {})?.1)
    });
    attempt("lenet5", &mut || {
        let model = LeNet5::<B>::new(10, 0, &device);
        Ok(train(model, data, &cfg(steps(200.0)), &device, &mut |_| {})?.1)
    });
    attempt("convnet", &mut || {
        let model = ConvNet::<B>::new(ConvNetConfig::standard(1, 28, 10), 0, &device);
        Ok(train(model, data, &cfg(steps(10.0)), &device, &mut |_| {})?.1)
    });
    Ok(())
}

fn main() -> wowflow_nn::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let backend = args.first().map_or("native,flex", String::as_str);
    let scale: f64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1.0);
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let n = 2048;
    let values: Vec<f32> = (0..n * 784).map(|_| rng.random::<f32>()).collect();
    let labels: Vec<usize> = (0..n).map(|i| i % 10).collect();
    let data = Images::new(values, labels, (1, 28, 28), 10)?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("{threads} threads, batch 64, 1×28×28 inputs");
    for engine in backend.split(',') {
        match engine {
            "native" => run::<wowflow_nn::CpuAutodiff>("native", Engine::Native, &data, scale)?,
            "flex" => run::<wowflow_nn::CpuAutodiff>("flex", Engine::Burn, &data, scale)?,
            #[cfg(feature = "bench-ndarray")]
            "ndarray" => run::<burn::backend::Autodiff<burn::backend::NdArray>>(
                "ndarray",
                Engine::Burn,
                &data,
                scale,
            )?,
            #[cfg(feature = "bench-candle")]
            #[allow(deprecated)]
            // burn-candle is deprecated upstream; measured for the record
            "candle" => run::<burn::backend::Autodiff<burn::backend::Candle>>(
                "candle",
                Engine::Burn,
                &data,
                scale,
            )?,
            other => {
                eprintln!(
                    "engine {other:?} is not built in (native, flex; features bench-ndarray, \
                     bench-openblas, bench-candle add ndarray and candle)"
                );
                std::process::exit(2)
            }
        }
    }
    Ok(())
}
