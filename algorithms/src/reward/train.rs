//! Reward-model training: the Bradley–Terry loss on labelled pairs (per-pair margin and soft
//! label, label smoothing), an optional binary outcome loss, and GRM's text-generation
//! regulariser, all through one forward and backward of the shared trunk.
//!
//! A batch of `P` pairs is `2P` rows `prompt ++ response` (chosen rows first), right-padded. The
//! rewards are read at each row's last real token. The objective is
//!
//! ```text
//! L = mean_p BT_p  +  binary_weight · mean over the 2P responses of BCE(r, outcome)
//!                  +  grm_alpha · SFT
//! ```
//!
//! where SFT is the mean next-token cross-entropy per response token of the chosen responses
//! (exactly [`crate::sft::loss_and_grads`]' loss on rows `(prompt, chosen)`). The rows hold the
//! whole response, end marker included; position `t` predicts token `t + 1`, and the end
//! marker's own position predicts nothing, so the LM head reads the same hidden states the SFT
//! trainer would (attention is causal: the extra token changes no earlier position).

use models::params::{GradSlots, ParamSet};
use runtime::ops::adamw::AdamW;
use runtime::ops::bt_loss::BtPairs;
use runtime::{Backend, DType, Tensor};

use super::data::PreferencePair;
use super::model::{joined, RewardModel, ScoredBatch};
use crate::optim::{LrSchedule, Optimizer};
use crate::rng::{Epochs, Rng};
use crate::sft::IGNORE;
use crate::{Error, Result};

/// Names of the scalar head's parameters start with this.
const SCORE_PREFIX: &str = "score.";

/// The loss settings of reward-model training.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RewardLossConfig {
    /// `ε` of the Bradley–Terry loss: the target becomes `(1 − ε)·label + ε/2`.
    pub label_smoothing: f32,
    /// Weight of the binary outcome loss (0 = off); pairs then need outcomes.
    pub binary_weight: f32,
    /// Weight of the SFT loss on chosen responses (GRM regularisation; 0 = off).
    pub grm_alpha: f32,
}

impl Default for RewardLossConfig {
    fn default() -> Self {
        RewardLossConfig { label_smoothing: 0.0, binary_weight: 0.0, grm_alpha: 0.0 }
    }
}

/// Settings of [`train_reward_model`].
#[derive(Debug, Clone, PartialEq)]
pub struct RewardConfig {
    pub steps: usize,
    /// Pairs per step (`2·batch_pairs` rows).
    pub batch_pairs: usize,
    pub schedule: LrSchedule,
    pub adamw: AdamW,
    pub max_grad_norm: f32,
    pub loss: RewardLossConfig,
    /// Standard deviation of the new scalar head's weights.
    pub head_init_std: f32,
    /// Steps at the start that train the scalar head alone, the trunk frozen (linear probing,
    /// then fine-tuning). While the head is random, the trunk's gradient is noise that AdamW's
    /// normalisation turns into full-size steps; they can wreck the features the head is meant
    /// to read, down to a trunk whose output no longer depends on the response.
    pub head_only_steps: usize,
    /// The trunk's (and LM head's) rate relative to the scalar head's after those steps.
    pub trunk_lr_scale: f32,
    /// Seeds the scalar head and the order pairs are visited in (ensemble members differ here).
    pub seed: u64,
}

impl RewardConfig {
    /// `steps` steps of `batch_pairs` pairs, peak rate `lr` after 5% warm-up, cosine to 10%,
    /// the first 10% on the scalar head alone, plain Bradley–Terry loss.
    pub fn new(steps: usize, batch_pairs: usize, lr: f32) -> Self {
        RewardConfig {
            steps,
            batch_pairs,
            schedule: LrSchedule { peak: lr, warmup_steps: steps / 20, total_steps: steps, final_ratio: 0.1 },
            adamw: AdamW { lr, beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: 0.01 },
            max_grad_norm: 1.0,
            loss: RewardLossConfig::default(),
            head_init_std: 0.02,
            head_only_steps: steps / 10,
            trunk_lr_scale: 0.3,
            seed: 0,
        }
    }
}

