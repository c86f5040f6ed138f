//! Objectives seen through a random differentiable map (docs/math.md §7 DM, §9 distillation).
//!
//! Dataset distillation compares the flowed set with the target not on raw pixels but after
//! a random augmentation `A` and/or a freshly initialised network `ψ`, redrawn every step:
//! `F(P) = D(ψ∘A # P, ψ∘A # Q)` for a discrepancy `D` (SW-MMD or DM). A [`FeatureMap`] is that
//! random map; [`Featurized`] is the objective that maps both datasets, evaluates `D` in
//! feature space and pulls the gradient back through the map (the vector–Jacobian product),
//! which is what "the gradient back-propagated through ψ∘A" means.
//!
//! Maps must act on every row independently (no batch statistics): then each particle keeps
//! its mass `a_c w_ci` in feature space, and the WoW gradient — the Euclidean gradient
//! divided by that mass — pulls back row by row exactly (see [`Featurized`]).

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::fmt;
use std::sync::Arc;
use wowflow_baselines::dm::dm_value_and_grad;
use wowflow_core::cloud::LabeledCloud;
use wowflow_core::directions::{DirectionSampler, Directions};
use wowflow_core::engine::{CpuEngine, Engine, SwMmdOutput};
use wowflow_core::error::{invalid, shape, CoreError, Result};
use wowflow_core::kernel::Kernel;
use wowflow_core::objective::{check_inputs, class_batch, Objective};

/// A random differentiable map applied to both datasets each step.
///
/// Contract: `forward` treats rows independently (row `i` of the output depends only on row
/// `i` of the input and this step's randomness), so that [`Featurized`] may pull the WoW
/// gradient back row by row.
pub trait FeatureMap: Send {
    /// A short name for logs (`identity`, `dsa-S(color,crop)`, …).
    fn name(&self) -> String;
    /// Output row length for input rows of `in_dim` values (named error if it cannot take them).
    fn out_dim(&self, in_dim: usize) -> Result<usize>;
    /// Draws this step's random map (a fresh network, which augmentation op, ...). Called
    /// once per evaluation, before `forward`. Deterministic maps keep the default: nothing
    /// to draw.
    fn resample(&mut self, _rng: &mut dyn RngCore) -> Result<()> {
        Ok(())
    }
    /// Maps `rows` (row-major, `rows.len() / in_dim` rows). Per-row randomness comes from `rng`.
    /// With `keep = true` it remembers what `pullback` needs (used for the source); with false nothing is kept (target).
    fn forward(
        &mut self,
        rows: &[f32],
        in_dim: usize,
        keep: bool,
        rng: &mut dyn RngCore,
    ) -> Result<Vec<f32>>;
    /// Vector–Jacobian product at the last `forward(.., keep = true, ..)`: (n × out_dim) → (n × in_dim).
    fn pullback(&mut self, grad_out: &[f32]) -> Result<Vec<f32>>;
}

/// The number of rows in a row-major buffer of rows of `dim` values, or a named shape error
/// (`what` names the buffer). Shared by every map so they reject bad input alike.
pub fn row_count(what: &str, values: &[f32], dim: usize) -> Result<usize> {
    if dim == 0 {
        return Err(CoreError::ZeroDimension);
    }
    if !values.len().is_multiple_of(dim) {
        return Err(shape(
            what,
            format!("a whole number of rows of {dim} values"),
            format!("{} values", values.len()),
        ));
    }
    Ok(values.len() / dim)
}

/// The error of a `pullback` called with no `forward(.., keep = true, ..)` before it.
pub fn pullback_before_forward(map: &str) -> CoreError {
    invalid(
        map,
        "pullback called before forward(.., keep = true, ..): nothing to differentiate at",
    )
}

/// The map `x ↦ x` (no augmentation, no embedding: the `ψ = A = Id` column of docs/math.md §9).
#[derive(Debug, Clone, Default)]
pub struct Identity {
    /// `(rows, dim)` of the last kept forward, to check the pullback's shape.
    kept: Option<(usize, usize)>,
}

