// gemm.cu: C = op(A)·op(B) (+ bias), batched, f32 accumulation; the fallback GEMM of the GPU
// backends (Emu always; Cuda when selected instead of cuBLAS).
//
// Maths, per batch entry z (z < batch) and output element (m, n), m < M, n < N:
//   C[z, m, n] = Σ_k opA(z)[m, k] · opB(z)[k, n]  (+ bias[n])
// where opA(z) is A's z-th [M, K] matrix, or the transpose of its [K, M] matrix with TRANS_A;
// likewise opB(z) is [K, N], or the transpose of a stored [N, K] with TRANS_B. `flags`:
//   TRANS_A 1, TRANS_B 2, A_BATCHED 4 (else every z reads the same A), B_BATCHED 8,
//   BIAS 16 (bias [N] is added; otherwise `bias` is never read), REDUCE_BATCH 32 (the batch is
//   part of the reduction: C is one [M, N] matrix, C = Σ_z Σ_k ..., the weight gradient of a B
//   shared across the batch).
// Every output is written with `=`. Summation order: z ascending, then k ascending, one fma per
// term into one f32 accumulator per output (the mma path: 16-term k-steps, see below); the
// order depends on neither the grid nor the batch, so results are bit-for-bit reproducible and a
// row of C does not depend on the other rows in its launch.
//
// Tiling (both paths): a block computes a BM×BN = 64×64 tile of one C matrix, walking K in steps
// of BK, staging the A tile [BM, BK] and the B tile [BK, BN] in shared memory. The loaders pick
// their thread→element mapping from the transpose flags so that consecutive threads always read
// consecutive addresses of the stored matrix (coalesced for all four transpose combinations);
// out-of-range elements (M, N, K not multiples of the tile) are loaded as zeros, so the inner
// loops have no bounds checks. Grid: (ceil(N/64), ceil(M/64), REDUCE_BATCH ? 1 : batch).
//
// gemm_fwd (f32 and bf16 storage, SIMT): 256 threads as 16×16; thread (ty, tx) owns the 4×4
// outputs (ty + 16i, tx + 16j), so stores of a warp cover 2 rows × 16 consecutive columns and
// the shared reads of one k are conflict-free (B) or broadcast (A). Shared: 2 × 16×64 f32 tiles,
// BK = 16, k-major. Per k step: 8 shared loads feed 16 fma.
//
// gemm_fwd_mma (bf16 only, tensor cores): 128 threads = 4 warps as 2×2, each warp a 32×32
// sub-tile = 2 (m16) × 4 (n8) `mma.sync.m16n8k16.row.col.f32.bf16.bf16.f32` tiles; BK = 32.
// Shared tiles hold bf16 with k contiguous (A as [BM][BK+8], B as [BN][BK+8]: the 8-element pad
// shifts each row by 16 bytes, so the 8 row addresses of an `ldmatrix` hit 8 distinct 16-byte
// bank groups). Fragments come from `ldmatrix.x4` (A: one 16×16 tile; B: two 8×16 tiles).
// The C tile is staged through the same shared memory (bf16, row stride 72) and stored by rows,
// two columns per thread: a warp writes 128 contiguous bytes. Loads: for A·Bᵀ (A [M, K], B
// [N, K], both k contiguous: a linear layer) with K a multiple of 8, tiles arrive by 16-byte
// `cp.async` copies into two shared stages, tile t + 1 in flight while tile t is multiplied
// (edges zero-filled by the copies' src-size); other layouts use the element loader with one
// stage.
// The hardware's summation order inside one mma is not specified; the emulator's is documented
// in runtime/src/emu/exec/tensor.rs.
//
// I/O model: each block reads a 64-row panel of op(A) and a 64-column panel of op(B) once,
// so global reads are S·(M·K·ceil(N/64) + K·N·ceil(M/64)) per batch entry (S = sizeof(T); the
// re-reads of a panel by other blocks hit L2 on a GPU), writes S·M·N. bias: S·N per block.
//
// gemm_bwd_bias: dbias[n] = Σ_r dC[r, n] over the R = batch·M rows, rows in ascending order for
// every column (`=`). One thread per aligned 16-byte pack of dbias (L = 16 / S columns),
// consecutive threads on consecutive packs; each dC row's span of those columns is read
// funnel-shifted out of the row's own aligned packs (row_stream.cuh's row_span: a warp reads 33
// packs for 32 when the row is misaligned), so every request is whole 16-byte packs whatever N.
// Grid: ceil((ceil(N / L) + 1) / blockDim.x). Reads S·R·N (+1/32 repeated packs), writes S·N.
#include "common.cuh"
#include "row_stream.cuh"

