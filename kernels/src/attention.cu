// attention.cu: causal grouped-query attention with key padding, flash style, forward and backward.
//
// Maths (runtime/src/ops/attention.rs has the contract): q [B, Tq, NH, HS], k and v rows
// [B, cap, NKV, HS] of which the first Tk are keys (cap = Tk in training, the cache length in
// decoding), key_valid [B, cap] u32. Query head h reads key/value head h / (NH/NKV). Query i sits
// at position p_i = Tk − Tq + i and sees the keys j <= p_i with key_valid[b, j] = 1:
//   s_ij = scale·q_i·k_j,  lse_i = log Σ_j exp(s_ij),  P_ij = exp(s_ij − lse_i),  o_i = Σ_j P_ij v_j
// A query that sees no key gets o = 0 and lse = −inf. Backward (all `=`, fresh gradients):
//   D_i = dO_i·o_i,  dP_ij = dO_i·v_j,  dS_ij = P_ij (dP_ij − D_i)
//   dv_j = Σ_{h in group} Σ_i P_ij dO_i,  dk_j = scale Σ_{h in group} Σ_i dS_ij q_i,
//   dq_i = scale Σ_j dS_ij k_j.
// Scores are kept in the log2 domain (q pre-multiplied by scale·log2 e, exp2), lse is saved in
// natural log [B, NH, Tq] f32. All sums in f32; outputs rounded once to T. HS is a run-time size
// up to 128 (attention.cuh: bodies for HSM 32, 64, 128, shared tiles zero-padded to HSM).
//
// attention_fwd: grid (ceil(Tq/64), NH, B), 256 threads. A block owns 64 queries of one head;
// 4 threads per query, thread t owning the float4 column groups 4g + t (dims 16g + 4t .. +4), so
// the 4 lanes of a query read 64 contiguous bytes of a shared row and the 8 queries of a warp
// broadcast them. q and the output accumulator live in registers. K and V stream through shared
// memory 32 keys at a time: warp 0 reads the tile's key_valid (a ballot skips a tile that is all
// padding without reading K or V); each query's 32 scores are finished with two xor shuffles;
// an online softmax (running max and sum in f32) rescales the accumulator once per tile. Tiles
// start at key 0 and stop at the block's last visible key (p_last + 1): tiles wholly above the
// causal diagonal are never read. Shared: 2·32·128·4 B + 132 B = 32.9 KB static.
//
// attention_bwd_prep: D_i = dO_i·o_i in f32; a block of 256 threads per 32 consecutive queries
// of one (b, h), each warp 4 rows (lanes over HS, then warp_sum: the same order as one warp per
// row), the 32 results stored by one warp as one 128-byte request into D [B, NH, Tq].
// attention_bwd (dK, dV): grid (ceil(Tk/32), NKV, B), 256 threads; a block owns 32 keys of one
// key/value head, 8 threads per key (column groups 8g + t), k, v, dk, dv in registers. For each
// query head of the group in order, and each tile of 32 queries from the first query that sees
// the block's first key (i >= j0 − (Tk − Tq)) to Tq, Q and dO go through shared memory and every
// (query, key) pair is recomputed: s and dP by xor shuffles over 8 lanes, P = exp2(s − lse·log2 e)
// from the saved lse, dS = P(dP − D). The order over heads, tiles and queries is fixed, so dk and
// dv are deterministic without atomics. A block whose keys are all padding writes zeros.
// Shared: 2·32·128·4 + 256 B = 33 KB.
// attention_bwd_dq: the forward's geometry and key loop, recomputing P and dS per key to
// accumulate dq in registers (a second pass over K and V instead of atomics: deterministic).
// No kernel allocates or writes anything of size T×T; the only temporary is D [B, NH, Tq] f32.
//
// Threads whose query (or key) lies past Tq (Tk) in a ragged last tile, and padded keys in dK/dV,
// still load a clamped in-bounds row and zero it with a select instead of branching around the
// load: NVRTC may place such a divergent load out of line, after the loop, and the lanes must be
// converged at the shuffles and ballots that follow (the emulator insists; it is also cheaper
// than a divergent branch). This re-reads at most one tile's rows per (b, head) beyond the model.
//
// I/O model (global bytes, S = sizeof(T); runtime's attention::io_model_bytes computes it).
// With n(i0, i1) = Tk − Tq + i1 the keys visible to queries i0..i1 (the last one's p + 1) and
// the forward/dq query tiles [i0, i1) of 64:
//   forward = B·NH·Tq·HS·S (Q) + B·NH·Tq·HS·S (O) + 4·B·NH·Tq (lse)
//           + Σ_{b, h in NH, tiles} n(i0, i1)·(2·HS·S + 4)      (K, V, key_valid per query tile)
// GQA enters as the factor NH (each query head's blocks read its kv head's K and V again), the
// causal diagonal as n(i0, i1) instead of Tk (≈ half of Tk·Tq/64 summed over tiles).
//   backward = prep: 2·B·NH·Tq·HS·S + 4·B·NH·Tq
//            + dK/dV: 4·B·NKV·Tk·HS·S (K, V in; dK, dV out) + 4·B·NKV·Tk (key_valid)
//                     + Σ_{b, kv head, key tiles [j0, j1)} NH/NKV · m(j0)·(2·HS·S + 8)
//                       with m(j0) = Tq − max(0, j0 − (Tk − Tq)) the queries that see key j0
//                       (Q, dO, lse, D per key tile and query head)
//            + dq: B·NH·Tq·(3·HS·S + 8) (Q, dO, dQ, lse, D) + the forward's K/V/key_valid term.
// Padding lowers the counts (masked K/V rows of a streamed tile are not read, all-padding tiles
// not at all), except that dK/dV reads each padded key's own K and V row once (see below).
#include "common.cuh"
#include "attention.cuh"