impl FeatureMap for Identity {
    fn name(&self) -> String {
        "identity".into()
    }
    fn out_dim(&self, in_dim: usize) -> Result<usize> {
        match in_dim {
            0 => Err(CoreError::ZeroDimension),
            d => Ok(d),
        }
    }
    fn forward(
        &mut self,
        rows: &[f32],
        in_dim: usize,
        keep: bool,
        _rng: &mut dyn RngCore,
    ) -> Result<Vec<f32>> {
        let n = row_count("identity input", rows, in_dim)?;
        if keep {
            self.kept = Some((n, in_dim));
        }
        Ok(rows.to_vec())
    }
    fn pullback(&mut self, grad_out: &[f32]) -> Result<Vec<f32>> {
        let (n, d) = self
            .kept
            .ok_or_else(|| pullback_before_forward("identity"))?;
        if grad_out.len() != n * d {
            return Err(shape("identity pullback", n * d, grad_out.len()));
        }
        Ok(grad_out.to_vec())
    }
}

/// Composition: `Chain(vec![a, b])` applies `a` first, then `b` (the map `b∘a`, e.g.
/// `ψ∘A` is `Chain(vec![augment, network])`). The pullback runs the stages in reverse.
/// An empty chain is the identity.
pub struct Chain(pub Vec<Box<dyn FeatureMap>>);

impl Chain {
    /// Input dimension of every stage followed by the final output dimension.
    fn dims(&self, in_dim: usize) -> Result<Vec<usize>> {
        let mut dims = vec![in_dim];
        for stage in &self.0 {
            let next = stage.out_dim(*dims.last().unwrap_or(&in_dim))?;
            dims.push(next);
        }
        Ok(dims)
    }
}

impl fmt::Debug for Chain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Chain({})", self.name())
    }
}

impl FeatureMap for Chain {
    /// Stage names in mathematical order, `b∘a` for `Chain(vec![a, b])`.
    fn name(&self) -> String {
        if self.0.is_empty() {
            return "identity".into();
        }
        let names: Vec<String> = self.0.iter().rev().map(|s| s.name()).collect();
        names.join("∘")
    }
    fn out_dim(&self, in_dim: usize) -> Result<usize> {
        if in_dim == 0 {
            return Err(CoreError::ZeroDimension);
        }
        Ok(*self.dims(in_dim)?.last().unwrap_or(&in_dim))
    }
    fn resample(&mut self, rng: &mut dyn RngCore) -> Result<()> {
        self.0.iter_mut().try_for_each(|stage| stage.resample(rng))
    }
    fn forward(
        &mut self,
        rows: &[f32],
        in_dim: usize,
        keep: bool,
        rng: &mut dyn RngCore,
    ) -> Result<Vec<f32>> {
        row_count("chain input", rows, in_dim)?;
        let dims = self.dims(in_dim)?;
        let mut values = rows.to_vec();
        for (stage, &dim) in self.0.iter_mut().zip(&dims) {
            values = stage.forward(&values, dim, keep, rng)?;
        }
        Ok(values)
    }
    fn pullback(&mut self, grad_out: &[f32]) -> Result<Vec<f32>> {
        let mut grad = grad_out.to_vec();
        for stage in self.0.iter_mut().rev() {
            grad = stage.pullback(&grad)?;
        }
        Ok(grad)
    }
}

/// Replays the same randomness at every evaluation: `resample` and `forward` ignore the
/// caller's generator and read a private ChaCha8 stream restarted from `seed` at each
/// `resample`. The same sequence of calls (same row counts) therefore sees the same map —
/// what central finite differences need, and the "ψ drawn once" ablation of a random
/// embedding.
pub struct Frozen {
    inner: Box<dyn FeatureMap>,
    seed: u64,
    rng: ChaCha8Rng,
}

impl Frozen {
    /// Freezes `inner`'s randomness at `seed`.
    pub fn new(inner: Box<dyn FeatureMap>, seed: u64) -> Self {
        Self {
            inner,
            seed,
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }
}

impl fmt::Debug for Frozen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Frozen({}, seed {})", self.inner.name(), self.seed)
    }
}

