// masked_loss.cuh: the two-kernel scheme shared by the masked RL losses (ppo_loss, grpo_loss,
// value_loss). Included after common.cuh.
//
// Inputs are [rows, cols] (B sequences of T tokens) with a 0/1 mask (checked binary on the host).
// A `Token` functor names its INPUTS (at most 4) and STATS (at most 4), loads its inputs at a
// flat index as f32 (`load`), and gives, for a masked token's inputs, its loss l, dl/d(input) and
// its statistics. The gradient weights are known before any token is read: they depend only on
// the mask, which the host has already downloaded to check it, so it uploads each row's weight
// w_b (1/N_tok for the token mean, 1/(n_b·S) for the sequence mean: the Cpu's f32 values) and
// one pass over the tokens writes the finished gradient.
//
// Memory access: a row starts at flat index row·cols, anywhere on the 32-byte sector grid, so a
// warp reading 32 consecutive tokens of a row touches one sector more than it needs (5 for 4 in
// f32, 3 for 2 in bf16). The fwd therefore reads and writes in windows of 32 elements aligned to
// the allocation (flat index a multiple of 32: whole 128-byte lines for the mask and f32 data,
// 64-byte for bf16), each lane taking the window's element if it lies in the row; the only
// partial sectors are at the two ends of a row's segment (below). A window's inputs are read,
// for all its lanes in the row, only when one of its tokens is masked (warp vote): prompt and
// padding windows cost the mask alone, and no read covers part of a sector because of where a
// response starts or ends.
//
// <op>_fwd, grid = rows, MASKED_LOSS_THREADS threads, block b = row b. The row is cut into
// segments of MASKED_LOSS_SEGMENT tokens by index; warp w owns segments w, w + warps, ... and
// walks each segment's aligned windows once: every lane evaluates its element's token, writes its
// gradient w_b·dl (0 off the mask) and adds the token's terms {1, l, stat0..3} (zeros off the
// mask, which leave a sum as it is) to its sums. So lane k folds, in increasing order, the
// segment's tokens of one residue class modulo 32, class (k − mis) mod 32 with mis the row
// start's offset in its window: the row's offset only rotates which lane holds which class. The
// warp's sum is common.cuh's xor butterfly, which adds the same classes together under any
// rotation (at offset 2^i the lanes' sums depend on their class modulo 2^(i+1), and lanes k and
// k ^ 2^i hold classes that differ there in bit i alone), and float addition is commutative, so
// it has the same bits at every offset; the warps are then folded in order (block_sum). Which
// tokens are added together, and in what order, thus depends only on their indices in the row
// and the constant block size — never on B or the row's offset (tests/ops/ppo_loss.rs: a row
// alone and at each position of a batch give the same bits). Row b of partial
// [rows, MASKED_LOSS_PARTIAL] f32 = {tokens n_b, Σ l, Σ stat0..3, 0, 0} is written by 8 lanes as
// one whole 32-byte sector.
// <op>_fwd_totals, one block of MASKED_LOSS_THREADS: folds all rows' partials in a fixed order
// (thread t takes slot t % 8 of rows t / 8, t / 8 + blockDim / 8, ..., so 8 lanes read a row's
// sector; each slot is then summed over the warp by a butterfly and over the warps in order) and
// writes totals = {loss, N_tok, Σ stat0..3, S}: the loss is Σ_b Σ l / N_tok (token mean) or
// Σ_b (Σ l / n_b) / S (sequence mean), S the rows with a token. A sequence with no masked token
// adds nothing; no token at all gives a zero loss and gradient.
// No atomics: the result depends only on the data and the constant block size. Token counts are
// exact in f32 up to 2^24 tokens.
// Bytes (S = element size, I = the op's inputs): the fwd reads the mask (4 B per token) once,
// the inputs (I·S per token) once in every window holding a masked token (at most B·T·I·S) and
// 4·rows of weights, and writes the gradient once (B·T·S) and 32·rows of partials; the totals
// read the 32·rows bytes of partials and write 28.

// Per row: tokens, Σ l, Σ stat0..3 and two zeros, so that a row's partials are one whole sector.
#define MASKED_LOSS_PARTIAL 8
#define MASKED_LOSS_TOTALS 7
// Tokens per fwd segment: 8 windows, so a misaligned segment touches one sector more than its
// 32 (f32, the mask) or 16 (bf16) sectors' worth.
#define MASKED_LOSS_SEGMENT 256

struct TokenTerms {
    float loss;
    float grad;
    float stat[4];
};

// One lane's element of a window: its mask and the token's inputs (zeros where not read).
struct WindowElement {
    u32 mask;
    float x[4];
};

// Lane `lane` of the warp loads flat element `i` if it lies in [first, end); the inputs only when
// some lane of the window holds a masked token. Every lane of the warp must call it.
template <typename Token>
__device__ __forceinline__ WindowElement load_window(const u32* __restrict__ mask, u64 i,
                                                     u64 first, u64 end, const Token& token) {
    const bool inside = i >= first && i < end;
    WindowElement e = {inside ? mask[i] : 0u, {0.0f, 0.0f, 0.0f, 0.0f}};
    if (__any_sync(RLHF_FULL_MASK, e.mask != 0) && inside) token.load(i, e.x);
    return e;
}

// What a token adds to its row's partial sums: {1, l, stat0..3}, or zeros off the mask.
struct WindowTerms {
    float v[6];
};

