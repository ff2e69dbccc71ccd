// row_stream.cuh: a group of threads (a block, or one warp) streams one row of V elements with
// aligned 16-byte accesses, whatever the row's alignment.
//
// Rows of [N, V] logits start wherever n·V·sizeof(T) puts them: with V = 50257 most rows are not
// 16-byte aligned, and one element per lane per load (128 bytes per f32 warp request, 64 for
// bf16) touches 5 or 3 sectors for 4 or 2 sectors' worth of data: 80% or 67% coalescing.
//
// row_chunk_rounds / row_reduce_chunks: for reductions whose fold order matters (log-sum-exp,
// the log-prob's softmax state). Which elements a thread folds, and in which order, must not
// depend on the row's address — a row's result must be bit-identical whether it is scored alone,
// at row 0, or anywhere in a batch — so the assignment is by index: the row is cut into chunks of
// L = 16 / sizeof(T) elements (4 f32, 8 bf16), chunk c = [c·L, c·L + L), and thread t of n owns
// chunks t, t + n, t + 2n, ..., visited in increasing order. Memory is read in aligned packs:
// with the row starting `mis` elements past a 16-byte boundary, chunk c is the bytes of aligned
// packs c and c + 1 from `mis` elements on; each lane loads pack c, takes pack c + 1 from its
// right neighbour by shuffle and funnel-shifts the pair, and lane 31 loads the warp's 33rd pack
// itself (1/32 more bytes when the row is misaligned; none when it is aligned). Every warp, the
// row's first and last included, takes this path: the (at most two) packs that straddle the
// row's ends are read by the warp in one request, one element per lane, and gathered by
// shuffles, zeros standing for the bytes outside the row, so nothing outside the row is read and
// the chunks' values — hence the fold — are the same whatever the alignment. (Reading those packs
// element by element in their owning lanes took up to 2·L requests per round: ~78% coalescing
// on [64, 769] bf16 rows. Reading the end warps' chunks element by element, lanes 16 bytes
// apart, touched 16 sectors per request: 25% coalesced in f32, 12.5% in bf16.)
//
// Reach: when the row is one of a matrix's, the caller may pass the elements around it that are
// in the same buffer ([lo, hi), lo <= 0 <= V <= hi); the end packs are then read whole, like
// any other, and their bytes outside the row zeroed in registers. Only the buffer's own first and
// last packs are read element by element.
//
// row_pack_rounds: for reductions whose result cannot depend on which thread sees which element
// (integer sums, max): thread t simply holds aligned packs, numbered from the row's first 32-byte
// sector, so a warp's 32 packs are 16 whole sectors and nothing is read twice.
//
// row_store_chunks / store_round_packs: the writing side, aligned 16-byte stores of a warp's
// chunks or packs; the packs straddling the row's ends are written one element per lane in one
// request (a store cannot reach into the neighbours).
//
// row_map: out[i] = op(i, in[i]) for every element, for elementwise passes over a row (no
// ordering constraint): aligned packs in the middle, scalar accesses at both ends (and everywhere
// if `in` and `out` are not aligned alike).
//
// None has a barrier; the round helpers' shuffles need every lane of a warp, so every thread of
// the group must call them (n a multiple of 32).

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

// An element's bits in the low bits of a u32.
__device__ __forceinline__ u32 elem_bits(float x) { return __float_as_uint(x); }
__device__ __forceinline__ u32 elem_bits(bf16 x) { return __bfloat16_as_ushort(x); }

// The row's aligned packs: those that hold at least one of its V elements.
template <typename T> __device__ __forceinline__ u64 row_packs(const T* row, u32 V) {
    constexpr int LEN = Pack<T>::LEN;
    return (u64(V) + (reinterpret_cast<u64>(row) & 15) / sizeof(T) + LEN - 1) / LEN;
}

