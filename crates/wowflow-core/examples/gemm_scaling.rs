//! Development aid: wall time of the DA-size projection and back-projection at the current
//! rayon thread count (compare RAYON_NUM_THREADS=1 and 2).
use std::time::Instant;
use wowflow_core::sliced::{back_project, project};

fn best_ms(mut f: impl FnMut()) -> f64 {
    (0..8)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let (n, d, l) = (5000usize, 784usize, 500usize);
    let x: Vec<f32> = (0..n * d)
        .map(|i| ((i * 2654435761usize) % 1000) as f32 / 1000.0)
        .collect();
    let th: Vec<f32> = (0..l * d)
        .map(|i| ((i * 40503usize) % 997) as f32 / 997.0)
        .collect();
    let mut p = vec![0f32; l * n];
    let mut g = vec![0f32; n * d];
    let tp = best_ms(|| project(&x, n, d, &th, l, &mut p));
    let tb = best_ms(|| back_project(&p, n, &th, l, d, 1.0, &mut g));
    let gf = |ms: f64| 2.0 * (n * d * l) as f64 / ms / 1e6;
    println!(
        "threads {}: project {tp:.1} ms ({:.0} GFLOP/s), back-project {tb:.1} ms ({:.0} GFLOP/s)",
        rayon::current_num_threads(),
        gf(tp),
        gf(tb)
    );
}
