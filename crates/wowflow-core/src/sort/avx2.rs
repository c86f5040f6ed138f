//! AVX2 bitonic sort of `f32` keys, optionally carrying a `u32` payload (the particle
//! index) through every compare-exchange.
//!
//! Layout: blocks of 64 keys are sorted in eight registers (a 19-comparator network down
//! the columns, an 8×8 transpose, then in-register bitonic merges), and the sorted runs are
//! merged pairwise with the "flip" form of the bitonic merger, which needs no reversed
//! runs in memory. Every compare-exchange keeps a key with its own payload, and ties go to
//! the lower position, so the payload is always a permutation of the input's.
//!
//! All functions require AVX2; the only entry point, [`bitonic`], is `unsafe` for that reason
//! and its caller checks the CPU once (`SegmentSorter::new`).

use std::arch::x86_64::*;

/// `m ? b : a` per lane, opaque to LLVM so that a select stored back to its own source
/// address is not turned into `vmaskmovps` (microcoded and very slow on AMD Zen).
#[inline]
#[target_feature(enable = "avx2")]
fn blendv(a: __m256, b: __m256, m: __m256) -> __m256 {
    let r: __m256;
    // SAFETY: register-only instruction, available with AVX.
    unsafe {
        core::arch::asm!(
            "vblendvps {r}, {a}, {b}, {m}",
            r = lateout(ymm_reg) r,
            a = in(ymm_reg) a,
            b = in(ymm_reg) b,
            m = in(ymm_reg) m,
            options(pure, nomem, nostack),
        )
    };
    r
}

#[derive(Clone, Copy)]
/// Eight keys and, bit-cast to `f32` lanes, their payloads (untouched when `PAY` is off).
struct V {
    k: __m256,
    p: __m256,
}

/// Compare-exchange lane by lane: `a` keeps the smaller key, `b` the larger. Without a
/// payload this is min/max, which may turn a `-0.0` into `+0.0` (equal keys, so no
/// distance or rank computed from the sorted values changes).
#[inline]
#[target_feature(enable = "avx2")]
fn ce<const PAY: bool>(a: &mut V, b: &mut V) {
    if PAY {
        let m = _mm256_cmp_ps::<_CMP_LE_OQ>(a.k, b.k);
        let lk = blendv(b.k, a.k, m);
        let hk = blendv(a.k, b.k, m);
        let lp = blendv(b.p, a.p, m);
        let hp = blendv(a.p, b.p, m);
        *a = V { k: lk, p: lp };
        *b = V { k: hk, p: hp };
    } else {
        let lk = _mm256_min_ps(a.k, b.k);
        let hk = _mm256_max_ps(a.k, b.k);
        a.k = lk;
        b.k = hk;
    }
}

/// Lane reversal, so that the flip step compares element k with element 7 − k.
#[inline]
#[target_feature(enable = "avx2")]
fn rev<const PAY: bool>(v: V) -> V {
    let idx = _mm256_setr_epi32(7, 6, 5, 4, 3, 2, 1, 0);
    V {
        k: _mm256_permutevar8x32_ps(v.k, idx),
        p: if PAY {
            _mm256_permutevar8x32_ps(v.p, idx)
        } else {
            v.p
        },
    }
}

/// One in-register half-cleaner step: lanes whose bit `UPPER` is set take the max.
#[inline]
#[target_feature(enable = "avx2")]
fn intra_step<const PAY: bool, const UPPER: i32>(v: V, partner: V) -> V {
    if PAY {
        let le = _mm256_cmp_ps::<_CMP_LE_OQ>(v.k, partner.k);
        let ge = _mm256_cmp_ps::<_CMP_GE_OQ>(v.k, partner.k);
        let take = _mm256_blend_ps::<UPPER>(le, ge);
        V {
            k: blendv(partner.k, v.k, take),
            p: blendv(partner.p, v.p, take),
        }
    } else {
        let mn = _mm256_min_ps(v.k, partner.k);
        let mx = _mm256_max_ps(v.k, partner.k);
        V {
            k: _mm256_blend_ps::<UPPER>(mn, mx),
            p: v.p,
        }
    }
}

/// Half-cleaners at distances 4, 2, 1 inside one register of a bitonic sequence.
#[inline]
#[target_feature(enable = "avx2")]
fn intra<const PAY: bool>(v: V) -> V {
    let sw4 = |x: __m256| _mm256_permute2f128_ps::<0x01>(x, x);
    let p4 = V {
        k: sw4(v.k),
        p: if PAY { sw4(v.p) } else { v.p },
    };
    let v = intra_step::<PAY, 0xF0>(v, p4);
    let sw2 = |x: __m256| _mm256_permute_ps::<0b01_00_11_10>(x);
    let p2 = V {
        k: sw2(v.k),
        p: if PAY { sw2(v.p) } else { v.p },
    };
    let v = intra_step::<PAY, 0xCC>(v, p2);
    let sw1 = |x: __m256| _mm256_permute_ps::<0b10_11_00_01>(x);
    let p1 = V {
        k: sw1(v.k),
        p: if PAY { sw1(v.p) } else { v.p },
    };
    intra_step::<PAY, 0xAA>(v, p1)
}

