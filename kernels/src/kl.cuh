// kl.cuh: Schulman's k1/k2/k3 estimators of KL(π ‖ π_ref) from a token's log-ratio
// log r = logprob − ref_logprob (`estimator` 0, 1, 2): k1 = log r, k2 = (log r)²/2,
// k3 = expm1(−log r) + log r, and their derivatives in log r. Shared by kl.cu and the fused
// log-prob + KL forward of logprob.cu, so both compute the same bits.

__device__ __forceinline__ float kl_value(u32 estimator, float log_ratio) {
    if (estimator == 0) return log_ratio;
    if (estimator == 1) return 0.5f * log_ratio * log_ratio;
    return expm1f(-log_ratio) + log_ratio;
}

__device__ __forceinline__ float kl_derivative(u32 estimator, float log_ratio) {
    if (estimator == 0) return 1.0f;
    if (estimator == 1) return log_ratio;
    return -expm1f(-log_ratio);
}
