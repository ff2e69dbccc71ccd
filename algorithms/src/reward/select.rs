//! Early stopping on noisy labels: while a reward model trains, its accuracy against the
//! annotator's labels on validation pairs (kept out of training) is checked every few steps, and
//! the parameters of the best check are what training returns.
//!
//! No gold label is read. With a fraction `f` of labels flipped at random, the expected accuracy
//! against the noisy labels on pairs with a gold preference is `f + (1 − 2f)·gold_accuracy`, an
//! increasing function of the gold accuracy, so the checkpoint best on noisy labels is also the
//! best on gold up to sampling noise. Trained long on noisy labels, a reward model fits the flips
//! and its gold accuracy falls; this keeps the point before that happens.

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
    /// Every check: step (from 1) and validation label accuracy.
    pub checks: Vec<(usize, f64)>,
}

/// Whether step `step` (from 0) of `steps` ends with a validation check.
pub fn is_check(step: usize, steps: usize, check_every: usize) -> bool {
    (step + 1) % check_every == 0 || step + 1 == steps
}

/// Trains `rm` on `train` like [`crate::reward::train_reward_model`], checks its label accuracy on
/// `validation` every `check_every` steps and after the last one, and leaves `rm` with the
/// parameters of the first check that scored best.
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
    let mut best = None;
    let mut best_accuracy = f64::NEG_INFINITY;
    train_reward_model_watched(backend, rm, train, pad_id, config, &mut |metrics, model| {
        on_step(metrics);
        if is_check(metrics.step, config.steps, check_every) {
            let accuracy = evaluate_pairs(backend, model, validation, pad_id)?.label_accuracy;
            checks.push((metrics.step + 1, accuracy));
            if accuracy > best_accuracy {
                best_accuracy = accuracy;
                best = Some((metrics.step + 1, copy_model(backend, &model.model)?.params));
            }
        }
        Ok(())
    })?;
    let (step, params) = best.ok_or_else(|| Error::Config("reward training ran no steps".into()))?;
    rm.model.params = params;
    Ok(Selection { step, label_accuracy: best_accuracy, checks })
}
