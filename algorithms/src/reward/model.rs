//! The reward model: the policy's architecture (trunk and LM head, copied from the SFT policy) with
//! a scalar head `score` on the shared trunk, read at the last real token of each response (its
//! end marker when it finished).

use models::params::{GradSlots, ParamSet};
use models::transformer::{Inputs, Model};
use runtime::{Backend, DType, Tensor};

use crate::rng::Rng;
use crate::Result;

/// Where a reward model reads its reward from a row `prompt ++ response`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Readout {
    /// The scalar head at the response's last real token (its end marker when it finished).
    #[default]
    LastToken,
    /// The sum of the scalar head over every response token. Each position then judges its own
    /// token: on `arith`, the position of an answer digit sees that digit and the operands, so
    /// one layer of attention is enough to check it, where the last token alone must redo the
    /// whole sum in the trunk's depth. Positions two responses share (a common prefix) score the
    /// same and cancel in `r_c − r_r`, so a pair's gradient lands where the responses differ.
    TokenSum,
    /// The mean of the scalar head over the response tokens: [`Readout::TokenSum`] without its
    /// pull towards longer responses, which pairs of equal length never correct and best-of-N
    /// exploits.
    TokenMean,
}

/// A reward model. The LM head stays: GRM-style training keeps the trunk able to generate
/// ([`crate::reward::RewardConfig::grm_alpha`]), and a critic or policy can start from it.
pub struct RewardModel<B: Backend> {
    pub model: Model<B>,
    pub readout: Readout,
}

/// An independent copy of `model`'s parameters (same names, shapes and dtypes).
pub fn copy_model<B: Backend>(backend: &B, model: &Model<B>) -> Result<Model<B>> {
    let mut params = ParamSet::default();
    for (name, t) in model.params.iter() {
        params.push(name, backend.upload_f32(t.dims(), &backend.download_f32(t)?, t.dtype())?);
    }
    Ok(Model { layout: model.layout.clone(), params })
}

/// Half-open ranges into a list of picked positions, one per row.
type Spans = Vec<(usize, usize)>;

/// Token rows `prompt ++ response`, right-padded into one batch, and for each row the indices (in
/// the batch's `[B·T]` rows) whose scores sum to its reward: its last real token, or every
/// response token ([`Readout`]).
pub(crate) struct ScoredBatch<B: Backend> {
    pub inputs: Inputs<B>,
    /// Row `b`'s reward is the sum of the scores at `picked[spans[b].0..spans[b].1]`.
    picked: Vec<u32>,
    spans: Spans,
    /// Whether a row's reward is the mean of its scores rather than the sum.
    mean: bool,
}

impl<B: Backend> ScoredBatch<B> {
    /// `rows` are `(prompt, response)`; the reward is read as `readout` says.
    pub fn new(backend: &B, rows: &[(&[u32], &[u32])], pad_id: u32, readout: Readout) -> Result<Self> {
        let tokens: Vec<Vec<u32>> = rows.iter().map(|(p, r)| joined(p, r)).collect();
        let inputs = Inputs::from_rows(backend, &tokens, false, pad_id)?;
        let (mut picked, mut spans) = (Vec::new(), Vec::with_capacity(rows.len()));
        for (b, (prompt, response)) in rows.iter().enumerate() {
            let end = b * inputs.len + (prompt.len() + response.len()).max(1);
            let first = match readout {
                Readout::LastToken => end - 1,
                Readout::TokenSum | Readout::TokenMean => end - response.len().max(1),
            };
            spans.push((picked.len(), picked.len() + end - first));
            picked.extend((first..end).map(|i| i as u32));
        }
        Ok(ScoredBatch { inputs, picked, spans, mean: readout == Readout::TokenMean })
    }

    /// The factor on the scores of a span `a..b`: 1 for a sum, `1/(b − a)` for a mean.
    fn weight(&self, a: usize, b: usize) -> f32 {
        if self.mean {
            1.0 / (b - a) as f32
        } else {
            1.0
        }
    }

    /// The indices that batch rows `range` read, as a `[K]` u32 tensor, and each of those
    /// rows' span in it.
    fn picked(&self, backend: &B, range: std::ops::Range<usize>) -> Result<(Tensor<B>, Spans)> {
        let spans = &self.spans[range];
        let (from, to) = (spans.first().map_or(0, |s| s.0), spans.last().map_or(0, |s| s.1));
        let local = spans.iter().map(|&(a, b)| (a - from, b - from)).collect();
        Ok((backend.upload_u32(&[to - from], &self.picked[from..to])?, local))
    }

    /// The rewards `[M]` (f32) of batch rows `range` from the trunk's `hidden` states.
    pub fn rewards(&self, backend: &B, model: &Model<B>, hidden: &Tensor<B>, range: std::ops::Range<usize>) -> Result<Tensor<B>> {
        let (picked, spans) = self.picked(backend, range)?;
        let scores = model.layout.scalar(backend, &model.params, hidden, &picked)?;
        let scores = backend.download_f32(&backend.cast(&scores, DType::F32)?)?;
        let sums: Vec<f32> = spans.iter().map(|&(a, b)| scores[a..b].iter().sum::<f32>() * self.weight(a, b)).collect();
        Ok(backend.upload_f32(&[sums.len()], &sums, DType::F32)?)
    }

    /// Backward of [`ScoredBatch::rewards`]: adds the head's gradients to `slots` and returns
    /// d(hidden).
    pub fn rewards_backward(
        &self,
        backend: &B,
        model: &Model<B>,
        hidden: &Tensor<B>,
        range: std::ops::Range<usize>,
        drewards: &Tensor<B>,
        slots: &mut GradSlots<B>,
    ) -> Result<Tensor<B>> {
        let (picked, spans) = self.picked(backend, range)?;
        let d = backend.download_f32(drewards)?;
        let dscores: Vec<f32> =
            spans.iter().zip(&d).flat_map(|(&(a, b), &g)| std::iter::repeat_n(g * self.weight(a, b), b - a)).collect();
        let dscores = backend.upload_f32(&[dscores.len()], &dscores, DType::F32)?;
        Ok(model.layout.scalar_backward(backend, &model.params, hidden, &picked, &dscores, slots)?)
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
        Ok(RewardModel { model, readout: Readout::LastToken })
    }

    /// The same model reading its reward as `readout` says.
    pub fn with_readout(self, readout: Readout) -> Self {
        RewardModel { readout, ..self }
    }

    /// The reward of each `(prompt, response)` row, scored `batch_size` rows at a time.
    pub fn score(&self, backend: &B, rows: &[(&[u32], &[u32])], pad_id: u32, batch_size: usize) -> Result<Vec<f32>> {
        let mut rewards = Vec::with_capacity(rows.len());
        for chunk in rows.chunks(batch_size.max(1)) {
            let batch = ScoredBatch::new(backend, chunk, pad_id, self.readout)?;
            let hidden = self.model.layout.forward(backend, &self.model.params, &batch.inputs)?.hidden;
            rewards.extend(backend.download_f32(&batch.rewards(backend, &self.model, &hidden, 0..chunk.len())?)?);
        }
        Ok(rewards)
    }
}
