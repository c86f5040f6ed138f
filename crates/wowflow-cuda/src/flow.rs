//! [`DeviceFlow`]: the whole SW-MMD flow step on the GPU, with nothing but a few costs
//! crossing PCIe.
//!
//! [`crate::CudaEngine`] implements the core's `Engine` trait, so every objective can use
//! it, but that interface takes host clouds: each call uploads both clouds and downloads
//! the gradient (≈ 47 MB at the domain-adaptation size, more than the step's arithmetic
//! takes on an H100). Here the particles, the target, the optimiser state and the
//! directions live on the device:
//!
//! 1. directions: Philox4x32-10 normals (counter = (entry, step)) and a row normalisation;
//! 2. target mini-batch: rows chosen on the host from the step's ChaCha8 stream (the core
//!    flow's [`step_rng`]), a few KB of indices, gathered on the device;
//! 3. the engine's stages (projections, sorts, pair costs, coefficients, derivatives,
//!    back-projection) on resident buffers;
//! 4. the gradient's sum of squares, a guard (that sum, or NaN when a pair cost is not
//!    finite) and the optimiser update (GD, heavy ball or Adam, as `wowflow_core::Optimizer`,
//!    clipping included), skipped on the device when the guard is not finite, so a diverged
//!    step never lands;
//! 5. one download of the pair costs and the squared norm (a few hundred bytes), from
//!    which the host forms `F` exactly as the CPU engine does.
//!
//! Step `k` draws its randomness from `(seed, k)` only, so a run resumed from a state of
//! step `k` continues bit-identically, as on the CPU. The directions are a different
//! stream than the CPU flow's (Philox on the device rather than ChaCha8 on the host), so a
//! device flow and a CPU flow with the same seed are two draws of the same stochastic
//! scheme, not the same numbers; [`host_directions`] reproduces the device's directions on
//! the host for tests.

use crate::engine::{assemble, launch, Buf, Inner, Side};
use crate::error::{CudaError, Result};
use cudarc::driver::{LaunchConfig, PushKernelArg};
use rand::seq::index::sample;
use std::time::Instant;
use wowflow_core::flow::{step_rng, StepOutput, Stepper};
use wowflow_core::{
    ClassLayout, CoreError, Directions, FlowState, LabeledCloud, Method, OptimizerState,
    SwMmdFlowSettings,
};

/// Blocks of the deterministic sum of squares (any fixed count; the partial sums are then
/// reduced in a fixed order).
const SUMSQ_BLOCKS: usize = 1024;

/// The result of one device step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeviceStep {
    /// `F` at the start of the step.
    pub loss: f64,
    /// Root-mean-square of the WoW gradient.
    pub grad_norm: f64,
}

/// A flow whose state lives on the GPU. Create it from a host [`FlowState`], run steps,
/// and copy the state back with [`DeviceFlow::download`] when the host needs it
/// (snapshots, checkpoints, the end).
pub struct DeviceFlow {
    inner: Inner,
    device: String,
    settings: SwMmdFlowSettings,
    d: usize,
    /// Class structure and weights of the source (points not used: dim 1 stand-in).
    source_shape: ClassLayout,
    /// Class structure and weights of the full target (dim 1 stand-in).
    target_shape: ClassLayout,
    /// Whether a step draws a mini-batch (some class is longer than the batch).
    batching: bool,
    /// The full target when batching (`inner.b.points` then holds the batch).
    target_full: Buf<f32>,
    rows: Buf<i32>,
    first: Buf<f32>,
    second: Buf<f32>,
    sumsq: Buf<f64>,
    /// What the host reads back after a step: the guard, then the `p` pair costs.
    readback: Buf<f64>,
    step: usize,
    updates: u64,
}

impl std::fmt::Debug for DeviceFlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceFlow")
            .field("device", &self.device)
            .field("settings", &self.settings)
            .field("step", &self.step)
            .finish()
    }
}

fn launch_1d(n: usize) -> LaunchConfig {
    launch((n.div_ceil(256).max(1) as u32, 1), 256, 0)
}

