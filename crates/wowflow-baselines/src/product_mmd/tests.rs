use super::objective::FeaturePath;
use super::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use std::time::Instant;
use wowflow_core::linalg::pairwise_sq_dists;
use wowflow_core::linalg::SymmetricEigen;

fn normal(rng: &mut ChaCha8Rng) -> f64 {
    <StandardNormal as Distribution<f64>>::sample(&StandardNormal, rng)
}

/// A random symmetric `p × p` matrix.
fn random_symmetric(p: usize, rng: &mut ChaCha8Rng) -> Vec<f64> {
    let mut s = vec![0.0; p * p];
    for a in 0..p {
        for b in 0..=a {
            let v = normal(rng);
            s[a * p + b] = v;
            s[b * p + a] = v;
        }
    }
    s
}

/// A random SPD `p × p` matrix `A Aᵀ + 0.1 I`.
fn random_spd(p: usize, rng: &mut ChaCha8Rng) -> Vec<f64> {
    let a: Vec<f64> = (0..p * p).map(|_| 0.6 * normal(rng)).collect();
    let mut s = wowflow_core::linalg::matmul_tn(&a, &a, p, p, p);
    (0..p).for_each(|i| s[i * p + i] += 0.1);
    s
}

/// `n` random particles in `R^d × R^p × S_p^{++}` with random (non-uniform) masses.
fn random_particles(n: usize, d: usize, p: usize, seed: u64) -> ProductParticles {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let x = (0..n * d).map(|_| normal(&mut rng) as f32).collect();
    let m = (0..n * p).map(|_| normal(&mut rng)).collect();
    let sigma = (0..n).flat_map(|_| random_spd(p, &mut rng)).collect();
    let masses = (0..n).map(|_| rng.random_range(0.5..2.0)).collect();
    ProductParticles::from_parts(x, d, m, sigma, p, masses).unwrap()
}

const H: Bandwidths = Bandwidths {
    x: 2.0,
    m: 1.5,
    sigma: 0.7,
};

fn value(obj: &ProductMmd, src: &ProductParticles) -> f64 {
    obj.value_and_grad(src).unwrap().0
}

fn max_abs(v: impl IntoIterator<Item = f64>) -> f64 {
    v.into_iter().map(f64::abs).fold(0.0, f64::max)
}

#[test]
fn gradient_matches_central_finite_differences() {
    let (n, t, d, p) = (5, 4, 3, 2);
    let src = random_particles(n, d, p, 1);
    let obj = ProductMmd::new(random_particles(t, d, p, 2), H).unwrap();
    let (f0, g) = obj.value_and_grad(&src).unwrap();
    assert!(f0 > 0.0);
    let mass = src.masses().to_vec();

    // Features (stored in f32): divide by the perturbation actually applied.
    let gx_scale = max_abs((0..n * d).map(|k| g.x[k] as f64 * mass[k / d]));
    for k in 0..n * d {
        let (mut plus, mut minus) = (src.clone(), src.clone());
        plus.x[k] += 1e-3;
        minus.x[k] -= 1e-3;
        let delta = plus.x[k] as f64 - minus.x[k] as f64;
        let fd = (value(&obj, &plus) - value(&obj, &minus)) / delta;
        let analytic = g.x[k] as f64 * mass[k / d];
        assert!(
            (fd - analytic).abs() < 1e-5 * gx_scale,
            "x[{k}]: fd {fd} vs {analytic}"
        );
    }

    // Means (f64).
    let eps = 1e-5;
    let gm_scale = max_abs((0..n * p).map(|k| g.m[k] * mass[k / p]));
    for k in 0..n * p {
        let (mut plus, mut minus) = (src.clone(), src.clone());
        plus.m[k] += eps;
        minus.m[k] -= eps;
        let fd = (value(&obj, &plus) - value(&obj, &minus)) / (2.0 * eps);
        let analytic = g.m[k] * mass[k / p];
        assert!(
            (fd - analytic).abs() < 1e-6 * gm_scale,
            "m[{k}]: fd {fd} vs {analytic}"
        );
    }

    // Covariances: directional derivative along a random symmetric E versus ⟨g_Σ p_i, E⟩.
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let pp = p * p;
    for (i, &mass_i) in mass.iter().enumerate() {
        let e = random_symmetric(p, &mut rng);
        let (mut plus, mut minus) = (src.clone(), src.clone());
        let block = i * pp..(i + 1) * pp;
        for ((up, down), &e_ab) in plus.sigma[block.clone()]
            .iter_mut()
            .zip(&mut minus.sigma[block])
            .zip(&e)
        {
            *up += eps * e_ab;
            *down -= eps * e_ab;
        }
        let fd = (value(&obj, &plus) - value(&obj, &minus)) / (2.0 * eps);
        let gi = &g.sigma[i * pp..(i + 1) * pp];
        assert!(is_symmetric(gi, p), "g_Σ of particle {i} not symmetric");
        let analytic: f64 = gi.iter().zip(&e).map(|(g, e)| g * e).sum::<f64>() * mass_i;
        assert!(
            (fd - analytic).abs() < 1e-6 * (1e-3 + fd.abs()),
            "Σ of particle {i}: fd {fd} vs {analytic}"
        );
    }
}

