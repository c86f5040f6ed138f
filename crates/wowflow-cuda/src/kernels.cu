// wowflow CUDA kernels, compiled at run time by NVRTC (see kernels.rs).
//
// Layout conventions (the same as the CPU engine's `SlicedCloud`):
//   - a cloud's projections are row-major L x N: row l holds every particle's projection on
//     direction l, and class c owns the contiguous segment offsets[c]..offsets[c+1] of a row;
//   - after sorting, `sorted` holds each segment ascending and `perm` the class-local index of
//     the particle at each sorted position;
//   - `lev` (only for clouds with particle weights) holds the cumulative mass of each sorted
//     segment (the quantile level A_i at the upper end of atom i; the last one is exactly 1).
// Uniform segments use the level (i+1)/n, computed in double exactly as the CPU engine does,
// so both engines cut the monotone coupling into the same pieces.

typedef unsigned int u32;
typedef unsigned long long u64;

// f32 -> u32 key whose unsigned order is the float's total order (as the CPU engine's key()).
__device__ __forceinline__ u32 f2key(float x) {
    u32 b = __float_as_uint(x);
    return (b >> 31) ? ~b : (b | 0x80000000u);
}
__device__ __forceinline__ float key2f(u32 k) {
    return __uint_as_float((k >> 31) ? (k & 0x7fffffffu) : ~k);
}
// (value, class-local index) packed so that one 64-bit comparison orders by value, then by
// index: every packed entry of a segment is distinct, so sorts and merges are deterministic
// and break ties exactly as the CPU engine's packed u64 sort does.
__device__ __forceinline__ u64 pack(float x, u32 i) {
    return ((u64)f2key(x) << 32) | (u64)i;
}

// ---------------------------------------------------------------------------------------
// Stage 1a: sort chunks of at most CHUNK (4096) entries of every (direction, class) segment
// in shared memory with a bitonic network, keeping the permutation.
// grid = (chunks, L), block = min(1024, pad/2) threads, dynamic shared = pad_max * 8 bytes.
// A chunk is (start in the row, length, class-local index of its first entry); segments no
// longer than CHUNK are one chunk and come out fully sorted.
extern "C" __global__ void sort_chunks(const float* __restrict__ proj,
                                       float* __restrict__ sorted,
                                       u32* __restrict__ perm,
                                       const int* __restrict__ chunk_start,
                                       const int* __restrict__ chunk_len,
                                       const int* __restrict__ chunk_local,
                                       int row_len) {
    extern __shared__ u64 sh[];
    const int q = blockIdx.x;
    const size_t row = (size_t)blockIdx.y * (size_t)row_len;
    const int start = chunk_start[q];
    const int len = chunk_len[q];
    const int local0 = chunk_local[q];
    int pad = 1;
    while (pad < len) pad <<= 1;
    for (int t = threadIdx.x; t < pad; t += blockDim.x) {
        sh[t] = (t < len) ? pack(proj[row + start + t], (u32)(local0 + t)) : ~0ull;
    }
    __syncthreads();
    const int half = pad >> 1;
    for (int k = 2; k <= pad; k <<= 1) {
        for (int j = k >> 1; j > 0; j >>= 1) {
            for (int t = threadIdx.x; t < half; t += blockDim.x) {
                const int i = 2 * t - (t & (j - 1));  // bit j of i is clear
                const int p = i + j;
                const bool up = (i & k) == 0;
                const u64 a = sh[i];
                const u64 b = sh[p];
                if ((a > b) == up) {
                    sh[i] = b;
                    sh[p] = a;
                }
            }
            __syncthreads();
        }
    }
    for (int t = threadIdx.x; t < len; t += blockDim.x) {
        const u64 v = sh[t];
        sorted[row + start + t] = key2f((u32)(v >> 32));
        perm[row + start + t] = (u32)v;
    }
}

