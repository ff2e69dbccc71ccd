// linear_logprob.cu: the per-chunk kernels of the chunked LM head + log-prob ("fused linear
// cross-entropy"), which never materialises the [N, V] logits.
//
// Maths: hidden h [N, C], LM head weight W [V, C], targets [N] u32 (< V), inverse temperature
// s > 0. The logits z = h·Wᵀ are produced one vocabulary chunk at a time by the GEMM
// (z_c = h·W[o..o+Vc]ᵀ, [N, Vc], in the storage type T), and each chunk is folded here into
// per-row online softmax state over x = s·z, all [N] f32:
//   m = running max,  S = Σ e^(x−m),  Q = Σ e^(x−m)·(x−m),  x_t = the target's scaled logit.
// Merging a chunk's (m', S', Q') into (m, S, Q) rebases both to M = max(m, m') (S·e^(m−M),
// (Q + (m−M)·S)·e^(m−M)) and adds them, as logprob.cu's block merge does. At the end:
//   lse = m + log S,   logprob = (x_t − m) − log S,   entropy = log S − Q/S,
// exactly logprob_fwd's formulas on the merged state. Backward (`=`, per chunk, from the saved
// lse and entropy): dz_j = s·[dlogprob·(δ_jt − p_j) − dentropy·p_j·(log p_j + entropy)],
// p_j = e^(x_j − lse), logprob.cu's element gradient with the one-hot at column t − o of the
// chunk (none when the target lies in another chunk). The GEMMs (dh += dz_c·W_c,
// dW_c = dz_cᵀ·h) are the runtime's (runtime/src/ops/linear_logprob.rs).
//
// linear_logprob_fwd[_first|_last|_whole]: one block of 256 threads per row (grid = N). The
// chunk's row is reduced by logprob.cuh's row_softmax (thread t folds 16-byte chunks t, t+256,
// ... in order, then a fixed butterfly and warp-order merge), then thread 0 merges it after the
// incoming state and takes the target's logit if the target lies in [o, o+Vc). `_first` (the
// first chunk) starts from the empty state (m = −FLT_MAX, S = Q = 0, x_t = NaN) and reads none;
// `_last` (the last chunk) writes logprob, entropy and lse instead of the state; `_whole` is
// both (one chunk covers V: the same reduction and formulas as logprob_fwd, bit for bit). The
// fold order depends only on the column index and Vc, never on N or the row's place in the
// batch, so a row's results are bit-identical alone or in any batch for a given Vc (given a
// GEMM whose rows do not depend on the batch either).
// Bytes: N·Vc·S read (+ 1/32 for rows not 16-byte aligned) + 4N targets + N·S target logit
// + 16N state read (not by `_first`/`_whole`) + 16N state written (12N results by
// `_last`/`_whole`).
//
// linear_logprob_bwd[_entropy]: one block of 256 threads per row (grid = N), no reduction:
// row_stream.cuh's row_map over the chunk's row (16-byte packs between the row's first and last
// aligned pack). Bytes: 2·N·Vc·S + 12N (+ 8N with dentropy: entropy, dentropy).
//
// The whole op, per forward, moves the logits twice (the GEMM's write, the fold's read), as the
// unfused GEMM + logprob_fwd does; what chunking saves is memory: one [N, Vc] chunk is live
// instead of [N, V]. See docs/ARCHITECTURE.md for the measured bytes.
#include "common.cuh"
#include "row_stream.cuh"
#include "logprob.cuh"