// The aligned packs a warp's round needs: pack p of the row (elements [p·L − mis, p·L − mis + L),
// `row − mis` 16-byte aligned) as raw bits, `a` = pack c (this lane's) and, with `next`, lane
// 31's `b` = pack c + 1; packs past the row's are zeros. Elements [lo, hi) (lo <= 0, hi >= V)
// may be read: the row's neighbours in the same buffer when the caller knows them (a row of a
// matrix), else lo = 0, hi = V. Packs inside that reach are one 16-byte load each; the (at most
// two) packs of the row that straddle its ends are read by the warp together in one request,
// lane k of [0, L) taking the head's element k and lane L + k the tail's, zeros outside the
// reach; each lane that needs one gathers it by L shuffles. The round's packs are
// [cw, cw + span): whether it touches a straddling pack is warp uniform.
template <typename T>
__device__ __forceinline__ void load_round_packs(const T* row, u32 V, u32 mis, u64 c,
                                                 long long cw, u32 span, bool next, u32 lane,
                                                 long long lo, long long hi, uint4& a, uint4& b) {
    constexpr int LEN = Pack<T>::LEN;
    const u64 packs = (u64(V) + mis + LEN - 1) / LEN;
    const u64 last = packs - 1;
    const bool head_p = -(long long)mis < lo;
    const bool tail_p = (long long)(packs * LEN) - mis > hi;
    const bool head = head_p && cw <= 0 && 0 < cw + span;
    const bool tail = tail_p && (long long)last >= cw && (long long)last < cw + span;
    const uint4 zero = make_uint4(0, 0, 0, 0);
    const auto full = [&](u64 p) {
        return p < packs ? *reinterpret_cast<const uint4*>(row + (p * LEN - mis)) : zero;
    };
    const bool straddles_a = (c == 0 && head_p) || (c == last && tail_p);
    const bool straddles_b = lane == 31 && next && c + 1 == last && tail_p;
    if (!(head || tail)) {
        a = full(c);
        b = lane == 31 && next ? full(c + 1) : zero;
        return;
    }
    u32 mine = 0;
    const u32 k = lane % LEN;
    const bool take = lane < LEN ? head || (tail && last == 0) : lane < 2 * LEN && tail && last != 0;
    const long long e = (long long)((lane < LEN ? u64(0) : last) * LEN + k) - mis;
    if (take && e >= lo && e < hi) mine = elem_bits(row[e]);
    // The head pack (pack 0) comes from lanes [0, L), the tail from [L, 2·L); with one pack only
    // (a tiny row), lanes [0, L) hold both of its ends.
    const bool want_tail = (straddles_a && c != 0) || straddles_b;
    u32 w[4] = {0, 0, 0, 0};
#pragma unroll
    for (int j = 0; j < LEN; ++j) {
        const u32 y = __shfl_sync(RLHF_FULL_MASK, mine, (want_tail ? LEN : 0) + j);
        if (sizeof(T) == 4) {
            w[j % 4] = y;  // j < 4 here; the modulo keeps the bf16 instantiation's dead branch in bounds
        } else {
            w[j / 2] |= y << (16 * (j % 2));
        }
    }
    const uint4 gathered = make_uint4(w[0], w[1], w[2], w[3]);
    a = straddles_a ? gathered : full(c);
    b = lane != 31 || !next ? zero : (straddles_b ? gathered : full(c + 1));
}

