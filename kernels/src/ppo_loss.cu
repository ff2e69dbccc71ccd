// ppo_loss.cu: PPO's clipped surrogate (optional dual clip) over masked tokens, reduced to one
// scalar, with d(logprob).
//
// Maths (ppo_loss.rs), per masked token: log r = logprob − old_logprob, r = e^(log r),
//   l = max(−A·r, −A·clip(r, 1 − clip_low, 1 + clip_high)), then min(l, −c·A) when A < 0 and a
//   dual clip c > 1 is set (dual_clip = 0: none); dl/dlogprob = −A·r on the unclipped branch,
//   0 where a clip is active. L = Σ w·l with token-mean or sequence-mean weights w; dlogprob
//   (`=`, storage T) = w·dl, 0 off the mask. Statistics: tokens with the ratio clip active, with
//   the dual clip active, and Σ (r − 1) − log r (approx KL(π_old ‖ π)).
// Shapes: logprob, old_logprob, advantages, dlogprob [rows, cols] T; mask [rows, cols] u32;
// row_weight [rows] f32; partial [rows, 8] f32; totals [7] f32.
// Split, determinism and bytes: masked_loss.cuh (ppo_loss_fwd: the gradient and per-row partial
// sums in one pass, grid = rows, 256 threads; ppo_loss_fwd_totals: fixed-order totals, 1 block).
#include "common.cuh"
#include "masked_loss.cuh"

template <typename T> struct PpoToken {
    const T* logprob;
    const T* old_logprob;
    const T* advantages;
    float clip_low, clip_high, dual_clip;
    enum { INPUTS = 3, STATS = 3 };
    __device__ void load(u64 i, float (&x)[4]) const {
        x[0] = to_f32(logprob[i]);
        x[1] = to_f32(old_logprob[i]);
        x[2] = to_f32(advantages[i]);
    }
    __device__ TokenTerms operator()(const float (&x)[4]) const {
        return clipped_surrogate(x[0] - x[1], x[2], clip_low, clip_high, dual_clip);
    }
};

template <typename T>
__device__ __forceinline__ void ppo_loss_fwd(const T* logprob, const T* old_logprob,
                                             const T* advantages, const u32* mask,
                                             const float* row_weight, float* partial,
                                             T* dlogprob, u32 rows, u32 cols, float clip_low,
                                             float clip_high, float dual_clip) {
    const PpoToken<T> token{logprob, old_logprob, advantages, clip_low, clip_high, dual_clip};
    masked_loss_fwd(mask, row_weight, partial, dlogprob, rows, cols, token);
}

extern "C" __global__ void ppo_loss_fwd_f32(const float* logprob, const float* old_logprob,
                                            const float* advantages, const u32* mask,
                                            const float* row_weight, float* partial,
                                            float* dlogprob, u32 rows, u32 cols, float clip_low,
                                            float clip_high, float dual_clip) {
    ppo_loss_fwd(logprob, old_logprob, advantages, mask, row_weight, partial, dlogprob, rows,
                 cols, clip_low, clip_high, dual_clip);
}
extern "C" __global__ void ppo_loss_fwd_bf16(const bf16* logprob, const bf16* old_logprob,
                                             const bf16* advantages, const u32* mask,
                                             const float* row_weight, float* partial,
                                             bf16* dlogprob, u32 rows, u32 cols, float clip_low,
                                             float clip_high, float dual_clip) {
    ppo_loss_fwd(logprob, old_logprob, advantages, mask, row_weight, partial, dlogprob, rows,
                 cols, clip_low, clip_high, dual_clip);
}

// The totals do not depend on the storage type; both names exist for the launcher's dispatch.
extern "C" __global__ void ppo_loss_fwd_totals_f32(const float* partial, float* totals, u32 rows,
                                                   u32 sequence_mean) {
    masked_loss_totals(partial, totals, rows, sequence_mean);
}
extern "C" __global__ void ppo_loss_fwd_totals_bf16(const float* partial, float* totals, u32 rows,
                                                    u32 sequence_mean) {
    masked_loss_totals(partial, totals, rows, sequence_mean);
}
