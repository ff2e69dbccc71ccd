// gelu.cu: GELU in its tanh form (GPT-2's gelu_new), forward and backward.
//
// Maths, elementwise over n elements (usually B·T·4C):
//   u     = k0 · (x + k1 · x³),  k0 = sqrt(2/π), k1 = 0.044715
//   y     = 0.5 · x · (1 + tanh u)
//   dx    = dy · (0.5 · (1 + tanh u) + 0.5 · x · (1 − tanh² u) · k0 · (1 + 3 · k1 · x²))
// computed in f32, rounded once to the storage type. The backward writes dx (`=`).
//
// Work split: one thread per 16-byte pack (4 f32 or 8 bf16), as elementwise.cu; any block size,
// grid = ceil(n / (blockDim.x · LEN)), LEN = 16 / sizeof(T).
//
// Bytes moved (S = sizeof(T)): forward 2·n·S, backward 3·n·S; x is re-read by the backward
// instead of saving tanh u.
#include "common.cuh"

#define GELU_K0 0.7978845608028654f
#define GELU_K1 0.044715f

struct GeluFwdOp {
    __device__ void operator()(const float (&in)[1], float (&out)[1]) const {
        const float x = in[0];
        const float t = tanhf(GELU_K0 * (x + GELU_K1 * x * x * x));
        out[0] = 0.5f * x * (1.0f + t);
    }
};

struct GeluBwdOp {
    __device__ void operator()(const float (&in)[2], float (&out)[1]) const {
        const float x = in[0];
        const float dy = in[1];
        const float x2 = x * x;
        const float t = tanhf(GELU_K0 * (x + GELU_K1 * x2 * x));
        const float du_dx = GELU_K0 * (1.0f + 3.0f * GELU_K1 * x2);
        out[0] = dy * (0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * du_dx);
    }
};

template <typename T> __device__ __forceinline__ void gelu_fwd(const T* x, T* y, u32 n) {
    const T* const in[1] = {x};
    T* const out[1] = {y};
    map_elements<T, 1, 1>(in, out, n, GeluFwdOp{});
}

template <typename T>
__device__ __forceinline__ void gelu_bwd(const T* x, const T* dy, T* dx, u32 n) {
    const T* const in[2] = {x, dy};
    T* const out[1] = {dx};
    map_elements<T, 2, 1>(in, out, n, GeluBwdOp{});
}

extern "C" __global__ void gelu_fwd_f32(const float* x, float* y, u32 n) { gelu_fwd(x, y, n); }
extern "C" __global__ void gelu_fwd_bf16(const bf16* x, bf16* y, u32 n) { gelu_fwd(x, y, n); }

extern "C" __global__ void gelu_bwd_f32(const float* x, const float* dy, float* dx, u32 n) {
    gelu_bwd(x, dy, dx, n);
}
extern "C" __global__ void gelu_bwd_bf16(const bf16* x, const bf16* dy, bf16* dx, u32 n) {
    gelu_bwd(x, dy, dx, n);
}
