// embedding.cu: row gather (forward) and deterministic scatter-add (backward).
//
// Maths: ids [N] u32 (N = B·T, or any number of rows), table [V, C]:
//   forward   out[i, c]    = table[ids[i], c]                        out [N, C]
//   backward  dtable[v, c] = Σ_{i : ids[i] = v} dy[i, c]  (`=`)      dtable [V, C], dy [N, C]
// The backward sums the rows of each id in increasing i, in f32, rounded once to the storage
// type; rows of ids that do not occur get zeros. Ids ≥ V are the launcher's to reject (the Cpu
// backend errors on them); here they cannot touch memory out of range: the forward writes NaN
// rows for them and the backward ignores them.
//
// embedding_fwd: one block per row i (grid = N); thread t writes the out row's aligned 16-byte
// packs t, t + blockDim, ... (row_stream.cuh: the packs straddling the row's ends one element
// per lane in one request), each read as the same span of the table row, funnel-shifted out of
// its own aligned packs (a warp reads 33 packs for 32: the two rows need not share an
// alignment). Bytes moved: 2·N·C·S + 4·N, S = sizeof(T).
//
// Backward, and why it looks like this. A scatter with float atomics would be fast but its sum
// order changes from run to run; a pass per column over all N ids keeps the order but leaves only
// C threads of parallelism and must accumulate bf16 tables in f32 somewhere. Instead the ids are
// ranked (a stable counting of keys (id, i), which needs no sort library and no atomics) and each
// output element then gathers its own rows:
//   embedding_bwd_rank_u32: one thread per position i, rank_i = #{j : ids[j] < ids[i]} +
//     #{j < i : ids[j] = ids[i]}, found by streaming all ids through shared memory in tiles of
//     256. The ranks are a permutation, so order[rank_i] = i and sorted_ids[rank_i] = ids[i] are
//     written without collisions. O(N²) comparisons, all from shared memory (estimated, not
//     measured: well under a millisecond for N = 65536 on an H100). Any block size; grid =
//     ceil(N / blockDim.x). Scratch: order [N] u32, sorted_ids [N] u32.
//   embedding_bwd: one thread per (v, aligned 16-byte pack of dtable's row v): grid = (V,
//     ceil((ceil(C / L) + 1) / blockDim.x)), L = 16 / S, threads of a block on consecutive packs
//     of one vocabulary row. Each thread binary-searches the run of v in sorted_ids (the same
//     addresses for the whole block, so broadcast loads), then sums, per element of its pack, dy
//     over that run in increasing i (the rank is stable; each dy span is read funnel-shifted out
//     of the dy row's aligned packs, as the forward) and writes its pack once (the packs
//     straddling the row's ends one element per lane). Every output is
//     written by exactly one thread: no zero-fill pass, no atomics, bit-for-bit reproducible and
//     independent of the launch geometry. An id that occurs k times costs its threads k dependent
//     adds (loads unrolled by 4); a batch where one id fills most positions is the slow case.
//   Bytes moved: rank 12·N from DRAM (ids in, order and sorted_ids out; the N² re-reads of ids
//   come from L2 through shared memory); gather N·C·S (dy) + V·C·S (dtable) + 8·N, the binary
//   searches' loads being shared by a whole block and cached.
#include "common.cuh"
#include "row_stream.cuh"

#define RANK_TILE 256

template <typename T>
__device__ __forceinline__ void embedding_fwd(const u32* __restrict__ ids,
                                              const T* __restrict__ table, T* __restrict__ out,
                                              u32 N, u32 V, u32 C) {
    const u64 row = blockIdx.x;
    if (row >= N) return;
    const u32 id = ids[row];
    T* dst = out + row * C;
    if (id >= V) {
        for (u32 c = threadIdx.x; c < C; c += blockDim.x) dst[c] = from_f32<T>(RLHF_NAN);
        return;
    }
    const T* src = table + u64(id) * C;
    // Pack p of dst holds elements [p·L − m, p·L − m + L): the same span of src, funnel-shifted
    // out of src's own aligned packs.
    constexpr int LEN = Pack<T>::LEN;
    const long long m = (long long)((reinterpret_cast<u64>(dst) & 15) / sizeof(T));
    const u32 lane = threadIdx.x % 32;
    for (u64 cw = threadIdx.x - lane; cw < row_packs(dst, C); cw += blockDim.x) {
        const uint4 span = row_span(src, C, (long long)(cw * LEN) - m, lane, -(long long)id * C,
                                    (long long)(V - id) * C);
        store_round_packs(dst, C, cw, lane, span);
    }
}