// ---------------------------------------------------------------------------------------
// Stage 1a' (chunks of at most 512 entries, the common case): one warp per chunk, the chunk
// in registers. Lane `w` holds entries E*w .. E*w+E-1 of the padded chunk (PAD = 32 E), so
// the bitonic stages with partner distance j < E are register compare-exchanges inside a
// thread and those with j >= E one __shfl_xor per entry: no shared memory and no
// __syncthreads. Every loop has a compile-time trip count and is unrolled, so the entries
// stay in registers. Same input, output and tie-breaking as sort_chunks.
// grid = (ceil(chunks / 4), L), block = 128 (4 warps).
// With STAGED, global memory is read and written in coalesced order (entry r*32 + lane)
// through a per-warp shared buffer, skewed by one entry every E so that the blocked
// register reads and writes are free of bank conflicts.
template <int E, bool STAGED>
__device__ __forceinline__ void sort_warp(const float* __restrict__ proj,
                                          float* __restrict__ sorted, u32* __restrict__ perm,
                                          const int* __restrict__ chunk_start,
                                          const int* __restrict__ chunk_len,
                                          const int* __restrict__ chunk_local, int chunks,
                                          int row_len) {
    __shared__ u64 stage[STAGED ? 4 * (32 * E + 32) : 1];
    const int q = blockIdx.x * 4 + (threadIdx.x >> 5);
    if (q >= chunks) return;  // whole warps leave together
    const int lane = threadIdx.x & 31;
    const size_t row = (size_t)blockIdx.y * (size_t)row_len;
    const int start = chunk_start[q];
    const int len = chunk_len[q];
    const int local0 = chunk_local[q];
    u64* buf = stage + (STAGED ? (threadIdx.x >> 5) * (32 * E + 32) : 0);
    u64 v[E];
    if (STAGED) {
#pragma unroll
        for (int r = 0; r < E; r++) {
            const int i = 32 * r + lane;
            buf[i + i / E] = (i < len) ? pack(proj[row + start + i], (u32)(local0 + i)) : ~0ull;
        }
        __syncwarp();
#pragma unroll
        for (int r = 0; r < E; r++) {
            const int i = E * lane + r;
            v[r] = buf[i + i / E];
        }
    } else {
#pragma unroll
        for (int r = 0; r < E; r++) {
            const int i = E * lane + r;
            v[r] = (i < len) ? pack(proj[row + start + i], (u32)(local0 + i)) : ~0ull;
        }
    }
    constexpr int LOG_PAD = (E == 1) ? 5 : (E == 2) ? 6 : (E == 4) ? 7 : (E == 8) ? 8 : 9;
#pragma unroll
    for (int lk = 1; lk <= LOG_PAD; lk++) {
        const int k = 1 << lk;
#pragma unroll
        for (int lj = lk - 1; lj >= 0; lj--) {
            const int j = 1 << lj;
            if (j < E) {
#pragma unroll
                for (int r = 0; r < E; r++) {
                    if ((r & j) == 0) {
                        const int p = r | j;
                        const bool up = (((E * lane + r) & k) == 0);
                        const u64 a = v[r];
                        const u64 b = v[p];
                        const bool swap = (a > b) == up;
                        v[r] = swap ? b : a;
                        v[p] = swap ? a : b;
                    }
                }
            } else {
                const int lane_mask = j / E;
#pragma unroll
                for (int r = 0; r < E; r++) {
                    const int i = E * lane + r;
                    const u64 other = __shfl_xor_sync(0xffffffffu, v[r], lane_mask);
                    const bool lower = (i & j) == 0;
                    const bool up = (i & k) == 0;
                    const u64 lo = v[r] < other ? v[r] : other;
                    const u64 hi = v[r] < other ? other : v[r];
                    v[r] = (lower == up) ? lo : hi;
                }
            }
        }
    }
    if (STAGED) {
        __syncwarp();
#pragma unroll
        for (int r = 0; r < E; r++) {
            const int i = E * lane + r;
            buf[i + i / E] = v[r];
        }
        __syncwarp();
#pragma unroll
        for (int r = 0; r < E; r++) {
            const int i = 32 * r + lane;
            if (i < len) {
                const u64 x = buf[i + i / E];
                sorted[row + start + i] = key2f((u32)(x >> 32));
                perm[row + start + i] = (u32)x;
            }
        }
    } else {
#pragma unroll
        for (int r = 0; r < E; r++) {
            const int i = E * lane + r;
            if (i < len) {
                sorted[row + start + i] = key2f((u32)(v[r] >> 32));
                perm[row + start + i] = (u32)v[r];
            }
        }
    }
}

#define SORT_WARP(E)                                                                        \
    extern "C" __global__ void sort_warp_##E(                                               \
        const float* __restrict__ proj, float* __restrict__ sorted, u32* __restrict__ perm, \
        const int* __restrict__ chunk_start, const int* __restrict__ chunk_len,             \
        const int* __restrict__ chunk_local, int chunks, int row_len) {                     \
        sort_warp<E, true>(proj, sorted, perm, chunk_start, chunk_len, chunk_local, chunks, \
                           row_len);                                                        \
    }
SORT_WARP(1)
SORT_WARP(2)
SORT_WARP(4)
SORT_WARP(8)

// E = 16 (chunks of 257..512 entries) with launch bounds for 6 blocks of 128 threads per
// SM: the register cap lets more warps hide the shuffle latency (measured 4 % faster than
// uncapped on an H100, 0.079 vs 0.082 ms per DA-size sort; a cap of 4 blocks was slower).
extern "C" __global__ void __launch_bounds__(128, 6)
    sort_warp_16(const float* __restrict__ proj, float* __restrict__ sorted,
                 u32* __restrict__ perm, const int* __restrict__ chunk_start,
                 const int* __restrict__ chunk_len, const int* __restrict__ chunk_local,
                 int chunks, int row_len) {
    sort_warp<16, true>(proj, sorted, perm, chunk_start, chunk_len, chunk_local, chunks,
                        row_len);
}

