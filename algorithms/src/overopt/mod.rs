//! Reward over-optimisation on `style`, and two mitigations.
//!
//! From the SFT policy: preference pairs of its own samples labelled by the noisy annotator →
//! a proxy reward model (Bradley–Terry) and a GRM-regularised one (plus `α`·SFT loss on the chosen
//! responses) → PPO runs that optimise a proxy, never the gold reward:
//!
//! | run | reward model | KL penalty |
//! | --- | --- | --- |
//! | `weak_kl` | plain | weak β |
//! | `strong_kl` | plain | strong β |
//! | `grm` | GRM-regularised | weak β |
//!
//! Each step records the rollout's mean proxy score, mean gold reward and KL to the SFT policy.
//! The task's gold function peaks at 8-word on-topic sentences, while among the SFT policy's
//! samples longer is usually better, so the proxy learns "longer is better" beyond the point
//! where gold turns down (see [`crate::tasks::style`]): with a weak penalty the policy keeps
//! climbing the proxy as its KL grows while gold peaks and falls.
//!
//! A GRPO run against the plain proxy (GRPO's own KL loss term) completes the demo's summary; its
//! per-step KL is a token mean of k3 rather than a per-response sum, so it is logged but left off
//! the KL charts.

pub mod curve;

use std::path::Path;
use std::time::Instant;

use models::transformer::Model;
use models::weights::StorageDtype;
use runtime::ops::kl::KlEstimator;
use runtime::Backend;
use serde::Serialize;

use self::curve::{plot_runs, summarize, CurvePoint, CurveSummary};
use crate::demo::{assess, PolicyResult, Progress, Stage};
use crate::grpo::{GrpoConfig, GrpoTrainer};
use crate::ppo::kl_control::{KlControl, KlPenalty};
use crate::ppo::{PpoConfig, PpoTrainer};
use crate::reward::{
    evaluate_pairs, sample_preference_pairs, train_reward_model, PairSampling, RewardConfig, RewardLossConfig,
    RewardModel,
};
use crate::rollout::policy::copy_model;
use crate::best_of_n::{best_of_n, BestOfNReport};
use crate::rollout::reward_model::ModelReward;
use crate::tasks::annotator::{Annotator, DEFAULT_FLIP_FRACTION};
use crate::tasks::Task;
use crate::tokenizer::TaskTokenizer;
use crate::{Error, Result};

/// Settings of the experiment.
#[derive(Debug, Clone, PartialEq)]
pub struct OveroptConfig {
    /// Passes over the training prompts drawing one pair per prompt each.
    pub pair_rounds: usize,
    /// Passes over the held-out prompts for the reward models' held-out pairs.
    pub eval_pair_rounds: usize,
    pub flip_fraction: f64,
    /// The reward models' training (the GRM model adds `grm_alpha` to its loss).
    pub reward: RewardConfig,
    pub grm_alpha: f32,
    /// PPO's settings but the KL coefficient, which each run sets.
    pub ppo: PpoConfig,
    /// The GRPO run's settings (`ppo_steps` steps against the plain proxy).
    pub grpo: GrpoConfig,
    pub ppo_steps: usize,
    pub weak_beta: f32,
    pub strong_beta: f32,
    /// Samples per held-out prompt for best-of-N against the plain proxy.
    pub best_of: usize,
    /// Steps averaged (trailing) before peaks and final values are read.
    pub window: usize,
}

impl OveroptConfig {
    /// The demo's settings (`quick`: a shorter run that still shows the trend).
    pub fn for_run(quick: bool, seed: u64) -> Self {
        let (pair_rounds, rm_steps, ppo_steps) = if quick { (8, 300, 30) } else { (20, 600, 60) };
        let ppo = PpoConfig { seed, ..PpoConfig::default() };
        OveroptConfig {
            grpo: GrpoConfig { seed, ..GrpoConfig::default() },
            pair_rounds,
            eval_pair_rounds: 10,
            flip_fraction: DEFAULT_FLIP_FRACTION,
            reward: RewardConfig { seed, ..RewardConfig::new(rm_steps, 32, 3e-3) },
            grm_alpha: 0.5,
            ppo,
            ppo_steps,
            weak_beta: 0.001,
            strong_beta: 0.1,
            best_of: if quick { 8 } else { 16 },
            window: if quick { 3 } else { 5 },
        }
    }

