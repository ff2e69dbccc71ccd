// row_stream.cuh: one block streams one row of V elements with aligned 16-byte loads, whatever
// the row's alignment.
//
// Rows of [N, V] logits start wherever n·V·sizeof(T) puts them: with V = 50257 most rows are not
// 16-byte aligned, and one element per lane per load (128 bytes per f32 warp request, 64 for
// bf16) touches 5 or 3 sectors for 4 or 2 sectors' worth of data: 80% or 67% coalescing.
//
// row_reduce_each: for reductions. Which elements a thread folds, and in which order, must not
// depend on the row's address (a row's log-sum-exp must be bit-identical whether it is scored
// alone, at row 0, or inside a batch), so the assignment is by index: thread t of B owns the
// "slots" j = t, t + B, t + 2B, ..., slot j being elements [j·L, j·L + L), L = 16 / sizeof(T),
// visited in increasing order. Memory is read in aligned packs: with the row starting s bytes
// past a 16-byte boundary, slot j is bytes [s, s + 16) of aligned packs j and j + 1. Each lane
// loads pack j; pack j + 1 is its right neighbour lane's (one shuffle per word), and lane 31
// loads it itself (one 16-byte load per warp and slot round when s ≠ 0: 1/32 more bytes,
// coalescing ≥ 97%). A pack that runs past the row's end is gathered element by element, so
// nothing past the row is read; a pack that starts before the row (the first one, when s ≠ 0)
// reads the end of the previous row of the same allocation. The first row of an allocation is
// 16-byte aligned (device allocations are), so no read falls outside the tensor.
//
// row_map: out[i] = op(i, in[i]) for every element, for elementwise passes over a row (no
// ordering constraint): aligned packs in the middle, scalar accesses at both ends (and everywhere
// if `in` and `out` are not aligned alike).
//
// Both contain no barrier and use full-warp shuffles only in row_reduce_each, which every thread
// of the block must reach (blockDim.x a multiple of 32).

// Element i of the row through scalar loads, or zero bits past the row.
template <typename T>
__device__ __forceinline__ uint4 gather_pack(const T* row, long long first, u32 V) {
    Pack<T> p;
#pragma unroll
    for (int k = 0; k < Pack<T>::LEN; ++k) {
        const long long i = first + k;
        p.v[k] = (i >= 0 && i < (long long)V) ? row[i] : from_f32<T>(0.0f);
    }
    return *reinterpret_cast<const uint4*>(&p);
}

// Aligned pack q of the row (its first element has row index q·L − m, m = misalignment in
// elements): one 16-byte load when the pack ends inside the row, else gathered.
template <typename T>
__device__ __forceinline__ uint4 aligned_pack(const T* row, u32 m, long long q, u32 V) {
    constexpr int LEN = Pack<T>::LEN;
    const long long first = q * LEN - m;
    if (first + LEN <= (long long)V) {
        return *reinterpret_cast<const uint4*>(row + first);
    }
    return gather_pack(row, first, V);
}

__device__ __forceinline__ u32 word_of(const uint4& a, const uint4& b, u32 w) {
    // w in 0..7, unrolled by the callers into selects (no local-memory array).
    switch (w) {
        case 0: return a.x;
        case 1: return a.y;
        case 2: return a.z;
        case 3: return a.w;
        case 4: return b.x;
        case 5: return b.y;
        case 6: return b.z;
        default: return b.w;
    }
}

// Bytes [s, s + 16) of the 32 bytes a ++ b.
__device__ __forceinline__ uint4 shift_bytes(const uint4& a, const uint4& b, u32 s) {
    const u32 q = s / 4;
    const u32 bits = 8 * (s % 4);
    uint4 out;
    out.x = __funnelshift_r(word_of(a, b, q), word_of(a, b, q + 1), bits);
    out.y = __funnelshift_r(word_of(a, b, q + 1), word_of(a, b, q + 2), bits);
    out.z = __funnelshift_r(word_of(a, b, q + 2), word_of(a, b, q + 3), bits);
    out.w = __funnelshift_r(word_of(a, b, q + 3), word_of(a, b, q + 4), bits);
    return out;
}

// Calls f(i, x) for the elements this thread owns (by index, see above), i increasing.
template <typename T, typename F>
__device__ __forceinline__ void row_reduce_each(const T* row, u32 V, F&& f) {
    constexpr int LEN = Pack<T>::LEN;
    const u32 s = reinterpret_cast<u64>(row) & 15;
    const u32 m = s / sizeof(T);
    const u32 lane = threadIdx.x % 32;
    const long long slots = ((long long)V + LEN - 1) / LEN;
    // Whole warps iterate together (the shuffles need every lane), so the loop bound is the
    // first slot of the warp.
    for (long long warp_slot = threadIdx.x - lane; warp_slot < slots; warp_slot += blockDim.x) {
        const long long j = warp_slot + lane;
        const uint4 own = aligned_pack(row, m, j, V);
        uint4 next;
        next.x = __shfl_down_sync(RLHF_FULL_MASK, own.x, 1);
        next.y = __shfl_down_sync(RLHF_FULL_MASK, own.y, 1);
        next.z = __shfl_down_sync(RLHF_FULL_MASK, own.z, 1);
        next.w = __shfl_down_sync(RLHF_FULL_MASK, own.w, 1);
        if (s != 0 && lane == 31) next = aligned_pack(row, m, j + 1, V);
        if (j >= slots) continue;
        const uint4 words = s == 0 ? own : shift_bytes(own, next, s);
        const Pack<T> p = *reinterpret_cast<const Pack<T>*>(&words);
#pragma unroll
        for (int k = 0; k < LEN; ++k) {
            const long long i = j * LEN + k;
            if (i < (long long)V) f((u32)i, to_f32(p.v[k]));
        }
    }
}

// out[i] = op(i, in[i]) (f32 in, f32 out, stored as T) for every i < V, threads striding over
// aligned packs.
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
