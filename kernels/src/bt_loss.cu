// bt_loss.cu: reward-model losses per pair, forward and backward (bt_loss.rs).
//
// Bradley–Terry with margin m, soft label y and label smoothing ε, per pair p of P:
//   Δ = r_c − r_r − m, t = (1 − ε)·y + ε/2,
//   loss = t·softplus(−Δ) + (1 − t)·softplus(Δ)           (loss [P] f32)
//   backward (`=`): d r_c = dloss·((1 − t)·σ(Δ) − t·σ(−Δ)), d r_r = −d r_c   (storage T)
// Binary outcome loss (BCE with logits) of a reward r against a label y:
//   loss = y·softplus(−r) + (1 − y)·softplus(r);  d r = dloss·((1 − y)·σ(r) − y·σ(−r)).
// softplus(x) = max(x, 0) + log1p(e^(−|x|)) and σ in its two-sided form keep every digit for
// large |Δ|; σ(Δ) − t is formed as (1 − t)·σ(Δ) − t·σ(−Δ) so a saturated pair keeps its tiny
// gradient. Labels in [0, 1] and finite margins are checked on the host (the Cpu's errors).
// One thread per pair, grid = ⌈P/256⌉; no reduction. P is the batch's pair count (tens to
// thousands), so scalar accesses, coalesced across the warp. Bytes: forward 4·P·S + 4·P, bwd
// 4·P·S + 4·P + 2·P·S (binary: 2·P·S + 4·P, and 2·P·S + 4·P + P·S).
#include "common.cuh"

__device__ __forceinline__ float softplus(float x) { return fmaxf(x, 0.0f) + log1pf(expf(-fabsf(x))); }

__device__ __forceinline__ float sigmoid(float x) {
    if (x >= 0.0f) return 1.0f / (1.0f + expf(-x));
    const float e = expf(x);
    return e / (1.0f + e);
}

__device__ __forceinline__ float logistic_loss(float x, float target) {
    return target * softplus(-x) + (1.0f - target) * softplus(x);
}

__device__ __forceinline__ float logistic_grad(float x, float target) {
    return (1.0f - target) * sigmoid(x) - target * sigmoid(-x);
}

__device__ __forceinline__ u32 pair_index() { return blockIdx.x * blockDim.x + threadIdx.x; }

template <typename T>
__device__ __forceinline__ void bt_terms(const T* chosen, const T* rejected, const T* margin,
                                         const T* label, float smoothing, u32 p, float& delta,
                                         float& target) {
    delta = to_f32(chosen[p]) - to_f32(rejected[p]) - to_f32(margin[p]);
    target = (1.0f - smoothing) * to_f32(label[p]) + 0.5f * smoothing;
}

template <typename T>
__device__ __forceinline__ void bt_loss_fwd(const T* chosen, const T* rejected, const T* margin,
                                            const T* label, float* loss, u32 P,
                                            float smoothing) {
    const u32 p = pair_index();
    if (p >= P) return;
    float delta, target;
    bt_terms(chosen, rejected, margin, label, smoothing, p, delta, target);
    loss[p] = logistic_loss(delta, target);
}

template <typename T>
__device__ __forceinline__ void bt_loss_bwd(const T* chosen, const T* rejected, const T* margin,
                                            const T* label, const float* dloss, T* dchosen,
                                            T* drejected, u32 P, float smoothing) {
    const u32 p = pair_index();
    if (p >= P) return;
    float delta, target;
    bt_terms(chosen, rejected, margin, label, smoothing, p, delta, target);
    const float g = dloss[p] * logistic_grad(delta, target);
    dchosen[p] = from_f32<T>(g);
    drejected[p] = from_f32<T>(-g);
}

template <typename T>
__device__ __forceinline__ void binary_loss_fwd(const T* reward, const T* label, float* loss,
                                                u32 P) {
    const u32 p = pair_index();
    if (p >= P) return;
    loss[p] = logistic_loss(to_f32(reward[p]), to_f32(label[p]));
}

template <typename T>
__device__ __forceinline__ void binary_loss_bwd(const T* reward, const T* label,
                                                const float* dloss, T* dreward, u32 P) {
    const u32 p = pair_index();
    if (p >= P) return;
    dreward[p] = from_f32<T>(dloss[p] * logistic_grad(to_f32(reward[p]), to_f32(label[p])));
}

extern "C" __global__ void bt_loss_fwd_f32(const float* chosen, const float* rejected,
                                           const float* margin, const float* label, float* loss,
                                           u32 P, float smoothing) {
    bt_loss_fwd(chosen, rejected, margin, label, loss, P, smoothing);
}
extern "C" __global__ void bt_loss_fwd_bf16(const bf16* chosen, const bf16* rejected,
                                            const bf16* margin, const bf16* label, float* loss,
                                            u32 P, float smoothing) {
    bt_loss_fwd(chosen, rejected, margin, label, loss, P, smoothing);
}
extern "C" __global__ void bt_loss_bwd_f32(const float* chosen, const float* rejected,
                                           const float* margin, const float* label,
                                           const float* dloss, float* dchosen, float* drejected,
                                           u32 P, float smoothing) {
    bt_loss_bwd(chosen, rejected, margin, label, dloss, dchosen, drejected, P, smoothing);
}
extern "C" __global__ void bt_loss_bwd_bf16(const bf16* chosen, const bf16* rejected,
                                            const bf16* margin, const bf16* label,
                                            const float* dloss, bf16* dchosen, bf16* drejected,
                                            u32 P, float smoothing) {
    bt_loss_bwd(chosen, rejected, margin, label, dloss, dchosen, drejected, P, smoothing);
}

extern "C" __global__ void bt_loss_fwd_binary_f32(const float* reward, const float* label,
                                                  float* loss, u32 P) {
    binary_loss_fwd(reward, label, loss, P);
}
extern "C" __global__ void bt_loss_fwd_binary_bf16(const bf16* reward, const bf16* label,
                                                   float* loss, u32 P) {
    binary_loss_fwd(reward, label, loss, P);
}
extern "C" __global__ void bt_loss_bwd_binary_f32(const float* reward, const float* label,
                                                  const float* dloss, float* dreward, u32 P) {
    binary_loss_bwd(reward, label, dloss, dreward, P);
}
extern "C" __global__ void bt_loss_bwd_binary_bf16(const bf16* reward, const bf16* label,
                                                   const float* dloss, bf16* dreward, u32 P) {
    binary_loss_bwd(reward, label, dloss, dreward, P);
}