// Forward body for head sizes up to HSM; sK, sV are [32][HSM] f32.
template <typename T, int HSM>
__device__ __forceinline__ void attention_fwd_body(const T* __restrict__ q, const T* __restrict__ k,
                                                   const T* __restrict__ v,
                                                   const u32* __restrict__ key_valid,
                                                   T* __restrict__ out, float* __restrict__ lse,
                                                   AttShape sh, float scale, float* sK, float* sV,
                                                   u32* keep, u32* any) {
    constexpr int G = HSM / 16;
    const u32 b = blockIdx.z, h = blockIdx.y, q0 = blockIdx.x * ATT_QUERY_TILE;
    const u32 kvh = h / (sh.NH / sh.NKV);
    const u32 t = threadIdx.x % 4, i = q0 + threadIdx.x / 4;
    const bool row_ok = i < sh.Tq;
    // Keys 0..pos_end are visible to this query (before the mask); 0 for padding threads.
    const u32 pos_end = row_ok ? sh.Tk - sh.Tq + i + 1 : 0;
    const u64 q_row = (u64(b) * sh.Tq + i) * sh.NH + h;
    const u64 q_load = (u64(b) * sh.Tq + min(i, sh.Tq - 1)) * sh.NH + h;

    float4 qr[G], o[G];
#pragma unroll
    for (int g = 0; g < G; ++g) {
        const float4 x = load_row4(q + q_load * sh.HS, 16 * g + 4 * t, sh.HS, scale * ATT_LOG2E);
        o[g] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        qr[g] = row_ok ? x : o[g];
    }
    float m = -RLHF_INF, l = 0.0f;

    const u32 q_last = min(q0 + ATT_QUERY_TILE, sh.Tq) - 1;
    const u32 key_end = sh.Tk - sh.Tq + q_last + 1;
    const u64 kv_stride = u64(sh.NKV) * sh.HS;
    for (u32 j0 = 0; j0 < key_end; j0 += ATT_KEY_TILE) {
        load_key_mask(keep, any, key_valid + u64(b) * sh.cap, j0, key_end);
        __syncthreads();
        if (*any) {
            const u64 first = (u64(b) * sh.cap + j0) * sh.NKV + kvh;
            load_tile<ATT_KEY_TILE, HSM>(sK, k + first * sh.HS, kv_stride, key_end - j0, sh.HS, keep);
            load_tile<ATT_KEY_TILE, HSM>(sV, v + first * sh.HS, kv_stride, key_end - j0, sh.HS, keep);
            __syncthreads();
            float s[ATT_KEY_TILE];
            float tile_max = -RLHF_INF;
#pragma unroll
            for (int j = 0; j < ATT_KEY_TILE; ++j) {
                const float4* kr = reinterpret_cast<const float4*>(sK + j * HSM);
                float acc = 0.0f;
#pragma unroll
                for (int g = 0; g < G; ++g) acc = dot4(acc, qr[g], kr[4 * g + t]);
                acc += __shfl_xor_sync(RLHF_FULL_MASK, acc, 1);
                acc += __shfl_xor_sync(RLHF_FULL_MASK, acc, 2);
                s[j] = (keep[j] != 0 && j0 + j < pos_end) ? acc : -RLHF_INF;
                tile_max = fmaxf(tile_max, s[j]);
            }
            const float m_new = fmaxf(m, tile_max);
            if (m_new != -RLHF_INF) {
                const float alpha = exp2f(m - m_new);
                l *= alpha;
#pragma unroll
                for (int g = 0; g < G; ++g) o[g] = scale4(alpha, o[g]);
#pragma unroll
                for (int j = 0; j < ATT_KEY_TILE; ++j) {
                    const float p = exp2f(s[j] - m_new);
                    l += p;
                    const float4* vr = reinterpret_cast<const float4*>(sV + j * HSM);
#pragma unroll
                    for (int g = 0; g < G; ++g) o[g] = axpy4(p, vr[4 * g + t], o[g]);
                }
                m = m_new;
            }
        }
        __syncthreads();
    }

    if (!row_ok) return;
    const float inv = l > 0.0f ? 1.0f / l : 0.0f;
#pragma unroll
    for (int g = 0; g < G; ++g) store_row4(out + q_row * sh.HS, 16 * g + 4 * t, sh.HS, scale4(inv, o[g]));
    if (t == 0) lse[(u64(b) * sh.NH + h) * sh.Tq + i] = l > 0.0f ? (m + log2f(l)) * ATT_LN2 : -RLHF_INF;
}

