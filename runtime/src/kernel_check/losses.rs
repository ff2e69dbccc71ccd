//! The RL losses (PPO, GRPO, value; masked, both reductions, rows with no masked token), the
//! reward-model losses per pair, masked whitening and GAE: their cases and how one runs.

use super::rng::Rng;
use super::rows::{CHANNELS, ROWS};
use super::Family;
use crate::ops::bt_loss::BtPairs;
use crate::ops::grpo_loss::GrpoLossConfig;
use crate::ops::ppo_loss::{LossReduction, PpoLossConfig};
use crate::ops::value_loss::ValueLossConfig;
use crate::{Backend, DType, Result, Tensor};

/// Pair counts of the reward-model losses.
const PAIRS: [usize; 4] = [1, 7, 64, 769];
const REDUCTIONS: [LossReduction; 2] = [LossReduction::TokenMean, LossReduction::SequenceMean];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    Ppo,
    Grpo,
    Value,
    BtFwd,
    BtBwd,
    BinaryFwd,
    BinaryBwd,
    Whiten,
    Gae,
}

impl Op {
    /// The entry-point stem; the masked losses run their `_fwd_totals` kernel in the same op.
    fn stem(self) -> &'static str {
        match self {
            Op::Ppo => "ppo_loss_fwd",
            Op::Grpo => "grpo_loss_fwd",
            Op::Value => "value_loss_fwd",
            Op::BtFwd => "bt_loss_fwd",
            Op::BtBwd => "bt_loss_bwd",
            Op::BinaryFwd => "bt_loss_fwd_binary",
            Op::BinaryBwd => "bt_loss_bwd_binary",
            Op::Whiten => "masked_whiten_fwd",
            Op::Gae => "gae_fwd",
        }
    }

    fn per_pair(self) -> bool {
        matches!(self, Op::BtFwd | Op::BtBwd | Op::BinaryFwd | Op::BinaryBwd)
    }
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Case {
    op: Op,
    rows: usize,
    cols: usize,
    dtype: DType,
}

const OPS: [Op; 9] =
    [Op::Ppo, Op::Grpo, Op::Value, Op::BtFwd, Op::BtBwd, Op::BinaryFwd, Op::BinaryBwd, Op::Whiten, Op::Gae];

/// The family's cases, in report order.
pub(super) fn cases() -> Vec<super::Case> {
    let mut cases = vec![];
    for dtype in [DType::F32, DType::BF16] {
        for op in OPS {
            if op.per_pair() {
                cases.extend(PAIRS.map(|p| Case { op, rows: p, cols: 1, dtype }));
                continue;
            }
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
            shape: if c.op.per_pair() { format!("P = {}", c.rows) } else { format!("[{}, {}]", c.rows, c.cols) },
            seed: 0,
            family: Family::Losses(c),
        })
        .collect()
}

/// Prompt, response (mask 1), padding per row; every third row has no response at all.
fn mask(rng: &mut Rng, rows: usize, cols: usize) -> Vec<u32> {
    let mut mask = vec![0u32; rows * cols];
    for (r, row) in mask.chunks_mut(cols).enumerate() {
        if r % 3 == 2 {
            continue;
        }
        let start = rng.ids(1, cols)[0] as usize / 2;
        let end = start + 1 + rng.ids(1, cols - start)[0] as usize;
        row[start..end].fill(1);
    }
    mask
}

