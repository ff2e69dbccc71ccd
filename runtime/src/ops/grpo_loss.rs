//! GRPO's loss (Shao et al. 2024): PPO's clipped surrogate plus a KL penalty to the reference
//! policy as a loss term, reduced to one scalar over the response tokens, with its gradient.
//!
//! Shapes: `logprob`, `old_logprob`, `advantages` and (optionally) `ref_logprob` `[B, T]` of one
//! float dtype; `mask` `[B, T]` u32 (1 = the token counts). Per token, with `l_clip` PPO's clipped
//! surrogate ([`crate::ops::ppo_loss`], dual clip included) and `log q = logprob − ref_logprob`:
//!
//! - `l = l_clip + β·k3`, `k3 = e^(−log q) − 1 + log q` (unbiased for KL(π ‖ π_ref), always
//!   `>= 0`).
//!
//! `β = 0` needs no reference (`ref_logprob = None`, no reference model loaded); with a
//! reference and `β = 0` the KL is still reported. Reduction as
//! [`crate::ops::ppo_loss::LossReduction`]: token mean (DAPO's token-level aggregation) or
//! sequence mean (the original GRPO).
//!
//! Gradient (`=`, with the forward): `d(logprob)` `[B, T]` in the inputs' dtype,
//! `w·(dl_clip + β·(1 − e^(−log q)))`, 0 off the mask; nothing for the other inputs.
//! Statistics: those of the clipped surrogate, and the token mean of `k3` (0 without reference).
//! Sums accumulate in f64 in index order on one thread.

use super::check;
use super::kl::KlEstimator;
use super::ppo_loss::{dual_clip_arg, masked_loss_gpu, surrogate, PolicyLossStats, PpoLossConfig, SurrogateSums};
use crate::cpu::{f32_data, from_f32, u32_data};
use crate::gpu::GpuBackend;
use crate::{Backend, Cpu, Error, Result, Tensor};

const OP: &str = "grpo_loss";

/// Settings of [`Backend::grpo_loss`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GrpoLossConfig {
    /// The clipped surrogate's settings and the reduction.
    pub surrogate: PpoLossConfig,
    /// Weight `β >= 0` of the k3 KL term.
    pub beta: f32,
}

/// Result of [`Backend::grpo_loss`].
pub struct GrpoLossOut<B: Backend> {
    /// Surrogate plus `β·KL`.
    pub loss: f32,
    /// `dL/d(logprob)` `[B, T]`.
    pub dlogprob: Tensor<B>,
    pub stats: PolicyLossStats,
    /// Token mean of k3 to the reference (0 without one).
    pub kl: f32,
}

/// Checks [`Backend::grpo_loss`]'s arguments: `[B, T]` floats of one dtype, a `[B, T]` u32 mask,
/// a valid config, and a reference whenever `β > 0`. Returns `(B, T)`.
pub fn check_grpo_loss<B: Backend>(
    logprob: &Tensor<B>,
    old_logprob: &Tensor<B>,
    ref_logprob: Option<&Tensor<B>>,
    advantages: &Tensor<B>,
    mask: &Tensor<B>,
    config: &GrpoLossConfig,
) -> Result<(usize, usize)> {
    let mut floats = vec![("logprob", logprob), ("old_logprob", old_logprob), ("advantages", advantages)];
    floats.extend(ref_logprob.map(|r| ("ref_logprob", r)));
    check::masked(OP, &floats, mask)?;
    check::rank(OP, "logprob", logprob, 2)?;
    config.surrogate.validate(OP)?;
    if !(config.beta.is_finite() && config.beta >= 0.0) {
        return Err(Error::argument(OP, format!("`beta` must be finite and >= 0, got {}", config.beta)));
    }
    if config.beta > 0.0 && ref_logprob.is_none() {
        return Err(Error::argument(OP, format!("`beta` = {} needs `ref_logprob`", config.beta)));
    }
    Ok((logprob.dims()[0], logprob.dims()[1]))
}

pub(crate) fn grpo_loss_cpu(
    logprob: &Tensor<Cpu>,
    old_logprob: &Tensor<Cpu>,
    ref_logprob: Option<&Tensor<Cpu>>,
    advantages: &Tensor<Cpu>,
    mask: &Tensor<Cpu>,
    config: &GrpoLossConfig,
) -> Result<GrpoLossOut<Cpu>> {
    let (_, t) = check_grpo_loss(logprob, old_logprob, ref_logprob, advantages, mask, config)?;
    let m = u32_data(mask);
    check::binary_mask(OP, m, t)?;
    let weights = config.surrogate.reduction.weights(m, t);
    let (lp, old, adv) = (f32_data(logprob), f32_data(old_logprob), f32_data(advantages));
    let reference = ref_logprob.map(f32_data);
    let (mut sums, mut kl_loss, mut kl_sum) = (SurrogateSums::default(), 0f64, 0f64);
    let grad = (0..m.len())
        .map(|i| {
            if m[i] == 0 {
                return 0.0;
            }
            let log_ratio = lp[i] - old[i];
            let token = surrogate(log_ratio, adv[i], &config.surrogate);
            sums.add(weights[i], log_ratio, &token);
            let dkl = match &reference {
                Some(r) => {
                    let log_q = lp[i] - r[i];
                    let kl = KlEstimator::K3.value(log_q);
                    kl_sum += f64::from(kl);
                    kl_loss += f64::from(weights[i]) * f64::from(config.beta * kl);
                    config.beta * KlEstimator::K3.derivative(log_q)
                }
                None => 0.0,
            };
            weights[i] * (token.grad + dkl)
        })
        .collect();
    let stats = sums.stats();
    let kl = if stats.tokens == 0 { 0.0 } else { (kl_sum / stats.tokens as f64) as f32 };
    Ok(GrpoLossOut {
        loss: (sums.loss() + kl_loss) as f32,
        dlogprob: from_f32(logprob.dims(), grad, logprob.dtype()),
        stats,
        kl,
    })
}

/// Without a reference (`β = 0`) the policy's log-probs stand in for it: `log q = 0` gives
/// `k3 = 0` and a zero KL gradient exactly, the Cpu's "no reference" results.
pub(crate) fn grpo_loss_gpu<G: GpuBackend>(
    gpu: &G,
    logprob: &Tensor<G>,
    old_logprob: &Tensor<G>,
    ref_logprob: Option<&Tensor<G>>,
    advantages: &Tensor<G>,
    mask: &Tensor<G>,
    config: &GrpoLossConfig,
) -> Result<GrpoLossOut<G>> {
    check_grpo_loss(logprob, old_logprob, ref_logprob, advantages, mask, config)?;
    let s = &config.surrogate;
    let scalars = [s.clip_low, s.clip_high, dual_clip_arg(s), config.beta];
    let reference = ref_logprob.unwrap_or(logprob);
    let inputs = [logprob, old_logprob, reference, advantages];
    let (dlogprob, totals) = masked_loss_gpu(gpu, OP, &inputs, mask, &scalars, s.reduction)?;
    Ok(GrpoLossOut { loss: totals.loss, dlogprob, stats: totals.policy_stats(), kl: totals.mean(3) })
}
