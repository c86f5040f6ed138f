//! A functional of your own in a wowflow `Flow`: implement the `Objective` trait.
//!
//! The functional moves the mean of every class to a target point of its own:
//! `F(P) = ½ Σ_c a_c ‖m_c − t_c‖²`, where `m_c = Σ_i w_ci x_ci` is the mean of class `c`,
//! `a_c` its class weight and `w_ci` the weight of particle `i` inside it.
//!
//! The flow wants the *WoW* gradient of every particle: the ordinary derivative `∂F/∂x_ci`
//! divided by the particle's mass `a_c w_ci` (docs/math.md §5). Here
//! `∂F/∂x_ci = a_c w_ci (m_c − t_c)`, so the WoW gradient is `m_c − t_c`: every particle of a
//! class gets the same push, whatever the size of its class. `main` checks this against finite
//! differences, then flows and checks that every class mean lands on its target.
//!
//! Run it: `cargo run --release -p wowflow-cli --example custom_objective`

use wowflow_core::error::shape;
use wowflow_core::flow::step_rng;
use wowflow_core::objective::check_inputs;
use wowflow_core::{
    toy, Flow, FlowConfig, FlowState, LabeledCloud, Method, Objective, Optimizer, RngCore,
};

/// `F(P) = ½ Σ_c a_c ‖m_c − t_c‖²`; `targets[c]` is `t_c`.
struct MeansToTargets {
    targets: Vec<[f64; 2]>,
}

impl Objective for MeansToTargets {
    fn name(&self) -> String {
        "means-to-targets".into()
    }

    fn value_and_wow_grad(
        &mut self,
        cloud: &LabeledCloud,
        _rng: &mut dyn RngCore,
        grad: &mut [f32],
    ) -> wowflow_core::Result<f64> {
        check_inputs(cloud, Some(2), grad)?; // grad is N × d like the points; d must be 2
        if self.targets.len() != cloud.n_classes() {
            return Err(shape("targets", cloud.n_classes(), self.targets.len()));
        }
        let mut value = 0.0;
        for (c, t) in self.targets.iter().enumerate() {
            let mean = class_mean(cloud, c);
            let diff = [mean[0] - t[0], mean[1] - t[1]];
            value += 0.5 * cloud.class_weights()[c] * (diff[0] * diff[0] + diff[1] * diff[1]);
            // WoW gradient = (∂F/∂x_ci) / (a_c w_ci) = m_c − t_c, the same for the whole class.
            for i in cloud.class_range(c) {
                grad[2 * i..2 * i + 2].copy_from_slice(&[diff[0] as f32, diff[1] as f32]);
            }
        }
        Ok(value)
    }
}

/// `m_c = Σ_i w_ci x_ci`, the mean of class `c` of a 2-D cloud.
fn class_mean(cloud: &LabeledCloud, c: usize) -> [f64; 2] {
    let (x, w) = (cloud.class_points(c), cloud.class_particle_weights(c));
    let mut mean = [0.0f64; 2];
    for (p, w) in x.chunks_exact(2).zip(w) {
        mean[0] += w * p[0] as f64;
        mean[1] += w * p[1] as f64;
    }
    mean
}

/// `F` and its WoW gradient at `cloud` (this objective draws no randomness; any stream will do).
fn evaluate(
    obj: &mut dyn Objective,
    cloud: &LabeledCloud,
) -> wowflow_core::Result<(f64, Vec<f32>)> {
    let mut grad = vec![0.0f32; cloud.points().len()];
    let value = obj.value_and_wow_grad(cloud, &mut step_rng(0, 0), &mut grad)?;
    Ok((value, grad))
}

pub fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Three classes of noise with 40, 25 and 10 particles and uniform class weights 1/3:
    // the particles' masses a_c / n_c differ from class to class.
    let noise = toy::gaussian_noise(3, 40, 2, 1.0, 0)?;
    let cloud = noise.select(&[(0..40).collect(), (0..25).collect(), (0..10).collect()])?;
    let targets = vec![[2.0, 0.0], [-1.0, 1.7], [-1.0, -1.7]];
    let mut objective = MeansToTargets { targets };

    // The convention, checked by central differences: nudge feature 0 of the first particle of
    // each class (F is quadratic, so the differences are exact up to rounding).
    let (_, grad) = evaluate(&mut objective, &cloud)?;
    let masses = cloud.masses(); // a_c w_ci, row by row
    for c in 0..3 {
        let i = cloud.class_range(c).start;
        let (mut plus, mut minus) = (cloud.clone(), cloud.clone());
        plus.points_mut()[2 * i] += 1e-2;
        minus.points_mut()[2 * i] -= 1e-2;
        let h = (plus.points()[2 * i] - minus.points()[2 * i]) as f64; // the step f32 took
        let dfdx = (evaluate(&mut objective, &plus)?.0 - evaluate(&mut objective, &minus)?.0) / h;
        let (mass, wow) = (masses[i], grad[2 * i] as f64);
        let scaled = dfdx / mass;
        println!("class {c}, mass {mass:.4}: ∂F/∂x / mass = {scaled:+.5}, WoW gradient {wow:+.5}");
        assert!((scaled - wow).abs() < 1e-3, "∂F/∂x / mass ≠ WoW gradient");
    }

    // Plain gradient descent with τ = 0.5: every particle of class c moves by −τ (m_c − t_c),
    // so each step halves every class's distance to its target and keeps the class's shape.
    let optimizer = Optimizer::new(Method::Gd, 0.5)?;
    let config = FlowConfig::new(40, 0);
    let mut state = FlowState::new(cloud);
    Flow {
        objective: &mut objective,
        optimizer,
        config,
    }
    .run(&mut state, &mut [])?;
    let f_end = evaluate(&mut objective, &state.cloud)?.0;
    println!("F: {:.3e} → {f_end:.3e}", state.losses[0]);
    for (c, t) in objective.targets.iter().enumerate() {
        let m = class_mean(&state.cloud, c);
        let miss = (m[0] - t[0]).hypot(m[1] - t[1]);
        println!("class {c}: mean {m:+.4?}, {miss:.1e} from its target");
        assert!(miss < 1e-4, "class {c} did not reach its target");
    }
    Ok(())
}
