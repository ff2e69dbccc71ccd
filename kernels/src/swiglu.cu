// swiglu.cu: SwiGLU, silu(gate) · up, forward and backward.
//
// Maths, elementwise over n elements (usually B·T·F, F the MLP hidden size):
//   s      = sigmoid(gate) = 1 / (1 + exp(−gate))
//   y      = gate · s · up
//   dgate  = dy · up · s · (1 + gate · (1 − s))
//   dup    = dy · gate · s
// computed in f32, rounded once to the storage type. The backward writes dgate and dup (`=`).
// Large negative gates give exp(−gate) = inf and s = 0 exactly, which is the right limit.
//
// Work split: one thread per 16-byte pack (4 f32 or 8 bf16), as elementwise.cu; any block size,
// grid = ceil(n / (blockDim.x · LEN)), LEN = 16 / sizeof(T).
//
// Bytes moved (S = sizeof(T)): forward 3·n·S, backward 5·n·S; the sigmoid is recomputed rather
// than saved.
#include "common.cuh"

__device__ __forceinline__ float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

struct SwiGluFwdOp {
    __device__ void operator()(const float (&in)[2], float (&out)[1]) const {
        const float gate = in[0];
        out[0] = gate * sigmoid(gate) * in[1];
    }
};

struct SwiGluBwdOp {
    __device__ void operator()(const float (&in)[3], float (&out)[2]) const {
        const float gate = in[0];
        const float up = in[1];
        const float dy = in[2];
        const float s = sigmoid(gate);
        out[0] = dy * up * s * (1.0f + gate * (1.0f - s));
        out[1] = dy * gate * s;
    }
};

template <typename T>
__device__ __forceinline__ void swiglu_fwd(const T* gate, const T* up, T* y, u32 n) {
    const T* const in[2] = {gate, up};
    T* const out[1] = {y};
    map_elements<T, 2, 1>(in, out, n, SwiGluFwdOp{});
}

template <typename T>
__device__ __forceinline__ void swiglu_bwd(const T* gate, const T* up, const T* dy, T* dgate,
                                           T* dup, u32 n) {
    const T* const in[3] = {gate, up, dy};
    T* const out[2] = {dgate, dup};
    map_elements<T, 3, 2>(in, out, n, SwiGluBwdOp{});
}

extern "C" __global__ void swiglu_fwd_f32(const float* gate, const float* up, float* y, u32 n) {
    swiglu_fwd(gate, up, y, n);
}
extern "C" __global__ void swiglu_fwd_bf16(const bf16* gate, const bf16* up, bf16* y, u32 n) {
    swiglu_fwd(gate, up, y, n);
}

extern "C" __global__ void swiglu_bwd_f32(const float* gate, const float* up, const float* dy,
                                          float* dgate, float* dup, u32 n) {
    swiglu_bwd(gate, up, dy, dgate, dup, n);
}
extern "C" __global__ void swiglu_bwd_bf16(const bf16* gate, const bf16* up, const bf16* dy,
                                           bf16* dgate, bf16* dup, u32 n) {
    swiglu_bwd(gate, up, dy, dgate, dup, n);
}
