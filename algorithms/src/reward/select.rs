//! Early stopping on noisy labels: while a reward model trains, its accuracy against the
//! annotator's labels on validation pairs (kept out of training) is checked every few steps, and
//! the parameters of one check are what training returns.
//!
//! No gold label is read. With a fraction `f` of labels flipped at random, the expected accuracy
//! against the noisy labels on pairs with a gold preference is `f + (1 − 2f)·gold_accuracy`, an
//! increasing function of the gold accuracy, so the checkpoint best on noisy labels is also the
//! best on gold up to sampling noise. Trained long on noisy labels, a reward model fits the flips
//! and its gold accuracy falls; this keeps the point before that happens.
//!
//! The sampling noise is not small: over `n` validation pairs an accuracy `a` has a standard error
//! of `√(a(1 − a)/n)`, about a point for 2,300 pairs, as much as late checks differ. So the kept
//! check is the **last one within a standard error of the best**: a model still improving on gold
//! is not stopped by a noisy dip, while a model that has started to fit the flips loses more than
//! that and stays stopped. (Keeping the first best check instead stopped a model on denoised
//! labels at 800 of 1200 steps for a 0.5-point validation edge, at 0.853 gold where its last step
//! had 0.874.)
use runtime::Backend;

use super::data::PreferencePair;
use super::metrics::evaluate_pairs;
use super::model::{copy_model, RewardModel};
use super::train::{train_reward_model_watched, RewardConfig, RewardMetrics};
use crate::{Error, Result};

/// What [`train_selected`] measured and kept.
#[derive(Debug, Clone, PartialEq)]
pub struct Selection {
    /// The step (counted from 1) whose parameters were kept.
    pub step: usize,
    /// Their accuracy against the validation pairs' labels.
    pub label_accuracy: f64,
    /// The best check's accuracy and its standard error (the kept check is the last one within
    /// that error of the best).
    pub best_accuracy: f64,
    pub standard_error: f64,
    /// Every check: step (from 1) and validation label accuracy.
    pub checks: Vec<(usize, f64)>,
}

/// Whether step `step` (from 0) of `steps` ends with a validation check.
pub fn is_check(step: usize, steps: usize, check_every: usize) -> bool {
    (step + 1) % check_every == 0 || step + 1 == steps
}

/// The standard error of an accuracy `accuracy` measured over `pairs` pairs.
pub fn standard_error(accuracy: f64, pairs: usize) -> f64 {
    (accuracy * (1.0 - accuracy) / pairs.max(1) as f64).sqrt()
}

/// Whether a check of `accuracy` is within a standard error of `best` (the best check so far,
/// this one included), over `pairs` validation pairs.
fn within_error_of_best(accuracy: f64, best: f64, pairs: usize) -> bool {
    accuracy >= best - standard_error(best, pairs)
}

/// Trains `rm` on `train` like [`crate::reward::train_reward_model`], checks its label accuracy on
/// `validation` every `check_every` steps and after the last one, and leaves `rm` with the
/// parameters of the last check within one standard error of the best.
#[allow(clippy::too_many_arguments)]
pub fn train_selected<B: Backend>(
    backend: &B,
    rm: &mut RewardModel<B>,
    train: &[PreferencePair],
    validation: &[PreferencePair],
    pad_id: u32,
    config: &RewardConfig,
    check_every: usize,
    on_step: &mut dyn FnMut(&RewardMetrics),
) -> Result<Selection> {
    if validation.is_empty() || check_every == 0 {
        return Err(Error::Config(format!(
            "early stopping needs validation pairs and a positive check interval (got {} pairs, every {check_every})",
            validation.len()
        )));
    }
    let mut checks = Vec::new();
    let mut best_accuracy = f64::NEG_INFINITY;
    // The last check within a standard error of the best so far. A later best replaces it; so
    // does a later check within the error of the best so far. A check below that can never be
    // kept, whatever follows, so one copy of the parameters suffices.
    let mut kept = None;
    train_reward_model_watched(backend, rm, train, pad_id, config, &mut |metrics, model| {
        on_step(metrics);
        if is_check(metrics.step, config.steps, check_every) {
            let accuracy = evaluate_pairs(backend, model, validation, pad_id)?.label_accuracy;
            checks.push((metrics.step + 1, accuracy));
            best_accuracy = best_accuracy.max(accuracy);
            if within_error_of_best(accuracy, best_accuracy, validation.len()) {
                kept = Some((metrics.step + 1, accuracy, copy_model(backend, &model.model)?.params));
            }
        }
        Ok(())
    })?;
    let (step, label_accuracy, params) = kept.ok_or_else(|| Error::Config("reward training ran no steps".into()))?;
    rm.model.params = params;
    Ok(Selection {
        step,
        label_accuracy,
        best_accuracy,
        standard_error: standard_error(best_accuracy, validation.len()),
        checks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The online rule (one kept copy, replaced as checks come) keeps the check the offline
    /// definition names: the last one within a standard error of the final best.
    #[test]
    fn the_kept_check_is_the_last_within_a_standard_error_of_the_best() {
        let pairs = 2300; // a standard error of about 0.0099 near 0.65
        let runs: [&[f64]; 4] = [
            &[0.60, 0.66, 0.655, 0.62, 0.64],
            &[0.60, 0.66, 0.62, 0.655, 0.70],
            &[0.70, 0.60, 0.61, 0.62],
            &[0.644, 0.634, 0.644],
        ];
        let expected = [2, 4, 0, 2];
        for (accuracies, &want) in runs.iter().zip(&expected) {
            let mut best = f64::NEG_INFINITY;
            let mut kept = None;
            for (i, &a) in accuracies.iter().enumerate() {
                best = best.max(a);
                if within_error_of_best(a, best, pairs) {
                    kept = Some(i);
                }
            }
            let error = standard_error(best, pairs);
            let offline = accuracies.iter().rposition(|&a| a >= best - error);
            assert_eq!(kept, offline, "{accuracies:?}");
            assert_eq!(kept, Some(want), "{accuracies:?}");
        }
        assert!((standard_error(0.65, pairs) - 0.009946).abs() < 1e-6);
    }
}
