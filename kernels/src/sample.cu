// sample.cu: each row's next token from its logits, on the device (greedy, or temperature, top-k,
// top-p and a counter-based draw), so that decoding copies B ids to the host instead of [B, V]
// logits.
//
// Maths (runtime/src/ops/sample.rs is the specification; this kernel gives its ids bit for bit):
// logits z [B, V] (V <= 2^24), ids [B] u32. Candidates are ordered by (logit desc, id asc) with
// logits in IEEE total order: c_i = (key(z_i) << 32) | ~i, key = the bits made order-preserving,
// larger c first. Greedy is top-k with k = 1: the largest c. Otherwise, with m the first
// candidate's logit and s = 1/T, each weight is the integer w_i = floor(e^((z_i − m)·s) · 2^40)
// (sample_weight: f32 __fmul_rn/__fadd_rn only, never fused, so the Cpu repeats it exactly).
// top-k keeps c >= c_(k); top-p keeps the shortest prefix of the top-k set, in c order, whose
// mass reaches need = ceil(p·W_k) (p = p_mant / 2^p_shift, 128-bit integer maths); the draw
// u = counter_bits(seed, first_sequence + row, step) / 2^53 (the hash computed here from the
// u64s passed as lo/hi u32 pairs) gives target = floor(u·W), W the kept mass, and the token is
// the lowest id whose running kept mass in id order exceeds target. Every sum is an integer sum,
// so atomics and any reduction order give the same result: nothing depends on B, the row's
// position or the grid.
//
// Work split: one block of 256 threads (8 warps) per row (grid = B); static shared memory only
// (a 256-bin u64 histogram and a little scratch).
//   1. argmax: the largest c over the row (block max of u64), counting top-k's first digit
//      (below) in the same pass. k = 1 stops here.
//   2. top-k (1 < k < V): radix select of the k-th largest c, 8-bit digits from the top:
//      each pass histograms, in shared memory with integer atomics, the next digit of the
//      candidates that share the digits found so far; a block scan over the 256 bins (thread t
//      holds bin 255 − t) finds the bin where the count reaches k. Digits: the key's 4 bytes
//      (f32) or 2 (bf16: the low 16 bits of its key are 0), then the id's bytes (only as many as
//      V − 1 has). It stops early when the whole bin is kept (no tie straddles the boundary).
//   3. top-p (p < 1): the same select over the top-k set with mass (Σ w) instead of counts; the
//      first pass's histogram total is W_k.
//   4. the kept mass W per warp: warp w owns an even number of the row's aligned 16-byte packs
//      (about 1/8 of them, from a 32-byte sector boundary), lanes on consecutive packs; then the
//      warp whose segment holds target walks it 32 packs at a time (inclusive warp scan of the
//      packs' masses, ballot of the crossing, then the crossing lane walks its pack).
//
// Bytes: every pass reads the row through row_stream.cuh's row_pack_rounds: aligned 16-byte
// loads, each pack once, a warp's 32 packs on 16 whole sectors; the (at most two) packs that
// straddle the row's ends are read whole from the neighbouring rows (the logits are one
// [B, V] buffer), only the buffer's own first and last ones element by element. Which thread sees which
// element then depends on the row's alignment, which no result can notice: the folds are a max
// of u64 and integer sums. The maximum logit comes from the argmax's key, not a reload.
// Greedy: the row once, V·S. Sampling with no top-k/top-p: 2 passes plus one warp's segment,
// ~2.1·V·S. top-k adds 3 passes (f32) or 1 (bf16; its first digit is counted in the argmax pass), plus up to 3
// more while ties straddle the boundary; top-p 4 (f32) or 2 (bf16) plus as many for ties.
// Measured on the emulator, [8, 50257] logits uniform in [−4, 4), in reads of the row (f32 /
// bf16): greedy 1.00 / 1.00, T = 1 2.07 / 2.07, top-k 50 4.07 / 4.54, top-p 0.9 8.07 / 6.07,
// both 10.06 / 8.55; coalescing 100% / 99.9%.
// Written: 4·B.
#include "common.cuh"
#include "row_stream.cuh"

