// gae.cu: generalised advantage estimation, a reverse scan over each row (gae.rs).
//
// Maths, per row b of B rows of T tokens (rewards r, values v [B, T] storage S; mask u32):
// scanning t from T − 1 down over masked tokens, with v', A' the value and advantage of the next
// masked token (0 past the last):  δ = r_t + γ·v' − v_t,  A_t = δ + γλ·A',  R_t = A_t + v_t.
// Unmasked tokens are skipped (they neither end nor break the chain) and get A = R = 0.
// advantages, returns [B, T] in the storage type, computed in f32 (the Cpu's order exactly).
//
// One warp per row (grid = ⌈B/4⌉ blocks of 4 warps): each A_t depends on A_{t+1}, so a row is a
// serial chain of T steps, and B (the rollout's sequences, tens to hundreds) is the parallelism
// worth having; a parallel scan over T (an affine recurrence) would do log T times the
// arithmetic to shorten a chain that costs microseconds. The warp walks its row backwards in
// 32-element windows aligned to the allocation (so each load and store is whole 128-byte lines
// for f32, 64-byte for bf16, whatever the row's offset): the lanes load a window coalesced, then
// every lane runs the window's chain step by step on shuffled-in values — the same arithmetic in
// the same order on every lane, the Cpu's order — and lane k keeps token k's result, stored
// coalesced. Bytes: 3·B·T·S read (mask as u32), 2·B·T·S written. No reduction: every output is
// a fixed function of its row.
#include "common.cuh"

template <typename T>
__device__ __forceinline__ void gae_fwd(const T* __restrict__ rewards,
                                        const T* __restrict__ values,
                                        const u32* __restrict__ mask, T* __restrict__ advantages,
                                        T* __restrict__ returns, u32 rows, u32 cols, float gamma,
                                        float lambda) {
    const u32 lane = threadIdx.x % 32;
    const u32 row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    // Warp-uniform: the whole warp leaves together, so the shuffles below see every lane.
    if (row >= rows || cols == 0) return;
    const u64 begin = u64(row) * cols;
    const u64 end = begin + cols;
    float next_value = 0.0f, next_advantage = 0.0f;
    for (u64 window = (end - 1) / 32 * 32 + 32; window > begin - begin % 32;) {
        window -= 32;
        const u64 i = window + lane;
        const bool inside = i >= begin && i < end;
        const u32 m = inside ? mask[i] : 0u;
        const float r = inside ? to_f32(rewards[i]) : 0.0f;
        const float v = inside ? to_f32(values[i]) : 0.0f;
        float advantage_i = 0.0f, return_i = 0.0f;
        for (int k = 31; k >= 0; --k) {
            const u32 mk = __shfl_sync(RLHF_FULL_MASK, m, k);
            const float rk = __shfl_sync(RLHF_FULL_MASK, r, k);
            const float value = __shfl_sync(RLHF_FULL_MASK, v, k);
            if (mk == 0) continue;  // warp-uniform; unmasked tokens keep A = R = 0
            const float delta = rk + gamma * next_value - value;
            const float advantage = delta + gamma * lambda * next_advantage;
            if (lane == u32(k)) {
                advantage_i = advantage;
                return_i = advantage + value;
            }
            next_value = value;
            next_advantage = advantage;
        }
        if (inside) {
            advantages[i] = from_f32<T>(advantage_i);
            returns[i] = from_f32<T>(return_i);
        }
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