    fn validate(&self) -> Result<()> {
        if self.pair_rounds == 0 || self.eval_pair_rounds == 0 || self.ppo_steps == 0 {
            return Err(Error::Config("overoptimisation: pair rounds and PPO steps must be positive".into()));
        }
        Ok(())
    }
}

/// A reward model's held-out pair accuracy.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ProxyAccuracy {
    /// Against the gold preference (gold ties left out).
    pub gold_accuracy: f64,
    /// Against the annotator's noisy labels.
    pub noisy_accuracy: f64,
    /// Held-out pairs with a gold preference (what the gold accuracy is over).
    pub gold_pairs: usize,
    pub grm_alpha: f32,
    pub seconds: f64,
}

/// One PPO run against a proxy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunResult {
    pub name: &'static str,
    /// Which reward model it optimised: `plain` or `grm`.
    pub reward_model: &'static str,
    pub beta: f32,
    /// Peak and final values of the rollouts' smoothed curves.
    #[serde(flatten)]
    pub curve: CurveSummary,
    /// Greedy gold reward on held-out prompts, and KL to SFT there, after the last step.
    pub held_out_gold: f64,
    pub held_out_kl: f64,
    pub seconds: f64,
}

/// What the experiment measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OveroptReport {
    /// Training pairs (after dropping identical responses) and held-out pairs.
    pub pairs: usize,
    pub held_out_pairs: usize,
    pub flip_fraction: f64,
    /// Training steps of each reward model.
    pub reward_steps: usize,
    pub reward_model: ProxyAccuracy,
    pub grm_reward_model: ProxyAccuracy,
    /// Steps averaged for the peaks and final values.
    pub window: usize,
    pub runs: Vec<RunResult>,
}

/// One line of `metrics.jsonl` for a run's step.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct RunMetrics<'a> {
    pub stage: Stage,
    pub run: &'a str,
    pub step: usize,
    pub proxy: f32,
    pub gold: f32,
    pub kl: f32,
    pub beta: f32,
    pub entropy: f32,
    pub clip_fraction: f32,
    pub response_tokens: f32,
}

/// The report, and the held-out results the demo's summary lists as `ppo` (the strong-KL run) and
/// `grpo`.
#[derive(Debug, Clone)]
pub struct OveroptOutcome {
    pub report: OveroptReport,
    /// Best-of-N on the held-out prompts picked by the plain proxy, and its wall time.
    pub best_of_n: BestOfNReport,
    pub best_of_n_seconds: f64,
    pub ppo: PolicyResult,
    pub grpo: PolicyResult,
}

/// Where the experiment reports to.
pub struct Sinks<'a> {
    pub progress: &'a mut dyn FnMut(&Progress),
    pub metrics: &'a mut dyn FnMut(&RunMetrics) -> Result<()>,
}

/// Trains a reward model from `sft` on `train` and measures it on `held_out`.
#[allow(clippy::too_many_arguments)]
fn reward_model<B: Backend>(
    backend: &B,
    sft: &Model<B>,
    train: &[crate::reward::PreferencePair],
    held_out: &[crate::reward::PreferencePair],
    pad: u32,
    config: &RewardConfig,
    what: &str,
    progress: &mut dyn FnMut(&Progress),
) -> Result<(RewardModel<B>, ProxyAccuracy)> {
    let start = Instant::now();
    let mut rm = RewardModel::from_policy(backend, sft, config.head_init_std, config.seed)?;
    train_reward_model(backend, &mut rm, train, pad, config, &mut |m| {
        if m.step % 25 == 0 || m.step + 1 == config.steps {
            let message = format!("{what}: loss {:.3} acc {:.2}", m.loss, m.accuracy);
            progress(&Progress { stage: Stage::Reward, step: m.step + 1, total: config.steps, message });
        }
    })?;
    let seconds = start.elapsed().as_secs_f64();
    let acc = evaluate_pairs(backend, &rm, held_out, pad)?;
    let result = ProxyAccuracy {
        gold_accuracy: acc.gold_accuracy,
        noisy_accuracy: acc.label_accuracy,
        gold_pairs: acc.gold_pairs,
        grm_alpha: config.loss.grm_alpha,
        seconds,
    };
    Ok((rm, result))
}

