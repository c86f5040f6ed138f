//! Differentiable Siamese Augmentation (DSA, Zhao & Bilen 2021) as a [`FeatureMap`]
//! (docs/math.md §9: the random augmentation `A` of dataset distillation).
//!
//! An image is a row of `channels × height × width` values, channel-major (MNIST: 1×28×28).
//! For fixed random parameters every operation is an affine map of the image, `y = A x + b`,
//! so its pullback is the adjoint `Aᵀ` — exact, with nothing to approximate:
//!
//! - `color`: brightness `x + (u − ½)·1`, saturation `(x − m_ch)·2u + m_ch` (`m_ch` = mean over
//!   channels per pixel; identity for one channel), contrast `(x − m)·(u + ½) + m` (`m` = mean of
//!   the image), applied in that order. Saturation and contrast are symmetric linear maps
//!   (`s I + (1 − s) M` with `M` an averaging projection), so their adjoints are themselves.
//! - the geometric ops act on every channel alike through one sparse spatial matrix with at
//!   most four taps per output pixel: `crop` (integer translation up to `0.125 × size`, zero
//!   fill), `scale` (factors in `[1/1.2, 1.2]` about the centre) and `rotate` (`±15°` about the
//!   centre) with bilinear sampling and zeros outside, `cutout` (a zeroed square of side
//!   `0.5 × size`, possibly partly outside) and `flip` (horizontal, probability ½).
//!   Forward and adjoint enumerate the *same* taps — forward gathers, adjoint scatters — so
//!   they cannot disagree.
//!
//! Mode "S" ([`AugmentMode::Single`], DSA's default) picks one op per evaluation in
//! [`FeatureMap::resample`], shared by source and target; mode "M" applies every op in order.
//! Per-image parameters are drawn row by row in `forward`. The source call (`keep = true`)
//! keeps only those few parameters per image; the pullback regenerates the taps from them.
//!
//! Geometry follows DSA's `affine_grid`/`grid_sample` with `align_corners = True` (pixel
//! centres at the corners of the normalised square): `source = centre + M (output − centre)`
//! in pixel coordinates. For square images that is DSA's map exactly; for non-square ones the
//! rotation here is a true rotation in pixel space, where DSA rotates normalised coordinates.

use crate::feature_map::{pullback_before_forward, row_count, FeatureMap};
use rand::{Rng, RngCore};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use wowflow_core::error::{invalid, shape, Result};

/// The layout of an image row: `channels × height × width` values, channel-major.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageShape {
    /// Channels (1 for greyscale, 3 for RGB).
    pub channels: usize,
    /// Rows of pixels.
    pub height: usize,
    /// Columns of pixels.
    pub width: usize,
}

impl ImageShape {
    /// MNIST-like digits: 1 × 28 × 28.
    pub const MNIST: ImageShape = ImageShape {
        channels: 1,
        height: 28,
        width: 28,
    };

    /// Values per image, `channels × height × width`.
    pub fn len(&self) -> usize {
        self.channels * self.pixels()
    }
    /// True when the shape holds no value (never for a validated shape).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Pixels per channel, `height × width`.
    pub fn pixels(&self) -> usize {
        self.height * self.width
    }

    fn validate(&self) -> Result<()> {
        if self.is_empty() {
            return Err(invalid(
                "image shape",
                format!("{self} has no pixels: every extent must be at least 1"),
            ));
        }
        Ok(())
    }
}

impl std::fmt::Display for ImageShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}×{}×{}", self.channels, self.height, self.width)
    }
}

/// One DSA operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AugmentOp {
    /// Brightness shift, then saturation and contrast factors, drawn per image
    /// ([`DsaParams::brightness`], [`DsaParams::saturation`], [`DsaParams::contrast`]).
    Color,
    /// Integer translation by up to [`DsaParams::crop`] × the size on each axis, zero fill.
    Crop,
    /// A zeroed rectangle of side [`DsaParams::cutout`] × the size at a random position
    /// (possibly partly outside the image).
    Cutout,
    /// Horizontal mirror with probability [`DsaParams::flip`].
    Flip,
    /// Rescaling about the centre by independent factors in `[1/scale, scale]` per axis
    /// ([`DsaParams::scale`]), bilinear, zeros outside.
    Scale,
    /// Rotation about the centre by an angle uniform in `±`[`DsaParams::rotate_degrees`],
    /// bilinear, zeros outside.
    Rotate,
}

impl AugmentOp {
    /// DSA's set for digits: flipping a digit changes what it is, so `flip` is left out.
    pub const DIGITS: [AugmentOp; 5] = [
        AugmentOp::Color,
        AugmentOp::Crop,
        AugmentOp::Cutout,
        AugmentOp::Scale,
        AugmentOp::Rotate,
    ];
    /// DSA's full set (`color_crop_cutout_flip_scale_rotate`), for natural images.
    pub const ALL: [AugmentOp; 6] = [
        AugmentOp::Color,
        AugmentOp::Crop,
        AugmentOp::Cutout,
        AugmentOp::Flip,
        AugmentOp::Scale,
        AugmentOp::Rotate,
    ];

    /// The DSA name (`color`, `crop`, `cutout`, `flip`, `scale`, `rotate`).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Color => "color",
            Self::Crop => "crop",
            Self::Cutout => "cutout",
            Self::Flip => "flip",
            Self::Scale => "scale",
            Self::Rotate => "rotate",
        }
    }

    /// Parses a DSA name.
    pub fn by_name(name: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|op| op.name() == name.to_ascii_lowercase())
            .ok_or_else(|| {
                invalid(
                    "augmentation",
                    format!(
                        "unknown op `{name}` (expected color, crop, cutout, flip, scale or rotate)"
                    ),
                )
            })
    }
}

/// How the ops combine at each evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AugmentMode {
    /// DSA "S": one op per evaluation, drawn uniformly, shared by source and target.
    Single,
    /// DSA "M": every op, in the configured order.
    Multiple,
}