// One window of a segment: loads flat element `i` (in [first, end)), writes its gradient
// `weight·dl` (0 off the mask) and returns the token's terms, in the window's lane order.
template <typename T, typename Token>
__device__ __forceinline__ WindowTerms window_terms(const u32* __restrict__ mask,
                                                   T* __restrict__ grad, u64 i, u64 first,
                                                   u64 end, float weight, const Token& token) {
    const WindowElement e = load_window(mask, i, first, end, token);
    WindowTerms w = {{0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f}};
    float g = 0.0f;
    if (e.mask != 0) {
        const TokenTerms k = token(e.x);
        w.v[0] = 1.0f;
        w.v[1] = k.loss;
#pragma unroll
        for (int s = 0; s < 4; ++s) w.v[2 + s] = k.stat[s];
        g = weight * k.grad;
    }
    if (i >= first && i < end) grad[i] = from_f32<T>(g);
    return w;
}

template <typename T, typename Token>
__device__ __forceinline__ void masked_loss_fwd(const u32* __restrict__ mask,
                                                const float* __restrict__ row_weight,
                                                float* __restrict__ partial, T* __restrict__ grad,
                                                u32 rows, u32 cols, const Token& token) {
    __shared__ float scratch[32];
    __shared__ float row_weight_shared;
    const u32 row = blockIdx.x;
    if (row >= rows) return;
    // One thread reads the row's weight: 4 bytes, not one load per thread.
    if (threadIdx.x == 0) row_weight_shared = row_weight[row];
    __syncthreads();
    const float weight = row_weight_shared;
    const u32 lane = threadIdx.x % 32;
    const u32 warps = blockDim.x / 32;
    const u64 begin = u64(row) * cols;
    const u32 mis = u32(begin % 32);
    // tokens, Σ l, Σ stat0..3
    float acc[6] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
    // Warp-uniform loops: the votes in load_window see every lane.
    for (u32 seg = threadIdx.x / 32 * MASKED_LOSS_SEGMENT; seg < cols;
         seg += warps * MASKED_LOSS_SEGMENT) {
        const u32 seg_cols = min(cols, seg + MASKED_LOSS_SEGMENT);
        const u64 first = begin + seg;
        const u64 end = begin + seg_cols;
        // The segment's aligned windows: the first starts mis elements before the segment (seg
        // is a multiple of 32), the last may run past it.
        for (u64 window = first - mis; window < end; window += 32) {
            const WindowTerms w = window_terms(mask, grad, window + lane, first, end, weight, token);
#pragma unroll
            for (int j = 0; j < 2 + Token::STATS; ++j) acc[j] += w.v[j];
        }
    }
    float total = 0.0f;
#pragma unroll
    for (int j = 0; j < 2 + Token::STATS; ++j) {
        const float sum = block_sum(acc[j], scratch);
        if (threadIdx.x == u32(j)) total = sum;
    }
    if (threadIdx.x < MASKED_LOSS_PARTIAL) {
        partial[u64(row) * MASKED_LOSS_PARTIAL + threadIdx.x] = total;
    }
}

// One block: folds every row's partials in a fixed order and writes
// totals = {loss, N_tok, Σ stat0..3, S}.
__device__ __forceinline__ void masked_loss_totals(const float* __restrict__ partial,
                                                   float* __restrict__ totals, u32 rows,
                                                   u32 sequence_mean) {
    __shared__ float scratch[32 * MASKED_LOSS_PARTIAL];
    if (blockIdx.x != 0) return;
    // Thread t takes slot t % 8 of rows t / 8, t / 8 + blockDim / 8, ...: each group of 8 lanes
    // reads one row's whole sector. Slot 6 becomes "the row has a token", slot 7 stays 0.
    const u32 lane = threadIdx.x % 32;
    const u32 slot = threadIdx.x % MASKED_LOSS_PARTIAL;
    const u32 rows_per_round = blockDim.x / MASKED_LOSS_PARTIAL;
    float part = 0.0f;
    // Warp-uniform loop: the shuffle needs every lane.
    for (u32 base = 0; base < rows; base += rows_per_round) {
        const u32 r = base + threadIdx.x / MASKED_LOSS_PARTIAL;
        const float v = r < rows ? partial[u64(r) * MASKED_LOSS_PARTIAL + slot] : 0.0f;
        const float n = __shfl_sync(RLHF_FULL_MASK, v, lane & ~(MASKED_LOSS_PARTIAL - 1));
        if (slot == 1 && sequence_mean) {
            part += n > 0.0f ? v / n : 0.0f;
        } else if (slot == 6) {
            part += n > 0.0f ? 1.0f : 0.0f;
        } else {
            part += v;
        }
    }
    // Sum each slot over the warp (lanes slot, slot + 8, ...), then over the warps in order.
    part += __shfl_xor_sync(RLHF_FULL_MASK, part, 8);
    part += __shfl_xor_sync(RLHF_FULL_MASK, part, 16);
    if (lane < MASKED_LOSS_PARTIAL) scratch[threadIdx.x / 32 * MASKED_LOSS_PARTIAL + lane] = part;
    __syncthreads();
    if (threadIdx.x >= 32) return;
    // Warp 0: lane j sums slot j % 8 over the warps in order, and lanes 0..6 write the 7 totals
    // in one request: {loss, N_tok (slot 0), Σ stat0..3 (slots 2..5), S (slot 6)}.
    float sum = 0.0f;
    for (u32 w = 0; w < blockDim.x / 32; ++w) sum += scratch[w * MASKED_LOSS_PARTIAL + slot];
    const float tokens = __shfl_sync(RLHF_FULL_MASK, sum, 0);
    const float loss_sum = __shfl_sync(RLHF_FULL_MASK, sum, 1);
    const float seqs = __shfl_sync(RLHF_FULL_MASK, sum, 6);
    const float denominator = sequence_mean ? seqs : tokens;
    const float loss = denominator > 0.0f ? loss_sum / denominator : 0.0f;
    if (lane < MASKED_LOSS_TOTALS) totals[lane] = lane == 0 ? loss : lane == 1 ? tokens : sum;
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
