//! The bundled tasks: everything the default run trains on is generated here from a seed, since no
//! model weights or data sets can be downloaded.
//!
//! - [`arith::Arith`]: two-number sums (`37+45=` → `82`), a verifiable gold reward, and an SFT
//!   corpus whose writer slips (mostly by dropping carries), so the SFT policy is imperfect.
//! - [`style::Style`]: short sentences from a small grammar, scored by a hidden gold function with a
//!   length optimum that a learned proxy can overshoot.
//! - [`annotator::Annotator`]: labels pairs of responses by the gold reward and flips a fraction of
//!   the labels, as disagreeing human annotators do.
//!
//! Texts are plain strings without the end marker; [`crate::tokenizer::TaskTokenizer`] adds it.

pub mod annotator;
pub mod arith;
pub mod style;

use crate::{Error, Result};

/// One SFT row: a prompt and the response written for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    pub prompt: String,
    pub response: String,
}

/// How a task's text is cut into tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granularity {
    /// Every character is a token (arith: digits and operators, which a tiny model learns best
    /// one at a time).
    Characters,
    /// Words separated by single spaces are tokens (style).
    Words,
}

/// A bundled task: prompts, an SFT corpus and the gold reward that evaluation and the annotator
/// use. Training prompts and evaluation prompts are disjoint.
pub trait Task: Send + Sync {
    fn name(&self) -> &'static str;

    fn granularity(&self) -> Granularity;

    /// Prompts for SFT and RL training.
    fn train_prompts(&self) -> &[String];

    /// Held-out prompts, none of which is a training prompt.
    fn eval_prompts(&self) -> &[String];

    /// Rows for supervised fine-tuning, all on training prompts.
    fn sft_corpus(&self) -> &[Example];

    /// The gold reward of `response` to `prompt`, in `[0, 1]`; 0 for text the task cannot parse.
    fn gold_reward(&self, prompt: &str, response: &str) -> f32;

    /// Whether a response counts as solved (arith: the right sum; style: the best gold score).
    fn is_solved(&self, prompt: &str, response: &str) -> bool {
        self.gold_reward(prompt, response) >= 1.0
    }

    /// Room for a response in tokens, end marker included.
    fn max_response_tokens(&self) -> usize;
}

/// The names [`by_name`] accepts.
pub const TASK_NAMES: [&str; 2] = ["arith", "style"];

/// A task with its default settings, generated from `seed`.
pub fn by_name(name: &str, seed: u64) -> Result<Box<dyn Task>> {
    match name {
        "arith" => Ok(Box::new(arith::Arith::new(arith::ArithConfig { seed, ..Default::default() })?)),
        "style" => Ok(Box::new(style::Style::new(style::StyleConfig { seed, ..Default::default() })?)),
        other => Err(Error::Config(format!("unknown task `{other}` (known: {})", TASK_NAMES.join(", ")))),
    }
}

/// Fails unless `p` is a probability.
pub(crate) fn check_probability(name: &str, p: f64) -> Result<()> {
    if (0.0..=1.0).contains(&p) {
        Ok(())
    } else {
        Err(Error::Config(format!("{name} must be in [0, 1], got {p}")))
    }
}
