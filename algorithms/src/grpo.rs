//! GRPO (Shao et al. 2024, DeepSeekMath): no critic; the baseline of a response is the mean score
//! of the `G` responses sampled for the same prompt.
//!
//! One [`GrpoTrainer::step`]: sample `G` responses to each of `P` prompts; score them (minus a
//! penalty for a missing end marker); the advantage of response `i` of a group is
//! `A_i = (r_i − mean) / (std + eps)`, or `r_i − mean` with `scale_by_std = false` (Dr. GRPO,
//! which drops the std because it up-weights groups that are nearly all right or all wrong);
//! negative advantages are multiplied by `negative_scale = α <= 1` (the asymmetric shrinking of
//! "Does RLHF scale?", which steadies critic-free training). Every response token gets its
//! response's advantage. Then `epochs` passes over fixed minibatches minimise
//! [`runtime::Backend::grpo_loss`]: the clipped surrogate plus `β·k3` KL to the frozen
//! reference, token-level or sequence-level. With `β = 0` no reference model is kept.
//!
//! The group std is the population std; a group whose scores are all equal has zero advantages
//! and teaches nothing (reported as `flat_groups`).

use std::time::Instant;

use models::transformer::Model;
use runtime::ops::adamw::AdamW;
use runtime::ops::grpo_loss::GrpoLossConfig;
use runtime::ops::ppo_loss::{LossReduction, PpoLossConfig};
use runtime::{Backend, DType};

use crate::optim::Optimizer;
use crate::rng::Rng;
use crate::rollout::policy::{copy_model, token_logprobs, PolicyForward};
use crate::rollout::reward::{gold_rewards, RewardSource};
use crate::rollout::{
    bit_mismatches, masked_mean_var, sample_responses, Minibatch, PromptSampler, Sample, TokenLayout,
};
use crate::tasks::Task;
use crate::tokenizer::TaskTokenizer;
use crate::{Error, Result};

/// Added to the group std before dividing.
const GROUP_STD_EPS: f32 = 1e-4;

/// Settings of GRPO.
#[derive(Debug, Clone, PartialEq)]
pub struct GrpoConfig {
    pub prompts_per_step: usize,
    /// `G`, responses per prompt.
    pub group_size: usize,
    pub temperature: f32,
    /// Passes over each rollout (1 with one minibatch is fully on-policy).
    pub epochs: usize,
    pub minibatch_size: usize,
    /// Clip range, reduction (token- or sequence-level) and β.
    pub loss: GrpoLossConfig,
    /// Divide by the group's std (GRPO) or only subtract its mean (Dr. GRPO).
    pub scale_by_std: bool,
    /// `α`: negative advantages are multiplied by it.
    pub negative_scale: f32,
    pub missing_eos_penalty: f32,
    pub adamw: AdamW,
    pub max_grad_norm: f32,
    /// Replace the reference by the current policy every this many steps.
    pub reference_update_every: Option<usize>,
    pub seed: u64,
}

impl Default for GrpoConfig {
    fn default() -> Self {
        let surrogate = PpoLossConfig { reduction: LossReduction::TokenMean, ..PpoLossConfig::new(0.2) };
        GrpoConfig {
            prompts_per_step: 32,
            group_size: 8,
            temperature: 1.0,
            epochs: 1,
            minibatch_size: 64,
            loss: GrpoLossConfig { surrogate, beta: 0.04 },
            scale_by_std: true,
            negative_scale: 1.0,
            missing_eos_penalty: 1.0,
            adamw: AdamW { lr: 3e-4, beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: 0.0 },
            max_grad_norm: 1.0,
            reference_update_every: None,
            seed: 0,
        }
    }
}

impl GrpoConfig {
    pub fn validate(&self) -> Result<()> {
        let sizes = [
            ("prompts_per_step", self.prompts_per_step),
            ("group_size", self.group_size),
            ("epochs", self.epochs),
            ("minibatch_size", self.minibatch_size),
        ];
        if let Some((name, _)) = sizes.iter().find(|(_, v)| *v == 0) {
            return Err(Error::Config(format!("GRPO: {name} must be positive")));
        }
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return Err(Error::Config(format!("GRPO: temperature must be positive, got {}", self.temperature)));
        }
        if !(self.negative_scale.is_finite() && self.negative_scale >= 0.0) {
            return Err(Error::Config(format!("GRPO: negative_scale must be >= 0, got {}", self.negative_scale)));
        }
        if !(self.loss.beta.is_finite() && self.loss.beta >= 0.0 && self.missing_eos_penalty.is_finite()) {
            return Err(Error::Config("GRPO: beta must be >= 0 and missing_eos_penalty finite".into()));
        }
        if self.reference_update_every == Some(0) {
            return Err(Error::Config("GRPO: reference_update_every must be positive".into()));
        }
        Ok(())
    }
}