#define SAMPLE_THREADS 256
#define SAMPLE_WARPS (SAMPLE_THREADS / 32)
#define SAMPLE_BINS 256
#define SAMPLE_FIXED_SHIFT 40

__device__ __forceinline__ u32 order_key(float x) {
    const u32 b = __float_as_uint(x);
    return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

// The candidate order as one u64, larger first. A bf16's key keeps only its 16 significant bits
// (the rest would be ones for negative values), so the select can skip them.
template <typename T> __device__ __forceinline__ u64 composite(float x, u32 id) {
    const u32 key = sizeof(T) == 2 ? order_key(x) & 0xFFFF0000u : order_key(x);
    return (u64(key) << 32) | u64(~id);
}

// floor(e^((x − max)·inv_t) · 2^40), operation for operation as ops/sample.rs's `weight`.
__device__ __forceinline__ u64 sample_weight(float x, float max, float inv_t) {
    if (x == max) return 1ull << SAMPLE_FIXED_SHIFT;
    const float d = __fmul_rn(__fsub_rn(x, max), inv_t);
    if (!(d >= -28.0f)) return 0;
    const float round = 12582912.0f;
    const float rounded = __fadd_rn(__fmul_rn(d, __int_as_float(0x3fb8aa3b)), round);
    const float n = __fsub_rn(rounded, round);
    const float r = __fsub_rn(__fsub_rn(d, __fmul_rn(n, __int_as_float(0x3f318000))),
                              __fmul_rn(n, __int_as_float(0xb95e8083)));
    float poly = __int_as_float(0x39500d01);                              // 1/5040
    poly = __fadd_rn(__int_as_float(0x3ab60b61), __fmul_rn(r, poly));     // 1/720
    poly = __fadd_rn(__int_as_float(0x3c088889), __fmul_rn(r, poly));     // 1/120
    poly = __fadd_rn(__int_as_float(0x3d2aaaab), __fmul_rn(r, poly));     // 1/24
    poly = __fadd_rn(__int_as_float(0x3e2aaaab), __fmul_rn(r, poly));     // 1/6
    poly = __fadd_rn(0.5f, __fmul_rn(r, poly));
    poly = __fadd_rn(1.0f, __fmul_rn(r, poly));
    poly = __fadd_rn(1.0f, __fmul_rn(r, poly));
    const u32 exponent = __float_as_uint(rounded) - __float_as_uint(round) + 127u + SAMPLE_FIXED_SHIFT;
    return u64(__fmul_rn(poly, __uint_as_float(exponent << 23)));
}

// The 53 random bits of (seed, sequence, step): ops/sample.rs's `counter_bits`.
__device__ __forceinline__ u64 counter_bits(u64 seed, u64 sequence, u64 step) {
    u64 z = seed ^ (sequence * 0x9E3779B97F4A7C15ull) ^ (step * 0xD1B54A32D192ED03ull);
    for (int i = 0; i < 2; ++i) {
        z += 0x9E3779B97F4A7C15ull;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
    }
    return z >> 11;
}

// ceil(total · mant / 2^shift) for shift in [23, 149], with a 128-bit product.
__device__ __forceinline__ u64 ceil_scaled(u64 total, u32 mant, u32 shift) {
    const u64 lo = total * u64(mant);
    const u64 hi = __umul64hi(total, u64(mant));
    if (shift >= 128) return (lo | hi) != 0 ? 1 : 0;
    u64 q, rem;
    if (shift >= 64) {
        const u32 s = shift - 64;
        q = s == 0 ? hi : hi >> s;
        rem = lo | (s == 0 ? 0 : hi & ((1ull << s) - 1));
    } else {
        q = (lo >> shift) | (hi << (64 - shift));
        rem = lo & ((1ull << shift) - 1);
    }
    return q + (rem != 0 ? 1 : 0);
}

__device__ __forceinline__ u64 warp_max_u64(u64 v) {
    for (int offset = 16; offset > 0; offset >>= 1) {
        const u64 o = __shfl_xor_sync(RLHF_FULL_MASK, v, offset);
        v = o > v ? o : v;
    }
    return v;
}

__device__ __forceinline__ u64 warp_sum_u64(u64 v) {
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(RLHF_FULL_MASK, v, offset);
    return v;
}

__device__ __forceinline__ u64 warp_scan_u64(u64 v) {
    const u32 lane = threadIdx.x % 32;
    for (int offset = 1; offset < 32; offset <<= 1) {
        const u64 o = __shfl_up_sync(RLHF_FULL_MASK, v, offset);
        if (lane >= offset) v += o;
    }
    return v;
}

// Inclusive scan over the block in thread order; `scratch` holds SAMPLE_WARPS u64.
__device__ __forceinline__ u64 block_scan_u64(u64 v, u64* scratch) {
    v = warp_scan_u64(v);
    const u32 warp = threadIdx.x / 32;
    if (threadIdx.x % 32 == 31) scratch[warp] = v;
    __syncthreads();
    for (u32 w = 0; w < warp; ++w) v += scratch[w];
    __syncthreads();
    return v;
}

// The row's reach (row_stream.cuh): block b's row is row b of the [gridDim.x, V] logits, so its
// end packs may be read whole from the neighbouring rows.
__device__ __forceinline__ long long reach_lo(u32 V) { return -(long long)blockIdx.x * V; }
__device__ __forceinline__ long long reach_hi(u32 V) {
    return (long long)(gridDim.x - blockIdx.x) * V;
}

// Calls f(x, id) for each element this thread owns, read through row_stream.cuh's aligned 16-byte
// packs: thread t holds packs t, t + 256, ... (numbered from the row's first sector), so which
// thread sees an element depends on the row's alignment — harmless, every fold here (max of
// u64, integer histograms) is order-free.
template <typename T, typename F>
__device__ __forceinline__ void for_each_element(const T* z, u32 V, F&& f) {
    constexpr int LEN = Pack<T>::LEN;
    row_pack_rounds(
        z, V, -row_sector_shift(z), (long long)row_packs(z, V), threadIdx.x, SAMPLE_THREADS,
        [&](const float(&x)[LEN], long long first, int lo, int hi) {
#pragma unroll
            for (int k = 0; k < LEN; ++k) {
                if (k >= lo && k < hi) f(x[k], u32(first + k));
            }
            return false;
        },
        reach_lo(V), reach_hi(V));
}

// The logit whose order key is `key` (the inverse of order_key; a bf16's dropped low bits are 0).
template <typename T> __device__ __forceinline__ float key_value(u32 key) {
    const u32 b = (key & 0x80000000u) ? (key & 0x7FFFFFFFu) : ~key;
    return __uint_as_float(sizeof(T) == 2 ? b & 0xFFFF0000u : b);
}

// The bound `lower` after a radix select over the candidates c >= lower: the c at which the
// measure (1 per candidate, or its weight when `mass`), summed in c order from the top, first
// reaches `need` (`need` = 0 with `mass`: ceil(p·W_k), W_k the candidates' mass). Returns the
// new bound (candidates >= it are kept), or `lower` when the candidates have no mass. With
// `counted`, `hist` already holds the first digit's histogram (the argmax pass filled it).
template <typename T>
__device__ u64 radix_select(const T* z, u32 V, u64 lower, bool mass, u64 need, u32 p_mant,
                            u32 p_shift, float max, float inv_t, u32 key_digits, u32 id_digits,
                            bool counted, u64* hist, u64* scratch, u64* chosen) {
    const u32 tid = threadIdx.x;
    const u32 steps = key_digits + id_digits;
    u64 prefix = 0;
    for (u32 s = 0; s < steps; ++s) {
        // The id's bytes above its `id_digits` are those of ~id for every id < V: all ones.
        if (s == key_digits) prefix |= 0xFFFFFFFFull & ~((1ull << (8 * id_digits)) - 1);
        const u32 shift = s < key_digits ? 56 - 8 * s : 8 * (steps - 1 - s);
        const u64 high = shift >= 56 ? 0 : ~0ull << (shift + 8);
        if (s > 0 || !counted) {
            hist[tid] = 0;
            __syncthreads();
            for_each_element(z, V, [&](float x, u32 i) {
                const u64 c = composite<T>(x, i);
                if (c >= lower && (c & high) == (prefix & high)) {
                    atomicAdd(&hist[(c >> shift) & 0xff],
                              mass ? sample_weight(x, max, inv_t) : 1ull);
                }
            });
        }
        __syncthreads();
        const u64 h = hist[SAMPLE_BINS - 1 - tid];
        const u64 incl = block_scan_u64(h, scratch);
        if (mass && s == 0) {
            // Thread 255 holds the total; every thread reads it after the barrier.
            if (tid == SAMPLE_THREADS - 1) chosen[3] = incl;
            __syncthreads();
            const u64 total = chosen[3];
            if (total == 0) return lower;
            need = ceil_scaled(total, p_mant, p_shift);
        }
        if (incl - h < need && need <= incl) {
            chosen[0] = SAMPLE_BINS - 1 - tid;
            chosen[1] = incl - h;
            chosen[2] = h;
        }
        __syncthreads();
        const u64 digit = chosen[0], above = chosen[1], bin = chosen[2];
        __syncthreads();
        prefix |= digit << shift;
        need -= above;
        // The whole bin is kept: candidates in it are exactly those >= max(prefix, lower).
        if (need == bin) break;
    }
    return prefix > lower ? prefix : lower;
}

template <typename T>
__device__ void sample_fwd(const T* logits, u32* ids, u32 V, u32 top_k, u32 p_mant, u32 p_shift,
                           float inv_t, u64 seed, u64 first_sequence, u64 step) {
    __shared__ u64 hist[SAMPLE_BINS];
    __shared__ u64 scratch[SAMPLE_WARPS];
    __shared__ u64 chosen[4];
    const u32 row = blockIdx.x, tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    const T* z = logits + u64(row) * V;

    // top-k's first select pass (the top byte over every element) rides on the argmax pass.
    const bool top_k_select = top_k > 1 && top_k < V;
    hist[tid] = 0;
    __syncthreads();
    u64 best = 0;
    for_each_element(z, V, [&](float x, u32 i) {
        const u64 c = composite<T>(x, i);
        best = c > best ? c : best;
        if (top_k_select) atomicAdd(&hist[c >> 56], 1ull);
    });
    best = warp_max_u64(best);
    if (lane == 0) scratch[warp] = best;
    __syncthreads();
    for (u32 w = 0; w < SAMPLE_WARPS; ++w) best = scratch[w] > best ? scratch[w] : best;
    __syncthreads();
    const u32 best_id = ~u32(best);
    if (top_k == 1) {
        if (tid == 0) ids[row] = best_id;
        return;
    }
    const float max = key_value<T>(u32(best >> 32));
    const u32 key_digits = sizeof(T) == 2 ? 2 : 4;
    u32 id_digits = 1;
    while (id_digits < 4 && ((V - 1) >> (8 * id_digits)) != 0) ++id_digits;

    u64 lower = 0;
    if (top_k_select) {
        lower = radix_select(z, V, lower, false, u64(top_k), 0, 0, max, inv_t, key_digits,
                             id_digits, true, hist, scratch, chosen);
    }
    if (p_mant != 0) {
        lower = radix_select(z, V, lower, true, 0, p_mant, p_shift, max, inv_t, key_digits,
                             id_digits, false, hist, scratch, chosen);
    }

    // The mass pass and the walk: warp w streams its segment of the row's aligned packs, an even
    // number of them from a sector boundary, lanes on consecutive packs.
    constexpr int LEN = Pack<T>::LEN;
    const long long shift = row_sector_shift(z), packs = (long long)row_packs(z, V);
    const long long per_warp = ((packs + shift + SAMPLE_WARPS - 1) / SAMPLE_WARPS + 1) & ~1LL;
    const long long p_begin = warp * per_warp - shift;
    const long long p_end = min(packs, p_begin + per_warp);
    const auto pack_weights = [&](const float(&x)[LEN], long long first, int lo, int hi,
                                  u64(&w)[LEN]) {
        u64 sum = 0;
#pragma unroll
        for (int k = 0; k < LEN; ++k) {
            const u32 i = u32(first + k);
            w[k] = k >= lo && k < hi && composite<T>(x[k], i) >= lower ? sample_weight(x[k], max, inv_t) : 0;
            sum += w[k];
        }
        return sum;
    };
    u64 mass = 0;
    row_pack_rounds(
        z, V, p_begin, p_end, lane, 32,
        [&](const float(&x)[LEN], long long first, int lo, int hi) {
            u64 w[LEN];
            mass += pack_weights(x, first, lo, hi, w);
            return false;
        },
        reach_lo(V), reach_hi(V));
    mass = warp_sum_u64(mass);
    if (lane == 0) scratch[warp] = mass;
    __syncthreads();
    u64 total = 0;
    for (u32 w = 0; w < SAMPLE_WARPS; ++w) total += scratch[w];
    if (total == 0) {
        if (tid == 0) ids[row] = best_id;
        return;
    }
    const u64 bits = counter_bits(seed, first_sequence + row, step);
    const u64 target = __umul64hi(bits << 11, total);
    u64 before = 0;
    u32 owner = 0;
    while (before + scratch[owner] <= target) before += scratch[owner++];
    if (warp != owner) return;
    // 32 packs a round in id order: the round's pack masses scanned across the lanes, then the
    // lane whose pack crosses the target walks its elements.
    row_pack_rounds(
        z, V, p_begin, p_end, lane, 32,
        [&](const float(&x)[LEN], long long first, int lo, int hi) {
        u64 w[LEN];
        const u64 sum = pack_weights(x, first, lo, hi, w);
        const u64 incl = warp_scan_u64(sum);
        const u32 hit = __ballot_sync(RLHF_FULL_MASK, before + incl > target);
        if (hit == 0) {
            before += __shfl_sync(RLHF_FULL_MASK, incl, 31);
            return false;
        }
        if (lane == __ffs(hit) - 1) {
            u64 run = before + incl - sum;
#pragma unroll
            for (int k = 0; k < LEN; ++k) {
                if (k < lo || k >= hi) continue;
                run += w[k];
                if (run > target) {
                    ids[row] = u32(first + k);
                    break;
                }
            }
        }
        return true;
        },
        reach_lo(V), reach_hi(V));
}

__device__ __forceinline__ u64 join_u64(u32 lo, u32 hi) { return (u64(hi) << 32) | lo; }

extern "C" __global__ void sample_fwd_f32(const float* logits, u32* ids, u32 V, u32 top_k,
                                          u32 p_mant, u32 p_shift, float inv_temperature,
                                          u32 seed_lo, u32 seed_hi, u32 sequence_lo,
                                          u32 sequence_hi, u32 step_lo, u32 step_hi) {
    sample_fwd(logits, ids, V, top_k, p_mant, p_shift, inv_temperature, join_u64(seed_lo, seed_hi),
               join_u64(sequence_lo, sequence_hi), join_u64(step_lo, step_hi));
}
extern "C" __global__ void sample_fwd_bf16(const bf16* logits, u32* ids, u32 V, u32 top_k,
                                           u32 p_mant, u32 p_shift, float inv_temperature,
                                           u32 seed_lo, u32 seed_hi, u32 sequence_lo,
                                           u32 sequence_hi, u32 step_lo, u32 step_hi) {
    sample_fwd(logits, ids, V, top_k, p_mant, p_shift, inv_temperature, join_u64(seed_lo, seed_hi),
               join_u64(sequence_lo, sequence_hi), join_u64(step_lo, step_hi));
}