// E = 16 without the shared-memory staging (strided global reads and writes), kept to
// measure what the staging buys (WOWFLOW_CUDA_SORT=warp-direct).
extern "C" __global__ void sort_warp_16_direct(const float* __restrict__ proj, float* __restrict__ sorted,
                    u32* __restrict__ perm, const int* __restrict__ chunk_start,
                    const int* __restrict__ chunk_len, const int* __restrict__ chunk_local,
                    int chunks, int row_len) {
    sort_warp<16, false>(proj, sorted, perm, chunk_start, chunk_len, chunk_local, chunks,
                         row_len);
}

// ---------------------------------------------------------------------------------------
// Stage 1b (fallback for segments longer than CHUNK): one pass of a global-memory merge sort.
// Runs of `width` sorted entries are merged pairwise; every entry finds its output position
// independently as (its position in its run) + (its rank in the partner run, by binary
// search), so a pass is one fully parallel launch and needs no extra memory beyond the
// ping-pong buffers. Segments no longer than `width` are copied unchanged.
// grid = (ceil(N / 256), L), block = 256.
extern "C" __global__ void merge_pass(const float* __restrict__ sin,
                                      const u32* __restrict__ pin,
                                      float* __restrict__ sout,
                                      u32* __restrict__ pout,
                                      const int* __restrict__ offsets,
                                      const int* __restrict__ class_of,
                                      int row_len,
                                      int width) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= row_len) return;
    const size_t row = (size_t)blockIdx.y * (size_t)row_len;
    const int c = class_of[i];
    const int s = offsets[c];
    const int len = offsets[c + 1] - s;
    const int local = i - s;
    const float x = sin[row + i];
    const u32 ix = pin[row + i];
    int dest = local;
    if (len > width) {
        const int run = local / width;
        const int pr = run ^ 1;
        const int ps = pr * width;
        if (ps < len) {
            const int pe = min(ps + width, len);
            const u64 me = pack(x, ix);
            int lo = ps, hi = pe;
            while (lo < hi) {
                const int mid = (lo + hi) >> 1;
                const u64 v = pack(sin[row + s + mid], pin[row + s + mid]);
                if (v < me) lo = mid + 1; else hi = mid;
            }
            dest = min(run, pr) * width + (local - run * width) + (lo - ps);
        }
    }
    sout[row + s + dest] = x;
    pout[row + s + dest] = ix;
}

// ---------------------------------------------------------------------------------------
// Stage 1c (weighted clouds only): cumulative mass of every sorted segment.
// grid = (C, L), block = 256 (required: the partial sums live in a 256-entry array).
extern "C" __global__ void segment_levels(const u32* __restrict__ perm,
                                          const double* __restrict__ weights,
                                          double* __restrict__ lev,
                                          const int* __restrict__ offsets,
                                          int row_len) {
    __shared__ double part[256];
    const int c = blockIdx.x;
    const size_t row = (size_t)blockIdx.y * (size_t)row_len;
    const int s = offsets[c];
    const int len = offsets[c + 1] - s;
    const int per = (len + blockDim.x - 1) / blockDim.x;
    const int b = min((int)threadIdx.x * per, len);
    const int e = min(b + per, len);
    double acc = 0.0;
    for (int k = b; k < e; k++) acc += weights[s + perm[row + s + k]];
    part[threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.x == 0) {
        double run = 0.0;
        for (int t = 0; t < (int)blockDim.x; t++) {
            const double v = part[t];
            part[t] = run;
            run += v;
        }
    }
    __syncthreads();
    double run = part[threadIdx.x];
    for (int k = b; k < e; k++) {
        run += weights[s + perm[row + s + k]];
        lev[row + s + k] = (k == len - 1) ? 1.0 : run;  // the walk must end at exactly 1
    }
}

// ---------------------------------------------------------------------------------------
// The monotone coupling of two sorted 1-D measures, one source atom at a time.

// Upper quantile level of atom i: cumulative mass, or (i+1)/n for uniform segments.
__device__ __forceinline__ double level(const double* lev, int i, int n) {
    return lev ? lev[i] : (double)(i + 1) / (double)n;
}

// First atom j of a measure whose upper level exceeds `a` (clamped to n-1).
__device__ int first_above(const double* lev, int n, double a) {
    if (lev == nullptr) {
        int j = (int)floor(a * (double)n);
        j = max(0, min(j, n - 1));
        while (j > 0 && (double)j / (double)n > a) j--;
        while (j < n - 1 && (double)(j + 1) / (double)n <= a) j++;
        return j;
    }
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        const int mid = (lo + hi) >> 1;
        if (lev[mid] > a) hi = mid; else lo = mid + 1;
    }
    return lo;
}

