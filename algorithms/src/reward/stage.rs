//! The reward-model stage of `rlhf demo`, from a policy to a reward model trained on noisy
//! preferences:
//!
//! 1. pairs: two samples per prompt from the policy, labelled by the noisy annotator, on the
//!    training prompts (a slice of them kept back as validation pairs) and, for the report only,
//!    on the held-out prompts;
//! 2. the model on the raw labels, stopped early on the noisy validation labels
//!    ([`super::select`]): the no-denoising baseline, and the ensemble's first member;
//! 3. `M − 1` more members, the same training from other seeds (head draw and data order);
//! 4. denoising: the ensemble's preference strength relabels the training pairs ([`super::denoise`]);
//! 5. the final model on the denoised labels, with the raw model's seed and steps;
//! 6. with an ensemble, the denoised model is the stage's reward model; the raw one stays a
//!    baseline for the report. Keeping whichever is more accurate on the noisy validation labels
//!    was tried and dropped: over some 2,200 validation pairs that accuracy has a standard error
//!    of a point, about the gap between the two models, and it kept the raw model on a run where
//!    the denoised one was 3.3 points better on gold;
//! 7. held-out accuracy against the noisy labels and against gold.
//!
//! Members are trained as long as the final model: the denoised labels are the ensemble's view,
//! so a model trained on them is about as accurate as the ensemble, and members weaker than the
//! raw model make denoising a loss (3 members of 300 steps: 0.81–0.84 gold, under the raw
//! model's 0.82–0.87).
//!
//! Nothing in training or selection reads a gold label: gold appears only in the held-out report
//! and the denoising audit.

use std::time::Instant;

use models::transformer::Model;
use runtime::Backend;

use super::data::{sample_preference_pairs, PairSampling, PairStats, PreferencePair};
use super::denoise::{denoise, DenoiseConfig, DenoiseCounts, Treatment};
use super::ensemble::{ensemble_strength, Strength};
use super::metrics::{audit_denoising, evaluate_pairs, pair_accuracy, DenoiseAudit, PairAccuracy};
use super::model::{Readout, RewardModel};
use super::select::{train_selected, Selection};
use super::train::RewardConfig;
use crate::rng::Rng;
use crate::tasks::annotator::Annotator;
use crate::tasks::Task;
use crate::tokenizer::TaskTokenizer;
use crate::{Error, Result};

/// Settings of [`run_reward_stage`].
#[derive(Debug, Clone, PartialEq)]
pub struct RewardStageConfig {
    /// The annotator's flip fraction.
    pub flip_fraction: f64,
    /// Where every reward model of the stage reads its reward.
    pub readout: Readout,
    /// Pair-sampling passes over the training prompts. Flips are symmetric, so more pairs dilute
    /// them: with many more pairs than steps × batch, no flipped pair is seen often enough to be
    /// memorised.
    pub train_rounds: usize,
    /// Passes over the held-out prompts for the report.
    pub held_out_rounds: usize,
    /// Fraction of the training prompts whose pairs are kept back as validation pairs.
    pub validation_fraction: f64,
    /// Ensemble members `M`, the raw-label model included (0 or 1: no denoising; the stage's
    /// model is the one on the raw labels).
    pub members: usize,
    pub denoise: DenoiseConfig,
    /// Leave out the pairs denoising would flip instead of flipping them. Where the ensemble is
    /// less sure than the annotator (on `arith`, the sums without a carry), a wrong flip turns a
    /// right label into a wrong one, while leaving the pair out only costs a pair.
    pub drop_contradicted: bool,
    /// Every model of the stage: the raw one, the members, the denoised one.
    pub model: RewardConfig,
    /// Steps between validation checks.
    pub check_every: usize,
    pub seed: u64,
}

impl RewardStageConfig {
    /// The demo's reward stage: `rounds` passes of pair sampling, `members` ensemble members,
    /// every model `steps` steps of 64 pairs.
    pub fn new(rounds: usize, members: usize, steps: usize, seed: u64) -> Self {
        RewardStageConfig {
            flip_fraction: crate::tasks::annotator::DEFAULT_FLIP_FRACTION,
            readout: Readout::TokenSum,
            train_rounds: rounds,
            held_out_rounds: 16,
            validation_fraction: 0.1,
            members,
            denoise: DenoiseConfig { soft_labels: false, flip_z: 2.0, ..DenoiseConfig::default() },
            drop_contradicted: false,
            model: RewardConfig::new(steps, 64, 3e-3),
            check_every: 100,
            seed,
        }
    }
}

