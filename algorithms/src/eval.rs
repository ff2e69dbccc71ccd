//! Evaluation: generate responses to prompts and score them with the task's gold reward.
//!
//! A response that ran out of room before its end marker scores 0 and is not solved, whatever its
//! text: an answer must be finished to count.

use models::generate::{generate, GenerateOptions};
use models::sampling::Sampling;
use models::transformer::Model;
use runtime::Backend;

use crate::tasks::Task;
use crate::tokenizer::{Response, TaskTokenizer};
use crate::{Error, Result};

/// One scored response.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    pub prompt: String,
    pub response: Response,
    /// Tokens generated, end marker included.
    pub tokens: usize,
    pub gold: f32,
    pub solved: bool,
}

/// Scores `response` (to `prompt`, `tokens` long).
pub fn score(task: &dyn Task, prompt: &str, response: Response, tokens: usize) -> Scored {
    let (gold, solved) = if response.finished {
        (task.gold_reward(prompt, &response.text), task.is_solved(prompt, &response.text))
    } else {
        (0.0, false)
    };
    Scored { prompt: prompt.to_string(), response, tokens, gold, solved }
}

/// Totals over scored responses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EvalReport {
    pub count: usize,
    /// Fraction solved (arith: right answers).
    pub accuracy: f64,
    pub mean_gold: f64,
    /// Fraction that ended with the end marker.
    pub finished: f64,
    pub mean_tokens: f64,
}

impl EvalReport {
    pub fn summarize(scored: &[Scored]) -> Self {
        let count = scored.len();
        let mean = |f: &dyn Fn(&Scored) -> f64| {
            if count == 0 {
                0.0
            } else {
                scored.iter().map(f).sum::<f64>() / count as f64
            }
        };
        EvalReport {
            count,
            accuracy: mean(&|s| f64::from(u8::from(s.solved))),
            mean_gold: mean(&|s| f64::from(s.gold)),
            finished: mean(&|s| f64::from(u8::from(s.response.finished))),
            mean_tokens: mean(&|s| s.tokens as f64),
        }
    }
}

/// How [`evaluate`] generates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EvalOptions {
    pub sampling: Sampling,
    pub seed: u64,
    /// Prompts generated together.
    pub batch_size: usize,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions { sampling: Sampling::Greedy, seed: 0, batch_size: 256 }
    }
}

/// Generates one response per prompt (up to the task's response length) and scores each.
pub fn evaluate<B: Backend>(
    backend: &B,
    model: &Model<B>,
    tokenizer: &TaskTokenizer,
    task: &dyn Task,
    prompts: &[String],
    options: &EvalOptions,
) -> Result<(EvalReport, Vec<Scored>)> {
    if options.batch_size == 0 {
        return Err(Error::Config("evaluation batch size must be positive".into()));
    }
    let mut scored = Vec::with_capacity(prompts.len());
    for (chunk_index, chunk) in prompts.chunks(options.batch_size).enumerate() {
        let ids = chunk.iter().map(|p| tokenizer.encode(p)).collect::<Result<Vec<_>>>()?;
        // Draws depend on (seed, row in batch, step): give each batch its own seed so that rows of
        // different batches do not share draws.
        let seed = options.seed ^ (chunk_index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let generate_options = GenerateOptions {
            max_new_tokens: task.max_response_tokens(),
            sampling: options.sampling,
            seed,
            eos_token_ids: vec![tokenizer.eos_id()],
            pad_token_id: tokenizer.pad_id(),
        };
        let outputs = generate(backend, model, &ids, &generate_options)?;
        for (prompt, out) in chunk.iter().zip(outputs) {
            let response = tokenizer.decode_response(&out)?;
            scored.push(score(task, prompt, response, out.len()));
        }
    }
    Ok((EvalReport::summarize(&scored), scored))
}
