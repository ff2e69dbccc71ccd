//! PPO's clipped surrogate (Schulman et al. 2017) with an optional dual clip (Ye et al. 2020),
//! reduced to one scalar over the response tokens, with its gradient.
//!
//! Shapes: `logprob`, `old_logprob`, `advantages` `[B, T]` of one float dtype; `mask` `[B, T]`
//! u32, 1 for a token that counts (a response token) and 0 otherwise (prompt, padding). Per
//! token, with the ratio `r = e^(logprob − old_logprob)` and advantage `A`:
//!
//! - `l = max(−A·r, −A·clip(r, 1 − ε_low, 1 + ε_high))`;
//! - with a dual clip `c > 1`, tokens with `A < 0` get `l = min(l, −c·A)`, which bounds the loss
//!   of a negative-advantage token whose ratio has run away.
//!
//! Reduction to `L = Σ w·l` over masked tokens ([`LossReduction`]): token mean `w = 1/Σ m`, or
//! sequence mean `w = 1/(n_b·S)` with `n_b` the tokens of row `b` and `S` the rows that have any.
//! No masked token gives `L = 0`.
//!
//! "Backward" comes with the forward since the loss is a scalar: `d(logprob)` `[B, T]` in the
//! inputs' dtype, `w·(−A·r)` where the unclipped term is the larger and 0 where a clip is active
//! (its term is flat in `logprob`); 0 off the mask. `old_logprob` and the advantages get none.
//!
//! Statistics over masked tokens: the fraction where the ratio clip is active, the fraction where
//! the dual clip is, and the approximate KL(π_old ‖ π) as the token mean of `(r − 1) − log r`
//! (Schulman's k3 with samples from π_old). Sums accumulate in f64, in index order, on one thread:
//! `N = B·T` is small next to the model's tensors.

use super::check;
use crate::cpu::{f32_data, from_f32, u32_data};
use crate::gpu::{self, Arg, GpuBackend, Launch};
use crate::{Backend, Cpu, DType, Error, Result, Tensor};

const OP: &str = "ppo_loss";

/// How per-token losses become one scalar (shared by the RL losses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LossReduction {
    /// Mean over every masked token of the batch: long responses weigh more (DAPO's token-level
    /// aggregation).
    TokenMean,
    /// Mean over each row's masked tokens, then over the rows that have any (the original GRPO
    /// and PPO-for-LM aggregation).
    SequenceMean,
}

impl LossReduction {
    /// Per-token weights `w` `[B·T]`, `L = Σ w·l`, for a 0/1 `mask` of rows of `t` tokens.
    pub(crate) fn weights(self, mask: &[u32], t: usize) -> Vec<f32> {
        let rows = self.row_weights(mask, t);
        mask.iter().enumerate().map(|(i, &m)| if m == 1 { rows[i / t] } else { 0.0 }).collect()
    }

    /// The weight of every masked token of each row, `[B]` (0 for a row without any).
    pub(crate) fn row_weights(self, mask: &[u32], t: usize) -> Vec<f32> {
        let per_row: Vec<usize> = mask.chunks(t.max(1)).map(|row| row.iter().filter(|&&m| m == 1).count()).collect();
        match self {
            LossReduction::TokenMean => {
                let count: usize = per_row.iter().sum();
                let w = if count == 0 { 0.0 } else { 1.0 / count as f32 };
                per_row.iter().map(|&n| if n == 0 { 0.0 } else { w }).collect()
            }
            LossReduction::SequenceMean => {
                let rows = per_row.iter().filter(|&&n| n > 0).count();
                per_row.iter().map(|&n| if n == 0 { 0.0 } else { 1.0 / (n * rows) as f32 }).collect()
            }
        }
    }
}

