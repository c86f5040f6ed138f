use super::*;
use crate::shaping::{ClassRepulsion, Sum};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use wowflow_core::toy::{gaussian_noise, rings, two_noise_classes};
use wowflow_core::{Flow, FlowConfig, FlowState, Method, Optimizer};
use wowflow_ot::exact_ot;

fn random_cloud(classes: usize, per: usize, d: usize, spread: f32, seed: u64) -> LabeledCloud {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let points = (0..classes * per * d)
        .map(|i| {
            let c = i / (per * d);
            (c as f32) * spread * ((i % d) as f32 - 0.5) + rng.random_range(-1.0..1.0)
        })
        .collect();
    LabeledCloud::uniform(classes, per, d, points).unwrap()
}

fn config(labels: LabelDynamics, p: usize, tau: f64) -> JointOtddConfig {
    JointOtddConfig {
        labels,
        embedding: EmbeddingConfig {
            dim: p,
            ridge: 1e-2,
        },
        tau_mean: tau,
        tau_sigma: tau,
        ..Default::default()
    }
}

fn evaluate(obj: &mut JointOtdd, cloud: &LabeledCloud) -> (f64, Vec<f32>) {
    let mut grad = vec![0.0; cloud.points().len()];
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let v = obj.value_and_wow_grad(cloud, &mut rng, &mut grad).unwrap();
    (v, grad)
}

/// Every gradient (features, means, covariances) against central differences of F, for both
/// dynamics. The plan is locally constant at generic points, so F is smooth there.
#[test]
fn gradients_match_finite_differences() {
    let source = random_cloud(2, 5, 3, 2.0, 1);
    let target = random_cloud(3, 4, 3, 1.5, 2);
    for labels in [LabelDynamics::Fixed, LabelDynamics::Variable] {
        let mut obj = JointOtdd::new(&source, target.clone(), config(labels, 3, 0.1)).unwrap();
        let (_, grad) = evaluate(&mut obj, &source);
        let masses = source.masses();
        let h = 1e-4f32;
        for k in [0, 4, 17, 29] {
            let mut moved = |delta: f32| {
                let mut c = source.clone();
                c.points_mut()[k] += delta;
                evaluate(&mut obj, &c).0
            };
            let fd = (moved(h) - moved(-h)) / (2.0 * h as f64) / masses[k / 3];
            assert!(
                (fd - grad[k] as f64).abs() < 1e-3 * (1.0 + fd.abs()),
                "{labels:?} x[{k}]: fd {fd} vs {}",
                grad[k]
            );
        }

        // Label gradients, un-normalised by the Gaussians' masses.
        let p = obj.embedding().dim();
        let (gm, gs) = {
            let (roots, labels) = obj.label_costs().unwrap();
            let cost = labeled_ground_cost(source.points(), &obj.owner, &obj.target, &labels, 1.0);
            let plan = exact_ot(&masses, &target.masses(), &cost).unwrap().plan;
            let gamma = obj.label_plan(&plan);
            obj.label_gradients(&roots, &gamma).unwrap()
        };
        let group_mass = |g: usize| -> f64 {
            obj.owner
                .iter()
                .zip(&masses)
                .filter(|(&o, _)| o == g)
                .map(|(_, m)| m)
                .sum()
        };
        let base = obj.clone();
        let at = |obj: &mut JointOtdd, means: Vec<f64>, covs: Vec<f64>| {
            obj.means = means;
            obj.covariances = covs;
            evaluate(obj, &source).0
        };
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for g in [0, obj.n_gaussians() - 1] {
            for a in 0..p {
                let idx = g * p + a;
                let h = 1e-5;
                let mut plus = base.means.clone();
                plus[idx] += h;
                let mut minus = base.means.clone();
                minus[idx] -= h;
                let mut o = base.clone();
                let fd = (at(&mut o, plus, base.covariances.clone())
                    - at(&mut o, minus, base.covariances.clone()))
                    / (2.0 * h)
                    / group_mass(g);
                assert!(
                    (fd - gm[idx]).abs() < 1e-5 * (1.0 + fd.abs()),
                    "{labels:?} μ[{g},{a}]: fd {fd} vs {}",
                    gm[idx]
                );
            }
            // A random symmetric direction E: dF = mass ⟨∇_Σ, E⟩.
            let mut e: Vec<f64> = (0..p * p).map(|_| rng.random_range(-1.0..1.0)).collect();
            wowflow_core::linalg::symmetrise(&mut e, p);
            let h = 1e-6;
            let shifted = |s: f64| {
                let mut c = base.covariances.clone();
                c[g * p * p..(g + 1) * p * p]
                    .iter_mut()
                    .zip(&e)
                    .for_each(|(v, d)| *v += s * d);
                c
            };
            let mut o = base.clone();
            let fd = (at(&mut o, base.means.clone(), shifted(h))
                - at(&mut o, base.means.clone(), shifted(-h)))
                / (2.0 * h)
                / group_mass(g);
            let analytic: f64 = gs[g * p * p..(g + 1) * p * p]
                .iter()
                .zip(&e)
                .map(|(a, b)| a * b)
                .sum();
            assert!(
                (fd - analytic).abs() < 1e-5 * (1.0 + fd.abs()),
                "{labels:?} Σ[{g}]: fd {fd} vs {analytic}"
            );
        }
    }
}