__device__ __forceinline__ double dsign(double x) {
    return x > 0.0 ? 1.0 : (x < 0.0 ? -1.0 : 0.0);
}

// Sum over the pieces [max(A_{i-1}, B_{j-1}), min(A_i, B_j)] of atom i of u's quantile
// interval of mass * f(u_i, v_j), where f is
//   MODE_COST2: (u - v)^2      MODE_COST1: |u - v|
//   MODE_VALUE: v              MODE_SIGN:  sign(u - v)
// These are exactly the pieces the CPU engine's merge walk (ot1d::for_each_piece) visits.
#define MODE_COST2 0
#define MODE_COST1 1
#define MODE_VALUE 2
#define MODE_SIGN 3
__device__ double interval_sum(const float* u, const double* lu, int nu, int i,
                               const float* v, const double* lv, int nv, int mode) {
    const double a0 = (i == 0) ? 0.0 : level(lu, i - 1, nu);
    const double a1 = level(lu, i, nu);
    const double ui = (double)u[i];
    double acc = 0.0;
    for (int j = first_above(lv, nv, a0); j < nv; j++) {
        const double b0 = (j == 0) ? 0.0 : level(lv, j - 1, nv);
        const double b1 = level(lv, j, nv);
        const double st = fmax(a0, b0);
        const double en = fmin(a1, b1);
        if (en > st) {
            const double vj = (double)v[j];
            double f;
            switch (mode) {
                case MODE_COST2: f = (ui - vj) * (ui - vj); break;
                case MODE_COST1: f = fabs(ui - vj); break;
                case MODE_VALUE: f = vj; break;
                default: f = dsign(ui - vj); break;
            }
            acc += (en - st) * f;
        }
        if (b1 >= a1) break;
    }
    return acc;
}

// A (direction, class) segment of one of the two clouds.
struct Seg {
    const float* v;
    const double* lev;
    int n;
};

__device__ __forceinline__ Seg segment(const float* S, const double* L, const int* off,
                                       int row_len, int l, int c) {
    const size_t base = (size_t)l * (size_t)row_len + (size_t)off[c];
    Seg s;
    s.v = S + base;
    s.lev = L ? L + base : nullptr;
    s.n = off[c + 1] - off[c];
    return s;
}

// ---------------------------------------------------------------------------------------
// Stage 2: exact 1-D cost (W_2^2 when power == 2, W_1 when power == 1) of every listed class
// pair on every direction. `pairs` holds 4 ints per pair: (cloud, class, cloud, class) with
// cloud 0 = A, 1 = B. One warp per (pair, direction); per-lane partial sums in double, then
// a fixed shuffle tree, so the result does not depend on scheduling.
// Output per_dir[p * L + l]. grid = (ceil(P / warps_per_block), L).
extern "C" __global__ void pair_costs(const float* __restrict__ SA, const double* LA,
                                      const int* __restrict__ offA, int nA,
                                      const float* __restrict__ SB, const double* LB,
                                      const int* __restrict__ offB, int nB,
                                      const int* __restrict__ pairs, int n_pairs, int n_dirs,
                                      int power, double* __restrict__ per_dir) {
    const int warp = threadIdx.x >> 5;
    const int lane = threadIdx.x & 31;
    const int p = blockIdx.x * (blockDim.x >> 5) + warp;
    const int l = blockIdx.y;
    if (p >= n_pairs) return;  // whole warps leave together
    const int* pr = pairs + 4 * p;
    Seg u = pr[0] == 0 ? segment(SA, LA, offA, nA, l, pr[1]) : segment(SB, LB, offB, nB, l, pr[1]);
    Seg v = pr[2] == 0 ? segment(SA, LA, offA, nA, l, pr[3]) : segment(SB, LB, offB, nB, l, pr[3]);
    double acc = 0.0;
    const bool fast = u.lev == nullptr && v.lev == nullptr && u.n == v.n;
    if (fast) {
        // Equal sizes, uniform weights: (1/n) sum_k cost(u_(k) - v_(k)), the difference
        // taken in f32 as the CPU engine does.
        for (int k = lane; k < u.n; k += 32) {
            const double d = (double)(u.v[k] - v.v[k]);
            acc += power == 2 ? d * d : fabs(d);
        }
    } else {
        if (v.n > u.n) {  // walk the longer side: more lanes busy, fewer pieces per lane
            const Seg t = u;
            u = v;
            v = t;
        }
        const int mode = power == 2 ? MODE_COST2 : MODE_COST1;
        for (int i = lane; i < u.n; i += 32) {
            acc += interval_sum(u.v, u.lev, u.n, i, v.v, v.lev, v.n, mode);
        }
    }
    for (int o = 16; o > 0; o >>= 1) acc += __shfl_down_sync(0xffffffffu, acc, o);
    if (lane == 0) per_dir[(size_t)p * (size_t)n_dirs + l] = fast ? acc / (double)u.n : acc;
}

