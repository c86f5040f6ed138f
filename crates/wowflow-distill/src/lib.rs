//! # wowflow-distill
//!
//! Dataset distillation with wowflow (docs/math.md §9): a few synthetic images per class are
//! flowed so that, seen through a random differentiable [`FeatureMap`] redrawn every step,
//! they match the real class — [`Featurized`] wraps the discrepancy (SW-MMD, or distribution
//! matching) and pulls its gradient back through the map. The maps here are the DSA
//! augmentations ([`Augment`]) and their compositions ([`Chain`]); random network embeddings
//! implement [`FeatureMap`] in `wowflow-nn`.

#![warn(missing_docs)]

pub mod augment;
pub mod feature_map;

pub use augment::{Augment, AugmentMode, AugmentOp, DsaParams, ImageShape};
pub use feature_map::{Chain, Discrepancy, FeatureMap, Featurized, Frozen, Identity};
