use super::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[test]
fn key_preserves_total_order() {
    let xs = [-f32::MAX, -3.5, -1e-30, -0.0, 0.0, 1e-30, 2.0, f32::MAX];
    for w in xs.windows(2) {
        assert!(key(w[0]) < key(w[1]), "{} {}", w[0], w[1]);
    }
    for x in xs {
        assert_eq!(unkey(key(x)).to_bits(), x.to_bits());
    }
}

/// Inputs that stress a sorting network: random, heavy ties, constant, already sorted,
/// reversed, and an organ pipe.
fn inputs(n: usize, rng: &mut ChaCha8Rng) -> Vec<Vec<f32>> {
    let random: Vec<f32> = (0..n).map(|_| rng.random_range(-3.0f32..3.0)).collect();
    let ties: Vec<f32> = random.iter().map(|v| (v * 2.0).round()).collect();
    let mut sorted = random.clone();
    sorted.sort_by(f32::total_cmp);
    let reversed: Vec<f32> = sorted.iter().rev().copied().collect();
    let pipe: Vec<f32> = (0..n).map(|i| (i.min(n - 1 - i)) as f32).collect();
    vec![random, ties, vec![1.5; n], sorted, reversed, pipe]
}

/// Checks one sort against `sort_by(total_cmp)`: values in order, and `perm` a permutation
/// with every sorted value the input's at that index, bit for bit.
fn check(input: &[f32], sorter: &mut SegmentSorter) {
    let mut want = input.to_vec();
    want.sort_by(f32::total_cmp);

    let mut values = input.to_vec();
    let mut perm = vec![u32::MAX; input.len()];
    sorter.sort_with_perm(&mut values, &mut perm);
    let mut seen = vec![false; input.len()];
    for (i, &p) in perm.iter().enumerate() {
        let p = p as usize;
        assert!(
            p < input.len() && !seen[p],
            "n={}: not a permutation",
            input.len()
        );
        seen[p] = true;
        assert_eq!(
            values[i].to_bits(),
            input[p].to_bits(),
            "n={} i={i}",
            input.len()
        );
    }
    assert_eq!(values, want, "n={}: with permutation", input.len());

    let mut values = input.to_vec();
    sorter.sort(&mut values);
    assert_eq!(values, want, "n={}: values only", input.len());
}

#[test]
fn network_and_fallback_sort_every_size_class() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut fast = SegmentSorter::new();
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        assert!(fast.simd, "AVX2 is present but the network is not used");
    }
    let mut portable = SegmentSorter::portable();
    // Around every threshold: MIN_SIMD, one 64-key block, the merge levels, the padding
    // rule for permutations (2048 / 3000) and a values-only sort of 5000.
    for n in [
        1, 2, 7, 19, 20, 21, 50, 63, 64, 65, 127, 128, 129, 200, 500, 511, 512, 513, 1000, 2048,
        3000, 5000,
    ] {
        for input in inputs(n, &mut rng) {
            check(&input, &mut fast);
            check(&input, &mut portable);
        }
    }
}

#[test]
fn sorting_is_deterministic() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let input: Vec<f32> = (0..500)
        .map(|_| (rng.random_range(0.0f32..8.0)).floor())
        .collect();
    let run = || {
        let mut values = input.clone();
        let mut perm = vec![0; 500];
        SegmentSorter::new().sort_with_perm(&mut values, &mut perm);
        perm
    };
    assert_eq!(run(), run());
}

#[test]
fn non_finite_values_take_the_total_order_path() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut input: Vec<f32> = (0..300).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    input[17] = f32::INFINITY;
    input[200] = f32::NEG_INFINITY;
    check(&input, &mut SegmentSorter::new());
    // NaN sorts last under the total order; the network would scatter it.
    input[5] = f32::NAN;
    let mut values = input.clone();
    let mut perm = vec![0; 300];
    SegmentSorter::new().sort_with_perm(&mut values, &mut perm);
    assert!(values[299].is_nan() && perm[299] == 5);
    assert_eq!(values[0], f32::NEG_INFINITY);
    assert!(values[..299].windows(2).all(|w| w[0] <= w[1]));
}
