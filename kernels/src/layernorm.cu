// layernorm.cu: LayerNorm over the last dim, forward and backward.
//
// Maths, per row r of N = B·T rows of C channels:
//   mean_r = Σ_c x[r,c] / C
//   var_r  = Σ_c (x[r,c] − mean_r)² / C             (two passes, not E[x²] − E[x]²)
//   rstd_r = 1 / sqrt(var_r + eps)
//   xhat   = (x − mean_r) · rstd_r,   y = xhat · weight + bias
// Backward, with g = dy · weight:
//   dx      = rstd_r · (g − mean_c(g) − xhat · mean_c(g · xhat))   per row (`=`)
//   dweight = Σ_r dy · xhat,   dbias = Σ_r dy                    over rows (`=`)
// Shapes: x, y, dy, dx [N, C]; weight, bias, dweight, dbias [C]; mean, rstd [N] f32 (saved by the
// forward, read by the backward). All sums in f32; outputs rounded once to the storage type.
//
// layernorm_fwd: one warp per row, through row_stream.cuh with the warp as the group: lane t
// folds chunks t, t + 32, ... of 16 bytes (4 f32 / 8 bf16 channels) in index order, so a row's
// sums do not depend on its address; x (and weight, bias in the output pass) are read as aligned
// 16-byte packs funnel-shifted into chunks, y written as aligned 16-byte packs (the packs that
// straddle a row's ends one element per lane, in one request). x is read three times (sum,
// squared deviations, output), the re-reads hitting L1.
// Block: a multiple of 32 threads; grid = ceil(N / (blockDim.x / 32)).
// Bytes moved: N·C·S (x, from DRAM once) + N·C·S (y) + 2·C·S + 8·N, S = sizeof(T).
//
// layernorm_bwd: G blocks (gridDim.x, chosen by the launcher from the device alone), block b
// takes rows b, b + G, b + 2G, ... in turn. Per row: one pass over row_stream.cuh chunks (16
// bytes of channels; thread t folds chunks t, t + blockDim.x, ... in index order, so the row sums
// do not depend on the row's address; dy, x and weight read as aligned packs funnel-shifted into
// chunks) accumulates the two row sums and, in shared memory, this block's dweight/dbias partial
// for the channels each thread owns (the channels of its chunks, for the whole kernel, so no two
// threads ever touch the same accumulator); a block reduction; a second pass writes dx by
// aligned 16-byte packs of its row (thread t packs t, t + blockDim.x, ...; the packs straddling
// the row's ends one element per lane in one request). At the end block b writes its partials to `partial` [2, G, C] f32 (dweight partials, then
// dbias partials; rows C_p = C rounded up to 8 floats apart, so each starts on a 32-byte sector).
// Dynamic shared memory: 2·C·4 bytes. Block: a multiple of 32 threads.
// layernorm_bwd_reduce then sums the G partials of each channel in block order: one thread per
// channel, grid = ceil(C / blockDim.x). No float atomics anywhere: for a given G and blockDim
// the gradients are bit-for-bit reproducible.
// Bytes moved: 3·N·C·S (dy, x, dx) + 2·C·S + 8·N + 2·(8·G·C) (partials written, then read).
#include "common.cuh"
#include "row_stream.cuh"

