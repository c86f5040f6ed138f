//! Class-balanced, seeded sampling of image splits into [`LabeledCloud`]s `(C, n, d)`.
//!
//! - **Seeds**: every draw uses `ChaCha8Rng::seed_from_u64(seed)`; the same seed and split
//!   give the same images on every platform.
//! - **Disjoint draws**: [`draw_disjoint`] shuffles each class once and cuts consecutive
//!   blocks, so a k-shot pool and an evaluation set drawn together never share an image.
//! - **Values**: pixels in `[0, 1]`; optional `(x − mean) / std` normalisation.
//! - **Resizing**: bilinear with half-pixel centres (`align_corners = False`, the convention
//!   of PyTorch's `F.interpolate` and torchvision's `Resize` on tensors), used to bring USPS
//!   16×16 to MNIST's 28×28 so the two can be compared in one space. For upsampling no
//!   antialiasing filter is involved, so this matches torchvision's result.
//! - **Missing splits**: [`pool_and_eval`] uses train as pool and test for evaluation; if the
//!   train files are missing (KMNIST in the shared data), it falls back to splitting the test
//!   split: a seeded half of each class as pool, the other half for evaluation, and says so.

use crate::error::{DataError, Result};
use crate::images::ImageSet;
use crate::load::{load_split, Split};
use crate::registry::DataDirs;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use wowflow_core::LabeledCloud;

/// What to do to each image before it becomes a point.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Transform {
    /// Resize to `(height, width)` (bilinear, half-pixel centres).
    pub resize: Option<(usize, usize)>,
    /// Subtract `mean`, divide by `std` (after resizing).
    pub normalize: Option<Normalize>,
}

/// Per-value normalisation `(x − mean) / std`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Normalize {
    /// Subtracted from every value (pixels are in `[0, 1]` before this).
    pub mean: f32,
    /// Divides every value; must be finite and > 0, or sampling fails with
    /// [`DataError::Invalid`].
    pub std: f32,
}

impl Transform {
    /// The MNIST-space transform: resize to 28×28 if the images are another size.
    pub fn mnist_size(set: &ImageSet) -> Self {
        Self {
            resize: ((set.height, set.width) != (28, 28)).then_some((28, 28)),
            normalize: None,
        }
    }
    /// Output dimension for images of `set`.
    pub fn dim(&self, set: &ImageSet) -> usize {
        let (h, w) = self.resize.unwrap_or((set.height, set.width));
        set.channels * h * w
    }
}

/// Draws `per_class[k]` images of every class for each draw `k`, all disjoint.
/// Returns `draws[k][c]`: indices into `set` of draw `k`, class `c`.
pub fn draw_disjoint(
    set: &ImageSet,
    per_class: &[usize],
    seed: u64,
) -> Result<Vec<Vec<Vec<usize>>>> {
    let need: usize = per_class.iter().sum();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut draws = vec![Vec::with_capacity(set.n_classes); per_class.len()];
    for (c, mut idx) in set.class_indices().into_iter().enumerate() {
        if idx.len() < need {
            return Err(DataError::Invalid {
                what: format!("class {c}"),
                problem: format!(
                    "has {} images, {need} requested ({per_class:?} per class)",
                    idx.len()
                ),
            });
        }
        idx.shuffle(&mut rng);
        let mut start = 0;
        for (k, &n) in per_class.iter().enumerate() {
            draws[k].push(idx[start..start + n].to_vec());
            start += n;
        }
    }
    Ok(draws)
}

/// Builds a cloud from the chosen images: class `c` gets `indices[c]` (class ids `0..C`).
/// Classes may differ in size; equal sizes give the uniform `(C, n, d)` layout.
pub fn to_cloud(set: &ImageSet, indices: &[Vec<usize>], t: &Transform) -> Result<LabeledCloud> {
    if let Some(Normalize { std, .. }) = t.normalize {
        if !(std.is_finite() && std > 0.0) {
            return Err(DataError::Invalid {
                what: "normalisation".to_string(),
                problem: format!("std = {std} must be finite and > 0"),
            });
        }
    }
    let d = t.dim(set);
    let total: usize = indices.iter().map(Vec::len).sum();
    let mut points = Vec::with_capacity(total * d);
    let mut offsets = vec![0];
    let mut img = Vec::with_capacity(set.image_len());
    for class in indices {
        for &i in class {
            if i >= set.len() {
                return Err(DataError::Invalid {
                    what: "image index".to_string(),
                    problem: format!("{i} is not below the split size {}", set.len()),
                });
            }
            img.clear();
            set.push_image(i, &mut img);
            let start = points.len();
            match t.resize {
                Some((h, w)) => resize_bilinear(
                    &img,
                    set.channels,
                    (set.height, set.width),
                    (h, w),
                    &mut points,
                ),
                None => points.extend_from_slice(&img),
            }
            if let Some(Normalize { mean, std }) = t.normalize {
                points[start..]
                    .iter_mut()
                    .for_each(|v| *v = (*v - mean) / std);
            }
        }
        offsets.push(points.len() / d);
    }
    let ids = (0..indices.len() as i64).collect();
    LabeledCloud::from_parts(points, d, offsets, ids).map_err(|source| DataError::Cloud {
        file: "sampled images".to_string(),
        source,
    })
}

