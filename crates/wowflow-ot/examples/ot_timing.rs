//! Times the exact OT solver (network simplex) and Sinkhorn on uniform n × m problems with
//! squared-Euclidean costs between Gaussian clouds: `cargo run --release --example ot_timing
//! -- [n] [d] [m]` (`m = n` by default: the assignment route; `m ≠ n`: the network simplex,
//! as between classes of different sizes).

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use std::time::Instant;
use wowflow_core::linalg::pairwise_sq_dists;
use wowflow_ot::{exact_ot, sinkhorn, SinkhornConfig};

fn main() -> wowflow_core::Result<()> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let n = args.first().copied().unwrap_or(1000);
    let d = args.get(1).copied().unwrap_or(784);
    let m = args.get(2).copied().unwrap_or(n);
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut cloud = |shift: f32, n: usize| -> Vec<f32> {
        (0..n * d)
            .map(|_| {
                shift + <StandardNormal as Distribution<f32>>::sample(&StandardNormal, &mut rng)
            })
            .collect()
    };
    let (x, y) = (cloud(0.0, n), cloud(0.5, m));
    let t = Instant::now();
    let cost = pairwise_sq_dists(&x, n, &y, m, d);
    println!(
        "cost matrix {n}×{m}, d = {d}: {:.3} s",
        t.elapsed().as_secs_f64()
    );
    let (w, v) = (vec![1.0; n], vec![1.0; m]);
    let t = Instant::now();
    let s = exact_ot(&w, &v, &cost)?;
    println!(
        "exact OT ({}): {:.3} s, {} pivots, cost {:.6}",
        if s.pivots == 0 {
            "uniform, equal sizes: assignment"
        } else {
            "network simplex"
        },
        t.elapsed().as_secs_f64(),
        s.pivots,
        s.cost
    );
    let mean = cost.iter().sum::<f64>() / cost.len() as f64;
    let cfg = SinkhornConfig {
        epsilon: 0.05 * mean,
        tolerance: 1e-6,
        max_iterations: 1000,
    };
    let t = Instant::now();
    let s = sinkhorn(&w, &v, &cost, &cfg)?;
    println!(
        "sinkhorn ε = {:.3}: {:.3} s, {} iterations (converged {}), cost {:.6}",
        cfg.epsilon,
        t.elapsed().as_secs_f64(),
        s.iterations,
        s.converged,
        s.cost
    );
    Ok(())
}