/// One progress report of the stage: `step` of `total` in `phase`.
#[derive(Debug, Clone)]
pub struct RewardProgress {
    pub phase: String,
    pub step: usize,
    pub total: usize,
    /// The last step's training loss (0 outside training).
    pub loss: f32,
}

/// What the stage measured.
#[derive(Debug, Clone, PartialEq)]
pub struct RewardStageReport {
    pub train_pairs: usize,
    pub validation_pairs: usize,
    pub held_out_pairs: usize,
    pub train_stats: PairStats,
    /// The stage's reward model (the denoised one when there is an ensemble, else the raw one)
    /// on the held-out pairs.
    pub held_out: PairAccuracy,
    /// Its accuracy against the validation pairs' labels, and the step early stopping kept.
    pub selection: Selection,
    /// The model trained on the denoised labels: held-out accuracy and validation label accuracy.
    pub denoised: Option<(PairAccuracy, f64)>,
    /// The model trained on the raw labels (the first member): the same.
    pub undenoised: (PairAccuracy, f64),
    /// The ensemble's mean reward difference on the held-out pairs (when there is an ensemble).
    pub ensemble_mean: Option<PairAccuracy>,
    /// The steps the members were stopped at, the raw-label model first.
    pub member_steps: Vec<usize>,
    /// Each member's accuracy on the held-out pairs, the raw-label model first: the spread
    /// between models that differ only in seed.
    pub member_accuracies: Vec<PairAccuracy>,
    pub denoise_counts: Option<DenoiseCounts>,
    /// Gold's view of what denoising did to the training labels (measurement only).
    pub audit: Option<DenoiseAudit>,
    pub seconds: f64,
}

/// Training prompts split into (training, validation) by a seeded shuffle.
fn split_prompts(prompts: &[String], fraction: f64, seed: u64) -> Result<(Vec<String>, Vec<String>)> {
    let mut shuffled = prompts.to_vec();
    Rng::derived(seed, 9).shuffle(&mut shuffled);
    let validation = ((prompts.len() as f64 * fraction).round() as usize).min(prompts.len());
    if validation == 0 || validation == prompts.len() {
        return Err(Error::Config(format!(
            "a validation fraction of {fraction} leaves no training or no validation prompts out of {}",
            prompts.len()
        )));
    }
    let train = shuffled.split_off(validation);
    Ok((train, shuffled))
}

/// What [`run_reward_stage`] returns.
pub struct RewardStageOutput<B: Backend> {
    /// The final reward model.
    pub model: RewardModel<B>,
    pub report: RewardStageReport,
    /// The held-out pairs the report measured.
    pub held_out: Vec<PreferencePair>,
}

