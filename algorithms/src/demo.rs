//! The main job, `rlhf demo`: on a bundled task, train a tokenizer and an SFT policy from scratch,
//! train a reward model on the SFT policy's own samples labelled by the noisy annotator (an
//! ensemble, denoising, the final model; [`crate::reward::stage`]), pick best-of-N samples with
//! it, improve the SFT policy with PPO and with GRPO, and evaluate each on held-out prompts (gold
//! reward, KL to the SFT policy, wall time). Writes `summary.json`, per-step metrics as
//! `metrics.jsonl` and PNG curves of reward, gold reward and KL into the output directory.
//!
//! On `arith` the RL stages optimise the task's gold reward (a verifiable reward, which the issue
//! allows); best-of-N picks with the learned reward model. On `style` they optimise reward models
//! learned from noisy preference labels, and the demo is the reward over-optimisation experiment
//! of [`crate::overopt`]: PPO with a weak and a strong KL penalty and with a GRM-regularised
//! reward model (`summary.json`'s `ppo` is the strong-KL run), plus GRPO and best-of-N against the
//! plain proxy. `summary.json` says which reward each stage used.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use models::transformer::Model;
use models::weights::StorageDtype;
use runtime::Backend;
use serde::Serialize;

use crate::best_of_n::{best_of_n, BestOfNReport};
use crate::eval::{evaluate, EvalOptions};
use crate::grpo::{GrpoConfig, GrpoTrainer};
use crate::model::{init_model, ModelShape};
use crate::overopt::{run_experiment, OveroptConfig, OveroptReport, RunMetrics, Sinks};
use crate::plot::{line_chart, Series};
use crate::ppo::{PpoConfig, PpoTrainer};
use crate::rollout::policy::{copy_model, token_logprobs};
use crate::reward::{run_reward_stage, RewardStageConfig, RewardStageReport};
use crate::rollout::reward::GoldReward;
use crate::rollout::reward_model::ModelReward;
use crate::rollout::{sample_responses, TokenLayout};
use crate::sft::{tokenize, train_sft, SftConfig};
use crate::tasks::{by_name, Task};
use crate::tokenizer::{train_tokenizer, TaskTokenizer};
use crate::{Error, Result};

/// What `rlhf demo` was asked for.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub task: String,
    /// A shorter run (≤ 2 minutes on 2 cores) that still shows the improvement.
    pub quick: bool,
    pub out: PathBuf,
    pub seed: u64,
}

/// Step counts of each stage.
#[derive(Debug, Clone)]
struct Budget {
    sft_steps: usize,
    rl_steps: usize,
    reward: RewardStageConfig,
    /// Samples per prompt for best-of-N.
    best_of: usize,
}

impl Budget {
    fn for_run(quick: bool, seed: u64) -> Self {
        if quick {
            // No ensemble: its members train as long as the final model, more than two minutes allow.
            let mut reward = RewardStageConfig::new(12, 0, 600, seed);
            reward.held_out_rounds = 4;
            Budget { sft_steps: 500, rl_steps: 8, reward, best_of: 8 }
        } else {
            let mut reward = RewardStageConfig::new(32, 5, 1200, seed);
            reward.check_every = 200;
            Budget { sft_steps: 1500, rl_steps: 40, reward, best_of: 16 }
        }
    }
}

/// Which stage a progress report is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Sft,
    /// Preference pairs and reward models.
    Reward,
    BestOfN,
    Ppo,
    Grpo,
    Eval,
}

/// One progress report: `step` of `total` in `stage`, with a short metrics line.
#[derive(Debug, Clone)]
pub struct Progress {
    pub stage: Stage,
    pub step: usize,
    pub total: usize,
    pub message: String,
}

/// A policy's held-out result.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct PolicyResult {
    /// Mean gold reward of greedy responses (the accuracy for `arith`).
    pub gold: f64,
    /// Mean over held-out prompts of the summed per-token log-ratio to the SFT policy on sampled
    /// responses (a k1 estimate of KL(policy ‖ SFT) per sequence).
    pub kl: f64,
    /// Wall time of the stage that produced the policy.
    pub seconds: f64,
}