// Deterministic mean over directions: per pair, a fixed strided split over 256 threads and a
// fixed shared-memory tree. grid = P, block = 256 (required).
extern "C" __global__ void sum_dirs(const double* __restrict__ per_dir,
                                    double* __restrict__ out, int n_dirs) {
    __shared__ double sh[256];
    const int p = blockIdx.x;
    double acc = 0.0;
    for (int l = threadIdx.x; l < n_dirs; l += 256) acc += per_dir[(size_t)p * (size_t)n_dirs + l];
    sh[threadIdx.x] = acc;
    __syncthreads();
    for (int s = 128; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) sh[threadIdx.x] += sh[threadIdx.x + s];
        __syncthreads();
    }
    if (threadIdx.x == 0) out[p] = sh[0] / (double)n_dirs;
}

// ---------------------------------------------------------------------------------------
// Stage 3a: kernel derivatives kappa'(s) (MATH.md section 4), the same formulas as
// wowflow_core::Kernel::derivative. kind: 0 Riesz (param r), 1 Gaussian, 2 IMQ, 3 Laplace
// (param h).
__device__ double kernel_derivative(int kind, double prm, double s) {
    const double sp = s < 0.0 ? 0.0 : s;  // NaN stays NaN (fmax would make it 0)
    switch (kind) {
        case 0: return s <= 0.0 ? 0.0 : -(prm / 2.0) * pow(s, prm / 2.0 - 1.0);
        case 1: return -exp(-sp / (2.0 * prm)) / (2.0 * prm);
        case 2: return -0.5 * pow(prm + sp, -1.5);
        default: return -exp(-sp / prm) / prm;
    }
}

// Coefficients of every source class c against every partner q (q < C: source class q,
// q >= C: target class q - C): a_q kappa'(s) and -b_k kappa'(s), 0 for the class itself and
// for pairs at zero cost (MATH.md section 5). `pair_of[c * Q + q]` is the index of the pair's
// cost (or -1). `total[c]` is their f32 sum in partner order, as on the CPU.
extern "C" __global__ void coefficients(const double* __restrict__ costs,
                                        const int* __restrict__ pair_of,
                                        const double* __restrict__ a,
                                        const double* __restrict__ b,
                                        int C, int K, int kind, double prm,
                                        float* __restrict__ coef, float* __restrict__ total) {
    // One block per source class, one thread per partner (kernel_derivative's pow/exp in
    // double are slow; a serial loop over partners was a visible share of a step), then
    // the f32 sum in partner order by one thread. grid = C, block = a multiple of 32,
    // dynamic shared = Q floats.
    extern __shared__ float wsh[];
    const int c = blockIdx.x;
    const int Q = C + K;
    for (int q = threadIdx.x; q < Q; q += blockDim.x) {
        float w = 0.0f;
        const int p = pair_of[c * Q + q];
        if (p >= 0) {
            const double s = costs[p];
            if (s > 0.0 || isnan(s)) {  // a NaN cost poisons the gradient, as on the CPU
                const double kd = kernel_derivative(kind, prm, s);
                w = q < C ? (float)(a[q] * kd) : (float)(-b[q - C] * kd);
            }
        }
        coef[c * Q + q] = w;
        wsh[q] = w;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        float tot = 0.0f;
        for (int q = 0; q < Q; q++) tot += wsh[q];
        total[c] = tot;
    }
}

// ---------------------------------------------------------------------------------------
// Stage 3b: per-direction derivatives D (L x N, the source's particle order), already divided
// by the particle's mass (the WoW rescaling):
//   power 2: D = 2 (total u_k - sum_q w_q mean_{I_k} G_q^{-1})
//   power 1: D = sum_q w_q mean_{I_k} sign(u_k - G_q^{-1})
// and scattered through the sort permutation. grid = (C, L), block = 256.
extern "C" __global__ void derivatives(const float* __restrict__ SA, const u32* __restrict__ PA,
                                       const double* LA, const double* WA,
                                       const int* __restrict__ offA, int nA,
                                       const float* __restrict__ SB, const double* LB,
                                       const int* __restrict__ offB, int nB,
                                       int C, int K,
                                       const float* __restrict__ coef,
                                       const float* __restrict__ total,
                                       int power, float* __restrict__ D) {
    const int c = blockIdx.x;
    const int l = blockIdx.y;
    const Seg u = segment(SA, LA, offA, nA, l, c);
    const size_t base = (size_t)l * (size_t)nA + (size_t)offA[c];
    const int Q = C + K;
    const float tot = total[c];
    for (int k = threadIdx.x; k < u.n; k += blockDim.x) {
        const float uk = u.v[k];
        const u32 pk = PA[base + k];
        float acc = 0.0f;
        for (int q = 0; q < Q; q++) {
            const float w = coef[c * Q + q];
            if (w == 0.0f) continue;
            const Seg v = q < C ? segment(SA, LA, offA, nA, l, q)
                                : segment(SB, LB, offB, nB, l, q - C);
            float m;
            if (u.lev == nullptr && v.lev == nullptr && v.n == u.n) {
                const float vk = v.v[k];
                m = power == 2 ? vk : (float)dsign((double)(uk - vk));
            } else {
                const double sum = interval_sum(u.v, u.lev, u.n, k, v.v, v.lev, v.n,
                                                power == 2 ? MODE_VALUE : MODE_SIGN);
                const double mass = WA ? WA[offA[c] + pk] : 1.0 / (double)u.n;
                m = (float)(sum / mass);
            }
            acc += w * m;
        }
        D[(size_t)l * (size_t)nA + (size_t)offA[c] + pk] = power == 2 ? 2.0f * (tot * uk - acc) : acc;
    }
}