template <typename T>
__device__ __forceinline__ void attention_fwd(const T* q, const T* k, const T* v, const u32* key_valid,
                                              T* out, float* lse, AttShape sh, float scale) {
    __shared__ __align__(16) float sK[ATT_KEY_TILE * ATT_MAX_HS];
    __shared__ __align__(16) float sV[ATT_KEY_TILE * ATT_MAX_HS];
    __shared__ u32 keep[ATT_KEY_TILE];
    __shared__ u32 any;
    ATT_DISPATCH_HS(sh.HS, attention_fwd_body, q, k, v, key_valid, out, lse, sh, scale, sK, sV, keep,
                    &any);
}

// D_i = dO_i·o_i for the N = B·Tq·NH rows of [B, Tq, NH, HS], written to D [B, NH, Tq].
template <typename T>
__device__ __forceinline__ void attention_bwd_prep(const T* __restrict__ out, const T* __restrict__ dout,
                                                   float* __restrict__ D, u32 N, u32 Tq, u32 NH,
                                                   u32 HS) {
    __shared__ float tile_d[32];
    const u32 tiles = (Tq + 31) / 32;
    // Block-uniform: every thread reaches the barrier below or none does. N = B·Tq·NH.
    if (tiles == 0 || blockIdx.x / tiles >= u64(N) / Tq) return;
    const u64 bh = blockIdx.x / tiles;  // b·NH + h
    const u32 first = blockIdx.x % tiles * 32;
    const u64 b = bh / NH, h = bh % NH;
    const u32 warp = threadIdx.x / 32, lane = threadIdx.x % 32;
#pragma unroll
    for (u32 r = 0; r < 4; ++r) {
        const u32 slot = warp * 4 + r, i = first + slot;
        float acc = 0.0f;
        if (i < Tq) {  // warp-uniform
            const u64 row = ((b * Tq + i) * NH + h) * HS;
            for (u32 d = lane; d < HS; d += 32) acc = fmaf(to_f32(dout[row + d]), to_f32(out[row + d]), acc);
        }
        acc = warp_sum(acc);
        if (lane == 0) tile_d[slot] = acc;
    }
    __syncthreads();
    if (warp == 0 && first + lane < Tq) D[bh * Tq + first + lane] = tile_d[lane];
}