// Elements [f, f + L) of the row (zeros outside it) as raw bits, f = f0 + lane·L: a warp reads
// 32 consecutive spans (f0 may be negative). They are the bytes of aligned packs q and q + 1
// from `shift` elements on: each lane loads pack q, takes q + 1 from its right neighbour, lane 31
// loads it itself. [lo, hi) is what may be read (load_round_packs); elements read from outside
// the row are zeroed. Every lane must call it.
template <typename T>
__device__ __forceinline__ uint4 row_span(const T* row, u32 V, long long f0, u32 lane,
                                          long long lo = 0, long long hi = -1) {
    constexpr int LEN = Pack<T>::LEN;
    if (hi < 0) hi = V;
    const u32 mis = u32((reinterpret_cast<u64>(row) & 15) / sizeof(T));
    // f0 + mis >= -LEN: the first pack is at most one before the row's.
    const long long q0 = (f0 + mis + LEN) / LEN - 1;
    const u32 shift = u32(f0 + mis - q0 * LEN);
    const long long q = q0 + lane;
    uint4 a, b;
    load_round_packs(row, V, mis, q >= 0 ? u64(q) : row_packs(row, V), q0, shift != 0 ? 33 : 32,
                     shift != 0, lane, lo, hi, a, b);
    uint4 raw = a;
    if (shift != 0) {
        const uint4 down = shfl_down_u4(a);
        raw = funnel16(a, lane == 31 ? b : down, shift * sizeof(T));
    }
    const long long f = f0 + (long long)lane * LEN;
    if ((lo < 0 && f < 0) || (hi > (long long)V && f + LEN > (long long)V)) {
        Pack<T> p;
        *reinterpret_cast<uint4*>(&p) = raw;
#pragma unroll
        for (int k = 0; k < LEN; ++k) {
            if (f + k < 0 || f + k >= (long long)V) p.v[k] = from_f32<T>(0.0f);
        }
        raw = *reinterpret_cast<const uint4*>(&p);
    }
    return raw;
}

// Chunk c of the row (elements [c·L, c·L + L), zeros past its end) as raw bits, for a warp
// whose lanes hold the consecutive chunks c − lane, ..., c − lane + 31: every lane must call it.
template <typename T>
__device__ __forceinline__ uint4 row_chunk(const T* row, u32 V, u64 c, u32 lane, long long lo = 0,
                                           long long hi = -1) {
    return row_span(row, V, (long long)((c - lane) * Pack<T>::LEN), lane, lo, hi);
}

// row_chunk's elements as f32.
template <typename T>
__device__ __forceinline__ void row_chunk_f32(const T* row, u32 V, u64 c, u32 lane,
                                              float (&x)[Pack<T>::LEN], long long lo = 0,
                                              long long hi = -1) {
    Pack<T> p;
    *reinterpret_cast<uint4*>(&p) = row_chunk(row, V, c, lane, lo, hi);
#pragma unroll
    for (int k = 0; k < Pack<T>::LEN; ++k) x[k] = to_f32(p.v[k]);
}

// Rounds over the row's chunks for a group of n threads (a multiple of 32: the block, or one
// warp), t its thread: in each round thread t holds chunk c = base + t and calls f(x, count, c)
// with `x` (float[L]) the chunk's elements as f32, `count` of them (0 past the row's end, fewer
// than L in its last chunk). Every lane of a warp calls f in every round the warp takes part in,
// so f may use warp collectives; f returns true to stop, and must return the same for every lane
// of the warp. [lo, hi): the elements that may be read (load_round_packs).
template <typename T, typename F>
__device__ __forceinline__ void row_chunk_rounds(const T* row, u32 V, u32 t, u32 n, F&& f,
                                                 long long lo = 0, long long hi = -1) {
    constexpr int LEN = Pack<T>::LEN;
    const u32 lane = t % 32;
    const u64 chunks = (u64(V) + LEN - 1) / LEN;
    // Warp-uniform: a warp leaves when its first chunk is past the row, so the shuffles below
    // see every lane.
    for (u64 base = 0; base + t - lane < chunks; base += n) {
        const u64 c = base + t;
        float x[LEN];
        row_chunk_f32(row, V, c, lane, x, lo, hi);
        const int count = c < chunks ? int(min(u64(LEN), u64(V) - c * LEN)) : 0;
        if (f(x, count, c)) return;
    }
}

