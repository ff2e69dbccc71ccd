// rope.cu: rotary position embedding, rotate-half layout (Hugging Face Llama / Qwen2).
//
// Maths (runtime/src/ops/rope.rs): x [B, T, NH, HS], HS even, H = HS/2, positions [B, T] u32,
// inv_freq [H] f32 = 1 / theta^(2i/HS) computed by the launcher with the Cpu's own function (so
// both backends start from the same bits; NVRTC's powf is not correctly rounded). With
// a_i = f32(pos) · inv_freq_i (one f32 rounding, as the Cpu and transformers do):
//   y[i]     = x[i]·cos a_i − x[i+H]·sin a_i
//   y[i + H] = x[i+H]·cos a_i + x[i]·sin a_i
// rope_bwd applies the inverse rotation (sin negated): dx = Rᵀ dy (`=`).
// The products and the difference are rounded separately (__fmul_rn/__fsub_rn: no FMA
// contraction), as the Cpu computes them, so the two differ only by sincosf's last bit.
//
// Work split: one thread per (token, i < H) pair, N = B·T tokens; it computes sin/cos once and
// rotates that pair in each of the NH heads. Consecutive threads take consecutive i (coalesced).
// grid = ceil(N·H / blockDim.x). Bytes moved: 2·N·NH·HS·S + 4·N + 4·H (inv_freq, cached).
#include "common.cuh"

template <typename T>
__device__ __forceinline__ void rope_rotate(const T* __restrict__ x, const u32* __restrict__ positions,
                                            const float* __restrict__ inv_freq, T* __restrict__ y,
                                            u32 N, u32 NH, u32 HS, float direction) {
    const u32 half = HS / 2;
    const u64 e = u64(blockIdx.x) * blockDim.x + threadIdx.x;
    if (e >= u64(N) * half) return;
    const u64 token = e / half;
    const u32 i = e % half;
    const float angle = __fmul_rn(float(positions[token]), inv_freq[i]);
    float s, c;
    sincosf(angle, &s, &c);
    s *= direction;
    for (u32 h = 0; h < NH; ++h) {
        const u64 base = (token * NH + h) * HS;
        const float x1 = to_f32(x[base + i]);
        const float x2 = to_f32(x[base + half + i]);
        y[base + i] = from_f32<T>(__fsub_rn(__fmul_rn(x1, c), __fmul_rn(x2, s)));
        y[base + half + i] = from_f32<T>(__fadd_rn(__fmul_rn(x2, c), __fmul_rn(x1, s)));
    }
}

extern "C" __global__ void rope_fwd_f32(const float* x, const u32* positions, const float* inv_freq,
                                        float* y, u32 N, u32 NH, u32 HS) {
    rope_rotate(x, positions, inv_freq, y, N, NH, HS, 1.0f);
}
extern "C" __global__ void rope_fwd_bf16(const bf16* x, const u32* positions, const float* inv_freq,
                                         bf16* y, u32 N, u32 NH, u32 HS) {
    rope_rotate(x, positions, inv_freq, y, N, NH, HS, 1.0f);
}
extern "C" __global__ void rope_bwd_f32(const float* dy, const u32* positions, const float* inv_freq,
                                        float* dx, u32 N, u32 NH, u32 HS) {
    rope_rotate(dy, positions, inv_freq, dx, N, NH, HS, -1.0f);
}
extern "C" __global__ void rope_bwd_bf16(const bf16* dy, const u32* positions, const float* inv_freq,
                                         bf16* dx, u32 N, u32 NH, u32 HS) {
    rope_rotate(dy, positions, inv_freq, dx, N, NH, HS, -1.0f);
}
