// common.cuh: helpers shared by every kernel of rlhf-rs.
//
// Storage types are f32 (`float`) and bf16 (`__nv_bfloat16`). Kernels load their storage type,
// compute in f32 and round once on store (round to nearest even, as the Cpu backend does); saved
// statistics and per-row losses are f32 whatever the storage type.
//
// Block-level helpers contain `__syncthreads` and full-mask warp shuffles: they require
// blockDim.x to be a multiple of 32 (at most 1024) and must be reached by every thread of the
// block. Warp-level helpers require all 32 lanes of the warp to be active.
//
// The runtime inlines this file where a kernel says `#include "common.cuh"` (each header at most
// once per kernel), so it needs no include guard.
#include <cuda_bf16.h>

typedef __nv_bfloat16 bf16;
typedef unsigned int u32;
typedef unsigned long long u64;

// NVRTC has no <math.h>, hence no INFINITY or NAN.
#define RLHF_INF __int_as_float(0x7f800000)
#define RLHF_NAN __int_as_float(0x7fffffff)
#define RLHF_FULL_MASK 0xffffffffu

__device__ __forceinline__ float to_f32(float x) { return x; }
__device__ __forceinline__ float to_f32(bf16 x) { return __bfloat162float(x); }

template <typename T> __device__ __forceinline__ T from_f32(float x);
template <> __device__ __forceinline__ float from_f32<float>(float x) { return x; }
template <> __device__ __forceinline__ bf16 from_f32<bf16>(float x) {
    return __float2bfloat16_rn(x);
}

// ---- 16-byte vector access (4 f32 or 8 bf16 per load) ----

// LEN is an enumerator rather than a static member so that NVRTC emits no global for it.
template <typename T> struct alignas(16) Pack {
    enum { LEN = 16 / sizeof(T) };
    T v[LEN];
};

__device__ __forceinline__ bool is_aligned16(const void* p) {
    return (reinterpret_cast<u64>(p) & 15) == 0;
}

template <typename T> __device__ __forceinline__ Pack<T> load_pack(const T* p) {
    Pack<T> out;
    *reinterpret_cast<int4*>(&out) = *reinterpret_cast<const int4*>(p);
    return out;
}

template <typename T> __device__ __forceinline__ void store_pack(T* p, const Pack<T>& value) {
    *reinterpret_cast<int4*>(p) = *reinterpret_cast<const int4*>(&value);
}

// Row stride (floats) of the norm backward's per-block partials: C rounded up to 8 floats, so
// every row starts on a 32-byte sector and the reduce's warps read whole sectors.
__device__ __forceinline__ u64 norm_partial_stride(u32 C) { return (u64(C) + 7) & ~7ull; }

// ---- warp and block reductions ----
//
// The butterfly (xor) pattern adds the same two partial sums in every pair of lanes, and float
// addition is commutative, so every lane ends with the bit-identical total. Block reductions fold
// the per-warp totals in warp order, so the result depends only on blockDim.x, never on timing.

__device__ __forceinline__ float warp_sum(float v) {
    for (int offset = 16; offset > 0; offset >>= 1) {
        v += __shfl_xor_sync(RLHF_FULL_MASK, v, offset);
    }
    return v;
}

// Sum over the block, returned to every thread. `scratch` is 32 floats of shared memory; the
// trailing barrier lets the caller reuse it immediately.
__device__ __forceinline__ float block_sum(float v, float* scratch) {
    v = warp_sum(v);
    if (threadIdx.x % 32 == 0) scratch[threadIdx.x / 32] = v;
    __syncthreads();
    float total = 0.0f;
    for (u32 w = 0; w < blockDim.x / 32; ++w) total += scratch[w];
    __syncthreads();
    return total;
}

// Two sums at once (one pair of barriers instead of two).
__device__ __forceinline__ float2 block_sum2(float a, float b, float2* scratch) {
    a = warp_sum(a);
    b = warp_sum(b);
    if (threadIdx.x % 32 == 0) scratch[threadIdx.x / 32] = make_float2(a, b);
    __syncthreads();
    float2 total = make_float2(0.0f, 0.0f);
    for (u32 w = 0; w < blockDim.x / 32; ++w) {
        total.x += scratch[w].x;
        total.y += scratch[w].y;
    }
    __syncthreads();
    return total;
}

