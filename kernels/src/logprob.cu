// logprob.cu: fused token log-prob and entropy of a tempered softmax, forward and backward.
//
// Maths, per row r of N rows (N = B·T) over V classes; logits z [N, V], targets [N] u32 (< V),
// inverse temperature s > 0, x = s·z:
//   lse     = log Σ_j e^(x_j)                 logprob = x_t − lse
//   entropy = −Σ_j p_j log p_j = log S − Q/S  (S = Σ e^(x−m), Q = Σ e^(x−m)·(x−m), m the max)
//   backward (`=`): dz_j = s·[dlogprob·(δ_jt − p_j) − dentropy·p_j·(log p_j + entropy)],
//   p_j = e^(x_j − lse) recomputed from the saved lse (the entropy term only in the `_entropy`
//   variant). Shapes: logprob, entropy, lse, dlogprob, dentropy [N] f32; dlogits [N, V] in the
//   storage type. Exponents below −128 are floored to −128 (e^−128 is 0 in f32), so −inf logits
//   contribute 0 and never 0·inf = NaN; the running max starts at −FLT_MAX, as on the Cpu.
//
// logprob_fwd: one block of 256 threads per row (grid = N). The row is cut into logical chunks
// of LEN = 16/sizeof(T) elements (4 f32, 8 bf16), chunk c covering elements [c·LEN, c·LEN+LEN).
// Thread t owns chunks t, t+256, t+512, ... and folds each into its online state (m, S, Q): the
// chunk's max first (rescaling S and Q once if it rises), then its elements in order. The 256
// states are merged by a butterfly within each warp, then in warp order. Nothing is ever
// materialised: the softmax exists only as this state, so the row is read exactly once.
//
// Determinism: which thread folds which element, and in what order, depends only on the element's
// index in its row, never on N, the row's position in the batch or the address's alignment; the
// merge tree is fixed (blockDim is a constant of the launcher). So a row's logprob, lse and
// entropy are bit-identical whether it is launched alone or inside any batch (tested on Emu by
// scoring a row alone and inside batches of 5 rows with other neighbours and offsets).
//
// Loads: a row starts at row·V·sizeof(T) bytes, which is 16-byte aligned only when V·sizeof(T)
// is. The chunks stream through row_stream.cuh's row_reduce_chunks: 16-byte loads of the aligned
// packs around them, a shuffle and a funnel shift per chunk; only the two packs straddling the
// row's ends are read element by element (one element per lane, in one request, gathered by
// shuffles), and the chunks' values are the same either way. Bytes
// read:
// N·V·S (+ N·V·S/32 of repeated packs when V·S is not a multiple of 16) + 4·N targets +
// N·S target logits; written 12·N.
//
// logprob_fwd_kl: logprob_fwd over the policy's row, then over the reference's row (same
// targets), then KL(π ‖ π_ref) of the token with kl.cuh's estimator, all by one block per row:
// the policy and reference log-probs and the KL in one launch, bit-identical to logprob_fwd
// twice and kl_fwd on f32. Bytes: 2·N·V·S (+ 1/32 for misaligned rows) + 4N + 2·N·S read, 20N
// written.
//
// logprob_bwd[_entropy]: one block of 256 threads per row (grid = N); no reduction, so any
// thread may own any element: row_stream.cuh's row_map, 16-byte loads and stores between the
// row's first and last aligned pack, element by element outside them.
// Bytes: 2·N·V·S + 20·N (+ 4·N with dentropy).
#include "common.cuh"
#include "row_stream.cuh"
#include "kl.cuh"
#include "logprob.cuh"

// The target's log-prob from the row's merged state.
template <typename T>
__device__ __forceinline__ float target_logprob(const SoftmaxState& total, const T* row, u32 target,
                                                u32 V, float scale) {
    const float xt = target < V ? scale * to_f32(row[target]) : RLHF_NAN;
    return (xt - total.max) - logf(total.sum);
}

template <typename T>
__device__ __forceinline__ void logprob_fwd(const T* __restrict__ logits,
                                            const u32* __restrict__ targets,
                                            float* __restrict__ logprob,
                                            float* __restrict__ entropy, float* __restrict__ lse,
                                            u32 N, u32 V, float scale) {
    __shared__ SoftmaxState scratch[32];
    const u64 row = blockIdx.x;
    // The whole block leaves together, so block_softmax's barriers are reached by every thread.
    if (row >= N) return;
    const T* lr = logits + row * V;
    const SoftmaxState total = row_softmax(lr, V, scale, scratch);
    if (threadIdx.x == 0) {
        const float log_sum = logf(total.sum);
        logprob[row] = target_logprob(total, lr, targets[row], V, scale);
        entropy[row] = log_sum - total.shifted / total.sum;
        lse[row] = total.max + log_sum;
    }
}

