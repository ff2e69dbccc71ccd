//! The row kernels behind the fused log-prob and cross-entropy: one online pass over a row of
//! logits for its softmax statistics ([`RowStats`]), and the gradient of a row ([`grad_rows`]).
//! The maths is in the parent module's documentation.

use rayon::prelude::*;

use crate::cpu::HostFloat;
use crate::fast_exp::exp_f32;

/// Elements whose max is taken before they are accumulated (a power of two): the running sums
/// are rescaled at most once per block, and each block is summed by a fixed pairwise tree, in
/// loops LLVM vectorises.
const BLOCK: usize = 256;
/// Lanes of the block max.
const LANES: usize = 8;
/// Lower bound for exponents `x − m`: below about −87 `e^x` is 0 in f32 anyway, and a finite
/// bound turns `−inf` logits (masked tokens) into `0·bound = 0` instead of `0·(−inf) = NaN`.
const EXPONENT_FLOOR: f32 = -128.0;
/// Elements a rayon task should cover at least, so that short rows are batched per task.
const ELEMENTS_PER_TASK: usize = 1 << 14;

/// Rows per rayon task for rows of length `v`.
pub(crate) fn rows_per_task(v: usize) -> usize {
    (ELEMENTS_PER_TASK / v.max(1)).max(1)
}

#[inline(always)]
fn floor_exponent(x: f32) -> f32 {
    if x < EXPONENT_FLOOR {
        EXPONENT_FLOOR
    } else {
        x
    }
}

/// Sum of a power-of-two number of values, halving in place: a fixed pairwise tree.
#[inline(always)]
fn tree_sum(values: &mut [f32]) -> f32 {
    let mut len = values.len();
    while len > 1 {
        len /= 2;
        let (low, high) = values[..2 * len].split_at_mut(len);
        for (a, b) in low.iter_mut().zip(high.iter()) {
            *a += *b;
        }
    }
    values[0]
}

/// The online sums of one row (or part of a row) `x = s·z`: its max `m`, `S = Σ e^(x−m)` and
/// `Q = Σ e^(x−m)·(x−m)`, before they are reduced to [`RowStats`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct OnlineSums {
    pub max: f32,
    pub sum: f32,
    pub shifted: f32,
}

impl OnlineSums {
    pub(crate) fn of<T: HostFloat>(row: &[T], scale: f32) -> Self {
        // Finite, so that a block of −inf logits gives e^(−inf − max) = 0 rather than NaN.
        let mut max = f32::MIN;
        let (mut sum, mut shifted) = (0f32, 0f32);
        let (mut x_buf, mut e_buf, mut q_buf) = ([0f32; BLOCK], [0f32; BLOCK], [0f32; BLOCK]);
        for block in row.chunks(BLOCK) {
            // A short last block is padded with −inf to a power of two for the tree; the padding
            // adds e^(−inf) = 0.
            let width = block.len().next_power_of_two();
            let xs = &mut x_buf[..width];
            for (x, z) in xs.iter_mut().zip(block) {
                *x = scale * z.to_f32();
            }
            xs[block.len()..].fill(f32::NEG_INFINITY);
            let block_max = block_max(xs);
            if block_max > max {
                let shift = floor_exponent(max - block_max);
                let factor = exp_f32(shift);
                shifted = factor * (shifted + shift * sum);
                sum *= factor;
                max = block_max;
            }
            let (es, qs) = (&mut e_buf[..width], &mut q_buf[..width]);
            for ((&x, e), q) in xs.iter().zip(es.iter_mut()).zip(qs.iter_mut()) {
                let d = floor_exponent(x - max);
                *e = exp_f32(d);
                *q = *e * d;
            }
            sum += tree_sum(es);
            shifted += tree_sum(qs);
        }
        OnlineSums { max, sum, shifted }
    }

    /// The sums moved to a max of `max >= self.max`.
    fn rebased(self, max: f32) -> Self {
        let shift = floor_exponent(self.max - max);
        let factor = exp_f32(shift);
        OnlineSums { max, sum: self.sum * factor, shifted: factor * (self.shifted + shift * self.sum) }
    }

    /// The sums of `self`'s elements and `later`'s together.
    pub(crate) fn merge(self, later: OnlineSums) -> Self {
        let max = self.max.max(later.max);
        let (a, b) = (self.rebased(max), later.rebased(max));
        OnlineSums { max, sum: a.sum + b.sum, shifted: a.shifted + b.shifted }
    }

