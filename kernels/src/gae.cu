// gae.cu: generalised advantage estimation, a reverse scan over each row (gae.rs).
//
// Maths, per row b of B rows of T tokens (rewards r, values v [B, T] storage S; mask u32):
// scanning t from T − 1 down over masked tokens, with v', A' the value and advantage of the next
// masked token (0 past the last):  δ = r_t + γ·v' − v_t,  A_t = δ + γλ·A',  R_t = A_t + v_t.
// Unmasked tokens are skipped (they neither end nor break the chain) and get A = R = 0.
// advantages, returns [B, T] in the storage type, computed in f32 (the Cpu's order exactly).
//
// One thread per row (grid = ⌈B/64⌉ blocks of 64): each A_t depends on A_{t+1}, so a row is a
// serial chain of T steps, and B (the rollout's sequences, tens to hundreds) is the only
// parallelism worth having; a parallel scan over T (an affine recurrence) would do log T times
// the arithmetic to shorten a chain that costs microseconds. Lanes read tokens T elements apart,
// so each warp request touches one sector per lane (uncoalesced but tiny: 3·B·T reads and
// 2·B·T writes in all). No reduction: every output is a fixed function of its row.
#include "common.cuh"

template <typename T>
__device__ __forceinline__ void gae_fwd(const T* __restrict__ rewards,
                                        const T* __restrict__ values,
                                        const u32* __restrict__ mask, T* __restrict__ advantages,
                                        T* __restrict__ returns, u32 rows, u32 cols, float gamma,
                                        float lambda) {
    const u32 row = blockIdx.x * blockDim.x + threadIdx.x;
    if (row >= rows) return;
    const u64 base = u64(row) * cols;
    float next_value = 0.0f, next_advantage = 0.0f;
    for (u32 k = cols; k > 0; --k) {
        const u64 i = base + k - 1;
        if (mask[i] == 0) {
            advantages[i] = from_f32<T>(0.0f);
            returns[i] = from_f32<T>(0.0f);
            continue;
        }
        const float value = to_f32(values[i]);
        const float delta = to_f32(rewards[i]) + gamma * next_value - value;
        const float advantage = delta + gamma * lambda * next_advantage;
        advantages[i] = from_f32<T>(advantage);
        returns[i] = from_f32<T>(advantage + value);
        next_value = value;
        next_advantage = advantage;
    }
}

extern "C" __global__ void gae_fwd_f32(const float* rewards, const float* values, const u32* mask,
                                       float* advantages, float* returns, u32 rows, u32 cols,
                                       float gamma, float lambda) {
    gae_fwd(rewards, values, mask, advantages, returns, rows, cols, gamma, lambda);
}
extern "C" __global__ void gae_fwd_bf16(const bf16* rewards, const bf16* values, const u32* mask,
                                        bf16* advantages, bf16* returns, u32 rows, u32 cols,
                                        float gamma, float lambda) {
    gae_fwd(rewards, values, mask, advantages, returns, rows, cols, gamma, lambda);
}