/// Settings of [`Backend::ppo_loss`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PpoLossConfig {
    /// The ratio is clipped below at `1 − clip_low`, in `[0, 1)`.
    pub clip_low: f32,
    /// The ratio is clipped above at `1 + clip_high`, `>= 0` (above `clip_low`: DAPO's
    /// clip-higher).
    pub clip_high: f32,
    /// `c > 1`: the loss of a token with a negative advantage is at most `−c·A`.
    pub dual_clip: Option<f32>,
    pub reduction: LossReduction,
}

impl PpoLossConfig {
    /// The symmetric clip `[1 − eps, 1 + eps]`, no dual clip, token mean.
    pub fn new(eps: f32) -> Self {
        PpoLossConfig { clip_low: eps, clip_high: eps, dual_clip: None, reduction: LossReduction::TokenMean }
    }

    pub(crate) fn validate(&self, op: &'static str) -> Result<()> {
        check::in_range(op, "clip_low", self.clip_low, 0.0, 1.0)?;
        check::in_range(op, "clip_high", self.clip_high, 0.0, f32::INFINITY)?;
        match self.dual_clip {
            Some(c) if !(c.is_finite() && c > 1.0) => {
                Err(Error::argument(op, format!("`dual_clip` must be finite and above 1, got {c}")))
            }
            _ => Ok(()),
        }
    }
}

/// Statistics of a clipped policy loss over its masked tokens (all 0 when there are none).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PolicyLossStats {
    /// Fraction of tokens whose ratio clip is active (gradient cut off).
    pub clip_fraction: f32,
    /// Fraction of tokens whose dual clip is active.
    pub dual_clip_fraction: f32,
    /// Token mean of `(r − 1) − log r`, an estimate of KL(π_old ‖ π).
    pub approx_kl: f32,
    /// Masked tokens.
    pub tokens: usize,
}

/// Result of [`Backend::ppo_loss`].
pub struct PpoLossOut<B: Backend> {
    pub loss: f32,
    /// `dL/d(logprob)` `[B, T]`.
    pub dlogprob: Tensor<B>,
    pub stats: PolicyLossStats,
}

/// The clipped surrogate of one token.
pub(crate) struct TokenSurrogate {
    pub loss: f32,
    /// `dl/d(logprob)`.
    pub grad: f32,
    pub clipped: bool,
    pub dual_clipped: bool,
}

/// The clipped surrogate of a token with `log r = log_ratio` and advantage `advantage`.
pub(crate) fn surrogate(log_ratio: f32, advantage: f32, config: &PpoLossConfig) -> TokenSurrogate {
    let ratio = log_ratio.exp();
    let unclipped = -advantage * ratio;
    let clipped = -advantage * ratio.clamp(1.0 - config.clip_low, 1.0 + config.clip_high);
    // Ties (the ratio inside the clip range) take the unclipped branch, whose gradient is right.
    let mut token = if clipped > unclipped {
        TokenSurrogate { loss: clipped, grad: 0.0, clipped: true, dual_clipped: false }
    } else {
        TokenSurrogate { loss: unclipped, grad: unclipped, clipped: false, dual_clipped: false }
    };
    if let Some(c) = config.dual_clip {
        let bound = -c * advantage;
        if advantage < 0.0 && token.loss > bound {
            token = TokenSurrogate { loss: bound, grad: 0.0, clipped: false, dual_clipped: true };
        }
    }
    token
}

/// Running sums of a clipped policy loss over masked tokens, in index order.
#[derive(Default)]
pub(crate) struct SurrogateSums {
    loss: f64,
    clipped: usize,
    dual_clipped: usize,
    approx_kl: f64,
    tokens: usize,
}

impl SurrogateSums {
    pub fn add(&mut self, weight: f32, log_ratio: f32, token: &TokenSurrogate) {
        self.loss += f64::from(weight) * f64::from(token.loss);
        self.clipped += usize::from(token.clipped);
        self.dual_clipped += usize::from(token.dual_clipped);
        self.approx_kl += f64::from(log_ratio.exp_m1() - log_ratio);
        self.tokens += 1;
    }

