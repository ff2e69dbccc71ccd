//! Rollouts shared by PPO and GRPO: prompts drawn in seeded epochs, `n` sampled responses per
//! prompt, their layout as right-padded token rows `[S, T]`, and minibatches of those rows.
//!
//! Layout: sample `i` is the row `prompt ++ response[..len − 1]`; position `t` predicts token
//! `t + 1`, so the response's tokens are predicted at positions `prompt_len − 1 ..
//! prompt_len + response_len − 1`, which the mask marks (the same convention as SFT). A token's
//! log-prob, the critic's value of the state before it, its KL and reward all sit at that
//! position. Rows are right-padded to the longest row `T` of the rollout; a minibatch keeps only
//! the columns its own longest row needs, so its tensors are `[b, T_mb]`.

pub mod policy;
pub mod reward;
pub mod reward_model;

use models::generate::{generate, GenerateOptions};
use models::sampling::Sampling;
use models::transformer::Model;
use runtime::Backend;

use crate::rng::Rng;
use crate::sft::{batch_targets, SftRow, IGNORE};
use crate::tasks::Task;
use crate::tokenizer::{Response, TaskTokenizer};
use crate::{Error, Result};

/// Training prompts in seeded shuffled epochs.
pub struct PromptSampler {
    prompts: Vec<String>,
    order: Vec<usize>,
    rng: Rng,
}

impl PromptSampler {
    pub fn new(prompts: &[String], seed: u64) -> Result<Self> {
        if prompts.is_empty() {
            return Err(Error::Config("RL needs at least one training prompt".into()));
        }
        Ok(PromptSampler { prompts: prompts.to_vec(), order: Vec::new(), rng: Rng::derived(seed, 7) })
    }

    /// The next `count` prompts (a new shuffled pass starts when one runs out).
    pub fn next(&mut self, count: usize) -> Vec<String> {
        let mut out = Vec::with_capacity(count);
        while out.len() < count {
            if self.order.is_empty() {
                self.order = (0..self.prompts.len()).collect();
                self.rng.shuffle(&mut self.order);
            }
            out.push(self.prompts[self.order.pop().unwrap_or(0)].clone());
        }
        out
    }
}

/// One sampled response.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub prompt: String,
    /// Index of the prompt in the rollout (samples of one prompt form a group).
    pub group: usize,
    pub prompt_ids: Vec<u32>,
    /// Generated ids, ending with the end marker when the response finished.
    pub response_ids: Vec<u32>,
    pub response: Response,
}

/// `n` responses to each prompt, sampled at `temperature` from `policy` with the draws of `seed`.
/// Samples of prompt `g` are rows `g·n .. (g + 1)·n`.
#[allow(clippy::too_many_arguments)]
pub fn sample_responses<B: Backend>(
    backend: &B,
    policy: &Model<B>,
    tokenizer: &TaskTokenizer,
    task: &dyn Task,
    prompts: &[String],
    n: usize,
    temperature: f32,
    seed: u64,
) -> Result<Vec<Sample>> {
    if n == 0 || prompts.is_empty() {
        return Err(Error::Config(format!(
            "a rollout needs prompts and n >= 1 (got {} prompts, n {n})",
            prompts.len()
        )));
    }
    let ids = prompts.iter().map(|p| tokenizer.encode(p)).collect::<Result<Vec<_>>>()?;
    let rows: Vec<Vec<u32>> = ids.iter().flat_map(|p| std::iter::repeat_n(p.clone(), n)).collect();
    let options = GenerateOptions {
        max_new_tokens: task.max_response_tokens(),
        sampling: Sampling::Sample { temperature, top_k: 0, top_p: 1.0 },
        seed,
        eos_token_ids: vec![tokenizer.eos_id()],
        pad_token_id: tokenizer.pad_id(),
    };
    let outputs = generate(backend, policy, &rows, &options)?;
    outputs
        .into_iter()
        .zip(rows)
        .enumerate()
        .map(|(i, (response_ids, prompt_ids))| {
            let response = tokenizer.decode_response(&response_ids)?;
            Ok(Sample { prompt: prompts[i / n].clone(), group: i / n, prompt_ids, response_ids, response })
        })
        .collect()
}

/// The samples of a rollout as right-padded rows `[S, T]`.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenLayout {
    /// Input rows (unpadded): prompt and response but its last token.
    pub inputs: Vec<Vec<u32>>,
    /// `[S·T]`: the response token predicted at each position (the pad id where none is).
    pub targets: Vec<u32>,
    /// `[S·T]`: 1 where a response token is predicted.
    pub mask: Vec<u32>,
    /// `T`.
    pub len: usize,
    /// Per row, the column of its last response token (where the sequence reward lands).
    pub last: Vec<usize>,
}

