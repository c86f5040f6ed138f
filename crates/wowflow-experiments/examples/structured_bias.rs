//! Evidence for the structured direction family (issue 20, docs/math.md §3): the bias and
//! variance of its SW₂² estimate against i.i.d. Gaussian directions, over many independent
//! draws, on fixed pairs of clouds — anisotropic Gaussian blobs in `d = 2 … 784` and MNIST
//! class pairs (test split, 500 images a class) at `d = 784`.
//!
//! `cargo run --release -p wowflow-experiments --example structured_bias [-- --quick]`
//!
//! Prints one row per case: each family's mean ± standard error; the structured mean's
//! relative bias against the orthogonal-block mean (unbiased, every direction uniform on the
//! sphere, and the most precise reference), its z-scores against the orthogonal and the
//! Gaussian means; the variance ratios (structured / Gaussian, orthogonal / Gaussian). `WOWFLOW_DATA` (else `<repo>/../shared/data`) locates MNIST.

#[path = "../tests/support/sw_stats.rs"]
mod sw_stats;

use sw_stats::{anisotropic_blobs, sw2_moments, Moments};
use wowflow_core::directions::MIN_TRANSFORM;
use wowflow_core::DirectionSampler;
use wowflow_data::{load_split, DataDirs, Split};

fn row(case: &str, d: usize, l: usize, x: &[f32], y: &[f32], draws: usize) {
    let g = sw2_moments(&DirectionSampler::Gaussian, x, y, d, l, draws, 1 << 32);
    let o = sw2_moments(
        &DirectionSampler::OrthogonalBlocks,
        x,
        y,
        d,
        l,
        draws,
        2 << 32,
    );
    let s = sw2_moments(&DirectionSampler::Structured, x, y, d, l, draws, 3 << 32);
    let fmt = |m: &Moments| format!("{:.5} ± {:.5}", m.mean, m.se());
    println!(
        "{case:<12} {d:>4} {:>5} {l:>4} {draws:>5}  {:<20} {:<20} {:<20} {:>+8.3}% {:>+6.2} {:>+6.2} {:>6.3} {:>6.3}",
        d.next_power_of_two().max(MIN_TRANSFORM),
        fmt(&g),
        fmt(&o),
        fmt(&s),
        100.0 * (s.mean - o.mean) / o.mean,
        s.z_against(&o),
        s.z_against(&g),
        s.var / g.var,
        o.var / g.var,
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let only_dims: Option<Vec<usize>> =
        flag("--dims").map(|v| v.split(',').filter_map(|d| d.parse().ok()).collect());
    let draws_override: Option<usize> = flag("--draws").and_then(|v| v.parse().ok());
    println!(
        "{:<12} {:>4} {:>5} {:>4} {:>5}  {:<20} {:<20} {:<20} {:>9} {:>6} {:>6} {:>6} {:>6}",
        "case",
        "d",
        "d'",
        "L",
        "draws",
        "gaussian SW2^2",
        "orthogonal SW2^2",
        "structured SW2^2",
        "bias/o",
        "z/o",
        "z/g",
        "var s/g",
        "var o/g"
    );
    let dims: &[usize] = if quick {
        &[2, 8, 16, 100, 784]
    } else {
        &[
            2, 3, 4, 5, 8, 12, 16, 17, 24, 32, 50, 64, 100, 128, 300, 784,
        ]
    };
    let dims = only_dims.as_deref().unwrap_or(dims);
    for &d in dims {
        let (x, y) = anisotropic_blobs(d, 300, d as u64);
        let l = if d >= 500 { 500 } else { 128 };
        let draws = match (quick, d) {
            (true, _) => 400,
            (false, d) if d < 100 => 4000,
            _ => 1000,
        };
        let draws = draws_override.unwrap_or(draws);
        row("blobs", d, l, &x, &y, draws);
    }
    if only_dims.is_some() {
        return;
    }
    let dirs = DataDirs::new(wowflow_testkit::shared_data("the MNIST rows", &["mnist"]).as_deref());
    let mnist = match load_split(&dirs, "mnist", Split::Test) {
        Ok(set) => set,
        Err(e) => {
            println!("MNIST rows skipped: {e}");
            return;
        }
    };
    let by_class = mnist.class_indices();
    let class = |c: usize| -> Vec<f32> {
        let mut out = Vec::new();
        for &i in by_class[c].iter().take(500) {
            mnist.push_image(i, &mut out);
        }
        out
    };
    for (a, b) in [(3, 8), (0, 1), (4, 9)] {
        let (x, y) = (class(a), class(b));
        row(
            &format!("mnist {a}-{b}"),
            784,
            500,
            &x,
            &y,
            if quick { 100 } else { 400 },
        );
    }
}
