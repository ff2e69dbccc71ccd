//! How well a reward model ranks held-out pairs: against the (noisy) labels it would be judged by
//! in practice, and against the gold reward, which the project can see and a real one cannot.

use runtime::Backend;

use super::data::PreferencePair;
use super::denoise::Treatment;
use super::ensemble::reward_differences;
use super::model::RewardModel;
use crate::Result;

/// Pairwise accuracy of a reward model. A pair whose two rewards are equal counts half.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PairAccuracy {
    pub pairs: usize,
    /// Fraction of pairs ranked the way their labels say (chosen above rejected for a label
    /// above one half).
    pub label_accuracy: f64,
    /// Pairs whose gold rewards differ; gold ties say nothing about ranking and are left out.
    pub gold_pairs: usize,
    /// Fraction of those ranked the gold way.
    pub gold_accuracy: f64,
}

/// 1 when `difference` has the sign of `want_positive`, 0 when the other, 0.5 when it is 0.
fn credit(difference: f32, want_positive: bool) -> f64 {
    if difference == 0.0 {
        0.5
    } else if (difference > 0.0) == want_positive {
        1.0
    } else {
        0.0
    }
}

/// Accuracies of the reward differences `r_c − r_r` (one per pair).
pub fn pair_accuracy(differences: &[f32], pairs: &[PreferencePair]) -> PairAccuracy {
    let ratio = |hits: f64, n: usize| if n == 0 { 0.0 } else { hits / n as f64 };
    let label_hits: f64 = differences.iter().zip(pairs).map(|(&d, p)| credit(d, p.label > 0.5)).sum();
    let gold: Vec<(f32, &PreferencePair)> =
        differences.iter().copied().zip(pairs).filter(|(_, p)| !p.gold_tie()).collect();
    let gold_hits: f64 = gold.iter().map(|&(d, p)| credit(d, p.gold.0 > p.gold.1)).sum();
    PairAccuracy {
        pairs: pairs.len(),
        label_accuracy: ratio(label_hits, pairs.len()),
        gold_pairs: gold.len(),
        gold_accuracy: ratio(gold_hits, gold.len()),
    }
}

/// [`pair_accuracy`] of `rm` on `pairs`.
pub fn evaluate_pairs<B: Backend>(
    backend: &B,
    rm: &RewardModel<B>,
    pairs: &[PreferencePair],
    pad_id: u32,
) -> Result<PairAccuracy> {
    Ok(pair_accuracy(&reward_differences(backend, rm, pairs, pad_id)?, pairs))
}

/// How denoising treated the training labels, judged by gold (for measuring only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DenoiseAudit {
    /// Pairs whose label disagreed with a gold preference before denoising.
    pub wrong_before: usize,
    /// ... and after (flips corrected some, and may have broken others).
    pub wrong_after: usize,
    /// Flipped pairs whose label had been wrong (corrections) or right (damage).
    pub flips_correcting: usize,
    pub flips_damaging: usize,
    /// Softened pairs that were gold ties, and all softened pairs.
    pub softened_ties: usize,
    pub softened: usize,
    /// Gold ties among all pairs.
    pub ties: usize,
}

/// Compares `before` and `after` (the same pairs, before and after [`crate::reward::denoise`]).
pub fn audit_denoising(before: &[PreferencePair], after: &[PreferencePair], treatments: &[Treatment]) -> DenoiseAudit {
    let wrong = |p: &PreferencePair| p.label_agrees_with_gold() == Some(false);
    let mut audit = DenoiseAudit::default();
    for ((b, a), t) in before.iter().zip(after).zip(treatments) {
        audit.wrong_before += usize::from(wrong(b));
        audit.wrong_after += usize::from(wrong(a));
        audit.ties += usize::from(b.gold_tie());
        match t {
            Treatment::Flip if !b.gold_tie() => {
                audit.flips_correcting += usize::from(wrong(b));
                audit.flips_damaging += usize::from(!wrong(b));
            }
            Treatment::Soft { .. } => {
                audit.softened += 1;
                audit.softened_ties += usize::from(b.gold_tie());
            }
            _ => {}
        }
    }
    audit
}
