//! The optimizer kernels: one AdamW step (plain, and writing a bf16 copy of the weights) and the
//! sum of squares behind global gradient-norm clipping, over 1, 769 and 100 003 elements (and
//! 300 001 for the sum, where each thread of the fixed partition sums several elements).

use super::rng::Rng;
use super::Family;
use crate::ops::adamw::AdamW;
use crate::{Backend, DType, Result, Tensor};

/// Elements of the AdamW cases.
const ADAMW_SIZES: [usize; 3] = [1, 769, 100_003];
/// Elements of the sum-of-squares cases.
const SUM_SIZES: [usize; 4] = [1, 769, 100_003, 300_001];
/// A step late enough that the bias corrections are not trivial.
const STEP: u32 = 7;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    AdamW,
    AdamWCopy,
    SumSquares,
}

impl Op {
    fn stem(self) -> &'static str {
        match self {
            Op::AdamW => "adamw_fwd",
            Op::AdamWCopy => "adamw_fwd_copy",
            Op::SumSquares => "grad_norm_fwd_sumsq",
        }
    }
}

/// One case: `n` elements; `dtype` is the gradient's (AdamW) or the input's (sum of squares).
#[derive(Debug, Clone, Copy)]
pub(super) struct Case {
    op: Op,
    n: usize,
    dtype: DType,
}

/// The family's cases, in report order.
pub(super) fn cases() -> Vec<super::Case> {
    let mut cases = vec![];
    for dtype in [DType::F32, DType::BF16] {
        for op in [Op::AdamW, Op::AdamWCopy] {
            cases.extend(ADAMW_SIZES.map(|n| Case { op, n, dtype }));
        }
        cases.extend(SUM_SIZES.map(|n| Case { op: Op::SumSquares, n, dtype }));
    }
    cases
        .into_iter()
        .map(|c| super::Case {
            name: format!("{}_{}", c.op.stem(), c.dtype),
            shape: format!("[{}]", c.n),
            seed: 0,
            family: Family::Optim(c),
        })
        .collect()
}

/// Runs `case.op` on `backend` and downloads each output with its dtype: the updated parameter,
/// moments (and bf16 copy) of a step from random state, or the sum of squares as one f32.
pub(super) fn run<B: Backend>(b: &B, case: &Case, rng: &mut Rng) -> Result<Vec<(Vec<f32>, DType)>> {
    let n = case.n;
    let out = |t: &Tensor<B>| -> Result<(Vec<f32>, DType)> { Ok((b.download_f32(t)?, t.dtype())) };
    if case.op == Op::SumSquares {
        let x = b.upload_f32(&[n], &rng.scaled(n, 3.0), case.dtype)?;
        return Ok(vec![(vec![b.sum_squares(&x)? as f32], DType::F32)]);
    }
    let hyper = AdamW { lr: 3e-2, beta1: 0.8, beta2: 0.95, eps: 1e-8, weight_decay: 0.1 };
    let mut param = b.upload_f32(&[n], &rng.normal(n), DType::F32)?;
    let grad = b.upload_f32(&[n], &rng.normal(n), case.dtype)?;
    let mut m = b.upload_f32(&[n], &rng.scaled(n, 0.1), DType::F32)?;
    let v: Vec<f32> = rng.scaled(n, 0.1).iter().map(|x| x * x).collect();
    let mut v = b.upload_f32(&[n], &v, DType::F32)?;
    let mut outputs = Vec::new();
    if case.op == Op::AdamWCopy {
        let mut copy = b.zeros(&[n], DType::BF16)?;
        b.adamw_step_copy(&mut param, &grad, &mut m, &mut v, &mut copy, &hyper, STEP)?;
        outputs.push(out(&copy)?);
    } else {
        b.adamw_step(&mut param, &grad, &mut m, &mut v, &hyper, STEP)?;
    }
    outputs.extend([out(&param)?, out(&m)?, out(&v)?]);
    Ok(outputs)
}