// The four forward variants: FIRST reads no incoming state (the empty one, m = −FLT_MAX,
// S = Q = 0, x_t = NaN); LAST writes logprob, entropy and lse instead of the state.
template <typename T, bool FIRST, bool LAST>
__device__ __forceinline__ void linear_logprob_fold(
    const T* __restrict__ chunk, const u32* __restrict__ targets, const float* __restrict__ max_in,
    const float* __restrict__ sum_in, const float* __restrict__ shifted_in,
    const float* __restrict__ target_in, float* __restrict__ out0, float* __restrict__ out1,
    float* __restrict__ out2, float* __restrict__ target_out, u32 N, u32 Vc, u32 offset,
    float scale) {
    __shared__ SoftmaxState scratch[32];
    const u64 row = blockIdx.x;
    // The whole block leaves together, so block_softmax's barriers are reached by every thread.
    if (row >= N) return;
    const T* cr = chunk + row * Vc;
    SoftmaxState st = row_softmax(cr, Vc, scale, scratch);
    if (threadIdx.x == 0) {
        const u32 target = targets[row];
        const bool here = target >= offset && target - offset < Vc;
        float xt = here ? scale * to_f32(cr[target - offset]) : RLHF_NAN;
        if (!FIRST) {
            const SoftmaxState before{max_in[row], sum_in[row], shifted_in[row]};
            st = softmax_merge(before, st);
            if (!here) xt = target_in[row];
        }
        if (LAST) {
            // logprob_fwd's formulas, so that one whole-vocabulary chunk gives its bits.
            const float log_sum = logf(st.sum);
            out0[row] = (xt - st.max) - log_sum;
            out1[row] = log_sum - st.shifted / st.sum;
            out2[row] = st.max + log_sum;
        } else {
            out0[row] = st.max;
            out1[row] = st.sum;
            out2[row] = st.shifted;
            target_out[row] = xt;
        }
    }
}

template <typename T, bool ENTROPY>
__device__ __forceinline__ void linear_logprob_bwd(
    const T* __restrict__ chunk, const u32* __restrict__ targets, const float* __restrict__ lse,
    const float* __restrict__ entropy, const float* __restrict__ dlogprob,
    const float* __restrict__ dentropy, T* __restrict__ dchunk, u32 N, u32 Vc, u32 offset,
    float scale) {
    const u64 row = blockIdx.x;
    if (row >= N) return;
    const T* cr = chunk + row * Vc;
    T* dr = dchunk + row * Vc;
    const u32 target = targets[row];
    const float row_lse = lse[row];
    const float dlp = dlogprob[row];
    const float dh = ENTROPY ? dentropy[row] : 0.0f;
    const float h = ENTROPY ? entropy[row] : 0.0f;
    row_map(cr, dr, Vc, [&](u32 v, float z) {
        return logprob_grad<ENTROPY>(scale * z, v + offset == target, scale, row_lse, dlp, dh, h);
    });
}