// dK/dV body; sQ, sdO are [32][HSM] f32.
template <typename T, int HSM>
__device__ __forceinline__ void attention_bwd_body(const T* __restrict__ q, const T* __restrict__ k,
                                                   const T* __restrict__ v,
                                                   const u32* __restrict__ key_valid,
                                                   const float* __restrict__ lse,
                                                   const float* __restrict__ D,
                                                   const T* __restrict__ dout, T* __restrict__ dk,
                                                   T* __restrict__ dv, AttShape sh, float scale,
                                                   float* sQ, float* sdO, float* sLse, float* sD,
                                                   u32* keep, u32* any) {
    constexpr int G = HSM / 32;
    const u32 b = blockIdx.z, kvh = blockIdx.y, j0 = blockIdx.x * ATT_BWD_KEY_TILE;
    const u32 t = threadIdx.x % 8, jr = threadIdx.x / 8, j = j0 + jr;
    const u32 group = sh.NH / sh.NKV;
    load_key_mask(keep, any, key_valid + u64(b) * sh.cap, j0, sh.Tk);
    __syncthreads();
    const bool key_ok = keep[jr] != 0;
    const u64 kv_row = (u64(b) * sh.cap + j) * sh.NKV + kvh;
    const u64 kv_load = (u64(b) * sh.cap + min(j, sh.Tk - 1)) * sh.NKV + kvh;

    float4 kr[G], vr[G], dkr[G], dvr[G];
#pragma unroll
    for (int g = 0; g < G; ++g) {
        const u32 d0 = 32 * g + 4 * t;
        const float4 kx = load_row4(k + kv_load * sh.HS, d0, sh.HS, scale * ATT_LOG2E);
        const float4 vx = load_row4(v + kv_load * sh.HS, d0, sh.HS, 1.0f);
        dkr[g] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        dvr[g] = dkr[g];
        kr[g] = key_ok ? kx : dkr[g];
        vr[g] = key_ok ? vx : dkr[g];
    }

    if (*any) {
        const u32 shift = sh.Tk - sh.Tq;
        const u32 i_first = j0 > shift ? j0 - shift : 0;
        const u64 q_stride = u64(sh.NH) * sh.HS;
        for (u32 hg = 0; hg < group; ++hg) {
            const u32 h = kvh * group + hg;
            for (u32 i0 = i_first; i0 < sh.Tq; i0 += ATT_BWD_QUERY_TILE) {
                const u64 first = (u64(b) * sh.Tq + i0) * sh.NH + h;
                load_tile<ATT_BWD_QUERY_TILE, HSM>(sQ, q + first * sh.HS, q_stride, sh.Tq - i0, sh.HS, nullptr);
                load_tile<ATT_BWD_QUERY_TILE, HSM>(sdO, dout + first * sh.HS, q_stride, sh.Tq - i0, sh.HS, nullptr);
                if (threadIdx.x < ATT_BWD_QUERY_TILE) {
                    const u32 i = i0 + threadIdx.x;
                    const u64 at = (u64(b) * sh.NH + h) * sh.Tq + i;
                    sLse[threadIdx.x] = i < sh.Tq ? lse[at] * ATT_LOG2E : -RLHF_INF;
                    sD[threadIdx.x] = i < sh.Tq ? D[at] : 0.0f;
                }
                __syncthreads();
                for (u32 r = 0; r < ATT_BWD_QUERY_TILE; ++r) {
                    const float4* qrow = reinterpret_cast<const float4*>(sQ + r * HSM);
                    const float4* drow = reinterpret_cast<const float4*>(sdO + r * HSM);
                    float4 qq[G], dd[G];
                    float s = 0.0f, dp = 0.0f;
#pragma unroll
                    for (int g = 0; g < G; ++g) {
                        qq[g] = qrow[8 * g + t];
                        dd[g] = drow[8 * g + t];
                        s = dot4(s, qq[g], kr[g]);
                        dp = dot4(dp, dd[g], vr[g]);
                    }
#pragma unroll
                    for (int off = 1; off < 8; off <<= 1) {
                        s += __shfl_xor_sync(RLHF_FULL_MASK, s, off);
                        dp += __shfl_xor_sync(RLHF_FULL_MASK, dp, off);
                    }
                    const float lse2 = sLse[r];
                    // Query i0 + r sees key j when j <= its position; rows past Tq have lse −inf.
                    const bool seen = key_ok && lse2 != -RLHF_INF && j <= shift + i0 + r;
                    const float p = seen ? exp2f(s - lse2) : 0.0f;
                    const float ds = p * (dp - sD[r]);
#pragma unroll
                    for (int g = 0; g < G; ++g) {
                        dvr[g] = axpy4(p, dd[g], dvr[g]);
                        dkr[g] = axpy4(ds, qq[g], dkr[g]);
                    }
                }
                __syncthreads();
            }
        }
    }

    if (j >= sh.Tk) return;
#pragma unroll
    for (int g = 0; g < G; ++g) {
        const u32 d0 = 32 * g + 4 * t;
        store_row4(dk + kv_row * sh.HS, d0, sh.HS, scale4(scale, dkr[g]));
        store_row4(dv + kv_row * sh.HS, d0, sh.HS, dvr[g]);
    }
}