impl FeatureMap for Frozen {
    fn name(&self) -> String {
        format!("frozen({}, seed {})", self.inner.name(), self.seed)
    }
    fn out_dim(&self, in_dim: usize) -> Result<usize> {
        self.inner.out_dim(in_dim)
    }
    fn resample(&mut self, _rng: &mut dyn RngCore) -> Result<()> {
        self.rng = ChaCha8Rng::seed_from_u64(self.seed);
        self.inner.resample(&mut self.rng)
    }
    fn forward(
        &mut self,
        rows: &[f32],
        in_dim: usize,
        keep: bool,
        _rng: &mut dyn RngCore,
    ) -> Result<Vec<f32>> {
        self.inner.forward(rows, in_dim, keep, &mut self.rng)
    }
    fn pullback(&mut self, grad_out: &[f32]) -> Result<Vec<f32>> {
        self.inner.pullback(grad_out)
    }
}

/// What [`Featurized`] measures between the mapped datasets.
#[derive(Debug, Clone)]
pub enum Discrepancy {
    /// `½ MMD_K²` with a sliced-Wasserstein kernel (docs/math.md §5), `projections`
    /// directions in the feature dimension, redrawn every step.
    SwMmd {
        /// Kernel `K = κ(s)` between the mapped class measures.
        kernel: Kernel,
        /// Number `L ≥ 1` of directions per step.
        projections: usize,
        /// How the directions are drawn (in the feature dimension; a fixed sampler must
        /// have it).
        sampler: DirectionSampler,
        /// The SW-MMD engine that evaluates the mapped clouds ([`Discrepancy::sw_mmd`]
        /// uses the CPU engine).
        engine: Arc<dyn Engine>,
    },
    /// Distribution matching (docs/math.md §7): `Σ_c a_c ‖m_c − m'_c‖²` of class means.
    Dm,
}

impl Discrepancy {
    /// SW-MMD with Gaussian directions on the CPU engine.
    pub fn sw_mmd(kernel: Kernel, projections: usize) -> Self {
        Self::SwMmd {
            kernel,
            projections,
            sampler: DirectionSampler::Gaussian,
            engine: Arc::new(CpuEngine::new()),
        }
    }

    fn validate(&self) -> Result<()> {
        match self {
            Self::SwMmd {
                kernel,
                projections,
                ..
            } => {
                kernel.validate()?;
                if *projections == 0 {
                    return Err(invalid(
                        "projections",
                        "need at least one direction (L ≥ 1)",
                    ));
                }
                Ok(())
            }
            Self::Dm => Ok(()),
        }
    }

    /// A short name for logs (`sw-mmd(riesz)`, `dm(linear)`).
    pub fn name(&self) -> String {
        match self {
            Self::SwMmd { kernel, .. } => format!("sw-mmd({})", kernel.name()),
            Self::Dm => "dm(linear)".into(),
        }
    }
}

/// `F(P) = D(φ # P, φ # Q)`: a [`Discrepancy`] between the source and the target after both
/// went through this step's draw `φ` of a random [`FeatureMap`] (docs/math.md §9).
///
/// One evaluation draws, in this order from the caller's generator: the SW-MMD directions
/// (in the feature dimension; DM has none), the target mini-batch, the map
/// ([`FeatureMap::resample`]), the target rows' randomness (`forward`, `keep = false`) and the
/// source rows' randomness (`forward`, `keep = true`). With [`Identity`] the first two draws
/// are exactly those of [`wowflow_core::SwMmd`] and [`wowflow_baselines::DistributionMatching`], so a seeded step
/// gives bit-identical results.
///
/// The gradient: with `z_i = φ(x_i)`, `∂F/∂x_i = J_φ(x_i)ᵀ ∂F/∂z_i`. The map acts row by row,
/// so the feature particle `z_i` carries the same mass `m_i = a_c w_ci` as `x_i`, and dividing
/// both sides by `m_i` gives `∇_WoW F(x_i) = J_φ(x_i)ᵀ ∇_WoW F(z_i)`: pulling the feature-space
/// WoW gradient back through the map row-wise *is* the input-space WoW gradient, exactly.
pub struct Featurized {
    target: LabeledCloud,
    target_batch: Option<usize>,
    map: Box<dyn FeatureMap>,
    discrepancy: Discrepancy,
    last: Option<SwMmdOutput>,
}