/// Convenience: `per_class` seeded images of every class as a uniform `(C, n, d)` cloud.
pub fn sample_cloud(
    set: &ImageSet,
    per_class: usize,
    seed: u64,
    t: &Transform,
) -> Result<LabeledCloud> {
    let draws = draw_disjoint(set, &[per_class], seed)?;
    to_cloud(set, &draws[0], t)
}

/// Bilinear resize of a `channels × h × w` image (half-pixel centres, edge clamping),
/// appending `channels × oh × ow` values to `out`.
pub fn resize_bilinear(
    img: &[f32],
    channels: usize,
    (h, w): (usize, usize),
    (oh, ow): (usize, usize),
    out: &mut Vec<f32>,
) {
    // Source coordinate of output pixel centre x: (x + 0.5) · in/out − 0.5, clamped at 0.
    let taps = |n_in: usize, n_out: usize| -> Vec<(usize, usize, f32)> {
        (0..n_out)
            .map(|x| {
                let s = ((x as f32 + 0.5) * n_in as f32 / n_out as f32 - 0.5).max(0.0);
                let x0 = (s.floor() as usize).min(n_in - 1);
                let x1 = (x0 + 1).min(n_in - 1);
                (x0, x1, s - x0 as f32)
            })
            .collect()
    };
    let (ty, tx) = (taps(h, oh), taps(w, ow));
    for c in 0..channels {
        let plane = &img[c * h * w..(c + 1) * h * w];
        for &(y0, y1, fy) in &ty {
            for &(x0, x1, fx) in &tx {
                let top = plane[y0 * w + x0] * (1.0 - fx) + plane[y0 * w + x1] * fx;
                let bottom = plane[y1 * w + x0] * (1.0 - fx) + plane[y1 * w + x1] * fx;
                out.push(top * (1.0 - fy) + bottom * fy);
            }
        }
    }
}

/// A k-shot pool and an evaluation set for one dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolEval {
    /// The images k-shot draws are taken from: the train split, or in the fallback the
    /// seeded half of each test class.
    pub pool: ImageSet,
    /// The images accuracy is measured on: the test split, or in the fallback the other
    /// half of each test class (never overlapping `pool`).
    pub eval: ImageSet,
    /// Set when a fallback split was used, saying which; experiments print it.
    pub note: Option<String>,
}

/// Train as pool, test as evaluation set; if the train split's files are missing, the
/// documented fallback: each class of the test split shuffled with `seed`, the first half
/// (rounded down) as pool and the rest for evaluation.
pub fn pool_and_eval(dirs: &DataDirs, name: &str, seed: u64) -> Result<PoolEval> {
    let test = load_split(dirs, name, Split::Test)?;
    match load_split(dirs, name, Split::Train) {
        Ok(train) => Ok(PoolEval {
            pool: train,
            eval: test,
            note: None,
        }),
        Err(DataError::NotFound { what, .. }) => {
            let (pool, eval) = halves(&test, seed);
            let note = format!(
                "{what} is missing: using the fallback split of the {name} test set \
                 (seed {seed}: {} images per class as pool, the other {} per class for evaluation)",
                describe(&pool),
                describe(&eval)
            );
            Ok(PoolEval {
                pool,
                eval,
                note: Some(note),
            })
        }
        Err(e) => Err(e),
    }
}

fn describe(set: &ImageSet) -> String {
    let c = set.label_counts();
    match (c.iter().min(), c.iter().max()) {
        (Some(a), Some(b)) if a == b => a.to_string(),
        (Some(a), Some(b)) => format!("{a}-{b}"),
        _ => "0".to_string(),
    }
}