/// 8×8 transpose (row `k` → register `k` holds column `k`): after the column network,
/// register i holds sorted column i. Also moves 8 × 8 tiles between point-major clouds and
/// the Walsh–Hadamard transforms' lane layout (`hadamard/avx2.rs`).
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn transpose(r: &mut [__m256; 8]) {
    let t0 = _mm256_unpacklo_ps(r[0], r[1]);
    let t1 = _mm256_unpackhi_ps(r[0], r[1]);
    let t2 = _mm256_unpacklo_ps(r[2], r[3]);
    let t3 = _mm256_unpackhi_ps(r[2], r[3]);
    let t4 = _mm256_unpacklo_ps(r[4], r[5]);
    let t5 = _mm256_unpackhi_ps(r[4], r[5]);
    let t6 = _mm256_unpacklo_ps(r[6], r[7]);
    let t7 = _mm256_unpackhi_ps(r[6], r[7]);
    let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
    let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
    let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
    let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
    let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
    let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
    let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
    let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
    r[0] = _mm256_permute2f128_ps::<0x20>(u0, u4);
    r[1] = _mm256_permute2f128_ps::<0x20>(u1, u5);
    r[2] = _mm256_permute2f128_ps::<0x20>(u2, u6);
    r[3] = _mm256_permute2f128_ps::<0x20>(u3, u7);
    r[4] = _mm256_permute2f128_ps::<0x31>(u0, u4);
    r[5] = _mm256_permute2f128_ps::<0x31>(u1, u5);
    r[6] = _mm256_permute2f128_ps::<0x31>(u2, u6);
    r[7] = _mm256_permute2f128_ps::<0x31>(u3, u7);
}

#[inline]
#[target_feature(enable = "avx2")]
fn ce_idx<const PAY: bool>(r: &mut [V; 8], i: usize, j: usize) {
    let (mut a, mut b) = (r[i], r[j]);
    ce::<PAY>(&mut a, &mut b);
    r[i] = a;
    r[j] = b;
}

/// Bitonic half-cleaners inside 64 elements: at register distances `FROM`, `FROM/2`, …, 1,
/// then inside each register.
#[inline]
#[target_feature(enable = "avx2")]
fn tail<const PAY: bool, const FROM: usize>(r: &mut [V; 8]) {
    let mut dist = FROM;
    while dist >= 1 {
        for base in (0..8).step_by(2 * dist) {
            for k in 0..dist {
                ce_idx::<PAY>(r, base + k, base + dist + k);
            }
        }
        dist /= 2;
    }
    for v in r.iter_mut() {
        *v = intra::<PAY>(*v);
    }
}

/// Flip step that starts merging adjacent sorted runs of `RUN` registers.
#[inline]
#[target_feature(enable = "avx2")]
fn flip<const PAY: bool, const RUN: usize>(r: &mut [V; 8]) {
    for g in (0..8).step_by(2 * RUN) {
        for k in 0..RUN {
            let mut a = r[g + k];
            let mut b = rev::<PAY>(r[g + 2 * RUN - 1 - k]);
            ce::<PAY>(&mut a, &mut b);
            r[g + k] = a;
            r[g + 2 * RUN - 1 - k] = rev::<PAY>(b);
        }
    }
}

/// Eight keys from `k[i..]` and, with `PAY`, their payloads from `p[i..]` (without a
/// payload `p` is not touched and may be empty).
///
/// # Safety
/// Eight `f32` at `k + i` (and with `PAY` eight `u32` at `p + i`) are readable.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn load<const PAY: bool>(k: *const f32, p: *const u32, i: usize) -> V {
    V {
        k: _mm256_loadu_ps(k.add(i)),
        p: if PAY {
            _mm256_castsi256_ps(_mm256_loadu_si256(p.add(i) as *const __m256i))
        } else {
            _mm256_setzero_ps()
        },
    }
}

/// Writes what [`load`] read.
///
/// # Safety
/// Eight `f32` at `k + i` (and with `PAY` eight `u32` at `p + i`) are writable.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn store<const PAY: bool>(v: V, k: *mut f32, p: *mut u32, i: usize) {
    _mm256_storeu_ps(k.add(i), v.k);
    if PAY {
        _mm256_storeu_si256(p.add(i) as *mut __m256i, _mm256_castps_si256(v.p));
    }
}

