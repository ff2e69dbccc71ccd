//! PPO for language models (Ziegler et al. 2019, Stiennon et al. 2020, Ouyang et al. 2022).
//!
//! One [`PpoTrainer::step`]:
//! 1. **Rollout** ([`collect`]): `n` responses to each of `P` prompts, sampled from the policy;
//!    scored by a [`RewardSource`] once per response, with a penalty for a missing end marker;
//!    token log-probs of the policy and of the frozen reference, and the critic's values, all by
//!    full forwards over fixed minibatches.
//! 2. **Rewards**: the per-token KL penalty `−β·kl_t` (k1 or k3, β fixed or adaptive), plus the
//!    score at the response's last token — normalised by running moments of all scores so far and
//!    clipped.
//! 3. **Advantages**: GAE(γ, λ) over the response tokens, whitened over the rollout; the
//!    λ-returns are the critic's targets.
//! 4. **Update** ([`update`]): `epochs` passes over the minibatches; each updates the policy with
//!    the clipped surrogate (optional entropy bonus) and the critic with the clipped value loss,
//!    each with its own AdamW and gradient clipping. The critic alone trains during the first
//!    `critic_warmup_steps` steps.
//! 5. β moves towards its target KL; the reference is optionally replaced by the policy every
//!    `reference_update_every` steps.
//!
//! The critic is a separate model: a copy of the policy's trunk with a zero-initialised value
//! head, so policy and value gradients never compete for one trunk.

mod collect;
pub mod kl_control;
mod update;

use std::time::Instant;

use models::transformer::Model;
use runtime::ops::adamw::AdamW;
use runtime::ops::kl::KlEstimator;
use runtime::ops::ppo_loss::PpoLossConfig;
use runtime::Backend;

pub use self::collect::PpoRollout;
use self::kl_control::{KlControl, KlController, KlPenalty};
pub use self::update::UpdateStats;
use crate::optim::Optimizer;
use crate::rng::Rng;
use crate::rollout::policy::{copy_model, critic_from_policy};
use crate::rollout::reward::{RewardSource, RunningMoments};
use crate::rollout::PromptSampler;
use crate::tasks::Task;
use crate::tokenizer::TaskTokenizer;
use crate::{Error, Result};

/// Settings of PPO.
#[derive(Debug, Clone, PartialEq)]
pub struct PpoConfig {
    pub prompts_per_step: usize,
    /// Responses sampled per prompt.
    pub samples_per_prompt: usize,
    /// Sampling temperature of the rollout (log-probs are taken at the same temperature).
    pub temperature: f32,
    /// Passes over the rollout per step.
    pub epochs: usize,
    /// Responses per minibatch (one optimizer step each).
    pub minibatch_size: usize,
    /// Clip range, dual clip, loss reduction.
    pub policy_loss: PpoLossConfig,
    /// `ε` of the clipped value loss (`None`: plain squared error).
    pub value_clip: Option<f32>,
    pub gamma: f32,
    pub lambda: f32,
    pub kl: KlPenalty,
    /// Normalise scores by the running mean and std of all scores so far.
    pub normalize_reward: bool,
    /// Clip (normalised) scores to `±reward_clip`.
    pub reward_clip: Option<f32>,
    /// Subtracted from the score of a response that ran out of room before its end marker.
    pub missing_eos_penalty: f32,
    pub whiten_advantages: bool,
    /// Weight of the entropy bonus (0: none).
    pub entropy_coef: f32,
    pub policy_adamw: AdamW,
    pub critic_adamw: AdamW,
    pub max_grad_norm: f32,
    /// Steps at the start in which only the critic trains.
    pub critic_warmup_steps: usize,
    /// Replace the reference by the current policy every this many steps.
    pub reference_update_every: Option<usize>,
    pub seed: u64,
}

impl Default for PpoConfig {
    fn default() -> Self {
        let adamw = |lr| AdamW { lr, beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: 0.0 };
        PpoConfig {
            prompts_per_step: 32,
            samples_per_prompt: 4,
            temperature: 1.0,
            epochs: 2,
            minibatch_size: 64,
            policy_loss: PpoLossConfig::new(0.2),
            value_clip: Some(0.2),
            gamma: 1.0,
            lambda: 0.95,
            kl: KlPenalty { estimator: KlEstimator::K1, control: KlControl::Fixed { beta: 0.05 } },
            normalize_reward: true,
            reward_clip: Some(5.0),
            missing_eos_penalty: 1.0,
            whiten_advantages: true,
            entropy_coef: 0.0,
            policy_adamw: adamw(3e-4),
            critic_adamw: adamw(1e-3),
            max_grad_norm: 1.0,
            critic_warmup_steps: 0,
            reference_update_every: None,
            seed: 0,
        }
    }
}