/// The strengths of the ops; [`Default`] is DSA's `ParamDiffAug`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DsaParams {
    /// Brightness shift `(u − ½) × brightness` (DSA: 1.0).
    pub brightness: f32,
    /// Saturation factor `u × saturation` (DSA: 2.0).
    pub saturation: f32,
    /// Contrast factor `u + contrast` (DSA: 0.5).
    pub contrast: f32,
    /// Largest translation as a fraction of the size (DSA: 0.125).
    pub crop: f32,
    /// Scale factors in `[1/scale, scale]` (DSA: 1.2).
    pub scale: f32,
    /// Largest rotation angle in degrees (DSA: 15).
    pub rotate_degrees: f32,
    /// Side of the cutout square as a fraction of the size (DSA: 0.5).
    pub cutout: f32,
    /// Probability of a horizontal flip (DSA: 0.5).
    pub flip: f32,
}

impl Default for DsaParams {
    fn default() -> Self {
        Self {
            brightness: 1.0,
            saturation: 2.0,
            contrast: 0.5,
            crop: 0.125,
            scale: 1.2,
            rotate_degrees: 15.0,
            cutout: 0.5,
            flip: 0.5,
        }
    }
}

impl DsaParams {
    fn validate(&self) -> Result<()> {
        let check = |name: &str, value: f32, lo: f32, hi: Option<f32>| {
            let ok = value.is_finite() && value >= lo && hi.is_none_or(|hi| value <= hi);
            if ok {
                return Ok(());
            }
            let range = match hi {
                Some(hi) => format!("in [{lo}, {hi}]"),
                None => format!("finite and ≥ {lo}"),
            };
            Err(invalid(
                format!("augmentation {name}"),
                format!("expected a value {range}, got {value}"),
            ))
        };
        check("brightness", self.brightness, 0.0, None)?;
        check("saturation", self.saturation, 0.0, None)?;
        check("contrast", self.contrast, 0.0, None)?;
        check("crop", self.crop, 0.0, Some(1.0))?;
        check("scale", self.scale, 1.0, None)?;
        check("rotate_degrees", self.rotate_degrees, 0.0, Some(180.0))?;
        check("cutout", self.cutout, 0.0, Some(1.0))?;
        check("flip", self.flip, 0.0, Some(1.0))
    }
}

/// DSA augmentation of image rows as a random [`FeatureMap`] (see the module docs).
#[derive(Debug, Clone)]
pub struct Augment {
    shape: ImageShape,
    ops: Vec<AugmentOp>,
    mode: AugmentMode,
    params: DsaParams,
    /// This evaluation's ops (set by `resample`).
    active: Vec<AugmentOp>,
    /// What the pullback needs from the last kept forward.
    kept: Option<Kept>,
}

/// The per-image transforms of a `forward(.., keep = true, ..)`: a few numbers per image,
/// from which the pullback regenerates the taps.
#[derive(Debug, Clone)]
struct Kept {
    /// Ops applied to every row (1 in mode "S").
    per_row: usize,
    /// `rows × per_row` transforms, row-major.
    transforms: Vec<Transform>,
}

impl Augment {
    /// `ops` combined by `mode`, DSA's default strengths.
    pub fn new(shape: ImageShape, ops: Vec<AugmentOp>, mode: AugmentMode) -> Result<Self> {
        shape.validate()?;
        if ops.is_empty() {
            return Err(invalid("augmentation ops", "need at least one op"));
        }
        Ok(Self {
            shape,
            ops,
            mode,
            params: DsaParams::default(),
            active: Vec::new(),
            kept: None,
        })
    }

    /// DSA's setting for digits (MNIST, FMNIST, …): mode "S" over color, crop, cutout, scale
    /// and rotate.
    pub fn digits(shape: ImageShape) -> Result<Self> {
        Self::new(shape, AugmentOp::DIGITS.to_vec(), AugmentMode::Single)
    }

    /// Other strengths than DSA's defaults.
    pub fn with_params(mut self, params: DsaParams) -> Result<Self> {
        params.validate()?;
        self.params = params;
        Ok(self)
    }

    /// The image layout.
    pub fn shape(&self) -> ImageShape {
        self.shape
    }
    /// The configured ops.
    pub fn ops(&self) -> &[AugmentOp] {
        &self.ops
    }
    /// The ops of the current evaluation (empty before the first `resample`).
    pub fn active_ops(&self) -> &[AugmentOp] {
        &self.active
    }

    fn check_in_dim(&self, in_dim: usize) -> Result<()> {
        if in_dim != self.shape.len() {
            return Err(shape(
                "augmentation input rows",
                format!("{} = {} values", self.shape, self.shape.len()),
                format!("{in_dim} values"),
            ));
        }
        Ok(())
    }
}

impl FeatureMap for Augment {
    fn name(&self) -> String {
        let mode = match self.mode {
            AugmentMode::Single => "S",
            AugmentMode::Multiple => "M",
        };
        let ops: Vec<&str> = self.ops.iter().map(AugmentOp::name).collect();
        format!("dsa-{mode}({})", ops.join(","))
    }

    fn out_dim(&self, in_dim: usize) -> Result<usize> {
        self.check_in_dim(in_dim)?;
        Ok(in_dim)
    }

    fn resample(&mut self, rng: &mut dyn RngCore) -> Result<()> {
        self.active = match self.mode {
            AugmentMode::Single => vec![self.ops[rng.random_range(0..self.ops.len())]],
            AugmentMode::Multiple => self.ops.clone(),
        };
        Ok(())
    }

    fn forward(
        &mut self,
        rows: &[f32],
        in_dim: usize,
        keep: bool,
        rng: &mut dyn RngCore,
    ) -> Result<Vec<f32>> {
        self.check_in_dim(in_dim)?;
        let n = row_count("augmentation input", rows, in_dim)?;
        if self.active.is_empty() {
            return Err(invalid(
                "augmentation",
                "forward called before resample: no op drawn for this evaluation",
            ));
        }
        let (shape, params) = (self.shape, self.params);
        let transforms: Vec<Transform> = (0..n * self.active.len())
            .map(|k| Transform::draw(self.active[k % self.active.len()], shape, &params, rng))
            .collect();
        let mut out = vec![0.0f32; rows.len()];
        out.par_chunks_mut(in_dim)
            .zip(rows.par_chunks(in_dim))
            .zip(transforms.par_chunks(self.active.len()))
            .for_each(|((y, x), t)| forward_image(t, shape, x, y));
        if keep {
            self.kept = Some(Kept {
                per_row: self.active.len(),
                transforms,
            });
        }
        Ok(out)
    }