#[test]
fn gemm_path_matches_the_direct_path() {
    // d = 64 > DIRECT_MAX_DIM; features of unit scale so the f32 GEMM error is ~1e-6.
    let src = random_particles(30, 64, 2, 4);
    let obj =
        ProductMmd::new(random_particles(20, 64, 2, 5), Bandwidths { x: 100.0, ..H }).unwrap();
    let (fd, gd) = obj.value_and_grad_with(&src, FeaturePath::Direct).unwrap();
    let (fg, gg) = obj.value_and_grad_with(&src, FeaturePath::Gemm).unwrap();
    assert!((fd - fg).abs() < 1e-6 * fd.abs(), "F: {fd} vs {fg}");
    let scale = max_abs(gd.x.iter().map(|&v| v as f64));
    let err = max_abs(gd.x.iter().zip(&gg.x).map(|(&a, &b)| a as f64 - b as f64));
    assert!(err < 1e-4 * scale, "x gradient: error {err}, scale {scale}");
    // The label parts go through the f32 GEMM too (scaled coordinates).
    for (name, a, b) in [("m", &gd.m, &gg.m), ("Σ", &gd.sigma, &gg.sigma)] {
        let err = max_abs(a.iter().zip(b).map(|(a, b)| a - b));
        let scale = max_abs(a.iter().copied());
        assert!(
            err < 1e-4 * scale,
            "{name} gradient: error {err}, scale {scale}"
        );
    }
}

#[test]
fn equal_measures_have_zero_value_and_gradient() {
    let q = random_particles(6, 3, 2, 7);
    let obj = ProductMmd::new(q.clone(), H).unwrap();
    let (f, g) = obj.value_and_grad(&q).unwrap();
    assert!(f.abs() < 1e-14, "F(Q, Q) = {f}");
    let worst = max_abs(
        g.x.iter()
            .map(|&v| v as f64)
            .chain(g.m.iter().copied())
            .chain(g.sigma.iter().copied()),
    );
    assert!(worst < 1e-12, "gradient at the target: {worst}");
    // A different measure is strictly positive (the product Gaussian kernel is
    // characteristic).
    assert!(value(&obj, &random_particles(6, 3, 2, 8)) > 1e-3);
}

#[test]
fn permuting_particles_permutes_the_gradient() {
    let (n, d, p) = (7, 3, 2);
    let src = random_particles(n, d, p, 9);
    let obj = ProductMmd::new(random_particles(5, d, p, 10), H).unwrap();
    let perm = [3usize, 0, 6, 1, 5, 2, 4];
    let gather = |v: &[f64], w: usize| -> Vec<f64> {
        perm.iter()
            .flat_map(|&i| v[i * w..(i + 1) * w].iter().copied())
            .collect()
    };
    let x: Vec<f32> = perm
        .iter()
        .flat_map(|&i| src.x[i * d..(i + 1) * d].iter().copied())
        .collect();
    let permuted = ProductParticles::from_parts(
        x,
        d,
        gather(&src.m, p),
        gather(&src.sigma, p * p),
        p,
        gather(src.masses(), 1),
    )
    .unwrap();
    let (f, g) = obj.value_and_grad(&src).unwrap();
    let (fp, gp) = obj.value_and_grad(&permuted).unwrap();
    assert!((f - fp).abs() < 1e-14, "{f} vs {fp}");
    for (new, &old) in perm.iter().enumerate() {
        for k in 0..d {
            let (a, b) = (gp.x[new * d + k], g.x[old * d + k]);
            assert!((a - b).abs() < 1e-6, "x grad of {old} → {new}: {a} vs {b}");
        }
        let (ga, gb) = (
            &gp.sigma[new * p * p..(new + 1) * p * p],
            &g.sigma[old * p * p..(old + 1) * p * p],
        );
        assert!(max_abs(ga.iter().zip(gb).map(|(a, b)| a - b)) < 1e-13);
        assert!(max_abs((0..p).map(|k| gp.m[new * p + k] - g.m[old * p + k])) < 1e-13);
    }
}