// ---- online log-sum-exp ----
//
// The state (max, sum) stands for log(sum) + max = log Σ exp(x). Logits of -inf contribute
// nothing; a state that has seen nothing is (-inf, 0).

struct LogSumExp {
    float max;
    float sum;
};

__device__ __forceinline__ LogSumExp lse_empty() { return LogSumExp{-RLHF_INF, 0.0f}; }

__device__ __forceinline__ void lse_add(LogSumExp& state, float x) {
    if (x == -RLHF_INF) return;
    if (x > state.max) {
        state.sum *= expf(state.max - x);
        state.max = x;
    }
    state.sum += expf(x - state.max);
}

// Commutative (bit for bit), so the butterfly below leaves every lane with the same state.
__device__ __forceinline__ LogSumExp lse_combine(LogSumExp a, LogSumExp b) {
    const float max = fmaxf(a.max, b.max);
    if (max == -RLHF_INF) return lse_empty();
    return LogSumExp{max, a.sum * expf(a.max - max) + b.sum * expf(b.max - max)};
}

__device__ __forceinline__ LogSumExp warp_lse(LogSumExp state) {
    for (int offset = 16; offset > 0; offset >>= 1) {
        LogSumExp other;
        other.max = __shfl_xor_sync(RLHF_FULL_MASK, state.max, offset);
        other.sum = __shfl_xor_sync(RLHF_FULL_MASK, state.sum, offset);
        state = lse_combine(state, other);
    }
    return state;
}

// log Σ exp over the block, returned to every thread (-inf when every input was -inf).
__device__ __forceinline__ float block_lse(LogSumExp state, LogSumExp* scratch) {
    state = warp_lse(state);
    if (threadIdx.x % 32 == 0) scratch[threadIdx.x / 32] = state;
    __syncthreads();
    LogSumExp total = lse_empty();
    for (u32 w = 0; w < blockDim.x / 32; ++w) total = lse_combine(total, scratch[w]);
    __syncthreads();
    return total.max + logf(total.sum);
}

// ---- elementwise driver ----
//
// Thread `t` of the grid owns the 16-byte pack of elements [t·LEN, t·LEN + LEN) of n, LEN =
// 16 / sizeof(T): consecutive threads read consecutive packs, one 128-bit load per pointer. When
// a pointer is not 16-byte aligned or the pack runs past n, the thread falls back to scalar
// accesses over its range. `Op` maps IN f32 inputs to OUT f32 outputs for one element; an output
// pointer may equal an input pointer (in-place ops), since each element is read before it is
// written by the same thread.

template <typename T, int IN, int OUT, typename Op>
__device__ __forceinline__ void map_elements(const T* const (&in)[IN], T* const (&out)[OUT],
                                             u32 n, const Op& op) {
    constexpr int LEN = Pack<T>::LEN;
    const u64 first = (u64(blockIdx.x) * blockDim.x + threadIdx.x) * LEN;
    if (first >= n) return;
    bool aligned = first + LEN <= n;
#pragma unroll
    for (int j = 0; j < IN; ++j) aligned = aligned && is_aligned16(in[j]);
#pragma unroll
    for (int j = 0; j < OUT; ++j) aligned = aligned && is_aligned16(out[j]);
    if (aligned) {
        Pack<T> a[IN];
        Pack<T> r[OUT];
#pragma unroll
        for (int j = 0; j < IN; ++j) a[j] = load_pack(in[j] + first);
#pragma unroll
        for (int k = 0; k < LEN; ++k) {
            float x[IN];
            float y[OUT];
#pragma unroll
            for (int j = 0; j < IN; ++j) x[j] = to_f32(a[j].v[k]);
            op(x, y);
#pragma unroll
            for (int j = 0; j < OUT; ++j) r[j].v[k] = from_f32<T>(y[j]);
        }
#pragma unroll
        for (int j = 0; j < OUT; ++j) store_pack(out[j] + first, r[j]);
    } else {
        const u64 end = first + LEN < n ? first + LEN : u64(n);
        for (u64 i = first; i < end; ++i) {
            float x[IN];
            float y[OUT];
#pragma unroll
            for (int j = 0; j < IN; ++j) x[j] = to_f32(in[j][i]);
            op(x, y);
#pragma unroll
            for (int j = 0; j < OUT; ++j) out[j][i] = from_f32<T>(y[j]);
        }
    }
}
