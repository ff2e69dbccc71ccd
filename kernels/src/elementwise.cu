// elementwise.cu: residual add, gradient accumulation and in-place scaling.
//
// Maths (n = number of elements of the tensors, any shape, contiguous):
//   elementwise_fwd_add:   y[i] = a[i] + b[i]            (the residual connection)
//   elementwise_fwd_axpy:  y[i] = y[i] + alpha · x[i]    (in place: gradient accumulation, `+=`)
//   elementwise_fwd_scale: x[i] = alpha · x[i]           (in place: clipping, loss scaling)
// Each is computed in f32 and rounded once to the storage type. These ops have no backward: they
// are the linear pieces the backward passes are built from.
//
// Work split: one thread per 16-byte pack (4 f32 or 8 bf16 elements), consecutive threads on
// consecutive packs, 128-bit loads and stores when every pointer is 16-byte aligned (scalar
// otherwise, and for the tail). Launch: any block size, grid = ceil(n / (blockDim.x · LEN)) with
// LEN = 16 / sizeof(T).
//
// Bytes moved (S = sizeof(T)): add 3·n·S, axpy 3·n·S, scale 2·n·S: the minimum for each.
#include "common.cuh"

struct AddOp {
    __device__ void operator()(const float (&in)[2], float (&out)[1]) const {
        out[0] = in[0] + in[1];
    }
};

struct AxpyOp {
    float alpha;
    __device__ void operator()(const float (&in)[2], float (&out)[1]) const {
        out[0] = in[0] + alpha * in[1];
    }
};

struct ScaleOp {
    float alpha;
    __device__ void operator()(const float (&in)[1], float (&out)[1]) const {
        out[0] = alpha * in[0];
    }
};

template <typename T>
__device__ __forceinline__ void add(const T* a, const T* b, T* y, u32 n) {
    const T* const in[2] = {a, b};
    T* const out[1] = {y};
    map_elements<T, 2, 1>(in, out, n, AddOp{});
}

template <typename T>
__device__ __forceinline__ void axpy(T* y, float alpha, const T* x, u32 n) {
    const T* const in[2] = {y, x};
    T* const out[1] = {y};
    map_elements<T, 2, 1>(in, out, n, AxpyOp{alpha});
}

template <typename T> __device__ __forceinline__ void scale(T* x, float alpha, u32 n) {
    const T* const in[1] = {x};
    T* const out[1] = {x};
    map_elements<T, 1, 1>(in, out, n, ScaleOp{alpha});
}

extern "C" __global__ void elementwise_fwd_add_f32(const float* a, const float* b, float* y,
                                                   u32 n) {
    add(a, b, y, n);
}
extern "C" __global__ void elementwise_fwd_add_bf16(const bf16* a, const bf16* b, bf16* y, u32 n) {
    add(a, b, y, n);
}

extern "C" __global__ void elementwise_fwd_axpy_f32(float* y, float alpha, const float* x,
                                                    u32 n) {
    axpy(y, alpha, x, n);
}
extern "C" __global__ void elementwise_fwd_axpy_bf16(bf16* y, float alpha, const bf16* x, u32 n) {
    axpy(y, alpha, x, n);
}

extern "C" __global__ void elementwise_fwd_scale_f32(float* x, float alpha, u32 n) {
    scale(x, alpha, n);
}
extern "C" __global__ void elementwise_fwd_scale_bf16(bf16* x, float alpha, u32 n) {
    scale(x, alpha, n);
}
