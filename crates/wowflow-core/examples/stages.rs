//! Times the stages of a DA-size step separately (development aid): min over repetitions.
use rand::SeedableRng;
use std::time::{Duration, Instant};
use wowflow_core::sliced::project;
use wowflow_core::{DirectionSampler, LabeledCloud, SlicedCloud};

fn min_time(reps: usize, mut f: impl FnMut()) -> Duration {
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .min()
        .unwrap()
}

fn main() {
    let (c, n, d, l) = (10, 500, 784, 500);
    let pts: Vec<f32> = (0..c * n * d)
        .map(|i| ((i * 2654435761usize) % 1000) as f32 / 1000.0)
        .collect();
    let cloud = LabeledCloud::uniform(c, n, d, pts).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let dirs = DirectionSampler::Gaussian.sample(l, d, &mut rng).unwrap();
    let mut out = vec![0f32; l * c * n];
    let t_dirs = min_time(5, || {
        DirectionSampler::Gaussian.sample(l, d, &mut rng).unwrap();
    });
    let t_gemm = min_time(5, || {
        project(cloud.points(), c * n, d, dirs.as_slice(), l, &mut out)
    });
    let t_perm = min_time(5, || {
        SlicedCloud::new(&cloud, &dirs, true).unwrap();
    });
    let t_plain = min_time(5, || {
        SlicedCloud::new(&cloud, &dirs, false).unwrap();
    });
    println!(
        "directions {t_dirs:?}  gemm {t_gemm:?} ({:.1} GFLOP/s)  sort+perm {:?}  sort {:?}",
        2.0 * (l * d * c * n) as f64 / t_gemm.as_secs_f64() / 1e9,
        t_perm.saturating_sub(t_gemm),
        t_plain.saturating_sub(t_gemm)
    );
}