    pub(crate) fn stats(&self) -> RowStats {
        RowStats { max: self.max, log_sum: self.sum.ln(), mean_shift: self.shifted / self.sum }
    }
}

/// Softmax statistics of one row `x = s·z`, from one online pass.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RowStats {
    max: f32,
    /// `log Σ e^(x−max)`.
    log_sum: f32,
    /// `Σ p·(x−max)`.
    mean_shift: f32,
}

impl RowStats {
    pub(crate) fn of<T: HostFloat>(row: &[T], scale: f32) -> Self {
        OnlineSums::of(row, scale).stats()
    }

    pub(crate) fn lse(&self) -> f32 {
        self.max + self.log_sum
    }

    /// `log softmax` at an element whose scaled logit is `x`; `x − max` first, so that logits
    /// of large magnitude lose no more than their own rounding.
    pub(crate) fn log_softmax(&self, x: f32) -> f32 {
        (x - self.max) - self.log_sum
    }

    pub(crate) fn entropy(&self) -> f32 {
        self.log_sum - self.mean_shift
    }
}

/// The largest of `xs` (`−inf` when empty), in lanes so that it vectorises.
#[inline(always)]
fn block_max(xs: &[f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; LANES];
    let mut chunks = xs.chunks_exact(LANES);
    for chunk in &mut chunks {
        for (m, &x) in lanes.iter_mut().zip(chunk) {
            *m = if x > *m { x } else { *m };
        }
    }
    for (m, &x) in lanes.iter_mut().zip(chunks.remainder()) {
        *m = if x > *m { x } else { *m };
    }
    lanes.into_iter().fold(f32::NEG_INFINITY, |a, b| if b > a { b } else { a })
}

/// What the gradient of one row needs: its target, scale, saved `lse`, the upstream gradient of
/// its log-prob, and `(dentropy, entropy)` when the entropy has one.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RowGrad {
    pub target: usize,
    pub scale: f32,
    pub lse: f32,
    pub dlogprob: f32,
    pub entropy: Option<(f32, f32)>,
}

/// `d(logits)` `[N, V]` for rows of length `v`; `row_grad(n)` gives row `n`'s inputs, or `None`
/// for a row whose gradient is zero (an ignored target).
pub(crate) fn grad_rows<T: HostFloat>(
    z: &[T],
    v: usize,
    row_grad: impl Fn(usize) -> Option<RowGrad> + Sync,
) -> Vec<T> {
    let mut dz = vec![T::from_f32(0.0); z.len()];
    dz.par_chunks_mut(v)
        .zip(z.par_chunks(v))
        .enumerate()
        .with_min_len(rows_per_task(v))
        .for_each(|(n, (out, row))| {
            if let Some(g) = row_grad(n) {
                grad_row(row, out, &g);
            }
        });
    dz
}

fn grad_row<T: HostFloat>(row: &[T], out: &mut [T], g: &RowGrad) {
    let RowGrad { target, scale, lse, dlogprob, entropy } = *g;
    let log_p = |z: f32| floor_exponent(scale * z - lse);
    let onehot = scale * dlogprob;
    // One closure per case, so that each row loop is branch-free and vectorises.
    match entropy {
        None => fill_row(row, out, target, onehot, |z| -onehot * exp_f32(log_p(z))),
        Some((dentropy, entropy)) => fill_row(row, out, target, onehot, |z| {
            let log_p = log_p(z);
            let p = exp_f32(log_p);
            -scale * (dlogprob * p + dentropy * p * (log_p + entropy))
        }),
    }
}

/// `out_j = grad(z_j)`, plus `onehot` at the target; every element rounded once. A target past
/// the row's end (a vocabulary chunk that does not hold it, `ops::linear_logprob`) adds nothing.
#[inline(always)]
fn fill_row<T: HostFloat>(row: &[T], out: &mut [T], target: usize, onehot: f32, grad: impl Fn(f32) -> f32) {
    for (o, z) in out.iter_mut().zip(row) {
        *o = T::from_f32(grad(z.to_f32()));
    }
    if let (Some(o), Some(z)) = (out.get_mut(target), row.get(target)) {
        *o = T::from_f32(grad(z.to_f32()) + onehot);
    }
}