/// Group-relative advantages of `scores` in consecutive groups of `group_size`: minus the group
/// mean, divided by the group's population std plus `GROUP_STD_EPS` when `scale_by_std`, negative
/// ones times `negative_scale`.
pub fn group_advantages(scores: &[f32], group_size: usize, scale_by_std: bool, negative_scale: f32) -> Vec<f32> {
    scores
        .chunks(group_size.max(1))
        .flat_map(|group| {
            let n = group.len() as f64;
            let mean = group.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
            let std = (group.iter().map(|&x| (f64::from(x) - mean).powi(2)).sum::<f64>() / n).sqrt();
            let scale = if scale_by_std { 1.0 / (std + f64::from(GROUP_STD_EPS)) } else { 1.0 };
            group.iter().map(move |&x| {
                let a = ((f64::from(x) - mean) * scale) as f32;
                if a < 0.0 {
                    a * negative_scale
                } else {
                    a
                }
            })
        })
        .collect()
}

/// What one GRPO step measured. Means are over responses unless noted.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct GrpoMetrics {
    pub step: usize,
    pub reward: f32,
    pub gold: f32,
    pub finished: f32,
    pub response_tokens: f32,
    /// Fraction of groups whose scores were all equal (zero advantages).
    pub flat_groups: f32,
    /// Token mean of the rollout policy's entropy.
    pub entropy: f32,
    /// Means over the optimizer steps:
    pub loss: f32,
    /// Token mean of k3 to the reference (0 without one).
    pub kl: f32,
    pub clip_fraction: f32,
    pub approx_kl: f32,
    pub grad_norm: f32,
    pub optimizer_steps: usize,
    /// Response tokens of the first minibatch whose training log-prob, before the first update,
    /// differs in any bit from the rollout's.
    pub initial_logprob_mismatches: usize,
    pub seconds: f32,
}

/// The models and state of a GRPO run.
pub struct GrpoTrainer<B: Backend> {
    pub policy: Model<B>,
    /// The frozen model of the KL term; `None` when `β = 0`.
    pub reference: Option<Model<B>>,
    pub config: GrpoConfig,
    optimizer: Optimizer<B>,
    prompts: PromptSampler,
    minibatch_rng: Rng,
    steps: usize,
}

/// A rollout's per-token arrays `[S·T]`.
struct GroupRollout {
    samples: Vec<Sample>,
    layout: TokenLayout,
    minibatches: Vec<Minibatch>,
    old_logprob: Vec<f32>,
    ref_logprob: Option<Vec<f32>>,
    advantages: Vec<f32>,
    entropy: Vec<f32>,
}

impl<B: Backend> GrpoTrainer<B> {
    pub fn new(backend: &B, policy: Model<B>, task: &dyn Task, config: GrpoConfig) -> Result<Self> {
        config.validate()?;
        let reference = if config.loss.beta > 0.0 { Some(copy_model(backend, &policy)?) } else { None };
        Ok(GrpoTrainer {
            optimizer: Optimizer::new(backend, &policy.params, config.adamw, config.max_grad_norm)?,
            prompts: PromptSampler::new(task.train_prompts(), config.seed)?,
            minibatch_rng: Rng::derived(config.seed, 9),
            steps: 0,
            policy,
            reference,
            config,
        })
    }

    pub fn steps(&self) -> usize {
        self.steps
    }

