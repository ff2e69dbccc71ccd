//! Denoising preference labels with the ensemble's preference strength (Secrets of RLHF II,
//! §2.4): flip pairs the ensemble clearly ranks the other way, give ambiguous pairs soft labels,
//! and give the rest a margin that grows with their strength.
//!
//! For a pair with strength `(μ, σ)` (mean and deviation of `r_c − r_r` over the ensemble), the
//! rules compare `μ` with `σ`, so they do not depend on the scale the rewards happen to take:
//!
//! 1. **clearly negative**, `μ < −flip_z·σ`: the members agree the label is wrong. With `flip`,
//!    chosen and rejected swap (the label stays hard).
//! 2. **doubtful**, `|μ| < soft_z·σ` (the members disagree about the sign) or negative but not
//!    clearly so: with `soft_labels`, the hard label is smoothed to `soft_label` (the report's
//!    label smoothing of ambiguous pairs: the pair still counts, but the model is not pushed to
//!    separate the two responses without bound), and the margin is 0. A fixed target rather than
//!    the ensemble's own `σ(μ)`: reward differences have no fixed scale, and on a small one
//!    `σ(μ)` is one half for every pair, which would erase the labels along with their noise.
//! 3. otherwise, or when the rule that applies is switched off: **kept**.
//!
//! Adaptive margin: a kept or flipped pair whose strength agrees with its (new) label gets margin
//! `margin_scale·min(|μ|, max_margin)`; softened pairs and pairs that keep a label the ensemble
//! doubts get 0. `margin_scale = 0` leaves margins as they were.

use super::data::PreferencePair;
use super::ensemble::Strength;
use crate::{Error, Result};

/// Settings of [`denoise`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DenoiseConfig {
    pub flip: bool,
    pub soft_labels: bool,
    /// Flip when `μ < −flip_z·σ`.
    pub flip_z: f32,
    /// Soften when `|μ| < soft_z·σ` (or `μ < 0` without being flipped).
    pub soft_z: f32,
    /// The target probability a softened pair gets (in the direction of its label).
    pub soft_label: f32,
    /// Margin per unit of strength (0 = no adaptive margin).
    pub margin_scale: f32,
    /// Strength above which the margin stops growing.
    pub max_margin: f32,
}

impl Default for DenoiseConfig {
    fn default() -> Self {
        DenoiseConfig { flip: true, soft_labels: true, flip_z: 1.0, soft_z: 1.0, soft_label: 0.7, margin_scale: 0.0, max_margin: 4.0 }
    }
}

/// What [`denoise`] did to one pair.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Treatment {
    Keep,
    /// Chosen and rejected swapped.
    Flip,
    /// Label replaced by `label`.
    Soft { label: f32 },
}

impl DenoiseConfig {
    /// The treatment of a pair of strength `s`, and its new margin (`None`: unchanged).
    pub fn treat(&self, s: Strength) -> (Treatment, Option<f32>) {
        let margin = |strength: f32| {
            (self.margin_scale > 0.0).then(|| self.margin_scale * strength.clamp(0.0, self.max_margin))
        };
        let clearly_negative = s.mean < -self.flip_z * s.std;
        if clearly_negative && self.flip {
            return (Treatment::Flip, margin(-s.mean));
        }
        let doubtful = s.mean.abs() < self.soft_z * s.std || s.mean < 0.0;
        if doubtful && self.soft_labels {
            return (Treatment::Soft { label: self.soft_label }, margin(0.0));
        }
        (Treatment::Keep, margin(s.mean))
    }
}

/// Counts of what [`denoise`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DenoiseCounts {
    pub kept: usize,
    pub flipped: usize,
    pub softened: usize,
}

/// The pairs relabelled by their strengths (one per pair), each pair's treatment, and counts.
pub fn denoise(
    pairs: &[PreferencePair],
    strengths: &[Strength],
    config: &DenoiseConfig,
) -> Result<(Vec<PreferencePair>, Vec<Treatment>, DenoiseCounts)> {
    if pairs.len() != strengths.len() {
        return Err(Error::Config(format!("{} strengths for {} pairs", strengths.len(), pairs.len())));
    }
    let mut counts = DenoiseCounts::default();
    let mut out = Vec::with_capacity(pairs.len());
    let mut treatments = Vec::with_capacity(pairs.len());
    for (pair, &s) in pairs.iter().zip(strengths) {
        let (treatment, margin) = config.treat(s);
        let mut pair = match treatment {
            Treatment::Keep => {
                counts.kept += 1;
                pair.clone()
            }
            Treatment::Flip => {
                counts.flipped += 1;
                PreferencePair { label: pair.label, ..pair.swapped() }
            }
            Treatment::Soft { label } => {
                counts.softened += 1;
                // The label keeps its direction: a pair labelled the other way round (below one
                // half) is smoothed from below.
                let label = if pair.label >= 0.5 { label } else { 1.0 - label };
                PreferencePair { label, ..pair.clone() }
            }
        };
        if let Some(margin) = margin {
            pair.margin = margin;
        }
        out.push(pair);
        treatments.push(treatment);
    }
    Ok((out, treatments, counts))
}
