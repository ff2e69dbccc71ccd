// attention.cuh: tiles and helpers shared by the attention kernels (attention.cu) and the KV-cache
// decode kernel (kv_cache.cu). Requires common.cuh.
//
// Head sizes: the kernels take HS at run time (1..ATT_MAX_HS) and run the body instantiated for
// the smallest HSM in {32, 64, 128} with HS <= HSM. Shared tiles are [rows][HSM] f32 with the
// columns HS..HSM zero-filled, so the inner loops need no bounds checks; registers are sized by
// HSM.

#define ATT_MAX_HS 128
#define ATT_THREADS 256
// Forward and dq: a block owns ATT_QUERY_TILE queries, 4 threads per query; K and V stream
// through shared memory ATT_KEY_TILE (= one warp's width) keys at a time.
#define ATT_QUERY_TILE 64
#define ATT_KEY_TILE 32
// dK/dV: a block owns ATT_BWD_KEY_TILE keys, 8 threads per key; Q and dO stream through shared
// memory ATT_BWD_QUERY_TILE queries at a time.
#define ATT_BWD_KEY_TILE 32
#define ATT_BWD_QUERY_TILE 32

#define ATT_LOG2E 1.4426950408889634f
#define ATT_LN2 0.6931471805599453f

// Sizes of one attention call. Rows of q/out/dout are [B, Tq, NH, HS]; rows of k/v are
// [B, cap, NKV, HS] of which the first Tk are in use; key_valid is [B, cap].
struct AttShape {
    u32 Tq, Tk, cap, NH, NKV, HS;
};

__device__ __forceinline__ float dot4(float acc, float4 a, float4 b) {
    acc = fmaf(a.x, b.x, acc);
    acc = fmaf(a.y, b.y, acc);
    acc = fmaf(a.z, b.z, acc);
    return fmaf(a.w, b.w, acc);
}

__device__ __forceinline__ float4 axpy4(float p, float4 x, float4 y) {
    return make_float4(fmaf(p, x.x, y.x), fmaf(p, x.y, y.y), fmaf(p, x.z, y.z), fmaf(p, x.w, y.w));
}

__device__ __forceinline__ float4 scale4(float s, float4 x) {
    return make_float4(s * x.x, s * x.y, s * x.z, s * x.w);
}

// Four consecutive elements as one 16-byte (f32) or 8-byte (bf16) access; p must be aligned to
// it. bf16 → f32 is exact: the bf16 bits are the high half of the f32.
__device__ __forceinline__ float4 load4(const float* p) { return *reinterpret_cast<const float4*>(p); }
__device__ __forceinline__ float4 load4(const bf16* p) {
    const uint2 r = *reinterpret_cast<const uint2*>(p);
    return make_float4(__uint_as_float(r.x << 16), __uint_as_float(r.x & 0xffff0000u),
                       __uint_as_float(r.y << 16), __uint_as_float(r.y & 0xffff0000u));
}
__device__ __forceinline__ void store4(float* p, float4 v) { *reinterpret_cast<float4*>(p) = v; }
__device__ __forceinline__ u32 bf16_pair(float lo, float hi) {
    return u32(__bfloat16_as_ushort(from_f32<bf16>(lo))) | (u32(__bfloat16_as_ushort(from_f32<bf16>(hi))) << 16);
}
__device__ __forceinline__ void store4(bf16* p, float4 v) {
    *reinterpret_cast<uint2*>(p) = make_uint2(bf16_pair(v.x, v.y), bf16_pair(v.z, v.w));
}

// The four elements d0..d0+3 (d0 a multiple of 4) of a global row of HS elements (zero past HS),
// times `mul`. Rows start at multiples of HS elements from an aligned allocation, so when HS is a
// multiple of 4 the four are one aligned vector access (the lanes of a query or key then read
// whole sectors); otherwise element by element.
template <typename T>
__device__ __forceinline__ float4 load_row4(const T* __restrict__ row, u32 d0, u32 HS, float mul) {
    if (HS % 4 == 0) return d0 < HS ? scale4(mul, load4(row + d0)) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    float e[4];
#pragma unroll
    for (int c = 0; c < 4; ++c) e[c] = d0 + c < HS ? to_f32(row[d0 + c]) * mul : 0.0f;
    return make_float4(e[0], e[1], e[2], e[3]);
}

template <typename T>
__device__ __forceinline__ void store_row4(T* __restrict__ row, u32 d0, u32 HS, float4 v) {
    if (HS % 4 == 0) {
        if (d0 < HS) store4(row + d0, v);
        return;
    }
    const float e[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int c = 0; c < 4; ++c) {
        if (d0 + c < HS) row[d0 + c] = from_f32<T>(e[c]);
    }
}

// Copies rows 0..ROWS of a global matrix (row r at src + r·stride, HS elements) into dst
// [ROWS][HSM] f32. Rows >= avail, rows whose `keep` flag is 0 (when keep is given) and columns
// >= HS are written as zeros and not read, so masked keys cost no traffic and their garbage
// (a padded cache row may hold anything) never meets a zero probability as 0·NaN. Consecutive
// threads take consecutive columns of a row (coalesced).
template <int ROWS, int HSM, typename T>
__device__ __forceinline__ void load_tile(float* __restrict__ dst, const T* __restrict__ src,
                                          u64 stride, u32 avail, u32 HS, const u32* keep) {
    for (u32 e = threadIdx.x; e < ROWS * HSM; e += blockDim.x) {
        const u32 r = e / HSM;
        const u32 d = e % HSM;
        float x = 0.0f;
        if (r < avail && d < HS && (keep == nullptr || keep[r] != 0)) x = to_f32(src[r * stride + d]);
        dst[e] = x;
    }
}

// Warp 0 reads key_valid for keys j0..j0+32 (0 from `end` on) into keep[32] and sets *any when
// one of them is a real token. Followed by a barrier in the caller.
__device__ __forceinline__ void load_key_mask(u32* keep, u32* any, const u32* __restrict__ key_valid,
                                              u32 j0, u32 end) {
    if (threadIdx.x < 32) {
        const u32 j = j0 + threadIdx.x;
        const u32 ok = j < end ? (key_valid[j] != 0) : 0u;
        keep[threadIdx.x] = ok;
        const u32 ballot = __ballot_sync(RLHF_FULL_MASK, ok != 0);
        if (threadIdx.x == 0) *any = ballot != 0u;
    }
}

// Runs BODY<T, HSM>(args...) for the smallest HSM in {32, 64, 128} that holds HS (the launcher
// rejects HS > ATT_MAX_HS).
#define ATT_DISPATCH_HS(HS, BODY, ...)              \
    do {                                            \
        if ((HS) <= 32) {                           \
            BODY<T, 32>(__VA_ARGS__);               \
        } else if ((HS) <= 64) {                    \
            BODY<T, 64>(__VA_ARGS__);               \
        } else {                                    \
            BODY<T, 128>(__VA_ARGS__);              \
        }                                           \
    } while (0)
