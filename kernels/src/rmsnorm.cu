// rmsnorm.cu: RMSNorm over the last dim (Llama, Qwen2), forward and backward.
//
// Maths, per row r of N = B·T rows of C channels:
//   rstd_r = 1 / sqrt(Σ_c x[r,c]² / C + eps)
//   xhat   = x · rstd_r,   y = xhat · weight
// Backward, with g = dy · weight:
//   dx      = rstd_r · (g − xhat · mean_c(g · xhat))   per row (`=`)
//   dweight = Σ_r dy · xhat                            over rows (`=`)
// Shapes: x, y, dy, dx [N, C]; weight, dweight [C]; rstd [N] f32 (saved by the forward, read by
// the backward). All sums in f32; outputs rounded once to the storage type.
//
// rmsnorm_fwd: one warp per row, as layernorm_fwd: row_stream.cuh chunks with the warp as the
// group (lane t folds chunks t, t + 32, ... in index order: the sum does not depend on the row's
// address), aligned 16-byte loads and stores; x is read twice (the re-read hits L1).
// Block: a multiple of 32 threads; grid = ceil(N / (blockDim.x / 32)).
// Bytes moved: 2·N·C·S (x, y) + C·S + 4·N, S = sizeof(T).
//
// rmsnorm_bwd: the layernorm.cu pattern. G blocks take rows b, b + G, ...; the row is read in
// row_stream.cuh chunks, thread t folding chunks t, t + blockDim.x, ... in index order and owning
// their channels, whose dweight partials it accumulates in shared memory; one block reduction
// per row; dx written in a second pass by aligned 16-byte packs of its row. Block b finally writes its
// partial to `partial` [G, C_p] f32 (C_p = C rounded up to 8 floats: rows on 32-byte sectors).
// Dynamic shared memory: C·4 bytes. Block: a multiple of 32.
// rmsnorm_bwd_reduce sums the G partials per channel in block order (one thread per channel,
// grid = ceil(C / blockDim.x)). No float atomics: reproducible bit for bit for a given G.
// Bytes moved: 3·N·C·S (dy, x, dx) + 2·C·S + 4·N + 2·(4·G·C).
#include "common.cuh"
#include "row_stream.cuh"

