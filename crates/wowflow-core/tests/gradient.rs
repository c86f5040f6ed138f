//! The WoW gradient of SW-MMD, checked three independent ways:
//! (1) the f64 reference gradient against central finite differences of the reference value,
//! (2) the fast f32 engine against the reference, (3) invariances and the P = Q fixed point.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
mod support;

use support::sw_mmd_reference;
use wowflow_core::{CpuEngine, DirectionSampler, Directions, Engine, Kernel, LabeledCloud};

const KERNELS: [Kernel; 5] = [
    Kernel::Riesz { r: 1.0 },
    Kernel::Riesz { r: 1.5 },
    Kernel::Gaussian { h: 0.5 },
    Kernel::Imq { h: 1.0 },
    Kernel::Laplace { h: 0.5 },
];

fn normal(rng: &mut ChaCha8Rng, len: usize, shift: f32) -> Vec<f32> {
    (0..len)
        .map(|_| rng.sample::<f32, _>(StandardNormal) + shift)
        .collect()
}

/// A cloud with the given class sizes, optional random particle weights and class weights.
fn cloud(
    rng: &mut ChaCha8Rng,
    sizes: &[usize],
    d: usize,
    weighted: bool,
    shift: f32,
) -> LabeledCloud {
    let n: usize = sizes.iter().sum();
    let mut offsets = vec![0];
    for s in sizes {
        offsets.push(offsets.last().unwrap() + s);
    }
    let mut points = normal(rng, n * d, 0.0);
    for c in 0..sizes.len() {
        for i in offsets[c]..offsets[c + 1] {
            points[i * d] += shift * c as f32;
        }
    }
    let cl =
        LabeledCloud::from_parts(points, d, offsets, (0..sizes.len() as i64).collect()).unwrap();
    if weighted {
        let pw: Vec<f64> = (0..n).map(|_| rng.random_range(0.5..2.0)).collect();
        let cw: Vec<f64> = (0..sizes.len())
            .map(|_| rng.random_range(0.5..2.0))
            .collect();
        cl.with_particle_weights(pw)
            .unwrap()
            .with_class_weights(cw)
            .unwrap()
    } else {
        cl
    }
}

struct Case {
    name: &'static str,
    source: Vec<usize>,
    target: Vec<usize>,
    weighted: bool,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "equal",
            source: vec![6, 6, 6],
            target: vec![6, 6],
            weighted: false,
        },
        Case {
            name: "unequal",
            source: vec![5, 3, 7],
            target: vec![4, 6, 2],
            weighted: false,
        },
        Case {
            name: "weighted",
            source: vec![4, 5],
            target: vec![3, 6, 5],
            weighted: true,
        },
    ]
}

/// Central differences of the reference value against the reference's closed-form gradient
/// (times the particle's mass `a_c w_ci`: the WoW gradient is ∂F/∂x divided by it), at the
/// given particles and coordinates.
fn assert_fd_matches(
    src: &LabeledCloud,
    tgt: &LabeledCloud,
    dirs: &Directions,
    kernel: &Kernel,
    particles: impl Iterator<Item = usize>,
    coords: &[usize],
    what: &str,
) {
    let d = src.dim();
    let x0: Vec<f64> = src.points().iter().map(|&v| v as f64).collect();
    let (_, grad) = sw_mmd_reference(src, &x0, tgt, dirs, kernel);
    for i in particles {
        let c = (0..src.n_classes())
            .find(|&c| src.class_range(c).contains(&i))
            .unwrap();
        let mass = src.class_weights()[c] * src.particle_weight(c, i);
        for &j in coords {
            let h = 1e-6;
            let (mut xp, mut xm) = (x0.clone(), x0.clone());
            xp[i * d + j] += h;
            xm[i * d + j] -= h;
            let fd = (sw_mmd_reference(src, &xp, tgt, dirs, kernel).0
                - sw_mmd_reference(src, &xm, tgt, dirs, kernel).0)
                / (2.0 * h);
            let got = grad[i * d + j] * mass;
            assert!(
                (fd - got).abs() <= 1e-6 + 1e-5 * fd.abs(),
                "{what} {kernel:?} particle {i} coord {j}: fd {fd:e} vs closed form {got:e}"
            );
        }
    }
}

#[test]
fn reference_gradient_matches_finite_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for case in cases() {
        let d = 3;
        let src = cloud(&mut rng, &case.source, d, case.weighted, 1.0);
        let tgt = cloud(&mut rng, &case.target, d, case.weighted, -0.7);
        let dirs = DirectionSampler::Gaussian.sample(8, d, &mut rng).unwrap();
        for kernel in KERNELS {
            let particles = (0..src.n_points()).step_by(2);
            assert_fd_matches(&src, &tgt, &dirs, &kernel, particles, &[0, 1, 2], case.name);
        }
    }
}

fn rel_err(a: &[f32], b: &[f64]) -> f64 {
    let num: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (x as f64 - y).powi(2))
        .sum::<f64>()
        .sqrt();
    let den: f64 = b.iter().map(|y| y * y).sum::<f64>().sqrt();
    num / den.max(1e-30)
}