    fn pullback(&mut self, grad_out: &[f32]) -> Result<Vec<f32>> {
        let Kept {
            per_row,
            transforms,
        } = self
            .kept
            .as_ref()
            .ok_or_else(|| pullback_before_forward("augmentation"))?;
        let (d, per_row) = (self.shape.len(), *per_row);
        let n = transforms.len() / per_row;
        if grad_out.len() != n * d {
            return Err(shape(
                "augmentation pullback",
                format!("{n} rows × {d} values"),
                format!("{} values", grad_out.len()),
            ));
        }
        let shape = self.shape;
        let mut grad_in = vec![0.0f32; grad_out.len()];
        grad_in
            .par_chunks_mut(d)
            .zip(grad_out.par_chunks(d))
            .zip(transforms.par_chunks(per_row))
            .for_each(|((gx, gy), t)| adjoint_image(t, shape, gy, gx));
        Ok(grad_in)
    }
}

/// Applies `transforms` in order to one image.
fn forward_image(transforms: &[Transform], shape: ImageShape, x: &[f32], y: &mut [f32]) {
    let mut current = x.to_vec();
    let mut next = vec![0.0f32; x.len()];
    for t in transforms {
        t.apply(shape, &current, &mut next);
        std::mem::swap(&mut current, &mut next);
    }
    y.copy_from_slice(&current);
}

/// The adjoint of [`forward_image`]'s linear part: the adjoints in reverse order.
fn adjoint_image(transforms: &[Transform], shape: ImageShape, gy: &[f32], gx: &mut [f32]) {
    let mut current = gy.to_vec();
    let mut next = vec![0.0f32; gy.len()];
    for t in transforms.iter().rev() {
        t.adjoint(shape, &current, &mut next);
        std::mem::swap(&mut current, &mut next);
    }
    gx.copy_from_slice(&current);
}

/// One op with its per-image parameters drawn: an affine map of one image.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Transform {
    /// Brightness shift, then saturation and contrast factors.
    Color {
        brightness: f32,
        saturation: f32,
        contrast: f32,
    },
    /// A linear map acting on every channel alike.
    Spatial(Spatial),
}

/// Per-channel spatial linear maps, each enumerated as sparse taps.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Spatial {
    /// `out(i, j) = in(i − dy, j − dx)`, zero where that falls outside: a pixel moves by
    /// `(dy, dx)`.
    Shift { dy: isize, dx: isize },
    /// Zeroes rows `top..top + size_y` × columns `left..left + size_x` (clipped).
    Cutout {
        top: isize,
        left: isize,
        size_y: usize,
        size_x: usize,
    },
    /// Horizontal mirror when true, identity otherwise.
    Flip(bool),
    /// Bilinear resampling at `source = centre + M (output − centre)`, `M` row-major on
    /// `(row, column)` offsets; zero outside the image.
    Resample([f64; 4]),
}

impl Transform {
    /// Draws `op`'s per-image parameters (DSA's distributions).
    fn draw(op: AugmentOp, shape: ImageShape, p: &DsaParams, rng: &mut dyn RngCore) -> Self {
        let mut u = || rng.random::<f32>();
        match op {
            AugmentOp::Color => Self::Color {
                brightness: (u() - 0.5) * p.brightness,
                saturation: u() * p.saturation,
                contrast: u() + p.contrast,
            },
            AugmentOp::Crop => {
                let reach = |size: usize| (size as f32 * p.crop + 0.5) as i64;
                let (ry, rx) = (reach(shape.height), reach(shape.width));
                Self::Spatial(Spatial::Shift {
                    dy: rng.random_range(-ry..=ry) as isize,
                    dx: rng.random_range(-rx..=rx) as isize,
                })
            }
            AugmentOp::Cutout => {
                let side = |size: usize| (size as f32 * p.cutout + 0.5) as usize;
                let (size_y, size_x) = (side(shape.height), side(shape.width));
                // DSA: centre in 0..size + (1 − side % 2), square from centre − side / 2.
                let mut corner = |size: usize, s: usize| {
                    rng.random_range(0..size + 1 - s % 2) as isize - (s / 2) as isize
                };
                let top = corner(shape.height, size_y);
                let left = corner(shape.width, size_x);
                Self::Spatial(Spatial::Cutout {
                    top,
                    left,
                    size_y,
                    size_x,
                })
            }
            AugmentOp::Flip => Self::Spatial(Spatial::Flip(u() < p.flip)),
            AugmentOp::Scale => {
                let r = p.scale as f64;
                let mut factor = || u() as f64 * (r - 1.0 / r) + 1.0 / r;
                let (sy, sx) = (factor(), factor());
                Self::Spatial(Spatial::Resample([sy, 0.0, 0.0, sx]))
            }
            AugmentOp::Rotate => {
                let max = (p.rotate_degrees as f64).to_radians();
                Self::Spatial(Spatial::rotation((u() as f64 - 0.5) * 2.0 * max))
            }
        }
    }

    /// `y = A x + b`.
    fn apply(&self, shape: ImageShape, x: &[f32], y: &mut [f32]) {
        match *self {
            Self::Color {
                brightness,
                saturation,
                contrast,
            } => {
                y.iter_mut().zip(x).for_each(|(y, &x)| *y = x + brightness);
                saturate(shape, saturation, y);
                contrast_about_mean(contrast, y);
            }
            Self::Spatial(s) => {
                let (hw, channels) = (shape.pixels(), shape.channels);
                y.fill(0.0);
                s.for_each_tap(shape, |out, inp, w| {
                    for c in 0..channels {
                        y[c * hw + out] += w * x[c * hw + inp];
                    }
                });
            }
        }
    }

    /// `gx = Aᵀ gy` (the affine part `b` has no derivative).
    fn adjoint(&self, shape: ImageShape, gy: &[f32], gx: &mut [f32]) {
        match *self {
            Self::Color {
                saturation,
                contrast,
                ..
            } => {
                gx.copy_from_slice(gy);
                // Both maps are symmetric; the adjoint of (contrast ∘ saturation) is
                // saturation ∘ contrast.
                contrast_about_mean(contrast, gx);
                saturate(shape, saturation, gx);
            }
            Self::Spatial(s) => {
                let (hw, channels) = (shape.pixels(), shape.channels);
                gx.fill(0.0);
                s.for_each_tap(shape, |out, inp, w| {
                    for c in 0..channels {
                        gx[c * hw + inp] += w * gy[c * hw + out];
                    }
                });
            }
        }
    }
}