/// τ = ½ sends every Gaussian whose plan row lies in one target class exactly onto that
/// class's Gaussian (the Monge map of Σ lands on Σ'), as a feature step of ½ lands a
/// particle on its target.
#[test]
fn half_steps_land_on_the_target_class_gaussians() {
    let target = random_cloud(3, 6, 2, 4.0, 3);
    let source = target
        .with_points(target.points().iter().map(|v| v + 0.05).collect(), 2)
        .unwrap();
    let mut obj = JointOtdd::new(&source, target, config(LabelDynamics::Fixed, 2, 0.5)).unwrap();
    evaluate(&mut obj, &source);
    obj.accept_step().unwrap();
    let (now, t) = (obj.label_gaussians().unwrap(), obj.target_gaussians());
    for c in 0..3 {
        for (a, b) in now
            .mean(c)
            .iter()
            .zip(t.mean(c))
            .chain(now.covariance(c).iter().zip(t.covariance(c)))
        {
            assert!(
                (a - b).abs() < 1e-9 * (1.0 + b.abs()),
                "class {c}: {a} vs {b}"
            );
        }
    }
}

fn flow(objective: &mut dyn Objective, state: &mut FlowState, steps: usize, lr: f64) {
    Flow {
        objective,
        optimizer: Optimizer::new(Method::Gd, lr).unwrap(),
        config: FlowConfig {
            steps,
            seed: 0,
            clip: None,
            temperature: None,
        },
    }
    .run(state, &mut [])
    .unwrap();
}

#[test]
fn both_dynamics_decrease_the_objective() {
    let target = rings(12, 0).unwrap();
    for labels in [LabelDynamics::Fixed, LabelDynamics::Variable] {
        let source = gaussian_noise(3, 12, 2, 1.0, 1).unwrap();
        let mut obj = JointOtdd::new(&source, target.clone(), config(labels, 2, 0.1)).unwrap();
        let before = obj.state().unwrap();
        let mut state = FlowState::new(source);
        flow(&mut obj, &mut state, 20, 0.1);
        let l = &state.losses;
        // jd-fl keeps each noise class whole, and every class starts as the same Gaussian:
        // it settles where classes straddle rings (a local minimum, F ≈ 0.45 F₀); jd-vl
        // lets every particle's label follow its own target.
        let factor = if labels == LabelDynamics::Fixed {
            0.5
        } else {
            0.1
        };
        assert!(l[19] < factor * l[0], "{labels:?}: {l:?}");
        assert!(
            l.windows(2).all(|w| w[1] <= w[0] * (1.0 + 1e-9)),
            "{labels:?}: {l:?}"
        );
        assert_ne!(
            obj.state().unwrap(),
            before,
            "{labels:?}: the Gaussians moved"
        );
        assert_eq!(state.objective_state, obj.state());
    }
}

