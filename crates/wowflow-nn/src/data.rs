//! Labeled images in memory, and their conversion to burn tensors.
//!
//! Values are `f32` (pixels in `[0, 1]` for the image datasets), channel-major inside each
//! image (`channels × height × width`, PyTorch's layout), labels in `0..n_classes`.

use crate::error::{invalid, shape, Result};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use wowflow_core::LabeledCloud;

/// `N` labeled images of one shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Images {
    values: Vec<f32>,
    labels: Vec<usize>,
    /// `(channels, height, width)`.
    shape: (usize, usize, usize),
    n_classes: usize,
}

impl Images {
    /// Checks that `values` holds `labels.len()` images of `shape` and every label is below
    /// `n_classes`.
    pub fn new(
        values: Vec<f32>,
        labels: Vec<usize>,
        shape_chw: (usize, usize, usize),
        n_classes: usize,
    ) -> Result<Self> {
        let (c, h, w) = shape_chw;
        let per = c * h * w;
        if per == 0 {
            return Err(invalid("image shape", format!("{c}×{h}×{w} has no pixel")));
        }
        if values.len() != labels.len() * per {
            return Err(shape(
                format!("pixel values of {} images of {c}×{h}×{w}", labels.len()),
                labels.len() * per,
                values.len(),
            ));
        }
        if let Some(i) = labels.iter().position(|&l| l >= n_classes) {
            return Err(invalid(
                "labels",
                format!(
                    "label {} of image {i} is not below the class count {n_classes}",
                    labels[i]
                ),
            ));
        }
        Ok(Self {
            values,
            labels,
            shape: shape_chw,
            n_classes,
        })
    }

    /// The particles of `cloud` as images of `shape_chw`, labelled by class *index*
    /// (`0..C`, not the cloud's class ids) unless `labels` gives one label per class.
    pub fn from_cloud(
        cloud: &LabeledCloud,
        shape_chw: (usize, usize, usize),
        labels: Option<&[usize]>,
        n_classes: usize,
    ) -> Result<Self> {
        let (c, h, w) = shape_chw;
        if cloud.dim() != c * h * w {
            return Err(shape(
                format!("feature dimension for {c}×{h}×{w} images"),
                c * h * w,
                cloud.dim(),
            ));
        }
        if let Some(l) = labels {
            if l.len() != cloud.n_classes() {
                return Err(shape("labels per class", cloud.n_classes(), l.len()));
            }
        }
        let row_labels = (0..cloud.n_classes())
            .flat_map(|k| {
                let label = labels.map_or(k, |l| l[k]);
                std::iter::repeat_n(label, cloud.class_len(k))
            })
            .collect();
        Self::new(cloud.points().to_vec(), row_labels, shape_chw, n_classes)
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    /// True when there is no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    /// `(channels, height, width)`.
    pub fn shape(&self) -> (usize, usize, usize) {
        self.shape
    }
    /// Values per image.
    pub fn image_len(&self) -> usize {
        self.shape.0 * self.shape.1 * self.shape.2
    }
    /// Number of classes labels may take.
    pub fn n_classes(&self) -> usize {
        self.n_classes
    }
    /// The labels, one per image.
    pub fn labels(&self) -> &[usize] {
        &self.labels
    }
    /// All values, image after image.
    pub fn values(&self) -> &[f32] {
        &self.values
    }

    /// The images `indices` as a `[n, channels, height, width]` tensor.
    pub fn batch_images<B: Backend>(&self, indices: &[usize], device: &B::Device) -> Tensor<B, 4> {
        let p = self.image_len();
        let mut data = Vec::with_capacity(indices.len() * p);
        for &i in indices {
            data.extend_from_slice(&self.values[i * p..(i + 1) * p]);
        }
        let (c, h, w) = self.shape;
        Tensor::from_data(TensorData::new(data, [indices.len(), c, h, w]), device)
    }

    /// The labels of `indices` as an integer tensor `[n]`.
    pub fn batch_labels<B: Backend>(
        &self,
        indices: &[usize],
        device: &B::Device,
    ) -> Tensor<B, 1, Int> {
        let data: Vec<i32> = indices.iter().map(|&i| self.labels[i] as i32).collect();
        Tensor::from_data(TensorData::new(data, [indices.len()]), device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_and_labels_are_checked() {
        let e = Images::new(vec![0.0; 7], vec![0, 1], (1, 2, 2), 2).unwrap_err();
        assert!(e.to_string().contains("expected 8, got 7"), "{e}");
        let e = Images::new(vec![0.0; 8], vec![0, 2], (1, 2, 2), 2).unwrap_err();
        assert!(e.to_string().contains("label 2 of image 1"), "{e}");
        let cloud = LabeledCloud::uniform(2, 3, 4, (0..24).map(|v| v as f32).collect()).unwrap();
        let im = Images::from_cloud(&cloud, (1, 2, 2), Some(&[1, 0]), 2).unwrap();
        assert_eq!(im.labels(), &[1, 1, 1, 0, 0, 0]);
        let e = Images::from_cloud(&cloud, (1, 3, 3), None, 2).unwrap_err();
        assert!(e.to_string().contains("1×3×3"), "{e}");
    }
}