#define GEMM_TRANS_A 1u
#define GEMM_TRANS_B 2u
#define GEMM_A_BATCHED 4u
#define GEMM_B_BATCHED 8u
#define GEMM_BIAS 16u
#define GEMM_REDUCE_BATCH 32u

enum { GEMM_BM = 64, GEMM_BN = 64 };

// Where the matrices of batch entry z start.
template <typename T> struct GemmOperands {
    const T* a;
    const T* b;
};

template <typename T>
__device__ __forceinline__ GemmOperands<T> gemm_batch(const T* a, const T* b, u32 z, u32 M, u32 N,
                                                      u32 K, u32 flags) {
    const u64 mk = u64(M) * K, kn = u64(K) * N;
    GemmOperands<T> out;
    out.a = a + ((flags & GEMM_A_BATCHED) ? z * mk : 0);
    out.b = b + ((flags & GEMM_B_BATCHED) ? z * kn : 0);
    return out;
}

// Element (row r, col c) of op(X) for a stored row-major X whose op is [rows, cols]: X is
// [rows, cols] or, transposed, [cols, rows]. Zero outside.
template <typename T>
__device__ __forceinline__ T gemm_elem(const T* x, bool trans, u32 r, u32 c, u32 rows, u32 cols) {
    if (r >= rows || c >= cols) return from_f32<T>(0.0f);
    return trans ? x[u64(c) * rows + r] : x[u64(r) * cols + c];
}

// ---- SIMT path ----

enum { SIMT_BK = 16, SIMT_THREADS = 256 };

template <typename T>
__device__ __forceinline__ void gemm_simt_load(const GemmOperands<T>& op, float (*As)[GEMM_BM + 1],
                                               float (*Bs)[GEMM_BN + 1], u32 m0, u32 n0, u32 k0,
                                               u32 M, u32 N, u32 K, u32 flags) {
    const bool ta = flags & GEMM_TRANS_A, tb = flags & GEMM_TRANS_B;
#pragma unroll
    for (int i = 0; i < SIMT_BK * GEMM_BM / SIMT_THREADS; ++i) {
        const u32 idx = threadIdx.x + i * SIMT_THREADS;
        // Stored A is [M, K] (k contiguous) or, transposed, [K, M] (m contiguous).
        const u32 kl = ta ? idx / GEMM_BM : idx % SIMT_BK;
        const u32 ml = ta ? idx % GEMM_BM : idx / SIMT_BK;
        As[kl][ml] = to_f32(gemm_elem(op.a, ta, m0 + ml, k0 + kl, M, K));
    }
#pragma unroll
    for (int i = 0; i < SIMT_BK * GEMM_BN / SIMT_THREADS; ++i) {
        const u32 idx = threadIdx.x + i * SIMT_THREADS;
        // Stored B is [K, N] (n contiguous) or, transposed, [N, K] (k contiguous).
        const u32 kl = tb ? idx % SIMT_BK : idx / GEMM_BN;
        const u32 nl = tb ? idx / SIMT_BK : idx % GEMM_BN;
        Bs[kl][nl] = to_f32(gemm_elem(op.b, tb, k0 + kl, n0 + nl, K, N));
    }
}