/// One batch's loss terms (each before its weight), and the gradients of the weighted total.
pub struct RewardLoss<B: Backend> {
    /// The weighted total.
    pub loss: f32,
    /// Mean Bradley–Terry loss per pair.
    pub bt: f32,
    /// Mean binary loss per response (0 when off).
    pub binary: f32,
    /// Mean cross-entropy per chosen-response token (0 when GRM is off).
    pub sft: f32,
    /// Fraction of pairs whose chosen response scored higher.
    pub accuracy: f32,
    pub grads: ParamSet<B>,
}

fn upload<B: Backend>(backend: &B, values: Vec<f32>) -> Result<Tensor<B>> {
    Ok(backend.upload_f32(&[values.len()], &values, DType::F32)?)
}

fn mean<B: Backend>(backend: &B, t: &Tensor<B>) -> Result<f32> {
    let v = backend.download_f32(t)?;
    Ok(v.iter().sum::<f32>() / v.len().max(1) as f32)
}

/// Targets `[2P·T]` for the SFT term: chosen rows (the first `P`) predict their response tokens,
/// everything else is ignored. Returns the targets and how many count.
fn chosen_targets(pairs: &[&PreferencePair], len: usize) -> (Vec<u32>, usize) {
    let mut targets = vec![IGNORE; 2 * pairs.len() * len];
    let mut counted = 0;
    for (b, pair) in pairs.iter().enumerate() {
        let tokens = joined(&pair.prompt, &pair.chosen);
        // Position t predicts tokens[t + 1]: the first response token from the prompt's last
        // position, up to the end marker from the one before it.
        for t in pair.prompt.len().saturating_sub(1)..tokens.len().saturating_sub(1) {
            targets[b * len + t] = tokens[t + 1];
            counted += 1;
        }
    }
    (targets, counted)
}

/// The mean binary outcome loss of `rewards` `[P]` against `outcomes`; adds its gradient, each
/// response weighted `weight`, to `grad`.
fn binary_term<B: Backend>(
    backend: &B,
    rewards: &Tensor<B>,
    outcomes: Vec<f32>,
    weight: f32,
    grad: &mut Tensor<B>,
) -> Result<f32> {
    let p = outcomes.len();
    let y = upload(backend, outcomes)?;
    let loss = mean(backend, &backend.binary_reward_loss_fwd(rewards, &y)?)?;
    backend.axpy(grad, 1.0, &backend.binary_reward_loss_bwd(rewards, &y, &upload(backend, vec![weight; p])?)?)?;
    Ok(loss)
}

/// GRM's regulariser: the mean next-token cross-entropy of the chosen responses (the first `P`
/// of the batch's rows, `len` positions each) from the trunk's `hidden` states. Adds the LM
/// head's gradient, weighted `alpha`, to `slots` and returns the loss and d(hidden).
fn sft_term<B: Backend>(
    backend: &B,
    rm: &RewardModel<B>,
    hidden: &Tensor<B>,
    pairs: &[&PreferencePair],
    len: usize,
    alpha: f32,
    slots: &mut GradSlots<B>,
) -> Result<(f32, Tensor<B>)> {
    let (layout, params) = (&rm.model.layout, &rm.model.params);
    let (targets, counted) = chosen_targets(pairs, len);
    let n = targets.len();
    let targets = backend.upload_u32(&[n], &targets)?;
    let logits = layout.logits(backend, params, hidden)?;
    let ce = backend.cross_entropy_fwd(&logits, &targets, IGNORE)?;
    let per_token = 1.0 / counted.max(1) as f32;
    let loss = backend.download_f32(&ce.loss)?.iter().sum::<f32>() * per_token;
    let dloss = upload(backend, vec![alpha * per_token; n])?;
    let dlogits = backend.cross_entropy_bwd(&logits, &targets, &ce.lse, &dloss, IGNORE)?;
    drop(logits);
    Ok((loss, layout.logits_backward(backend, params, hidden, &dlogits, slots)?))
}

