//! A noisy annotator: prefers the response with the higher gold reward, then flips its answer with
//! probability `flip_fraction` (default 25%, within the 63–73% agreement measured between human
//! labellers). Ties in gold are broken by a fair coin before the flip. Labels are drawn from a
//! seeded stream, so a run's preference data is reproducible.

use super::{check_probability, Task};
use crate::rng::Rng;
use crate::Result;

/// The fraction of labels flipped unless told otherwise.
pub const DEFAULT_FLIP_FRACTION: f64 = 0.25;

/// One preference label.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Label {
    /// Whether the first response is labelled the better one.
    pub first_preferred: bool,
    /// Whether the label was flipped against the gold preference (for measuring denoising only;
    /// a learner must not see it).
    pub flipped: bool,
    /// Whether the two gold rewards were equal (the label is a coin toss, then maybe flipped).
    pub tie: bool,
    /// The gold rewards of the first and second response.
    pub gold: (f32, f32),
}

/// Labels pairs of responses by the gold reward, with flips.
#[derive(Debug, Clone)]
pub struct Annotator {
    flip_fraction: f64,
    rng: Rng,
}

impl Annotator {
    pub fn new(flip_fraction: f64, seed: u64) -> Result<Self> {
        check_probability("flip_fraction", flip_fraction)?;
        Ok(Annotator { flip_fraction, rng: Rng::derived(seed, 3) })
    }

    pub fn flip_fraction(&self) -> f64 {
        self.flip_fraction
    }

    /// Which of `first` and `second` (responses to `prompt`) the annotator prefers.
    pub fn label(&mut self, task: &dyn Task, prompt: &str, first: &str, second: &str) -> Label {
        self.label_gold((task.gold_reward(prompt, first), task.gold_reward(prompt, second)))
    }

    /// The label for two responses whose gold rewards are already known (say, 0 for a response
    /// that never finished, which the task's scorer would otherwise read as text).
    pub fn label_gold(&mut self, gold: (f32, f32)) -> Label {
        let tie = gold.0 == gold.1;
        let gold_prefers_first = if tie { self.rng.bernoulli(0.5) } else { gold.0 > gold.1 };
        let flipped = self.rng.bernoulli(self.flip_fraction);
        Label { first_preferred: gold_prefers_first != flipped, flipped, tie, gold }
    }
}