    /// One rollout and update.
    pub fn step(
        &mut self,
        backend: &B,
        tokenizer: &TaskTokenizer,
        task: &dyn Task,
        reward: &mut dyn RewardSource<B>,
    ) -> Result<GrpoMetrics> {
        let start = Instant::now();
        let cfg = self.config.clone();
        let pad = tokenizer.pad_id();
        let prompts = self.prompts.next(cfg.prompts_per_step);
        let seed = Rng::derived(cfg.seed, 200 + self.steps as u64).next_u64();
        let samples =
            sample_responses(backend, &self.policy, tokenizer, task, &prompts, cfg.group_size, cfg.temperature, seed)?;
        let scores = reward.score(backend, &samples)?;
        let gold = gold_rewards(task, &samples);
        let shaped: Vec<f32> = samples
            .iter()
            .zip(&scores)
            .map(|(s, &score)| if s.response.finished { score } else { score - cfg.missing_eos_penalty })
            .collect();
        let sequence_advantages = group_advantages(&shaped, cfg.group_size, cfg.scale_by_std, cfg.negative_scale);
        let rollout = self.collect(backend, samples, &sequence_advantages, pad)?;

        let n = rollout.samples.len() as f32;
        let flat = shaped.chunks(cfg.group_size).filter(|g| g.iter().all(|&x| x == g[0])).count();
        let mut metrics = GrpoMetrics {
            step: self.steps,
            reward: scores.iter().sum::<f32>() / n,
            gold: gold.iter().sum::<f32>() / n,
            finished: rollout.samples.iter().filter(|s| s.response.finished).count() as f32 / n,
            response_tokens: rollout.samples.iter().map(|s| s.response_ids.len() as f32).sum::<f32>() / n,
            flat_groups: flat as f32 / prompts.len() as f32,
            entropy: masked_mean_var(&rollout.entropy, &rollout.layout.mask).0 as f32,
            ..GrpoMetrics::default()
        };
        let mut sums = [0f64; 5];
        for epoch in 0..cfg.epochs {
            let mut order: Vec<usize> = (0..rollout.minibatches.len()).collect();
            self.minibatch_rng.shuffle(&mut order);
            for (k, &i) in order.iter().enumerate() {
                let (stats, mismatches) = self.policy_step(backend, &rollout, &rollout.minibatches[i], pad)?;
                if epoch == 0 && k == 0 {
                    metrics.initial_logprob_mismatches = mismatches;
                }
                sums.iter_mut().zip(stats).for_each(|(s, x)| *s += f64::from(x));
                metrics.optimizer_steps += 1;
            }
        }
        let steps = metrics.optimizer_steps.max(1) as f64;
        let [loss, kl, clip_fraction, approx_kl, grad_norm] = sums.map(|s| (s / steps) as f32);
        self.steps += 1;
        if cfg.reference_update_every.is_some_and(|every| self.steps % every == 0) && self.reference.is_some() {
            self.reference = Some(copy_model(backend, &self.policy)?);
        }
        Ok(GrpoMetrics {
            loss,
            kl,
            clip_fraction,
            approx_kl,
            grad_norm,
            seconds: start.elapsed().as_secs_f32(),
            ..metrics
        })
    }

    /// Lays the samples out, fixes the minibatches, and takes the rollout policy's and the
    /// reference's log-probs.
    fn collect(
        &mut self,
        backend: &B,
        samples: Vec<Sample>,
        sequence_advantages: &[f32],
        pad: u32,
    ) -> Result<GroupRollout> {
        let layout = TokenLayout::new(&samples, pad)?;
        let minibatches = layout.minibatches(self.config.minibatch_size, &mut self.minibatch_rng);
        let size = layout.rows() * layout.len;
        let (mut old_logprob, mut entropy) = (vec![0f32; size], vec![0f32; size]);
        let mut ref_logprob = self.reference.as_ref().map(|_| vec![0f32; size]);
        let inv_temperature = 1.0 / self.config.temperature;
        for mb in &minibatches {
            let (lp, ent) = token_logprobs(backend, &self.policy, mb, pad, inv_temperature)?;
            mb.scatter(&lp, &mut old_logprob);
            mb.scatter(&ent, &mut entropy);
            if let (Some(reference), Some(full)) = (&self.reference, ref_logprob.as_mut()) {
                mb.scatter(&token_logprobs(backend, reference, mb, pad, inv_temperature)?.0, full);
            }
        }
        let advantages =
            (0..size).map(|i| if layout.mask[i] == 1 { sequence_advantages[i / layout.len] } else { 0.0 }).collect();
        Ok(GroupRollout { samples, layout, minibatches, old_logprob, ref_logprob, advantages, entropy })
    }

    /// One optimizer step on `mb`: `[loss, kl, clip fraction, approx kl, grad norm]`, and the
    /// count of tokens whose log-prob differed in bits from the rollout's before the step.
    fn policy_step(
        &mut self,
        backend: &B,
        rollout: &GroupRollout,
        mb: &Minibatch,
        pad: u32,
    ) -> Result<([f32; 5], usize)> {
        let dims = mb.dims();
        let upload = |full: &[f32]| backend.upload_f32(&dims, &mb.gather(full), DType::F32);
        let pass = PolicyForward::run(backend, &self.policy, mb, pad, 1.0 / self.config.temperature)?;
        let mismatches =
            bit_mismatches(&backend.download_f32(pass.logprob())?, &mb.gather(&rollout.old_logprob), &mb.mask);
        let reference = rollout.ref_logprob.as_deref().map(upload).transpose()?;
        let mask = backend.upload_u32(&dims, &mb.mask)?;
        let old = upload(&rollout.old_logprob)?;
        let out = backend.grpo_loss(
            pass.logprob(),
            &old,
            reference.as_ref(),
            &upload(&rollout.advantages)?,
            &mask,
            &self.config.loss,
        )?;
        let grads = pass.backward(backend, &self.policy, out.dlogprob, None)?;
        let step = self.optimizer.step(backend, &mut self.policy.params, grads, self.config.adamw.lr)?;
        Ok(([out.loss, out.kl, out.stats.clip_fraction, out.stats.approx_kl, step.grad_norm], mismatches))
    }
}
