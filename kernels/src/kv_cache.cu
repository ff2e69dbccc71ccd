// kv_cache.cu: writing a step's keys/values into a KV cache, and attention of a few new queries
// against the cache (decoding).
//
// kv_cache_fwd_write: cache [B, Tmax, NKV, HS], src [B, Tn, NKV, HS], same dtype, copied into
// rows start..start+Tn of every batch entry. Viewed flat: element e of src (n = B·Tn·NKV·HS of
// them) goes to cache[(e / chunk)·stride + offset + e % chunk] with chunk = Tn·NKV·HS,
// stride = Tmax·NKV·HS, offset = start·NKV·HS. One thread per element, consecutive threads on
// consecutive elements (coalesced), grid = ceil(n / blockDim.x). Bytes moved: 2·n·S.
//
// kv_cache_fwd_decode: attention (runtime/src/ops/attention.rs; attention.cu has the maths) of
// Tq queries against k_cache, v_cache [B, cap, NKV, HS] holding kv_len keys; query i sits at
// position kv_len − Tq + i. For a handful of queries the flash forward would leave most of its
// 64-query block idle, so here a block of 4 warps serves one (query, head, batch entry):
// grid (Tq, NH, B), 128 threads. Warp w takes the 32-key chunks w, w + 4, w + 8, ...: a ballot of
// the chunk's key_valid picks the real, visible keys, and for each the warp reads the key row
// (lane d on dims d, d + 32, ...: coalesced), finishes the score with a butterfly warp_sum and
// updates its own online softmax (running max and sum, f32). The four warps' states are merged
// in warp order through shared memory by warp 0, so the result depends only on the inputs.
// HS <= 128 (4 dims per lane). Bytes moved: Tq·NH·(2·HS·S + 4) (q, out, lse) + per (b, query,
// head) the visible real keys' rows of K and V (2·HS·S each) + their key_valid words.
#include "common.cuh"
#include "attention.cuh"

template <typename T>
__device__ __forceinline__ void kv_cache_fwd_write(T* __restrict__ cache, const T* __restrict__ src,
                                                   u32 n, u32 chunk, u32 stride, u32 offset) {
    const u32 e = blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= n) return;
    cache[u64(e / chunk) * stride + offset + e % chunk] = src[e];
}

#define DECODE_WARPS 4
#define DECODE_DIMS (ATT_MAX_HS / 32)

