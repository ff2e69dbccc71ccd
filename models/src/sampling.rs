//! How generation picks the next token: greedy, or sampling with temperature, top-k and top-p
//! (applied in that order, as Hugging Face's `generate` does). The choice itself runs on the
//! backend ([`runtime::Backend::sample`], specified in `runtime::ops::sample`), so it is the same
//! on every backend and only the chosen ids reach the host.
//!
//! Randomness is counter-based (`runtime::ops::sample::counter_uniform`): the draw for (seed,
//! sequence, step) is a hash of those three numbers, so a sequence's tokens do not depend on which
//! other sequences share its batch or on the order rows are processed.

/// How to pick the next token: the backend's own rule, with its validation
/// ([`runtime::ops::sample::SampleRule::validate`]).
pub use runtime::ops::sample::SampleRule as Sampling;

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
