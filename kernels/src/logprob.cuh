// logprob.cuh: the online softmax state shared by logprob.cu and linear_logprob.cu, and the
// per-element gradient of the tempered log-prob and entropy (maths in logprob.cu's header).
// Include after common.cuh and row_stream.cuh.

#define LOGPROB_EXP_FLOOR (-128.0f)
#define LOGPROB_FLT_MAX 3.402823466e38f

__device__ __forceinline__ float floor_exponent(float d) { return fmaxf(d, LOGPROB_EXP_FLOOR); }

// (m, S, Q): S = Σ e^(x−m), Q = Σ e^(x−m)·(x−m), exponents floored.
struct SoftmaxState {
    float max;
    float sum;
    float shifted;
};

__device__ __forceinline__ SoftmaxState softmax_empty() {
    return SoftmaxState{-LOGPROB_FLT_MAX, 0.0f, 0.0f};
}

// Moves the state to a max of `m` >= state.max.
__device__ __forceinline__ void softmax_rebase(SoftmaxState& st, float m) {
    const float shift = floor_exponent(st.max - m);
    const float factor = expf(shift);
    st.shifted = factor * (st.shifted + shift * st.sum);
    st.sum *= factor;
    st.max = m;
}

// Folds `count` (<= LEN) scaled logits in order: max first, then each element.
template <int LEN>
__device__ __forceinline__ void softmax_fold(SoftmaxState& st, const float (&x)[LEN], int count) {
    float chunk_max = -RLHF_INF;
#pragma unroll
    for (int k = 0; k < LEN; ++k) {
        if (k < count) chunk_max = fmaxf(chunk_max, x[k]);
    }
    if (chunk_max > st.max) softmax_rebase(st, chunk_max);
#pragma unroll
    for (int k = 0; k < LEN; ++k) {
        if (k < count) {
            const float d = floor_exponent(x[k] - st.max);
            const float e = expf(d);
            st.sum += e;
            st.shifted += e * d;
        }
    }
}

__device__ __forceinline__ SoftmaxState softmax_merge(SoftmaxState a, SoftmaxState b) {
    const float m = fmaxf(a.max, b.max);
    softmax_rebase(a, m);
    softmax_rebase(b, m);
    return SoftmaxState{m, a.sum + b.sum, a.shifted + b.shifted};
}

// The block's merged state, on every thread; `scratch` holds 32 states.
__device__ __forceinline__ SoftmaxState block_softmax(SoftmaxState st, SoftmaxState* scratch) {
    for (int offset = 16; offset > 0; offset >>= 1) {
        SoftmaxState other;
        other.max = __shfl_xor_sync(RLHF_FULL_MASK, st.max, offset);
        other.sum = __shfl_xor_sync(RLHF_FULL_MASK, st.sum, offset);
        other.shifted = __shfl_xor_sync(RLHF_FULL_MASK, st.shifted, offset);
        st = softmax_merge(st, other);
    }
    if (threadIdx.x % 32 == 0) scratch[threadIdx.x / 32] = st;
    __syncthreads();
    SoftmaxState total = scratch[0];
    for (u32 w = 1; w < blockDim.x / 32; ++w) total = softmax_merge(total, scratch[w]);
    __syncthreads();
    return total;
}

// The row's merged softmax state on every thread (every thread of the block must call it).
template <typename T>
__device__ __forceinline__ SoftmaxState row_softmax(const T* row, u32 V, float scale,
                                                    SoftmaxState* scratch) {
    constexpr int LEN = Pack<T>::LEN;
    SoftmaxState st = softmax_empty();
    row_reduce_chunks(row, V, [&](float(&x)[LEN], int count) {
#pragma unroll
        for (int k = 0; k < LEN; ++k) x[k] *= scale;
        softmax_fold<LEN>(st, x, count);
    });
    return block_softmax(st, scratch);
}

// d(logit) of one element with scaled logit `x`.
template <bool ENTROPY>
__device__ __forceinline__ float logprob_grad(float x, bool is_target, float scale, float row_lse,
                                              float dlogprob, float dentropy, float row_entropy) {
    const float log_p = floor_exponent(x - row_lse);
    const float p = expf(log_p);
    float g = ENTROPY ? -scale * (dlogprob * p + dentropy * p * (log_p + row_entropy))
                      : -(scale * dlogprob) * p;
    if (is_target) g += scale * dlogprob;
    return g;
}
