// masked_whiten.cu: whitening of the masked elements of x (masked_whiten.rs).
//
// Maths: over the n elements with mask 1, μ = Σ x / n, σ² = Σ (x − μ)² / n (population);
// y = (x − μ)·(1/√(σ² + eps)) (+ μ when keep_mean), y = 0 off the mask; no masked element gives
// y = 0 and μ = σ = 0. stats = {μ, σ, n} f32. x, y any shape, n elements, storage T; mask u32.
//
// One block of 1024 threads (grid = 1) makes three passes over x: Σ x and the count, then
// Σ (x − μ)² around the finished mean (two-pass: no cancellation of Σx² − nμ²), then y. Each
// pass is thread-strided partial sums folded by common.cuh's block_sum in a fixed order, so the
// result depends only on the data. One block because n is the size of a batch of advantages or
// rewards (thousands to a few hundred thousand): the three passes are a few microseconds of
// bandwidth, less than a second launch would cost. Bytes: 3·n·(S + 4) read, n·S written.
#include "common.cuh"

template <typename T>
__device__ __forceinline__ void masked_whiten_fwd(const T* __restrict__ x,
                                                  const u32* __restrict__ mask,
                                                  T* __restrict__ y, float* __restrict__ stats,
                                                  u32 n, u32 keep_mean, float eps) {
    __shared__ float2 scratch2[32];
    __shared__ float scratch[32];
    if (blockIdx.x != 0) return;
    float sum = 0.0f, count = 0.0f;
    for (u32 i = threadIdx.x; i < n; i += blockDim.x) {
        if (mask[i] != 0) {
            sum += to_f32(x[i]);
            count += 1.0f;
        }
    }
    const float2 totals = block_sum2(sum, count, scratch2);
    const float tokens = totals.y;
    const float mean = tokens > 0.0f ? totals.x / tokens : 0.0f;
    float squares = 0.0f;
    for (u32 i = threadIdx.x; i < n; i += blockDim.x) {
        if (mask[i] != 0) {
            const float d = to_f32(x[i]) - mean;
            squares += d * d;
        }
    }
    const float variance = tokens > 0.0f ? block_sum(squares, scratch) / tokens : 0.0f;
    const float inv_std = 1.0f / sqrtf(variance + eps);
    const float shift = keep_mean ? mean : 0.0f;
    for (u32 i = threadIdx.x; i < n; i += blockDim.x) {
        const float v = mask[i] != 0 ? (to_f32(x[i]) - mean) * inv_std + shift : 0.0f;
        y[i] = from_f32<T>(v);
    }
    if (threadIdx.x == 0) {
        stats[0] = mean;
        stats[1] = sqrtf(variance);
        stats[2] = tokens;
    }
}

extern "C" __global__ void masked_whiten_fwd_f32(const float* x, const u32* mask, float* y,
                                                 float* stats, u32 n, u32 keep_mean, float eps) {
    masked_whiten_fwd(x, mask, y, stats, n, keep_mean, eps);
}
extern "C" __global__ void masked_whiten_fwd_bf16(const bf16* x, const u32* mask, bf16* y,
                                                  float* stats, u32 n, u32 keep_mean, float eps) {
    masked_whiten_fwd(x, mask, y, stats, n, keep_mean, eps);
}
