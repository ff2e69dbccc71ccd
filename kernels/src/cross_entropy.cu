// cross_entropy.cu: softmax cross-entropy with an ignore index, forward and backward.
//
// Maths, per row r of N rows (N = B·T) over V classes, logits [N, V], targets [N] u32:
//   lse_r   = log Σ_v exp(logits[r, v])
//   loss_r  = lse_r − logits[r, targets[r]]          (0 when targets[r] = ignore_index)
//   dlogits = dloss_r · (softmax(logits_r) − onehot(targets[r]))   (`=`; zeros on ignored rows)
// Shapes: loss, lse, dloss [N] f32 whatever the storage type; dlogits [N, V] in the storage type.
// The log-sum-exp is computed in f32 for ignored rows too. A target ≥ V other than ignore_index
// is the launcher's to reject (the Cpu backend errors on it); here it gives a NaN loss and reads
// nothing out of range.
//
// cross_entropy_fwd: one block per row (grid = N); the row streams through the block in aligned
// 16-byte packs (row_stream.cuh), each thread keeping an online (max, Σ exp) state over the
// elements it owns by index, so the row is read once and a row's result does not depend on
// where it sits in the batch; the states are merged by a butterfly within each warp and then in
// warp order across the block (fixed order: the result depends only on blockDim.x). Thread 0
// writes loss and lse. Block: a multiple of 32 threads.
// Bytes moved: N·V·S + 12·N, S = sizeof(T) (plus 1/32 of the row for unaligned rows).
//
// cross_entropy_bwd: one block per row (grid = N), threads stride over aligned packs and write
// dloss · (exp(logit − lse) − [v = target]) in one pass from the saved lse; no reduction, so any
// block size. Bytes moved: 2·N·V·S + 12·N.
#include "common.cuh"
#include "row_stream.cuh"

template <typename T>
__device__ __forceinline__ void cross_entropy_fwd(const T* __restrict__ logits,
                                                  const u32* __restrict__ targets,
                                                  float* __restrict__ loss,
                                                  float* __restrict__ lse, u32 N, u32 V,
                                                  u32 ignore_index) {
    __shared__ LogSumExp scratch[32];
    const u64 row = blockIdx.x;
    // The whole block leaves together, so block_lse's barriers are reached by every thread.
    if (row >= N) return;
    const T* lr = logits + row * V;

    LogSumExp state = lse_empty();
    row_reduce_chunks(lr, V, [&](const float(&x)[Pack<T>::LEN], int count) {
        for (int k = 0; k < count; ++k) lse_add(state, x[k]);
    });
    const float row_lse = block_lse(state, scratch);

    if (threadIdx.x == 0) {
        const u32 target = targets[row];
        float row_loss;
        if (target == ignore_index) {
            row_loss = 0.0f;
        } else if (target >= V) {
            row_loss = RLHF_NAN;
        } else {
            row_loss = row_lse - to_f32(lr[target]);
        }
        loss[row] = row_loss;
        lse[row] = row_lse;
    }
}

template <typename T>
__device__ __forceinline__ void cross_entropy_bwd(const T* __restrict__ logits,
                                                  const u32* __restrict__ targets,
                                                  const float* __restrict__ lse,
                                                  const float* __restrict__ dloss,
                                                  T* __restrict__ dlogits, u32 N, u32 V,
                                                  u32 ignore_index) {
    const u64 row = blockIdx.x;
    if (row >= N) return;
    T* dr = dlogits + row * V;
    const T* lr = logits + row * V;
    const u32 target = targets[row];
    if (target == ignore_index) {
        row_map(lr, dr, V, [](u32, float) { return 0.0f; });
        return;
    }
    const float row_lse = lse[row];
    const float upstream = dloss[row];
    row_map(lr, dr, V, [&](u32 v, float x) {
        const float p = expf(x - row_lse);
        return upstream * (v == target ? p - 1.0f : p);
    });
}

extern "C" __global__ void cross_entropy_fwd_f32(const float* logits, const u32* targets,
                                                 float* loss, float* lse, u32 N, u32 V,
                                                 u32 ignore_index) {
    cross_entropy_fwd(logits, targets, loss, lse, N, V, ignore_index);
}
extern "C" __global__ void cross_entropy_fwd_bf16(const bf16* logits, const u32* targets,
                                                  float* loss, float* lse, u32 N, u32 V,
                                                  u32 ignore_index) {
    cross_entropy_fwd(logits, targets, loss, lse, N, V, ignore_index);
}

extern "C" __global__ void cross_entropy_bwd_f32(const float* logits, const u32* targets,
                                                 const float* lse, const float* dloss,
                                                 float* dlogits, u32 N, u32 V, u32 ignore_index) {
    cross_entropy_bwd(logits, targets, lse, dloss, dlogits, N, V, ignore_index);
}
extern "C" __global__ void cross_entropy_bwd_bf16(const bf16* logits, const u32* targets,
                                                  const float* lse, const float* dloss,
                                                  bf16* dlogits, u32 N, u32 V, u32 ignore_index) {
    cross_entropy_bwd(logits, targets, lse, dloss, dlogits, N, V, ignore_index);
}