/// What every run needs.
struct Setting<'a, B: Backend> {
    backend: &'a B,
    task: &'a dyn Task,
    tokenizer: &'a TaskTokenizer,
    sft: &'a Model<B>,
    config: &'a OveroptConfig,
    out: &'a Path,
}

/// One PPO run of `config.ppo_steps` steps against `rm` with KL coefficient `beta`; saves the
/// policy as `ppo_<name>/`.
fn ppo_run<B: Backend>(
    s: &Setting<B>,
    (name, rm_name, rm, beta): (&'static str, &'static str, &RewardModel<B>, f32),
    sinks: &mut Sinks,
) -> Result<(RunResult, Vec<CurvePoint>)> {
    let (backend, config) = (s.backend, s.config);
    let start = Instant::now();
    let kl = KlPenalty { estimator: KlEstimator::K1, control: KlControl::Fixed { beta } };
    let mut ppo = PpoTrainer::new(backend, copy_model(backend, s.sft)?, s.task, PpoConfig { kl, ..config.ppo.clone() })?;
    let mut reward = ModelReward::new(rm, s.tokenizer.pad_id());
    let mut points = Vec::with_capacity(config.ppo_steps);
    for step in 0..config.ppo_steps {
        let m = ppo.step(backend, s.tokenizer, s.task, &mut reward)?;
        points.push(CurvePoint { step, proxy: m.reward.into(), gold: m.gold.into(), kl: m.kl.into() });
        (sinks.metrics)(&RunMetrics {
            stage: Stage::Ppo,
            run: name,
            step,
            proxy: m.reward,
            gold: m.gold,
            kl: m.kl,
            beta: m.beta,
            entropy: m.entropy,
            clip_fraction: m.update.clip_fraction,
            response_tokens: m.response_tokens,
        })?;
        let message = format!("{name}: proxy {:.3} gold {:.3} kl {:.2}", m.reward, m.gold, m.kl);
        (sinks.progress)(&Progress { stage: Stage::Ppo, step: step + 1, total: config.ppo_steps, message });
    }
    let seconds = start.elapsed().as_secs_f64();
    let (held_out_gold, held_out_kl) = assess(backend, &ppo.policy, s.sft, s.tokenizer, s.task, config.ppo.seed)?;
    ppo.policy.save(&s.out.join(format!("ppo_{name}")), backend, StorageDtype::F32)?;
    let curve = summarize(&points, config.window).ok_or_else(|| Error::Config("a run needs steps".into()))?;
    Ok((RunResult { name, reward_model: rm_name, beta, curve, held_out_gold, held_out_kl, seconds }, points))
}

/// GRPO against `rm` for `config.ppo_steps` steps; saves the policy as `grpo/`.
fn grpo_run<B: Backend>(s: &Setting<B>, rm: &RewardModel<B>, sinks: &mut Sinks) -> Result<PolicyResult> {
    let (backend, config) = (s.backend, s.config);
    let start = Instant::now();
    let mut grpo = GrpoTrainer::new(backend, copy_model(backend, s.sft)?, s.task, config.grpo.clone())?;
    let mut reward = ModelReward::new(rm, s.tokenizer.pad_id());
    for step in 0..config.ppo_steps {
        let m = grpo.step(backend, s.tokenizer, s.task, &mut reward)?;
        (sinks.metrics)(&RunMetrics {
            stage: Stage::Grpo,
            run: "grpo",
            step,
            proxy: m.reward,
            gold: m.gold,
            kl: m.kl,
            beta: config.grpo.loss.beta,
            entropy: m.entropy,
            clip_fraction: m.clip_fraction,
            response_tokens: m.response_tokens,
        })?;
        let message = format!("proxy {:.3} gold {:.3} k3/token {:.3}", m.reward, m.gold, m.kl);
        (sinks.progress)(&Progress { stage: Stage::Grpo, step: step + 1, total: config.ppo_steps, message });
    }
    let seconds = start.elapsed().as_secs_f64();
    let (gold, kl) = assess(backend, &grpo.policy, s.sft, s.tokenizer, s.task, config.grpo.seed)?;
    grpo.policy.save(&s.out.join("grpo"), backend, StorageDtype::F32)?;
    Ok(PolicyResult { gold, kl, seconds })
}

