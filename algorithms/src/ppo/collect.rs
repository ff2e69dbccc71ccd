//! PPO's rollout: samples, scores, log-probs, values, shaped per-token rewards, GAE.

use runtime::{Backend, DType};

use super::{PpoMetrics, PpoTrainer};
use crate::rng::Rng;
use crate::rollout::policy::{token_logprobs, ValueForward};
use crate::rollout::reward::{gold_rewards, RewardSource};
use crate::rollout::{masked_mean_var, sample_responses, Minibatch, Sample, TokenLayout};
use crate::tasks::Task;
use crate::tokenizer::TaskTokenizer;
use crate::Result;

/// Floor of the running reward std, so that a batch of equal scores does not blow up.
const MIN_REWARD_STD: f64 = 1e-4;
const WHITEN_EPS: f32 = 1e-8;

/// One rollout. Per-token arrays are `[S·T]` in the layout's row order; entries off the mask are
/// 0 (or junk the mask hides).
pub struct PpoRollout {
    pub samples: Vec<Sample>,
    pub layout: TokenLayout,
    /// The fixed minibatches of this rollout.
    pub minibatches: Vec<Minibatch>,
    /// The reward source's scores, one per sample.
    pub scores: Vec<f32>,
    pub gold: Vec<f32>,
    /// Token log-probs of the policy that sampled the rollout.
    pub old_logprob: Vec<f32>,
    pub ref_logprob: Vec<f32>,
    pub entropy: Vec<f32>,
    /// Per-token KL estimate to the reference.
    pub kl: Vec<f32>,
    /// Shaped per-token rewards: `−β·kl`, plus the processed score at the last token.
    pub rewards: Vec<f32>,
    /// The critic's values at rollout time.
    pub values: Vec<f32>,
    /// GAE advantages (whitened when configured).
    pub advantages: Vec<f32>,
    pub returns: Vec<f32>,
}

impl PpoRollout {
    /// The rollout's share of a step's metrics.
    pub fn summary(&self) -> PpoMetrics {
        let n = self.samples.len().max(1) as f32;
        let mean = |x: &[f32]| x.iter().sum::<f32>() / n;
        let t = self.layout.len;
        let kl_per_response: Vec<f32> = self
            .layout
            .mask
            .chunks(t.max(1))
            .zip(self.kl.chunks(t.max(1)))
            .map(|(m, k)| m.iter().zip(k).filter(|(&m, _)| m == 1).map(|(_, &k)| k).sum())
            .collect();
        let mask = &self.layout.mask;
        let residual: Vec<f32> = self.returns.iter().zip(&self.values).map(|(r, v)| r - v).collect();
        let (_, return_var) = masked_mean_var(&self.returns, mask);
        let (_, residual_var) = masked_mean_var(&residual, mask);
        let explained_variance = if return_var > 0.0 { (1.0 - residual_var / return_var) as f32 } else { 0.0 };
        PpoMetrics {
            reward: mean(&self.scores),
            gold: mean(&self.gold),
            finished: self.samples.iter().filter(|s| s.response.finished).count() as f32 / n,
            response_tokens: self.samples.iter().map(|s| s.response_ids.len() as f32).sum::<f32>() / n,
            kl: mean(&kl_per_response),
            entropy: masked_mean_var(&self.entropy, mask).0 as f32,
            explained_variance,
            ..PpoMetrics::default()
        }
    }
}

impl<B: Backend> PpoTrainer<B> {
    /// Samples a rollout from the current policy and computes everything the update needs.
    pub fn collect(
        &mut self,
        backend: &B,
        tokenizer: &TaskTokenizer,
        task: &dyn Task,
        reward: &mut dyn RewardSource<B>,
    ) -> Result<PpoRollout> {
        let cfg = &self.config;
        let prompts = self.prompts.next(cfg.prompts_per_step);
        let seed = Rng::derived(cfg.seed, 100 + self.steps as u64).next_u64();
        let samples = sample_responses(
            backend,
            &self.policy,
            tokenizer,
            task,
            &prompts,
            cfg.samples_per_prompt,
            cfg.temperature,
            seed,
        )?;
        let scores = reward.score(backend, &samples)?;
        let gold = gold_rewards(task, &samples);
        let pad = tokenizer.pad_id();
        let layout = TokenLayout::new(&samples, pad)?;
        let minibatches = layout.minibatches(cfg.minibatch_size, &mut self.minibatch_rng);

        let size = layout.rows() * layout.len;
        let (mut old_logprob, mut ref_logprob, mut entropy, mut values) =
            (vec![0f32; size], vec![0f32; size], vec![0f32; size], vec![0f32; size]);
        let inv_temperature = 1.0 / cfg.temperature;
        for mb in &minibatches {
            let (lp, ent) = token_logprobs(backend, &self.policy, mb, pad, inv_temperature)?;
            mb.scatter(&lp, &mut old_logprob);
            mb.scatter(&ent, &mut entropy);
            mb.scatter(&token_logprobs(backend, &self.reference, mb, pad, inv_temperature)?.0, &mut ref_logprob);
            let v = backend.download_f32(ValueForward::run(backend, &self.critic, mb, pad)?.values())?;
            mb.scatter(&v, &mut values);
        }

        let dims = [layout.rows(), layout.len];
        let upload = |x: &[f32]| backend.upload_f32(&dims, x, DType::F32);
        let mask_t = backend.upload_u32(&dims, &layout.mask)?;
        let kl = backend.download_f32(&backend.kl_fwd(
            &upload(&old_logprob)?,
            &upload(&ref_logprob)?,
            cfg.kl.estimator,
        )?)?;
        let beta = self.kl.beta();
        let mut rewards: Vec<f32> =
            kl.iter().zip(&layout.mask).map(|(&k, &m)| if m == 1 { -beta * k } else { 0.0 }).collect();
        let shaped: Vec<f32> = samples
            .iter()
            .zip(&scores)
            .map(|(s, &score)| if s.response.finished { score } else { score - cfg.missing_eos_penalty })
            .collect();
        if cfg.normalize_reward {
            self.moments.update(&shaped);
        }
        for (row, &score) in shaped.iter().enumerate() {
            let mut score = if cfg.normalize_reward { self.moments.normalize(score, MIN_REWARD_STD) } else { score };
            if let Some(c) = cfg.reward_clip {
                score = score.clamp(-c, c);
            }
            rewards[row * layout.len + layout.last[row]] += score;
        }

        let gae = backend.gae(&upload(&rewards)?, &upload(&values)?, &mask_t, cfg.gamma, cfg.lambda)?;
        let advantages = if cfg.whiten_advantages {
            backend.masked_whiten(&gae.advantages, &mask_t, false, WHITEN_EPS)?.y
        } else {
            gae.advantages
        };
        Ok(PpoRollout {
            advantages: backend.download_f32(&advantages)?,
            returns: backend.download_f32(&gae.returns)?,
            samples,
            layout,
            minibatches,
            scores,
            gold,
            old_logprob,
            ref_logprob,
            entropy,
            kl,
            rewards,
            values,
        })
    }
}