/// Sorts `keys` ascending, carrying `pay` along when `PAY` (otherwise `pay` is not touched
/// and may be empty).
///
/// # Safety
/// The CPU supports AVX2, `keys.len()` is a power of two ≥ 64 and, with `PAY`,
/// `pay.len() == keys.len()`.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn bitonic<const PAY: bool>(keys: &mut [f32], pay: &mut [u32]) {
    let len = keys.len();
    let kp = keys.as_mut_ptr();
    let pp = pay.as_mut_ptr();
    // Sorted runs of 64: column network, transpose, in-register merges.
    for b in (0..len).step_by(64) {
        let mut r = [V {
            k: _mm256_setzero_ps(),
            p: _mm256_setzero_ps(),
        }; 8];
        for (i, v) in r.iter_mut().enumerate() {
            *v = load::<PAY>(kp, pp, b + 8 * i);
        }
        ce_idx::<PAY>(&mut r, 0, 2);
        ce_idx::<PAY>(&mut r, 1, 3);
        ce_idx::<PAY>(&mut r, 4, 6);
        ce_idx::<PAY>(&mut r, 5, 7);
        ce_idx::<PAY>(&mut r, 0, 4);
        ce_idx::<PAY>(&mut r, 1, 5);
        ce_idx::<PAY>(&mut r, 2, 6);
        ce_idx::<PAY>(&mut r, 3, 7);
        ce_idx::<PAY>(&mut r, 0, 1);
        ce_idx::<PAY>(&mut r, 2, 3);
        ce_idx::<PAY>(&mut r, 4, 5);
        ce_idx::<PAY>(&mut r, 6, 7);
        ce_idx::<PAY>(&mut r, 2, 4);
        ce_idx::<PAY>(&mut r, 3, 5);
        ce_idx::<PAY>(&mut r, 1, 4);
        ce_idx::<PAY>(&mut r, 3, 6);
        ce_idx::<PAY>(&mut r, 1, 2);
        ce_idx::<PAY>(&mut r, 3, 4);
        ce_idx::<PAY>(&mut r, 5, 6);
        let mut ks = [_mm256_setzero_ps(); 8];
        let mut ps = [_mm256_setzero_ps(); 8];
        for i in 0..8 {
            ks[i] = r[i].k;
            ps[i] = r[i].p;
        }
        transpose(&mut ks);
        if PAY {
            transpose(&mut ps);
        }
        for i in 0..8 {
            r[i] = V { k: ks[i], p: ps[i] };
        }
        flip::<PAY, 1>(&mut r);
        tail::<PAY, 0>(&mut r);
        flip::<PAY, 2>(&mut r);
        tail::<PAY, 1>(&mut r);
        flip::<PAY, 4>(&mut r);
        tail::<PAY, 2>(&mut r);
        for (i, v) in r.iter().enumerate() {
            store::<PAY>(*v, kp, pp, b + 8 * i);
        }
    }
    let mut s = 64;
    while s < len {
        for g in (0..len).step_by(2 * s) {
            // Flip: element k of the first run against element s-1-k of the second.
            for k in (0..s).step_by(8) {
                let ia = g + k;
                let ib = g + 2 * s - 8 - k;
                let mut a = load::<PAY>(kp, pp, ia);
                let mut b = rev::<PAY>(load::<PAY>(kp, pp, ib));
                ce::<PAY>(&mut a, &mut b);
                store::<PAY>(a, kp, pp, ia);
                store::<PAY>(rev::<PAY>(b), kp, pp, ib);
            }
            let mut dist = s / 2;
            while dist >= 64 {
                for base in (g..g + 2 * s).step_by(2 * dist) {
                    for k in (0..dist).step_by(8) {
                        let ia = base + k;
                        let ib = ia + dist;
                        let mut a = load::<PAY>(kp, pp, ia);
                        let mut b = load::<PAY>(kp, pp, ib);
                        ce::<PAY>(&mut a, &mut b);
                        store::<PAY>(a, kp, pp, ia);
                        store::<PAY>(b, kp, pp, ib);
                    }
                }
                dist /= 2;
            }
            for c in (g..g + 2 * s).step_by(64) {
                let mut r = [V {
                    k: _mm256_setzero_ps(),
                    p: _mm256_setzero_ps(),
                }; 8];
                for (i, v) in r.iter_mut().enumerate() {
                    *v = load::<PAY>(kp, pp, c + 8 * i);
                }
                tail::<PAY, 4>(&mut r);
                for (i, v) in r.iter().enumerate() {
                    store::<PAY>(*v, kp, pp, c + 8 * i);
                }
            }
        }
        s *= 2;
    }
}