/// The loss of `pairs` under `rm` and its gradients.
pub fn reward_loss_and_grads<B: Backend>(
    backend: &B,
    rm: &RewardModel<B>,
    pairs: &[&PreferencePair],
    pad_id: u32,
    config: &RewardLossConfig,
) -> Result<RewardLoss<B>> {
    let (layout, params) = (&rm.model.layout, &rm.model.params);
    let p = pairs.len();
    if p == 0 || pairs.iter().any(|x| x.prompt.is_empty() || x.chosen.is_empty() || x.rejected.is_empty()) {
        return Err(Error::Config("a reward batch needs pairs with a prompt and two non-empty responses".into()));
    }
    let outcomes = if config.binary_weight > 0.0 {
        let found: Option<Vec<(f32, f32)>> = pairs.iter().map(|x| x.outcomes).collect();
        Some(found.ok_or_else(|| Error::Config("the binary reward loss needs outcome labels on every pair".into()))?)
    } else {
        None
    };
    let rows: Vec<(&[u32], &[u32])> = pairs
        .iter()
        .map(|x| (x.prompt.as_slice(), x.chosen.as_slice()))
        .chain(pairs.iter().map(|x| (x.prompt.as_slice(), x.rejected.as_slice())))
        .collect();
    let batch = ScoredBatch::new(backend, &rows, pad_id, rm.readout)?;
    let acts = layout.forward(backend, params, &batch.inputs)?;
    let hidden = &acts.hidden;
    let chosen = batch.rewards(backend, &rm.model, hidden, 0..p)?;
    let rejected = batch.rewards(backend, &rm.model, hidden, p..2 * p)?;

    let margin = upload(backend, pairs.iter().map(|x| x.margin).collect())?;
    let label = upload(backend, pairs.iter().map(|x| x.label).collect())?;
    let bt_pairs = BtPairs { reward_chosen: &chosen, reward_rejected: &rejected, margin: &margin, label: &label };
    let bt = mean(backend, &backend.bt_loss_fwd(bt_pairs, config.label_smoothing)?)?;
    let per_pair = upload(backend, vec![1.0 / p as f32; p])?;
    let bt_grads = backend.bt_loss_bwd(bt_pairs, config.label_smoothing, &per_pair)?;
    let (mut dchosen, mut drejected) = (bt_grads.reward_chosen, bt_grads.reward_rejected);

    let binary = match outcomes {
        Some(outcomes) => {
            let per_response = config.binary_weight / (2 * p) as f32;
            let chosen_term = binary_term(backend, &chosen, outcomes.iter().map(|o| o.0).collect(), per_response, &mut dchosen)?;
            let rejected_term =
                binary_term(backend, &rejected, outcomes.iter().map(|o| o.1).collect(), per_response, &mut drejected)?;
            (chosen_term + rejected_term) / 2.0
        }
        None => 0.0,
    };

    let (rc, rr) = (backend.download_f32(&chosen)?, backend.download_f32(&rejected)?);
    let accuracy = rc.iter().zip(&rr).filter(|(c, r)| c > r).count() as f32 / p as f32;

    let mut slots = GradSlots::new(params.len());
    let mut dhidden = batch.rewards_backward(backend, &rm.model, hidden, 0..p, &dchosen, &mut slots)?;
    backend.axpy(&mut dhidden, 1.0, &batch.rewards_backward(backend, &rm.model, hidden, p..2 * p, &drejected, &mut slots)?)?;

    let sft = if config.grm_alpha > 0.0 {
        let (sft, dhidden_lm) = sft_term(backend, rm, hidden, pairs, batch.inputs.len, config.grm_alpha, &mut slots)?;
        backend.axpy(&mut dhidden, 1.0, &dhidden_lm)?;
        sft
    } else {
        0.0
    };
    layout.backward(backend, params, &batch.inputs, acts, &dhidden, &mut slots)?;
    Ok(RewardLoss {
        loss: bt + config.binary_weight * binary + config.grm_alpha * sft,
        bt,
        binary,
        sft,
        accuracy,
        grads: slots.into_param_set(backend, params)?,
    })
}