/// Runs `case.op` on `backend` and downloads each output with its dtype.
pub(super) fn run<B: Backend>(b: &B, case: &Case, rng: &mut Rng) -> Result<Vec<(Vec<f32>, DType)>> {
    let (rows, cols, dtype) = (case.rows, case.cols, case.dtype);
    let (dims, n) = ([rows, cols], rows * cols);
    let up = |x: &[f32]| b.upload_f32(&dims, x, dtype);
    let pairs = |x: &[f32]| b.upload_f32(&[rows], x, dtype);
    let out = |t: &Tensor<B>| -> Result<(Vec<f32>, DType)> { Ok((b.download_f32(t)?, t.dtype())) };
    let scalars = |x: Vec<f32>| (x, DType::F32);
    let labels = |rng: &mut Rng| -> Vec<f32> { (0..rows).map(|_| rng.uniform() as f32).collect() };
    match case.op {
        Op::Ppo | Op::Grpo | Op::Value => {
            let m = b.upload_u32(&dims, &mask(rng, rows, cols))?;
            let base: Vec<f32> = rng.normal(n).iter().map(|x| -1.5 - x.abs()).collect();
            let moved: Vec<f32> = base.iter().zip(rng.scaled(n, 0.3)).map(|(a, d)| a + d).collect();
            let third: Vec<f32> = base.iter().zip(rng.scaled(n, 0.2)).map(|(a, d)| a + d).collect();
            let (x, old, other, adv) = (up(&moved)?, up(&base)?, up(&third)?, up(&rng.normal(n))?);
            let mut outputs = vec![];
            for reduction in REDUCTIONS {
                match case.op {
                    Op::Ppo => {
                        for dual_clip in [None, Some(3.0)] {
                            let config = PpoLossConfig { clip_low: 0.2, clip_high: 0.28, dual_clip, reduction };
                            let o = b.ppo_loss(&x, &old, &adv, &m, &config)?;
                            let s = o.stats;
                            outputs.push(out(&o.dlogprob)?);
                            outputs.push(scalars(vec![o.loss, s.clip_fraction, s.dual_clip_fraction, s.approx_kl, s.tokens as f32]));
                        }
                    }
                    Op::Grpo => {
                        for (beta, reference) in [(0.0, None), (0.1, Some(&other))] {
                            let config = GrpoLossConfig { surrogate: PpoLossConfig { reduction, ..PpoLossConfig::new(0.2) }, beta };
                            let o = b.grpo_loss(&x, &old, reference, &adv, &m, &config)?;
                            let s = o.stats;
                            outputs.push(out(&o.dlogprob)?);
                            outputs.push(scalars(vec![o.loss, o.kl, s.clip_fraction, s.approx_kl, s.tokens as f32]));
                        }
                    }
                    _ => {
                        for clip in [None, Some(0.1)] {
                            let o = b.value_loss(&x, &old, &other, &m, &ValueLossConfig { clip, reduction })?;
                            outputs.push(out(&o.dvalues)?);
                            outputs.push(scalars(vec![o.loss, o.clip_fraction]));
                        }
                    }
                }
            }
            Ok(outputs)
        }
        Op::BtFwd | Op::BtBwd => {
            let (c, r, margin) = (pairs(&rng.scaled(rows, 3.0))?, pairs(&rng.scaled(rows, 3.0))?, pairs(&rng.normal(rows))?);
            let label = pairs(&labels(rng))?;
            let p = BtPairs { reward_chosen: &c, reward_rejected: &r, margin: &margin, label: &label };
            if case.op == Op::BtFwd {
                return Ok(vec![out(&b.bt_loss_fwd(p, 0.1)?)?]);
            }
            let dloss = b.upload_f32(&[rows], &rng.normal(rows), DType::F32)?;
            let g = b.bt_loss_bwd(p, 0.1, &dloss)?;
            Ok(vec![out(&g.reward_chosen)?, out(&g.reward_rejected)?])
        }
        Op::BinaryFwd | Op::BinaryBwd => {
            let (reward, label) = (pairs(&rng.scaled(rows, 3.0))?, pairs(&labels(rng))?);
            if case.op == Op::BinaryFwd {
                return Ok(vec![out(&b.binary_reward_loss_fwd(&reward, &label)?)?]);
            }
            let dloss = b.upload_f32(&[rows], &rng.normal(rows), DType::F32)?;
            Ok(vec![out(&b.binary_reward_loss_bwd(&reward, &label, &dloss)?)?])
        }
        Op::Whiten => {
            let m = b.upload_u32(&dims, &mask(rng, rows, cols))?;
            let x: Vec<f32> = rng.scaled(n, 2.0).iter().map(|v| v + 0.7).collect();
            let x = up(&x)?;
            let mut outputs = vec![];
            for keep_mean in [false, true] {
                let o = b.masked_whiten(&x, &m, keep_mean, 1e-8)?;
                outputs.push(out(&o.y)?);
                outputs.push(scalars(vec![o.mean, o.std]));
            }
            Ok(outputs)
        }
        Op::Gae => {
            let m = b.upload_u32(&dims, &mask(rng, rows, cols))?;
            let (r, v) = (up(&rng.normal(n))?, up(&rng.normal(n))?);
            let o = b.gae(&r, &v, &m, 0.99, 0.95)?;
            Ok(vec![out(&o.advantages)?, out(&o.returns)?])
        }
    }
}
