//! Best-of-N sampling: draw `N` responses per prompt from the policy, keep the one a reward
//! source scores highest, and judge the kept responses with the gold reward. With a learned
//! reward model this measures how much of the model's ranking survives when it is used to pick,
//! with no training of the policy at all.

use models::transformer::Model;
use runtime::Backend;

use crate::rollout::reward::{gold_rewards, RewardSource};
use crate::rollout::{sample_responses, Sample};
use crate::tasks::Task;
use crate::tokenizer::TaskTokenizer;
use crate::{Error, Result};

/// Prompts sampled together (each `N` times).
const PROMPTS_PER_BATCH: usize = 64;

/// What [`best_of_n`] measured over the prompts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BestOfNReport {
    pub n: usize,
    pub prompts: usize,
    /// Mean gold reward of the picked responses.
    pub gold: f64,
    /// Mean gold reward of all samples (what one sample scores on average).
    pub sample_gold: f64,
    /// Mean over prompts of the best gold reward among the `N` samples (the pick of a perfect
    /// reward model).
    pub oracle_gold: f64,
}

/// For each group of `n` consecutive scores, the index (in `scores`) of its highest score; the
/// first one wins a tie. `scores.len()` must be a multiple of `n`.
pub fn pick_best(scores: &[f32], n: usize) -> Result<Vec<usize>> {
    if n == 0 || scores.len() % n != 0 {
        return Err(Error::Config(format!("best-of-{n} needs a multiple of {n} scores, got {}", scores.len())));
    }
    Ok(scores
        .chunks(n)
        .enumerate()
        .map(|(g, group)| {
            let best = group.iter().enumerate().fold(0, |best, (i, &s)| if s > group[best] { i } else { best });
            g * n + best
        })
        .collect())
}

/// Best-of-`n` on `prompts`: samples at `temperature` from `policy` (draws from `seed`), picks
/// by `reward`, judges by the task's gold reward.
#[allow(clippy::too_many_arguments)]
pub fn best_of_n<B: Backend>(
    backend: &B,
    policy: &Model<B>,
    tokenizer: &TaskTokenizer,
    task: &dyn Task,
    prompts: &[String],
    n: usize,
    temperature: f32,
    seed: u64,
    reward: &mut dyn RewardSource<B>,
) -> Result<BestOfNReport> {
    let (mut picked_gold, mut sample_gold, mut oracle_gold) = (0.0, 0.0, 0.0);
    for (chunk_index, chunk) in prompts.chunks(PROMPTS_PER_BATCH).enumerate() {
        // Draws depend on (seed, row, step): a seed per chunk keeps chunks from sharing draws.
        let chunk_seed = seed ^ (chunk_index as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let samples: Vec<Sample> = sample_responses(backend, policy, tokenizer, task, chunk, n, temperature, chunk_seed)?;
        let scores = reward.score(backend, &samples)?;
        let gold = gold_rewards(task, &samples);
        for (g, best) in pick_best(&scores, n)?.into_iter().enumerate() {
            let group = &gold[g * n..(g + 1) * n];
            picked_gold += f64::from(gold[best]);
            sample_gold += group.iter().map(|&x| f64::from(x)).sum::<f64>() / n as f64;
            oracle_gold += f64::from(group.iter().copied().fold(f32::NEG_INFINITY, f32::max));
        }
    }
    let count = prompts.len().max(1) as f64;
    Ok(BestOfNReport {
        n,
        prompts: prompts.len(),
        gold: picked_gold / count,
        sample_gold: sample_gold / count,
        oracle_gold: oracle_gold / count,
    })
}