#[test]
fn exponential_map_keeps_covariances_spd() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for p in [2usize, 3] {
        for trial in 0..200 {
            let sigma = random_spd(p, &mut rng);
            // Steps of every size, including ones far beyond the tangent regime.
            let scale = [1e-3, 0.1, 0.5, 3.0][trial % 4];
            let s: Vec<f64> = random_symmetric(p, &mut rng)
                .iter()
                .map(|v| scale * v)
                .collect();
            let next = bures_exp(&sigma, &s, p);
            assert!(is_symmetric(&next, p));
            let eig = SymmetricEigen::new(&next, p).unwrap();
            // I + S singular has probability 0; its smallest |eigenvalue| bounds the shrink.
            let ipls = {
                let mut a = s.clone();
                (0..p).for_each(|i| a[i * p + i] += 1.0);
                SymmetricEigen::new(&a, p).unwrap()
            };
            let min_ipls = ipls.values.iter().map(|v| v.abs()).fold(f64::MAX, f64::min);
            if min_ipls > 1e-6 {
                assert!(
                    eig.values[0] > 0.0,
                    "p {p}, trial {trial}: {:?}",
                    eig.values
                );
            }
            assert!(eig.values[0] > -1e-12);
        }
    }
    // First order: exp_Σ(εS) = Σ + ε (SΣ + ΣS) + O(ε²).
    let (sigma, s) = (random_spd(2, &mut rng), random_symmetric(2, &mut rng));
    let eps = 1e-6;
    let next = bures_exp(&sigma, &s.iter().map(|v| eps * v).collect::<Vec<_>>(), 2);
    let (ss, s_s) = (matmul(&s, &sigma, 2, 2, 2), matmul(&sigma, &s, 2, 2, 2));
    for k in 0..4 {
        let want = sigma[k] + eps * (ss[k] + s_s[k]);
        assert!((next[k] - want).abs() < 1e-10, "{k}: {} vs {want}", next[k]);
    }
}

/// Two well-separated classes in `R^3`, `per_class` points each, class `c` centred on
/// `centres[c]` with per-axis spreads `spread[c]`.
fn two_classes(
    per_class: usize,
    centres: [[f32; 3]; 2],
    spread: [[f32; 3]; 2],
    seed: u64,
) -> LabeledCloud {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut pts = Vec::with_capacity(2 * per_class * 3);
    for c in 0..2 {
        for _ in 0..per_class {
            for k in 0..3 {
                pts.push(centres[c][k] + spread[c][k] * normal(&mut rng) as f32);
            }
        }
    }
    LabeledCloud::uniform(2, per_class, 3, pts).unwrap()
}

fn toy_pair() -> (LabeledCloud, LabeledCloud) {
    let spread = [[0.3, 0.2, 0.2], [0.2, 0.4, 0.2]];
    let target = two_classes(15, [[-2.0, 0.0, 0.0], [2.0, 0.0, 0.0]], spread, 1);
    // Source class 0 starts near target class 1 and vice versa, offset and reshaped.
    let source = two_classes(
        15,
        [[2.5, 0.8, 0.3], [-2.5, 0.8, 0.3]],
        [[0.5, 0.3, 0.3], [0.3, 0.3, 0.5]],
        2,
    );
    (source, target)
}

/// Stops the flow after `after` steps.
struct StopAfter(usize);

impl wowflow_core::Observer for StopAfter {
    fn on_step(
        &mut self,
        _info: &wowflow_core::StepInfo,
        state: &wowflow_core::FlowState,
    ) -> Result<wowflow_core::Control> {
        Ok(if state.step >= self.0 {
            wowflow_core::Control::Stop
        } else {
            wowflow_core::Control::Continue
        })
    }
}