/// Runs the experiment from the SFT policy `sft`; writes each run's policy (`ppo_<run>/`,
/// `grpo/`) and the charts into `out`.
pub fn run_experiment<B: Backend>(
    backend: &B,
    task: &dyn Task,
    tokenizer: &TaskTokenizer,
    sft: &Model<B>,
    config: &OveroptConfig,
    out: &Path,
    sinks: &mut Sinks,
) -> Result<OveroptOutcome> {
    config.validate()?;
    let pad = tokenizer.pad_id();
    let seed = config.ppo.seed;
    let message = Progress { stage: Stage::Reward, step: 0, total: 1, message: "sampling preference pairs".into() };
    (sinks.progress)(&message);
    let mut annotator = Annotator::new(config.flip_fraction, 2 * seed + 1)?;
    let sampling = PairSampling { rounds: config.pair_rounds, seed: 11 + 10 * seed, ..PairSampling::default() };
    let (train, _) = sample_preference_pairs(backend, sft, tokenizer, task, task.train_prompts(), &mut annotator, &sampling)?;
    let mut annotator = Annotator::new(config.flip_fraction, 2 * seed + 2)?;
    let sampling = PairSampling { rounds: config.eval_pair_rounds, seed: 12 + 10 * seed, ..sampling };
    let (held_out, _) = sample_preference_pairs(backend, sft, tokenizer, task, task.eval_prompts(), &mut annotator, &sampling)?;

    let (plain, plain_result) = reward_model(backend, sft, &train, &held_out, pad, &config.reward, "proxy RM", sinks.progress)?;
    let grm_config = RewardConfig {
        loss: RewardLossConfig { grm_alpha: config.grm_alpha, ..config.reward.loss },
        ..config.reward.clone()
    };
    let (grm, grm_result) = reward_model(backend, sft, &train, &held_out, pad, &grm_config, "GRM RM", sinks.progress)?;

    let best_of_start = Instant::now();
    let message = Progress { stage: Stage::BestOfN, step: 0, total: 1, message: format!("best of {} by the proxy", config.best_of) };
    (sinks.progress)(&message);
    let mut proxy = ModelReward::new(&plain, pad);
    let best_of_n = best_of_n(backend, sft, tokenizer, task, task.eval_prompts(), config.best_of, 1.0, seed, &mut proxy)?;
    let best_of_n_seconds = best_of_start.elapsed().as_secs_f64();

    let setting = Setting { backend, task, tokenizer, sft, config, out };
    let specs = [
        ("weak_kl", "plain", &plain, config.weak_beta),
        ("strong_kl", "plain", &plain, config.strong_beta),
        ("grm", "grm", &grm, config.weak_beta),
    ];
    let mut runs = Vec::with_capacity(specs.len());
    let mut curves = Vec::with_capacity(specs.len());
    for spec in specs {
        let (run, points) = ppo_run(&setting, spec, sinks)?;
        runs.push(run);
        curves.push(points);
    }
    let grpo = grpo_run(&setting, &plain, sinks)?;
    let named: Vec<(&str, &[CurvePoint])> = runs.iter().zip(&curves).map(|(r, c)| (r.name, c.as_slice())).collect();
    plot_runs(out, &named, config.window)?;
    // The demo's `ppo` row is the run one would keep: the plain proxy held by the strong penalty.
    let strong = &runs[1];
    let ppo = PolicyResult { gold: strong.held_out_gold, kl: strong.held_out_kl, seconds: strong.seconds };
    let report = OveroptReport {
        pairs: train.len(),
        held_out_pairs: held_out.len(),
        flip_fraction: config.flip_fraction,
        reward_steps: config.reward.steps,
        reward_model: plain_result,
        grm_reward_model: grm_result,
        window: config.window,
        runs,
    };
    Ok(OveroptOutcome { report, best_of_n, best_of_n_seconds, ppo, grpo })
}
