//! The reward model: the policy's architecture (trunk and LM head, copied from the SFT policy) with
//! a scalar head `score` on the shared trunk, read at the last real token of each response (its
//! end marker when it finished).

use models::params::ParamSet;
use models::transformer::{Inputs, Model};
use runtime::{Backend, DType, Tensor};

use crate::rng::Rng;
use crate::Result;

/// A reward model. The LM head stays: GRM-style training keeps the trunk able to generate
/// ([`crate::reward::RewardConfig::grm_alpha`]), and a critic or policy can start from it.
pub struct RewardModel<B: Backend> {
    pub model: Model<B>,
}

/// An independent copy of `model`'s parameters (same names, shapes and dtypes).
pub fn copy_model<B: Backend>(backend: &B, model: &Model<B>) -> Result<Model<B>> {
    let mut params = ParamSet::default();
    for (name, t) in model.params.iter() {
        params.push(name, backend.upload_f32(t.dims(), &backend.download_f32(t)?, t.dtype())?);
    }
    Ok(Model { layout: model.layout.clone(), params })
}

/// Token rows `prompt ++ response`, right-padded into one batch, and for each row the index (in
/// the batch's `[B·T]` rows) of its last real token, where the reward is read.
pub(crate) struct ScoredBatch<B: Backend> {
    pub inputs: Inputs<B>,
    pub last_rows: Vec<u32>,
}

impl<B: Backend> ScoredBatch<B> {
    pub fn new(backend: &B, rows: &[Vec<u32>], pad_id: u32) -> Result<Self> {
        let inputs = Inputs::from_rows(backend, rows, false, pad_id)?;
        let last_rows = rows.iter().enumerate().map(|(b, r)| (b * inputs.len + r.len().max(1) - 1) as u32).collect();
        Ok(ScoredBatch { inputs, last_rows })
    }

    /// The last-token row indices of batch rows `range`, as a `[M]` u32 tensor.
    pub fn rows(&self, backend: &B, range: std::ops::Range<usize>) -> Result<Tensor<B>> {
        Ok(backend.upload_u32(&[range.len()], &self.last_rows[range])?)
    }
}

/// `prompt ++ response` as one row.
pub(crate) fn joined(prompt: &[u32], response: &[u32]) -> Vec<u32> {
    prompt.iter().chain(response).copied().collect()
}

impl<B: Backend> RewardModel<B> {
    /// A reward model starting from `policy`: a copy of its parameters and a new scalar head
    /// `score.weight` `[1, C]` ~ N(0, head_init_std²) drawn from `seed`, with bias `score.bias` 0
    /// (which the pairwise loss cannot see, but the binary outcome loss uses).
    pub fn from_policy(backend: &B, policy: &Model<B>, head_init_std: f32, seed: u64) -> Result<Self> {
        let mut model = copy_model(backend, policy)?;
        let mut rng = Rng::derived(seed, 6);
        let dtype = model.params.get(0).dtype();
        model.layout.add_scalar_head(backend, &mut model.params, dtype, true, &mut |name, dims| {
            let n: usize = dims.iter().product();
            Ok(if name.ends_with(".bias") {
                vec![0.0; n]
            } else {
                (0..n).map(|_| (rng.normal() * f64::from(head_init_std)) as f32).collect()
            })
        })?;
        Ok(RewardModel { model })
    }

    /// The reward of each `(prompt, response)` row, scored `batch_size` rows at a time.
    pub fn score(&self, backend: &B, rows: &[(&[u32], &[u32])], pad_id: u32, batch_size: usize) -> Result<Vec<f32>> {
        let (layout, params) = (&self.model.layout, &self.model.params);
        let mut rewards = Vec::with_capacity(rows.len());
        for chunk in rows.chunks(batch_size.max(1)) {
            let tokens: Vec<Vec<u32>> = chunk.iter().map(|(p, r)| joined(p, r)).collect();
            let batch = ScoredBatch::new(backend, &tokens, pad_id)?;
            let hidden = layout.forward(backend, params, &batch.inputs)?.hidden;
            let values = layout.scalar(backend, params, &hidden, &batch.rows(backend, 0..chunk.len())?)?;
            let values = if values.dtype() == DType::F32 { values } else { backend.cast(&values, DType::F32)? };
            rewards.extend(backend.download_f32(&values)?);
        }
        Ok(rewards)
    }
}
