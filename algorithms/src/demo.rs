//! The main job, `rlhf demo`: on a bundled task, train a tokenizer and an SFT policy from scratch,
//! improve it with PPO and with GRPO, and evaluate each on held-out prompts (gold reward, KL to
//! the SFT policy, wall time). Writes `summary.json`, per-step metrics as `metrics.jsonl` and
//! PNG curves of reward, gold reward and KL into the output directory.
//!
//! On `arith` the RL stages optimise the task's gold reward (a verifiable reward). On `style` they
//! optimise reward models learned from noisy preference labels, and the demo is the reward
//! over-optimisation experiment of [`crate::overopt`]: PPO with a weak and a strong KL penalty and
//! with a GRM-regularised reward model (`summary.json`'s `ppo` is the strong-KL run), plus GRPO.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use models::transformer::Model;
use models::weights::StorageDtype;
use runtime::Backend;
use serde::Serialize;

use crate::eval::{evaluate, EvalOptions};
use crate::grpo::{GrpoConfig, GrpoTrainer};
use crate::model::{init_model, ModelShape};
use crate::overopt::{run_experiment, OveroptConfig, OveroptReport, ProxyAccuracy, RunMetrics, Sinks};
use crate::plot::{line_chart, Series};
use crate::ppo::{PpoConfig, PpoTrainer};
use crate::rollout::policy::{copy_model, token_logprobs};
use crate::rollout::reward::GoldReward;
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
#[derive(Debug, Clone, Copy)]
struct Budget {
    sft_steps: usize,
    rl_steps: usize,
}

impl Budget {
    fn for_run(quick: bool) -> Self {
        if quick {
            Budget { sft_steps: 500, rl_steps: 8 }
        } else {
            Budget { sft_steps: 1500, rl_steps: 40 }
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

/// `summary.json`.
#[derive(Debug, Clone, Serialize)]
pub struct DemoSummary {
    pub task: String,
    pub seed: u64,
    pub quick: bool,
    /// What the RL stages optimised.
    pub reward_source: &'static str,
    pub sft: PolicyResult,
    pub ppo: PolicyResult,
    pub grpo: PolicyResult,
    /// Held-out pair accuracy of the reward model the RL stages optimised (`style`: the plain
    /// proxy).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reward_model: Option<ProxyAccuracy>,
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
    let budget = Budget::for_run(options.quick);
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
            sft: sft_result,
            ppo: outcome.ppo,
            grpo: outcome.grpo,
            reward_model: Some(outcome.report.reward_model),
            overoptimisation: Some(outcome.report),
            seconds: start.elapsed().as_secs_f64(),
        };
        write_summary(&options.out, &summary)?;
        return Ok(summary);
    }

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
        sft: sft_result,
        ppo: ppo_result,
        grpo: grpo_result,
        reward_model: None,
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
