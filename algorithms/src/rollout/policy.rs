//! The full forward of a policy (token log-probs and entropies) and of a critic (values) over a
//! minibatch, kept for their backward. Rollout log-probs, reference log-probs and training
//! log-probs all come from [`PolicyForward::run`], so before any update the training log-probs
//! equal the rollout's bit for bit.

use models::params::{GradSlots, ParamSet};
use models::transformer::{Activations, Inputs, Model};
use runtime::ops::logprob::LogProbOut;
use runtime::{Backend, DType, Tensor};

use super::Minibatch;
use crate::Result;

/// A copy of `model` (same layout, parameters copied through the host in their dtype): the frozen
/// reference, or the trunk a critic starts from.
pub fn copy_model<B: Backend>(backend: &B, model: &Model<B>) -> Result<Model<B>> {
    let mut params = ParamSet::default();
    for (name, t) in model.params.iter() {
        params.push(name, backend.upload_f32(t.dims(), &backend.download_f32(t)?, t.dtype())?);
    }
    Ok(Model { layout: model.layout.clone(), params })
}

/// A critic: a copy of the policy's trunk with a scalar (value) head, initialised to zero so
/// that its first values are 0.
pub fn critic_from_policy<B: Backend>(backend: &B, policy: &Model<B>) -> Result<Model<B>> {
    let mut critic = copy_model(backend, policy)?;
    let dtype = critic.params.get(0).dtype();
    critic.layout.add_scalar_head(backend, &mut critic.params, dtype, true, &mut |_, dims| {
        Ok(vec![0.0; dims.iter().product()])
    })?;
    Ok(critic)
}

/// A policy's forward over a minibatch: per-token log-probs and entropies, and what the backward
/// needs.
pub struct PolicyForward<B: Backend> {
    inputs: Inputs<B>,
    acts: Activations<B>,
    logits: Tensor<B>,
    targets: Tensor<B>,
    /// `[b, T_mb]` f32.
    logprob: Tensor<B>,
    /// `[b·T_mb]` f32.
    entropy: Tensor<B>,
    lse: Tensor<B>,
    inv_temperature: f32,
}

impl<B: Backend> PolicyForward<B> {
    /// Runs `model` over `mb`; log-probs are those of `softmax(logits · inv_temperature)`, the
    /// distribution the responses were sampled from.
    pub fn run(backend: &B, model: &Model<B>, mb: &Minibatch, pad_id: u32, inv_temperature: f32) -> Result<Self> {
        let inputs = Inputs::from_rows(backend, &mb.inputs, false, pad_id)?;
        let acts = model.layout.forward(backend, &model.params, &inputs)?;
        let logits = model.layout.logits(backend, &model.params, &acts.hidden)?;
        let targets = backend.upload_u32(&[mb.targets.len()], &mb.targets)?;
        let LogProbOut { logprob, entropy, lse } = backend.logprob_fwd(&logits, &targets, inv_temperature)?;
        let logprob = logprob.reshape(&mb.dims())?;
        Ok(PolicyForward { inputs, acts, logits, targets, logprob, entropy, lse, inv_temperature })
    }

    /// Log-probs `[b, T_mb]` f32.
    pub fn logprob(&self) -> &Tensor<B> {
        &self.logprob
    }

    /// Entropies `[b·T_mb]` f32.
    pub fn entropy(&self) -> &Tensor<B> {
        &self.entropy
    }

    /// Gradients of the parameters from `d(logprob)` `[b, T_mb]` and optionally `d(entropy)`
    /// (any shape of `b·T_mb` elements), f32.
    pub fn backward(
        self,
        backend: &B,
        model: &Model<B>,
        dlogprob: Tensor<B>,
        dentropy: Option<&Tensor<B>>,
    ) -> Result<ParamSet<B>> {
        let n = self.targets.numel();
        let dlogprob = dlogprob.reshape(&[n])?;
        let dentropy =
            dentropy.map(|d| backend.cast(d, DType::F32)).transpose()?.map(|d| d.reshape(&[n])).transpose()?;
        let dlogits = backend.logprob_bwd(
            &self.logits,
            &self.targets,
            &self.lse,
            &self.entropy,
            &dlogprob,
            dentropy.as_ref(),
            self.inv_temperature,
        )?;
        drop(self.logits);
        let mut slots = GradSlots::new(model.params.len());
        let dhidden = model.layout.logits_backward(backend, &model.params, &self.acts.hidden, &dlogits, &mut slots)?;
        model.layout.backward(backend, &model.params, &self.inputs, self.acts, &dhidden, &mut slots)?;
        Ok(slots.into_param_set(backend, &model.params)?)
    }
}

/// Log-probs and entropies `[b·T_mb]` of `model` over `mb`, on the host.
pub fn token_logprobs<B: Backend>(
    backend: &B,
    model: &Model<B>,
    mb: &Minibatch,
    pad_id: u32,
    inv_temperature: f32,
) -> Result<(Vec<f32>, Vec<f32>)> {
    let pass = PolicyForward::run(backend, model, mb, pad_id, inv_temperature)?;
    Ok((backend.download_f32(pass.logprob())?, backend.download_f32(pass.entropy())?))
}

/// A critic's forward over a minibatch: the value `[b, T_mb]` of the state at every position.
pub struct ValueForward<B: Backend> {
    inputs: Inputs<B>,
    acts: Activations<B>,
    rows: Tensor<B>,
    values: Tensor<B>,
}

impl<B: Backend> ValueForward<B> {
    pub fn run(backend: &B, critic: &Model<B>, mb: &Minibatch, pad_id: u32) -> Result<Self> {
        let inputs = Inputs::from_rows(backend, &mb.inputs, false, pad_id)?;
        let acts = critic.layout.forward(backend, &critic.params, &inputs)?;
        let n = inputs.batch * inputs.len;
        let rows = backend.upload_u32(&[n], &(0..n as u32).collect::<Vec<_>>())?;
        let values = critic.layout.scalar(backend, &critic.params, &acts.hidden, &rows)?;
        let values = backend.cast(&values, DType::F32)?.reshape(&[inputs.batch, inputs.len])?;
        Ok(ValueForward { inputs, acts, rows, values })
    }

    /// Values `[b, T_mb]` f32.
    pub fn values(&self) -> &Tensor<B> {
        &self.values
    }

    /// Gradients of the critic's parameters from `d(values)` `[b, T_mb]`.
    pub fn backward(self, backend: &B, critic: &Model<B>, dvalues: &Tensor<B>) -> Result<ParamSet<B>> {
        let (layout, params) = (&critic.layout, &critic.params);
        let mut slots = GradSlots::new(params.len());
        let n = self.rows.numel();
        let dvalues = backend.cast(dvalues, DType::F32)?.reshape(&[n])?;
        let dhidden = layout.scalar_backward(backend, params, &self.acts.hidden, &self.rows, &dvalues, &mut slots)?;
        layout.backward(backend, params, &self.inputs, self.acts, &dhidden, &mut slots)?;
        Ok(slots.into_param_set(backend, params)?)
    }
}
