//! How generation picks the next token: greedy, or sampling with temperature, top-k and top-p
//! (applied in that order, as Hugging Face's `generate` does). The choice itself runs on the
//! backend ([`runtime::Backend::sample`], specified in `runtime::ops::sample`), so it is the same
//! on every backend and only the chosen ids reach the host.
//!
//! Randomness is counter-based (`runtime::ops::sample::counter_uniform`): the draw for (seed,
//! sequence, step) is a hash of those three numbers, so a sequence's tokens do not depend on which
//! other sequences share its batch or on the order rows are processed.

use runtime::ops::sample::SampleRule;

use crate::{ModelError, Result};

/// How to pick the next token.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampling {
    /// The most likely token (the first one on ties).
    Greedy,
    /// Sample from `softmax(logits / temperature)` restricted to the `top_k` most likely tokens
    /// (0 = no limit) and then to the smallest set whose probability reaches `top_p`.
    Sample { temperature: f32, top_k: usize, top_p: f32 },
}

impl Sampling {
    pub fn validate(&self) -> Result<()> {
        if let Sampling::Sample { temperature, top_p, .. } = *self {
            if !(temperature.is_finite() && temperature > 0.0) {
                return Err(ModelError::Input(format!("temperature must be positive, got {temperature}")));
            }
            if !(top_p > 0.0 && top_p <= 1.0) {
                return Err(ModelError::Input(format!("top_p must be in (0, 1], got {top_p}")));
            }
        }
        Ok(())
    }

    /// The backend's rule for this choice.
    pub fn rule(&self) -> SampleRule {
        match *self {
            Sampling::Greedy => SampleRule::Greedy,
            Sampling::Sample { temperature, top_k, top_p } => SampleRule::Sample { temperature, top_k, top_p },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_temperature_or_top_p_is_an_error() {
        let bad = [(0.0, 0.9), (f32::NAN, 0.9), (-1.0, 0.9), (1.0, 0.0), (1.0, 1.5), (1.0, f32::NAN)];
        for (temperature, top_p) in bad {
            let s = Sampling::Sample { temperature, top_k: 0, top_p };
            assert!(s.validate().is_err(), "{s:?} should be rejected");
        }
        assert!(Sampling::Sample { temperature: 0.7, top_k: 5, top_p: 1.0 }.validate().is_ok());
        assert!(Sampling::Greedy.validate().is_ok());
    }
}
