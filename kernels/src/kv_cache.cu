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
// 64-query block idle, so here a block of 4 warps serves one query of one batch entry and a few
// heads: grid (Tq, group·ceil(NKV / H), B), 128 threads, group = NH / NKV. A head gets W lanes,
// HS rounded up to a power of two (32 from HS = 17 on: lane d on dims d, d + 32, ...); a warp
// holds H = min(NKV, 32 / W) heads side by side — query heads kvh·group + r for H consecutive
// kv heads kvh, whose key rows are adjacent in the cache — and 32 / W / H keys at once (key
// slots). So a key row shorter than a sector shares it with its neighbours instead of leaving
// it mostly unread (HS = 8 bf16: 16-byte rows, 50% of each sector before). Warp w takes the
// 32-key chunks w, w + 4, w + 8, ...: a ballot of the chunk's key_valid picks the real, visible
// keys; slot t takes keys t, t + slots, ... of the chunk, each lane group finishes its score with
// a butterfly over its W lanes and updates its own online softmax (running max and sum, f32).
// The (warp, slot) states of a head are merged through shared memory in warp order, then slot
// order, so the result depends only on the inputs and the shape (one head of HS >= 17 per block:
// the same fold as a plain warp-per-key loop). HS <= 128 (4 dims per lane). Bytes moved:
// Tq·NH·(2·HS·S + 4) (q, out, lse; each of the 4 warps loads q, 3 repeats that hit L1) + per (b, query, block) the visible real keys' rows of the
// block's H kv heads in K and V (2·H·HS·S each) + their key_valid words.
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

// Lanes per head row: HS rounded up to a power of two, 32 from HS = 17 on.
__device__ __forceinline__ u32 decode_width(u32 HS) {
    u32 w = 1;
    while (w < HS && w < 32) w <<= 1;
    return w;
}

template <typename T>
__device__ __forceinline__ void kv_cache_fwd_decode(const T* __restrict__ q, const T* __restrict__ k,
                                                    const T* __restrict__ v,
                                                    const u32* __restrict__ key_valid,
                                                    T* __restrict__ out, float* __restrict__ lse,
                                                    AttShape sh, float scale) {
    __shared__ float s_max[DECODE_WARPS][32];
    __shared__ float s_sum[DECODE_WARPS][32];
    __shared__ float s_out[DECODE_WARPS][ATT_MAX_HS];
    const u32 b = blockIdx.z, i = blockIdx.x;
    const u32 w = threadIdx.x / 32, lane = threadIdx.x % 32;
    const u32 group = sh.NH / sh.NKV;
    // Lane = (key slot ks, head slot hs, dim d): `heads` kv heads s0.. (query heads kvh·group + r)
    // side by side, `slots` keys at once.
    const u32 width = decode_width(sh.HS);
    const u32 heads = min(sh.NKV, 32 / width);
    const u32 slots = 32 / width / heads;
    const u32 r = blockIdx.y % group, s0 = blockIdx.y / group * heads;
    const u32 seg = lane / width, d0 = lane % width;
    const u32 hslot = seg % heads, ks = seg / heads;
    const u32 kvh = s0 + hslot;
    const bool live = ks < slots && kvh < sh.NKV;
    const u32 h = kvh * group + r;
    const u32 pos_end = sh.Tk - sh.Tq + i + 1;
    const u64 q_row = (u64(b) * sh.Tq + i) * sh.NH + h;

    // Key slot 0 loads the queries; the other slots take them by shuffle (one read of q).
    float qv[DECODE_DIMS], o[DECODE_DIMS];
#pragma unroll
    for (int c = 0; c < DECODE_DIMS; ++c) {
        const u32 d = d0 + 32 * c;
        const float x = live && ks == 0 && d < sh.HS ? to_f32(q[q_row * sh.HS + d]) : 0.0f;
        qv[c] = __shfl_sync(RLHF_FULL_MASK, x, lane % (heads * width)) * (scale * ATT_LOG2E);
        o[c] = 0.0f;
    }
    float m = -RLHF_INF, l = 0.0f;
    for (u32 j0 = 32 * w; j0 < pos_end; j0 += 32 * DECODE_WARPS) {
        const u32 j = j0 + lane;
        const bool ok = j < pos_end && key_valid[u64(b) * sh.cap + j] != 0;
        const u32 bits = __ballot_sync(RLHF_FULL_MASK, ok);
        for (u32 jj = 0; jj < 32; jj += slots) {
            if ((bits >> jj) == 0) break;
            const u32 key = jj + ks;
            const bool mine = live && key < 32 && ((bits >> key) & 1u) != 0;
            const u64 row = ((u64(b) * sh.cap + j0 + key) * sh.NKV + kvh) * sh.HS;
            float s = 0.0f;
#pragma unroll
            for (int c = 0; c < DECODE_DIMS; ++c) {
                const u32 d = d0 + 32 * c;
                if (mine && d < sh.HS) s = fmaf(qv[c], to_f32(k[row + d]), s);
            }
            for (u32 offset = width / 2; offset > 0; offset >>= 1) {
                s += __shfl_xor_sync(RLHF_FULL_MASK, s, offset);
            }
            if (!mine) continue;
            const float m_new = fmaxf(m, s);
            const float alpha = exp2f(m - m_new);
            const float p = exp2f(s - m_new);
            l = fmaf(l, alpha, p);
#pragma unroll
            for (int c = 0; c < DECODE_DIMS; ++c) {
                const u32 d = d0 + 32 * c;
                const float vd = d < sh.HS ? to_f32(v[row + d]) : 0.0f;
                o[c] = fmaf(p, vd, o[c] * alpha);
            }
            m = m_new;
        }
    }
    if (d0 == 0) {
        s_max[w][seg] = m;
        s_sum[w][seg] = l;
    }
#pragma unroll
    for (int c = 0; c < DECODE_DIMS; ++c) s_out[w][lane + 32 * c] = o[c];
    __syncthreads();
    if (w != 0 || !live || ks != 0) return;

    // Warp order, then key-slot order: fixed by the shape alone.
    float m_all = -RLHF_INF;
    for (u32 x = 0; x < DECODE_WARPS; ++x) {
        for (u32 t = 0; t < slots; ++t) m_all = fmaxf(m_all, s_max[x][t * heads + hslot]);
    }
    float l_all = 0.0f, acc[DECODE_DIMS] = {};
    if (m_all != -RLHF_INF) {
        for (u32 x = 0; x < DECODE_WARPS; ++x) {
            for (u32 t = 0; t < slots; ++t) {
                const u32 g = t * heads + hslot;
                const float f = exp2f(s_max[x][g] - m_all);
                l_all = fmaf(s_sum[x][g], f, l_all);
#pragma unroll
                for (int c = 0; c < DECODE_DIMS; ++c) {
                    acc[c] = fmaf(s_out[x][g * width + d0 + 32 * c], f, acc[c]);
                }
            }
        }
    }
    const float inv = l_all > 0.0f ? 1.0f / l_all : 0.0f;
#pragma unroll
    for (int c = 0; c < DECODE_DIMS; ++c) {
        const u32 d = d0 + 32 * c;
        if (d < sh.HS) out[q_row * sh.HS + d] = from_f32<T>(acc[c] * inv);
    }
    if (d0 == 0) {
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