// The policy's row as logprob_fwd, then the reference's row, then the KL estimate of the token:
// one launch for what logprob_fwd twice and kl_fwd would do, bit for bit.
template <typename T>
__device__ __forceinline__ void logprob_fwd_kl(const T* __restrict__ logits,
                                               const T* __restrict__ ref_logits,
                                               const u32* __restrict__ targets,
                                               float* __restrict__ logprob,
                                               float* __restrict__ entropy,
                                               float* __restrict__ lse,
                                               float* __restrict__ ref_logprob,
                                               float* __restrict__ kl, u32 N, u32 V, float scale,
                                               u32 estimator) {
    __shared__ SoftmaxState scratch[32];
    const u64 row = blockIdx.x;
    if (row >= N) return;
    const T* lr = logits + row * V;
    const T* rr = ref_logits + row * V;
    const SoftmaxState policy = row_softmax(lr, V, scale, scratch);
    const SoftmaxState reference = row_softmax(rr, V, scale, scratch);
    if (threadIdx.x == 0) {
        const u32 target = targets[row];
        const float log_sum = logf(policy.sum);
        const float lp = target_logprob(policy, lr, target, V, scale);
        const float ref_lp = target_logprob(reference, rr, target, V, scale);
        logprob[row] = lp;
        entropy[row] = log_sum - policy.shifted / policy.sum;
        lse[row] = policy.max + log_sum;
        ref_logprob[row] = ref_lp;
        kl[row] = kl_value(estimator, lp - ref_lp);
    }
}


template <typename T, bool ENTROPY>
__device__ __forceinline__ void logprob_bwd(const T* __restrict__ logits,
                                            const u32* __restrict__ targets,
                                            const float* __restrict__ lse,
                                            const float* __restrict__ entropy,
                                            const float* __restrict__ dlogprob,
                                            const float* __restrict__ dentropy,
                                            T* __restrict__ dlogits, u32 N, u32 V, float scale) {
    const u64 row = blockIdx.x;
    if (row >= N) return;
    const T* lr = logits + row * V;
    T* dr = dlogits + row * V;
    const u32 target = targets[row];
    const float row_lse = lse[row];
    const float dlp = dlogprob[row];
    const float dh = ENTROPY ? dentropy[row] : 0.0f;
    const float h = ENTROPY ? entropy[row] : 0.0f;

    row_map(lr, dr, V, [&](u32 v, float z) {
        return logprob_grad<ENTROPY>(scale * z, v == target, scale, row_lse, dlp, dh, h);
    });
}

extern "C" __global__ void logprob_fwd_f32(const float* logits, const u32* targets,
                                           float* logprob, float* entropy, float* lse, u32 N,
                                           u32 V, float inv_temperature) {
    logprob_fwd(logits, targets, logprob, entropy, lse, N, V, inv_temperature);
}
extern "C" __global__ void logprob_fwd_bf16(const bf16* logits, const u32* targets,
                                            float* logprob, float* entropy, float* lse, u32 N,
                                            u32 V, float inv_temperature) {
    logprob_fwd(logits, targets, logprob, entropy, lse, N, V, inv_temperature);
}

extern "C" __global__ void logprob_fwd_kl_f32(const float* logits, const float* ref_logits,
                                              const u32* targets, float* logprob, float* entropy,
                                              float* lse, float* ref_logprob, float* kl, u32 N,
                                              u32 V, float inv_temperature, u32 estimator) {
    logprob_fwd_kl(logits, ref_logits, targets, logprob, entropy, lse, ref_logprob, kl, N, V,
                   inv_temperature, estimator);
}
extern "C" __global__ void logprob_fwd_kl_bf16(const bf16* logits, const bf16* ref_logits,
                                               const u32* targets, float* logprob, float* entropy,
                                               float* lse, float* ref_logprob, float* kl, u32 N,
                                               u32 V, float inv_temperature, u32 estimator) {
    logprob_fwd_kl(logits, ref_logits, targets, logprob, entropy, lse, ref_logprob, kl, N, V,
                   inv_temperature, estimator);
}

extern "C" __global__ void logprob_bwd_f32(const float* logits, const u32* targets,
                                           const float* lse, const float* dlogprob,
                                           float* dlogits, u32 N, u32 V, float inv_temperature) {
    logprob_bwd<float, false>(logits, targets, lse, nullptr, dlogprob, nullptr, dlogits, N, V,
                              inv_temperature);
}
extern "C" __global__ void logprob_bwd_bf16(const bf16* logits, const u32* targets,
                                            const float* lse, const float* dlogprob,
                                            bf16* dlogits, u32 N, u32 V, float inv_temperature) {
    logprob_bwd<bf16, false>(logits, targets, lse, nullptr, dlogprob, nullptr, dlogits, N, V,
                             inv_temperature);
}

extern "C" __global__ void logprob_bwd_entropy_f32(const float* logits, const u32* targets,
                                                   const float* lse, const float* entropy,
                                                   const float* dlogprob, const float* dentropy,
                                                   float* dlogits, u32 N, u32 V,
                                                   float inv_temperature) {
    logprob_bwd<float, true>(logits, targets, lse, entropy, dlogprob, dentropy, dlogits, N, V,
                             inv_temperature);
}
extern "C" __global__ void logprob_bwd_entropy_bf16(const bf16* logits, const u32* targets,
                                                    const float* lse, const float* entropy,
                                                    const float* dlogprob, const float* dentropy,
                                                    bf16* dlogits, u32 N, u32 V,
                                                    float inv_temperature) {
    logprob_bwd<bf16, true>(logits, targets, lse, entropy, dlogprob, dentropy, dlogits, N, V,
                            inv_temperature);
}
