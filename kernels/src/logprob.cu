// logprob.cu: fused token log-prob and entropy of a tempered softmax, forward and backward.
//
// Maths, per row r of N rows (N = B·T) over V classes; logits z [N, V], targets [N] u32 (< V),
// inverse temperature s > 0, x = s·z:
//   lse     = log Σ_j e^(x_j)                 logprob = x_t − lse
//   entropy = −Σ_j p_j log p_j = log S − Q/S  (S = Σ e^(x−m), Q = Σ e^(x−m)·(x−m), m the max)
//   backward (`=`): dz_j = s·[dlogprob·(δ_jt − p_j) − dentropy·p_j·(log p_j + entropy)],
//   p_j = e^(x_j − lse) recomputed from the saved lse (the entropy term only in the `_entropy`
//   variant). Shapes: logprob, entropy, lse, dlogprob, dentropy [N] f32; dlogits [N, V] in the
//   storage type. Exponents below −128 are floored to −128 (e^−128 is 0 in f32), so −inf logits
//   contribute 0 and never 0·inf = NaN; the running max starts at −FLT_MAX, as on the Cpu.
//
// logprob_fwd: one block of 256 threads per row (grid = N). The row is cut into logical chunks
// of LEN = 16/sizeof(T) elements (4 f32, 8 bf16), chunk c covering elements [c·LEN, c·LEN+LEN).
// Thread t owns chunks t, t+256, t+512, ... and folds each into its online state (m, S, Q): the
// chunk's max first (rescaling S and Q once if it rises), then its elements in order. The 256
// states are merged by a butterfly within each warp, then in warp order. Nothing is ever
// materialised: the softmax exists only as this state, so the row is read exactly once.
//
// Determinism: which thread folds which element, and in what order, depends only on the element's
// index in its row, never on N, the row's position in the batch or the address's alignment; the
// merge tree is fixed (blockDim is a constant of the launcher). So a row's logprob, lse and
// entropy are bit-identical whether it is launched alone or inside any batch (tested on Emu by
// scoring a row alone and inside batches of 5 rows with other neighbours and offsets).
//
// Loads: a row starts at row·V·sizeof(T) bytes, which is 16-byte aligned only when V·sizeof(T)
// is. Chunks are read with 16-byte loads of the aligned packs around them: a warp loads 32
// consecutive aligned packs, each lane takes the next lane's pack with a shuffle and funnel-
// shifts the pair into its chunk; lane 31 loads the 33rd pack itself. Warps whose chunks touch
// the row's first or last pack (or any pack outside the row) read their chunks element by element
// instead, in the same order. For an aligned row no shuffle is needed. Bytes read:
// N·V·S (+ N·V·S/32 of repeated packs when V·S is not a multiple of 16) + 4·N targets +
// N·S target logits; written 12·N.
//
// logprob_bwd[_entropy]: one block of 256 threads per row (grid = N); no reduction, so any
// thread may own any element. Elements before the row's first aligned pack and after its last are
// written one by one; the packs in between with 16-byte loads and stores (when logits and
// dlogits share their alignment, as they do for tensors of one shape and dtype).
// Bytes: 2·N·V·S + 20·N (+ 4·N with dentropy).
#include "common.cuh"

#define LOGPROB_EXP_FLOOR (-128.0f)
#define LOGPROB_FLT_MAX 3.402823466e38f

__device__ __forceinline__ float floor_exponent(float d) { return fmaxf(d, LOGPROB_EXP_FLOOR); }

// (m, S, Q): S = Σ e^(x−m), Q = Σ e^(x−m)·(x−m), exponents floored.
struct SoftmaxState {
    float max;
    float sum;
    float shifted;
};

__device__ __forceinline__ SoftmaxState softmax_empty() {
    return SoftmaxState{-LOGPROB_FLT_MAX, 0.0f, 0.0f};
}