/// What one reward-model step measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RewardMetrics {
    pub step: usize,
    /// The weighted total loss (before the update).
    pub loss: f32,
    pub bt: f32,
    pub binary: f32,
    pub sft: f32,
    /// Fraction of the batch's pairs ranked as labelled.
    pub accuracy: f32,
    pub grad_norm: f32,
    pub lr: f32,
    pub skipped: bool,
}

/// Trains `rm` on `pairs` for `config.steps` steps, calling `on_step` after each, and returns
/// every step's metrics. Pairs are visited in shuffled epochs drawn from `config.seed`.
pub fn train_reward_model<B: Backend>(
    backend: &B,
    rm: &mut RewardModel<B>,
    pairs: &[PreferencePair],
    pad_id: u32,
    config: &RewardConfig,
    on_step: &mut dyn FnMut(&RewardMetrics),
) -> Result<Vec<RewardMetrics>> {
    train_reward_model_watched(backend, rm, pairs, pad_id, config, &mut |metrics, _| {
        on_step(metrics);
        Ok(())
    })
}

/// [`train_reward_model`] with a hook that also sees the model after each step (to validate it
/// or keep a checkpoint); an error from the hook stops training.
pub fn train_reward_model_watched<B: Backend>(
    backend: &B,
    rm: &mut RewardModel<B>,
    pairs: &[PreferencePair],
    pad_id: u32,
    config: &RewardConfig,
    on_step: &mut dyn FnMut(&RewardMetrics, &RewardModel<B>) -> Result<()>,
) -> Result<Vec<RewardMetrics>> {
    if pairs.is_empty() || config.batch_pairs == 0 {
        return Err(Error::Config(format!(
            "reward training needs pairs and a positive batch size (got {} pairs, batch {})",
            pairs.len(),
            config.batch_pairs
        )));
    }
    let mut optimizer = Optimizer::new(backend, &rm.model.params, config.adamw, config.max_grad_norm)?;
    let params = &rm.model.params;
    let is_head: Vec<bool> = (0..params.len()).map(|i| params.name(i).starts_with(SCORE_PREFIX)).collect();
    let head_only: Vec<f32> = is_head.iter().map(|&h| if h { 1.0 } else { 0.0 }).collect();
    let everything: Vec<f32> = is_head.iter().map(|&h| if h { 1.0 } else { config.trunk_lr_scale }).collect();
    let mut epochs = Epochs::new(pairs.len(), Rng::derived(config.seed, 7));
    let mut history = Vec::with_capacity(config.steps);
    for step in 0..config.steps {
        let batch: Vec<&PreferencePair> =
            epochs.next_batch(config.batch_pairs).into_iter().map(|i| &pairs[i]).collect();
        let out = reward_loss_and_grads(backend, rm, &batch, pad_id, &config.loss)?;
        let lr = config.schedule.at(step);
        let lr_scale = if step < config.head_only_steps { &head_only } else { &everything };
        let stats = optimizer.step_scaled(backend, &mut rm.model.params, out.grads, lr, lr_scale)?;
        let metrics = RewardMetrics {
            step,
            loss: out.loss,
            bt: out.bt,
            binary: out.binary,
            sft: out.sft,
            accuracy: out.accuracy,
            grad_norm: stats.grad_norm,
            lr,
            skipped: stats.skipped,
        };
        on_step(&metrics, rm)?;
        history.push(metrics);
    }
    Ok(history)
}
