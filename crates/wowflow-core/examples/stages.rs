//! Times the stages of a DA-size step separately (development aid).
use std::time::Instant;
use wowflow_core::{DirectionSampler, LabeledCloud, SlicedCloud};
use wowflow_core::sliced::project;
use rand::SeedableRng;

fn main() {
    let (c, n, d, l) = (10, 500, 784, 500);
    let pts: Vec<f32> = (0..c * n * d).map(|i| ((i * 2654435761usize) % 1000) as f32 / 1000.0).collect();
    let cloud = LabeledCloud::uniform(c, n, d, pts).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let mut out = vec![0f32; l * c * n];
    for _ in 0..4 {
        let dirs = DirectionSampler::Gaussian.sample(l, d, &mut rng).unwrap();
        let t = Instant::now();
        project(cloud.points(), c * n, d, dirs.as_slice(), l, &mut out);
        let t_gemm = t.elapsed();
        let t = Instant::now();
        let s = SlicedCloud::new(&cloud, &dirs, true).unwrap();
        let t_slice_perm = t.elapsed();
        println!("gemm {:?} slice+perm {:?} ({:.1} GFLOP/s) {}", t_gemm, t_slice_perm, 2.0*(l*d*c*n) as f64/t_gemm.as_secs_f64()/1e9, s.n_dirs());
    }
}
