// kl.cu: Schulman's k1/k2/k3 estimators of KL(π ‖ π_ref) per token, forward and backward.
//
// Maths, per element with log r = logprob − ref_logprob (any shape, n elements, storage T):
//   k1 = log r              k2 = (log r)²/2              k3 = expm1(−log r) + log r
//   backward (`=`): dlogprob = dkl·{1, log r, −expm1(−log r)}; the reference gets none.
// `estimator` is 0, 1, 2 for k1, k2, k3. expm1 keeps the digits of e^(−log r) − 1 for the small
// log-ratios that policy updates produce.
//
// Elementwise (common.cuh's map_elements): one thread per 16-byte pack (4 f32, 8 bf16) of every
// tensor, scalar accesses for a tail or an unaligned pointer; no reduction. Bytes: 3·n·S forward,
// 4·n·S backward. The policy's log-probs usually come from logprob_fwd (f32); the k estimators
// are computed in f32 and rounded once to T.
#include "common.cuh"
#include "kl.cuh"

struct KlFwdOp {
    u32 estimator;
    __device__ void operator()(const float (&x)[2], float (&y)[1]) const {
        y[0] = kl_value(estimator, x[0] - x[1]);
    }
};

struct KlBwdOp {
    u32 estimator;
    __device__ void operator()(const float (&x)[3], float (&y)[1]) const {
        y[0] = x[2] * kl_derivative(estimator, x[0] - x[1]);
    }
};

template <typename T>
__device__ __forceinline__ void kl_fwd(const T* logprob, const T* ref_logprob, T* kl, u32 n,
                                       u32 estimator) {
    const T* const in[2] = {logprob, ref_logprob};
    T* const out[1] = {kl};
    map_elements<T, 2, 1>(in, out, n, KlFwdOp{estimator});
}

template <typename T>
__device__ __forceinline__ void kl_bwd(const T* logprob, const T* ref_logprob, const T* dkl,
                                       T* dlogprob, u32 n, u32 estimator) {
    const T* const in[3] = {logprob, ref_logprob, dkl};
    T* const out[1] = {dlogprob};
    map_elements<T, 3, 1>(in, out, n, KlBwdOp{estimator});
}

extern "C" __global__ void kl_fwd_f32(const float* logprob, const float* ref_logprob, float* kl,
                                      u32 n, u32 estimator) {
    kl_fwd(logprob, ref_logprob, kl, n, estimator);
}
extern "C" __global__ void kl_fwd_bf16(const bf16* logprob, const bf16* ref_logprob, bf16* kl,
                                       u32 n, u32 estimator) {
    kl_fwd(logprob, ref_logprob, kl, n, estimator);
}
extern "C" __global__ void kl_bwd_f32(const float* logprob, const float* ref_logprob,
                                      const float* dkl, float* dlogprob, u32 n, u32 estimator) {
    kl_bwd(logprob, ref_logprob, dkl, dlogprob, n, estimator);
}
extern "C" __global__ void kl_bwd_bf16(const bf16* logprob, const bf16* ref_logprob,
                                       const bf16* dkl, bf16* dlogprob, u32 n, u32 estimator) {
    kl_bwd(logprob, ref_logprob, dkl, dlogprob, n, estimator);
}
