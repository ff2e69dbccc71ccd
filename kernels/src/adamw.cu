// adamw.cu: one AdamW step (decoupled weight decay, PyTorch's torch.optim.AdamW) in place on f32
// master weights and moments; the `copy` variant also writes the updated weights rounded to bf16
// (the model copy a bf16 forward reads) in the same pass.
//
// Maths, per element i of n (any shape, contiguous), g = grad[i] read as f32:
//   m = β1·m + (1 − β1)·g
//   v = β2·v + (1 − β2)·g·g
//   p = p·decay − (step_size·m) / (√v·inv_sqrt_c2 + eps)
//   copy[i] = bf16(p)                                  (round to nearest even; `copy` variant)
// with decay = 1 − lr·wd, step_size = lr / (1 − β1^t) and inv_sqrt_c2 = 1 / √(1 − β2^t), computed
// by the launcher in f64 exactly as the Cpu backend does (runtime/src/ops/adamw.rs). Every
// operation below is an explicitly rounded intrinsic (__fmul_rn, __fadd_rn, __fsqrt_rn, ...),
// which NVRTC may not contract into fused multiply-adds, in the Cpu's evaluation order: the
// result is the Cpu backend's bit for bit.
//
// Shapes: param, m, v [n] f32; grad [n] T (f32 or bf16, the entry's suffix); copy [n] bf16.
// Work split: one thread per element, consecutive threads on consecutive elements (every warp
// request is 128 contiguous bytes of an f32 array). Block: any size; grid = ceil(n / blockDim.x).
// Nothing is reduced, so the result does not depend on the launch.
// Bytes moved per element: 12 read + 12 written (param, m, v) + sizeof(T) (grad) + 2 (copy): the
// minimum for an in-place step.
#include "common.cuh"

template <typename T>
__device__ __forceinline__ float adamw_element(float* __restrict__ param, const T* __restrict__ grad,
                                               float* __restrict__ m, float* __restrict__ v,
                                               u32 i, float beta1, float beta2, float decay,
                                               float step_size, float inv_sqrt_c2, float eps) {
    const float g = to_f32(grad[i]);
    const float mi = __fadd_rn(__fmul_rn(beta1, m[i]), __fmul_rn(__fsub_rn(1.0f, beta1), g));
    const float vi =
        __fadd_rn(__fmul_rn(beta2, v[i]), __fmul_rn(__fmul_rn(__fsub_rn(1.0f, beta2), g), g));
    const float denom = __fadd_rn(__fmul_rn(__fsqrt_rn(vi), inv_sqrt_c2), eps);
    const float p = __fsub_rn(__fmul_rn(param[i], decay), __fdiv_rn(__fmul_rn(step_size, mi), denom));
    m[i] = mi;
    v[i] = vi;
    param[i] = p;
    return p;
}

template <typename T>
__device__ __forceinline__ void adamw(float* param, const T* grad, float* m, float* v, bf16* copy,
                                      u32 n, float beta1, float beta2, float decay,
                                      float step_size, float inv_sqrt_c2, float eps) {
    const u64 i = u64(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const float p = adamw_element(param, grad, m, v, u32(i), beta1, beta2, decay, step_size,
                                  inv_sqrt_c2, eps);
    if (copy != nullptr) copy[i] = __float2bfloat16_rn(p);
}

extern "C" __global__ void adamw_fwd_f32(float* param, const float* grad, float* m, float* v,
                                         u32 n, float beta1, float beta2, float decay,
                                         float step_size, float inv_sqrt_c2, float eps) {
    adamw(param, grad, m, v, nullptr, n, beta1, beta2, decay, step_size, inv_sqrt_c2, eps);
}
extern "C" __global__ void adamw_fwd_bf16(float* param, const bf16* grad, float* m, float* v,
                                          u32 n, float beta1, float beta2, float decay,
                                          float step_size, float inv_sqrt_c2, float eps) {
    adamw(param, grad, m, v, nullptr, n, beta1, beta2, decay, step_size, inv_sqrt_c2, eps);
}

extern "C" __global__ void adamw_fwd_copy_f32(float* param, const float* grad, float* m, float* v,
                                              bf16* copy, u32 n, float beta1, float beta2,
                                              float decay, float step_size, float inv_sqrt_c2,
                                              float eps) {
    adamw(param, grad, m, v, copy, n, beta1, beta2, decay, step_size, inv_sqrt_c2, eps);
}
extern "C" __global__ void adamw_fwd_copy_bf16(float* param, const bf16* grad, float* m, float* v,
                                               bf16* copy, u32 n, float beta1, float beta2,
                                               float decay, float step_size, float inv_sqrt_c2,
                                               float eps) {
    adamw(param, grad, m, v, copy, n, beta1, beta2, decay, step_size, inv_sqrt_c2, eps);
}