    /// The loss so far.
    pub fn loss(&self) -> f64 {
        self.loss
    }

    pub fn stats(&self) -> PolicyLossStats {
        if self.tokens == 0 {
            return PolicyLossStats::default();
        }
        let n = self.tokens as f64;
        PolicyLossStats {
            clip_fraction: (self.clipped as f64 / n) as f32,
            dual_clip_fraction: (self.dual_clipped as f64 / n) as f32,
            approx_kl: (self.approx_kl / n) as f32,
            tokens: self.tokens,
        }
    }
}

/// Checks [`Backend::ppo_loss`]'s arguments: three `[B, T]` floats of one dtype, a `[B, T]` u32
/// mask, a valid config. Returns `(B, T)`.
pub fn check_ppo_loss<B: Backend>(
    logprob: &Tensor<B>,
    old_logprob: &Tensor<B>,
    advantages: &Tensor<B>,
    mask: &Tensor<B>,
    config: &PpoLossConfig,
) -> Result<(usize, usize)> {
    let floats = [("logprob", logprob), ("old_logprob", old_logprob), ("advantages", advantages)];
    check::masked(OP, &floats, mask)?;
    check::rank(OP, "logprob", logprob, 2)?;
    config.validate(OP)?;
    Ok((logprob.dims()[0], logprob.dims()[1]))
}

pub(crate) fn ppo_loss_cpu(
    logprob: &Tensor<Cpu>,
    old_logprob: &Tensor<Cpu>,
    advantages: &Tensor<Cpu>,
    mask: &Tensor<Cpu>,
    config: &PpoLossConfig,
) -> Result<PpoLossOut<Cpu>> {
    let (_, t) = check_ppo_loss(logprob, old_logprob, advantages, mask, config)?;
    let m = u32_data(mask);
    check::binary_mask(OP, m, t)?;
    let weights = config.reduction.weights(m, t);
    let (lp, old, adv) = (f32_data(logprob), f32_data(old_logprob), f32_data(advantages));
    let mut sums = SurrogateSums::default();
    let grad = (0..m.len())
        .map(|i| {
            if m[i] == 0 {
                return 0.0;
            }
            let log_ratio = lp[i] - old[i];
            let token = surrogate(log_ratio, adv[i], config);
            sums.add(weights[i], log_ratio, &token);
            weights[i] * token.grad
        })
        .collect();
    Ok(PpoLossOut {
        loss: sums.loss() as f32,
        dlogprob: from_f32(logprob.dims(), grad, logprob.dtype()),
        stats: sums.stats(),
    })
}

/// Threads per block of the masked-loss kernels (`kernels/src/masked_loss.cuh`); the totals'
/// summation order depends on it, so it is a constant.
const MASKED_LOSS_THREADS: u32 = 256;
/// Partial-sum slots per row (the kernels store them as `[B, MASKED_LOSS_PARTIAL]`: six sums and
/// two zeros, one 32-byte sector per row).
const MASKED_LOSS_PARTIAL: usize = 8;

/// What the masked-loss kernels return besides the gradient: `[loss, tokens, stat0..3, rows
/// with a token]`, f32.
pub(crate) struct MaskedLossTotals {
    pub loss: f32,
    pub tokens: usize,
    pub stats: [f32; 4],
}

impl MaskedLossTotals {
    /// `stats[k]` per masked token (0 when there is none).
    pub fn mean(&self, k: usize) -> f32 {
        if self.tokens == 0 {
            0.0
        } else {
            (f64::from(self.stats[k]) / self.tokens as f64) as f32
        }
    }

    /// The ratio-clip statistics of a clipped surrogate (`stat0..2`).
    pub fn policy_stats(&self) -> PolicyLossStats {
        PolicyLossStats { clip_fraction: self.mean(0), dual_clip_fraction: self.mean(1), approx_kl: self.mean(2), tokens: self.tokens }
    }
}

