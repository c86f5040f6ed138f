//! Development aid: CPU time of the stages of a DA-size step (run with RAYON_NUM_THREADS=1
//! on a busy machine: process CPU time is far less sensitive to other load than wall time).
use rand::SeedableRng;
use wowflow_core::sliced::{back_project, project};
use wowflow_core::{CpuEngine, DirectionSampler, Engine, Kernel, LabeledCloud, SlicedCloud};

/// User + system CPU seconds of this process, from /proc (Linux).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks: f64 = fields.get(11).and_then(|u| u.parse().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|s| s.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

fn per_call_ms(reps: usize, mut f: impl FnMut()) -> f64 {
    let t = cpu_seconds();
    for _ in 0..reps {
        f();
    }
    (cpu_seconds() - t) * 1e3 / reps as f64
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
    let reps = 20;
    let t_dirs = per_call_ms(reps, || {
        drop(DirectionSampler::Gaussian.sample(l, d, &mut rng).unwrap())
    });
    let t_gemm = per_call_ms(reps, || {
        project(cloud.points(), c * n, d, dirs.as_slice(), l, &mut out)
    });
    let t_perm = per_call_ms(reps, || {
        drop(SlicedCloud::new(&cloud, &dirs, true).unwrap())
    });
    let t_plain = per_call_ms(reps, || {
        drop(SlicedCloud::new(&cloud, &dirs, false).unwrap())
    });
    let mut g = vec![0f32; c * n * d];
    let t_back = per_call_ms(reps, || {
        back_project(&out, c * n, dirs.as_slice(), l, d, 0.5, &mut g)
    });
    println!("back-projection {t_back:.1} CPU ms");
    let target =
        LabeledCloud::uniform(c, n, d, cloud.points().iter().map(|v| 1.0 - v).collect()).unwrap();
    let mut grad = vec![0f32; c * n * d];
    let engine = CpuEngine::new();
    let t_step = per_call_ms(reps, || {
        drop(
            engine
                .sw_mmd(&cloud, &target, &dirs, &Kernel::RIESZ, &mut grad)
                .unwrap(),
        )
    });
    println!(
        "engine step (no direction sampling) {t_step:.1} CPU ms; pairing and scatter ≈ {:.1}",
        t_step - 3.0 * t_gemm - (t_perm - t_gemm) - (t_plain - t_gemm)
    );
    println!(
        "CPU ms per call: directions {t_dirs:.1}  gemm {t_gemm:.1} ({:.1} GFLOP/s per CPU-second)  sort+perm {:.1}  sort {:.1}",
        2.0 * (l * d * c * n) as f64 / t_gemm / 1e6,
        t_perm - t_gemm,
        t_plain - t_gemm
    );
}