template <typename T>
__device__ __forceinline__ void attention_bwd(const T* q, const T* k, const T* v, const u32* key_valid,
                                              const float* lse, const float* D, const T* dout, T* dk,
                                              T* dv, AttShape sh, float scale) {
    __shared__ __align__(16) float sQ[ATT_BWD_QUERY_TILE * ATT_MAX_HS];
    __shared__ __align__(16) float sdO[ATT_BWD_QUERY_TILE * ATT_MAX_HS];
    __shared__ float sLse[ATT_BWD_QUERY_TILE];
    __shared__ float sD[ATT_BWD_QUERY_TILE];
    __shared__ u32 keep[ATT_BWD_KEY_TILE];
    __shared__ u32 any;
    ATT_DISPATCH_HS(sh.HS, attention_bwd_body, q, k, v, key_valid, lse, D, dout, dk, dv, sh, scale, sQ,
                    sdO, sLse, sD, keep, &any);
}

// dq body: the forward's block geometry; sK, sV are [32][HSM] f32.
template <typename T, int HSM>
__device__ __forceinline__ void attention_bwd_dq_body(const T* __restrict__ q, const T* __restrict__ k,
                                                      const T* __restrict__ v,
                                                      const u32* __restrict__ key_valid,
                                                      const float* __restrict__ lse,
                                                      const float* __restrict__ D,
                                                      const T* __restrict__ dout, T* __restrict__ dq,
                                                      AttShape sh, float scale, float* sK, float* sV,
                                                      u32* keep, u32* any) {
    constexpr int G = HSM / 16;
    const u32 b = blockIdx.z, h = blockIdx.y, q0 = blockIdx.x * ATT_QUERY_TILE;
    const u32 kvh = h / (sh.NH / sh.NKV);
    const u32 t = threadIdx.x % 4, i = q0 + threadIdx.x / 4;
    const bool row_ok = i < sh.Tq;
    const u64 q_row = (u64(b) * sh.Tq + i) * sh.NH + h;
    const u64 q_load = (u64(b) * sh.Tq + min(i, sh.Tq - 1)) * sh.NH + h;
    const u64 stat = (u64(b) * sh.NH + h) * sh.Tq + i;
    // One thread of the query's four reads its statistics and shares them (one read per query).
    float lse2 = -RLHF_INF, d_i = 0.0f;
    if (row_ok && t == 0) {
        lse2 = lse[stat] * ATT_LOG2E;
        d_i = D[stat];
    }
    lse2 = __shfl_sync(RLHF_FULL_MASK, lse2, (threadIdx.x % 32) & ~3u);
    d_i = __shfl_sync(RLHF_FULL_MASK, d_i, (threadIdx.x % 32) & ~3u);
    // A query that saw no key (lse −inf) gets dq = 0: it sees nothing here either.
    const u32 pos_end = lse2 != -RLHF_INF ? sh.Tk - sh.Tq + i + 1 : 0;

    float4 qr[G], dor[G], dqr[G];
#pragma unroll
    for (int g = 0; g < G; ++g) {
        const u32 d0 = 16 * g + 4 * t;
        const float4 zero = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        const float4 qx = load_row4(q + q_load * sh.HS, d0, sh.HS, scale * ATT_LOG2E);
        const float4 dx = load_row4(dout + q_load * sh.HS, d0, sh.HS, 1.0f);
        qr[g] = row_ok ? qx : zero;
        dor[g] = row_ok ? dx : zero;
        dqr[g] = zero;
    }

    const u32 q_last = min(q0 + ATT_QUERY_TILE, sh.Tq) - 1;
    const u32 key_end = sh.Tk - sh.Tq + q_last + 1;
    const u64 kv_stride = u64(sh.NKV) * sh.HS;
    for (u32 j0 = 0; j0 < key_end; j0 += ATT_KEY_TILE) {
        load_key_mask(keep, any, key_valid + u64(b) * sh.cap, j0, key_end);
        __syncthreads();
        if (*any) {
            const u64 first = (u64(b) * sh.cap + j0) * sh.NKV + kvh;
            load_tile<ATT_KEY_TILE, HSM>(sK, k + first * sh.HS, kv_stride, key_end - j0, sh.HS, keep);
            load_tile<ATT_KEY_TILE, HSM>(sV, v + first * sh.HS, kv_stride, key_end - j0, sh.HS, keep);
            __syncthreads();
#pragma unroll 4
            for (int j = 0; j < ATT_KEY_TILE; ++j) {
                const float4* kr = reinterpret_cast<const float4*>(sK + j * HSM);
                const float4* vr = reinterpret_cast<const float4*>(sV + j * HSM);
                float s = 0.0f, dp = 0.0f;
#pragma unroll
                for (int g = 0; g < G; ++g) {
                    s = dot4(s, qr[g], kr[4 * g + t]);
                    dp = dot4(dp, dor[g], vr[4 * g + t]);
                }
                s += __shfl_xor_sync(RLHF_FULL_MASK, s, 1);
                dp += __shfl_xor_sync(RLHF_FULL_MASK, dp, 1);
                s += __shfl_xor_sync(RLHF_FULL_MASK, s, 2);
                dp += __shfl_xor_sync(RLHF_FULL_MASK, dp, 2);
                const float p = (keep[j] != 0 && j0 + j < pos_end) ? exp2f(s - lse2) : 0.0f;
                const float ds = p * (dp - d_i);
#pragma unroll
                for (int g = 0; g < G; ++g) dqr[g] = axpy4(ds, kr[4 * g + t], dqr[g]);
            }
        }
        __syncthreads();
    }

    if (!row_ok) return;
#pragma unroll
    for (int g = 0; g < G; ++g) store_row4(dq + q_row * sh.HS, 16 * g + 4 * t, sh.HS, scale4(scale, dqr[g]));
}