template <typename T>
__device__ __forceinline__ void layernorm_fwd(const T* __restrict__ x, const T* __restrict__ weight,
                                              const T* __restrict__ bias, T* __restrict__ y,
                                              float* __restrict__ mean, float* __restrict__ rstd,
                                              u32 N, u32 C, float eps) {
    const u64 row = u64(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
    const u32 lane = threadIdx.x % 32;
    // The whole warp leaves together, so the shuffles below always see 32 active lanes.
    if (row >= N) return;
    const T* xr = x + row * C;
    constexpr int LEN = Pack<T>::LEN;
    // x's rows are one buffer: reads may run into the neighbours (row_stream.cuh's reach).
    const long long lo = -(long long)(row * C), hi = (long long)((N - row) * C);

    float sum = 0.0f;
    row_chunk_rounds(xr, C, lane, 32, [&](const float(&v)[LEN], int count, u64) {
#pragma unroll
        for (int k = 0; k < LEN; ++k) sum += k < count ? v[k] : 0.0f;
        return false;
    }, lo, hi);
    const float m = warp_sum(sum) / float(C);

    float squares = 0.0f;
    row_chunk_rounds(xr, C, lane, 32, [&](const float(&v)[LEN], int count, u64) {
#pragma unroll
        for (int k = 0; k < LEN; ++k) {
            const float d = k < count ? v[k] - m : 0.0f;
            squares += d * d;
        }
        return false;
    }, lo, hi);
    const float rs = 1.0f / sqrtf(warp_sum(squares) / float(C) + eps);

    T* yr = y + row * C;
    uint4 carry = make_uint4(0, 0, 0, 0);
    for (u64 cw = 0; cw < row_packs(yr, C); cw += 32) {
        const u64 c = cw + lane;
        float xv[LEN], wv[LEN], bv[LEN];
        row_chunk_f32(xr, C, c, lane, xv, lo, hi);
        row_chunk_f32(weight, C, c, lane, wv);
        row_chunk_f32(bias, C, c, lane, bv);
        Pack<T> out;
#pragma unroll
        for (int k = 0; k < LEN; ++k) out.v[k] = from_f32<T>((xv[k] - m) * rs * wv[k] + bv[k]);
        carry = row_store_chunks(yr, C, cw, lane, pack_words(out), carry);
    }
    if (lane == 0) {
        mean[row] = m;
        rstd[row] = rs;
    }
}

template <typename T>
__device__ __forceinline__ void layernorm_bwd(const T* __restrict__ dy, const T* __restrict__ x,
                                              const T* __restrict__ weight,
                                              const float* __restrict__ mean,
                                              const float* __restrict__ rstd, T* __restrict__ dx,
                                              float* __restrict__ partial, u32 N, u32 C) {
    extern __shared__ float accumulators[];
    __shared__ float2 scratch[32];
    float* dweight_acc = accumulators;
    float* dbias_acc = accumulators + C;
    for (u32 c = threadIdx.x; c < C; c += blockDim.x) {
        dweight_acc[c] = 0.0f;
        dbias_acc[c] = 0.0f;
    }
    // The rows' passes give each channel to its chunk's thread, not to the one that zeroed it.
    __syncthreads();

    constexpr int LEN = Pack<T>::LEN;
    const u32 lane = threadIdx.x % 32;
    for (u64 row = blockIdx.x; row < N; row += gridDim.x) {
        const T* dyr = dy + row * C;
        const T* xr = x + row * C;
        const float m = mean[row];
        const float rs = rstd[row];
        // dy's and x's rows are one buffer each: reads may run into the neighbours.
        const long long lo = -(long long)(row * C), hi = (long long)((N - row) * C);

        // Chunks: thread t folds chunks t, t + blockDim, ... in index order, and owns their
        // channels' accumulators.
        float sum_g = 0.0f;
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
                    const float xhat = (xv[k] - m) * rs;
                    const float g = d[k] * wv[k];
                    sum_g += g;
                    sum_g_xhat += g * xhat;
                    dweight_acc[c * LEN + k] += d[k] * xhat;
                    dbias_acc[c * LEN + k] += d[k];
                }
                return false;
            },
            lo, hi);
        const float2 sums = block_sum2(sum_g, sum_g_xhat, scratch);
        const float mean_g = sums.x / float(C);
        const float mean_g_xhat = sums.y / float(C);

        // dx by aligned packs of its row: any thread may write any element.
        T* dxr = dx + row * C;
        const long long mis = (long long)((reinterpret_cast<u64>(dxr) & 15) / sizeof(T));
        for (u64 cw = threadIdx.x - lane; cw < row_packs(dxr, C); cw += blockDim.x) {
            const long long f0 = (long long)(cw * LEN) - mis;
            Pack<T> dv, xv, wv, out;
            *reinterpret_cast<uint4*>(&dv) = row_span(dyr, C, f0, lane, lo, hi);
            *reinterpret_cast<uint4*>(&xv) = row_span(xr, C, f0, lane, lo, hi);
            *reinterpret_cast<uint4*>(&wv) = row_span(weight, C, f0, lane);
#pragma unroll
            for (int k = 0; k < LEN; ++k) {
                const float xhat = (to_f32(xv.v[k]) - m) * rs;
                const float g = to_f32(dv.v[k]) * to_f32(wv.v[k]);
                out.v[k] = from_f32<T>(rs * (g - mean_g - xhat * mean_g_xhat));
            }
            store_round_packs(dxr, C, cw, lane, pack_words(out));
        }
    }

    const u64 stride = norm_partial_stride(C);
    float* dweight_partial = partial + u64(blockIdx.x) * stride;
    float* dbias_partial = partial + (u64(gridDim.x) + blockIdx.x) * stride;
    for (u32 c = threadIdx.x; c < C; c += blockDim.x) {
        dweight_partial[c] = dweight_acc[c];
        dbias_partial[c] = dbias_acc[c];
    }
}

