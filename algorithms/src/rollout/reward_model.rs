//! A learned reward model as a rollout's [`RewardSource`] (the proxy reward of RLHF, as opposed to
//! the task's gold reward). Each sample is scored on the row `prompt ++ response` (the end marker
//! included when the response finished) with the model's own [`crate::reward::model::Readout`]:
//! exactly the rows and read-out the reward model was trained on
//! ([`crate::reward::RewardModel::score`]).

use runtime::Backend;

use super::reward::RewardSource;
use super::Sample;
use crate::reward::ensemble::SCORE_BATCH;
use crate::reward::RewardModel;
use crate::Result;

/// Scores samples with a trained reward model's scalar head.
pub struct ModelReward<'a, B: Backend> {
    pub model: &'a RewardModel<B>,
    pub pad_id: u32,
    /// Rows per forward pass (bounds the activations' memory, not the result).
    pub batch_size: usize,
}

impl<'a, B: Backend> ModelReward<'a, B> {
    pub fn new(model: &'a RewardModel<B>, pad_id: u32) -> Self {
        ModelReward { model, pad_id, batch_size: SCORE_BATCH }
    }
}

impl<B: Backend> RewardSource<B> for ModelReward<'_, B> {
    fn name(&self) -> &str {
        "reward model"
    }

    fn score(&mut self, backend: &B, samples: &[Sample]) -> Result<Vec<f32>> {
        let rows: Vec<(&[u32], &[u32])> =
            samples.iter().map(|s| (s.prompt_ids.as_slice(), s.response_ids.as_slice())).collect();
        self.model.score(backend, &rows, self.pad_id, self.batch_size)
    }
}