template <typename T>
__device__ __forceinline__ void gemm_fwd(const T* __restrict__ a, const T* __restrict__ b,
                                         const T* __restrict__ bias, T* __restrict__ c, u32 M,
                                         u32 N, u32 K, u32 batch, u32 flags) {
    // One column of padding: the loaders write k-fastest for non-transposed A (and transposed
    // B), and an unpadded 64-float row would put all 16 k of a half-warp in one bank.
    __shared__ float As[SIMT_BK][GEMM_BM + 1];
    __shared__ float Bs[SIMT_BK][GEMM_BN + 1];
    const u32 tx = threadIdx.x % 16, ty = threadIdx.x / 16;
    const u32 m0 = blockIdx.y * GEMM_BM, n0 = blockIdx.x * GEMM_BN;
    const bool reduce = flags & GEMM_REDUCE_BATCH;
    const u32 z_first = reduce ? 0 : blockIdx.z;
    const u32 z_end = reduce ? batch : blockIdx.z + 1;

    float acc[4][4];
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = 0.0f;

    for (u32 z = z_first; z < z_end; ++z) {
        const GemmOperands<T> op = gemm_batch(a, b, z, M, N, K, flags);
        for (u32 k0 = 0; k0 < K; k0 += SIMT_BK) {
            gemm_simt_load(op, As, Bs, m0, n0, k0, M, N, K, flags);
            __syncthreads();
#pragma unroll
            for (int k = 0; k < SIMT_BK; ++k) {
                float av[4], bv[4];
#pragma unroll
                for (int i = 0; i < 4; ++i) av[i] = As[k][ty + 16 * i];
#pragma unroll
                for (int j = 0; j < 4; ++j) bv[j] = Bs[k][tx + 16 * j];
#pragma unroll
                for (int i = 0; i < 4; ++i)
#pragma unroll
                    for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
            }
            __syncthreads();
        }
    }

    T* cz = c + (reduce ? 0 : u64(blockIdx.z) * M * N);
#pragma unroll
    for (int j = 0; j < 4; ++j) {
        const u32 n = n0 + tx + 16 * j;
        if (n >= N) continue;
        const float add = (flags & GEMM_BIAS) ? to_f32(bias[n]) : 0.0f;
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const u32 m = m0 + ty + 16 * i;
            if (m < M) cz[u64(m) * N + n] = from_f32<T>(acc[i][j] + add);
        }
    }
}

// ---- tensor-core path (bf16) ----

enum { MMA_BK = 32, MMA_PAD = 8, MMA_THREADS = 128 };

__device__ __forceinline__ u32 shared_address(const void* p) {
    return u32(__cvta_generic_to_shared(p));
}

// Four 8×8 b16 matrices; lanes 8i..8i+7 address the rows of matrix i.
__device__ __forceinline__ void ldmatrix_x4(u32 (&r)[4], const bf16* row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(shared_address(row))
                 : "memory");
}

// d += A·B for one m16n8k16 tile (A row-major 16×16, B [k][n] 16×8, f32 accumulators).
__device__ __forceinline__ void mma_bf16(float (&d)[4], const u32 (&a)[4], u32 b0, u32 b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
        "{%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// 16 bytes global → shared, of which the first `bytes` are copied and the rest zero-filled.
__device__ __forceinline__ void cp_async16(bf16* dst, const bf16* src, u32 bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(shared_address(dst)),
                 "l"(__cvta_generic_to_global(src)), "r"(bytes)
                 : "memory");
}

__device__ __forceinline__ void cp_async_commit() {
    asm volatile("cp.async.commit_group;\n" ::: "memory");
}

// Waits until at most one committed group of this thread is still in flight.
__device__ __forceinline__ void cp_async_wait_one() {
    asm volatile("cp.async.wait_group 1;\n" ::: "memory");
}

// The async loader, for A stored [M, K] and B stored [N, K] (both k contiguous, a linear layer's
// layout) with K a multiple of 8: each tile row is 4 chunks of 16 bytes; 128 threads copy 2
// chunks of A and 2 of B. Chunks past M/N or K copy nothing and zero-fill (their source
// address is clamped to the matrix start, never read).
__device__ __forceinline__ void gemm_mma_load_async(const GemmOperands<bf16>& op,
                                                    bf16 (*As)[MMA_BK + MMA_PAD],
                                                    bf16 (*Bs)[MMA_BK + MMA_PAD], u32 m0, u32 n0,
                                                    u32 k0, u32 M, u32 N, u32 K) {
#pragma unroll
    for (int i = 0; i < 2; ++i) {
        // A warp copies 8 whole rows (coalesced). Each 8-lane phase of its shared store takes
        // rows p and p + 4 of them: with 80-byte rows, those 8 chunks fall in 8 distinct
        // 16-byte bank groups (rows p and p + 1 would share one).
        const u32 chunk = threadIdx.x + i * MMA_THREADS;
        const u32 slot = (chunk % 32) / 4;
        const u32 row = 8 * (chunk / 32) + (slot % 2) * 4 + slot / 2;
        const u32 kc = (chunk % 4) * 8, k = k0 + kc;
        const u32 left = k < K ? min(K - k, 8u) * 2 : 0;
        const u32 m = m0 + row, n = n0 + row;
        const bool a_in = m < M && left > 0, b_in = n < N && left > 0;
        cp_async16(&As[row][kc], a_in ? op.a + u64(m) * K + k : op.a, a_in ? left : 0);
        cp_async16(&Bs[row][kc], b_in ? op.b + u64(n) * K + k : op.b, b_in ? left : 0);
    }
}