// Moves the state to a max of `m` >= state.max.
__device__ __forceinline__ void softmax_rebase(SoftmaxState& st, float m) {
    const float shift = floor_exponent(st.max - m);
    const float factor = expf(shift);
    st.shifted = factor * (st.shifted + shift * st.sum);
    st.sum *= factor;
    st.max = m;
}

// Folds `count` (<= LEN) scaled logits in order: max first, then each element.
template <int LEN>
__device__ __forceinline__ void softmax_fold(SoftmaxState& st, const float (&x)[LEN], int count) {
    float chunk_max = -RLHF_INF;
#pragma unroll
    for (int k = 0; k < LEN; ++k) {
        if (k < count) chunk_max = fmaxf(chunk_max, x[k]);
    }
    if (chunk_max > st.max) softmax_rebase(st, chunk_max);
#pragma unroll
    for (int k = 0; k < LEN; ++k) {
        if (k < count) {
            const float d = floor_exponent(x[k] - st.max);
            const float e = expf(d);
            st.sum += e;
            st.shifted += e * d;
        }
    }
}

__device__ __forceinline__ SoftmaxState softmax_merge(SoftmaxState a, SoftmaxState b) {
    const float m = fmaxf(a.max, b.max);
    softmax_rebase(a, m);
    softmax_rebase(b, m);
    return SoftmaxState{m, a.sum + b.sum, a.shifted + b.shifted};
}

// The block's merged state, on every thread; `scratch` holds 32 states.
__device__ __forceinline__ SoftmaxState block_softmax(SoftmaxState st, SoftmaxState* scratch) {
    for (int offset = 16; offset > 0; offset >>= 1) {
        SoftmaxState other;
        other.max = __shfl_xor_sync(RLHF_FULL_MASK, st.max, offset);
        other.sum = __shfl_xor_sync(RLHF_FULL_MASK, st.sum, offset);
        other.shifted = __shfl_xor_sync(RLHF_FULL_MASK, st.shifted, offset);
        st = softmax_merge(st, other);
    }
    if (threadIdx.x % 32 == 0) scratch[threadIdx.x / 32] = st;
    __syncthreads();
    SoftmaxState total = scratch[0];
    for (u32 w = 1; w < blockDim.x / 32; ++w) total = softmax_merge(total, scratch[w]);
    __syncthreads();
    return total;
}

// The 16 bytes that start `bytes` (< 16, even) bytes into `a`, continuing into `b`.
__device__ __forceinline__ uint4 funnel16(uint4 a, uint4 b, u32 bytes) {
    u32 w[8] = {a.x, a.y, a.z, a.w, b.x, b.y, b.z, b.w};
    if (bytes & 4) {
#pragma unroll
        for (int i = 0; i < 7; ++i) w[i] = w[i + 1];
    }
    if (bytes & 8) {
#pragma unroll
        for (int i = 0; i < 6; ++i) w[i] = w[i + 2];
    }
    const u32 bits = (bytes & 3) * 8;
    return make_uint4(__funnelshift_r(w[0], w[1], bits), __funnelshift_r(w[1], w[2], bits),
                      __funnelshift_r(w[2], w[3], bits), __funnelshift_r(w[3], w[4], bits));
}

template <typename T>
__device__ __forceinline__ void scaled_pack(const uint4& raw, float scale,
                                            float (&x)[Pack<T>::LEN]) {
    Pack<T> p;
    *reinterpret_cast<uint4*>(&p) = raw;
#pragma unroll
    for (int k = 0; k < Pack<T>::LEN; ++k) x[k] = scale * to_f32(p.v[k]);
}

__device__ __forceinline__ uint4 shfl_down_u4(uint4 v) {
    return make_uint4(__shfl_down_sync(RLHF_FULL_MASK, v.x, 1),
                      __shfl_down_sync(RLHF_FULL_MASK, v.y, 1),
                      __shfl_down_sync(RLHF_FULL_MASK, v.z, 1),
                      __shfl_down_sync(RLHF_FULL_MASK, v.w, 1));
}