/// The product-space MMD flow through the one flow loop, stopped after `stop_after` steps.
fn flow_run(
    source: &LabeledCloud,
    target: &LabeledCloud,
    config: ProductMmdConfig,
    start: Option<(wowflow_core::FlowState, ProductMmdObjective)>,
    stop_after: usize,
) -> Result<(wowflow_core::FlowState, ProductMmdObjective)> {
    let (mut state, mut objective) = match start {
        Some(s) => s,
        None => (
            wowflow_core::FlowState::new(source.clone()),
            ProductMmdObjective::new(source, target, config)?,
        ),
    };
    wowflow_core::Flow {
        optimizer: config.optimizer()?,
        objective: &mut objective,
        config: wowflow_core::FlowConfig {
            steps: config.steps,
            seed: 0,
            clip: None,
            temperature: None,
        },
    }
    .run(&mut state, &mut [&mut StopAfter(stop_after)])?;
    Ok((state, objective))
}

#[test]
fn flow_decreases_the_objective_and_recovers_labels() {
    let (source, target) = toy_pair();
    let config = ProductMmdConfig {
        tau: 1.0,
        // τ = 1 on Σ overshoots here (the embedded covariances are ~0.1): see `tau_sigma`.
        tau_sigma: Some(0.1),
        momentum: 0.9,
        steps: 150,
        ..ProductMmdConfig::default()
    };
    let fresh = ProductMmdObjective::new(&source, &target, config).unwrap();
    let before = fresh.assign_labels(source.points()).unwrap();
    let (state, objective) = flow_run(&source, &target, config, None, usize::MAX).unwrap();
    let losses = &state.losses;
    assert_eq!((losses.len(), state.step), (150, 150));
    let last = losses[losses.len() - 1];
    assert!(last < 1e-3 * losses[0], "F: {} → {last}", losses[0]);
    // Source class 0 sits on target class 1 and vice versa: the labels are swapped.
    let want: Vec<usize> = (0..30).map(|i| 1 - i / 15).collect();
    assert_eq!(objective.assign_labels(state.cloud.points()).unwrap(), want);
    assert_eq!(before, want);
    // With τ = 1 on Σ too, the first Σ step passes the geodesic's cut locus: refused, and
    // the flow keeps the state of step 0.
    let single_tau = ProductMmdConfig {
        tau_sigma: None,
        ..config
    };
    let err = flow_run(&source, &target, single_tau, None, usize::MAX).unwrap_err();
    assert!(matches!(err, CoreError::Diverged { step: 0, .. }), "{err}");
    // The covariances stayed SPD along the way.
    let particles = objective.particles();
    for i in 0..particles.len() {
        let eig = SymmetricEigen::new(particles.covariance(i), 2).unwrap();
        assert!(eig.values[0] > 0.0);
    }
}

/// The one flow loop takes exactly the steps of the method's own update
/// ([`ProductMmdFlow::step`]: heavy ball on all three parts), bit for bit.
#[test]
fn the_flow_loop_reproduces_the_methods_own_step_bit_for_bit() {
    let (source, target) = toy_pair();
    for momentum in [0.0, 0.9] {
        let config = ProductMmdConfig {
            steps: 12,
            tau_sigma: Some(0.1),
            momentum,
            ..ProductMmdConfig::default()
        };
        let (flow, mut own) = ProductMmdFlow::new(&source, &target, config).unwrap();
        let mut own_losses = Vec::new();
        for _ in 0..config.steps {
            own_losses.push(flow.step(&mut own).unwrap());
        }
        let (state, objective) = flow_run(&source, &target, config, None, usize::MAX).unwrap();
        assert_eq!(state.losses, own_losses, "momentum {momentum}");
        assert_eq!(state.cloud.points(), &own.particles.x[..]);
        assert_eq!(objective.particles().m, own.particles.m);
        assert_eq!(objective.particles().sigma, own.particles.sigma);
    }
}

#[test]
fn early_stop_resume_and_determinism() {
    let (source, target) = toy_pair();
    let config = ProductMmdConfig {
        steps: 20,
        tau_sigma: Some(0.1),
        ..ProductMmdConfig::default()
    };
    let (s1, o1) = flow_run(&source, &target, config, None, usize::MAX).unwrap();
    let (s2, _) = flow_run(&source, &target, config, None, usize::MAX).unwrap();
    assert_eq!(s1, s2);
    let (s3, o3) = flow_run(&source, &target, config, None, 5).unwrap();
    assert_eq!((s3.losses.len(), s3.step), (5, 5));
    assert_eq!(s3.losses[..], s1.losses[..5]);
    // Resumed from the stopped state in a fresh objective (as from a checkpoint: the label
    // Gaussians come back through `objective_state`): the same run, bit for bit.
    assert!(s3.objective_state.is_some());
    drop(o3);
    let fresh = ProductMmdObjective::new(&source, &target, config).unwrap();
    let (resumed, o4) = flow_run(&source, &target, config, Some((s3, fresh)), usize::MAX).unwrap();
    assert_eq!(resumed, s1);
    assert_eq!(o4.particles(), o1.particles());
    // A saved state of the wrong length is refused by name.
    let mut o5 = ProductMmdObjective::new(&source, &target, config).unwrap();
    let e = o5.restore_state(&[1.0, 2.0]).unwrap_err().to_string();
    assert!(e.contains("product-mmd objective state"), "{e}");
}