template <typename T>
__device__ __forceinline__ void kv_cache_fwd_decode(const T* __restrict__ q, const T* __restrict__ k,
                                                    const T* __restrict__ v,
                                                    const u32* __restrict__ key_valid,
                                                    T* __restrict__ out, float* __restrict__ lse,
                                                    AttShape sh, float scale) {
    __shared__ float s_max[DECODE_WARPS];
    __shared__ float s_sum[DECODE_WARPS];
    __shared__ float s_out[DECODE_WARPS][ATT_MAX_HS];
    const u32 b = blockIdx.z, h = blockIdx.y, i = blockIdx.x;
    const u32 w = threadIdx.x / 32, lane = threadIdx.x % 32;
    const u32 kvh = h / (sh.NH / sh.NKV);
    const u32 pos_end = sh.Tk - sh.Tq + i + 1;
    const u64 q_row = (u64(b) * sh.Tq + i) * sh.NH + h;

    float qv[DECODE_DIMS], o[DECODE_DIMS];
#pragma unroll
    for (int c = 0; c < DECODE_DIMS; ++c) {
        const u32 d = lane + 32 * c;
        qv[c] = d < sh.HS ? to_f32(q[q_row * sh.HS + d]) * (scale * ATT_LOG2E) : 0.0f;
        o[c] = 0.0f;
    }
    float m = -RLHF_INF, l = 0.0f;
    for (u32 j0 = 32 * w; j0 < pos_end; j0 += 32 * DECODE_WARPS) {
        const u32 j = j0 + lane;
        const bool ok = j < pos_end && key_valid[u64(b) * sh.cap + j] != 0;
        const u32 bits = __ballot_sync(RLHF_FULL_MASK, ok);
        for (u32 jj = 0; jj < 32; ++jj) {
            if (((bits >> jj) & 1u) == 0) continue;
            const u64 row = ((u64(b) * sh.cap + j0 + jj) * sh.NKV + kvh) * sh.HS;
            float s = 0.0f;
#pragma unroll
            for (int c = 0; c < DECODE_DIMS; ++c) {
                const u32 d = lane + 32 * c;
                if (d < sh.HS) s = fmaf(qv[c], to_f32(k[row + d]), s);
            }
            s = warp_sum(s);
            const float m_new = fmaxf(m, s);
            const float alpha = exp2f(m - m_new);
            const float p = exp2f(s - m_new);
            l = fmaf(l, alpha, p);
#pragma unroll
            for (int c = 0; c < DECODE_DIMS; ++c) {
                const u32 d = lane + 32 * c;
                const float vd = d < sh.HS ? to_f32(v[row + d]) : 0.0f;
                o[c] = fmaf(p, vd, o[c] * alpha);
            }
            m = m_new;
        }
    }
    if (lane == 0) {
        s_max[w] = m;
        s_sum[w] = l;
    }
#pragma unroll
    for (int c = 0; c < DECODE_DIMS; ++c) s_out[w][lane + 32 * c] = o[c];
    __syncthreads();
    if (w != 0) return;

    float m_all = -RLHF_INF;
    for (int x = 0; x < DECODE_WARPS; ++x) m_all = fmaxf(m_all, s_max[x]);
    float l_all = 0.0f, acc[DECODE_DIMS] = {};
    if (m_all != -RLHF_INF) {
        for (int x = 0; x < DECODE_WARPS; ++x) {
            const float f = exp2f(s_max[x] - m_all);
            l_all = fmaf(s_sum[x], f, l_all);
#pragma unroll
            for (int c = 0; c < DECODE_DIMS; ++c) acc[c] = fmaf(s_out[x][lane + 32 * c], f, acc[c]);
        }
    }
    const float inv = l_all > 0.0f ? 1.0f / l_all : 0.0f;
#pragma unroll
    for (int c = 0; c < DECODE_DIMS; ++c) {
        const u32 d = lane + 32 * c;
        if (d < sh.HS) out[q_row * sh.HS + d] = from_f32<T>(acc[c] * inv);
    }
    if (lane == 0) {
        lse[(u64(b) * sh.NH + h) * sh.Tq + i] =
            l_all > 0.0f ? (m_all + log2f(l_all)) * ATT_LN2 : -RLHF_INF;
    }
}

extern "C" __global__ void kv_cache_fwd_write_f32(float* cache, const float* src, u32 n, u32 chunk,
                                                  u32 stride, u32 offset) {
    kv_cache_fwd_write(cache, src, n, chunk, stride, offset);
}
extern "C" __global__ void kv_cache_fwd_write_bf16(bf16* cache, const bf16* src, u32 n, u32 chunk,
                                                   u32 stride, u32 offset) {
    kv_cache_fwd_write(cache, src, n, chunk, stride, offset);
}

extern "C" __global__ void kv_cache_fwd_decode_f32(const float* q, const float* k_cache,
                                                   const float* v_cache, const u32* key_valid,
                                                   float* out, float* lse, u32 Tq, u32 kv_len,
                                                   u32 cap, u32 NH, u32 NKV, u32 HS, float scale) {
    kv_cache_fwd_decode(q, k_cache, v_cache, key_valid, out, lse, AttShape{Tq, kv_len, cap, NH, NKV, HS},
                        scale);
}
extern "C" __global__ void kv_cache_fwd_decode_bf16(const bf16* q, const bf16* k_cache,
                                                    const bf16* v_cache, const u32* key_valid,
                                                    bf16* out, float* lse, u32 Tq, u32 kv_len,
                                                    u32 cap, u32 NH, u32 NKV, u32 HS, float scale) {
    kv_cache_fwd_decode(q, k_cache, v_cache, key_valid, out, lse, AttShape{Tq, kv_len, cap, NH, NKV, HS},
                        scale);
}