template <typename T>
__device__ __forceinline__ void logprob_fwd(const T* __restrict__ logits,
                                            const u32* __restrict__ targets,
                                            float* __restrict__ logprob,
                                            float* __restrict__ entropy, float* __restrict__ lse,
                                            u32 N, u32 V, float scale) {
    constexpr int LEN = Pack<T>::LEN;
    __shared__ SoftmaxState scratch[32];
    const u64 row = blockIdx.x;
    // The whole block leaves together, so block_softmax's barriers are reached by every thread.
    if (row >= N) return;
    const T* lr = logits + row * V;
    // Elements between the aligned pack boundary below the row start and the row start.
    const u32 mis = u32((reinterpret_cast<u64>(lr) & 15) / sizeof(T));
    const T* packs = lr - mis;  // 16-byte aligned; pack p covers row elements [p·LEN − mis, +LEN)
    const u32 lane = threadIdx.x % 32;
    const u32 warp_first = threadIdx.x - lane;
    const u64 chunks = (u64(V) + LEN - 1) / LEN;

    SoftmaxState st = softmax_empty();
    for (u64 base = 0; base < chunks; base += blockDim.x) {
        const u64 c = base + threadIdx.x;
        const u64 first = base + warp_first;  // the warp's first chunk
        // Packs first .. first+32 (33 when misaligned) must lie inside the row.
        const bool vector = mis == 0 ? (first + 32) * LEN <= V
                                     : first >= 1 && (first + 33) * LEN - mis <= V;
        float x[LEN];
        if (vector) {  // warp-uniform
            const uint4 a = *reinterpret_cast<const uint4*>(packs + c * LEN);
            uint4 raw = a;
            if (mis != 0) {
                uint4 b = shfl_down_u4(a);
                if (lane == 31) b = *reinterpret_cast<const uint4*>(packs + (c + 1) * LEN);
                raw = funnel16(a, b, mis * sizeof(T));
            }
            scaled_pack<T>(raw, scale, x);
            softmax_fold<LEN>(st, x, LEN);
        } else if (c < chunks) {
            const u64 start = c * LEN;
            const int count = int(min(u64(LEN), u64(V) - start));
#pragma unroll
            for (int k = 0; k < LEN; ++k) x[k] = k < count ? scale * to_f32(lr[start + k]) : 0.0f;
            softmax_fold<LEN>(st, x, count);
        }
    }
    const SoftmaxState total = block_softmax(st, scratch);

    if (threadIdx.x == 0) {
        const float log_sum = logf(total.sum);
        const u32 target = targets[row];
        const float xt = target < V ? scale * to_f32(lr[target]) : RLHF_NAN;
        logprob[row] = (xt - total.max) - log_sum;
        entropy[row] = log_sum - total.shifted / total.sum;
        lse[row] = total.max + log_sum;
    }
}

// d(logit) of one element with scaled logit `x`.
template <bool ENTROPY>
__device__ __forceinline__ float logprob_grad(float x, bool is_target, float scale, float row_lse,
                                              float dlogprob, float dentropy, float row_entropy) {
    const float log_p = floor_exponent(x - row_lse);
    const float p = expf(log_p);
    float g = ENTROPY ? -scale * (dlogprob * p + dentropy * p * (log_p + row_entropy))
                      : -(scale * dlogprob) * p;
    if (is_target) g += scale * dlogprob;
    return g;
}