/// Runs the stage from `policy` (the reward models start from a copy of it).
pub fn run_reward_stage<B: Backend>(
    backend: &B,
    policy: &Model<B>,
    tokenizer: &TaskTokenizer,
    task: &dyn Task,
    config: &RewardStageConfig,
    progress: &mut dyn FnMut(&RewardProgress),
) -> Result<RewardStageOutput<B>> {
    let start = Instant::now();
    let pad = tokenizer.pad_id();
    let seed = config.seed;
    let (train_prompts, validation_prompts) = split_prompts(task.train_prompts(), config.validation_fraction, seed)?;
    let mut sample = |prompts: &[String], rounds: usize, stream: u64| -> Result<(Vec<PreferencePair>, PairStats)> {
        progress(&RewardProgress { phase: "pairs".into(), step: stream as usize, total: 3, loss: 0.0 });
        let mut annotator = Annotator::new(config.flip_fraction, Rng::derived(seed, 20 + stream).next_u64())?;
        let sampling = PairSampling { rounds, seed: Rng::derived(seed, 30 + stream).next_u64(), ..PairSampling::default() };
        sample_preference_pairs(backend, policy, tokenizer, task, prompts, &mut annotator, &sampling)
    };
    let (train, train_stats) = sample(&train_prompts, config.train_rounds, 0)?;
    let validation_rounds = config.train_rounds.max(1);
    let (validation, _) = sample(&validation_prompts, validation_rounds, 1)?;
    let (held_out, _) = sample(task.eval_prompts(), config.held_out_rounds, 2)?;
    if train.is_empty() || validation.is_empty() || held_out.is_empty() {
        return Err(Error::Config(format!(
            "the policy's samples gave {} training, {} validation and {} held-out pairs; every set needs some",
            train.len(),
            validation.len(),
            held_out.len()
        )));
    }

    let train_one = |pairs: &[PreferencePair],
                     rm_config: &RewardConfig,
                     phase: &str,
                     progress: &mut dyn FnMut(&RewardProgress)|
     -> Result<(RewardModel<B>, Selection)> {
        let mut rm =
            RewardModel::from_policy(backend, policy, rm_config.head_init_std, rm_config.seed)?.with_readout(config.readout);
        let total = rm_config.steps;
        let selection = train_selected(backend, &mut rm, pairs, &validation, pad, rm_config, config.check_every, &mut |m| {
            if m.step % 25 == 0 || m.step + 1 == total {
                progress(&RewardProgress { phase: phase.to_string(), step: m.step + 1, total, loss: m.loss });
            }
        })?;
        Ok((rm, selection))
    };

    // The raw-label model: the baseline and the first member.
    let raw_config = RewardConfig { seed: seed * 1000 + 1, ..config.model.clone() };
    let with_ensemble = config.members > 1;
    let raw_phase = if with_ensemble { format!("member 1/{} (raw labels)", config.members) } else { "raw labels".into() };
    let (raw, raw_selection) = train_one(&train, &raw_config, &raw_phase, progress)?;
    let raw_accuracy = evaluate_pairs(backend, &raw, &held_out, pad)?;
    let undenoised = (raw_accuracy, raw_selection.label_accuracy);
    let mut member_steps = vec![raw_selection.step];
    let mut member_accuracies = vec![raw_accuracy];
    let (mut rm, mut selection, mut held_out_accuracy) = (raw, raw_selection, raw_accuracy);
    let (mut denoised_report, mut ensemble_mean, mut denoise_counts, mut audit) = (None, None, None, None);
    if with_ensemble {
        let mut others = Vec::with_capacity(config.members - 1);
        for m in 1..config.members {
            let member_config = RewardConfig { seed: seed * 1000 + 100 + m as u64, ..config.model.clone() };
            let phase = format!("member {}/{}", m + 1, config.members);
            let (member, member_selection) = train_one(&train, &member_config, &phase, progress)?;
            member_steps.push(member_selection.step);
            member_accuracies.push(evaluate_pairs(backend, &member, &held_out, pad)?);
            others.push(member);
        }
        let members: Vec<&RewardModel<B>> = std::iter::once(&rm).chain(&others).collect();
        let strengths = ensemble_strength(backend, &members, &train, pad)?;
        let held_out_strength: Vec<f32> =
            ensemble_strength(backend, &members, &held_out, pad)?.iter().map(|s: &Strength| s.mean).collect();
        ensemble_mean = Some(pair_accuracy(&held_out_strength, &held_out));
        // The members' memory is not needed while the denoised model trains.
        drop(others);
        let (relabelled, treatments, counts) = denoise(&train, &strengths, &config.denoise)?;
        audit = Some(audit_denoising(&train, &relabelled, &treatments));
        denoise_counts = Some(counts);
        let relabelled: Vec<PreferencePair> = if config.drop_contradicted {
            relabelled.into_iter().zip(&treatments).filter(|(_, t)| **t != Treatment::Flip).map(|(p, _)| p).collect()
        } else {
            relabelled
        };
        let (denoised, denoised_selection) = train_one(&relabelled, &raw_config, "denoised labels", progress)?;
        let denoised_accuracy = evaluate_pairs(backend, &denoised, &held_out, pad)?;
        denoised_report = Some((denoised_accuracy, denoised_selection.label_accuracy));
        (rm, selection, held_out_accuracy) = (denoised, denoised_selection, denoised_accuracy);
    }
    let report = RewardStageReport {
        train_pairs: train.len(),
        validation_pairs: validation.len(),
        held_out_pairs: held_out.len(),
        train_stats,
        held_out: held_out_accuracy,
        selection,
        denoised: denoised_report,
        undenoised,
        ensemble_mean,
        member_steps,
        member_accuracies,
        denoise_counts,
        audit,
        seconds: start.elapsed().as_secs_f64(),
    };
    Ok(RewardStageOutput { model: rm, report, held_out })
}