#[test]
fn labels_follow_the_nearest_gaussians_under_the_mass_constraint() {
    // Three particles near class 0, one near class 1; class weights ¾ and ¼.
    let p = 2;
    let spd = [1.0, 0.2, 0.2, 0.5];
    let target = ClassGaussians::from_parts(
        p,
        vec![0.0, 0.0, 5.0, 5.0],
        [spd, [0.3, 0.0, 0.0, 0.3]].concat(),
    )
    .unwrap();
    let m = vec![0.1, 0.0, -0.2, 0.1, 4.8, 5.1, 0.0, 0.3];
    let sigma = [spd, spd, [0.3, 0.0, 0.0, 0.3], spd].concat();
    let particles =
        ProductParticles::from_parts(vec![0.0; 4], 1, m, sigma, p, vec![1.0; 4]).unwrap();
    let labels = assign_product_labels(&particles, &target, &[0.75, 0.25]).unwrap();
    assert_eq!(labels, vec![0, 0, 1, 0]);
    assert!(assign_product_labels(&particles, &target, &[1.0]).is_err());
}

fn steps(tau: f64) -> StepSizes {
    StepSizes {
        x: tau,
        m: tau,
        sigma: tau,
    }
}

#[test]
fn divergence_is_a_named_error_and_keeps_the_state() {
    let src = random_particles(3, 2, 2, 12);
    let mut state = ProductState::at_rest(src);
    let before = state.clone();
    let mut grad = ProductGrad {
        x: vec![0.0; 6],
        m: vec![0.0; 6],
        sigma: vec![0.0; 12],
    };
    grad.x[4] = f32::MAX;
    let err = state.apply_gradient(&grad, steps(1e10), 0.9).unwrap_err();
    assert!(
        matches!(&err, CoreError::Diverged { reason, .. } if reason.contains("features")),
        "{err}"
    );
    assert_eq!(state, before);
    grad.x[4] = 0.0;
    grad.sigma[1] = f64::NAN;
    let err = state.apply_gradient(&grad, steps(0.1), 0.9).unwrap_err();
    assert!(
        matches!(&err, CoreError::Diverged { reason, .. } if reason.contains("Σ")),
        "{err}"
    );
    assert_eq!(state, before);
    // A Σ step with I + S indefinite (S = −2 · 1 · 1 · I on particle 2) is refused.
    grad.sigma[1] = 0.0;
    grad.sigma[8] = 1.0;
    grad.sigma[11] = 1.0;
    let err = state.apply_gradient(&grad, steps(1.0), 0.9).unwrap_err();
    assert!(
        matches!(&err, CoreError::Diverged { reason, .. }
            if reason.contains("cut locus") && reason.contains("particle 2")),
        "{err}"
    );
    assert_eq!(state, before);
    // Half that step is fine (I + S = 0 is the boundary; 0.25 gives I + S = ½ I).
    state.apply_gradient(&grad, steps(0.25), 0.9).unwrap();
    let s2 = state.particles.covariance(2);
    let want: Vec<f64> = before
        .particles
        .covariance(2)
        .iter()
        .map(|v| 0.25 * v)
        .collect();
    assert!(max_abs(s2.iter().zip(&want).map(|(a, b)| a - b)) < 1e-12);
}