/// Best-of-N with the reward model on the held-out prompts, judged by gold.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct BestOfNResult {
    /// Mean gold reward of the picked responses.
    pub gold: f64,
    pub n: usize,
    /// Mean gold reward of a single sample, and of the best of the `n` by gold (the ceiling).
    pub sample_gold: f64,
    pub oracle_gold: f64,
    pub seconds: f64,
}

impl BestOfNResult {
    fn new(report: &BestOfNReport, seconds: f64) -> Self {
        BestOfNResult { gold: report.gold, n: report.n, sample_gold: report.sample_gold, oracle_gold: report.oracle_gold, seconds }
    }
}

/// The reward model's held-out pair accuracies and what its stage did.
#[derive(Debug, Clone, Serialize)]
pub struct RewardModelResult {
    /// Pairs ranked the gold way (pairs with a gold preference).
    pub gold_accuracy: f64,
    /// Pairs ranked as the noisy annotator labelled them.
    pub noisy_accuracy: f64,
    /// Which labels the stage's model was trained on: `denoised` (with an ensemble) or `raw`.
    pub trained_on: &'static str,
    /// Ensemble members, the raw-label model included (0: no ensemble, no denoising).
    pub ensemble_members: usize,
    /// Each member's gold accuracy on the held-out pairs, the raw-label model first (empty
    /// without an ensemble): how far models that differ only in seed spread.
    pub member_gold_accuracies: Vec<f64>,
    /// The model trained on the denoised labels (with an ensemble), and the same trained on the
    /// raw labels.
    pub denoised_gold_accuracy: Option<f64>,
    pub no_denoising_gold_accuracy: Option<f64>,
    pub no_denoising_noisy_accuracy: Option<f64>,
    /// The ensemble's mean reward difference, as a ranking.
    pub ensemble_mean_gold_accuracy: Option<f64>,
    pub flip_fraction: f64,
    pub train_pairs: usize,
    pub validation_pairs: usize,
    pub held_out_pairs: usize,
    pub held_out_gold_pairs: usize,
    /// Denoising judged by gold (measurement only): flips that corrected and that broke a label.
    pub flips_correcting: Option<usize>,
    pub flips_damaging: Option<usize>,
    /// The step early stopping kept, of the final model's steps.
    pub selected_step: usize,
    pub steps: usize,
    pub seconds: f64,
}

impl RewardModelResult {
    fn new(report: &RewardStageReport, config: &RewardStageConfig) -> Self {
        RewardModelResult {
            gold_accuracy: report.held_out.gold_accuracy,
            noisy_accuracy: report.held_out.label_accuracy,
            trained_on: if report.denoised.is_some() { "denoised" } else { "raw" },
            ensemble_members: if report.ensemble_mean.is_some() { report.member_steps.len() } else { 0 },
            member_gold_accuracies: if report.ensemble_mean.is_some() {
                report.member_accuracies.iter().map(|a| a.gold_accuracy).collect()
            } else {
                Vec::new()
            },
            denoised_gold_accuracy: report.denoised.map(|a| a.0.gold_accuracy),
            no_denoising_gold_accuracy: Some(report.undenoised.0.gold_accuracy),
            no_denoising_noisy_accuracy: Some(report.undenoised.0.label_accuracy),
            ensemble_mean_gold_accuracy: report.ensemble_mean.map(|a| a.gold_accuracy),
            flip_fraction: config.flip_fraction,
            train_pairs: report.train_pairs,
            validation_pairs: report.validation_pairs,
            held_out_pairs: report.held_out_pairs,
            held_out_gold_pairs: report.held_out.gold_pairs,
            flips_correcting: report.audit.map(|a| a.flips_correcting),
            flips_damaging: report.audit.map(|a| a.flips_damaging),
            selected_step: report.selection.step,
            steps: config.model.steps,
            seconds: report.seconds,
        }
    }
}

impl RewardModelResult {
    /// `style`: the plain proxy of the over-optimisation experiment, trained on the raw noisy
    /// labels (no ensemble, no denoising, no early stopping).
    fn proxy(report: &OveroptReport) -> Self {
        let proxy = &report.reward_model;
        RewardModelResult {
            gold_accuracy: proxy.gold_accuracy,
            noisy_accuracy: proxy.noisy_accuracy,
            trained_on: "raw",
            ensemble_members: 0,
            member_gold_accuracies: Vec::new(),
            denoised_gold_accuracy: None,
            no_denoising_gold_accuracy: None,
            no_denoising_noisy_accuracy: None,
            ensemble_mean_gold_accuracy: None,
            flip_fraction: report.flip_fraction,
            train_pairs: report.pairs,
            validation_pairs: 0,
            held_out_pairs: report.held_out_pairs,
            held_out_gold_pairs: proxy.gold_pairs,
            flips_correcting: None,
            flips_damaging: None,
            selected_step: report.reward_steps,
            steps: report.reward_steps,
            seconds: proxy.seconds,
        }
    }
}

