//! Where rollout rewards come from, and how they are shaped before the policy sees them.
//!
//! [`RewardSource`] scores sampled responses: [`GoldReward`] is the task's own verifier (RLVR:
//! "the gold reward for verifiable tasks"); a reward model trained on preferences is one too
//! ([`super::reward_model::ModelReward`]).
//! [`RunningMoments`] keeps the running mean and variance of every score seen so far, for PPO's
//! reward normalisation.

use runtime::Backend;

use super::Sample;
use crate::eval::score;
use crate::tasks::Task;
use crate::Result;

/// Scores sampled responses, one number per sample.
pub trait RewardSource<B: Backend> {
    /// A short name for reports.
    fn name(&self) -> &str;

    fn score(&mut self, backend: &B, samples: &[Sample]) -> Result<Vec<f32>>;
}

/// The task's gold reward; an unfinished response scores 0, as in evaluation.
pub struct GoldReward<'a> {
    pub task: &'a dyn Task,
}

/// The gold reward of each sample (what evaluation counts), whatever the training reward is.
pub fn gold_rewards(task: &dyn Task, samples: &[Sample]) -> Vec<f32> {
    samples.iter().map(|s| score(task, &s.prompt, s.response.clone(), s.response_ids.len()).gold).collect()
}

impl<B: Backend> RewardSource<B> for GoldReward<'_> {
    fn name(&self) -> &str {
        "gold"
    }

    fn score(&mut self, _backend: &B, samples: &[Sample]) -> Result<Vec<f32>> {
        Ok(gold_rewards(self.task, samples))
    }
}

/// Running mean and population variance of a stream of numbers, merged batch by batch (Chan et
/// al.'s parallel update), in f64.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RunningMoments {
    count: f64,
    mean: f64,
    /// Sum of squared deviations from the mean.
    m2: f64,
}

impl RunningMoments {
    /// Adds a batch.
    pub fn update(&mut self, xs: &[f32]) {
        if xs.is_empty() {
            return;
        }
        let n = xs.len() as f64;
        let batch_mean = xs.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
        let batch_m2: f64 = xs.iter().map(|&x| (f64::from(x) - batch_mean).powi(2)).sum();
        let total = self.count + n;
        let delta = batch_mean - self.mean;
        self.mean += delta * n / total;
        self.m2 += batch_m2 + delta * delta * self.count * n / total;
        self.count = total;
    }

    pub fn count(&self) -> usize {
        self.count as usize
    }

    pub fn mean(&self) -> f64 {
        self.mean
    }

    /// Population standard deviation (0 before any data).
    pub fn std(&self) -> f64 {
        if self.count == 0.0 {
            0.0
        } else {
            (self.m2 / self.count).sqrt()
        }
    }

    /// `(x − mean) / std`, with the std floored at `min_std` so that a constant stream does not
    /// divide by zero.
    pub fn normalize(&self, x: f32, min_std: f64) -> f32 {
        ((f64::from(x) - self.mean) / self.std().max(min_std)) as f32
    }
}