template <typename T>
__device__ __forceinline__ void rmsnorm_fwd(const T* __restrict__ x, const T* __restrict__ weight,
                                            T* __restrict__ y, float* __restrict__ rstd, u32 N,
                                            u32 C, float eps) {
    const u64 row = u64(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
    const u32 lane = threadIdx.x % 32;
    // The whole warp leaves together, so the shuffles below always see 32 active lanes.
    if (row >= N) return;
    const T* xr = x + row * C;
    constexpr int LEN = Pack<T>::LEN;
    // x's rows are one buffer: reads may run into the neighbours (row_stream.cuh's reach).
    const long long lo = -(long long)(row * C), hi = (long long)((N - row) * C);

    float squares = 0.0f;
    row_chunk_rounds(xr, C, lane, 32, [&](const float(&v)[LEN], int count, u64) {
#pragma unroll
        for (int k = 0; k < LEN; ++k) squares += k < count ? v[k] * v[k] : 0.0f;
        return false;
    }, lo, hi);
    const float rs = 1.0f / sqrtf(warp_sum(squares) / float(C) + eps);

    T* yr = y + row * C;
    uint4 carry = make_uint4(0, 0, 0, 0);
    for (u64 cw = 0; cw < row_packs(yr, C); cw += 32) {
        const u64 c = cw + lane;
        float xv[LEN], wv[LEN];
        row_chunk_f32(xr, C, c, lane, xv, lo, hi);
        row_chunk_f32(weight, C, c, lane, wv);
        Pack<T> out;
#pragma unroll
        for (int k = 0; k < LEN; ++k) out.v[k] = from_f32<T>(xv[k] * rs * wv[k]);
        carry = row_store_chunks(yr, C, cw, lane, pack_words(out), carry);
    }
    if (lane == 0) rstd[row] = rs;
}

template <typename T>
__device__ __forceinline__ void rmsnorm_bwd(const T* __restrict__ dy, const T* __restrict__ x,
                                            const T* __restrict__ weight,
                                            const float* __restrict__ rstd, T* __restrict__ dx,
                                            float* __restrict__ partial, u32 N, u32 C) {
    extern __shared__ float dweight_acc[];
    __shared__ float scratch[32];
    for (u32 c = threadIdx.x; c < C; c += blockDim.x) dweight_acc[c] = 0.0f;
    // The rows' passes give each channel to its chunk's thread, not to the one that zeroed it.
    __syncthreads();

    constexpr int LEN = Pack<T>::LEN;
    const u32 lane = threadIdx.x % 32;
    for (u64 row = blockIdx.x; row < N; row += gridDim.x) {
        const T* dyr = dy + row * C;
        const T* xr = x + row * C;
        const float rs = rstd[row];
        // dy's and x's rows are one buffer each: reads may run into the neighbours.
        const long long lo = -(long long)(row * C), hi = (long long)((N - row) * C);

        // Chunks: thread t folds chunks t, t + blockDim, ... in index order, and owns their
        // channels' accumulators.
        float sum_g_xhat = 0.0f;
        row_chunk_rounds(
            dyr, C, threadIdx.x, blockDim.x,
            [&](const float(&d)[LEN], int count, u64 c) {
                float xv[LEN], wv[LEN];
                row_chunk_f32(xr, C, c, lane, xv, lo, hi);
                row_chunk_f32(weight, C, c, lane, wv);
#pragma unroll
                for (int k = 0; k < LEN; ++k) {
                    if (k >= count) break;
                    const float xhat = xv[k] * rs;
                    sum_g_xhat += d[k] * wv[k] * xhat;
                    dweight_acc[c * LEN + k] += d[k] * xhat;
                }
                return false;
            },
            lo, hi);
        const float mean_g_xhat = block_sum(sum_g_xhat, scratch) / float(C);

        // dx by aligned packs of its row: any thread may write any element.
        T* dxr = dx + row * C;
        const long long m = (long long)((reinterpret_cast<u64>(dxr) & 15) / sizeof(T));
        for (u64 cw = threadIdx.x - lane; cw < row_packs(dxr, C); cw += blockDim.x) {
            const long long f0 = (long long)(cw * LEN) - m;
            Pack<T> dv, xv, wv, out;
            *reinterpret_cast<uint4*>(&dv) = row_span(dyr, C, f0, lane, lo, hi);
            *reinterpret_cast<uint4*>(&xv) = row_span(xr, C, f0, lane, lo, hi);
            *reinterpret_cast<uint4*>(&wv) = row_span(weight, C, f0, lane);
#pragma unroll
            for (int k = 0; k < LEN; ++k) {
                const float xhat = to_f32(xv.v[k]) * rs;
                const float g = to_f32(dv.v[k]) * to_f32(wv.v[k]);
                out.v[k] = from_f32<T>(rs * (g - xhat * mean_g_xhat));
            }
            store_round_packs(dxr, C, cw, lane, pack_words(out));
        }
    }

    float* dweight_partial = partial + u64(blockIdx.x) * norm_partial_stride(C);
    for (u32 c = threadIdx.x; c < C; c += blockDim.x) dweight_partial[c] = dweight_acc[c];
}

template <typename T>
__device__ __forceinline__ void rmsnorm_bwd_reduce(const float* __restrict__ partial,
                                                   T* __restrict__ dweight, u32 G, u32 C) {
    const u64 c = u64(blockIdx.x) * blockDim.x + threadIdx.x;
    if (c >= C) return;
    float dw = 0.0f;
    const u64 stride = norm_partial_stride(C);
    for (u32 b = 0; b < G; ++b) dw += partial[u64(b) * stride + c];
    dweight[c] = from_f32<T>(dw);
}

extern "C" __global__ void rmsnorm_fwd_f32(const float* x, const float* weight, float* y,
                                           float* rstd, u32 N, u32 C, float eps) {
    rmsnorm_fwd(x, weight, y, rstd, N, C, eps);
}
extern "C" __global__ void rmsnorm_fwd_bf16(const bf16* x, const bf16* weight, bf16* y,
                                            float* rstd, u32 N, u32 C, float eps) {
    rmsnorm_fwd(x, weight, y, rstd, N, C, eps);
}

extern "C" __global__ void rmsnorm_bwd_f32(const float* dy, const float* x, const float* weight,
                                           const float* rstd, float* dx, float* partial, u32 N,
                                           u32 C) {
    rmsnorm_bwd(dy, x, weight, rstd, dx, partial, N, C);
}
extern "C" __global__ void rmsnorm_bwd_bf16(const bf16* dy, const bf16* x, const bf16* weight,
                                            const float* rstd, bf16* dx, float* partial, u32 N,
                                            u32 C) {
    rmsnorm_bwd(dy, x, weight, rstd, dx, partial, N, C);
}

extern "C" __global__ void rmsnorm_bwd_reduce_f32(const float* partial, float* dweight, u32 G,
                                                  u32 C) {
    rmsnorm_bwd_reduce(partial, dweight, G, C);
}
extern "C" __global__ void rmsnorm_bwd_reduce_bf16(const float* partial, bf16* dweight, u32 G,
                                                   u32 C) {
    rmsnorm_bwd_reduce(partial, dweight, G, C);
}