// Stages the A tile as As[m][k] and the B tile as Bs[n][k] (k contiguous in both, as ldmatrix
// wants them), zeros outside the matrices.
__device__ __forceinline__ void gemm_mma_load(const GemmOperands<bf16>& op,
                                              bf16 (*As)[MMA_BK + MMA_PAD],
                                              bf16 (*Bs)[MMA_BK + MMA_PAD], u32 m0, u32 n0,
                                              u32 k0, u32 M, u32 N, u32 K, u32 flags) {
    const bool ta = flags & GEMM_TRANS_A, tb = flags & GEMM_TRANS_B;
#pragma unroll 4
    for (int i = 0; i < MMA_BK * GEMM_BM / MMA_THREADS; ++i) {
        const u32 idx = threadIdx.x + i * MMA_THREADS;
        const u32 kl = ta ? idx / GEMM_BM : idx % MMA_BK;
        const u32 ml = ta ? idx % GEMM_BM : idx / MMA_BK;
        As[ml][kl] = gemm_elem(op.a, ta, m0 + ml, k0 + kl, M, K);
    }
#pragma unroll 4
    for (int i = 0; i < MMA_BK * GEMM_BN / MMA_THREADS; ++i) {
        const u32 idx = threadIdx.x + i * MMA_THREADS;
        const u32 kl = tb ? idx % MMA_BK : idx / GEMM_BN;
        const u32 nl = tb ? idx / MMA_BK : idx % GEMM_BN;
        Bs[nl][kl] = gemm_elem(op.b, tb, k0 + kl, n0 + nl, K, N);
    }
}

// acc += the A tile × the B tile (k = 0..MMA_BK) for this warp's 32×32 sub-tile.
__device__ __forceinline__ void gemm_mma_tile(float (&acc)[2][4][4],
                                              const bf16 (*As)[MMA_BK + MMA_PAD],
                                              const bf16 (*Bs)[MMA_BK + MMA_PAD], u32 lane, u32 wm,
                                              u32 wn) {
#pragma unroll
    for (int kk = 0; kk < MMA_BK; kk += 16) {
        u32 af[2][4], bf[2][4];
#pragma unroll
        for (int i = 0; i < 2; ++i)
            ldmatrix_x4(af[i], &As[wm + 16 * i + lane % 16][kk + (lane / 16) * 8]);
#pragma unroll
        for (int j = 0; j < 2; ++j)
            ldmatrix_x4(bf[j],
                        &Bs[wn + 16 * j + lane % 8 + (lane / 16) * 8][kk + ((lane / 8) % 2) * 8]);
#pragma unroll
        for (int i = 0; i < 2; ++i)
#pragma unroll
            for (int j = 0; j < 4; ++j)
                mma_bf16(acc[i][j], af[i], bf[j / 2][2 * (j % 2)], bf[j / 2][2 * (j % 2) + 1]);
    }
}