impl fmt::Debug for Featurized {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Featurized")
            .field("target_classes", &self.target.n_classes())
            .field("target_points", &self.target.n_points())
            .field("target_batch", &self.target_batch)
            .field("map", &self.map.name())
            .field("discrepancy", &self.discrepancy)
            .finish()
    }
}

impl Featurized {
    /// `discrepancy` towards `target` through `map`. Fails early, with the map's own error,
    /// if the map cannot take the target's rows.
    pub fn new(
        target: LabeledCloud,
        map: Box<dyn FeatureMap>,
        discrepancy: Discrepancy,
    ) -> Result<Self> {
        target.validate()?;
        discrepancy.validate()?;
        let out_dim = map.out_dim(target.dim())?;
        if let Discrepancy::SwMmd { sampler, .. } = &discrepancy {
            sampler.check_dim(out_dim)?;
        }
        Ok(Self {
            target,
            target_batch: None,
            map,
            discrepancy,
            last: None,
        })
    }

    /// Compares with a fresh random subset of `batch` particles per target class each step
    /// (the paper's 256 real images per class); smaller classes are used whole.
    pub fn with_target_batch(mut self, batch: Option<usize>) -> Result<Self> {
        self.target_batch = wowflow_core::objective::check_target_batch(batch)?;
        Ok(self)
    }

    /// The target dataset (before the map).
    pub fn target(&self) -> &LabeledCloud {
        &self.target
    }
    /// The discrepancy.
    pub fn discrepancy(&self) -> &Discrepancy {
        &self.discrepancy
    }
    /// Costs and value of the last SW-MMD evaluation, in feature space (`None` for DM).
    pub fn last_output(&self) -> Option<&SwMmdOutput> {
        self.last.as_ref()
    }
}

/// Sends a cloud's rows through `map` and wraps them with the cloud's classes and weights.
fn map_cloud(
    map: &mut dyn FeatureMap,
    cloud: &LabeledCloud,
    out_dim: usize,
    keep: bool,
    rng: &mut dyn RngCore,
) -> Result<LabeledCloud> {
    let features = map.forward(cloud.points(), cloud.dim(), keep, rng)?;
    let expected = cloud.n_points() * out_dim;
    if features.len() != expected {
        return Err(shape(
            format!("output of feature map `{}`", map.name()),
            format!("{} rows × {out_dim} values", cloud.n_points()),
            format!("{} values", features.len()),
        ));
    }
    cloud.with_points(features, out_dim)
}

impl Objective for Featurized {
    fn name(&self) -> String {
        format!("{}[{}]", self.discrepancy.name(), self.map.name())
    }

