//! Supervised fine-tuning: next-token cross-entropy on the response tokens of (prompt, response)
//! rows, with AdamW, gradient clipping and a warm-up + cosine schedule.
//!
//! A batch of rows `prompt ++ response` (the response ends with the end marker) is right-padded
//! to the longest; position `t` is fed token `t` and predicts token `t + 1`. Only predictions of
//! response tokens count: prompt positions and padding get the ignore index. The loss is the mean
//! over the batch's response tokens, so rows weigh by their length.

use models::params::{GradSlots, ParamSet};
use models::transformer::{Inputs, Model};
use runtime::ops::adamw::AdamW;
use runtime::{Backend, DType};

use crate::optim::{LrSchedule, Optimizer};
use crate::rng::{Epochs, Rng};
use crate::tasks::Example;
use crate::tokenizer::TaskTokenizer;
use crate::{Error, Result};

/// The target of positions that do not count (prompt, padding).
pub const IGNORE: u32 = u32::MAX;

/// A tokenized SFT row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SftRow {
    pub prompt: Vec<u32>,
    /// The response's ids, ending with the end marker.
    pub response: Vec<u32>,
}

/// Tokenizes examples into SFT rows.
pub fn tokenize(tokenizer: &TaskTokenizer, examples: &[Example]) -> Result<Vec<SftRow>> {
    examples
        .iter()
        .map(|e| Ok(SftRow { prompt: tokenizer.encode(&e.prompt)?, response: tokenizer.encode_response(&e.response)? }))
        .collect()
}

/// Input rows (each row but its last token) and targets `[B·T]` for a right-padded batch.
pub fn batch_targets(rows: &[&SftRow]) -> Result<(Vec<Vec<u32>>, Vec<u32>)> {
    if let Some(bad) = rows.iter().find(|r| r.prompt.is_empty() || r.response.is_empty()) {
        return Err(Error::Config(format!("an SFT row needs a prompt and a response, got {bad:?}")));
    }
    let len = rows.iter().map(|r| r.prompt.len() + r.response.len() - 1).max().unwrap_or(0);
    let mut inputs = Vec::with_capacity(rows.len());
    let mut targets = Vec::with_capacity(rows.len() * len);
    for row in rows {
        let tokens: Vec<u32> = row.prompt.iter().chain(&row.response).copied().collect();
        inputs.push(tokens[..tokens.len() - 1].to_vec());
        // Position t predicts tokens[t + 1]; the first response token is predicted from the
        // prompt's last position.
        let first_target = row.prompt.len() - 1;
        targets
            .extend((0..len).map(|t| if t >= first_target && t + 1 < tokens.len() { tokens[t + 1] } else { IGNORE }));
    }
    Ok((inputs, targets))
}

/// Settings of [`train_sft`].
#[derive(Debug, Clone, PartialEq)]
pub struct SftConfig {
    pub steps: usize,
    pub batch_size: usize,
    pub schedule: LrSchedule,
    /// AdamW settings; the schedule sets the rate of each step.
    pub adamw: AdamW,
    pub max_grad_norm: f32,
    /// Seeds the order rows are visited in.
    pub seed: u64,
}

impl SftConfig {
    /// `steps` steps of `batch_size` rows, peak rate `lr` after 5% warm-up, cosine to 10%.
    pub fn new(steps: usize, batch_size: usize, lr: f32) -> Self {
        SftConfig {
            steps,
            batch_size,
            schedule: LrSchedule { peak: lr, warmup_steps: steps / 20, total_steps: steps, final_ratio: 0.1 },
            adamw: AdamW { lr, beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: 0.01 },
            max_grad_norm: 1.0,
            seed: 0,
        }
    }
}

/// What one SFT step measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SftMetrics {
    pub step: usize,
    /// Mean cross-entropy per response token (before the update).
    pub loss: f32,
    /// Global gradient norm before clipping.
    pub grad_norm: f32,
    pub lr: f32,
    /// Response tokens in the batch.
    pub tokens: usize,
    /// Whether the update was skipped for a non-finite gradient.
    pub skipped: bool,
}

/// The SFT loss of one batch and its gradients.
pub struct BatchLoss<B: Backend> {
    /// Mean cross-entropy per response token.
    pub loss: f32,
    /// d(loss)/d(parameter), a set shaped like the parameters.
    pub grads: ParamSet<B>,
    /// Response tokens counted.
    pub tokens: usize,
}

/// The loss of `rows` under `model` and its gradients.
pub fn loss_and_grads<B: Backend>(
    backend: &B,
    model: &Model<B>,
    rows: &[&SftRow],
    pad_id: u32,
) -> Result<BatchLoss<B>> {
    let (layout, params) = (&model.layout, &model.params);
    let (input_rows, targets) = batch_targets(rows)?;
    let counted = targets.iter().filter(|&&t| t != IGNORE).count();
    let inputs = Inputs::from_rows(backend, &input_rows, false, pad_id)?;
    let n = targets.len();
    let targets = backend.upload_u32(&[n], &targets)?;
    let acts = layout.forward(backend, params, &inputs)?;
    let logits = layout.logits(backend, params, &acts.hidden)?;
    let ce = backend.cross_entropy_fwd(&logits, &targets, IGNORE)?;
    let weight = 1.0 / counted.max(1) as f32;
    let loss: f32 = backend.download_f32(&ce.loss)?.iter().sum::<f32>() * weight;
    let dloss = backend.upload_f32(&[n], &vec![weight; n], DType::F32)?;
    let dlogits = backend.cross_entropy_bwd(&logits, &targets, &ce.lse, &dloss, IGNORE)?;
    drop(logits);
    let mut slots = GradSlots::new(params.len());
    let dhidden = layout.logits_backward(backend, params, &acts.hidden, &dlogits, &mut slots)?;
    layout.backward(backend, params, &inputs, acts, &dhidden, &mut slots)?;
    Ok(BatchLoss { loss, grads: slots.into_param_set(backend, params)?, tokens: counted })
}

/// Trains `model` on `rows` for `config.steps` steps, calling `on_step` after each, and returns
/// every step's metrics. Rows are visited in seeded shuffled epochs.
pub fn train_sft<B: Backend>(
    backend: &B,
    model: &mut Model<B>,
    rows: &[SftRow],
    pad_id: u32,
    config: &SftConfig,
    on_step: &mut dyn FnMut(&SftMetrics),
) -> Result<Vec<SftMetrics>> {
    if rows.is_empty() || config.batch_size == 0 {
        return Err(Error::Config(format!(
            "SFT needs rows and a positive batch size (got {} rows, batch {})",
            rows.len(),
            config.batch_size
        )));
    }
    let mut optimizer = Optimizer::new(backend, &model.params, config.adamw, config.max_grad_norm)?;
    let mut epochs = Epochs::new(rows.len(), Rng::derived(config.seed, 5));
    let mut history = Vec::with_capacity(config.steps);
    for step in 0..config.steps {
        let batch: Vec<&SftRow> = epochs.next_batch(config.batch_size).into_iter().map(|i| &rows[i]).collect();
        let BatchLoss { loss, grads, tokens } = loss_and_grads(backend, model, &batch, pad_id)?;
        let lr = config.schedule.at(step);
        let stats = optimizer.step(backend, &mut model.params, grads, lr)?;
        let metrics = SftMetrics { step, loss, grad_norm: stats.grad_norm, lr, tokens, skipped: stats.skipped };
        on_step(&metrics);
        history.push(metrics);
    }
    Ok(history)
}
