//! Choosing the next token from a row of logits: greedy, or sampling with temperature, top-k and
//! top-p (applied in that order, as Hugging Face's `generate` does).
//!
//! Randomness is counter-based: the uniform draw for (seed, sequence, step) is a hash of those
//! three numbers, so a sequence's tokens do not depend on which other sequences share its batch or
//! on the order rows are processed.

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
}

/// A uniform number in [0, 1) determined by (seed, sequence, step) alone.
pub fn counter_uniform(seed: u64, sequence: u64, step: u64) -> f64 {
    let mut z = seed ^ sequence.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ step.wrapping_mul(0xD1B5_4A32_D192_ED03);
    for _ in 0..2 {
        z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
    }
    (z >> 11) as f64 / (1u64 << 53) as f64
}

fn argmax(logits: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in logits.iter().enumerate() {
        if x > logits[best] {
            best = i;
        }
    }
    best
}

/// Picks the next token from one row of logits; `uniform` is the row's draw in [0, 1).
pub fn pick(logits: &[f32], sampling: Sampling, uniform: f64) -> u32 {
    let (temperature, top_k, top_p) = match sampling {
        Sampling::Greedy => return argmax(logits) as u32,
        Sampling::Sample { temperature, top_k, top_p } => (temperature, top_k, top_p),
    };
    // Candidates by decreasing logit; ties keep the lower id first so the order is total.
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
    if top_k > 0 {
        order.truncate(top_k);
    }
    let max = logits[order[0]] as f64;
    let weights: Vec<f64> = order.iter().map(|&i| ((logits[i] as f64 - max) / temperature as f64).exp()).collect();
    let total: f64 = weights.iter().sum();
    // top-p: keep the shortest prefix whose probability reaches top_p (at least one token).
    let mut kept = 0;
    let mut mass = 0.0;
    while kept < order.len() {
        mass += weights[kept] / total;
        kept += 1;
        if mass >= top_p as f64 {
            break;
        }
    }
    let kept_total: f64 = weights[..kept].iter().sum();
    let mut target = uniform * kept_total;
    for (slot, &w) in weights[..kept].iter().enumerate() {
        if target < w {
            return order[slot] as u32;
        }
        target -= w;
    }
    order[kept - 1] as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_takes_the_first_maximum() {
        assert_eq!(pick(&[0.1, 3.0, -1.0, 3.0], Sampling::Greedy, 0.5), 1);
    }

    #[test]
    fn top_k_one_is_greedy_and_top_p_keeps_the_head() {
        let logits = [0.0, 2.0, 1.0, -3.0];
        let s = Sampling::Sample { temperature: 1.0, top_k: 1, top_p: 1.0 };
        for u in [0.0, 0.3, 0.999] {
            assert_eq!(pick(&logits, s, u), 1);
        }
        // p(1) = e^2 / (1 + e^2 + e + e^-3) ≈ 0.66: top_p = 0.5 keeps only token 1.
        let s = Sampling::Sample { temperature: 1.0, top_k: 0, top_p: 0.5 };
        assert_eq!(pick(&logits, s, 0.99), 1);
        // p = (0.09, 0.66, 0.24, 0.004): top_p = 0.9 keeps tokens 1 and 2 (0.66 + 0.24 ≥ 0.9), so
        // a draw near 1 lands on token 2 and never on 0.
        let s = Sampling::Sample { temperature: 1.0, top_k: 0, top_p: 0.9 };
        assert_eq!(pick(&logits, s, 0.9999), 2);
    }

    #[test]
    fn sampling_frequencies_follow_the_softmax() {
        let logits = [0.5f32, 1.5, -0.5];
        let s = Sampling::Sample { temperature: 0.7, top_k: 0, top_p: 1.0 };
        let z: Vec<f64> = logits.iter().map(|&x| (x as f64 / 0.7).exp()).collect();
        let total: f64 = z.iter().sum();
        let mut counts = [0usize; 3];
        let draws = 20000;
        for step in 0..draws {
            counts[pick(&logits, s, counter_uniform(7, 0, step)) as usize] += 1;
        }
        for i in 0..3 {
            let freq = counts[i] as f64 / draws as f64;
            assert!((freq - z[i] / total).abs() < 0.015, "token {i}: {freq} vs {}", z[i] / total);
        }
    }

    #[test]
    fn counter_draws_depend_only_on_their_coordinates() {
        assert_eq!(counter_uniform(1, 2, 3), counter_uniform(1, 2, 3));
        assert_ne!(counter_uniform(1, 2, 3), counter_uniform(1, 3, 2));
        assert_ne!(counter_uniform(1, 2, 3), counter_uniform(2, 2, 3));
    }
}
