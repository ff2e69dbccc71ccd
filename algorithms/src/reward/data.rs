//! Preference pairs and how they are made: two responses sampled from the policy for one prompt,
//! labelled by the noisy [`Annotator`].

use models::generate::{generate, GenerateOptions};
use models::sampling::Sampling;
use models::transformer::Model;
use runtime::Backend;

use crate::tasks::annotator::Annotator;
use crate::tasks::Task;
use crate::tokenizer::TaskTokenizer;
use crate::{Error, Result};

/// One labelled comparison of two responses to a prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct PreferencePair {
    pub prompt: Vec<u32>,
    /// The response labelled better: its ids, ending with the end marker when it finished.
    pub chosen: Vec<u32>,
    pub rejected: Vec<u32>,
    /// Target probability that `chosen` wins: 1 for a hard label, in `(0, 1)` for a soft one.
    pub label: f32,
    /// Subtracted from `r_c − r_r` in the loss (0 for none).
    pub margin: f32,
    /// Outcome labels of (chosen, rejected) in `[0, 1]` for the binary loss, on verifiable tasks.
    pub outcomes: Option<(f32, f32)>,
    /// Gold rewards of (chosen, rejected). For measuring only: no trainer reads them.
    pub gold: (f32, f32),
}

impl PreferencePair {
    /// Whether the gold reward cannot tell the two responses apart.
    pub fn gold_tie(&self) -> bool {
        self.gold.0 == self.gold.1
    }

    /// Whether the label points the gold way; `None` on a gold tie.
    pub fn label_agrees_with_gold(&self) -> Option<bool> {
        (!self.gold_tie()).then_some((self.gold.0 > self.gold.1) == (self.label > 0.5))
    }

    /// The same comparison read the other way round: chosen and rejected swapped, the label
    /// complemented, the margin kept.
    pub fn swapped(&self) -> Self {
        PreferencePair {
            prompt: self.prompt.clone(),
            chosen: self.rejected.clone(),
            rejected: self.chosen.clone(),
            label: 1.0 - self.label,
            margin: self.margin,
            outcomes: self.outcomes.map(|(c, r)| (r, c)),
            gold: (self.gold.1, self.gold.0),
        }
    }
}

/// How [`sample_preference_pairs`] draws responses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PairSampling {
    pub sampling: Sampling,
    /// Passes over the prompts; each pass draws a fresh pair for every prompt.
    pub rounds: usize,
    pub seed: u64,
    /// Prompts generated together (each twice).
    pub batch_prompts: usize,
    /// Drop pairs whose two responses are the same tokens: the loss cannot move on them (their
    /// rewards are equal whatever the model) and they would only dilute the batch.
    pub skip_identical: bool,
    /// Fill [`PreferencePair::outcomes`] with the gold rewards (a verifier's 0/1 on `arith`).
    pub with_outcomes: bool,
}

impl Default for PairSampling {
    fn default() -> Self {
        PairSampling {
            sampling: Sampling::Sample { temperature: 1.0, top_k: 0, top_p: 1.0 },
            rounds: 1,
            seed: 0,
            batch_prompts: 256,
            skip_identical: true,
            with_outcomes: true,
        }
    }
}

/// What [`sample_preference_pairs`] drew.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PairStats {
    /// Pairs drawn, identical ones included.
    pub drawn: usize,
    /// Pairs dropped because both responses were the same.
    pub identical: usize,
    /// Kept pairs with equal gold rewards (labelled by the annotator's coin).
    pub gold_ties: usize,
    /// Kept pairs whose label the annotator flipped against the gold preference.
    pub flipped: usize,
}

/// Samples two responses per prompt from `policy` (for `options.rounds` passes over `prompts`),
/// labels each pair with `annotator`, and returns the pairs with counts. A response that ran out
/// of room before its end marker has gold reward 0, as in evaluation.
pub fn sample_preference_pairs<B: Backend>(
    backend: &B,
    policy: &Model<B>,
    tokenizer: &TaskTokenizer,
    task: &dyn Task,
    prompts: &[String],
    annotator: &mut Annotator,
    options: &PairSampling,
) -> Result<(Vec<PreferencePair>, PairStats)> {
    if options.batch_prompts == 0 || !matches!(options.sampling, Sampling::Sample { .. }) {
        return Err(Error::Config(
            "pair sampling needs a positive batch size and a sampling (not greedy) decoder".into(),
        ));
    }
    let mut pairs = Vec::new();
    let mut stats = PairStats::default();
    let chunks_per_round = prompts.len().div_ceil(options.batch_prompts) as u64;
    for round in 0..options.rounds as u64 {
        for (chunk_index, chunk) in prompts.chunks(options.batch_prompts).enumerate() {
            let ids = chunk.iter().map(|p| tokenizer.encode(p)).collect::<Result<Vec<_>>>()?;
            // Each prompt twice in a row: draws depend on (seed, row, step), so the copies differ.
            let doubled: Vec<Vec<u32>> = ids.iter().flat_map(|p| [p.clone(), p.clone()]).collect();
            let batch_number = round * chunks_per_round + chunk_index as u64;
            let generate_options = GenerateOptions {
                max_new_tokens: task.max_response_tokens(),
                sampling: options.sampling,
                seed: options.seed ^ batch_number.wrapping_mul(0x9E37_79B9_7F4A_7C15),
                eos_token_ids: vec![tokenizer.eos_id()],
                pad_token_id: tokenizer.pad_id(),
            };
            let outputs = generate(backend, policy, &doubled, &generate_options)?;
            for ((prompt, prompt_ids), two) in chunk.iter().zip(ids).zip(outputs.chunks(2)) {
                stats.drawn += 1;
                let (first, second) = (&two[0], &two[1]);
                if options.skip_identical && first == second {
                    stats.identical += 1;
                    continue;
                }
                let gold_of = |out: &[u32]| -> Result<f32> {
                    let response = tokenizer.decode_response(out)?;
                    Ok(if response.finished { task.gold_reward(prompt, &response.text) } else { 0.0 })
                };
                let gold = (gold_of(first)?, gold_of(second)?);
                let label = annotator.label_gold(gold);
                stats.gold_ties += usize::from(label.tie);
                stats.flipped += usize::from(label.flipped);
                let (chosen, rejected, gold) =
                    if label.first_preferred { (first, second, gold) } else { (second, first, (gold.1, gold.0)) };
                pairs.push(PreferencePair {
                    prompt: prompt_ids,
                    chosen: chosen.clone(),
                    rejected: rejected.clone(),
                    label: 1.0,
                    margin: 0.0,
                    outcomes: options.with_outcomes.then_some(gold),
                    gold,
                });
            }
        }
    }
    Ok((pairs, stats))
}