__device__ __forceinline__ void gemm_fwd_mma(const bf16* __restrict__ a, const bf16* __restrict__ b,
                                             const bf16* __restrict__ bias, bf16* __restrict__ c,
                                             u32 M, u32 N, u32 K, u32 batch, u32 flags) {
    // The A and B tiles during the k loop; afterwards the same bytes stage the C tile.
    // Two stages of [A tile; B tile] (stage s: rows [2s·64, 2s·64 + 64) of As and of Bs, As
    // and Bs interleaved by 64 rows); the synchronous loader uses stage 0.
    __shared__ __align__(16) bf16 smem[2 * (GEMM_BM + GEMM_BN) * (MMA_BK + MMA_PAD)];
    static_assert(GEMM_BM == GEMM_BN, "stages interleave equal A and B tiles");
    static_assert(GEMM_BM * (GEMM_BN + MMA_PAD) <= (GEMM_BM + GEMM_BN) * (MMA_BK + MMA_PAD),
                  "the C staging tile fits in the A and B tiles");
    bf16(*As)[MMA_BK + MMA_PAD] = reinterpret_cast<bf16(*)[MMA_BK + MMA_PAD]>(smem);
    bf16(*Bs)[MMA_BK + MMA_PAD] =
        reinterpret_cast<bf16(*)[MMA_BK + MMA_PAD]>(smem + GEMM_BM * (MMA_BK + MMA_PAD));
    bf16(*Cs)[GEMM_BN + MMA_PAD] = reinterpret_cast<bf16(*)[GEMM_BN + MMA_PAD]>(smem);
    const u32 lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const u32 wm = (warp / 2) * 32, wn = (warp % 2) * 32;
    const u32 m0 = blockIdx.y * GEMM_BM, n0 = blockIdx.x * GEMM_BN;
    const bool reduce = flags & GEMM_REDUCE_BATCH;
    const u32 z_first = reduce ? 0 : blockIdx.z;
    const u32 z_end = reduce ? batch : blockIdx.z + 1;

    // acc[i][j]: the m16 tile i × n8 tile j of this warp's 32×32.
    float acc[2][4][4];
#pragma unroll
    for (int i = 0; i < 2; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j)
#pragma unroll
            for (int r = 0; r < 4; ++r) acc[i][j][r] = 0.0f;

    const u32 k_tiles = (K + MMA_BK - 1) / MMA_BK;
    const bool async_copies =
        !(flags & GEMM_TRANS_A) && (flags & GEMM_TRANS_B) && K % 8 == 0 && k_tiles > 0;
    if (async_copies) {
        // Double buffering: tile t + 1 is in flight while tile t is multiplied. Tiles run over
        // (z, k) in order; every iteration commits a group (empty at the end), so
        // `wait_group 1` always means "tile t has landed".
        const u32 tiles = (z_end - z_first) * k_tiles;
        if (tiles > 0) {
            gemm_mma_load_async(gemm_batch(a, b, z_first, M, N, K, flags), As, Bs, m0, n0, 0, M,
                                N, K);
        }
        cp_async_commit();
        for (u32 t = 0; t < tiles; ++t) {
            const u32 next = t + 1, stage = t % 2;
            if (next < tiles) {
                const u32 z = z_first + next / k_tiles, k0 = (next % k_tiles) * MMA_BK;
                const u32 s = next % 2;
                gemm_mma_load_async(gemm_batch(a, b, z, M, N, K, flags), As + s * 2 * GEMM_BM,
                                    Bs + s * 2 * GEMM_BM, m0, n0, k0, M, N, K);
            }
            cp_async_commit();
            cp_async_wait_one();
            __syncthreads();
            gemm_mma_tile(acc, As + stage * 2 * GEMM_BM, Bs + stage * 2 * GEMM_BM, lane, wm, wn);
            __syncthreads();
        }
    } else {
        for (u32 z = z_first; z < z_end; ++z) {
            const GemmOperands<bf16> op = gemm_batch(a, b, z, M, N, K, flags);
            for (u32 k0 = 0; k0 < K; k0 += MMA_BK) {
                gemm_mma_load(op, As, Bs, m0, n0, k0, M, N, K, flags);
                __syncthreads();
                gemm_mma_tile(acc, As, Bs, lane, wm, wn);
                __syncthreads();
            }
        }
    }

    // Stage C (with the bias, rounded to bf16) in shared memory, so that the global stores go
    // row by row: a fragment's lanes hold 2 columns of 8 rows, which would use a quarter of
    // each 32-byte sector stored directly. Row stride 72 bf16 = 36 words: the 32 lanes of a
    // fragment store hit 32 distinct banks.
#pragma unroll
    for (int j = 0; j < 4; ++j) {
        const u32 nl = wn + 8 * j + 2 * (lane % 4);
        const u32 n = n0 + nl;
        const float add0 = (flags & GEMM_BIAS) && n < N ? to_f32(bias[n]) : 0.0f;
        const float add1 = (flags & GEMM_BIAS) && n + 1 < N ? to_f32(bias[n + 1]) : 0.0f;
#pragma unroll
        for (int i = 0; i < 2; ++i)
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                const u32 ml = wm + 16 * i + lane / 4 + 8 * h;
                *reinterpret_cast<__nv_bfloat162*>(&Cs[ml][nl]) =
                    __floats2bfloat162_rn(acc[i][j][2 * h] + add0, acc[i][j][2 * h + 1] + add1);
            }
    }
    __syncthreads();
    bf16* cz = c + (reduce ? 0 : u64(blockIdx.z) * M * N);
    // Column pairs: a warp stores one 64-column row, 128 contiguous bytes. With N even, every
    // pair is 4-byte aligned (n and m·N are even) and goes as one store.
    const bool pairs = N % 2 == 0;