// ---------------------------------------------------------------------------------------
// Stages 2 and 3b when every class of both clouds has the same length `seg` and uniform
// weights (domain adaptation, the rings): one block per direction with that direction's
// sorted rows of both clouds in shared memory (a row of a cloud is contiguous), so each
// sorted value is read from global memory once per direction instead of once per pair.
// The arithmetic is that of the equal-size paths of pair_costs and derivatives above
// (pair_costs_equal sums each lane's terms in four interleaved partial sums).
// Shared memory: (nA + nB) floats (+ C*Q coefficients and nA outputs for
// derivatives_equal).

__device__ __forceinline__ void load_rows(float* sh, const float* SA, int nA, const float* SB,
                                          int nB, int l) {
    const float* ra = SA + (size_t)l * (size_t)nA;
    const float* rb = SB + (size_t)l * (size_t)nB;
    for (int i = threadIdx.x; i < nA; i += blockDim.x) sh[i] = ra[i];
    for (int i = threadIdx.x; i < nB; i += blockDim.x) sh[nA + i] = rb[i];
}

// grid = L, block = any multiple of 32 (warp w of W takes pairs w, w + W, ...).
extern "C" __global__ void pair_costs_equal(const float* __restrict__ SA, int nA,
                                            const float* __restrict__ SB, int nB, int seg,
                                            const int* __restrict__ pairs, int n_pairs,
                                            int n_dirs, int power,
                                            double* __restrict__ per_dir) {
    extern __shared__ float rows[];
    const int l = blockIdx.x;
    load_rows(rows, SA, nA, SB, nB, l);
    __syncthreads();
    const int warp = threadIdx.x >> 5;
    const int lane = threadIdx.x & 31;
    for (int p = warp; p < n_pairs; p += blockDim.x >> 5) {
        const int* pr = pairs + 4 * p;
        const float* u = rows + (pr[0] == 0 ? 0 : nA) + pr[1] * seg;
        const float* v = rows + (pr[2] == 0 ? 0 : nA) + pr[3] * seg;
        // Four independent accumulators per lane (entries k, k + 32, k + 64, k + 96 of each
        // group of 128): the loop is bound by the latency of the f32 -> f64 conversion
        // and the double adds, not by their throughput.
        double acc0 = 0.0, acc1 = 0.0, acc2 = 0.0, acc3 = 0.0;
        int k = lane;
        for (; k + 96 < seg; k += 128) {
            const double d0 = (double)(u[k] - v[k]);
            const double d1 = (double)(u[k + 32] - v[k + 32]);
            const double d2 = (double)(u[k + 64] - v[k + 64]);
            const double d3 = (double)(u[k + 96] - v[k + 96]);
            acc0 += power == 2 ? d0 * d0 : fabs(d0);
            acc1 += power == 2 ? d1 * d1 : fabs(d1);
            acc2 += power == 2 ? d2 * d2 : fabs(d2);
            acc3 += power == 2 ? d3 * d3 : fabs(d3);
        }
        for (; k < seg; k += 32) {
            const double d = (double)(u[k] - v[k]);
            acc0 += power == 2 ? d * d : fabs(d);
        }
        double acc = (acc0 + acc1) + (acc2 + acc3);
        for (int o = 16; o > 0; o >>= 1) acc += __shfl_down_sync(0xffffffffu, acc, o);
        if (lane == 0) per_dir[(size_t)p * (size_t)n_dirs + l] = acc / (double)seg;
    }
}