/// `x ← (x − m_ch)·s + m_ch` in place, `m_ch` the mean over channels at each pixel.
fn saturate(shape: ImageShape, s: f32, x: &mut [f32]) {
    let (hw, channels) = (shape.pixels(), shape.channels);
    for p in 0..hw {
        let mean = (0..channels).map(|c| x[c * hw + p]).sum::<f32>() / channels as f32;
        for c in 0..channels {
            let v = &mut x[c * hw + p];
            *v = (*v - mean) * s + mean;
        }
    }
}

/// `x ← (x − m)·k + m` in place, `m` the mean of the whole image (all channels).
fn contrast_about_mean(k: f32, x: &mut [f32]) {
    let mean = (x.iter().map(|&v| v as f64).sum::<f64>() / x.len() as f64) as f32;
    x.iter_mut().for_each(|v| *v = (*v - mean) * k + mean);
}

impl Spatial {
    /// Rotation by `angle` radians: `source = centre + R (output − centre)` on
    /// `(row, column)` offsets, DSA's `[[cos, −sin], [sin, cos]]` on `(x, y)`.
    fn rotation(angle: f64) -> Self {
        let (sin, cos) = angle.sin_cos();
        Self::Resample([cos, sin, -sin, cos])
    }

    /// Calls `tap(out_pixel, in_pixel, weight)` for every nonzero entry of this map's
    /// `hw × hw` matrix (pixel index `row × width + column`); at most four per output pixel.
    fn for_each_tap(&self, shape: ImageShape, mut tap: impl FnMut(usize, usize, f32)) {
        let (h, w) = (shape.height as isize, shape.width as isize);
        let inside = |i: isize, j: isize| (0..h).contains(&i) && (0..w).contains(&j);
        let index = |i: isize, j: isize| (i * w + j) as usize;
        for i in 0..h {
            for j in 0..w {
                let out = index(i, j);
                match *self {
                    Self::Shift { dy, dx } => {
                        if inside(i - dy, j - dx) {
                            tap(out, index(i - dy, j - dx), 1.0);
                        }
                    }
                    Self::Cutout {
                        top,
                        left,
                        size_y,
                        size_x,
                    } => {
                        let cut = (top..top + size_y as isize).contains(&i)
                            && (left..left + size_x as isize).contains(&j);
                        if !cut {
                            tap(out, out, 1.0);
                        }
                    }
                    Self::Flip(true) => tap(out, index(i, w - 1 - j), 1.0),
                    Self::Flip(false) => tap(out, out, 1.0),
                    Self::Resample(m) => {
                        let (cy, cx) = ((h - 1) as f64 / 2.0, (w - 1) as f64 / 2.0);
                        let (vy, vx) = (i as f64 - cy, j as f64 - cx);
                        let sy = cy + m[0] * vy + m[1] * vx;
                        let sx = cx + m[2] * vy + m[3] * vx;
                        bilinear_taps(sy, sx, |si, sj, weight| {
                            if inside(si, sj) {
                                tap(out, index(si, sj), weight);
                            }
                        });
                    }
                }
            }
        }
    }
}

#[cfg(test)]
impl Spatial {
    fn into_transform(self) -> Transform {
        Transform::Spatial(self)
    }
}

