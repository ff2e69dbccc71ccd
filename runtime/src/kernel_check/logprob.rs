//! The fused log-prob (forward, the forward of policy and reference with the KL estimators,
//! backward with and without the entropy term) over `[rows, V]` logits, and the KL estimators over `[rows, C]` log-probs: their cases and how one runs.

use super::rng::{stored, Rng};
use super::rows::{CHANNELS, ROWS};
use super::Family;
use crate::ops::kl::KlEstimator;
use crate::{Backend, DType, Result, Tensor};

/// Vocabularies of the log-prob checks: tiny, small, GPT-2's, and one past 65535.
pub const LOGPROB_VOCABS: [usize; 4] = [5, 1000, 50257, 70000];
/// Vocabularies past this run one row only (they are the slow ones on the emulator).
const LARGE_VOCAB: usize = 65535;
const INV_TEMPERATURE: f32 = 0.8;
const ESTIMATORS: [KlEstimator; 3] = [KlEstimator::K1, KlEstimator::K2, KlEstimator::K3];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    LogprobFwd,
    LogprobFwdKl,
    LogprobBwd,
    LogprobBwdEntropy,
    KlFwd,
    KlBwd,
}

impl Op {
    fn stem(self) -> &'static str {
        match self {
            Op::LogprobFwd => "logprob_fwd",
            Op::LogprobFwdKl => "logprob_fwd_kl",
            Op::LogprobBwd => "logprob_bwd",
            Op::LogprobBwdEntropy => "logprob_bwd_entropy",
            Op::KlFwd => "kl_fwd",
            Op::KlBwd => "kl_bwd",
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Case {
    op: Op,
    rows: usize,
    cols: usize,
    dtype: DType,
}

/// The family's cases, in report order.
pub(super) fn cases() -> Vec<super::Case> {
    let mut cases = vec![];
    for dtype in [DType::F32, DType::BF16] {
        for op in [Op::LogprobFwd, Op::LogprobFwdKl, Op::LogprobBwd, Op::LogprobBwdEntropy] {
            for cols in LOGPROB_VOCABS {
                for rows in ROWS {
                    if cols <= LARGE_VOCAB || rows == 1 {
                        cases.push(Case { op, rows, cols, dtype });
                    }
                }
            }
        }
        for op in [Op::KlFwd, Op::KlBwd] {
            for rows in ROWS {
                for cols in CHANNELS {
                    cases.push(Case { op, rows, cols, dtype });
                }
            }
        }
    }
    cases
        .into_iter()
        .map(|c| super::Case {
            name: format!("{}_{}", c.op.stem(), c.dtype),
            shape: match c.op {
                Op::KlFwd | Op::KlBwd => format!("[{}, {}] k1, k2, k3", c.rows, c.cols),
                Op::LogprobFwdKl => format!("[{}, {}] s = {INV_TEMPERATURE}, k1, k2, k3", c.rows, c.cols),
                _ => format!("[{}, {}] s = {INV_TEMPERATURE}", c.rows, c.cols),
            },
            seed: 0,
            family: Family::Logprob(c),
        })
        .collect()
}

/// Per-row `(lse, entropy)` of `s·z` in f64, the saved statistics both backwards get.
fn softmax_stats(z: &[f64], v: usize, s: f64) -> (Vec<f32>, Vec<f32>) {
    z.chunks(v)
        .map(|row| {
            let max = row.iter().map(|&z| s * z).fold(f64::NEG_INFINITY, f64::max);
            let lse = max + row.iter().map(|&z| (s * z - max).exp()).sum::<f64>().ln();
            let entropy = -row.iter().map(|&z| (s * z - lse).exp() * (s * z - lse)).sum::<f64>();
            (lse as f32, entropy as f32)
        })
        .unzip()
}

/// Runs `case.op` on `backend` and downloads each output with its dtype.
pub(super) fn run<B: Backend>(b: &B, case: &Case, rng: &mut Rng) -> Result<Vec<(Vec<f32>, DType)>> {
    let (rows, cols, dtype) = (case.rows, case.cols, case.dtype);
    let (dims, n) = ([rows, cols], rows * cols);
    let out = |t: &Tensor<B>| -> Result<(Vec<f32>, DType)> { Ok((b.download_f32(t)?, t.dtype())) };
    match case.op {
        Op::LogprobFwdKl => {
            // The reference: the policy's logits moved a little, as after a few updates.
            let logits = rng.scaled(n, 3.0);
            let shifted: Vec<f32> = logits.iter().zip(rng.scaled(n, 0.3)).map(|(z, d)| z + d).collect();
            let targets = b.upload_u32(&[rows], &rng.ids(rows, cols))?;
            let (z, z_ref) = (b.upload_f32(&dims, &logits, dtype)?, b.upload_f32(&dims, &shifted, dtype)?);
            let mut outputs = vec![];
            for e in ESTIMATORS {
                let o = b.logprob_kl_fwd(&z, &z_ref, &targets, INV_TEMPERATURE, e)?;
                for t in [&o.policy.logprob, &o.policy.entropy, &o.policy.lse, &o.ref_logprob, &o.kl] {
                    outputs.push(out(t)?);
                }
            }
            Ok(outputs)
        }
        Op::LogprobFwd | Op::LogprobBwd | Op::LogprobBwdEntropy => {
            let logits = rng.scaled(n, 3.0);
            let targets = b.upload_u32(&[rows], &rng.ids(rows, cols))?;
            let z = b.upload_f32(&dims, &logits, dtype)?;
            if case.op == Op::LogprobFwd {
                let o = b.logprob_fwd(&z, &targets, INV_TEMPERATURE)?;
                return Ok(vec![out(&o.logprob)?, out(&o.entropy)?, out(&o.lse)?]);
            }
            let (lse, entropy) = softmax_stats(&stored(&logits, dtype), cols, f64::from(INV_TEMPERATURE));
            let row = |x: &[f32]| b.upload_f32(&[rows], x, DType::F32);
            let (lse, entropy, dlogprob) = (row(&lse)?, row(&entropy)?, row(&rng.normal(rows))?);
            let dentropy = match case.op {
                Op::LogprobBwdEntropy => Some(row(&rng.normal(rows))?),
                _ => None,
            };
            let dz = b.logprob_bwd(&z, &targets, &lse, &entropy, &dlogprob, dentropy.as_ref(), INV_TEMPERATURE)?;
            Ok(vec![out(&dz)?])
        }
        Op::KlFwd | Op::KlBwd => {
            // Log-probs of tokens: negative, with policy and reference close as in training.
            let lp: Vec<f32> = rng.normal(n).iter().map(|x| -2.0 - x.abs()).collect();
            let rp: Vec<f32> = lp.iter().zip(rng.scaled(n, 0.3)).map(|(a, d)| a + d).collect();
            let (lp, rp) = (b.upload_f32(&dims, &lp, dtype)?, b.upload_f32(&dims, &rp, dtype)?);
            let dkl = b.upload_f32(&dims, &rng.normal(n), dtype)?;
            ESTIMATORS
                .iter()
                .map(|&e| match case.op {
                    Op::KlFwd => out(&b.kl_fwd(&lp, &rp, e)?),
                    _ => out(&b.kl_bwd(&lp, &rp, e, &dkl)?),
                })
                .collect()
        }
    }
}