template <typename T>
__device__ __forceinline__ void attention_bwd_dq(const T* q, const T* k, const T* v, const u32* key_valid,
                                                 const float* lse, const float* D, const T* dout, T* dq,
                                                 AttShape sh, float scale) {
    __shared__ __align__(16) float sK[ATT_KEY_TILE * ATT_MAX_HS];
    __shared__ __align__(16) float sV[ATT_KEY_TILE * ATT_MAX_HS];
    __shared__ u32 keep[ATT_KEY_TILE];
    __shared__ u32 any;
    ATT_DISPATCH_HS(sh.HS, attention_bwd_dq_body, q, k, v, key_valid, lse, D, dout, dq, sh, scale, sK, sV,
                    keep, &any);
}

extern "C" __global__ void attention_fwd_f32(const float* q, const float* k, const float* v,
                                          const u32* key_valid, float* out, float* lse, u32 Tq,
                                          u32 Tk, u32 cap, u32 NH, u32 NKV, u32 HS, float scale) {
    attention_fwd(q, k, v, key_valid, out, lse, AttShape{Tq, Tk, cap, NH, NKV, HS}, scale);
}
extern "C" __global__ void attention_bwd_prep_f32(const float* out, const float* dout, float* D, u32 N,
                                               u32 Tq, u32 NH, u32 HS) {
    attention_bwd_prep(out, dout, D, N, Tq, NH, HS);
}
extern "C" __global__ void attention_bwd_f32(const float* q, const float* k, const float* v,
                                          const u32* key_valid, const float* lse, const float* D,
                                          const float* dout, float* dk, float* dv, u32 Tq, u32 Tk,
                                          u32 cap, u32 NH, u32 NKV, u32 HS, float scale) {
    attention_bwd(q, k, v, key_valid, lse, D, dout, dk, dv, AttShape{Tq, Tk, cap, NH, NKV, HS},
                  scale);
}
extern "C" __global__ void attention_bwd_dq_f32(const float* q, const float* k, const float* v,
                                             const u32* key_valid, const float* lse,
                                             const float* D, const float* dout, float* dq, u32 Tq,
                                             u32 Tk, u32 cap, u32 NH, u32 NKV, u32 HS,
                                             float scale) {
    attention_bwd_dq(q, k, v, key_valid, lse, D, dout, dq, AttShape{Tq, Tk, cap, NH, NKV, HS},
                     scale);
}