// grid = L, block = any size.
extern "C" __global__ void derivatives_equal(const float* __restrict__ SA,
                                             const u32* __restrict__ PA, int nA,
                                             const float* __restrict__ SB, int nB, int seg,
                                             int C, int K, const float* __restrict__ coef,
                                             const float* __restrict__ total, int power,
                                             float* __restrict__ D) {
    // The scatter through the sort permutation goes to shared memory (`out`, nA floats)
    // and D's row is then written in order: scattered 4-byte global stores were most of
    // this kernel's time.
    extern __shared__ float rows[];
    const int l = blockIdx.x;
    const int Q = C + K;
    float* w = rows + nA + nB;
    float* out = w + C * Q;
    load_rows(rows, SA, nA, SB, nB, l);
    for (int i = threadIdx.x; i < C * Q; i += blockDim.x) w[i] = coef[i];
    __syncthreads();
    const size_t base = (size_t)l * (size_t)nA;
    for (int e = threadIdx.x; e < nA; e += blockDim.x) {
        const int c = e / seg;
        const int k = e - c * seg;
        const float uk = rows[e];
        float acc = 0.0f;
        for (int q = 0; q < Q; q++) {
            const float wq = w[c * Q + q];
            if (wq == 0.0f) continue;
            const float vk = q < C ? rows[q * seg + k] : rows[nA + (q - C) * seg + k];
            const float m = power == 2 ? vk : (float)dsign((double)(uk - vk));
            acc += wq * m;
        }
        out[c * seg + PA[base + e]] = power == 2 ? 2.0f * (total[c] * uk - acc) : acc;
    }
    __syncthreads();
    for (int i = threadIdx.x; i < nA; i += blockDim.x) D[base + i] = out[i];
}

// =======================================================================================
// The device-resident flow (flow.rs): directions, target mini-batches and the optimiser
// update run on the GPU, so a step moves nothing over PCIe but the pair costs.

// Philox4x32-10 (Salmon et al., SC'11): a counter-based generator, so element e of step s
// is a pure function of (seed, s, e) and a step needs no generator state. The host
// transcription in flow.rs (`philox4x32`) must stay bit-identical to this one.
__device__ __forceinline__ uint4 philox4x32(uint4 c, uint2 k) {
    for (int r = 0; r < 10; r++) {
        const u32 hi0 = __umulhi(0xD2511F53u, c.x);
        const u32 lo0 = 0xD2511F53u * c.x;
        const u32 hi1 = __umulhi(0xCD9E8D57u, c.z);
        const u32 lo1 = 0xCD9E8D57u * c.z;
        c = make_uint4(hi1 ^ c.y ^ k.x, lo1, hi0 ^ c.w ^ k.y, lo0);
        k.x += 0x9E3779B9u;
        k.y += 0xBB67AE85u;
    }
    return c;
}

// Standard normals for an L x d direction buffer: thread t fills entries 4t .. 4t+3 from
// one Philox block (counter = (t, step, "WOWF")) by two Box-Muller transforms in double,
// rounded to f32. grid = ceil(total / 4 / 256), block = 256.
extern "C" __global__ void gaussian_directions(float* __restrict__ out, int total,
                                               unsigned long long seed,
                                               unsigned long long step) {
    const int t = blockIdx.x * blockDim.x + threadIdx.x;
    const int e = 4 * t;
    if (e >= total) return;
    const uint4 r = philox4x32(make_uint4((u32)t, (u32)step, (u32)(step >> 32), 0x574F5746u),
                               make_uint2((u32)seed, (u32)(seed >> 32)));
    const double inv = 2.3283064365386963e-10;  // 2^-32
    const double r0 = sqrt(-2.0 * log(((double)r.x + 0.5) * inv));
    const double r1 = sqrt(-2.0 * log(((double)r.z + 0.5) * inv));
    // sincospi (angle 2 pi u as pi * 2u): no Payne-Hanek reduction, so no local memory.
    double s0, c0, s1, c1;
    sincospi(2.0 * (((double)r.y + 0.5) * inv), &s0, &c0);
    sincospi(2.0 * (((double)r.w + 0.5) * inv), &s1, &c1);
    out[e] = (float)(r0 * c0);
    if (e + 1 < total) out[e + 1] = (float)(r0 * s0);
    if (e + 2 < total) out[e + 2] = (float)(r1 * c1);
    if (e + 3 < total) out[e + 3] = (float)(r1 * s1);
}

// Scales every row of an L x d matrix to unit Euclidean norm (norm in double, a fixed
// reduction tree). grid = L, block = 256 (required).
extern "C" __global__ void normalize_rows(float* __restrict__ m, int d) {
    __shared__ double sh[256];
    float* row = m + (size_t)blockIdx.x * (size_t)d;
    double acc = 0.0;
    for (int k = threadIdx.x; k < d; k += 256) acc += (double)row[k] * (double)row[k];
    sh[threadIdx.x] = acc;
    __syncthreads();
    for (int s = 128; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) sh[threadIdx.x] += sh[threadIdx.x + s];
        __syncthreads();
    }
    const double norm = sqrt(sh[0]);
    if (norm == 0.0) return;  // measure zero: a row of exact zeros has no direction
    for (int k = threadIdx.x; k < d; k += 256) row[k] = (float)((double)row[k] / norm);
}