impl TokenLayout {
    pub fn new(samples: &[Sample], pad_id: u32) -> Result<Self> {
        let rows: Vec<SftRow> =
            samples.iter().map(|s| SftRow { prompt: s.prompt_ids.clone(), response: s.response_ids.clone() }).collect();
        let (inputs, targets) = batch_targets(&rows.iter().collect::<Vec<_>>())?;
        let len = inputs.iter().map(Vec::len).max().unwrap_or(0);
        let mask = targets.iter().map(|&t| u32::from(t != IGNORE)).collect();
        let targets = targets.iter().map(|&t| if t == IGNORE { pad_id } else { t }).collect();
        let last = samples.iter().map(|s| s.prompt_ids.len() + s.response_ids.len() - 2).collect();
        Ok(TokenLayout { inputs, targets, mask, len, last })
    }

    pub fn rows(&self) -> usize {
        self.inputs.len()
    }

    /// Rows `rows` as a minibatch.
    pub fn minibatch(&self, rows: &[usize]) -> Minibatch {
        let len = rows.iter().map(|&r| self.inputs[r].len()).max().unwrap_or(0);
        let mut mb = Minibatch {
            rows: rows.to_vec(),
            inputs: Vec::new(),
            targets: Vec::new(),
            mask: Vec::new(),
            len,
            full_len: self.len,
        };
        for &r in rows {
            mb.inputs.push(self.inputs[r].clone());
            mb.targets.extend_from_slice(&self.targets[r * self.len..][..len]);
            mb.mask.extend_from_slice(&self.mask[r * self.len..][..len]);
        }
        mb
    }

    /// The rows split into minibatches of at most `size` rows, in a seeded random order. The
    /// split is fixed for a rollout, so the log-probs of a minibatch computed before the update
    /// and during it come from the very same computation.
    pub fn minibatches(&self, size: usize, rng: &mut Rng) -> Vec<Minibatch> {
        let mut order: Vec<usize> = (0..self.rows()).collect();
        rng.shuffle(&mut order);
        order.chunks(size.max(1)).map(|rows| self.minibatch(rows)).collect()
    }
}

/// Some rows of a [`TokenLayout`], trimmed to their own longest row.
#[derive(Debug, Clone, PartialEq)]
pub struct Minibatch {
    /// Row indices in the rollout.
    pub rows: Vec<usize>,
    pub inputs: Vec<Vec<u32>>,
    /// `[b·T_mb]`.
    pub targets: Vec<u32>,
    /// `[b·T_mb]`.
    pub mask: Vec<u32>,
    /// `T_mb`.
    pub len: usize,
    /// `T` of the rollout.
    full_len: usize,
}

impl Minibatch {
    pub fn dims(&self) -> [usize; 2] {
        [self.rows.len(), self.len]
    }

    /// This minibatch's entries `[b·T_mb]` of a rollout-wide array `[S·T]`.
    pub fn gather(&self, full: &[f32]) -> Vec<f32> {
        self.rows.iter().flat_map(|&r| full[r * self.full_len..][..self.len].iter().copied()).collect()
    }

    /// Writes this minibatch's entries `[b·T_mb]` into a rollout-wide array `[S·T]`.
    pub fn scatter(&self, part: &[f32], full: &mut [f32]) {
        for (&r, row) in self.rows.iter().zip(part.chunks(self.len.max(1))) {
            full[r * self.full_len..][..self.len].copy_from_slice(row);
        }
    }
}

/// Mean and population variance of the masked entries of `x`, in f64.
pub fn masked_mean_var(x: &[f32], mask: &[u32]) -> (f64, f64) {
    let picked: Vec<f64> = x.iter().zip(mask).filter(|(_, &m)| m == 1).map(|(&v, _)| f64::from(v)).collect();
    if picked.is_empty() {
        return (0.0, 0.0);
    }
    let n = picked.len() as f64;
    let mean = picked.iter().sum::<f64>() / n;
    (mean, picked.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n)
}

/// How many masked entries of `now` differ in any bit from `before`.
pub fn bit_mismatches(now: &[f32], before: &[f32], mask: &[u32]) -> usize {
    now.iter().zip(before).zip(mask).filter(|((a, b), &m)| m == 1 && a.to_bits() != b.to_bits()).count()
}
