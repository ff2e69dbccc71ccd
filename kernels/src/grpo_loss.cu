// grpo_loss.cu: GRPO's loss, PPO's clipped surrogate plus β·k3 to the reference, over masked
// tokens, reduced to one scalar, with d(logprob).
//
// Maths (grpo_loss.rs), per masked token: l = l_clip + β·k3, with l_clip PPO's clipped surrogate
// (dual clip included; see ppo_loss.cu), log q = logprob − ref_logprob, k3 = expm1(−log q) +
// log q; dl/dlogprob = dl_clip + β·(−expm1(−log q)). L = Σ w·l (token or sequence mean);
// dlogprob (`=`, storage T) = w·dl, 0 off the mask. Statistics: ratio clip and dual clip counts,
// Σ (r − 1) − log r, Σ k3. Without a reference (β = 0) the launcher passes the policy's
// log-probs as ref_logprob: log q = 0 gives k3 = 0 and a zero KL gradient exactly.
// Shapes: logprob, old_logprob, ref_logprob, advantages, dlogprob [rows, cols] T; mask
// [rows, cols] u32; row_weight [rows] f32; partial [rows, 8] f32; totals [7] f32.
// Split, determinism and bytes: masked_loss.cuh (grpo_loss_fwd: gradient and partial sums, grid =
// rows, 256 threads; grpo_loss_fwd_totals: the totals, 1 block).
#include "common.cuh"
#include "masked_loss.cuh"

template <typename T> struct GrpoToken {
    const T* logprob;
    const T* old_logprob;
    const T* ref_logprob;
    const T* advantages;
    float clip_low, clip_high, dual_clip, beta;
    enum { INPUTS = 4, STATS = 4 };
    __device__ void load(u64 i, float (&x)[4]) const {
        x[0] = to_f32(logprob[i]);
        x[1] = to_f32(old_logprob[i]);
        x[2] = to_f32(ref_logprob[i]);
        x[3] = to_f32(advantages[i]);
    }
    __device__ TokenTerms operator()(const float (&x)[4]) const {
        TokenTerms k = clipped_surrogate(x[0] - x[1], x[3], clip_low, clip_high, dual_clip);
        const float log_q = x[0] - x[2];
        const float e = expm1f(-log_q);
        const float kl = e + log_q;
        k.stat[3] = kl;
        k.loss += beta * kl;
        k.grad += beta * -e;
        return k;
    }
};

template <typename T>
__device__ __forceinline__ void grpo_loss_fwd(const T* logprob, const T* old_logprob,
                                              const T* ref_logprob, const T* advantages,
                                              const u32* mask, const float* row_weight,
                                              float* partial, T* dlogprob, u32 rows, u32 cols,
                                              float clip_low, float clip_high, float dual_clip,
                                              float beta) {
    const GrpoToken<T> token{logprob,  old_logprob, ref_logprob, advantages,
                             clip_low, clip_high,   dual_clip,   beta};
    masked_loss_fwd(mask, row_weight, partial, dlogprob, rows, cols, token);
}

extern "C" __global__ void grpo_loss_fwd_f32(const float* logprob, const float* old_logprob,
                                             const float* ref_logprob, const float* advantages,
                                             const u32* mask, const float* row_weight,
                                             float* partial, float* dlogprob, u32 rows, u32 cols,
                                             float clip_low, float clip_high, float dual_clip,
                                             float beta) {
    grpo_loss_fwd(logprob, old_logprob, ref_logprob, advantages, mask, row_weight, partial,
                  dlogprob, rows, cols, clip_low, clip_high, dual_clip, beta);
}
extern "C" __global__ void grpo_loss_fwd_bf16(const bf16* logprob, const bf16* old_logprob,
                                              const bf16* ref_logprob, const bf16* advantages,
                                              const u32* mask, const float* row_weight,
                                              float* partial, bf16* dlogprob, u32 rows, u32 cols,
                                              float clip_low, float clip_high, float dual_clip,
                                              float beta) {
    grpo_loss_fwd(logprob, old_logprob, ref_logprob, advantages, mask, row_weight, partial,
                  dlogprob, rows, cols, clip_low, clip_high, dual_clip, beta);
}

// The totals do not depend on the storage type; both names exist for the launcher's dispatch.
extern "C" __global__ void grpo_loss_fwd_totals_f32(const float* partial, float* totals, u32 rows,
                                                    u32 sequence_mean) {
    masked_loss_totals(partial, totals, rows, sequence_mean);
}
extern "C" __global__ void grpo_loss_fwd_totals_bf16(const float* partial, float* totals,
                                                     u32 rows, u32 sequence_mean) {
    masked_loss_totals(partial, totals, rows, sequence_mean);
}
