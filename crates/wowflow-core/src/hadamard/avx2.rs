//! AVX2 transposes between point-major clouds (`8 × d`) and the element-major batch layout
//! of the transforms (`d` lanes of 8): 8 × 8 tiles moved through registers, so that reading
//! a batch costs 8 loads, 24 shuffles and 8 stores per tile instead of 64 scalar moves.

use super::{Lane, LANES};
use crate::sort::avx2::transpose;
use std::arch::x86_64::*;

/// `buf[j][p] = points[p·d + j]` for 8 rows of `d` values (`j < d`).
///
/// # Safety
/// The CPU has AVX2, `points.len() == 8·d` and `buf.len() ≥ d`.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn gather(points: &[f32], d: usize, buf: &mut [Lane]) {
    debug_assert!(points.len() == LANES * d && buf.len() >= d);
    let full = d / 8 * 8;
    let src = points.as_ptr();
    let dst = buf.as_mut_ptr() as *mut f32;
    for j in (0..full).step_by(8) {
        // SAFETY: rows p < 8 and columns j..j+8 ≤ d lie inside `points`; lanes j..j+8 ≤ d
        // inside `buf` (8 floats each, unaligned accesses).
        unsafe {
            let mut r: [__m256; 8] = std::array::from_fn(|p| _mm256_loadu_ps(src.add(p * d + j)));
            transpose(&mut r);
            for (k, v) in r.into_iter().enumerate() {
                _mm256_storeu_ps(dst.add((j + k) * LANES), v);
            }
        }
    }
    for j in full..d {
        for p in 0..LANES {
            buf[j][p] = points[p * d + j];
        }
    }
}

/// `out[p·d + j] = buf[j][p]` (or `+=` when `accumulate`) for 8 rows of `d` values.
///
/// # Safety
/// The CPU has AVX2, `out.len() == 8·d` and `buf.len() ≥ d`.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn scatter(buf: &[Lane], d: usize, out: &mut [f32], accumulate: bool) {
    debug_assert!(out.len() == LANES * d && buf.len() >= d);
    let full = d / 8 * 8;
    let src = buf.as_ptr() as *const f32;
    let dst = out.as_mut_ptr();
    for j in (0..full).step_by(8) {
        // SAFETY: the mirror image of `gather`'s accesses.
        unsafe {
            let mut r: [__m256; 8] =
                std::array::from_fn(|k| _mm256_loadu_ps(src.add((j + k) * LANES)));
            transpose(&mut r);
            for (p, v) in r.into_iter().enumerate() {
                let at = dst.add(p * d + j);
                let v = if accumulate {
                    _mm256_add_ps(_mm256_loadu_ps(at), v)
                } else {
                    v
                };
                _mm256_storeu_ps(at, v);
            }
        }
    }
    for j in full..d {
        for p in 0..LANES {
            let o = &mut out[p * d + j];
            *o = if accumulate {
                *o + buf[j][p]
            } else {
                buf[j][p]
            };
        }
    }
}