/// The four bilinear taps `(row, column, weight)` of a sample at `(sy, sx)`; zero-weight
/// taps are skipped (so a sample exactly on the last row or column needs no pixel beyond it).
fn bilinear_taps(sy: f64, sx: f64, mut tap: impl FnMut(isize, isize, f32)) {
    let (y0, x0) = (sy.floor(), sx.floor());
    let (fy, fx) = (sy - y0, sx - x0);
    for (di, wy) in [(0, 1.0 - fy), (1, fy)] {
        for (dj, wx) in [(0, 1.0 - fx), (1, fx)] {
            let weight = wy * wx;
            if weight > 0.0 {
                tap(y0 as isize + di, x0 as isize + dj, weight as f32);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feature_map::{Discrepancy, Featurized};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use std::f64::consts::FRAC_PI_2;
    use wowflow_baselines::dm::DistributionMatching;
    use wowflow_core::cloud::LabeledCloud;
    use wowflow_core::error::CoreError;
    use wowflow_core::kernel::Kernel;
    use wowflow_core::objective::Objective;
    use wowflow_core::{Flow, FlowConfig, FlowState, Method, Optimizer};

    // The augmentations as feature maps under the objectives of `feature_map` (this module
    // uses that one; the tests live here so no module imports one that imports it back).
    use crate::feature_map::tests::{check_finite_differences, eval, FixedLinear};
    use crate::feature_map::{Chain, FeatureMap, Frozen};
    use rand::Rng;

    /// Images `3 × 5 × 6` (several channels, so saturation is not the identity; not
    /// square, so rows and columns cannot be confused) in two classes.
    fn colour_images(per_class: usize, seed: u64) -> LabeledCloud {
        let mut r = rng(seed);
        let d = 3 * 5 * 6;
        let points = (0..2 * per_class * d)
            .map(|k| r.random::<f32>() + if k >= per_class * d { 0.3 } else { 0.0 })
            .collect();
        LabeledCloud::uniform(2, per_class, d, points).unwrap()
    }

    fn through_augmentation(mode: AugmentMode, ops: &[AugmentOp]) -> Box<dyn FeatureMap> {
        let shape = ImageShape {
            channels: 3,
            height: 5,
            width: 6,
        };
        Box::new(Chain(vec![
            Box::new(Augment::new(shape, ops.to_vec(), mode).unwrap()),
            Box::new(FixedLinear::random(90, 12, 4)),
        ]))
    }

    #[test]
    fn gradient_through_augmentation_and_linear_map_matches_finite_differences() {
        let target = colour_images(9, 1);
        let source = colour_images(4, 2)
            .with_class_weights(vec![1.0, 3.0])
            .unwrap();
        let cases: Vec<(AugmentMode, Vec<AugmentOp>)> =
            std::iter::once((AugmentMode::Multiple, AugmentOp::ALL.to_vec()))
                .chain(AugmentOp::ALL.map(|op| (AugmentMode::Single, vec![op])))
                .collect();
        for (mode, ops) in cases {
            let mut dm = Featurized::new(
                target.clone(),
                through_augmentation(mode, &ops),
                Discrepancy::Dm,
            )
            .unwrap()
            .with_target_batch(Some(5))
            .unwrap();
            // DM is quadratic and the map affine: central differences are exact but for
            // rounding, at any step.
            check_finite_differences(&mut dm, &source, 1e-2, 1e-4);
            let mut sw = Featurized::new(
                target.clone(),
                through_augmentation(mode, &ops),
                Discrepancy::sw_mmd(Kernel::RIESZ, 30),
            )
            .unwrap()
            .with_target_batch(Some(5))
            .unwrap();
            // SW-MMD has kinks where sorted orders change: a small step keeps clear of them.
            check_finite_differences(&mut sw, &source, 5e-4, 5e-3);
        }
    }

    #[test]
    fn same_seed_same_result_and_frozen_maps_ignore_the_callers_generator() {
        let target = colour_images(9, 1);
        let source = colour_images(4, 2);
        let mut obj = Featurized::new(
            target.clone(),
            through_augmentation(AugmentMode::Single, &AugmentOp::ALL),
            Discrepancy::sw_mmd(Kernel::RIESZ, 10),
        )
        .unwrap()
        .with_target_batch(Some(5))
        .unwrap();
        assert_eq!(eval(&mut obj, &source, 3), eval(&mut obj, &source, 3));
        assert_ne!(eval(&mut obj, &source, 3), eval(&mut obj, &source, 4));

        let frozen = Frozen::new(
            through_augmentation(AugmentMode::Multiple, &AugmentOp::ALL),
            7,
        );
        let mut obj = Featurized::new(target, Box::new(frozen), Discrepancy::Dm).unwrap();
        assert!(
            obj.name().starts_with("dm(linear)[frozen("),
            "{}",
            obj.name()
        );
        assert_eq!(eval(&mut obj, &source, 3), eval(&mut obj, &source, 4));
    }

    #[test]
    fn a_map_for_other_images_is_refused_by_shape() {
        let target = colour_images(3, 1);
        let wrong_shape = Box::new(Augment::digits(ImageShape::MNIST).unwrap());
        let err = Featurized::new(target.clone(), wrong_shape, Discrepancy::Dm).unwrap_err();
        assert!(err.to_string().contains("1×28×28"), "{err}");
    }

    const RGB: ImageShape = ImageShape {
        channels: 3,
        height: 5,
        width: 6,
    };
    const GREY: ImageShape = ImageShape {
        channels: 1,
        height: 8,
        width: 8,
    };

    fn rng(seed: u64) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(seed)
    }
    fn random_values(len: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
        (0..len).map(|_| rng.random::<f32>() * 2.0 - 1.0).collect()
    }
    fn dot(a: &[f32], b: &[f32]) -> f64 {
        a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum()
    }
    fn norm(a: &[f32]) -> f64 {
        dot(a, a).sqrt()
    }
    fn apply(t: Transform, shape: ImageShape, x: &[f32]) -> Vec<f32> {
        let mut y = vec![0.0; x.len()];
        t.apply(shape, x, &mut y);
        y
    }
    fn adjoint(t: Transform, shape: ImageShape, g: &[f32]) -> Vec<f32> {
        let mut out = vec![0.0; g.len()];
        t.adjoint(shape, g, &mut out);
        out
    }
    fn pixel(image: &[f32], shape: ImageShape, c: usize, i: usize, j: usize) -> f32 {
        image[c * shape.pixels() + i * shape.width + j]
    }
    fn linear_part(t: Transform, shape: ImageShape, x: &[f32]) -> Vec<f32> {
        let offset = apply(t, shape, &vec![0.0; x.len()]);
        let y = apply(t, shape, x);
        y.iter().zip(&offset).map(|(a, b)| a - b).collect()
    }

    /// `⟨A x, y⟩ = ⟨x, Aᵀ y⟩` (affine part removed) and `A` linear, for random images and
    /// random draws of every op, on a colour non-square and a grey square shape.
    #[test]
    fn every_op_is_affine_and_its_pullback_is_the_adjoint() {
        let mut r = rng(1);
        for shape in [RGB, GREY] {
            for op in AugmentOp::ALL {
                for _ in 0..25 {
                    let t = Transform::draw(op, shape, &DsaParams::default(), &mut r);
                    let (x, x2, y) = (
                        random_values(shape.len(), &mut r),
                        random_values(shape.len(), &mut r),
                        random_values(shape.len(), &mut r),
                    );
                    let ax = linear_part(t, shape, &x);
                    let lhs = dot(&ax, &y);
                    let rhs = dot(&x, &adjoint(t, shape, &y));
                    let scale = norm(&ax) * norm(&y) + norm(&x) * norm(&y) * 1e-3;
                    assert!(
                        (lhs - rhs).abs() <= 1e-5 * scale,
                        "{op:?} {t:?} on {shape}: ⟨Ax, y⟩ = {lhs}, ⟨x, Aᵀy⟩ = {rhs}"
                    );
                    let sum: Vec<f32> = x.iter().zip(&x2).map(|(a, b)| a + 2.0 * b).collect();
                    let (a_sum, ax2) = (linear_part(t, shape, &sum), linear_part(t, shape, &x2));
                    for k in 0..sum.len() {
                        assert!(
                            (a_sum[k] - ax[k] - 2.0 * ax2[k]).abs() < 1e-4,
                            "{op:?} is not affine"
                        );
                    }
                }
            }
        }
    }

    /// The same identity through the `FeatureMap` interface, several rows at once, in both
    /// modes: `⟨f(x) − f(0), y⟩ = ⟨x, pullback(y)⟩` with the same per-row draws.
    #[test]
    fn the_feature_map_pulls_back_with_the_adjoint_in_both_modes() {
        let mut r = rng(2);
        let d = RGB.len();
        for mode in [AugmentMode::Single, AugmentMode::Multiple] {
            let mut aug = Augment::new(RGB, AugmentOp::ALL.to_vec(), mode).unwrap();
            for seed in 0..12 {
                aug.resample(&mut rng(seed)).unwrap();
                let (x, y) = (random_values(4 * d, &mut r), random_values(4 * d, &mut r));
                let fx = aug.forward(&x, d, true, &mut rng(100 + seed)).unwrap();
                let f0 = aug
                    .forward(&vec![0.0; 4 * d], d, false, &mut rng(100 + seed))
                    .unwrap();
                let ax: Vec<f32> = fx.iter().zip(&f0).map(|(a, b)| a - b).collect();
                let back = aug.pullback(&y).unwrap();
                // The pullback belongs to the kept forward, whatever was drawn since.
                aug.resample(&mut rng(1000 + seed)).unwrap();
                aug.forward(&x, d, false, &mut rng(seed)).unwrap();
                assert_eq!(aug.pullback(&y).unwrap(), back);
                let (lhs, rhs) = (dot(&ax, &y), dot(&x, &back));
                assert!(
                    (lhs - rhs).abs() <= 1e-5 * (norm(&x) * norm(&y)),
                    "{mode:?} {:?}: {lhs} vs {rhs}",
                    aug.active_ops()
                );
            }
        }
    }

    #[test]
    fn crop_moves_a_bright_pixel_by_the_drawn_offset() {
        let mut image = vec![0.0f32; GREY.len()];
        image[3 * 8 + 4] = 1.0;
        let mut r = rng(3);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..200 {
            let t = Transform::draw(AugmentOp::Crop, GREY, &DsaParams::default(), &mut r);
            let Transform::Spatial(Spatial::Shift { dy, dx }) = t else {
                panic!("crop drew {t:?}");
            };
            seen.insert((dy, dx));
            let out = apply(t, GREY, &image);
            let (i, j) = ((3 + dy) as usize, (4 + dx) as usize);
            assert_eq!(pixel(&out, GREY, 0, i, j), 1.0, "shift ({dy}, {dx})");
            assert_eq!(out.iter().sum::<f32>(), 1.0);
        }
        // Reach round(8 × 0.125) = 1 in each axis: all nine offsets, nothing else.
        assert_eq!(seen.len(), 9, "{seen:?}");
        assert!(seen.iter().all(|&(dy, dx)| dy.abs() <= 1 && dx.abs() <= 1));
        // MNIST: reach round(28 × 0.125) = 4.
        let reach = (0..500)
            .map(|_| {
                match Transform::draw(
                    AugmentOp::Crop,
                    ImageShape::MNIST,
                    &DsaParams::default(),
                    &mut r,
                ) {
                    Transform::Spatial(Spatial::Shift { dy, dx }) => dy.abs().max(dx.abs()),
                    _ => unreachable!(),
                }
            })
            .max();
        assert_eq!(reach, Some(4));
        // Zero fill: a pixel pushed over the edge disappears.
        let mut corner = vec![0.0f32; GREY.len()];
        corner[0] = 1.0;
        let out = apply(
            Spatial::Shift { dy: -1, dx: 0 }.into_transform(),
            GREY,
            &corner,
        );
        assert!(out.iter().all(|&v| v == 0.0));
    }

    #[test]
    fn rotating_by_a_right_angle_permutes_pixels() {
        let mut r = rng(4);
        for size in [5, 6] {
            let shape = ImageShape {
                channels: 2,
                height: size,
                width: size,
            };
            let x = random_values(shape.len(), &mut r);
            let out = apply(Spatial::rotation(FRAC_PI_2).into_transform(), shape, &x);
            for c in 0..2 {
                for i in 0..size {
                    for j in 0..size {
                        let want = pixel(&x, shape, c, j, size - 1 - i);
                        let got = pixel(&out, shape, c, i, j);
                        assert!(
                            (got - want).abs() < 1e-5,
                            "({c}, {i}, {j}): {got} vs {want}"
                        );
                    }
                }
            }
            let still = apply(Spatial::rotation(0.0).into_transform(), shape, &x);
            assert_eq!(still, x);
        }
    }

    /// Bilinear interpolation reproduces functions `a + b y + c x + e x y` exactly: every
    /// output pixel whose sample point lies inside the image must equal the function there,
    /// computed directly from `source = centre + M (output − centre)`; sample points more
    /// than a pixel outside give 0.
    #[test]
    fn bilinear_sampling_matches_the_direct_formula() {
        let shape = ImageShape {
            channels: 1,
            height: 9,
            width: 7,
        };
        let f = |y: f64, x: f64| 1.0 + 0.3 * y - 0.2 * x + 0.05 * x * y;
        let image: Vec<f32> = (0..shape.pixels())
            .map(|p| f((p / 7) as f64, (p % 7) as f64) as f32)
            .collect();
        let (cy, cx) = (4.0, 3.0);
        let angle = 12f64.to_radians();
        let cases = [
            (
                [1.13, 0.0, 0.0, 0.87],
                Spatial::Resample([1.13, 0.0, 0.0, 0.87]),
            ),
            (
                [0.9, 0.0, 0.0, 1.2],
                Spatial::Resample([0.9, 0.0, 0.0, 1.2]),
            ),
            (
                [angle.cos(), angle.sin(), -angle.sin(), angle.cos()],
                Spatial::rotation(angle),
            ),
        ];
        for (m, spatial) in cases {
            let out = apply(spatial.into_transform(), shape, &image);
            let (mut inside, mut outside) = (0, 0);
            for i in 0..9 {
                for j in 0..7 {
                    let (vy, vx) = (i as f64 - cy, j as f64 - cx);
                    let sy = cy + m[0] * vy + m[1] * vx;
                    let sx = cx + m[2] * vy + m[3] * vx;
                    let got = pixel(&out, shape, 0, i, j) as f64;
                    if (0.0..=8.0).contains(&sy) && (0.0..=6.0).contains(&sx) {
                        inside += 1;
                        assert!((got - f(sy, sx)).abs() < 1e-5, "{m:?} ({i}, {j})");
                    } else if !(-1.0..=9.0).contains(&sy) || !(-1.0..=7.0).contains(&sx) {
                        outside += 1;
                        assert_eq!(got, 0.0, "{m:?} ({i}, {j})");
                    }
                }
            }
            assert!(inside > 20, "{m:?}: {inside} inside, {outside} outside");
        }
        // Drawn factors and angles stay in DSA's ranges.
        let mut r = rng(5);
        for _ in 0..200 {
            match Transform::draw(AugmentOp::Scale, shape, &DsaParams::default(), &mut r) {
                Transform::Spatial(Spatial::Resample([sy, 0.0, 0.0, sx])) => {
                    for s in [sy, sx] {
                        assert!((1.0 / 1.2 - 1e-6..=1.2 + 1e-6).contains(&s), "{s}");
                    }
                }
                t => panic!("scale drew {t:?}"),
            }
            match Transform::draw(AugmentOp::Rotate, shape, &DsaParams::default(), &mut r) {
                Transform::Spatial(Spatial::Resample(m)) => {
                    let degrees = m[1].atan2(m[0]).to_degrees();
                    assert!(degrees.abs() <= 15.0 + 1e-6, "{degrees}");
                    assert!((m[0] - m[3]).abs() < 1e-12 && (m[1] + m[2]).abs() < 1e-12);
                }
                t => panic!("rotate drew {t:?}"),
            }
        }
    }

    #[test]
    fn color_ops_do_what_dsa_says() {
        let mut r = rng(6);
        let x: Vec<f32> = random_values(RGB.len(), &mut r);
        let color = |brightness, saturation, contrast| Transform::Color {
            brightness,
            saturation,
            contrast,
        };
        let mean = |v: &[f32]| v.iter().map(|&a| a as f64).sum::<f64>() / v.len() as f64;
        // Brightness adds a constant.
        let y = apply(color(0.3, 1.0, 1.0), RGB, &x);
        assert!(y.iter().zip(&x).all(|(a, b)| (a - b - 0.3).abs() < 1e-6));
        // Contrast keeps the image mean and scales deviations from it.
        let y = apply(color(0.0, 1.0, 1.4), RGB, &x);
        let m = mean(&x);
        assert!((mean(&y) - m).abs() < 1e-6);
        for (a, b) in y.iter().zip(&x) {
            assert!((*a as f64 - m - 1.4 * (*b as f64 - m)).abs() < 1e-5);
        }
        // Saturation keeps each pixel's channel mean and scales deviations from it.
        let y = apply(color(0.0, 0.5, 1.0), RGB, &x);
        let hw = RGB.pixels();
        for p in 0..hw {
            let channel_mean = |v: &[f32]| (0..3).map(|c| v[c * hw + p]).sum::<f32>() / 3.0;
            let (mx, my) = (channel_mean(&x), channel_mean(&y));
            assert!((mx - my).abs() < 1e-6);
            for c in 0..3 {
                let want = mx + 0.5 * (x[c * hw + p] - mx);
                assert!((y[c * hw + p] - want).abs() < 1e-6);
            }
        }
        // …and is the identity for one channel.
        let grey = random_values(GREY.len(), &mut r);
        let y = apply(color(0.0, 1.7, 1.0), GREY, &grey);
        assert!(y.iter().zip(&grey).all(|(a, b)| (a - b).abs() < 1e-6));
        // Drawn parameters in DSA's ranges.
        for _ in 0..200 {
            match Transform::draw(AugmentOp::Color, RGB, &DsaParams::default(), &mut r) {
                Transform::Color {
                    brightness,
                    saturation,
                    contrast,
                } => {
                    assert!((-0.5..=0.5).contains(&brightness));
                    assert!((0.0..=2.0).contains(&saturation));
                    assert!((0.5..=1.5).contains(&contrast));
                }
                t => panic!("color drew {t:?}"),
            }
        }
    }

    #[test]
    fn cutout_zeroes_the_expected_square() {
        let ones = vec![1.0f32; GREY.len()];
        let zeros = |t: Transform| apply(t, GREY, &ones).iter().filter(|&&v| v == 0.0).count();
        let cut = |top, left| {
            Spatial::Cutout {
                top,
                left,
                size_y: 4,
                size_x: 4,
            }
            .into_transform()
        };
        assert_eq!(zeros(cut(2, 2)), 16);
        assert_eq!(zeros(cut(-3, 5)), 3); // one row × three columns inside
        assert_eq!(zeros(cut(8, 0)), 0);
        let mut r = rng(7);
        let mut full = 0;
        for _ in 0..300 {
            let t = Transform::draw(AugmentOp::Cutout, GREY, &DsaParams::default(), &mut r);
            let Transform::Spatial(Spatial::Cutout {
                top,
                left,
                size_y,
                size_x,
            }) = t
            else {
                panic!("cutout drew {t:?}");
            };
            // Side round(8 × 0.5) = 4; centre in 0..=8, so the corner in -2..=6.
            assert_eq!((size_y, size_x), (4, 4));
            assert!((-2..=6).contains(&top) && (-2..=6).contains(&left));
            let overlap = |start: isize| ((start + 4).min(8) - start.max(0)).max(0) as usize;
            assert_eq!(zeros(t), overlap(top) * overlap(left), "{t:?}");
            full += usize::from(zeros(t) == 16);
        }
        assert!(full > 0);
    }

    #[test]
    fn flip_mirrors_columns_half_the_time() {
        let mut r = rng(8);
        let x = random_values(RGB.len(), &mut r);
        let out = apply(Spatial::Flip(true).into_transform(), RGB, &x);
        for c in 0..3 {
            for i in 0..5 {
                for j in 0..6 {
                    assert_eq!(pixel(&out, RGB, c, i, j), pixel(&x, RGB, c, i, 5 - j));
                }
            }
        }
        assert_eq!(apply(Spatial::Flip(false).into_transform(), RGB, &x), x);
        let flips = (0..1000)
            .filter(|_| {
                Transform::draw(AugmentOp::Flip, RGB, &DsaParams::default(), &mut r)
                    == Spatial::Flip(true).into_transform()
            })
            .count();
        assert!((400..600).contains(&flips), "{flips}");
    }

    #[test]
    fn single_mode_draws_one_op_per_evaluation_multiple_mode_all() {
        let mut aug = Augment::digits(GREY).unwrap();
        assert_eq!(aug.name(), "dsa-S(color,crop,cutout,scale,rotate)");
        let mut counts = std::collections::HashMap::new();
        let mut r = rng(9);
        for _ in 0..500 {
            aug.resample(&mut r).unwrap();
            assert_eq!(aug.active_ops().len(), 1);
            *counts.entry(aug.active_ops()[0]).or_insert(0) += 1;
        }
        assert_eq!(counts.len(), 5, "{counts:?}");
        assert!(
            counts.values().all(|&n| (60..140).contains(&n)),
            "{counts:?}"
        );
        assert!(!counts.contains_key(&AugmentOp::Flip));
        let mut all = Augment::new(GREY, AugmentOp::ALL.to_vec(), AugmentMode::Multiple).unwrap();
        all.resample(&mut r).unwrap();
        assert_eq!(all.active_ops(), AugmentOp::ALL);
        // Mode M applies every op, in order, with per-row draws in that order.
        let x = random_values(3 * GREY.len(), &mut r);
        let ops = vec![AugmentOp::Crop, AugmentOp::Color, AugmentOp::Rotate];
        let mut m = Augment::new(GREY, ops.clone(), AugmentMode::Multiple).unwrap();
        m.resample(&mut r).unwrap();
        let got = m.forward(&x, GREY.len(), false, &mut rng(10)).unwrap();
        let mut draws = rng(10);
        let mut want = Vec::new();
        for row in x.chunks(GREY.len()) {
            let mut image = row.to_vec();
            for &op in &ops {
                let t = Transform::draw(op, GREY, &DsaParams::default(), &mut draws);
                image = apply(t, GREY, &image);
            }
            want.extend(image);
        }
        assert_eq!(got, want);
    }

    #[test]
    fn named_errors() {
        let mut aug = Augment::digits(ImageShape::MNIST).unwrap();
        let err = aug.out_dim(783).unwrap_err();
        assert!(err.to_string().contains("1×28×28 = 784 values"), "{err}");
        let rows = vec![0.0; 784];
        assert!(matches!(
            aug.forward(&rows, 784, true, &mut rng(0)).unwrap_err(),
            CoreError::InvalidParameter { .. }
        ));
        assert!(matches!(
            aug.pullback(&rows).unwrap_err(),
            CoreError::InvalidParameter { .. }
        ));
        aug.resample(&mut rng(0)).unwrap();
        assert!(matches!(
            aug.forward(&rows[..700], 784, true, &mut rng(0))
                .unwrap_err(),
            CoreError::Shape { .. }
        ));
        aug.forward(&rows, 784, true, &mut rng(0)).unwrap();
        assert!(matches!(
            aug.pullback(&rows[..10]).unwrap_err(),
            CoreError::Shape { .. }
        ));
        assert!(Augment::new(GREY, vec![], AugmentMode::Single).is_err());
        let empty = ImageShape {
            channels: 1,
            height: 0,
            width: 3,
        };
        assert!(Augment::digits(empty).is_err());
        for params in [
            DsaParams {
                crop: 2.0,
                ..DsaParams::default()
            },
            DsaParams {
                scale: 0.5,
                ..DsaParams::default()
            },
            DsaParams {
                brightness: f32::NAN,
                ..DsaParams::default()
            },
        ] {
            let err = Augment::digits(GREY)
                .unwrap()
                .with_params(params)
                .unwrap_err();
            assert!(err.to_string().contains("augmentation"), "{err}");
        }
        assert_eq!(AugmentOp::by_name("Rotate").unwrap(), AugmentOp::Rotate);
        assert!(AugmentOp::by_name("blur").is_err());
    }

    /// Two classes of 8×8 "digits" (a horizontal and a vertical bar with noise).
    fn bars(per_class: usize, seed: u64) -> LabeledCloud {
        let mut r = rng(seed);
        let mut points = Vec::new();
        for class in 0..2 {
            for _ in 0..per_class {
                let at = r.random_range(2..6);
                for i in 0..8 {
                    for j in 0..8 {
                        let on = if class == 0 { i == at } else { j == at };
                        points.push(f32::from(u8::from(on)) + 0.05 * r.random::<f32>());
                    }
                }
            }
        }
        LabeledCloud::uniform(2, per_class, 64, points).unwrap()
    }

    /// Flows noise towards the bars through the augmentation and returns the losses and the
    /// plain (un-augmented) DM between the flowed set and the target before and after.
    fn flow(discrepancy: Discrepancy, tau: f64, steps: usize) -> (Vec<f64>, f64, f64) {
        let target = bars(20, 1);
        let mut r = rng(2);
        let source =
            LabeledCloud::uniform(2, 4, 64, (0..512).map(|_| r.random()).collect()).unwrap();
        let plain_dm = |cloud: &LabeledCloud| {
            let mut g = vec![0.0; cloud.points().len()];
            DistributionMatching::new(target.clone())
                .unwrap()
                .value_and_wow_grad(cloud, &mut rng(0), &mut g)
                .unwrap()
        };
        let before = plain_dm(&source);
        let mut objective = Featurized::new(
            target.clone(),
            Box::new(Augment::digits(GREY).unwrap()),
            discrepancy,
        )
        .unwrap()
        .with_target_batch(Some(10))
        .unwrap();
        let mut state = FlowState::new(source);
        Flow {
            objective: &mut objective,
            optimizer: Optimizer::new(Method::Gd, tau).unwrap(),
            config: FlowConfig {
                steps,
                seed: 3,
                clip: None,
                temperature: None,
            },
        }
        .run(&mut state, &mut [])
        .unwrap();
        (state.losses, before, plain_dm(&state.cloud))
    }

    fn mean(v: &[f64]) -> f64 {
        v.iter().sum::<f64>() / v.len() as f64
    }

    #[test]
    fn flows_through_the_augmentation_decrease_f_on_average() {
        // (discrepancy, step size, how far the mean F of the last ten steps must fall below
        // that of the first ten)
        for (discrepancy, tau, ratio) in [
            (Discrepancy::Dm, 0.25, 0.5),
            (Discrepancy::sw_mmd(Kernel::RIESZ, 50), 0.5, 0.75),
        ] {
            let name = discrepancy.name();
            let (losses, before, after) = flow(discrepancy, tau, 80);
            let (first, last) = (mean(&losses[..10]), mean(&losses[70..]));
            eprintln!("{name}: F {first} → {last}; plain DM {before} → {after}");
            assert!(last < ratio * first, "{name}: F {first} → {last}");
            assert!(after < 0.5 * before, "{name}: plain DM {before} → {after}");
        }
    }
}
