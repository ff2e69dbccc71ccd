//! The critic's clipped value loss (PPO's value clipping as in OpenAI's baselines), reduced to one
//! scalar over the response tokens, with its gradient.
//!
//! Shapes: `values` (the critic now), `old_values` (the critic at rollout time), `returns` (the
//! targets) `[B, T]` of one float dtype; `mask` `[B, T]` u32 (1 = the token counts). Per token,
//! with `v`, `v_old`, `R`:
//!
//! - unclipped (`clip = None`): `l = (v − R)² / 2`;
//! - clipped by `ε`: `l = max((v − R)², (clip(v, v_old − ε, v_old + ε) − R)²) / 2`, so a value
//!   that moved more than `ε` from the rollout's gets no pull further along in the direction that
//!   made it worse.
//!
//! Reduction as [`crate::ops::ppo_loss::LossReduction`]: `L = Σ w·l`.
//!
//! Gradient (`=`, with the forward since the loss is a scalar): `d(values)` `[B, T]` in the
//! inputs' dtype: `w·(v − R)` where the unclipped term is the larger (ties included), 0 where the
//! clipped one is (then `v` lies outside the clip range and the term is flat in it), 0 off the
//! mask. Statistic: the fraction of masked tokens where the clipped term is the larger. Sums
//! accumulate in f64 in index order on one thread.

use super::check;
use super::ppo_loss::{masked_loss_gpu, LossReduction};
use crate::cpu::{f32_data, from_f32, u32_data};
use crate::gpu::GpuBackend;
use crate::{Backend, Cpu, Error, Result, Tensor};

const OP: &str = "value_loss";

/// Settings of [`Backend::value_loss`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ValueLossConfig {
    /// `ε >= 0`, in the values' units; `None` for the plain squared error.
    pub clip: Option<f32>,
    pub reduction: LossReduction,
}

/// Result of [`Backend::value_loss`].
pub struct ValueLossOut<B: Backend> {
    pub loss: f32,
    /// `dL/d(values)` `[B, T]`.
    pub dvalues: Tensor<B>,
    /// Fraction of masked tokens whose clipped term is the larger (0 when none are masked).
    pub clip_fraction: f32,
}

/// Checks [`Backend::value_loss`]'s arguments: three `[B, T]` floats of one dtype, a `[B, T]` u32
/// mask, a finite non-negative clip. Returns `(B, T)`.
pub fn check_value_loss<B: Backend>(
    values: &Tensor<B>,
    old_values: &Tensor<B>,
    returns: &Tensor<B>,
    mask: &Tensor<B>,
    config: &ValueLossConfig,
) -> Result<(usize, usize)> {
    let floats = [("values", values), ("old_values", old_values), ("returns", returns)];
    check::masked(OP, &floats, mask)?;
    check::rank(OP, "values", values, 2)?;
    if let Some(eps) = config.clip {
        if !(eps.is_finite() && eps >= 0.0) {
            return Err(Error::argument(OP, format!("`clip` must be finite and >= 0, got {eps}")));
        }
    }
    Ok((values.dims()[0], values.dims()[1]))
}

pub(crate) fn value_loss_cpu(
    values: &Tensor<Cpu>,
    old_values: &Tensor<Cpu>,
    returns: &Tensor<Cpu>,
    mask: &Tensor<Cpu>,
    config: &ValueLossConfig,
) -> Result<ValueLossOut<Cpu>> {
    let (_, t) = check_value_loss(values, old_values, returns, mask, config)?;
    let m = u32_data(mask);
    check::binary_mask(OP, m, t)?;
    let weights = config.reduction.weights(m, t);
    let (v, old, ret) = (f32_data(values), f32_data(old_values), f32_data(returns));
    let (mut loss, mut clipped, mut tokens) = (0f64, 0usize, 0usize);
    let grad = (0..m.len())
        .map(|i| {
            if m[i] == 0 {
                return 0.0;
            }
            tokens += 1;
            let error = v[i] - ret[i];
            let unclipped = error * error;
            // max/min rather than clamp: a NaN old value must not panic.
            let clipped_error = config.clip.map(|eps| v[i].max(old[i] - eps).min(old[i] + eps) - ret[i]);
            let (term, grad) = match clipped_error {
                Some(e) if e * e > unclipped => {
                    clipped += 1;
                    (e * e, 0.0)
                }
                _ => (unclipped, error),
            };
            loss += f64::from(weights[i]) * 0.5 * f64::from(term);
            weights[i] * grad
        })
        .collect();
    let clip_fraction = if tokens == 0 { 0.0 } else { (clipped as f64 / tokens as f64) as f32 };
    Ok(ValueLossOut { loss: loss as f32, dvalues: from_f32(values.dims(), grad, values.dtype()), clip_fraction })
}

/// The kernels take `clip < 0` for no clip.
pub(crate) fn value_loss_gpu<G: GpuBackend>(
    gpu: &G,
    values: &Tensor<G>,
    old_values: &Tensor<G>,
    returns: &Tensor<G>,
    mask: &Tensor<G>,
    config: &ValueLossConfig,
) -> Result<ValueLossOut<G>> {
    check_value_loss(values, old_values, returns, mask, config)?;
    let scalars = [config.clip.unwrap_or(-1.0)];
    let (dvalues, totals) = masked_loss_gpu(gpu, OP, &[values, old_values, returns], mask, &scalars, config.reduction)?;
    Ok(ValueLossOut { loss: totals.loss, dvalues, clip_fraction: totals.mean(0) })
}
