// grad_norm.cu: the sum of squares Σ x² of a tensor, the building block of global gradient-norm
// clipping (runtime/src/ops/grad_norm.rs composes it over every gradient and scales).
//
// Maths: partial[b] = Σ_{i in S_b} x[i]², S_b = { i < n : (i / blockDim.x) mod G = b }, in f32;
// the launcher adds partial[0..G] in order in f64 on the host (the trait returns f64), so the
// second pass of the reduction is 1 KiB of partials, not a kernel.
// Shapes: x [n] T (f32 or bf16, any shape, contiguous); partial [G] f32.
//
// Work split: G is fixed by the launcher (a constant, never derived from n or the device), and
// element i belongs to thread i mod blockDim.x of block (i / blockDim.x) mod G: a grid-stride
// loop with stride G·blockDim.x, consecutive threads on consecutive elements. Each thread sums
// its elements in index order, the block folds its threads with the fixed butterfly-then-warp-
// order of block_sum, and thread 0 writes partial[b]. The grid may be smaller than G when n is
// small (min(G, ceil(n / blockDim.x)) blocks): the blocks left out own no element, and their
// partials are zeros the launcher need not add. So the result is a function of n, G and
// blockDim.x alone — the same bits on every call, batch and GPU. No atomics.
// Bytes moved: n·sizeof(T) read + 4·G written.
#include "common.cuh"

template <typename T>
__device__ __forceinline__ void sum_squares(const T* __restrict__ x, float* __restrict__ partial,
                                            u32 n, u32 G) {
    __shared__ float scratch[32];
    const u64 stride = u64(G) * blockDim.x;
    float acc = 0.0f;
    for (u64 i = u64(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
        const float xi = to_f32(x[i]);
        acc = __fadd_rn(acc, __fmul_rn(xi, xi));
    }
    const float total = block_sum(acc, scratch);
    if (threadIdx.x == 0) partial[blockIdx.x] = total;
}

extern "C" __global__ void grad_norm_fwd_sumsq_f32(const float* x, float* partial, u32 n, u32 G) {
    sum_squares(x, partial, n, G);
}
extern "C" __global__ void grad_norm_fwd_sumsq_bf16(const bf16* x, float* partial, u32 n, u32 G) {
    sum_squares(x, partial, n, G);
}