extern "C" __global__ void attention_fwd_bf16(const bf16* q, const bf16* k, const bf16* v,
                                          const u32* key_valid, bf16* out, float* lse, u32 Tq,
                                          u32 Tk, u32 cap, u32 NH, u32 NKV, u32 HS, float scale) {
    attention_fwd(q, k, v, key_valid, out, lse, AttShape{Tq, Tk, cap, NH, NKV, HS}, scale);
}
extern "C" __global__ void attention_bwd_prep_bf16(const bf16* out, const bf16* dout, float* D, u32 N,
                                               u32 Tq, u32 NH, u32 HS) {
    attention_bwd_prep(out, dout, D, N, Tq, NH, HS);
}
extern "C" __global__ void attention_bwd_bf16(const bf16* q, const bf16* k, const bf16* v,
                                          const u32* key_valid, const float* lse, const float* D,
                                          const bf16* dout, bf16* dk, bf16* dv, u32 Tq, u32 Tk,
                                          u32 cap, u32 NH, u32 NKV, u32 HS, float scale) {
    attention_bwd(q, k, v, key_valid, lse, D, dout, dk, dv, AttShape{Tq, Tk, cap, NH, NKV, HS},
                  scale);
}
extern "C" __global__ void attention_bwd_dq_bf16(const bf16* q, const bf16* k, const bf16* v,
                                             const u32* key_valid, const float* lse,
                                             const float* D, const bf16* dout, bf16* dq, u32 Tq,
                                             u32 Tk, u32 cap, u32 NH, u32 NKV, u32 HS,
                                             float scale) {
    attention_bwd_dq(q, k, v, key_valid, lse, D, dout, dq, AttShape{Tq, Tk, cap, NH, NKV, HS},
                     scale);
}