    fn value_and_wow_grad(
        &mut self,
        cloud: &LabeledCloud,
        rng: &mut dyn RngCore,
        grad: &mut [f32],
    ) -> Result<f64> {
        check_inputs(cloud, Some(self.target.dim()), grad)?;
        let out_dim = self.map.out_dim(cloud.dim())?;
        let directions: Option<Directions> = match &self.discrepancy {
            Discrepancy::SwMmd {
                projections,
                sampler,
                ..
            } => Some(sampler.sample(*projections, out_dim, rng)?),
            Discrepancy::Dm => None,
        };
        let batch = match self.target_batch {
            Some(b) => class_batch(&self.target, b, rng)?,
            None => None,
        };
        let target = batch.as_ref().unwrap_or(&self.target);
        self.map.resample(rng)?;
        let target = map_cloud(self.map.as_mut(), target, out_dim, false, rng)?;
        let source = map_cloud(self.map.as_mut(), cloud, out_dim, true, rng)?;
        let mut feature_grad = vec![0.0f32; source.points().len()];
        let value = match (&self.discrepancy, directions) {
            (Discrepancy::SwMmd { kernel, engine, .. }, Some(dirs)) => {
                let out = engine.sw_mmd(&source, &target, &dirs, kernel, &mut feature_grad)?;
                let value = out.value;
                self.last = Some(out);
                value
            }
            // DM (SW-MMD always drew its directions above).
            _ => dm_value_and_grad(&source, &target, &mut feature_grad)?,
        };
        let input_grad = self.map.pullback(&feature_grad)?;
        if input_grad.len() != grad.len() {
            return Err(shape(
                format!("pullback of feature map `{}`", self.map.name()),
                format!("{} values (N × d)", grad.len()),
                format!("{} values", input_grad.len()),
            ));
        }
        grad.copy_from_slice(&input_grad);
        Ok(value)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rand::Rng;
    use rand_distr::StandardNormal;
    use wowflow_baselines::dm::DistributionMatching;
    use wowflow_core::objective::SwMmd;
    use wowflow_core::toy::gaussian_noise;

    /// A fixed linear map `y = M x` (test-only): deterministic, with a known Jacobian.
    pub(crate) struct FixedLinear {
        matrix: Vec<f32>,
        in_dim: usize,
        out_dim: usize,
        kept: Option<usize>,
    }

    impl FixedLinear {
        pub(crate) fn random(in_dim: usize, out_dim: usize, seed: u64) -> Self {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let scale = 1.0 / (in_dim as f32).sqrt();
            let matrix = (0..in_dim * out_dim)
                .map(|_| scale * rng.sample::<f32, _>(StandardNormal))
                .collect();
            Self {
                matrix,
                in_dim,
                out_dim,
                kept: None,
            }
        }
        fn apply(&self, x: &[f32]) -> Vec<f32> {
            self.matrix
                .chunks_exact(self.in_dim)
                .map(|m| m.iter().zip(x).map(|(a, b)| a * b).sum())
                .collect()
        }
    }

    impl FeatureMap for FixedLinear {
        fn name(&self) -> String {
            format!("linear({}→{})", self.in_dim, self.out_dim)
        }
        fn out_dim(&self, in_dim: usize) -> Result<usize> {
            if in_dim != self.in_dim {
                return Err(shape("linear input rows", self.in_dim, in_dim));
            }
            Ok(self.out_dim)
        }
        fn forward(
            &mut self,
            rows: &[f32],
            in_dim: usize,
            keep: bool,
            _rng: &mut dyn RngCore,
        ) -> Result<Vec<f32>> {
            self.out_dim(in_dim)?;
            let n = row_count("linear input", rows, in_dim)?;
            if keep {
                self.kept = Some(n);
            }
            Ok(rows
                .chunks_exact(in_dim)
                .flat_map(|x| self.apply(x))
                .collect())
        }
        fn pullback(&mut self, grad_out: &[f32]) -> Result<Vec<f32>> {
            let n = self.kept.ok_or_else(|| pullback_before_forward("linear"))?;
            if grad_out.len() != n * self.out_dim {
                return Err(shape("linear pullback", n * self.out_dim, grad_out.len()));
            }
            let mut grad_in = vec![0.0f32; n * self.in_dim];
            for (gx, gy) in grad_in
                .chunks_exact_mut(self.in_dim)
                .zip(grad_out.chunks_exact(self.out_dim))
            {
                for (m, &g) in self.matrix.chunks_exact(self.in_dim).zip(gy) {
                    gx.iter_mut().zip(m).for_each(|(x, &a)| *x += a * g);
                }
            }
            Ok(grad_in)
        }
    }

    fn rng(seed: u64) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(seed)
    }

    /// Mass `a_c w_ci` of every row.
    pub(crate) fn masses(cloud: &LabeledCloud) -> Vec<f64> {
        (0..cloud.n_classes())
            .flat_map(|c| {
                cloud
                    .class_range(c)
                    .map(move |i| cloud.class_weights()[c] * cloud.particle_weight(c, i))
            })
            .collect()
    }

    pub(crate) fn eval(
        obj: &mut dyn Objective,
        cloud: &LabeledCloud,
        seed: u64,
    ) -> (f64, Vec<f32>) {
        let mut g = vec![0.0f32; cloud.points().len()];
        let v = obj
            .value_and_wow_grad(cloud, &mut rng(seed), &mut g)
            .unwrap();
        (v, g)
    }