// Calls f(x, count) for each chunk this thread owns (count > 0), in increasing order.
template <typename T, typename F>
__device__ __forceinline__ void row_reduce_chunks(const T* row, u32 V, F&& f) {
    row_chunk_rounds(row, V, threadIdx.x, blockDim.x, [&](float(&x)[Pack<T>::LEN], int count, u64) {
        if (count > 0) f(x, count);
        return false;
    });
}

// 1 when the row's first aligned pack starts in the second half of a 32-byte sector: numbering
// rounds from pack −1 then gives every warp's 32 packs 16 whole sectors.
template <typename T> __device__ __forceinline__ long long row_sector_shift(const T* row) {
    return (long long)((reinterpret_cast<u64>(row) >> 4) & 1);
}

// Rounds over the row's aligned packs p in [p_begin, p_end) (p_begin may be −1, see
// row_sector_shift; packs outside [0, row_packs) hold nothing) for a group of n threads (a
// multiple of 32), t its thread: in each round thread t holds pack p = p_begin + base + t and
// calls f(x, first, lo, hi), `x` (float[L]) the pack as f32, whose elements lo <= k < hi are the
// row's elements first + k (lo = hi = 0 for a pack holding none). Each pack is read once — no
// funnel shift, no repeated pack — but which thread holds an element moves with the row's
// alignment: only for reductions whose result cannot depend on it (integer sums, max). Every lane
// of a warp calls f in every round the warp takes part in; f returns true to stop, the same for
// every lane of the warp. [reach_lo, reach_hi): the elements that may be read (load_round_packs).
template <typename T, typename F>
__device__ __forceinline__ void row_pack_rounds(const T* row, u32 V, long long p_begin,
                                                long long p_end, u32 t, u32 n, F&& f,
                                                long long reach_lo = 0, long long reach_hi = -1) {
    constexpr int LEN = Pack<T>::LEN;
    const u32 mis = u32((reinterpret_cast<u64>(row) & 15) / sizeof(T));
    const u32 lane = t % 32;
    const u64 packs = row_packs(row, V);
    for (long long p0 = p_begin + t - lane; p0 < p_end; p0 += n) {
        const long long p = p0 + lane;
        const bool held = p >= 0 && p < p_end;
        uint4 a, b;
        load_round_packs(row, V, mis, held ? u64(p) : packs, p0, u32(min(32LL, p_end - p0)), false,
                         lane, reach_lo, reach_hi < 0 ? (long long)V : reach_hi, a, b);
        Pack<T> pk;
        *reinterpret_cast<uint4*>(&pk) = a;
        float x[LEN];
#pragma unroll
        for (int k = 0; k < LEN; ++k) x[k] = to_f32(pk.v[k]);
        const long long first = p * LEN - mis;
        const int lo = held && first < 0 ? int(-first) : 0;
        const int hi = held ? int(min((long long)LEN, (long long)V - first)) : 0;
        if (f(x, first, lo, hi)) return;
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

// One 16-byte global store of raw bits at a 16-byte aligned `p`. Written as PTX because, when
// the alignment comes from the row's offset rather than from the pointer's base, the compiler
// cannot prove it and splits a plain store into one store per element.
template <typename T> __device__ __forceinline__ void store_words16(T* p, uint4 w) {
    asm volatile("st.global.v4.u32 [%0], {%1, %2, %3, %4};" ::"l"(__cvta_generic_to_global(p)),
                 "r"(w.x), "r"(w.y), "r"(w.z), "r"(w.w)
                 : "memory");
}

template <typename T> __device__ __forceinline__ void store_pack16(T* p, const Pack<T>& value) {
    store_words16(p, pack_words(value));
}

__device__ __forceinline__ uint4 shfl_u4(uint4 v, u32 src) {
    return make_uint4(__shfl_sync(RLHF_FULL_MASK, v.x, src), __shfl_sync(RLHF_FULL_MASK, v.y, src),
                      __shfl_sync(RLHF_FULL_MASK, v.z, src), __shfl_sync(RLHF_FULL_MASK, v.w, src));
}

__device__ __forceinline__ uint4 shfl_up_u4(uint4 v) {
    return make_uint4(__shfl_up_sync(RLHF_FULL_MASK, v.x, 1), __shfl_up_sync(RLHF_FULL_MASK, v.y, 1),
                      __shfl_up_sync(RLHF_FULL_MASK, v.z, 1), __shfl_up_sync(RLHF_FULL_MASK, v.w, 1));
}

// Element k of a pack's raw bits.
template <typename T> __device__ __forceinline__ T pack_element(uint4 v, u32 k) {
    const u32 i = k * sizeof(T) / 4;
    const u32 word = i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w;
    if (sizeof(T) == 4) return from_f32<T>(__uint_as_float(word));
    return from_f32<T>(__uint_as_float((word >> (16 * (k % 2))) << 16));
}

// Stores pack p = cw + lane of the row (elements [p·L − mis, p·L − mis + L), `row − mis` 16-byte
// aligned) from its raw bits: one 16-byte store inside the row, nothing outside it; the (at most
// two) packs straddling the row's ends are written one element per lane in one request. Every
// lane of the warp must call it (the warp's packs are cw, ..., cw + 31).
template <typename T>
__device__ __forceinline__ void store_round_packs(T* row, u32 V, u64 cw, u32 lane, uint4 pack) {
    constexpr int LEN = Pack<T>::LEN;
    const u32 mis = u32((reinterpret_cast<u64>(row) & 15) / sizeof(T));
    const u64 packs = row_packs(row, V), last = packs - 1, p = cw + lane;
    const bool head_p = mis != 0, tail_p = (u64(V) + mis) % LEN != 0;
    if (p < packs && !((p == 0 && head_p) || (p == last && tail_p))) {
        store_words16(row + (p * LEN - mis), pack);
    }
    const bool head = head_p && cw == 0;
    const bool tail = tail_p && last >= cw && last < cw + 32;
    if (head || tail) {
        // Lanes [0, L) write the head pack (lane 0's) and, with one pack only, both its ends;
        // lanes [L, 2·L) the tail pack.
        const bool low = lane < LEN;
        const uint4 v = shfl_u4(pack, low || !tail ? 0 : u32(last - cw));
        const bool take = low ? head || (tail && last == 0) : lane < 2 * LEN && tail && last != 0;
        const u32 k = lane % LEN;
        const long long e = (long long)((low ? u64(0) : last) * LEN + k) - mis;
        if (take && e >= 0 && e < (long long)V) row[e] = pack_element<T>(v, k);
    }
}

// Stores a warp's round of chunks (row_chunk's layout, the writing side): lane holds chunk
// c = cw + lane's elements as raw bits `y`, `carry` is chunk cw − 1's (zeros when cw = 0). The
// row's aligned pack p = cw + lane is the end of chunk p − 1 and the start of chunk p (a funnel
// shift, chunk p − 1 from the left neighbour, lane 0's from `carry`), stored by
// store_round_packs. Returns chunk cw + 31's bits, the next round's carry. Every lane must call
// it, and the rounds must run up to pack row_packs(row, V) − 1 (one past the last chunk when the
// row is misaligned and its last pack is one more than its chunks).
template <typename T>
__device__ __forceinline__ uint4 row_store_chunks(T* row, u32 V, u64 cw, u32 lane, uint4 y,
                                                  uint4 carry) {
    constexpr int LEN = Pack<T>::LEN;
    const u32 mis = u32((reinterpret_cast<u64>(row) & 15) / sizeof(T));
    uint4 prev = shfl_up_u4(y);
    if (lane == 0) prev = carry;
    store_round_packs(row, V, cw, lane, mis == 0 ? y : funnel16(prev, y, (LEN - mis) * sizeof(T)));
    return shfl_u4(y, 31);
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
