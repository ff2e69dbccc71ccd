// row_stream.cuh: one block streams one row of V elements with aligned 16-byte accesses,
// whatever the row's alignment.
//
// Rows of [N, V] logits start wherever n·V·sizeof(T) puts them: with V = 50257 most rows are not
// 16-byte aligned, and one element per lane per load (128 bytes per f32 warp request, 64 for
// bf16) touches 5 or 3 sectors for 4 or 2 sectors' worth of data: 80% or 67% coalescing.
//
// row_reduce_chunks: for reductions (log-sum-exp, the log-prob's softmax state). Which elements
// a thread folds, and in which order, must not depend on the row's address — a row's result must
// be bit-identical whether it is scored alone, at row 0, or anywhere in a batch — so the
// assignment is by index: the row is cut into chunks of L = 16 / sizeof(T) elements (4 f32,
// 8 bf16), chunk c = [c·L, c·L + L), and thread t of B owns chunks t, t + B, t + 2B, ..., visited
// in increasing order. Memory is read in aligned packs: with the row starting `mis` elements past
// a 16-byte boundary, chunk c is the bytes of aligned packs c and c + 1 from `mis` elements on;
// each lane loads pack c, takes pack c + 1 from its right neighbour by shuffle and funnel-shifts
// the pair, and lane 31 loads the warp's 33rd pack itself (1/32 more bytes when the row is
// misaligned; none when it is aligned). Every warp, the row's first and last included, takes
// this path: only the (at most two) packs that straddle the row's ends are read element by
// element, zeros standing for the bytes outside the row, so nothing outside the row is read and
// the chunks' values — hence the fold — are the same whatever the alignment. (Reading the end
// warps' chunks element by element instead, lanes 16 bytes apart, touched 16 sectors per
// request: 25% coalesced in f32, 12.5% in bf16.)
//
// row_map: out[i] = op(i, in[i]) for every element, for elementwise passes over a row (no
// ordering constraint): aligned packs in the middle, scalar accesses at both ends (and everywhere
// if `in` and `out` are not aligned alike).
//
// Neither has a barrier; row_reduce_chunks's shuffles need every lane of a warp, so every thread
// of the block must call it (blockDim.x a multiple of 32).

// The 16 bytes that start `bytes` (< 16, a multiple of the element size) bytes into `a`,
// continuing into `b`.
__device__ __forceinline__ uint4 funnel16(uint4 a, uint4 b, u32 bytes) {
    u32 w[8] = {a.x, a.y, a.z, a.w, b.x, b.y, b.z, b.w};
    if (bytes & 4) {
#pragma unroll
        for (int i = 0; i < 7; ++i) w[i] = w[i + 1];
    }
    if (bytes & 8) {
#pragma unroll
        for (int i = 0; i < 6; ++i) w[i] = w[i + 2];
    }
    const u32 bits = (bytes & 3) * 8;
    return make_uint4(__funnelshift_r(w[0], w[1], bits), __funnelshift_r(w[1], w[2], bits),
                      __funnelshift_r(w[2], w[3], bits), __funnelshift_r(w[3], w[4], bits));
}

__device__ __forceinline__ uint4 shfl_down_u4(uint4 v) {
    return make_uint4(__shfl_down_sync(RLHF_FULL_MASK, v.x, 1),
                      __shfl_down_sync(RLHF_FULL_MASK, v.y, 1),
                      __shfl_down_sync(RLHF_FULL_MASK, v.z, 1),
                      __shfl_down_sync(RLHF_FULL_MASK, v.w, 1));
}

// Pack p of the row (elements [p·L − mis, p·L − mis + L), `row − mis` 16-byte aligned) as raw
// bits: one 16-byte load inside the row, element by element with zeros outside it at its ends.
template <typename T>
__device__ __forceinline__ uint4 load_row_pack(const T* row, u64 p, u32 mis, u32 V) {
    constexpr int LEN = Pack<T>::LEN;
    const long long first = (long long)(p * LEN) - mis;
    if (first >= 0 && first + LEN <= (long long)V) {
        return *reinterpret_cast<const uint4*>(row + first);
    }
    Pack<T> out;
#pragma unroll
    for (int k = 0; k < LEN; ++k) {
        const long long e = first + k;
        out.v[k] = e >= 0 && e < (long long)V ? row[e] : from_f32<T>(0.0f);
    }
    return *reinterpret_cast<const uint4*>(&out);
}