/// Runs `<op>_fwd` (the gradient and per-row partial sums, one pass over the tokens) and
/// `<op>_fwd_totals` (the totals in a fixed order) over `[B, T]` `inputs` (already checked) and
/// a mask checked binary here: one download of `B·T` u32, giving the Cpu's error, from which the
/// rows' gradient weights (`LossReduction::row_weights`, the Cpu's f32 values) are uploaded, so
/// that the kernel writes the finished gradient while it reads each token once. `scalars` follow
/// `rows, cols` in `<op>_fwd`.
pub(crate) fn masked_loss_gpu<G: GpuBackend>(
    gpu: &G,
    op: &'static str,
    inputs: &[&Tensor<G>],
    mask: &Tensor<G>,
    scalars: &[f32],
    reduction: LossReduction,
) -> Result<(Tensor<G>, MaskedLossTotals)> {
    let first = inputs[0];
    let (b, t) = (first.dims()[0], first.dims()[1]);
    let host_mask = gpu.download_u32(mask)?;
    check::binary_mask(op, &host_mask, t)?;
    let (rows, cols) = (gpu::dim_u32(op, "B", b)?, gpu::dim_u32(op, "T", t)?);
    gpu::dim_u32(op, "B·T", b * t)?;
    let grad = gpu::alloc(gpu, first.dims(), first.dtype())?;
    if b == 0 || t == 0 {
        return Ok((grad, MaskedLossTotals { loss: 0.0, tokens: 0, stats: [0.0; 4] }));
    }
    let row_weight = gpu.upload_f32(&[b], &reduction.row_weights(&host_mask, t), DType::F32)?;
    let partial = gpu::alloc(gpu, &[b, MASKED_LOSS_PARTIAL], DType::F32)?;
    let totals = gpu::alloc(gpu, &[7], DType::F32)?;
    let fwd: Vec<_> = inputs
        .iter()
        .map(|&x| Arg::In(x))
        .chain([Arg::In(mask), Arg::In(&row_weight), Arg::Out(&partial), Arg::Out(&grad)])
        .chain([Arg::U32(rows), Arg::U32(cols)])
        .chain(scalars.iter().map(|&x| Arg::F32(x)))
        .collect();
    gpu::launch(gpu, &format!("{op}_fwd"), first.dtype(), Launch::linear(rows, MASKED_LOSS_THREADS), &fwd)?;
    let sequence_mean = u32::from(reduction == LossReduction::SequenceMean);
    let fold = [Arg::In(&partial), Arg::Out(&totals), Arg::U32(rows), Arg::U32(sequence_mean)];
    gpu::launch(gpu, &format!("{op}_fwd_totals"), first.dtype(), Launch::linear(1, MASKED_LOSS_THREADS), &fold)?;
    let t = gpu.download_f32(&totals)?;
    Ok((grad, MaskedLossTotals { loss: t[0], tokens: t[1] as usize, stats: [t[2], t[3], t[4], t[5]] }))
}

/// The kernels' `dual_clip` argument: 0 for none (a dual clip is above 1).
pub(crate) fn dual_clip_arg(config: &PpoLossConfig) -> f32 {
    config.dual_clip.unwrap_or(0.0)
}

pub(crate) fn ppo_loss_gpu<G: GpuBackend>(
    gpu: &G,
    logprob: &Tensor<G>,
    old_logprob: &Tensor<G>,
    advantages: &Tensor<G>,
    mask: &Tensor<G>,
    config: &PpoLossConfig,
) -> Result<PpoLossOut<G>> {
    check_ppo_loss(logprob, old_logprob, advantages, mask, config)?;
    let scalars = [config.clip_low, config.clip_high, dual_clip_arg(config)];
    let (dlogprob, totals) =
        masked_loss_gpu(gpu, OP, &[logprob, old_logprob, advantages], mask, &scalars, config.reduction)?;
    Ok(PpoLossOut { loss: totals.loss, dlogprob, stats: totals.policy_stats() })
}
