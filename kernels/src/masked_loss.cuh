// masked_loss.cuh: the two-kernel scheme shared by the masked RL losses (ppo_loss, grpo_loss,
// value_loss). Included after common.cuh.
//
// Inputs are [rows, cols] (B sequences of T tokens) with a 0/1 mask (checked binary on the host).
// A `Token` functor names its INPUTS (at most 4), loads them at a flat index as f32 (`load`), and
// gives, for a masked token's inputs, its loss l, dl/d(input) and up to four statistics.
//
// Memory access: a row starts at flat index row·cols, anywhere on the 32-byte sector grid, so a
// warp reading 32 consecutive tokens of a row touches one sector more than it needs (5 for 4 in
// f32, 3 for 2 in bf16). Both kernels therefore read in windows of 32 elements aligned to the
// allocation (flat index a multiple of 32: whole 128-byte lines for the mask and f32 inputs,
// 64-byte for bf16), each lane loading the window's element if it lies in the row; the only
// partial sectors are at the row's (and, in the fwd, a segment's) two ends. A window's inputs are
// read, unconditionally for all its lanes in the row, only when one of its tokens is masked
// (warp vote): prompt and padding windows cost the mask alone, and no read covers part of a
// sector because of where a response starts or ends.
//
// <op>_fwd, grid = rows, MASKED_LOSS_THREADS threads: block b sums over its row's masked tokens.
// The row is cut into segments of MASKED_LOSS_SEGMENT tokens by index; warp w owns segments
// w, w + warps, ...; within a segment, lane k folds tokens 32j + k (j = 0, 1, ...) in order. The
// warp walks the segment's aligned windows once each and rotates every window pair into the
// logical 32-token chunk by shuffles (lane k takes the element `mis + k` of the pair, mis = the
// row start's offset in its window), so which thread folds which token, and in what order, depend
// only on the token's index in its row and the constant block size — never on B or the row's
// offset. common.cuh's fixed block_sum then gives row b of partial [rows, MASKED_LOSS_PARTIAL]
// f32 = {tokens n_b, Σ l, Σ stat0..3, 0, 0}, written by 8 lanes as one whole 32-byte sector.
// <op>_bwd, grid = rows: every block folds all rows' partials in the same fixed order (thread t
// takes slot t % 8 of rows t / 8, t / 8 + blockDim / 8, ..., so 8 lanes read a row's sector;
// then each slot is summed over the warp by a butterfly and over the warps in order), so every
// block gets the same totals bit for bit: tokens N_tok, rows with a token S, and the loss —
// Σ_b Σ l / N_tok (token mean) or Σ_b (Σ l / n_b) / S (sequence mean). Block 0 writes
// totals = {loss, N_tok, Σ stat0..3, S}.
// Block b then writes its row's gradient w_b·dl (0 off the mask), elementwise over the row's
// aligned windows (warp w takes windows w, w + warps, ...; no reduction, so no rotation):
// w_b = 1/N_tok or 1/(n_b·S), the Cpu's f32 weights. A sequence with no masked token adds
// nothing; no token at all gives a zero loss and gradient.
// No atomics: the result depends only on the data and the constant block size. Token counts are
// exact in f32 up to 2^24 tokens.
// Bytes (S = element size, I = the op's inputs): fwd reads the mask (4 B per token) once and the
// inputs (I·S per token) once in every window holding a masked token (at most B·T·I·S), writes
// 32·rows; bwd reads the same again, writes the gradient once (B·T·S) and reads 32·rows bytes
// of partials per block (rows² reads in all: small next to the token data for the batch sizes
// of RL, rows in the hundreds).

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

// Element `source` of the window `a` (or of the window `b` after it, for `from_next`).
template <typename V>
__device__ __forceinline__ V rotate(V a, V b, u32 source, bool from_next) {
    const V from_a = __shfl_sync(RLHF_FULL_MASK, a, source);
    const V from_b = __shfl_sync(RLHF_FULL_MASK, b, source);
    return from_next ? from_b : from_a;
}