// Calls f(x, count) for each chunk this thread owns, in increasing order: `x` (float[L]) holds
// the chunk's elements as f32, `count` of them (fewer than L only in the row's last chunk).
template <typename T, typename F>
__device__ __forceinline__ void row_reduce_chunks(const T* row, u32 V, F&& f) {
    constexpr int LEN = Pack<T>::LEN;
    const u32 mis = u32((reinterpret_cast<u64>(row) & 15) / sizeof(T));
    const u32 lane = threadIdx.x % 32;
    const u64 chunks = (u64(V) + LEN - 1) / LEN;
    // Warp-uniform: a warp leaves when its first chunk is past the row, so the shuffles below
    // see every lane.
    for (u64 base = 0; base + threadIdx.x - lane < chunks; base += blockDim.x) {
        const u64 c = base + threadIdx.x;
        const uint4 a = load_row_pack(row, c, mis, V);
        uint4 raw = a;
        if (mis != 0) {
            uint4 b = shfl_down_u4(a);
            if (lane == 31) b = load_row_pack(row, c + 1, mis, V);
            raw = funnel16(a, b, mis * sizeof(T));
        }
        if (c < chunks) {
            Pack<T> p;
            *reinterpret_cast<uint4*>(&p) = raw;
            float x[LEN];
#pragma unroll
            for (int k = 0; k < LEN; ++k) x[k] = to_f32(p.v[k]);
            f(x, int(min(u64(LEN), u64(V) - c * LEN)));
        }
    }
}

// The pack's bits as four 32-bit words.
__device__ __forceinline__ uint4 pack_words(const Pack<float>& p) {
    return make_uint4(__float_as_uint(p.v[0]), __float_as_uint(p.v[1]), __float_as_uint(p.v[2]),
                      __float_as_uint(p.v[3]));
}

__device__ __forceinline__ uint4 pack_words(const Pack<bf16>& p) {
    u32 w[4];
#pragma unroll
    for (int k = 0; k < 4; ++k) {
        w[k] = u32(__bfloat16_as_ushort(p.v[2 * k])) |
               (u32(__bfloat16_as_ushort(p.v[2 * k + 1])) << 16);
    }
    return make_uint4(w[0], w[1], w[2], w[3]);
}

// One 16-byte global store of the pack at a 16-byte aligned `p`. Written as PTX because, when
// the alignment comes from the row's offset rather than from the pointer's base, the compiler
// cannot prove it and splits a plain store into one store per element.
template <typename T> __device__ __forceinline__ void store_pack16(T* p, const Pack<T>& value) {
    const uint4 w = pack_words(value);
    asm volatile("st.global.v4.u32 [%0], {%1, %2, %3, %4};" ::"l"(__cvta_generic_to_global(p)),
                 "r"(w.x), "r"(w.y), "r"(w.z), "r"(w.w)
                 : "memory");
}

template <typename T, typename Op>
__device__ __forceinline__ void row_map(const T* in, T* out, u32 V, const Op& op) {
    constexpr int LEN = Pack<T>::LEN;
    const u32 m = (reinterpret_cast<u64>(in) & 15) / sizeof(T);
    const long long packs = ((long long)V + m + LEN - 1) / LEN;
    for (long long q = threadIdx.x; q < packs; q += blockDim.x) {
        const long long first = q * LEN - m;
        if (first >= 0 && first + LEN <= (long long)V && is_aligned16(out + first)) {
            const Pack<T> x = load_pack(in + first);
            Pack<T> y;
#pragma unroll
            for (int k = 0; k < LEN; ++k) y.v[k] = from_f32<T>(op((u32)(first + k), to_f32(x.v[k])));
            store_pack16(out + first, y);
        } else {
            const long long end = first + LEN < (long long)V ? first + LEN : (long long)V;
            for (long long i = first < 0 ? 0 : first; i < end; ++i) {
                out[i] = from_f32<T>(op((u32)i, to_f32(in[i])));
            }
        }
    }
}