template <typename T>
__device__ __forceinline__ void layernorm_bwd_reduce(const float* __restrict__ partial,
                                                     T* __restrict__ dweight,
                                                     T* __restrict__ dbias, u32 G, u32 C) {
    const u64 c = u64(blockIdx.x) * blockDim.x + threadIdx.x;
    if (c >= C) return;
    float dw = 0.0f;
    float db = 0.0f;
    const u64 stride = norm_partial_stride(C);
    for (u32 b = 0; b < G; ++b) {
        dw += partial[u64(b) * stride + c];
        db += partial[(u64(G) + b) * stride + c];
    }
    dweight[c] = from_f32<T>(dw);
    dbias[c] = from_f32<T>(db);
}

extern "C" __global__ void layernorm_fwd_f32(const float* x, const float* weight,
                                             const float* bias, float* y, float* mean,
                                             float* rstd, u32 N, u32 C, float eps) {
    layernorm_fwd(x, weight, bias, y, mean, rstd, N, C, eps);
}
extern "C" __global__ void layernorm_fwd_bf16(const bf16* x, const bf16* weight, const bf16* bias,
                                              bf16* y, float* mean, float* rstd, u32 N, u32 C,
                                              float eps) {
    layernorm_fwd(x, weight, bias, y, mean, rstd, N, C, eps);
}

extern "C" __global__ void layernorm_bwd_f32(const float* dy, const float* x, const float* weight,
                                             const float* mean, const float* rstd, float* dx,
                                             float* partial, u32 N, u32 C) {
    layernorm_bwd(dy, x, weight, mean, rstd, dx, partial, N, C);
}
extern "C" __global__ void layernorm_bwd_bf16(const bf16* dy, const bf16* x, const bf16* weight,
                                              const float* mean, const float* rstd, bf16* dx,
                                              float* partial, u32 N, u32 C) {
    layernorm_bwd(dy, x, weight, mean, rstd, dx, partial, N, C);
}

extern "C" __global__ void layernorm_bwd_reduce_f32(const float* partial, float* dweight,
                                                    float* dbias, u32 G, u32 C) {
    layernorm_bwd_reduce(partial, dweight, dbias, G, C);
}
extern "C" __global__ void layernorm_bwd_reduce_bf16(const float* partial, bf16* dweight,
                                                     bf16* dbias, u32 G, u32 C) {
    layernorm_bwd_reduce(partial, dweight, dbias, G, C);
}