template <typename Token>
__device__ __forceinline__ void masked_loss_fwd(const u32* __restrict__ mask,
                                                float* __restrict__ partial, u32 rows, u32 cols,
                                                const Token& token) {
    __shared__ float scratch[32];
    const u32 row = blockIdx.x;
    if (row >= rows) return;
    const u32 lane = threadIdx.x % 32;
    const u32 warps = blockDim.x / 32;
    const u64 begin = u64(row) * cols;
    const u32 mis = u32(begin % 32);
    const u32 source = (lane + mis) % 32;
    const bool from_next = lane + mis >= 32;
    float acc[MASKED_LOSS_PARTIAL] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
    // Warp-uniform loops: the shuffles and votes see every lane.
    for (u32 seg = threadIdx.x / 32 * MASKED_LOSS_SEGMENT; seg < cols;
         seg += warps * MASKED_LOSS_SEGMENT) {
        const u32 seg_cols = min(cols, seg + MASKED_LOSS_SEGMENT);
        const u64 first = begin + seg;
        const u64 end = begin + seg_cols;
        // Window w of the segment is flat [first − mis + 32w, +32); chunk w (tokens
        // seg + 32w + k) is its elements mis.. followed by window w + 1's elements ..mis.
        WindowElement cur = load_window(mask, first - mis + lane, first, end, token);
        for (u32 t = seg; t < seg_cols; t += 32) {
            const WindowElement next =
                load_window(mask, begin + t - mis + 32 + lane, first, end, token);
            // Both windows are shuffled: the source lane cannot know which one its reader needs.
            WindowElement e;
            e.mask = rotate(cur.mask, next.mask, source, from_next);
#pragma unroll
            for (int s = 0; s < Token::INPUTS; ++s) {
                e.x[s] = rotate(cur.x[s], next.x[s], source, from_next);
            }
            if (t + lane < seg_cols && e.mask != 0) {
                const TokenTerms k = token(e.x);
                acc[0] += 1.0f;
                acc[1] += k.loss;
#pragma unroll
                for (int s = 0; s < 4; ++s) acc[2 + s] += k.stat[s];
            }
            cur = next;
        }
    }
    float total = 0.0f;
#pragma unroll
    for (int j = 0; j < 6; ++j) {
        const float sum = block_sum(acc[j], scratch);
        if (threadIdx.x == u32(j)) total = sum;
    }
    if (threadIdx.x < MASKED_LOSS_PARTIAL) {
        partial[u64(row) * MASKED_LOSS_PARTIAL + threadIdx.x] = total;
    }
}

template <typename T, typename Token>
__device__ __forceinline__ void masked_loss_bwd(const u32* __restrict__ mask,
                                                const float* __restrict__ partial,
                                                float* __restrict__ totals, T* __restrict__ grad,
                                                u32 rows, u32 cols, u32 sequence_mean,
                                                const Token& token) {
    __shared__ float scratch[32 * MASKED_LOSS_PARTIAL];
    const u32 row = blockIdx.x;
    if (row >= rows) return;
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
    // tokens, loss, stat0..3, rows with a token
    float acc[MASKED_LOSS_TOTALS] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
    for (u32 w = 0; w < blockDim.x / 32; ++w) {
#pragma unroll
        for (int j = 0; j < MASKED_LOSS_TOTALS; ++j) acc[j] += scratch[w * MASKED_LOSS_PARTIAL + j];
    }
    const float tokens = acc[0];
    const float seqs = acc[6];
    if (blockIdx.x == 0 && threadIdx.x == 0) {
        const float denominator = sequence_mean ? seqs : tokens;
        totals[0] = denominator > 0.0f ? acc[1] / denominator : 0.0f;
        totals[1] = tokens;
#pragma unroll
        for (int j = 2; j < MASKED_LOSS_TOTALS; ++j) totals[j] = acc[j];
    }
    const float n_row = partial[u64(row) * MASKED_LOSS_PARTIAL];
    float weight;
    if (sequence_mean) {
        weight = n_row > 0.0f ? 1.0f / float(u32(n_row) * u32(seqs)) : 0.0f;
    } else {
        weight = tokens > 0.0f ? 1.0f / tokens : 0.0f;
    }
    const u64 begin = u64(row) * cols;
    const u64 end = begin + cols;
    // Warp-uniform loop over the row's aligned windows (load_window votes across the warp).
    for (u64 window = begin - begin % 32 + threadIdx.x / 32 * 32; window < end;
         window += blockDim.x) {
        const u64 i = window + threadIdx.x % 32;
        const WindowElement e = load_window(mask, i, begin, end, token);
        if (i >= begin && i < end) {
            grad[i] = from_f32<T>(e.mask == 0 ? 0.0f : weight * token(e.x).grad);
        }
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