impl PpoConfig {
    pub fn validate(&self) -> Result<()> {
        let sizes = [
            ("prompts_per_step", self.prompts_per_step),
            ("samples_per_prompt", self.samples_per_prompt),
            ("epochs", self.epochs),
            ("minibatch_size", self.minibatch_size),
        ];
        if let Some((name, _)) = sizes.iter().find(|(_, v)| *v == 0) {
            return Err(Error::Config(format!("PPO: {name} must be positive")));
        }
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return Err(Error::Config(format!("PPO: temperature must be positive, got {}", self.temperature)));
        }
        if self.reference_update_every == Some(0) {
            return Err(Error::Config("PPO: reference_update_every must be positive".into()));
        }
        if self.reward_clip.is_some_and(|c| !(c.is_finite() && c > 0.0)) {
            return Err(Error::Config(format!("PPO: reward_clip must be positive, got {:?}", self.reward_clip)));
        }
        if !(self.entropy_coef.is_finite() && self.missing_eos_penalty.is_finite()) {
            return Err(Error::Config("PPO: entropy_coef and missing_eos_penalty must be finite".into()));
        }
        KlController::new(self.kl.control)?;
        Ok(())
    }
}

/// What one PPO step measured. Means are over responses unless noted.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PpoMetrics {
    pub step: usize,
    /// Mean score of the reward source (before shaping).
    pub reward: f32,
    /// Mean gold reward (what evaluation counts).
    pub gold: f32,
    /// Fraction of responses that ended with the end marker.
    pub finished: f32,
    /// Mean response length in tokens, end marker included.
    pub response_tokens: f32,
    /// Mean over responses of the summed per-token KL estimate to the reference.
    pub kl: f32,
    /// β used for this rollout.
    pub beta: f32,
    /// Token mean of the rollout policy's entropy.
    pub entropy: f32,
    /// `1 − Var(R − V) / Var(R)` over response tokens, with the rollout's values.
    pub explained_variance: f32,
    pub update: UpdateStats,
    pub seconds: f32,
}

/// The models and state of a PPO run.
pub struct PpoTrainer<B: Backend> {
    pub policy: Model<B>,
    /// The frozen model the KL penalty measures against.
    pub reference: Model<B>,
    pub critic: Model<B>,
    pub config: PpoConfig,
    policy_opt: Optimizer<B>,
    critic_opt: Optimizer<B>,
    kl: KlController,
    moments: RunningMoments,
    prompts: PromptSampler,
    minibatch_rng: Rng,
    steps: usize,
}

impl<B: Backend> PpoTrainer<B> {
    /// Starts from `policy` (the SFT model): the reference is a frozen copy of it and the critic's
    /// trunk another copy.
    pub fn new(backend: &B, policy: Model<B>, task: &dyn Task, config: PpoConfig) -> Result<Self> {
        config.validate()?;
        let reference = copy_model(backend, &policy)?;
        let critic = critic_from_policy(backend, &policy)?;
        let policy_opt = Optimizer::new(backend, &policy.params, config.policy_adamw, config.max_grad_norm)?;
        let critic_opt = Optimizer::new(backend, &critic.params, config.critic_adamw, config.max_grad_norm)?;
        Ok(PpoTrainer {
            kl: KlController::new(config.kl.control)?,
            moments: RunningMoments::default(),
            prompts: PromptSampler::new(task.train_prompts(), config.seed)?,
            minibatch_rng: Rng::derived(config.seed, 8),
            steps: 0,
            policy,
            reference,
            critic,
            config,
            policy_opt,
            critic_opt,
        })
    }

    /// Steps taken.
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// The current KL coefficient.
    pub fn beta(&self) -> f32 {
        self.kl.beta()
    }

    /// One rollout and update.
    pub fn step(
        &mut self,
        backend: &B,
        tokenizer: &TaskTokenizer,
        task: &dyn Task,
        reward: &mut dyn RewardSource<B>,
    ) -> Result<PpoMetrics> {
        let start = Instant::now();
        let rollout = self.collect(backend, tokenizer, task, reward)?;
        let update = self.update(backend, &rollout, tokenizer.pad_id())?;
        let summary = rollout.summary();
        let metrics = PpoMetrics { step: self.steps, beta: self.kl.beta(), update, ..summary };
        self.kl.update(summary.kl, rollout.samples.len());
        self.steps += 1;
        if self.config.reference_update_every.is_some_and(|every| self.steps % every == 0) {
            self.reference = copy_model(backend, &self.policy)?;
        }
        Ok(PpoMetrics { seconds: start.elapsed().as_secs_f32(), ..metrics })
    }
}
