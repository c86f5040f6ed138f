//! Development aid: CPU time of the stages of a DA-size step, dense and structured directions (run with RAYON_NUM_THREADS=1
//! on a busy machine: process CPU time is far less sensitive to other load than wall time).
use rand::SeedableRng;
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
    let target =
        LabeledCloud::uniform(c, n, d, cloud.points().iter().map(|v| 1.0 - v).collect()).unwrap();
    let reps = 20;
    for sampler in [DirectionSampler::Gaussian, DirectionSampler::Structured] {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let dirs = sampler.sample(l, d, &mut rng).unwrap();
        let mut out = vec![0f32; l * c * n];
        let t_dirs = per_call_ms(reps, || drop(sampler.sample(l, d, &mut rng).unwrap()));
        let t_proj = per_call_ms(reps, || dirs.project(cloud.points(), c * n, &mut out));
        let t_perm = per_call_ms(reps, || {
            drop(SlicedCloud::new(&cloud, &dirs, true).unwrap())
        });
        let t_plain = per_call_ms(reps, || {
            drop(SlicedCloud::new(&cloud, &dirs, false).unwrap())
        });
        let mut g = vec![0f32; c * n * d];
        let t_back = per_call_ms(reps, || dirs.back_project(&out, c * n, 0.5, &mut g));
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
            "{sampler:?}: CPU ms per call: directions {t_dirs:.1}  projection {t_proj:.1}  \
             sort+perm {:.1}  sort {:.1}  back-projection {t_back:.1}  engine step (no direction \
             sampling) {t_step:.1}, of which pairing and scatter ≈ {:.1}",
            t_perm - t_proj,
            t_plain - t_proj,
            t_step - 2.0 * t_proj - t_back - (t_perm - t_proj) - (t_plain - t_proj)
        );
    }
}