// dst row i = src row rows[i] (rows of d floats): the target mini-batch of a step.
// grid = count, block = 256.
extern "C" __global__ void gather_rows(const float* __restrict__ src,
                                       const int* __restrict__ rows,
                                       float* __restrict__ dst, int d) {
    const size_t from = (size_t)rows[blockIdx.x] * (size_t)d;
    const size_t to = (size_t)blockIdx.x * (size_t)d;
    for (int k = threadIdx.x; k < d; k += blockDim.x) dst[to + k] = src[from + k];
}

// One optimiser update, the formulas of wowflow_core::Optimizer::step in f32:
//   method 0 (GD):        x -= lr g
//   method 1 (momentum):  v = g + m v; x -= lr v                  (m1 = v)
//   method 2 (Adam):      m1 = b1 m1 + (1-b1) g; m2 = b2 m2 + (1-b2) g^2;
//                         x -= lr (m1 / c1) / (sqrt(m2 / c2) + eps)
// then x is clamped to [lo, hi] when clip != 0; nothing changes when guard[0] is not
// finite. grid = ceil(n / 256), block = 256.
extern "C" __global__ void optimizer_update(float* __restrict__ x, const float* __restrict__ g,
                                            float* __restrict__ m1, float* __restrict__ m2,
                                            int n, const double* __restrict__ guard, int method, float lr, float mom, float b1,
                                            float b2, float eps, float c1, float c2, int clip,
                                            float lo, float hi) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    // guard = the gradient's squared norm: a non-finite gradient never lands, so the flow
    // stays at its last good step.
    if (i >= n || !isfinite(guard[0])) return;
    const float gi = g[i];
    float xi = x[i];
    // Explicit round-to-nearest operations: no FMA contraction, so the update rounds as the
    // CPU optimiser's does.
    if (method == 0) {
        xi = __fsub_rn(xi, __fmul_rn(lr, gi));
    } else if (method == 1) {
        const float v = __fadd_rn(gi, __fmul_rn(mom, m1[i]));
        m1[i] = v;
        xi = __fsub_rn(xi, __fmul_rn(lr, v));
    } else {
        const float a = __fadd_rn(__fmul_rn(b1, m1[i]), __fmul_rn(1.0f - b1, gi));
        const float b = __fadd_rn(__fmul_rn(b2, m2[i]), __fmul_rn(__fmul_rn(1.0f - b2, gi), gi));
        m1[i] = a;
        m2[i] = b;
        xi = __fsub_rn(xi, __fmul_rn(lr, a / c1) / (sqrtf(b / c2) + eps));
    }
    if (clip) xi = fminf(fmaxf(xi, lo), hi);
    x[i] = xi;
}

// Partial sums of squares of g (n floats) in double: block b writes out[b] from a fixed
// strided share, reduced by a fixed tree; `step_guard` then sums the partials in a fixed
// order, so the total is deterministic. grid = SUMSQ_BLOCKS (any fixed count), block = 256 (required).
extern "C" __global__ void sum_squares(const float* __restrict__ g, int n,
                                       double* __restrict__ out) {
    __shared__ double sh[256];
    double acc = 0.0;
    for (int i = blockIdx.x * 256 + threadIdx.x; i < n; i += gridDim.x * 256) {
        acc += (double)g[i] * (double)g[i];
    }
    sh[threadIdx.x] = acc;
    __syncthreads();
    for (int s = 128; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) sh[threadIdx.x] += sh[threadIdx.x + s];
        __syncthreads();
    }
    if (threadIdx.x == 0) out[blockIdx.x] = sh[0];
}

// The step's guard: the sum of the partial sums of squares (fixed tree) when every pair
// cost is finite, NaN otherwise. A finite guard means a finite F (a finite cost has a finite
// kernel value) and a finite gradient, so optimizer_update lands exactly the steps the host
// will accept. out[0] = guard, out[1 + i] = costs[i]: the host reads both in one copy.
// grid = 1, block = 256 (required).
extern "C" __global__ void step_guard(const double* __restrict__ partial, int n_partial,
                                      const double* __restrict__ costs, int n_costs,
                                      double* __restrict__ out) {
    __shared__ double sh[256];
    __shared__ int bad;
    if (threadIdx.x == 0) bad = 0;
    __syncthreads();
    double acc = 0.0;
    for (int i = threadIdx.x; i < n_partial; i += 256) acc += partial[i];
    for (int i = threadIdx.x; i < n_costs; i += 256) {
        const double c = costs[i];
        out[1 + i] = c;
        if (!isfinite(c)) bad = 1;  // benign race: every writer stores 1
    }
    sh[threadIdx.x] = acc;
    __syncthreads();
    for (int s = 128; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) sh[threadIdx.x] += sh[threadIdx.x + s];
        __syncthreads();
    }
    if (threadIdx.x == 0) out[0] = bad ? __longlong_as_double(0x7ff8000000000000ll) : sh[0];
}