extern "C" __global__ void linear_logprob_fwd_first_f32(
    const float* chunk, const u32* targets, float* max_out, float* sum_out, float* shifted_out,
    float* target_out, u32 N, u32 Vc, u32 offset, float inv_temperature) {
    linear_logprob_fold<float, true, false>(chunk, targets, nullptr, nullptr, nullptr, nullptr,
                                          max_out, sum_out, shifted_out, target_out, N, Vc,
                                          offset, inv_temperature);
}
extern "C" __global__ void linear_logprob_fwd_first_bf16(
    const bf16* chunk, const u32* targets, float* max_out, float* sum_out, float* shifted_out,
    float* target_out, u32 N, u32 Vc, u32 offset, float inv_temperature) {
    linear_logprob_fold<bf16, true, false>(chunk, targets, nullptr, nullptr, nullptr, nullptr,
                                          max_out, sum_out, shifted_out, target_out, N, Vc,
                                          offset, inv_temperature);
}
extern "C" __global__ void linear_logprob_fwd_f32(
    const float* chunk, const u32* targets, const float* max_in, const float* sum_in,
    const float* shifted_in, const float* target_in, float* max_out, float* sum_out,
    float* shifted_out, float* target_out, u32 N, u32 Vc, u32 offset, float inv_temperature) {
    linear_logprob_fold<float, false, false>(chunk, targets, max_in, sum_in, shifted_in, target_in,
                                           max_out, sum_out, shifted_out, target_out, N, Vc,
                                           offset, inv_temperature);
}
extern "C" __global__ void linear_logprob_fwd_bf16(
    const bf16* chunk, const u32* targets, const float* max_in, const float* sum_in,
    const float* shifted_in, const float* target_in, float* max_out, float* sum_out,
    float* shifted_out, float* target_out, u32 N, u32 Vc, u32 offset, float inv_temperature) {
    linear_logprob_fold<bf16, false, false>(chunk, targets, max_in, sum_in, shifted_in, target_in,
                                           max_out, sum_out, shifted_out, target_out, N, Vc,
                                           offset, inv_temperature);
}
extern "C" __global__ void linear_logprob_fwd_last_f32(
    const float* chunk, const u32* targets, const float* max_in, const float* sum_in,
    const float* shifted_in, const float* target_in, float* logprob, float* entropy, float* lse,
    u32 N, u32 Vc, u32 offset, float inv_temperature) {
    linear_logprob_fold<float, false, true>(chunk, targets, max_in, sum_in, shifted_in, target_in,
                                          logprob, entropy, lse, nullptr, N, Vc, offset,
                                          inv_temperature);
}
extern "C" __global__ void linear_logprob_fwd_last_bf16(
    const bf16* chunk, const u32* targets, const float* max_in, const float* sum_in,
    const float* shifted_in, const float* target_in, float* logprob, float* entropy, float* lse,
    u32 N, u32 Vc, u32 offset, float inv_temperature) {
    linear_logprob_fold<bf16, false, true>(chunk, targets, max_in, sum_in, shifted_in, target_in,
                                          logprob, entropy, lse, nullptr, N, Vc, offset,
                                          inv_temperature);
}
extern "C" __global__ void linear_logprob_fwd_whole_f32(
    const float* chunk, const u32* targets, float* logprob, float* entropy, float* lse, u32 N,
    u32 Vc, u32 offset, float inv_temperature) {
    linear_logprob_fold<float, true, true>(chunk, targets, nullptr, nullptr, nullptr, nullptr,
                                         logprob, entropy, lse, nullptr, N, Vc, offset,
                                         inv_temperature);
}
extern "C" __global__ void linear_logprob_fwd_whole_bf16(
    const bf16* chunk, const u32* targets, float* logprob, float* entropy, float* lse, u32 N,
    u32 Vc, u32 offset, float inv_temperature) {
    linear_logprob_fold<bf16, true, true>(chunk, targets, nullptr, nullptr, nullptr, nullptr,
                                         logprob, entropy, lse, nullptr, N, Vc, offset,
                                         inv_temperature);
}

extern "C" __global__ void linear_logprob_bwd_f32(const float* chunk, const u32* targets,
                                                  const float* lse, const float* dlogprob,
                                                  float* dchunk, u32 N, u32 Vc, u32 offset,
                                                  float inv_temperature) {
    linear_logprob_bwd<float, false>(chunk, targets, lse, nullptr, dlogprob, nullptr, dchunk, N,
                                     Vc, offset, inv_temperature);
}
extern "C" __global__ void linear_logprob_bwd_bf16(const bf16* chunk, const u32* targets,
                                                   const float* lse, const float* dlogprob,
                                                   bf16* dchunk, u32 N, u32 Vc, u32 offset,
                                                   float inv_temperature) {
    linear_logprob_bwd<bf16, false>(chunk, targets, lse, nullptr, dlogprob, nullptr, dchunk, N,
                                    Vc, offset, inv_temperature);
}

extern "C" __global__ void linear_logprob_bwd_entropy_f32(const float* chunk, const u32* targets,
                                                          const float* lse, const float* entropy,
                                                          const float* dlogprob,
                                                          const float* dentropy, float* dchunk,
                                                          u32 N, u32 Vc, u32 offset,
                                                          float inv_temperature) {
    linear_logprob_bwd<float, true>(chunk, targets, lse, entropy, dlogprob, dentropy, dchunk, N,
                                    Vc, offset, inv_temperature);
}
extern "C" __global__ void linear_logprob_bwd_entropy_bf16(const bf16* chunk, const u32* targets,
                                                           const float* lse, const float* entropy,
                                                           const float* dlogprob,
                                                           const float* dentropy, bf16* dchunk,
                                                           u32 N, u32 Vc, u32 offset,
                                                           float inv_temperature) {
    linear_logprob_bwd<bf16, true>(chunk, targets, lse, entropy, dlogprob, dentropy, dchunk, N,
                                   Vc, offset, inv_temperature);
}