/// The fast f32 engine's value and gradient against the f64 reference.
fn assert_engine_matches(
    src: &LabeledCloud,
    tgt: &LabeledCloud,
    dirs: &Directions,
    kernel: &Kernel,
    what: &str,
) {
    let x0: Vec<f64> = src.points().iter().map(|&v| v as f64).collect();
    let (value, want) = sw_mmd_reference(src, &x0, tgt, dirs, kernel);
    let mut grad = vec![0.0f32; src.points().len()];
    let out = CpuEngine::new()
        .sw_mmd(src, tgt, dirs, kernel, &mut grad)
        .unwrap();
    assert!(
        (out.value - value).abs() <= 1e-5 * (1.0 + value.abs()),
        "{what} {kernel:?}: value {} vs {value}",
        out.value
    );
    let err = rel_err(&grad, &want);
    assert!(
        err < 1e-4,
        "{what} {kernel:?}: gradient relative error {err:e}"
    );
}

#[test]
fn engine_matches_reference() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for case in cases() {
        let d = 4;
        let src = cloud(&mut rng, &case.source, d, case.weighted, 1.5);
        let tgt = cloud(&mut rng, &case.target, d, case.weighted, -1.0);
        let dirs = DirectionSampler::Gaussian.sample(16, d, &mut rng).unwrap();
        for kernel in KERNELS {
            assert_engine_matches(&src, &tgt, &dirs, &kernel, case.name);
        }
    }
}

#[test]
fn engine_matches_reference_at_image_dimension() {
    // A high-dimensional case closer to the paper's (d = 64, 40 directions).
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let d = 64;
    let src = cloud(&mut rng, &[20, 20, 20], d, false, 0.5);
    let tgt = cloud(&mut rng, &[20, 20, 20], d, false, -0.5);
    let dirs = DirectionSampler::OrthogonalBlocks
        .sample(40, d, &mut rng)
        .unwrap();
    let x0: Vec<f64> = src.points().iter().map(|&v| v as f64).collect();
    let (_, want) = sw_mmd_reference(&src, &x0, &tgt, &dirs, &Kernel::RIESZ);
    let mut grad = vec![0.0f32; src.points().len()];
    CpuEngine::new()
        .sw_mmd(&src, &tgt, &dirs, &Kernel::RIESZ, &mut grad)
        .unwrap();
    assert!(rel_err(&grad, &want) < 1e-4);
}

#[test]
fn zero_value_and_gradient_when_source_equals_target() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for weighted in [false, true] {
        let p = cloud(&mut rng, &[7, 4, 9], 5, weighted, 2.0);
        let dirs = DirectionSampler::Gaussian.sample(32, 5, &mut rng).unwrap();
        for kernel in KERNELS {
            let mut grad = vec![1.0f32; p.points().len()];
            let out = CpuEngine::new()
                .sw_mmd(&p, &p, &dirs, &kernel, &mut grad)
                .unwrap();
            assert!(out.value.abs() < 1e-9, "{kernel:?}: F = {}", out.value);
            let gmax = grad.iter().fold(0.0f32, |m, g| m.max(g.abs()));
            assert!(
                gmax < 1e-5,
                "{kernel:?} weighted={weighted}: |grad| = {gmax}"
            );
        }
    }
}

#[test]
fn permuting_particles_permutes_the_gradient() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let d = 3;
    let src = cloud(&mut rng, &[6, 6], d, false, 1.0);
    let tgt = cloud(&mut rng, &[6, 6], d, false, -1.0);
    let dirs = DirectionSampler::Gaussian.sample(20, d, &mut rng).unwrap();
    let perm = [3usize, 0, 5, 1, 4, 2, 11, 9, 6, 10, 7, 8]; // within classes
    let mut permuted = vec![0.0f32; src.points().len()];
    for (r, &i) in perm.iter().enumerate() {
        permuted[r * d..(r + 1) * d].copy_from_slice(&src.points()[i * d..(i + 1) * d]);
    }
    let src2 = LabeledCloud::uniform(2, 6, d, permuted).unwrap();
    for kernel in KERNELS {
        let (mut g1, mut g2) = (vec![0.0; 36], vec![0.0; 36]);
        let v1 = CpuEngine::new()
            .sw_mmd(&src, &tgt, &dirs, &kernel, &mut g1)
            .unwrap()
            .value;
        let v2 = CpuEngine::new()
            .sw_mmd(&src2, &tgt, &dirs, &kernel, &mut g2)
            .unwrap()
            .value;
        assert!((v1 - v2).abs() < 1e-9);
        for (r, &i) in perm.iter().enumerate() {
            for j in 0..d {
                assert!((g2[r * d + j] - g1[i * d + j]).abs() < 1e-5, "{kernel:?}");
            }
        }
    }
}