impl DeviceFlow {
    /// Uploads `state` (particles, optimiser moments, step) and `target` to CUDA device
    /// `device` (an ordinal).
    pub fn new(
        state: &FlowState,
        target: &LabeledCloud,
        settings: SwMmdFlowSettings,
        device: usize,
    ) -> Result<Self> {
        let source = &state.cloud;
        source.validate()?;
        target.validate()?;
        settings.kernel.validate()?;
        let d = source.dim();
        if target.dim() != d {
            return Err(CoreError::DimensionMismatch {
                what: "target".into(),
                expected: d,
                got: target.dim(),
            }
            .into());
        }
        if settings.projections == 0 {
            return Err(wowflow_core::error::invalid(
                "projections",
                "need at least one direction (L ≥ 1)",
            )
            .into());
        }
        if settings.sampler != wowflow_core::DirectionSampler::Gaussian {
            return Err(CudaError::Unsupported(
                "the device-resident flow draws Gaussian directions on the GPU; other \
                 direction samplers (orthogonal, structured, fixed) run through the host \
                 objective"
                    .into(),
            ));
        }
        if settings.target_batch == Some(0) {
            return Err(wowflow_core::error::invalid("target batch", "must be at least 1").into());
        }
        let l = settings.projections;
        for (what, n) in [("source", source.n_points()), ("target", target.n_points())] {
            if l > 65_535 || n.max(l * n).max(n * d).max(l * d) >= i32::MAX as usize {
                return Err(CudaError::Unsupported(format!(
                    "{what} of {n} particles × {l} directions × d = {d} (at most 65535 \
                     directions, and the kernels index with 32-bit integers)"
                )));
            }
        }
        let (mut inner, device) = Inner::create(device)?;
        let stream = inner.stream.clone();
        inner.upload_points(Side::A, source.points())?;
        let batching = settings
            .target_batch
            .is_some_and(|b| (0..target.n_classes()).any(|c| target.class_len(c) > b));
        let mut target_full = Buf::new();
        if batching {
            let dst = target_full.ensure(&stream, target.points().len())?;
            stream.memcpy_htod(
                target.points(),
                &mut dst.slice_mut(0..target.points().len()),
            )?;
        } else {
            inner.upload_points(Side::B, target.points())?;
        }
        let len = source.points().len();
        let mut first = Buf::new();
        let mut second = Buf::new();
        for (buf, host) in [
            (&mut first, &state.optimizer.first),
            (&mut second, &state.optimizer.second),
        ] {
            let dst = buf.ensure(&stream, len)?; // zeroed
            if host.len() == len {
                stream.memcpy_htod(host, &mut dst.slice_mut(0..len))?;
            } else if !host.is_empty() {
                return Err(wowflow_core::error::shape("optimizer state", len, host.len()).into());
            }
        }
        let mut sumsq = Buf::new();
        sumsq.ensure(&stream, SUMSQ_BLOCKS)?;
        let mut readback = Buf::new();
        readback.ensure(&stream, 1)?;
        Ok(Self {
            inner,
            device,
            d,
            source_shape: source.layout().clone(),
            target_shape: target.layout().clone(),
            batching,
            target_full,
            rows: Buf::new(),
            first,
            second,
            sumsq,
            readback,
            step: state.step,
            updates: state.optimizer.t,
            settings,
        })
    }

    /// The device's name, ordinal and compute capability.
    pub fn device(&self) -> &str {
        &self.device
    }

    /// Steps completed.
    pub fn steps_done(&self) -> usize {
        self.step
    }

    /// Lets cuBLAS use TF32 tensor cores for the three GEMMs (see
    /// [`crate::CudaEngine::set_tf32`]).
    pub fn set_tf32(&mut self, on: bool) -> Result<()> {
        self.inner.set_tf32(on)
    }

    /// One step of the explicit scheme: `F` and its gradient at the current particles, then
    /// the optimiser update. On a non-finite `F` or gradient it returns
    /// [`CoreError::Diverged`] and the device state stays at the last good step.
    pub fn step(&mut self) -> Result<DeviceStep> {
        self.step_with(true, &mut |_| Ok(()))
    }