#pragma unroll 4
    for (int p = 0; p < GEMM_BM * GEMM_BN / 2 / MMA_THREADS; ++p) {
        const u32 idx = threadIdx.x + p * MMA_THREADS;
        const u32 ml = idx / (GEMM_BN / 2), nl = 2 * (idx % (GEMM_BN / 2));
        const u32 m = m0 + ml, n = n0 + nl;
        if (m >= M || n >= N) continue;
        bf16* out = cz + u64(m) * N + n;
        if (pairs) {
            *reinterpret_cast<__nv_bfloat162*>(out) =
                *reinterpret_cast<const __nv_bfloat162*>(&Cs[ml][nl]);
        } else {
            out[0] = Cs[ml][nl];
            if (n + 1 < N) out[1] = Cs[ml][nl + 1];
        }
    }
}

// ---- bias gradient ----

template <typename T>
__device__ __forceinline__ void gemm_bwd_bias(const T* __restrict__ dc, T* __restrict__ dbias,
                                              u32 R, u32 N) {
    // Thread t holds dbias's aligned pack p = t (elements [p·L − m, p·L − m + L)) and reads the
    // same span of each dC row, funnel-shifted out of the row's aligned packs.
    constexpr int LEN = Pack<T>::LEN;
    const long long m = (long long)((reinterpret_cast<u64>(dbias) & 15) / sizeof(T));
    const u32 lane = threadIdx.x % 32;
    const u64 cw = u64(blockIdx.x) * blockDim.x + threadIdx.x - lane;
    // Warp-uniform: the shuffles below see every lane.
    if (cw >= row_packs(dbias, N)) return;
    float sum[LEN] = {};
    for (u32 r = 0; r < R; ++r) {
        Pack<T> x;
        *reinterpret_cast<uint4*>(&x) = row_span(dc + u64(r) * N, N, (long long)(cw * LEN) - m, lane,
                                                 -(long long)r * N, (long long)(R - r) * N);
#pragma unroll
        for (int j = 0; j < LEN; ++j) sum[j] += to_f32(x.v[j]);
    }
    Pack<T> total;
#pragma unroll
    for (int j = 0; j < LEN; ++j) total.v[j] = from_f32<T>(sum[j]);
    store_round_packs(dbias, N, cw, lane, pack_words(total));
}

extern "C" __global__ void gemm_fwd_f32(const float* a, const float* b, const float* bias,
                                        float* c, u32 M, u32 N, u32 K, u32 batch, u32 flags) {
    gemm_fwd(a, b, bias, c, M, N, K, batch, flags);
}
extern "C" __global__ void gemm_fwd_bf16(const bf16* a, const bf16* b, const bf16* bias, bf16* c,
                                         u32 M, u32 N, u32 K, u32 batch, u32 flags) {
    gemm_fwd(a, b, bias, c, M, N, K, batch, flags);
}

extern "C" __global__ void gemm_fwd_mma_bf16(const bf16* a, const bf16* b, const bf16* bias,
                                             bf16* c, u32 M, u32 N, u32 K, u32 batch,
                                             u32 flags) {
    gemm_fwd_mma(a, b, bias, c, M, N, K, batch, flags);
}

extern "C" __global__ void gemm_bwd_bias_f32(const float* dc, float* dbias, u32 R, u32 N) {
    gemm_bwd_bias(dc, dbias, R, N);
}
extern "C" __global__ void gemm_bwd_bias_bf16(const bf16* dc, bf16* dbias, u32 R, u32 N) {
    gemm_bwd_bias(dc, dbias, R, N);
}
