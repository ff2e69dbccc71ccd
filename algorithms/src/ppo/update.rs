//! PPO's update: epochs over the rollout's fixed minibatches, one policy step (clipped surrogate,
//! entropy bonus) and one critic step (clipped value loss) per minibatch.

use runtime::ops::ppo_loss::LossReduction;
use runtime::ops::value_loss::ValueLossConfig;
use runtime::{Backend, DType};

use super::{PpoRollout, PpoTrainer};
use crate::rollout::policy::{PolicyForward, ValueForward};
use crate::rollout::{bit_mismatches, Minibatch};
use crate::Result;

/// Means over the optimizer steps of one PPO update.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct UpdateStats {
    pub policy_steps: usize,
    pub policy_loss: f32,
    pub clip_fraction: f32,
    pub approx_kl: f32,
    pub policy_grad_norm: f32,
    pub value_loss: f32,
    pub value_clip_fraction: f32,
    pub critic_grad_norm: f32,
    /// Response tokens of the first minibatch whose training log-prob, before the first update,
    /// differs in any bit from the rollout's: 0 when the importance ratio starts at exactly 1.
    pub initial_logprob_mismatches: usize,
}

/// Sums of per-step statistics, turned into means at the end.
#[derive(Default)]
struct Sums {
    policy: [f64; 4],
    policy_steps: usize,
    critic: [f64; 3],
    critic_steps: usize,
}

impl<B: Backend> PpoTrainer<B> {
    /// Runs the epochs over `rollout`'s minibatches.
    pub fn update(&mut self, backend: &B, rollout: &PpoRollout, pad_id: u32) -> Result<UpdateStats> {
        let train_policy = self.steps >= self.config.critic_warmup_steps;
        let mut sums = Sums::default();
        let mut initial_logprob_mismatches = 0;
        for epoch in 0..self.config.epochs {
            let mut order: Vec<usize> = (0..rollout.minibatches.len()).collect();
            self.minibatch_rng.shuffle(&mut order);
            for (k, &i) in order.iter().enumerate() {
                let mb = &rollout.minibatches[i];
                if train_policy {
                    let mismatches = self.policy_step(backend, rollout, mb, pad_id, &mut sums)?;
                    if epoch == 0 && k == 0 {
                        initial_logprob_mismatches = mismatches;
                    }
                }
                self.critic_step(backend, rollout, mb, pad_id, &mut sums)?;
            }
        }
        let mean = |sum: f64, n: usize| if n == 0 { 0.0 } else { (sum / n as f64) as f32 };
        let (p, c) = (sums.policy_steps, sums.critic_steps);
        Ok(UpdateStats {
            policy_steps: p,
            policy_loss: mean(sums.policy[0], p),
            clip_fraction: mean(sums.policy[1], p),
            approx_kl: mean(sums.policy[2], p),
            policy_grad_norm: mean(sums.policy[3], p),
            value_loss: mean(sums.critic[0], c),
            value_clip_fraction: mean(sums.critic[1], c),
            critic_grad_norm: mean(sums.critic[2], c),
            initial_logprob_mismatches,
        })
    }

    /// One policy step on `mb`; returns how many of its response tokens had a log-prob, before
    /// the step, other (in bits) than the rollout's.
    fn policy_step(
        &mut self,
        backend: &B,
        rollout: &PpoRollout,
        mb: &Minibatch,
        pad_id: u32,
        sums: &mut Sums,
    ) -> Result<usize> {
        let cfg = &self.config;
        let dims = mb.dims();
        let upload = |full: &[f32]| backend.upload_f32(&dims, &mb.gather(full), DType::F32);
        let pass = PolicyForward::run(backend, &self.policy, mb, pad_id, 1.0 / cfg.temperature)?;
        let old = mb.gather(&rollout.old_logprob);
        let now = backend.download_f32(pass.logprob())?;
        let mismatches = bit_mismatches(&now, &old, &mb.mask);
        let mask = backend.upload_u32(&dims, &mb.mask)?;
        let out = backend.ppo_loss(
            pass.logprob(),
            &upload(&rollout.old_logprob)?,
            &upload(&rollout.advantages)?,
            &mask,
            &cfg.policy_loss,
        )?;
        // Entropy bonus −c·H̄, H̄ the token mean over the minibatch's response tokens.
        let dentropy = if cfg.entropy_coef != 0.0 {
            let count = mb.mask.iter().filter(|&&m| m == 1).count().max(1) as f32;
            let d: Vec<f32> = mb.mask.iter().map(|&m| -cfg.entropy_coef * m as f32 / count).collect();
            Some(backend.upload_f32(&[d.len()], &d, DType::F32)?)
        } else {
            None
        };
        let grads = pass.backward(backend, &self.policy, out.dlogprob, dentropy.as_ref())?;
        let lr = cfg.policy_adamw.lr;
        let step = self.policy_opt.step(backend, &mut self.policy.params, grads, lr)?;
        let stats = out.stats;
        for (sum, x) in sums.policy.iter_mut().zip([out.loss, stats.clip_fraction, stats.approx_kl, step.grad_norm]) {
            *sum += f64::from(x);
        }
        sums.policy_steps += 1;
        Ok(mismatches)
    }

    fn critic_step(
        &mut self,
        backend: &B,
        rollout: &PpoRollout,
        mb: &Minibatch,
        pad_id: u32,
        sums: &mut Sums,
    ) -> Result<()> {
        let dims = mb.dims();
        let upload = |full: &[f32]| backend.upload_f32(&dims, &mb.gather(full), DType::F32);
        let pass = ValueForward::run(backend, &self.critic, mb, pad_id)?;
        let mask = backend.upload_u32(&dims, &mb.mask)?;
        let config = ValueLossConfig { clip: self.config.value_clip, reduction: LossReduction::TokenMean };
        let out =
            backend.value_loss(pass.values(), &upload(&rollout.values)?, &upload(&rollout.returns)?, &mask, &config)?;
        let grads = pass.backward(backend, &self.critic, &out.dvalues)?;
        let lr = self.config.critic_adamw.lr;
        let step = self.critic_opt.step(backend, &mut self.critic.params, grads, lr)?;
        for (sum, x) in sums.critic.iter_mut().zip([out.loss, out.clip_fraction, step.grad_norm]) {
            *sum += f64::from(x);
        }
        sums.critic_steps += 1;
        Ok(())
    }
}
