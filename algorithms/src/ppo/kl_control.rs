//! The coefficient β of PPO's per-token KL penalty: fixed, or adapted towards a target KL as in
//! Ziegler et al. 2019 ("Fine-tuning language models from human preferences").
//!
//! Adaptive rule, after each rollout of `n` samples whose mean KL per response is `KL`:
//! `e = clip(KL / target − 1, −0.2, 0.2)`, `β ← β·(1 + e·n / horizon)`. A KL above target raises
//! β by at most 20%·n/horizon per rollout and one below lowers it likewise, so β tracks the target
//! over about `horizon` samples without oscillating.

use runtime::ops::kl::KlEstimator;

use crate::{Error, Result};

/// How β is set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum KlControl {
    Fixed { beta: f32 },
    Adaptive { initial_beta: f32, target: f32, horizon: f32 },
}

/// The per-token KL penalty folded into the reward: `r_t −= β·kl_t`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KlPenalty {
    /// k1 (`log π − log π_ref`, Ziegler's and InstructGPT's) or k3 (never negative).
    pub estimator: KlEstimator,
    pub control: KlControl,
}

/// The current β and the rule that moves it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KlController {
    beta: f32,
    control: KlControl,
}

/// The largest relative correction of one update, before the `n / horizon` factor.
const MAX_PROPORTIONAL_ERROR: f32 = 0.2;

impl KlController {
    pub fn new(control: KlControl) -> Result<Self> {
        let beta = match control {
            KlControl::Fixed { beta } => beta,
            KlControl::Adaptive { initial_beta, target, horizon } => {
                if !(target.is_finite() && target > 0.0 && horizon.is_finite() && horizon > 0.0) {
                    return Err(Error::Config(format!(
                        "adaptive KL control needs a positive target and horizon, got {target} and {horizon}"
                    )));
                }
                initial_beta
            }
        };
        if !(beta.is_finite() && beta >= 0.0) {
            return Err(Error::Config(format!("KL coefficient β must be finite and >= 0, got {beta}")));
        }
        Ok(KlController { beta, control })
    }

    pub fn beta(&self) -> f32 {
        self.beta
    }

    /// Moves β after a rollout of `samples` responses whose mean KL per response was `kl`.
    pub fn update(&mut self, kl: f32, samples: usize) {
        if let KlControl::Adaptive { target, horizon, .. } = self.control {
            let error = (kl / target - 1.0).clamp(-MAX_PROPORTIONAL_ERROR, MAX_PROPORTIONAL_ERROR);
            if error.is_finite() {
                // A horizon shorter than a few rollouts could push the factor below 0.
                self.beta *= (1.0 + error * samples as f32 / horizon).max(0.0);
            }
        }
    }
}
