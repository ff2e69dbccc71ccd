//! The Cpu work of one query head over one block of consecutive queries: scores for the block
//! against the keys it can see, the masked softmax, and the products with V (forward) or the
//! gradient products (backward). Matrix products go through the `gemm` crate on strided views of
//! the token-major `[B, T, heads, HS]` inputs, so nothing is transposed or copied per head.

use gemm::Parallelism;

/// A read-only strided matrix view: element `(r, c)` is `data[r·row_stride + c·col_stride]`.
#[derive(Clone, Copy)]
pub(super) struct Mat<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl<'a> Mat<'a> {
    /// `rows` rows of `cols` contiguous elements, each `row_stride` after the previous, starting
    /// at `data[offset]`.
    pub fn new(
        data: &'a [f32],
        offset: usize,
        rows: usize,
        cols: usize,
        row_stride: usize,
    ) -> Self {
        let data = &data[offset.min(data.len())..];
        Mat { data, rows, cols, row_stride, col_stride: 1 }
    }

    /// Rows `start..end` of this view.
    fn row_range(self, start: usize, end: usize) -> Self {
        let offset = (start * self.row_stride).min(self.data.len());
        Mat { data: &self.data[offset..], rows: end - start, ..self }
    }

    fn transposed(self) -> Self {
        Mat {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }

    fn row(&self, r: usize) -> &'a [f32] {
        &self.data[r * self.row_stride..][..self.cols]
    }

    /// Whether every element the view addresses lies inside `data`.
    fn in_bounds(&self) -> bool {
        self.rows == 0
            || self.cols == 0
            || (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride
                < self.data.len()
    }
}

/// `dst = (accumulate ? dst : 0) + alpha · a · b` for `dst` `[a.rows, b.cols]` stored row-major
/// with row stride `dst_stride`. Single-threaded: callers parallelise over heads and blocks, which
/// also keeps the summation order independent of the thread count.
fn matmul(dst: &mut [f32], dst_stride: usize, accumulate: bool, alpha: f32, a: Mat, b: Mat) {
    let (m, n, k) = (a.rows, b.cols, a.cols);
    assert_eq!(k, b.rows, "inner dimensions of a matrix product");
    assert!(a.in_bounds() && b.in_bounds(), "matrix views out of bounds");
    if m == 0 || n == 0 {
        return;
    }
    assert!((m - 1) * dst_stride + n <= dst.len(), "destination out of bounds");
    // SAFETY: the asserts above guarantee that every element addressed through the strides of
    // `a`, `b` and `dst` lies inside its slice; `dst` is a `&mut` borrow, so it aliases neither
    // input.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_stride as isize,
            accumulate,
            a.data.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            1.0,
            alpha,
            false,
            false,
            false,
            Parallelism::None,
        )
    }
}

/// `e^x` in f32 within 2 ulp for `x <= 88`, as plain arithmetic that the compiler can inline and
/// vectorise (libm's `expf` is a call per element, about a fifth of the attention's time).
/// Arguments below `ln(f32::MIN_POSITIVE)` give 0, −inf included; NaN stays NaN.
#[inline(always)]
fn exp(x: f32) -> f32 {
    const MIN: f32 = -87.336_55; // ln of the smallest normal f32
    const MAX: f32 = 88.0;
    // ln 2 = LN2_HI + LN2_LO, LN2_HI with few enough bits that n · LN2_HI is exact.
    const LN2_HI: f32 = 355.0 / 512.0;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let clamped = x.clamp(MIN, MAX);
    // e^x = 2^n · e^r with |r| <= ln(2)/2, where the Taylor series to r^7 is exact to < 1 ulp.
    // Adding 1.5·2^23 rounds to an integer n held in the low mantissa bits (`round_ties_even`
    // and float-to-int casts do not vectorise on baseline x86-64); shifting those bits, plus the
    // exponent bias, into the exponent field gives 2^n for the n in -126..=127 that occur here.
    const ROUND: f32 = 12_582_912.0;
    let shifted = clamped * std::f32::consts::LOG2_E + ROUND;
    let n = shifted - ROUND;
    let r = clamped - n * LN2_HI - n * LN2_LO;
    let mut poly = 1.0 / 5040.0;
    for inv_factorial in [1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0] {
        poly = poly * r + inv_factorial;
    }
    let two_to_n = f32::from_bits(shifted.to_bits().wrapping_add(127) << 23);
    if x < MIN {
        0.0
    } else {
        poly * two_to_n
    }
}

