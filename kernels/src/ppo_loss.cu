// ppo_loss.cu: PPO's clipped surrogate (optional dual clip) over masked tokens, reduced to one
// scalar, with d(logprob).
//
// Maths (ppo_loss.rs), per masked token: log r = logprob − old_logprob, r = e^(log r),
//   l = max(−A·r, −A·clip(r, 1 − clip_low, 1 + clip_high)), then min(l, −c·A) when A < 0 and a
//   dual clip c > 1 is set (dual_clip = 0: none); dl/dlogprob = −A·r on the unclipped branch,
//   0 where a clip is active. L = Σ w·l with token-mean or sequence-mean weights w; dlogprob
//   (`=`, storage T) = w·dl, 0 off the mask. Statistics: tokens with the ratio clip active, with
//   the dual clip active, and Σ (r − 1) − log r (approx KL(π_old ‖ π)).
// Shapes: logprob, old_logprob, advantages [rows, cols] T; mask [rows, cols] u32;
// partial [rows, 8] f32; totals [7] f32.
// Split, determinism and bytes: masked_loss.cuh (ppo_loss_fwd per-row partial sums, ppo_loss_bwd
// fixed-order totals and the gradient; grid = rows, 256 threads each).
#include "common.cuh"
#include "masked_loss.cuh"

template <typename T> struct PpoToken {
    const T* logprob;
    const T* old_logprob;
    const T* advantages;
    float clip_low, clip_high, dual_clip;
    enum { INPUTS = 3 };
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
                                             const T* advantages, const u32* mask, float* partial,
                                             u32 rows, u32 cols, float clip_low, float clip_high,
                                             float dual_clip) {
    const PpoToken<T> token{logprob, old_logprob, advantages, clip_low, clip_high, dual_clip};
    masked_loss_fwd(mask, partial, rows, cols, token);
}

template <typename T>
__device__ __forceinline__ void ppo_loss_bwd(const T* logprob, const T* old_logprob,
                                             const T* advantages, const u32* mask,
                                             const float* partial, float* totals, T* dlogprob,
                                             u32 rows, u32 cols, float clip_low, float clip_high,
                                             float dual_clip, u32 sequence_mean) {
    const PpoToken<T> token{logprob, old_logprob, advantages, clip_low, clip_high, dual_clip};
    masked_loss_bwd(mask, partial, totals, dlogprob, rows, cols, sequence_mean, token);
}

extern "C" __global__ void ppo_loss_fwd_f32(const float* logprob, const float* old_logprob,
                                            const float* advantages, const u32* mask,
                                            float* partial, u32 rows, u32 cols, float clip_low,
                                            float clip_high, float dual_clip) {
    ppo_loss_fwd(logprob, old_logprob, advantages, mask, partial, rows, cols, clip_low, clip_high,
                 dual_clip);
}
extern "C" __global__ void ppo_loss_fwd_bf16(const bf16* logprob, const bf16* old_logprob,
                                             const bf16* advantages, const u32* mask,
                                             float* partial, u32 rows, u32 cols, float clip_low,
                                             float clip_high, float dual_clip) {
    ppo_loss_fwd(logprob, old_logprob, advantages, mask, partial, rows, cols, clip_low, clip_high,
                 dual_clip);
}

extern "C" __global__ void ppo_loss_bwd_f32(const float* logprob, const float* old_logprob,
                                            const float* advantages, const u32* mask,
                                            const float* partial, float* totals, float* dlogprob,
                                            u32 rows, u32 cols, float clip_low, float clip_high,
                                            float dual_clip, u32 sequence_mean) {
    ppo_loss_bwd(logprob, old_logprob, advantages, mask, partial, totals, dlogprob, rows, cols,
                 clip_low, clip_high, dual_clip, sequence_mean);
}
extern "C" __global__ void ppo_loss_bwd_bf16(const bf16* logprob, const bf16* old_logprob,
                                             const bf16* advantages, const u32* mask,
                                             const float* partial, float* totals, bf16* dlogprob,
                                             u32 rows, u32 cols, float clip_low, float clip_high,
                                             float dual_clip, u32 sequence_mean) {
    ppo_loss_bwd(logprob, old_logprob, advantages, mask, partial, totals, dlogprob, rows, cols,
                 clip_low, clip_high, dual_clip, sequence_mean);
}