/// jd-vl from two source classes towards three target classes: DBSCAN (radius from the
/// target) sees two label clusters at the start and three at the end, matched one to one
/// with the target classes; k-means with k = 3 agrees. jd-fl keeps two.
#[test]
fn variable_labels_can_change_the_number_of_classes() {
    let target = rings(20, 0).unwrap();
    // Two noise classes, one shifted right: two distinct label Gaussians at the start.
    let source = two_noise_classes(30, 4.0, 2).unwrap();
    let mut obj = JointOtdd::new(
        &source,
        target.clone(),
        config(LabelDynamics::Variable, 2, 0.25),
    )
    .unwrap();
    let dbscan = Clustering::Dbscan {
        eps: obj.default_dbscan_eps().unwrap(),
        min_points: 4,
    };
    assert_eq!(obj.labels(Some(&dbscan)).unwrap().count, 2);
    let mut state = FlowState::new(source.clone());
    flow(&mut obj, &mut state, 40, 0.25);
    let found = obj.labels(Some(&dbscan)).unwrap();
    assert_eq!((found.count, found.noise()), (3, 0));
    let kmeans = Clustering::KMeans {
        k: 3,
        seed: 0,
        restarts: 2,
    };
    assert_eq!(obj.labels(Some(&kmeans)).unwrap(), found);
    let mut matched = obj.match_clusters(&found, &source.masses()).unwrap();
    matched.sort_unstable();
    assert_eq!(matched, vec![0, 1, 2]);
    assert!(obj.labels(None).is_err());

    let mut fixed = JointOtdd::new(&source, target, config(LabelDynamics::Fixed, 2, 0.25)).unwrap();
    let mut state = FlowState::new(source);
    flow(&mut fixed, &mut state, 10, 0.25);
    assert_eq!(fixed.labels(Some(&dbscan)).unwrap().count, 2);
}

/// A run stopped after 3 steps and resumed from its FlowState (which carries the label
/// Gaussians) by a fresh objective ends bit-identical to an uninterrupted one — also inside
/// a weighted sum with a stateless shaping term.
#[test]
fn resume_from_the_flow_state_is_bit_identical() {
    let target = rings(10, 0).unwrap();
    let source = gaussian_noise(3, 10, 2, 1.0, 5).unwrap();
    let make = || -> Sum {
        Sum {
            terms: vec![
                (
                    1.0,
                    Box::new(
                        JointOtdd::new(
                            &source,
                            target.clone(),
                            config(LabelDynamics::Variable, 2, 0.1),
                        )
                        .unwrap(),
                    ),
                ),
                (0.01, Box::new(ClassRepulsion)),
            ],
        }
    };
    let mut whole = FlowState::new(source.clone());
    flow(&mut make(), &mut whole, 6, 0.1);
    let mut part = FlowState::new(source.clone());
    flow(&mut make(), &mut part, 3, 0.1);
    flow(&mut make(), &mut part, 6, 0.1);
    assert_eq!(part, whole);
    assert!(whole.objective_state.is_some());
    // Without its Gaussians the continuation differs.
    let mut lost = FlowState::new(source.clone());
    flow(&mut make(), &mut lost, 3, 0.1);
    lost.objective_state = None;
    flow(&mut make(), &mut lost, 6, 0.1);
    assert_ne!(lost.objective_state, whole.objective_state);
}

#[test]
fn unaccepted_steps_leave_the_gaussians_and_bad_input_is_refused() {
    let target = rings(8, 0).unwrap();
    let source = gaussian_noise(3, 8, 2, 1.0, 1).unwrap();
    let mut obj = JointOtdd::new(
        &source,
        target.clone(),
        config(LabelDynamics::Fixed, 2, 0.1),
    )
    .unwrap();
    let before = obj.state();
    evaluate(&mut obj, &source);
    assert_eq!(obj.state(), before);
    obj.accept_step().unwrap();
    assert_ne!(obj.state(), before);

    // A Σ step far past the target crosses the cut locus: refused, naming tau_sigma.
    let mut long = JointOtdd::new(
        &source,
        target.clone(),
        JointOtddConfig {
            tau_sigma: 40.0,
            ..config(LabelDynamics::Fixed, 2, 0.1)
        },
    )
    .unwrap();
    let mut grad = vec![0.0; source.points().len()];
    let err = long
        .value_and_wow_grad(&source, &mut ChaCha8Rng::seed_from_u64(0), &mut grad)
        .unwrap_err();
    assert!(err.to_string().contains("tau_sigma"), "{err}");

    let other = gaussian_noise(2, 8, 2, 1.0, 1).unwrap();
    let mut grad = vec![0.0; other.points().len()];
    assert!(obj
        .value_and_wow_grad(&other, &mut ChaCha8Rng::seed_from_u64(0), &mut grad)
        .is_err());
    assert!(obj.restore_state(&[1.0, 2.0]).is_err());
    assert!(JointOtdd::new(
        &source,
        target,
        JointOtddConfig {
            tau_mean: 0.0,
            ..Default::default()
        }
    )
    .is_err());
}
