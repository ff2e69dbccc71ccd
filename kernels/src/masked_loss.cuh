// masked_loss.cuh: the two-kernel scheme shared by the masked RL losses (ppo_loss, grpo_loss,
// value_loss). Included after common.cuh.
//
// Inputs are [rows, cols] (B sequences of T tokens) with a 0/1 mask (checked binary on the host).
// A `Token` functor gives, for a masked token at flat index i, its loss l, dl/d(input) and up to
// four statistics.
//
// <op>_fwd, grid = rows, MASKED_LOSS_THREADS threads: block b sums over its row's masked tokens
// (threads stride over the row, then common.cuh's fixed block_sum) and writes column b of
// partial [MASKED_LOSS_PARTIAL, rows] f32 = {tokens n_b, Σ l, Σ stat0..3} (columns, so that
// the bwd's strided reads over rows are coalesced).
// <op>_bwd, grid = rows: every block folds all rows' partials in the same fixed order (thread t
// takes rows t, t + blockDim, ..., then block_sum), so every block gets the same totals bit for
// bit: tokens N_tok, rows with a token S, and the loss — Σ_b Σ l / N_tok (token mean) or
// Σ_b (Σ l / n_b) / S (sequence mean). Block 0 writes totals = {loss, N_tok, Σ stat0..3, S}.
// Block b then writes its row's gradient w_b·dl (0 off the mask): w_b = 1/N_tok or
// 1/(n_b·S), the Cpu's f32 weights. A sequence with no masked token adds nothing; no token at
// all gives a zero loss and gradient.
// No atomics: the result depends only on the data and the constant block size. Token counts are
// exact in f32 up to 2^24 tokens.
// Bytes: fwd reads the inputs and mask once; bwd reads them again, writes the gradient once and
// reads rows·MASKED_LOSS_PARTIAL·4 bytes of partials per block (rows² reads in all: small next
// to the token data for the batch sizes of RL, rows in the hundreds).

#define MASKED_LOSS_PARTIAL 6
#define MASKED_LOSS_TOTALS 7

struct TokenTerms {
    float loss;
    float grad;
    float stat[4];
};

template <typename Token>
__device__ __forceinline__ void masked_loss_fwd(const u32* __restrict__ mask,
                                                float* __restrict__ partial, u32 rows, u32 cols,
                                                const Token& token) {
    __shared__ float scratch[32];
    const u32 row = blockIdx.x;
    if (row >= rows) return;
    float acc[MASKED_LOSS_PARTIAL] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
    for (u32 t = threadIdx.x; t < cols; t += blockDim.x) {
        const u64 i = u64(row) * cols + t;
        if (mask[i] == 0) continue;
        const TokenTerms k = token(i);
        acc[0] += 1.0f;
        acc[1] += k.loss;
#pragma unroll
        for (int s = 0; s < 4; ++s) acc[2 + s] += k.stat[s];
    }
#pragma unroll
    for (int j = 0; j < MASKED_LOSS_PARTIAL; ++j) {
        const float total = block_sum(acc[j], scratch);
        if (threadIdx.x == 0) partial[u64(j) * rows + row] = total;
    }
}

template <typename T, typename Token>
__device__ __forceinline__ void masked_loss_bwd(const u32* __restrict__ mask,
                                                const float* __restrict__ partial,
                                                float* __restrict__ totals, T* __restrict__ grad,
                                                u32 rows, u32 cols, u32 sequence_mean,
                                                const Token& token) {
    __shared__ float scratch[32];
    const u32 row = blockIdx.x;
    if (row >= rows) return;
    // tokens, loss, stat0..3, rows with a token
    float acc[MASKED_LOSS_TOTALS] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
    for (u32 r = threadIdx.x; r < rows; r += blockDim.x) {
        const float n = partial[r];
        const float loss = partial[u64(rows) + r];
        acc[0] += n;
        acc[1] += sequence_mean ? (n > 0.0f ? loss / n : 0.0f) : loss;
#pragma unroll
        for (int s = 0; s < 4; ++s) acc[2 + s] += partial[u64(2 + s) * rows + r];
        acc[6] += n > 0.0f ? 1.0f : 0.0f;
    }
#pragma unroll
    for (int j = 0; j < MASKED_LOSS_TOTALS; ++j) acc[j] = block_sum(acc[j], scratch);
    const float tokens = acc[0];
    const float seqs = acc[6];
    if (blockIdx.x == 0 && threadIdx.x == 0) {
        const float denominator = sequence_mean ? seqs : tokens;
        totals[0] = denominator > 0.0f ? acc[1] / denominator : 0.0f;
        totals[1] = tokens;
#pragma unroll
        for (int j = 2; j < MASKED_LOSS_TOTALS; ++j) totals[j] = acc[j];
    }
    const float n_row = partial[row];
    float weight;
    if (sequence_mean) {
        weight = n_row > 0.0f ? 1.0f / float(u32(n_row) * u32(seqs)) : 0.0f;
    } else {
        weight = tokens > 0.0f ? 1.0f / tokens : 0.0f;
    }
    for (u32 t = threadIdx.x; t < cols; t += blockDim.x) {
        const u64 i = u64(row) * cols + t;
        grad[i] = from_f32<T>(mask[i] == 0 ? 0.0f : weight * token(i).grad);
    }
}

// PPO's clipped surrogate of one token (ppo_loss.rs): ratio r = e^(log r), advantage A.
// stat: {ratio clip active, dual clip active, (r − 1) − log r, 0}.
__device__ __forceinline__ TokenTerms clipped_surrogate(float log_ratio, float advantage,
                                                        float clip_low, float clip_high,
                                                        float dual_clip) {
    const float ratio = expf(log_ratio);
    const float unclipped = -advantage * ratio;
    const float clipped = -advantage * fminf(fmaxf(ratio, 1.0f - clip_low), 1.0f + clip_high);
    TokenTerms k;
    // Ties (the ratio inside the clip range) take the unclipped branch, whose gradient is right.
    if (clipped > unclipped) {
        k = TokenTerms{clipped, 0.0f, {1.0f, 0.0f, 0.0f, 0.0f}};
    } else {
        k = TokenTerms{unclipped, unclipped, {0.0f, 0.0f, 0.0f, 0.0f}};
    }
    // dual_clip = 0 stands for none (a dual clip is > 1).
    if (dual_clip > 0.0f && advantage < 0.0f) {
        const float bound = -dual_clip * advantage;
        if (k.loss > bound) k = TokenTerms{bound, 0.0f, {0.0f, 1.0f, 0.0f, 0.0f}};
    }
    k.stat[2] = expm1f(log_ratio) - log_ratio;
    return k;
}