#[test]
fn rotating_space_and_directions_rotates_the_gradient() {
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let d = 4;
    let src = cloud(&mut rng, &[5, 7], d, false, 1.0);
    let tgt = cloud(&mut rng, &[6, 6], d, false, -1.0);
    let dirs = DirectionSampler::Gaussian.sample(24, d, &mut rng).unwrap();
    let rot = DirectionSampler::OrthogonalBlocks
        .sample(d, d, &mut rng)
        .unwrap(); // a random rotation R (rows)
    let rot = &rot;
    let apply = |x: &[f32]| -> Vec<f32> {
        x.chunks(d)
            .flat_map(|row| {
                (0..d).map(move |i| (0..d).map(|k| rot.row(i)[k] * row[k]).sum::<f32>())
            })
            .collect()
    };
    let src_r =
        LabeledCloud::from_parts(apply(src.points()), d, src.offsets().to_vec(), vec![0, 1])
            .unwrap();
    let tgt_r =
        LabeledCloud::from_parts(apply(tgt.points()), d, tgt.offsets().to_vec(), vec![0, 1])
            .unwrap();
    let dirs_r = Directions::from_rows(24, d, apply(dirs.as_slice())).unwrap();
    for kernel in KERNELS {
        let (mut g, mut g_r) = (vec![0.0; src.points().len()], vec![0.0; src.points().len()]);
        let v = CpuEngine::new()
            .sw_mmd(&src, &tgt, &dirs, &kernel, &mut g)
            .unwrap()
            .value;
        let v_r = CpuEngine::new()
            .sw_mmd(&src_r, &tgt_r, &dirs_r, &kernel, &mut g_r)
            .unwrap()
            .value;
        assert!((v - v_r).abs() < 1e-5 * (1.0 + v.abs()), "{kernel:?}");
        let want = apply(&g);
        for (a, b) in g_r.iter().zip(&want) {
            assert!(
                (a - b).abs() < 1e-4 * (1.0 + b.abs()),
                "{kernel:?}: {a} vs {b}"
            );
        }
    }
}

#[test]
fn results_do_not_depend_on_thread_count() {
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let src = cloud(&mut rng, &[30, 30, 30], 16, false, 1.0);
    let tgt = cloud(&mut rng, &[30, 30, 30], 16, false, -1.0);
    let dirs = DirectionSampler::Gaussian.sample(64, 16, &mut rng).unwrap();
    let mut outs = Vec::new();
    for threads in [1, 2, 3] {
        let mut g = vec![0.0; src.points().len()];
        let v = CpuEngine::with_threads(threads)
            .unwrap()
            .sw_mmd(&src, &tgt, &dirs, &Kernel::RIESZ, &mut g)
            .unwrap()
            .value;
        outs.push((
            v.to_bits(),
            g.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
        ));
    }
    assert_eq!(outs[0], outs[1]);
    assert_eq!(outs[0], outs[2]);
}

#[test]
fn a_reused_engine_gives_the_same_bits_as_fresh_ones() {
    // The CPU engine keeps its buffers between calls; shapes and weights changing from one
    // call to the next must not leak state.
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    let shared = CpuEngine::new();
    for case in cases().into_iter().chain(cases()).rev() {
        let d = 3;
        let src = cloud(&mut rng, &case.source, d, case.weighted, 1.0);
        let tgt = cloud(&mut rng, &case.target, d, !case.weighted, -1.0);
        let dirs = DirectionSampler::Gaussian.sample(10, d, &mut rng).unwrap();
        let kernel = KERNELS[rng.random_range(0..KERNELS.len())];
        let (mut g1, mut g2) = (
            vec![0.0f32; src.points().len()],
            vec![0.0f32; src.points().len()],
        );
        let a = shared.sw_mmd(&src, &tgt, &dirs, &kernel, &mut g1).unwrap();
        let b = CpuEngine::new()
            .sw_mmd(&src, &tgt, &dirs, &kernel, &mut g2)
            .unwrap();
        assert_eq!(a, b, "{}", case.name);
        assert_eq!(g1, g2, "{}", case.name);
    }
}

#[test]
fn structured_directions_pass_the_same_checks() {
    // Structured directions (rows of H·D₃·H·D₂·H·D₁, zero-padded and renormalised) fixed: the
    // reference works on their dense rows, the engine projects and back-projects through
    // fast Walsh–Hadamard transforms, so the comparison is between two independent paths.
    // d = 20 pads to the smallest transform, d' = 64 (restricted rows, renormalised); d = 64
    // does not pad; L = 140 takes three blocks of 64, the last one truncated.
    let mut rng = ChaCha8Rng::seed_from_u64(23);
    for d in [20, 64] {
        for case in cases() {
            let src = cloud(&mut rng, &case.source, d, case.weighted, 1.2);
            let tgt = cloud(&mut rng, &case.target, d, case.weighted, -0.8);
            let dirs = DirectionSampler::Structured
                .sample(140, d, &mut rng)
                .unwrap();
            assert!(dirs.is_structured());
            let what = format!("d={d} {}", case.name);
            for kernel in KERNELS {
                assert_engine_matches(&src, &tgt, &dirs, &kernel, &what);
                let particles = (0..src.n_points()).step_by(3);
                assert_fd_matches(
                    &src,
                    &tgt,
                    &dirs,
                    &kernel,
                    particles,
                    &[0, d / 2, d - 1],
                    &what,
                );
            }
        }
    }
}