/// Which reward each stage optimised or picked by.
#[derive(Debug, Clone, Serialize)]
pub struct RewardsUsed {
    pub best_of_n: &'static str,
    pub ppo: &'static str,
    pub grpo: &'static str,
}

/// `summary.json`.
#[derive(Debug, Clone, Serialize)]
pub struct DemoSummary {
    pub task: String,
    pub seed: u64,
    pub quick: bool,
    /// What the RL stages optimised.
    pub reward_source: &'static str,
    pub rewards_used: RewardsUsed,
    pub sft: PolicyResult,
    pub reward_model: RewardModelResult,
    pub best_of_n: BestOfNResult,
    pub ppo: PolicyResult,
    pub grpo: PolicyResult,
    /// `style`: the reward over-optimisation experiment ([`crate::overopt`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overoptimisation: Option<OveroptReport>,
    pub seconds: f64,
}

/// One RL step on the curves.
#[derive(Debug, Clone, Copy)]
struct CurvePoint {
    step: f64,
    reward: f64,
    gold: f64,
    kl: f64,
}

/// One line of `metrics.jsonl`.
#[derive(Serialize)]
struct MetricsLine {
    stage: Stage,
    step: usize,
    reward: f32,
    gold: f32,
    kl: f32,
    entropy: f32,
    clip_fraction: f32,
    response_tokens: f32,
}

fn io_err(path: &Path, source: std::io::Error) -> Error {
    Error::Io { path: path.display().to_string(), source }
}

/// Held-out gold (greedy) and KL to `sft` (sampled responses).
pub(crate) fn assess<B: Backend>(
    backend: &B,
    policy: &Model<B>,
    sft: &Model<B>,
    tokenizer: &TaskTokenizer,
    task: &dyn Task,
    seed: u64,
) -> Result<(f64, f64)> {
    let (report, _) = evaluate(backend, policy, tokenizer, task, task.eval_prompts(), &EvalOptions::default())?;
    let samples = sample_responses(backend, policy, tokenizer, task, task.eval_prompts(), 1, 1.0, seed)?;
    let layout = TokenLayout::new(&samples, tokenizer.pad_id())?;
    let all: Vec<usize> = (0..layout.rows()).collect();
    let mb = layout.minibatch(&all);
    let (lp, _) = token_logprobs(backend, policy, &mb, tokenizer.pad_id(), 1.0)?;
    let (lp_sft, _) = token_logprobs(backend, sft, &mb, tokenizer.pad_id(), 1.0)?;
    let total: f64 = lp.iter().zip(&lp_sft).zip(&mb.mask).filter(|(_, &m)| m == 1).map(|((&a, &b), _)| (a - b) as f64).sum();
    Ok((report.mean_gold, total / layout.rows() as f64))
}