extern "C" __global__ void embedding_bwd_rank_u32(const u32* __restrict__ ids,
                                                  u32* __restrict__ order,
                                                  u32* __restrict__ sorted_ids, u32 N) {
    __shared__ u32 tile[RANK_TILE];
    const u64 i = u64(blockIdx.x) * blockDim.x + threadIdx.x;
    const bool active = i < N;
    const u32 id = active ? ids[i] : 0;
    u32 rank = 0;
    // Every thread runs every iteration (the bounds depend on N only), so the barriers are
    // reached by the whole block.
    for (u32 base = 0; base < N; base += RANK_TILE) {
        __syncthreads();
        for (u32 k = threadIdx.x; k < RANK_TILE && base + k < N; k += blockDim.x) {
            tile[k] = ids[base + k];
        }
        __syncthreads();
        const u32 len = N - base < RANK_TILE ? N - base : RANK_TILE;
        if (active) {
            for (u32 k = 0; k < len; ++k) {
                const u32 other = tile[k];
                rank += (other < id || (other == id && u64(base) + k < i)) ? 1 : 0;
            }
        }
    }
    if (active) {
        order[rank] = u32(i);
        sorted_ids[rank] = id;
    }
}

// The first index in sorted[0, n) whose value is not below `value`.
__device__ __forceinline__ u32 lower_bound(const u32* sorted, u32 n, u32 value) {
    u32 lo = 0;
    u32 hi = n;
    while (lo < hi) {
        const u32 mid = lo + (hi - lo) / 2;
        if (sorted[mid] < value) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

template <typename T>
__device__ __forceinline__ void embedding_bwd(const u32* __restrict__ order,
                                              const u32* __restrict__ sorted_ids,
                                              const T* __restrict__ dy, T* __restrict__ dtable,
                                              u32 N, u32 V, u32 C) {
    const u32 v = blockIdx.x;
    if (v >= V) return;
    const u32 first = lower_bound(sorted_ids, N, v);
    // v < V ≤ 2³² − 1, so v + 1 cannot wrap; ids ≥ V sort after every run looked for here.
    const u32 end = lower_bound(sorted_ids, N, v + 1);
    // Thread t of the grid's row holds dtable's aligned pack p (elements [p·L − m, p·L − m + L))
    // and reads the same span of each dy row, funnel-shifted out of its aligned packs.
    constexpr int LEN = Pack<T>::LEN;
    T* out = dtable + u64(v) * C;
    const long long m = (long long)((reinterpret_cast<u64>(out) & 15) / sizeof(T));
    const u32 lane = threadIdx.x % 32;
    const u64 cw = u64(blockIdx.y) * blockDim.x + threadIdx.x - lane;
    // Warp-uniform: the shuffles below see every lane.
    if (cw >= row_packs(out, C)) return;
    float sum[LEN] = {};
    for (u32 k = first; k < end; ++k) {
        Pack<T> x;
        const u32 i = order[k];
        *reinterpret_cast<uint4*>(&x) = row_span(dy + u64(i) * C, C, (long long)(cw * LEN) - m,
                                                 lane, -(long long)i * C, (long long)(N - i) * C);
#pragma unroll
        for (int j = 0; j < LEN; ++j) sum[j] += to_f32(x.v[j]);
    }
    Pack<T> total;
#pragma unroll
    for (int j = 0; j < LEN; ++j) total.v[j] = from_f32<T>(sum[j]);
    store_round_packs(out, C, cw, lane, pack_words(total));
}

extern "C" __global__ void embedding_fwd_f32(const u32* ids, const float* table, float* out, u32 N,
                                             u32 V, u32 C) {
    embedding_fwd(ids, table, out, N, V, C);
}
extern "C" __global__ void embedding_fwd_bf16(const u32* ids, const bf16* table, bf16* out, u32 N,
                                              u32 V, u32 C) {
    embedding_fwd(ids, table, out, N, V, C);
}

extern "C" __global__ void embedding_bwd_f32(const u32* order, const u32* sorted_ids,
                                             const float* dy, float* dtable, u32 N, u32 V, u32 C) {
    embedding_bwd(order, sorted_ids, dy, dtable, N, V, C);
}
extern "C" __global__ void embedding_bwd_bf16(const u32* order, const u32* sorted_ids,
                                              const bf16* dy, bf16* dtable, u32 N, u32 V, u32 C) {
    embedding_bwd(order, sorted_ids, dy, dtable, N, V, C);
}
