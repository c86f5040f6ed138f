//! A decoded split of a labeled image dataset, in the storage its file uses.
//!
//! Pixels stay in their native type (`u8` for idx, CIFAR and SVHN; `f32` for USPS, whose
//! values have more than 256 levels) so a 60 000-image split costs 47 MB, not 188 MB;
//! they are converted to `f32` in `[0, 1]` only for the images a sample actually uses.

use crate::error::{DataError, Result};

/// Pixel storage: `U8` holds `0..=255` (scaled by 1/255), `F32` holds values in `[0, 1]`.
#[derive(Debug, Clone, PartialEq)]
pub enum Pixels {
    /// Raw bytes `0..=255` (idx, CIFAR-10, SVHN); value `b` stands for `b / 255`.
    U8(Vec<u8>),
    /// Values already in `[0, 1]` (USPS).
    F32(Vec<f32>),
}

impl Pixels {
    /// Number of stored values.
    pub fn len(&self) -> usize {
        match self {
            Pixels::U8(v) => v.len(),
            Pixels::F32(v) => v.len(),
        }
    }
    /// True when no value is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `N` images of `channels × height × width` (channel-major inside each image, as CIFAR
/// stores them and PyTorch expects), with one label in `0..n_classes` per image.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageSet {
    /// Rows per image.
    pub height: usize,
    /// Columns per image.
    pub width: usize,
    /// Channels per image: 1 for grayscale, 3 for RGB (CIFAR-10, SVHN).
    pub channels: usize,
    /// All images back to back, `len() × channels × height × width` values.
    pub pixels: Pixels,
    /// One class label per image, in `0..n_classes`.
    pub labels: Vec<u8>,
    /// Number of classes of the dataset (10 for every registered dataset), whether or not
    /// each occurs in this split.
    pub n_classes: usize,
}

impl ImageSet {
    /// Checks sizes and labels; `file` names the source in errors.
    pub fn new(
        (channels, height, width): (usize, usize, usize),
        pixels: Pixels,
        labels: Vec<u8>,
        n_classes: usize,
        file: &str,
    ) -> Result<Self> {
        let per = channels * height * width;
        if per == 0 || labels.len().checked_mul(per) != Some(pixels.len()) {
            return Err(DataError::shape(
                file,
                format!(
                    "{} pixel values for {} labels of {channels}×{height}×{width} images (expected {})",
                    pixels.len(),
                    labels.len(),
                    labels.len().saturating_mul(per)
                ),
            ));
        }
        check_labels(&labels, n_classes, file)?;
        Ok(Self {
            height,
            width,
            channels,
            pixels,
            labels,
            n_classes,
        })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    /// True when the split holds no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    /// Values per image (`channels × height × width`).
    pub fn image_len(&self) -> usize {
        self.channels * self.height * self.width
    }
    /// Image `i` as `f32` in `[0, 1]`, appended to `out`.
    pub fn push_image(&self, i: usize, out: &mut Vec<f32>) {
        let p = self.image_len();
        match &self.pixels {
            Pixels::U8(v) => out.extend(v[i * p..(i + 1) * p].iter().map(|&b| b as f32 / 255.0)),
            Pixels::F32(v) => out.extend_from_slice(&v[i * p..(i + 1) * p]),
        }
    }
    /// Image `i` as `f32` in `[0, 1]`.
    pub fn image(&self, i: usize) -> Vec<f32> {
        let mut out = Vec::with_capacity(self.image_len());
        self.push_image(i, &mut out);
        out
    }
    /// Number of images of each class.
    pub fn label_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.n_classes];
        for &l in &self.labels {
            counts[l as usize] += 1;
        }
        counts
    }
    /// Indices of the images of each class, in file order.
    pub fn class_indices(&self) -> Vec<Vec<usize>> {
        let mut out = vec![Vec::new(); self.n_classes];
        for (i, &l) in self.labels.iter().enumerate() {
            out[l as usize].push(i);
        }
        out
    }
    /// A new set holding the given images, in the given order.
    pub fn subset(&self, indices: &[usize]) -> ImageSet {
        let p = self.image_len();
        let pixels = match &self.pixels {
            Pixels::U8(v) => Pixels::U8(
                indices
                    .iter()
                    .flat_map(|&i| v[i * p..(i + 1) * p].iter().copied())
                    .collect(),
            ),
            Pixels::F32(v) => Pixels::F32(
                indices
                    .iter()
                    .flat_map(|&i| v[i * p..(i + 1) * p].iter().copied())
                    .collect(),
            ),
        };
        ImageSet {
            height: self.height,
            width: self.width,
            channels: self.channels,
            pixels,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            n_classes: self.n_classes,
        }
    }
}

/// Every label must lie in `0..n_classes`.
pub(crate) fn check_labels(labels: &[u8], n_classes: usize, file: &str) -> Result<()> {
    match labels.iter().position(|&l| l as usize >= n_classes) {
        None => Ok(()),
        Some(index) => Err(DataError::LabelOutOfRange {
            file: file.to_string(),
            index,
            label: labels[index] as i64,
            expected: format!("0..={}", n_classes.saturating_sub(1)),
        }),
    }
}