    /// Checks the returned WoW gradient times the masses against central differences of `F`
    /// along random directions `v`, every evaluation with the same seed (the same directions,
    /// batch and map). The error is measured against `Σ_k |m_k g_k v_k|`, the size of the
    /// terms of the predicted directional derivative, so a direction that happens to be
    /// nearly orthogonal to the gradient does not turn f32 rounding into a large relative
    /// error.
    pub(crate) fn check_finite_differences(
        obj: &mut dyn Objective,
        cloud: &LabeledCloud,
        h: f32,
        tol: f64,
    ) {
        let (_, g) = eval(obj, cloud, 11);
        let m = masses(cloud);
        let d = cloud.dim();
        let mut dir_rng = rng(99);
        for trial in 0..4 {
            let v: Vec<f32> = (0..g.len())
                .map(|_| dir_rng.sample::<f32, _>(StandardNormal))
                .collect();
            let terms: Vec<f64> = (0..g.len())
                .map(|k| m[k / d] * g[k] as f64 * v[k] as f64)
                .collect();
            let predicted: f64 = terms.iter().sum();
            let scale: f64 = terms.iter().map(|t| t.abs()).sum();
            let mut shifted = |sign: f32| {
                let mut c = cloud.clone();
                c.points_mut()
                    .iter_mut()
                    .zip(&v)
                    .for_each(|(x, &dv)| *x += sign * h * dv);
                eval(obj, &c, 11).0
            };
            let fd = (shifted(1.0) - shifted(-1.0)) / (2.0 * h as f64);
            assert!(
                (fd - predicted).abs() <= tol * scale,
                "{} trial {trial}: finite difference {fd} vs gradient {predicted} (scale {scale})",
                obj.name()
            );
        }
    }

    #[test]
    fn identity_sw_mmd_matches_sw_mmd_bit_for_bit() {
        let target = gaussian_noise(3, 12, 5, 1.0, 2).unwrap();
        let source = gaussian_noise(3, 4, 5, 1.0, 3)
            .unwrap()
            .with_class_weights(vec![1.0, 2.0, 3.0])
            .unwrap();
        for batch in [None, Some(5)] {
            let mut plain = SwMmd::new(target.clone(), Kernel::RIESZ, 20)
                .unwrap()
                .with_target_batch(batch)
                .unwrap();
            let mut mapped = Featurized::new(
                target.clone(),
                Box::new(Identity::default()),
                Discrepancy::sw_mmd(Kernel::RIESZ, 20),
            )
            .unwrap()
            .with_target_batch(batch)
            .unwrap();
            let (mut r1, mut r2) = (rng(5), rng(5));
            let (mut g1, mut g2) = (vec![0.0; 60], vec![0.0; 60]);
            let v1 = plain.value_and_wow_grad(&source, &mut r1, &mut g1).unwrap();
            let v2 = mapped
                .value_and_wow_grad(&source, &mut r2, &mut g2)
                .unwrap();
            assert_eq!(v1.to_bits(), v2.to_bits(), "batch {batch:?}");
            assert_eq!(g1, g2, "batch {batch:?}");
            assert_eq!(plain.last_output(), mapped.last_output());
            assert_eq!(r1.next_u64(), r2.next_u64(), "the same draws were made");
        }
    }

    #[test]
    fn identity_dm_matches_distribution_matching_bit_for_bit() {
        let target = gaussian_noise(3, 12, 5, 1.0, 2).unwrap();
        let source = gaussian_noise(3, 4, 5, 1.0, 3).unwrap();
        for batch in [None, Some(5)] {
            let mut plain = DistributionMatching::new(target.clone())
                .unwrap()
                .with_target_batch(batch)
                .unwrap();
            let mut mapped = Featurized::new(
                target.clone(),
                Box::new(Identity::default()),
                Discrepancy::Dm,
            )
            .unwrap()
            .with_target_batch(batch)
            .unwrap();
            let (v1, g1) = eval(&mut plain, &source, 8);
            let (v2, g2) = eval(&mut mapped, &source, 8);
            assert_eq!(v1.to_bits(), v2.to_bits(), "batch {batch:?}");
            assert_eq!(g1, g2, "batch {batch:?}");
            assert!(mapped.last_output().is_none());
        }
    }

