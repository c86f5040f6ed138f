//! Every distance between labeled datasets that `wowflow-ot` computes, on two small datasets
//! whose classes differ in size: WoW, sliced WoW, OTDD and SW-MMD (docs/math.md §6).
//!
//! - WoW: `W²(P, Q) = min_Γ Σ_ck Γ_ck W₂²(μ_c, ν_k)`, optimal transport between the classes,
//!   with the exact `W₂²` between two classes as the cost of moving one onto the other.
//! - sliced WoW: the same with the sliced `SW₂²` between classes (random directions).
//! - OTDD: optimal transport between the labeled points themselves, with cost
//!   `‖x − x'‖² + W₂²(class of x, class of x')`.
//! - SW-MMD: `MMD_K(P, Q)` with the Riesz kernel `K(μ, ν) = −SW₂(μ, ν)` between classes.
//!
//! Run it: `cargo run --release -p wowflow-cli --example dataset_distance`

use wowflow_core::{toy, ClassWeighting, Kernel, LabeledCloud};
use wowflow_ot::{otdd, sliced_wow_distance, sw_mmd_distance, wow_distance, OtddConfig};

const PROJECTIONS: usize = 200; // directions of the sliced distances
const SEED: u64 = 0; // draws those directions

/// The three rings of `toy`, keeping the first `sizes[c]` points of ring `c` and moving every
/// point `shift` to the right.
fn rings(
    sizes: [usize; 3],
    shift: f32,
    seed: u64,
) -> Result<LabeledCloud, Box<dyn std::error::Error>> {
    let full = toy::rings(sizes.into_iter().max().unwrap_or(1), seed)?;
    let keep: Vec<Vec<usize>> = sizes.iter().map(|&n| (0..n).collect()).collect();
    let part = full.select(&keep)?; // still the default class weights a_c = 1/3
    let moved = part.points().iter().enumerate();
    let points = moved
        .map(|(i, &v)| if i % 2 == 0 { v + shift } else { v })
        .collect();
    Ok(part.with_points(points, 2)?)
}

/// Every distance from `p` to `q`, in the order of the table's rows.
fn distances(p: &LabeledCloud, q: &LabeledCloud) -> wowflow_core::Result<[f64; 4]> {
    // WoW, sliced WoW and SW-MMD (Bonet, Vauthier & Korba) weigh every class the same,
    // a_c = 1/C whatever its size: the uniform weights the clouds carry already.
    let wow = wow_distance(p, q)?.value;
    let sliced = sliced_wow_distance(p, q, PROJECTIONS, SEED)?.value;
    let mmd = sw_mmd_distance(p, q, &Kernel::RIESZ, PROJECTIONS, SEED)?;

    // OTDD (Alvarez-Melis & Fusi) is defined on the dataset's empirical measure, where every
    // labeled point has mass 1/N, i.e. a_c = n_c / N: proportional class weights. With
    // uniform class weights and unequal classes, `otdd` (which, like every function here,
    // uses the weights the clouds carry) would compute a different, class-balanced quantity.
    let proportional =
        |c: &LabeledCloud| c.clone().with_class_weighting(ClassWeighting::Proportional);
    let config = OtddConfig::default(); // exact label costs, exact outer OT, label weight 1
    let otdd2 = otdd(&proportional(p), &proportional(q), &config)?.value;
    Ok([wow, sliced, otdd2, mmd])
}

pub fn main() -> Result<(), Box<dyn std::error::Error>> {
    // P: 30, 20 and 10 points per ring. Q: a new sample with 12, 18 and 24 points per ring,
    // and the same Q again, moved 0.5 to the right.
    let p = rings([30, 20, 10], 0.0, 0)?;
    let near = distances(&p, &rings([12, 18, 24], 0.0, 1)?)?;
    let far = distances(&p, &rings([12, 18, 24], 0.5, 1)?)?;

    let rows = [
        ("WoW", "W²", "uniform"),
        ("sliced WoW", "SW²", "uniform"),
        ("OTDD", "OTDD²", "proportional"),
        ("SW-MMD", "MMD", "uniform"),
    ];
    println!("distance    returns  P to Q  P to Q moved  class weights a_c");
    for (k, (name, returns, weights)) in rows.into_iter().enumerate() {
        println!(
            "{name:<11} {returns:<7} {:>7.4} {:>13.4}  {weights}",
            near[k], far[k]
        );
        // Moving Q away from P makes every distance grow.
        assert!(far[k] > near[k], "{name}: {} ≤ {}", far[k], near[k]);
    }
    // OTDD is large even for P and the resampled Q: it transports labeled points, and with
    // class proportions 30:20:10 against 12:18:24 some mass must move from one ring to another.
    Ok(())
}
