// value_loss.cu: the critic's clipped value loss over masked tokens, reduced to one scalar, with
// d(values).
//
// Maths (value_loss.rs), per masked token with v, v_old, R: e = v − R;
//   no clip (clip < 0): l = e²/2, dl/dv = e;
//   clip ε >= 0: c = min(max(v, v_old − ε), v_old + ε) − R; l = max(e², c²)/2, and dl/dv = e
//   when e² >= c² (ties included), 0 when the clipped term is the larger (then v is outside the
//   clip range and the term is flat in it).
// L = Σ w·l (token or sequence mean); dvalues (`=`, storage T) = w·dl, 0 off the mask. Statistic:
// tokens whose clipped term is the larger.
// Shapes: values, old_values, returns, dvalues [rows, cols] T; mask [rows, cols] u32; row_weight
// [rows] f32; partial [rows, 8] f32; totals [7] f32. Split, determinism and bytes:
// masked_loss.cuh (value_loss_fwd: gradient and partial sums, grid = rows, 256 threads;
// value_loss_fwd_totals: the totals, 1 block).
#include "common.cuh"
#include "masked_loss.cuh"

template <typename T> struct ValueToken {
    const T* values;
    const T* old_values;
    const T* returns;
    float clip;
    enum { INPUTS = 3, STATS = 1 };
    // The old values matter only with a clip (clip < 0: none), so only then are they read.
    __device__ void load(u64 i, float (&x)[4]) const {
        x[0] = to_f32(values[i]);
        x[1] = to_f32(returns[i]);
        x[2] = clip >= 0.0f ? to_f32(old_values[i]) : 0.0f;
    }
    __device__ TokenTerms operator()(const float (&x)[4]) const {
        const float v = x[0];
        const float ret = x[1];
        const float error = v - ret;
        const float unclipped = error * error;
        if (clip >= 0.0f) {
            const float old = x[2];
            const float e = fminf(fmaxf(v, old - clip), old + clip) - ret;
            if (e * e > unclipped) return TokenTerms{0.5f * (e * e), 0.0f, {1.0f, 0.0f, 0.0f, 0.0f}};
        }
        return TokenTerms{0.5f * unclipped, error, {0.0f, 0.0f, 0.0f, 0.0f}};
    }
};

template <typename T>
__device__ __forceinline__ void value_loss_fwd(const T* values, const T* old_values,
                                               const T* returns, const u32* mask,
                                               const float* row_weight, float* partial,
                                               T* dvalues, u32 rows, u32 cols, float clip) {
    const ValueToken<T> token{values, old_values, returns, clip};
    masked_loss_fwd(mask, row_weight, partial, dvalues, rows, cols, token);
}

extern "C" __global__ void value_loss_fwd_f32(const float* values, const float* old_values,
                                              const float* returns, const u32* mask,
                                              const float* row_weight, float* partial,
                                              float* dvalues, u32 rows, u32 cols, float clip) {
    value_loss_fwd(values, old_values, returns, mask, row_weight, partial, dvalues, rows, cols,
                   clip);
}
extern "C" __global__ void value_loss_fwd_bf16(const bf16* values, const bf16* old_values,
                                               const bf16* returns, const u32* mask,
                                               const float* row_weight, float* partial,
                                               bf16* dvalues, u32 rows, u32 cols, float clip) {
    value_loss_fwd(values, old_values, returns, mask, row_weight, partial, dvalues, rows, cols,
                   clip);
}

// The totals do not depend on the storage type; both names exist for the launcher's dispatch.
extern "C" __global__ void value_loss_fwd_totals_f32(const float* partial, float* totals,
                                                     u32 rows, u32 sequence_mean) {
    masked_loss_totals(partial, totals, rows, sequence_mean);
}
extern "C" __global__ void value_loss_fwd_totals_bf16(const float* partial, float* totals,
                                                      u32 rows, u32 sequence_mean) {
    masked_loss_totals(partial, totals, rows, sequence_mean);
}