    #[test]
    fn chain_composes_forward_and_pulls_back_in_reverse() {
        let (a, b) = (FixedLinear::random(5, 3, 1), FixedLinear::random(3, 2, 2));
        let x: Vec<f32> = (0..10).map(|v| v as f32 * 0.3 - 1.0).collect();
        let gy = [0.5f32, -1.0, 2.0, 0.25];
        // Expected: y = B A x and gx = Aᵀ Bᵀ gy, row by row, from the stages run by hand.
        let (mut a_ref, mut b_ref) = (FixedLinear::random(5, 3, 1), FixedLinear::random(3, 2, 2));
        let hidden = a_ref.forward(&x, 5, true, &mut rng(0)).unwrap();
        let y_expected = b_ref.forward(&hidden, 3, true, &mut rng(0)).unwrap();
        let gx_expected = a_ref.pullback(&b_ref.pullback(&gy).unwrap()).unwrap();
        assert_eq!(
            y_expected,
            x.chunks(5)
                .flat_map(|r| b.apply(&a.apply(r)))
                .collect::<Vec<_>>()
        );

        let mut chain = Chain(vec![Box::new(a), Box::new(b)]);
        assert_eq!(chain.name(), "linear(3→2)∘linear(5→3)");
        assert_eq!(chain.out_dim(5).unwrap(), 2);
        assert!(chain.out_dim(4).is_err());
        chain.resample(&mut rng(0)).unwrap();
        let y = chain.forward(&x, 5, true, &mut rng(0)).unwrap();
        assert_eq!(y, y_expected);
        assert_eq!(chain.pullback(&gy).unwrap(), gx_expected);
        assert!(matches!(
            chain.pullback(&gy[..3]).unwrap_err(),
            CoreError::Shape { .. }
        ));

        let mut empty = Chain(Vec::new());
        assert_eq!(empty.name(), "identity");
        assert_eq!(empty.forward(&x, 5, true, &mut rng(0)).unwrap(), x);
        assert_eq!(empty.pullback(&x).unwrap(), x);
    }

    #[test]
    fn identity_checks_shapes() {
        let mut id = Identity::default();
        assert!(matches!(
            id.pullback(&[1.0]).unwrap_err(),
            CoreError::InvalidParameter { .. }
        ));
        assert!(matches!(
            id.forward(&[1.0; 5], 2, true, &mut rng(0)).unwrap_err(),
            CoreError::Shape { .. }
        ));
        assert_eq!(id.out_dim(0).unwrap_err(), CoreError::ZeroDimension);
        id.forward(&[1.0; 4], 2, true, &mut rng(0)).unwrap();
        assert!(id.pullback(&[1.0; 3]).is_err());
        assert_eq!(id.pullback(&[2.0; 4]).unwrap(), vec![2.0; 4]);
    }

    /// A broken map that returns one value too many.
    struct TooLong;
    impl FeatureMap for TooLong {
        fn name(&self) -> String {
            "too-long".into()
        }
        fn out_dim(&self, in_dim: usize) -> Result<usize> {
            Ok(in_dim)
        }
        fn forward(
            &mut self,
            rows: &[f32],
            _in_dim: usize,
            _keep: bool,
            _rng: &mut dyn RngCore,
        ) -> Result<Vec<f32>> {
            Ok(rows.iter().copied().chain([0.0]).collect())
        }
        fn pullback(&mut self, grad_out: &[f32]) -> Result<Vec<f32>> {
            Ok(grad_out.to_vec())
        }
    }

    #[test]
    fn named_errors() {
        let target = gaussian_noise(2, 3, 90, 1.0, 1).unwrap();
        assert!(matches!(
            Featurized::new(
                target.clone(),
                Box::new(Identity::default()),
                Discrepancy::sw_mmd(Kernel::RIESZ, 0)
            )
            .unwrap_err(),
            CoreError::InvalidParameter { .. }
        ));
        let obj = Featurized::new(
            target.clone(),
            Box::new(Identity::default()),
            Discrepancy::Dm,
        )
        .unwrap();
        assert!(obj.with_target_batch(Some(0)).is_err());
        let mut obj = Featurized::new(target.clone(), Box::new(TooLong), Discrepancy::Dm).unwrap();
        let mut g = vec![0.0; target.points().len()];
        let err = obj
            .value_and_wow_grad(&target, &mut rng(0), &mut g)
            .unwrap_err();
        assert!(err.to_string().contains("too-long"), "{err}");
        let mut g = vec![0.0; 3];
        assert!(matches!(
            obj.value_and_wow_grad(&target, &mut rng(0), &mut g)
                .unwrap_err(),
            CoreError::Shape { .. }
        ));
    }
}