    /// [`DeviceFlow::step`] with the device drained after each stage and the stage's wall
    /// time recorded (milliseconds), to see where a step's time goes. The stages run one
    /// after the other (the clouds are not sliced concurrently) and each synchronisation
    /// adds a few microseconds, so the stages sum to more than a step.
    pub fn step_profiled(&mut self) -> Result<(DeviceStep, Vec<(&'static str, f64)>)> {
        let stream = self.inner.stream.clone();
        stream.synchronize()?;
        let mut times = Vec::new();
        let mut last = Instant::now();
        let out = self.step_with(false, &mut |stage| {
            stream.synchronize()?;
            let now = Instant::now();
            times.push((stage, (now - last).as_secs_f64() * 1e3));
            last = now;
            Ok(())
        })?;
        Ok((out, times))
    }

    fn step_with(
        &mut self,
        concurrent: bool,
        mark: &mut dyn FnMut(&'static str) -> Result<()>,
    ) -> Result<DeviceStep> {
        let s = &self.settings;
        let (l, d, step) = (s.projections, self.d, self.step);
        let stream = self.inner.stream.clone();

        // 1. Directions.
        let total = l * d;
        self.inner.dirs.ensure(&stream, total)?;
        let pd = self.inner.dirs.ptr(&stream);
        let (t32, seed, st) = (total as i32, s.seed, step as u64);
        // SAFETY: dirs holds L·d floats; the kernel writes entries < total only.
        unsafe {
            stream
                .launch_builder(&self.inner.f.gaussian_directions)
                .arg(&pd)
                .arg(&t32)
                .arg(&seed)
                .arg(&st)
                .launch(launch_1d(total.div_ceil(4)))
        }?;
        let d32 = d as i32;
        let cfg = launch((l as u32, 1), 256, 0);
        // SAFETY: L rows of d floats.
        unsafe {
            stream
                .launch_builder(&self.inner.f.normalize_rows)
                .arg(&pd)
                .arg(&d32)
                .launch(cfg)
        }?;
        mark("directions")?;

        // 2. Target mini-batch.
        let batch_shape;
        let target = if self.batching {
            let b = s.target_batch.expect("batching implies a batch size");
            let mut rng = step_rng(s.seed, step);
            let t = &self.target_shape;
            let picks: Vec<Vec<usize>> = (0..t.n_classes())
                .map(|c| {
                    let n = t.class_len(c);
                    if n <= b {
                        (0..n).collect()
                    } else {
                        sample(&mut rng, n, b).into_vec()
                    }
                })
                .collect();
            let rows: Vec<i32> = picks
                .iter()
                .enumerate()
                .flat_map(|(c, p)| p.iter().map(move |&i| (t.offsets()[c] + i) as i32))
                .collect();
            batch_shape = t.select(&picks)?;
            let dst = self.rows.ensure(&stream, rows.len())?;
            stream.memcpy_htod(&rows, &mut dst.slice_mut(0..rows.len()))?;
            self.inner.b.points.ensure(&stream, rows.len() * d)?;
            let (src, pr, dstp) = (
                self.target_full.ptr(&stream),
                self.rows.ptr(&stream),
                self.inner.b.points.ptr(&stream),
            );
            let cfg = launch((rows.len() as u32, 1), 256, 0);
            // SAFETY: every row index is < the target's N; dst holds rows·d floats.
            unsafe {
                stream
                    .launch_builder(&self.inner.f.gather_rows)
                    .arg(&src)
                    .arg(&pr)
                    .arg(&dstp)
                    .arg(&d32)
                    .launch(cfg)
            }?;
            mark("target batch")?;
            &batch_shape
        } else {
            &self.target_shape
        };

        // 3. The engine's stages on resident buffers.
        let (pairs, p) = self.inner.gradient_marked(
            &self.source_shape,
            target,
            l,
            d,
            &s.kernel,
            if concurrent { None } else { Some(&mut *mark) },
        )?;

        // 4. Gradient norm, then the guarded update.
        let len = self.source_shape.n_points() * d;
        self.readback.ensure(&stream, 1 + p)?;
        let (pg, pq, pt) = (
            self.inner.grad.ptr(&stream),
            self.sumsq.ptr(&stream),
            self.readback.ptr(&stream),
        );
        let n32 = len as i32;
        let cfg = launch((SUMSQ_BLOCKS as u32, 1), 256, 0);
        // SAFETY: grad holds len floats, sumsq SUMSQ_BLOCKS doubles.
        unsafe {
            stream
                .launch_builder(&self.inner.f.sum_squares)
                .arg(&pg)
                .arg(&n32)
                .arg(&pq)
                .launch(cfg)
        }?;
        let (nq, pc, np) = (SUMSQ_BLOCKS as i32, self.inner.costs_ptr(), p as i32);
        let one = launch((1, 1), 256, 0);
        // SAFETY: SUMSQ_BLOCKS partial sums, p costs, one output double.
        unsafe {
            stream
                .launch_builder(&self.inner.f.step_guard)
                .arg(&pq)
                .arg(&nq)
                .arg(&pc)
                .arg(&np)
                .arg(&pt)
                .launch(one)
        }?;
        mark("gradient norm")?;
        let (method, mom, b1, b2, eps, c1, c2) = match s.optimizer.method {
            Method::Gd => (0i32, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0),
            Method::Momentum { m } => (1, m as f32, 0.0, 0.0, 0.0, 1.0, 1.0),
            Method::Adam { beta1, beta2, eps } => {
                let t = self.updates as i32 + 1;
                (
                    2,
                    0.0,
                    beta1 as f32,
                    beta2 as f32,
                    eps as f32,
                    (1.0 - beta1.powi(t)) as f32,
                    (1.0 - beta2.powi(t)) as f32,
                )
            }
        };
        let lr = s.optimizer.lr_at(self.updates) as f32;
        let (clip, lo, hi) = match s.clip {
            Some((lo, hi)) => (1i32, lo, hi),
            None => (0, 0.0f32, 0.0f32),
        };
        let (px, p1, p2) = (
            self.inner.a.points.ptr(&stream),
            self.first.ptr(&stream),
            self.second.ptr(&stream),
        );
        // SAFETY: x, g, m1, m2 hold len floats; the guard is one double.
        unsafe {
            stream
                .launch_builder(&self.inner.f.optimizer_update)
                .arg(&px)
                .arg(&pg)
                .arg(&p1)
                .arg(&p2)
                .arg(&n32)
                .arg(&pt)
                .arg(&method)
                .arg(&lr)
                .arg(&mom)
                .arg(&b1)
                .arg(&b2)
                .arg(&eps)
                .arg(&c1)
                .arg(&c2)
                .arg(&clip)
                .arg(&lo)
                .arg(&hi)
                .launch(launch_1d(len))
        }?;
        mark("update")?;

        // 5. The few numbers the host needs, in one copy (one wait for the device).
        let mut back = vec![0.0f64; 1 + p];
        stream.memcpy_dtoh(&self.readback.get().slice(0..1 + p), &mut back[..])?;
        mark("download")?;
        // The guard: the squared norm, or NaN when a cost is not finite.
        let sq = back[0];
        let loss = assemble(&self.source_shape, target, &s.kernel, &pairs, &back[1..]).value;
        let diverged = |reason: String| CoreError::Diverged {
            step,
            last_good_step: step,
            reason,
        };
        if !sq.is_finite() {
            let reason = if loss.is_finite() {
                format!("the gradient's squared norm is {sq}")
            } else {
                format!("the objective is {loss}")
            };
            return Err(diverged(reason).into());
        }
        if !loss.is_finite() {
            // The gradient was finite, so the update landed: the device is one step on.
            self.step += 1;
            self.updates += 1;
            return Err(CoreError::Diverged {
                step,
                last_good_step: step + 1,
                reason: format!("the objective is {loss}"),
            }
            .into());
        }
        self.step += 1;
        self.updates += 1;
        Ok(DeviceStep {
            loss,
            grad_norm: (sq / len.max(1) as f64).sqrt(),
        })
    }

    /// Copies the particles and the optimiser state into `state` and sets its step count
    /// (losses and gradient norms are the caller's: [`wowflow_core::drive`] keeps them).
    pub fn download(&self, state: &mut FlowState) -> Result<()> {
        let stream = &self.inner.stream;
        let len = self.source_shape.n_points() * self.d;
        if state.cloud.points().len() != len {
            return Err(
                wowflow_core::error::shape("flow state", len, state.cloud.points().len()).into(),
            );
        }
        stream.memcpy_dtoh(
            &self.inner.a.points.get().slice(0..len),
            state.cloud.points_mut(),
        )?;
        let moments = match self.settings.optimizer.method {
            Method::Gd => 0,
            Method::Momentum { .. } => 1,
            Method::Adam { .. } => 2,
        };
        let mut opt = OptimizerState {
            first: Vec::new(),
            second: Vec::new(),
            t: self.updates,
        };
        if moments >= 1 {
            opt.first = vec![0.0; len];
            stream.memcpy_dtoh(&self.first.get().slice(0..len), &mut opt.first[..])?;
        }
        if moments >= 2 {
            opt.second = vec![0.0; len];
            stream.memcpy_dtoh(&self.second.get().slice(0..len), &mut opt.second[..])?;
        }
        stream.synchronize()?;
        state.optimizer = opt;
        state.step = self.step;
        Ok(())
    }
}

/// The device flow in the one flow loop, [`wowflow_core::drive`]: the particles stay on the
/// GPU and are copied to the host only when an observer reads them
/// ([`Observer::needs_state`](wowflow_core::Observer::needs_state)), when the run stops, at
/// the end, and on divergence (the last good step).
impl Stepper for DeviceFlow {
    fn step(&mut self, _state: &mut FlowState) -> wowflow_core::Result<StepOutput> {
        let out = DeviceFlow::step(self)?;
        Ok(StepOutput {
            loss: out.loss,
            grad_norm: out.grad_norm,
        })
    }

    fn sync(&mut self, state: &mut FlowState) -> wowflow_core::Result<()> {
        Ok(self.download(state)?)
    }
}

/// One Philox4x32-10 block, bit-identical to the device's `philox4x32`.
pub fn philox4x32(mut c: [u32; 4], mut k: [u32; 2]) -> [u32; 4] {
    for _ in 0..10 {
        let p0 = 0xD251_1F53u64 * c[0] as u64;
        let p1 = 0xCD9E_8D57u64 * c[2] as u64;
        let (hi0, lo0) = ((p0 >> 32) as u32, p0 as u32);
        let (hi1, lo1) = ((p1 >> 32) as u32, p1 as u32);
        c = [hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0];
        k[0] = k[0].wrapping_add(0x9E37_79B9);
        k[1] = k[1].wrapping_add(0xBB67_AE85);
    }
    c
}

/// The standard normals the device's `gaussian_directions` writes at `step` under `seed`
/// (`total` entries, before the row normalisation), computed on the host with the same
/// Philox blocks and Box–Muller transforms. The device's double `log`/`sin`/`cos` may
/// differ from the host's in the last bits, which rarely survives the rounding to f32.
pub fn host_normals(seed: u64, step: u64, total: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; total];
    let key = [seed as u32, (seed >> 32) as u32];
    let inv = 1.0 / 4_294_967_296.0f64;
    // The device computes sin/cos(π · 2u) with sincospi; π · (2u) rounded here differs by
    // an ulp of a double at most.
    let pi = std::f64::consts::PI;
    for (t, chunk) in out.chunks_mut(4).enumerate() {
        let r = philox4x32(
            [t as u32, step as u32, (step >> 32) as u32, 0x574F_5746],
            key,
        );
        let u = |x: u32| (x as f64 + 0.5) * inv;
        let (r0, a0) = ((-2.0 * u(r[0]).ln()).sqrt(), pi * (2.0 * u(r[1])));
        let (r1, a1) = ((-2.0 * u(r[2]).ln()).sqrt(), pi * (2.0 * u(r[3])));
        let z = [r0 * a0.cos(), r0 * a0.sin(), r1 * a1.cos(), r1 * a1.sin()];
        for (o, v) in chunk.iter_mut().zip(z) {
            *o = v as f32;
        }
    }
    out
}

/// The directions a [`DeviceFlow`] draws at `step` under `seed` (see [`host_normals`]).
pub fn host_directions(seed: u64, step: u64, count: usize, dim: usize) -> Result<Directions> {
    Ok(Directions::from_rows(
        count,
        dim,
        host_normals(seed, step, count * dim),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn philox_matches_the_published_known_answers() {
        // Known-answer vectors of Random123 (kat_vectors, philox4x32_10).
        assert_eq!(
            philox4x32([0, 0, 0, 0], [0, 0]),
            [0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8]
        );
        assert_eq!(
            philox4x32([u32::MAX; 4], [u32::MAX; 2]),
            [0x408f_276d, 0x41c8_3b0e, 0xa20b_c7c6, 0x6d54_51fd]
        );
        assert_eq!(
            philox4x32(
                [0x243f_6a88, 0x85a3_08d3, 0x1319_8a2e, 0x0370_7344],
                [0xa409_3822, 0x299f_31d0]
            ),
            [0xd16c_fe09, 0x94fd_cceb, 0x5001_e420, 0x2412_6ea1]
        );
    }

    #[test]
    fn host_normals_are_standard_normal_and_keyed_by_seed_and_step() {
        let v: Vec<f64> = host_normals(7, 4, 200_000)
            .iter()
            .map(|&x| x as f64)
            .collect();
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
        let kurt = v.iter().map(|x| (x - mean).powi(4)).sum::<f64>() / n / (var * var);
        // Standard errors at n = 2e5: mean 0.0022, variance 0.0032, kurtosis 0.011.
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.015, "variance {var}");
        assert!((kurt - 3.0).abs() < 0.06, "kurtosis {kurt}");
        // Each quarter of the Philox block feeds its own entry: no two agree.
        assert!(v.windows(2).all(|w| w[0] != w[1]));
        assert_ne!(host_normals(7, 3, 16), host_normals(7, 4, 16));
        assert_ne!(host_normals(7, 3, 16), host_normals(8, 3, 16));
        assert_eq!(host_normals(7, 3, 16), host_normals(7, 3, 16));
        let dirs = host_directions(7, 3, 64, 50).unwrap();
        for l in 0..64 {
            let sq: f64 = dirs.row(l).iter().map(|&x| x as f64 * x as f64).sum();
            assert!((sq - 1.0).abs() < 1e-5, "row {l} has squared norm {sq}");
        }
    }
}