/// Runs the whole demo on `backend`, reporting progress as it goes.
pub fn run_demo<B: Backend>(backend: &B, options: &DemoOptions, progress: &mut dyn FnMut(&Progress)) -> Result<DemoSummary> {
    let start = Instant::now();
    let budget = Budget::for_run(options.quick, options.seed);
    let task = by_name(&options.task, options.seed)?;
    let task = task.as_ref();
    std::fs::create_dir_all(&options.out).map_err(|e| io_err(&options.out, e))?;
    let tokenizer = train_tokenizer(task, &options.out)?;
    let metrics_path = options.out.join("metrics.jsonl");
    let mut metrics = std::fs::File::create(&metrics_path).map_err(|e| io_err(&metrics_path, e))?;
    let mut log = |line: MetricsLine| -> Result<()> {
        let text = serde_json::to_string(&line).map_err(|e| Error::Config(e.to_string()))?;
        writeln!(metrics, "{text}").map_err(|e| io_err(&metrics_path, e))
    };

    // SFT from scratch.
    let stage_start = Instant::now();
    let config = ModelShape::for_task(task).config(&tokenizer);
    let mut sft = init_model(backend, &config, options.seed)?;
    let rows = tokenize(&tokenizer, task.sft_corpus())?;
    let sft_config = SftConfig { seed: options.seed, ..SftConfig::new(budget.sft_steps, 64, 3e-3) };
    train_sft(backend, &mut sft, &rows, tokenizer.pad_id(), &sft_config, &mut |m| {
        if m.step % 25 == 0 || m.step + 1 == budget.sft_steps {
            let message = format!("loss {:.3}", m.loss);
            progress(&Progress { stage: Stage::Sft, step: m.step + 1, total: budget.sft_steps, message });
        }
    })?;
    sft.save(&options.out.join("sft"), backend, StorageDtype::F32)?;
    let sft_seconds = stage_start.elapsed().as_secs_f64();
    progress(&Progress { stage: Stage::Eval, step: 0, total: 3, message: "SFT policy".into() });
    let (sft_gold, _) = assess(backend, &sft, &sft, &tokenizer, task, options.seed)?;
    let sft_result = PolicyResult { gold: sft_gold, kl: 0.0, seconds: sft_seconds };

    if task.name() == "style" {
        let config = OveroptConfig::for_run(options.quick, options.seed);
        let mut write = |line: &RunMetrics| -> Result<()> {
            let text = serde_json::to_string(line).map_err(|e| Error::Config(e.to_string()))?;
            writeln!(metrics, "{text}").map_err(|e| io_err(&metrics_path, e))
        };
        let mut sinks = Sinks { progress: &mut *progress, metrics: &mut write };
        let outcome = run_experiment(backend, task, &tokenizer, &sft, &config, &options.out, &mut sinks)?;
        let summary = DemoSummary {
            task: options.task.clone(),
            seed: options.seed,
            quick: options.quick,
            reward_source: "reward model",
            rewards_used: RewardsUsed { best_of_n: "reward_model", ppo: "reward_model", grpo: "reward_model" },
            sft: sft_result,
            reward_model: RewardModelResult::proxy(&outcome.report),
            best_of_n: BestOfNResult::new(&outcome.best_of_n, outcome.best_of_n_seconds),
            ppo: outcome.ppo,
            grpo: outcome.grpo,
            overoptimisation: Some(outcome.report),
            seconds: start.elapsed().as_secs_f64(),
        };
        write_summary(&options.out, &summary)?;
        return Ok(summary);
    }

    // Reward model from the SFT policy's samples and the noisy annotator's labels.
    let reward_stage = run_reward_stage(backend, &sft, &tokenizer, task, &budget.reward, &mut |p| {
        let message = format!("{} loss {:.3}", p.phase, p.loss);
        progress(&Progress { stage: Stage::Reward, step: p.step, total: p.total, message });
    })?;
    let reward_model = RewardModelResult::new(&reward_stage.report, &budget.reward);

    // Best-of-N on the held-out prompts, picked by the reward model.
    let stage_start = Instant::now();
    let message = format!("best of {} by the reward model", budget.best_of);
    progress(&Progress { stage: Stage::BestOfN, step: 0, total: 1, message });
    let mut learned = ModelReward::new(&reward_stage.model, tokenizer.pad_id());
    let report =
        best_of_n(backend, &sft, &tokenizer, task, task.eval_prompts(), budget.best_of, 1.0, options.seed, &mut learned)?;
    let best_of_n_result = BestOfNResult::new(&report, stage_start.elapsed().as_secs_f64());
    drop(reward_stage);

    // PPO.
    let stage_start = Instant::now();
    let ppo_config = PpoConfig { seed: options.seed, ..PpoConfig::default() };
    let mut ppo = PpoTrainer::new(backend, copy_model(backend, &sft)?, task, ppo_config)?;
    let mut reward = GoldReward { task };
    let mut ppo_curve = Vec::new();
    for step in 0..budget.rl_steps {
        let m = ppo.step(backend, &tokenizer, task, &mut reward)?;
        ppo_curve.push(CurvePoint { step: step as f64, reward: m.reward.into(), gold: m.gold.into(), kl: m.kl.into() });
        log(MetricsLine {
            stage: Stage::Ppo,
            step,
            reward: m.reward,
            gold: m.gold,
            kl: m.kl,
            entropy: m.entropy,
            clip_fraction: m.update.clip_fraction,
            response_tokens: m.response_tokens,
        })?;
        let message = format!("reward {:.3} kl {:.3}", m.reward, m.kl);
        progress(&Progress { stage: Stage::Ppo, step: step + 1, total: budget.rl_steps, message });
    }
    let ppo_seconds = stage_start.elapsed().as_secs_f64();
    progress(&Progress { stage: Stage::Eval, step: 1, total: 3, message: "PPO policy".into() });
    let (gold, kl) = assess(backend, &ppo.policy, &sft, &tokenizer, task, options.seed)?;
    let ppo_result = PolicyResult { gold, kl, seconds: ppo_seconds };
    ppo.policy.save(&options.out.join("ppo"), backend, StorageDtype::F32)?;

    // GRPO.
    let stage_start = Instant::now();
    let grpo_config = GrpoConfig { seed: options.seed, ..GrpoConfig::default() };
    let mut grpo = GrpoTrainer::new(backend, copy_model(backend, &sft)?, task, grpo_config)?;
    let mut grpo_curve = Vec::new();
    for step in 0..budget.rl_steps {
        let m = grpo.step(backend, &tokenizer, task, &mut reward)?;
        grpo_curve.push(CurvePoint { step: step as f64, reward: m.reward.into(), gold: m.gold.into(), kl: m.kl.into() });
        log(MetricsLine {
            stage: Stage::Grpo,
            step,
            reward: m.reward,
            gold: m.gold,
            kl: m.kl,
            entropy: m.entropy,
            clip_fraction: m.clip_fraction,
            response_tokens: m.response_tokens,
        })?;
        let message = format!("reward {:.3} kl {:.4}", m.reward, m.kl);
        progress(&Progress { stage: Stage::Grpo, step: step + 1, total: budget.rl_steps, message });
    }
    let grpo_seconds = stage_start.elapsed().as_secs_f64();
    progress(&Progress { stage: Stage::Eval, step: 2, total: 3, message: "GRPO policy".into() });
    let (gold, kl) = assess(backend, &grpo.policy, &sft, &tokenizer, task, options.seed)?;
    let grpo_result = PolicyResult { gold, kl, seconds: grpo_seconds };
    grpo.policy.save(&options.out.join("grpo"), backend, StorageDtype::F32)?;

    plot_curves(&options.out, &ppo_curve, &grpo_curve)?;
    let summary = DemoSummary {
        task: options.task.clone(),
        seed: options.seed,
        quick: options.quick,
        reward_source: "gold",
        rewards_used: RewardsUsed { best_of_n: "reward_model", ppo: "gold", grpo: "gold" },
        sft: sft_result,
        reward_model,
        best_of_n: best_of_n_result,
        ppo: ppo_result,
        grpo: grpo_result,
        overoptimisation: None,
        seconds: start.elapsed().as_secs_f64(),
    };
    write_summary(&options.out, &summary)?;
    Ok(summary)
}

/// `summary.json` in `out`.
fn write_summary(out: &Path, summary: &DemoSummary) -> Result<()> {
    let text = serde_json::to_vec_pretty(summary).map_err(|e| Error::Config(e.to_string()))?;
    Ok(models::weights::write_atomically(&out.join("summary.json"), &text)?)
}

/// `reward.png`, `gold.png` and `kl.png`: PPO and GRPO per training step.
fn plot_curves(out: &Path, ppo: &[CurvePoint], grpo: &[CurvePoint]) -> Result<()> {
    type Pick = fn(&CurvePoint) -> f64;
    let charts: [(&str, &str, Pick); 3] = [
        ("reward", "reward (training signal)", |p| p.reward),
        ("gold", "gold reward", |p| p.gold),
        ("kl", "KL to reference", |p| p.kl),
    ];
    for (file, title, pick) in charts {
        let points = |curve: &[CurvePoint]| curve.iter().map(|p| (p.step, pick(p))).collect();
        let series = [Series { name: "PPO", points: points(ppo) }, Series { name: "GRPO", points: points(grpo) }];
        line_chart(&out.join(format!("{file}.png")), title, "step", file, &series)?;
    }
    Ok(())
}