/// Sum in eight interleaved lanes (vectorisable, and the same order on every run).
fn lane_sum(x: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let chunks = x.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().sum();
    for chunk in chunks {
        lanes.iter_mut().zip(chunk).for_each(|(l, &v)| *l += v);
    }
    lanes.iter().sum::<f32>() + tail
}

/// `a · b` in eight interleaved lanes, like [`lane_sum`].
fn lane_dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let (a_chunks, b_chunks) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a_chunks.remainder().iter().zip(b_chunks.remainder()).map(|(x, y)| x * y).sum();
    for (a8, b8) in a_chunks.zip(b_chunks) {
        for ((l, &x), &y) in lanes.iter_mut().zip(a8).zip(b8) {
            *l += x * y;
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// What one query head reads: its queries `[Tq, HS]`, the keys and values `[Tk, HS]` of its
/// key/value head, and the key mask `[Tk]` of its batch entry.
#[derive(Clone, Copy)]
pub(super) struct HeadInputs<'a> {
    pub q: Mat<'a>,
    pub k: Mat<'a>,
    pub v: Mat<'a>,
    pub key_valid: &'a [u32],
    pub scale: f32,
}

impl HeadInputs<'_> {
    /// Number of keys query `i` may look at (positions `0..end`, before the key mask): queries
    /// are the last `Tq` of the `Tk` positions.
    fn visible_end(&self, i: usize) -> usize {
        self.k.rows - self.q.rows + i + 1
    }

    /// `scores[r, j] = scale · q[start + r] · k[j]` for the block's rows and the `n` keys the last
    /// row can see (row stride `n`).
    fn scores(&self, start: usize, end: usize, n: usize, scores: &mut Vec<f32>) {
        scores.clear();
        scores.resize((end - start) * n, 0.0);
        let k = self.k.row_range(0, n).transposed();
        matmul(scores, n, false, self.scale, self.q.row_range(start, end), k);
    }
}

/// Forward of queries `start..end` of one head: writes their outputs `out` `[end - start, HS]`
/// and log-sum-exps `lse` `[end - start]`; `scores` is scratch.
pub(super) fn forward_block(
    head: &HeadInputs,
    (start, end): (usize, usize),
    out: &mut [f32],
    lse: &mut [f32],
    scores: &mut Vec<f32>,
) {
    if start == end {
        return;
    }
    let n = head.visible_end(end - 1);
    head.scores(start, end, n, scores);
    for (r, row) in scores.chunks_mut(n).enumerate() {
        let visible = head.visible_end(start + r);
        let (seen, unseen) = row.split_at_mut(visible);
        unseen.fill(0.0);
        // Padding keys get −inf, which `exp` turns into probability 0.
        for (s, &m) in seen.iter_mut().zip(head.key_valid) {
            if m == 0 {
                *s = f32::NEG_INFINITY;
            }
        }
        let max = seen.iter().fold(f32::NEG_INFINITY, |acc, &s| acc.max(s));
        if max == f32::NEG_INFINITY {
            // No valid key at or before this query (a left-padding row, or all padding).
            seen.fill(0.0);
            lse[r] = f32::NEG_INFINITY;
            continue;
        }
        seen.iter_mut().for_each(|s| *s = exp(*s - max));
        let sum = lane_sum(seen);
        let inv_sum = 1.0 / sum;
        seen.iter_mut().for_each(|p| *p *= inv_sum);
        lse[r] = max + sum.ln();
    }
    let hs = head.v.cols;
    let probs = Mat::new(scores, 0, end - start, n, n);
    matmul(out, hs, false, 1.0, probs, head.v.row_range(0, n));
}

/// What the backward of one head reads besides [`HeadInputs`]: the forward output, its log-sum-exp
/// and the upstream gradient of the output.
#[derive(Clone, Copy)]
pub(super) struct HeadSaved<'a> {
    pub out: Mat<'a>,
    pub dout: Mat<'a>,
    pub lse: &'a [f32],
}