template <typename T, bool ENTROPY>
__device__ __forceinline__ void logprob_bwd(const T* __restrict__ logits,
                                            const u32* __restrict__ targets,
                                            const float* __restrict__ lse,
                                            const float* __restrict__ entropy,
                                            const float* __restrict__ dlogprob,
                                            const float* __restrict__ dentropy,
                                            T* __restrict__ dlogits, u32 N, u32 V, float scale) {
    constexpr int LEN = Pack<T>::LEN;
    const u64 row = blockIdx.x;
    if (row >= N) return;
    const T* lr = logits + row * V;
    T* dr = dlogits + row * V;
    const u32 target = targets[row];
    const float row_lse = lse[row];
    const float dlp = dlogprob[row];
    const float dh = ENTROPY ? dentropy[row] : 0.0f;
    const float h = ENTROPY ? entropy[row] : 0.0f;

    const u32 mis = u32((reinterpret_cast<u64>(lr) & 15) / sizeof(T));
    const u32 mis_out = u32((reinterpret_cast<u64>(dr) & 15) / sizeof(T));
    // Elements before the first aligned pack; all of them when the two rows' alignments differ.
    const u32 head = mis_out != mis ? V : min(V, (LEN - mis) % LEN);
    const u32 body = (V - head) / LEN;
    for (u32 v = threadIdx.x; v < head; v += blockDim.x) {
        const float g = logprob_grad<ENTROPY>(scale * to_f32(lr[v]), v == target, scale, row_lse,
                                              dlp, dh, h);
        dr[v] = from_f32<T>(g);
    }
    for (u32 p = threadIdx.x; p < body; p += blockDim.x) {
        const u32 start = head + p * LEN;
        const Pack<T> in = load_pack(lr + start);
        Pack<T> out;
#pragma unroll
        for (int k = 0; k < LEN; ++k) {
            const float g = logprob_grad<ENTROPY>(scale * to_f32(in.v[k]), start + k == target,
                                                  scale, row_lse, dlp, dh, h);
            out.v[k] = from_f32<T>(g);
        }
        store_pack(dr + start, out);
    }
    for (u32 v = head + body * LEN + threadIdx.x; v < V; v += blockDim.x) {
        const float g = logprob_grad<ENTROPY>(scale * to_f32(lr[v]), v == target, scale, row_lse,
                                              dlp, dh, h);
        dr[v] = from_f32<T>(g);
    }
}

extern "C" __global__ void logprob_fwd_f32(const float* logits, const u32* targets,
                                           float* logprob, float* entropy, float* lse, u32 N,
                                           u32 V, float inv_temperature) {
    logprob_fwd(logits, targets, logprob, entropy, lse, N, V, inv_temperature);
}
extern "C" __global__ void logprob_fwd_bf16(const bf16* logits, const u32* targets,
                                            float* logprob, float* entropy, float* lse, u32 N,
                                            u32 V, float inv_temperature) {
    logprob_fwd(logits, targets, logprob, entropy, lse, N, V, inv_temperature);
}

extern "C" __global__ void logprob_bwd_f32(const float* logits, const u32* targets,
                                           const float* lse, const float* dlogprob,
                                           float* dlogits, u32 N, u32 V, float inv_temperature) {
    logprob_bwd<float, false>(logits, targets, lse, nullptr, dlogprob, nullptr, dlogits, N, V,
                              inv_temperature);
}
extern "C" __global__ void logprob_bwd_bf16(const bf16* logits, const u32* targets,
                                            const float* lse, const float* dlogprob,
                                            bf16* dlogits, u32 N, u32 V, float inv_temperature) {
    logprob_bwd<bf16, false>(logits, targets, lse, nullptr, dlogprob, nullptr, dlogits, N, V,
                             inv_temperature);
}

extern "C" __global__ void logprob_bwd_entropy_f32(const float* logits, const u32* targets,
                                                   const float* lse, const float* entropy,
                                                   const float* dlogprob, const float* dentropy,
                                                   float* dlogits, u32 N, u32 V,
                                                   float inv_temperature) {
    logprob_bwd<float, true>(logits, targets, lse, entropy, dlogprob, dentropy, dlogits, N, V,
                             inv_temperature);
}
extern "C" __global__ void logprob_bwd_entropy_bf16(const bf16* logits, const u32* targets,
                                                    const float* lse, const float* entropy,
                                                    const float* dlogprob, const float* dentropy,
                                                    bf16* dlogits, u32 N, u32 V,
                                                    float inv_temperature) {
    logprob_bwd<bf16, true>(logits, targets, lse, entropy, dlogprob, dentropy, dlogits, N, V,
                            inv_temperature);
}
