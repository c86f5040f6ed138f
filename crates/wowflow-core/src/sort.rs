//! Sorting one class's projections on one direction.
//!
//! A DA-size step sorts 10 000 segments of 500 values (both clouds), which made sorting the
//! largest cost after the three matrix products (BENCHMARKS.md). Segments are small and
//! many, so on x86-64 CPUs with AVX2 they go through a vectorised bitonic network
//! (`sort/avx2.rs`): about 3.5× faster than `sort_unstable` for values alone and 1.8× with the
//! permutation. Everywhere else — no AVX2, segments too short to fill a 64-key block or
//! too long for the network to pay off, or non-finite values, which a min/max network
//! cannot order — `sort_unstable` on order-preserving integer keys does the job.

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2;

/// Shortest segment the network sorts: below this, padding to a 64-key block costs more
/// than `sort_unstable`'s insertion sort (measured crossover ≈ 16–20 keys).
const MIN_SIMD: usize = 20;
/// Longest padded length the network sorts; its `n log² n` work loses to pdqsort beyond.
const MAX_SIMD: usize = 1 << 14;

/// Reusable buffers and the CPU check for sorting many segments; one per thread.
#[derive(Debug)]
pub struct SegmentSorter {
    packed: Vec<u64>,
    keys: Vec<f32>,
    payload: Vec<u32>,
    simd: bool,
}

impl Default for SegmentSorter {
    fn default() -> Self {
        Self::new()
    }
}

impl SegmentSorter {
    /// A sorter that uses the AVX2 network when this CPU has it.
    pub fn new() -> Self {
        #[cfg(target_arch = "x86_64")]
        let simd = std::arch::is_x86_feature_detected!("avx2");
        #[cfg(not(target_arch = "x86_64"))]
        let simd = false;
        Self::with_simd(simd)
    }

    /// A sorter that never uses SIMD: the reference the network is tested against.
    #[cfg(test)]
    pub fn portable() -> Self {
        Self::with_simd(false)
    }

    fn with_simd(simd: bool) -> Self {
        SegmentSorter {
            packed: Vec::new(),
            keys: Vec::new(),
            payload: Vec::new(),
            simd,
        }
    }

    /// Padded network length for `n` keys, when the network should sort them.
    fn network_len(&self, values: &[f32], with_perm: bool) -> Option<usize> {
        let n = values.len();
        let len = n.next_power_of_two().max(64);
        // With a permutation the network's work on padding costs twice as much, so it
        // also gives way to pdqsort when more than a quarter of the block would be padding.
        let fits = len <= 2048 || !with_perm || 4 * n >= 3 * len;
        (self.simd
            && n >= MIN_SIMD
            && len <= MAX_SIMD
            && fits
            && values.iter().all(|v| v.is_finite()))
        .then_some(len)
    }

    /// Sorts `values` ascending.
    pub fn sort(&mut self, values: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if let Some(len) = self.network_len(values, false) {
            self.fill_keys(values, len);
            // SAFETY: `simd` is only set when the CPU has AVX2; `len` is a power of two
            // ≥ 64 and `keys` has that length; without a payload none is read.
            unsafe { avx2::bitonic::<false>(&mut self.keys, &mut []) };
            values.copy_from_slice(&self.keys[..values.len()]);
            return;
        }
        self.packed.clear();
        self.packed.extend(values.iter().map(|&v| key(v) as u64));
        self.packed.sort_unstable();
        for (v, &k) in values.iter_mut().zip(&self.packed) {
            *v = unkey(k as u32);
        }
    }

    /// Sorts `values` ascending and writes into `perm` the position in the input of each
    /// sorted entry. Panics if the lengths differ or exceed `u32::MAX` (callers check).
    pub fn sort_with_perm(&mut self, values: &mut [f32], perm: &mut [u32]) {
        assert_eq!(values.len(), perm.len(), "sort_with_perm: length mismatch");
        assert!(
            values.len() <= u32::MAX as usize,
            "sort_with_perm: too long"
        );
        #[cfg(target_arch = "x86_64")]
        if let Some(len) = self.network_len(values, true) {
            self.fill_keys(values, len);
            self.payload.clear();
            self.payload.extend(0..len as u32);
            // SAFETY: as in `sort`, and the payload has the keys' length.
            unsafe { avx2::bitonic::<true>(&mut self.keys, &mut self.payload) };
            // Padding keys are +∞ and every real key is finite, so the first n sorted
            // entries are exactly the input's.
            values.copy_from_slice(&self.keys[..values.len()]);
            perm.copy_from_slice(&self.payload[..values.len()]);
            return;
        }
        // A (key, index) pair packed in one u64 sorts both at once.
        self.packed.clear();
        self.packed.extend(
            values
                .iter()
                .enumerate()
                .map(|(i, &v)| ((key(v) as u64) << 32) | i as u64),
        );
        self.packed.sort_unstable();
        for ((v, p), &packed) in values.iter_mut().zip(perm.iter_mut()).zip(&self.packed) {
            *v = unkey((packed >> 32) as u32);
            *p = packed as u32;
        }
    }

    #[cfg(target_arch = "x86_64")]
    fn fill_keys(&mut self, values: &[f32], len: usize) {
        self.keys.clear();
        self.keys.extend_from_slice(values);
        self.keys.resize(len, f32::INFINITY);
    }
}

/// Maps an `f32` to a `u32` whose unsigned order is the float's total order, so sorting
/// integer keys sorts the floats (about 2.5× faster than comparing floats, docs/design.md).
#[inline]
fn key(x: f32) -> u32 {
    let b = x.to_bits();
    if b >> 31 == 1 {
        !b
    } else {
        b | 0x8000_0000
    }
}

#[inline]
fn unkey(k: u32) -> f32 {
    f32::from_bits(if k >> 31 == 1 { k & 0x7fff_ffff } else { !k })
}

#[cfg(test)]
mod tests;