#[test]
fn median_bandwidths_and_rejections() {
    let (source, target) = toy_pair();
    let emb = LabelEmbedding::fit(&source, &target, &EmbeddingConfig::default()).unwrap();
    let src = ProductParticles::from_cloud(&source, &emb).unwrap();
    let tgt = ProductParticles::from_cloud(&target, &emb).unwrap();
    let spec = BandwidthSpec {
        x: Bandwidth::Median { factor: 2.0 },
        m: Bandwidth::Fixed { h: 0.25 },
        ..BandwidthSpec::default()
    };
    let h = Bandwidths::resolve(&spec, &src, &tgt).unwrap();
    let mut dx = pairwise_sq_dists(&src.x, 30, &tgt.x, 30, 3);
    dx.sort_by(f64::total_cmp);
    assert!((h.x - 2.0 * dx[450]).abs() < 1e-12 && h.m == 0.25 && h.sigma > 0.0);
    let bad = BandwidthSpec {
        m: Bandwidth::Fixed { h: 0.0 },
        ..spec
    };
    assert!(Bandwidths::resolve(&bad, &src, &tgt).is_err());
    // Identical covariances everywhere: the Σ median and mean are 0.
    let (mut flat_src, mut flat) = (src.clone(), tgt.clone());
    for part in [&mut flat_src, &mut flat] {
        for s in part.sigma.chunks_exact_mut(4) {
            s.copy_from_slice(&[1.0, 0.0, 0.0, 1.0]);
        }
    }
    let err = Bandwidths::resolve(&BandwidthSpec::default(), &flat_src, &flat).unwrap_err();
    assert!(err.to_string().contains("h_sigma"), "{err}");
    let bad_tau = ProductMmdConfig {
        tau: -1.0,
        ..ProductMmdConfig::default()
    };
    assert!(ProductMmdFlow::new(&source, &target, bad_tau).is_err());
}

/// Step time at the transfer-learning sizes (N = 2000, M = 1000, d = 784):
/// `cargo test -p wowflow-core --release step_time -- --ignored --nocapture`.
///
/// Uses uniform random images, or real ones when `PRODUCT_MMD_BENCH` names a raw
/// little-endian `f32` file of 3000 × 784 values: 2000 source rows then 1000 target rows,
/// each sorted by class in equal blocks (200 / 100 per class, 10 classes). Prints the
/// two-GEMM floor measured alongside (the load of a shared machine varies).
#[test]
#[ignore]
fn step_time_at_n2000_m1000_d784() {
    let (d, n, t) = (784, 2000, 1000);
    let real = std::env::var("PRODUCT_MMD_BENCH").ok();
    let rows = match &real {
        Some(path) => std::fs::read(path)
            .unwrap()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        None => {
            let mut rng = ChaCha8Rng::seed_from_u64(0);
            (0..(n + t) * d)
                .map(|_| rng.random_range(0.0f32..1.0))
                .collect::<Vec<f32>>()
        }
    };
    assert_eq!(rows.len(), (n + t) * d);
    let source = LabeledCloud::uniform(10, n / 10, d, rows[..n * d].to_vec()).unwrap();
    let target = LabeledCloud::uniform(10, t / 10, d, rows[n * d..].to_vec()).unwrap();
    let start = Instant::now();
    let emb = LabelEmbedding::fit(&source, &target, &EmbeddingConfig::default()).unwrap();
    eprintln!(
        "PCA fit (3000 × 784): {:.3} s, variances {:?}",
        start.elapsed().as_secs_f64(),
        emb.variances()
    );
    let start = Instant::now();
    let config = ProductMmdConfig {
        steps: 5,
        // Random images make all class Gaussians alike (h_Σ tiny): τ = 1 on Σ would pass the
        // cut locus at once. Real images take the paper's τ = 1 everywhere.
        tau_sigma: if real.is_some() { None } else { Some(1e-3) },
        ..ProductMmdConfig::default()
    };
    let (flow, mut state) = ProductMmdFlow::new(&source, &target, config).unwrap();
    eprintln!(
        "setup (PCA, medians, target term): {:.3} s, {:?}",
        start.elapsed().as_secs_f64(),
        flow.objective().bandwidths()
    );
    for _ in 0..3 {
        let t0 = Instant::now();
        let loss = flow.step(&mut state).unwrap();
        let step = t0.elapsed().as_secs_f64();
        let t1 = Instant::now();
        let z = [&state.particles.x[..], &flow.objective().target().x[..]].concat();
        let mut w = vec![0.0f32; n * (n + t)];
        wowflow_core::linalg::matmul_abt_f32(&state.particles.x, n, &z, n + t, d, &mut w);
        let g = wowflow_core::linalg::matmul_ab_f32(&w, n, n + t, &z, d);
        let floor = t1.elapsed().as_secs_f64();
        assert!(g[0].is_finite());
        eprintln!(
            "step {:.3} s (two-GEMM floor {floor:.3} s), F = {loss:.3e}, {} threads",
            step,
            rayon::current_num_threads()
        );
    }
    let losses: Vec<f64> = (0..2).map(|_| flow.step(&mut state).unwrap()).collect();
    eprintln!("next losses {losses:?}");
}