/// Scratch reused across the blocks of one backward task.
#[derive(Default)]
pub(super) struct BackwardScratch {
    probs: Vec<f32>,
    dprobs: Vec<f32>,
}

/// Backward of queries `start..end` of one head: writes their `dq` `[end - start, HS]` and adds
/// their contribution to `dk` and `dv` `[Tk, HS]` (shared by the query heads of one group).
pub(super) fn backward_block(
    head: &HeadInputs,
    saved: &HeadSaved,
    (start, end): (usize, usize),
    dq: &mut [f32],
    (dk, dv): (&mut [f32], &mut [f32]),
    scratch: &mut BackwardScratch,
) {
    if start == end {
        return;
    }
    let (rows, hs) = (end - start, head.q.cols);
    let n = head.visible_end(end - 1);
    // Recompute P = exp(S − lse) from the saved log-sum-exp instead of storing it.
    head.scores(start, end, n, &mut scratch.probs);
    for (r, row) in scratch.probs.chunks_mut(n).enumerate() {
        let lse = saved.lse[start + r];
        let visible = head.visible_end(start + r);
        let (seen, unseen) = row.split_at_mut(visible);
        unseen.fill(0.0);
        if lse == f32::NEG_INFINITY || lse.is_nan() {
            seen.fill(0.0);
            continue;
        }
        for (s, &m) in seen.iter_mut().zip(head.key_valid) {
            *s = if m != 0 { exp(*s - lse) } else { 0.0 };
        }
    }
    let probs = Mat::new(&scratch.probs, 0, rows, n, n);
    let q_rows = head.q.row_range(start, end);
    let dout_rows = saved.dout.row_range(start, end);
    matmul(dv, hs, true, 1.0, probs.transposed(), dout_rows);

    // dS = P ⊙ (dP − D), with dP = dO·Vᵀ and D_i = dO_i · O_i (= Σ_j P_ij dP_ij).
    scratch.dprobs.clear();
    scratch.dprobs.resize(rows * n, 0.0);
    let v = head.v.row_range(0, n).transposed();
    matmul(&mut scratch.dprobs, n, false, 1.0, dout_rows, v);
    let out_rows = saved.out.row_range(start, end);
    for (r, (ds, p)) in scratch.dprobs.chunks_mut(n).zip(scratch.probs.chunks(n)).enumerate() {
        let d = lane_dot(dout_rows.row(r), out_rows.row(r));
        ds.iter_mut().zip(p).for_each(|(ds, &p)| *ds = p * (*ds - d));
    }
    let dscores = Mat::new(&scratch.dprobs, 0, rows, n, n);
    matmul(dq, hs, false, head.scale, dscores, head.k.row_range(0, n));
    matmul(dk, hs, true, head.scale, dscores.transposed(), q_rows);
}

#[cfg(test)]
mod tests {
    use super::{exp, lane_dot, lane_sum};

    #[test]
    fn exp_is_within_two_ulp() {
        let mut worst = 0f64;
        for i in 0..=2_000_000 {
            let x = -87.0 + 97.0 * i as f32 / 2_000_000.0;
            let want = (x as f64).exp();
            let ulp = (want as f32).abs() * f32::EPSILON;
            worst = worst.max(((exp(x) as f64 - want) / ulp as f64).abs());
        }
        assert!(worst <= 2.0, "worst error {worst} ulp");
    }

    #[test]
    fn exp_edges() {
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp(-1000.0), 0.0);
        assert!(exp(f32::NAN).is_nan());
        assert!((exp(-87.0) as f64 / (-87f64).exp() - 1.0).abs() < 1e-6);
    }

    #[test]
    fn lane_sums_add_everything() {
        let x: Vec<f32> = (1..=29).map(|v| v as f32).collect();
        let y: Vec<f32> = (1..=29).map(|v| (v % 3) as f32).collect();
        assert_eq!(lane_sum(&x), 435.0);
        assert_eq!(lane_sum(&[]), 0.0);
        let want: f32 = x.iter().zip(&y).map(|(a, b)| a * b).sum();
        assert_eq!(lane_dot(&x, &y), want);
    }
}