/// Splits every class of `set` in two seeded halves.
pub fn halves(set: &ImageSet, seed: u64) -> (ImageSet, ImageSet) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for mut idx in set.class_indices() {
        idx.shuffle(&mut rng);
        let half = idx.len() / 2;
        a.extend_from_slice(&idx[..half]);
        b.extend_from_slice(&idx[half..]);
    }
    (set.subset(&a), set.subset(&b))
}

#[cfg(test)]
#[allow(clippy::needless_range_loop)]
mod tests {
    use super::*;
    use crate::images::Pixels;

    fn toy(n_per: usize) -> ImageSet {
        let n = 3 * n_per;
        let labels: Vec<u8> = (0..n).map(|i| (i % 3) as u8).collect();
        let pixels: Vec<u8> = (0..n * 4).map(|v| (v / 4) as u8).collect();
        ImageSet::new((1, 2, 2), Pixels::U8(pixels), labels, 3, "toy").unwrap()
    }

    #[test]
    fn disjoint_balanced_and_reproducible() {
        let set = toy(10);
        let d = draw_disjoint(&set, &[4, 6], 7).unwrap();
        for c in 0..3 {
            let (a, b) = (&d[0][c], &d[1][c]);
            assert_eq!((a.len(), b.len()), (4, 6));
            assert!(a.iter().all(|i| !b.contains(i)));
            assert!(a.iter().chain(b).all(|&i| set.labels[i] as usize == c));
        }
        assert_eq!(d, draw_disjoint(&set, &[4, 6], 7).unwrap());
        assert_ne!(d, draw_disjoint(&set, &[4, 6], 8).unwrap());
        let e = draw_disjoint(&set, &[6, 6], 0).unwrap_err();
        assert!(e.to_string().contains("has 10 images, 12 requested"), "{e}");
    }

    #[test]
    fn cloud_values_and_normalisation() {
        let set = toy(2);
        let cloud = sample_cloud(&set, 2, 1, &Transform::default()).unwrap();
        assert!(cloud.is_uniform());
        assert_eq!(
            (cloud.n_classes(), cloud.class_len(0), cloud.dim()),
            (3, 2, 4)
        );
        // Every value of an image equals its index / 255 and images of class 1 have index ≡ 1 mod 3.
        for v in cloud.class_points(1) {
            assert_eq!((v * 255.0).round() as usize % 3, 1);
        }
        let t = Transform {
            resize: None,
            normalize: Some(Normalize {
                mean: 0.5,
                std: 0.25,
            }),
        };
        let norm = sample_cloud(&set, 2, 1, &t).unwrap();
        for (a, b) in cloud.points().iter().zip(norm.points()) {
            assert!((b - (a - 0.5) / 0.25).abs() < 1e-6);
        }
        let bad = Transform {
            normalize: Some(Normalize {
                mean: 0.0,
                std: 0.0,
            }),
            ..t
        };
        assert!(sample_cloud(&set, 2, 1, &bad).is_err());
    }

    #[test]
    fn bilinear_resize_matches_half_pixel_convention() {
        // A 2×2 image upsampled to 4×4: corners replicate, inner values interpolate with
        // weights 1/4, 3/4 (what torch.nn.functional.interpolate(..., 'bilinear',
        // align_corners=False) returns for [[0, 1], [2, 3]]).
        let mut out = Vec::new();
        resize_bilinear(&[0.0, 1.0, 2.0, 3.0], 1, (2, 2), (4, 4), &mut out);
        let expect = [
            0.0, 0.25, 0.75, 1.0, //
            0.5, 0.75, 1.25, 1.5, //
            1.5, 1.75, 2.25, 2.5, //
            2.0, 2.25, 2.75, 3.0,
        ];
        for (a, b) in out.iter().zip(expect) {
            assert!((a - b).abs() < 1e-6, "{out:?}");
        }
        // Constant images stay constant at any size.
        let mut out = Vec::new();
        resize_bilinear(&[0.3; 256], 1, (16, 16), (28, 28), &mut out);
        assert_eq!(out.len(), 784);
        assert!(out.iter().all(|v| (v - 0.3).abs() < 1e-6));
    }

    #[test]
    fn halves_are_disjoint_and_cover() {
        let set = toy(5);
        let (a, b) = halves(&set, 3);
        assert_eq!(a.label_counts(), vec![2, 2, 2]);
        assert_eq!(b.label_counts(), vec![3, 3, 3]);
        let mut all: Vec<Vec<f32>> = (0..a.len())
            .map(|i| a.image(i))
            .chain((0..b.len()).map(|i| b.image(i)))
            .collect();
        all.sort_by(|x, y| x[0].total_cmp(&y[0]));
        all.dedup();
        assert_eq!(all.len(), 15);
    }
}
