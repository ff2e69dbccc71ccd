//! AdamW over a whole parameter set, with global gradient clipping and a learning-rate schedule.
//! Shared by every trainer (SFT, reward model, critic, policy).

use models::params::ParamSet;
use runtime::ops::adamw::AdamW;
use runtime::ops::grad_norm::clip_grad_norm;
use runtime::{Backend, DType};

use crate::{Error, Result};

/// Linear warm-up from 0 to `peak` over `warmup_steps`, then a cosine decay to
/// `peak·final_ratio` at `total_steps` (flat after that). `final_ratio = 1` is a constant rate
/// after warm-up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LrSchedule {
    pub peak: f32,
    pub warmup_steps: usize,
    pub total_steps: usize,
    pub final_ratio: f32,
}

impl LrSchedule {
    pub fn constant(lr: f32) -> Self {
        LrSchedule { peak: lr, warmup_steps: 0, total_steps: 0, final_ratio: 1.0 }
    }

    /// The rate for step `step` (counting from 0).
    pub fn at(&self, step: usize) -> f32 {
        if step < self.warmup_steps {
            return self.peak * (step + 1) as f32 / self.warmup_steps as f32;
        }
        let decay_steps = self.total_steps.saturating_sub(self.warmup_steps);
        if decay_steps == 0 {
            return self.peak * self.final_ratio;
        }
        let progress = ((step - self.warmup_steps) as f32 / decay_steps as f32).min(1.0);
        let cosine = 0.5 * (1.0 + (std::f32::consts::PI * progress).cos());
        self.peak * (self.final_ratio + (1.0 - self.final_ratio) * cosine)
    }
}

/// What one optimizer step did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepStats {
    /// The global gradient norm before clipping.
    pub grad_norm: f32,
    /// True when the norm was not finite and the step was skipped.
    pub skipped: bool,
}

/// AdamW state (f32 moments shaped like the parameters) and the step count.
pub struct Optimizer<B: Backend> {
    pub hyper: AdamW,
    /// Global gradient-norm bound; `f32::INFINITY` disables clipping.
    pub max_grad_norm: f32,
    m: ParamSet<B>,
    v: ParamSet<B>,
    steps: u32,
    /// Updates each parameter has received: its AdamW bias correction counts these, so that a
    /// parameter frozen for a while starts like a fresh one when it is released.
    param_steps: Vec<u32>,
}

impl<B: Backend> Optimizer<B> {
    /// Fresh state for `params`, which must be f32 (master weights).
    pub fn new(backend: &B, params: &ParamSet<B>, hyper: AdamW, max_grad_norm: f32) -> Result<Self> {
        if let Some((name, t)) = params.iter().find(|(_, t)| t.dtype() != DType::F32) {
            return Err(Error::Config(format!(
                "optimizer: parameter {name} is {}, master weights must be f32",
                t.dtype()
            )));
        }
        if max_grad_norm.is_nan() || max_grad_norm < 0.0 {
            return Err(Error::Config(format!("max_grad_norm must be >= 0, got {max_grad_norm}")));
        }
        hyper.validate(1)?;
        Ok(Optimizer {
            hyper,
            max_grad_norm,
            m: params.zeros_like(backend, DType::F32)?,
            v: params.zeros_like(backend, DType::F32)?,
            steps: 0,
            param_steps: vec![0; params.len()],
        })
    }

    /// Steps taken so far (skipped ones excluded).
    pub fn steps(&self) -> u32 {
        self.steps
    }

    /// Clips `grads` to the global norm bound and applies one AdamW step at rate `lr`. Weight decay
    /// applies to matrices only (not to biases and norm weights, whose scale it would fight). A
    /// non-finite gradient norm skips the step and leaves everything as it was.
    pub fn step(
        &mut self,
        backend: &B,
        params: &mut ParamSet<B>,
        grads: ParamSet<B>,
        lr: f32,
    ) -> Result<StepStats> {
        let all = vec![1.0; params.len()];
        self.step_scaled(backend, params, grads, lr, &all)
    }

    /// [`Optimizer::step`] with parameter `i` at rate `lr·lr_scale[i]`. A parameter with scale 0
    /// is frozen: it, its moments and its step count stay as they are (no weight decay either),
    /// and its gradient neither counts towards the norm nor is clipped.
    pub fn step_scaled(
        &mut self,
        backend: &B,
        params: &mut ParamSet<B>,
        mut grads: ParamSet<B>,
        lr: f32,
        lr_scale: &[f32],
    ) -> Result<StepStats> {
        if grads.len() != params.len() || lr_scale.len() != params.len() {
            return Err(Error::Config(format!(
                "optimizer: {} gradients and {} rate scales for {} parameters",
                grads.len(),
                lr_scale.len(),
                params.len()
            )));
        }
        if let Some(bad) = lr_scale.iter().find(|s| !(s.is_finite() && **s >= 0.0)) {
            return Err(Error::Config(format!("optimizer: a rate scale must be finite and >= 0, got {bad}")));
        }
        let bound = if self.max_grad_norm.is_finite() { self.max_grad_norm } else { f32::MAX };
        let mut clipped: Vec<_> =
            grads.tensors_mut().iter_mut().zip(lr_scale).filter(|(_, &s)| s > 0.0).map(|(g, _)| g).collect();
        let grad_norm = clip_grad_norm(backend, &mut clipped, bound)?;
        if !grad_norm.is_finite() {
            return Ok(StepStats { grad_norm, skipped: true });
        }
        self.steps += 1;
        for i in (0..params.len()).filter(|&i| lr_scale[i] > 0.0) {
            let decay = if params.get(i).dims().len() >= 2 { self.hyper.weight_decay } else { 0.0 };
            let hyper = AdamW { lr: lr * lr_scale[i], weight_decay: decay, ..self.hyper };
            let (m, v) = (self.m.get_mut(i), self.v.get_mut(i));
            self.param_steps[i] += 1;
            backend.adamw_step(params.get_mut(i), grads.get(i), m, v, &hyper, self.param_steps[i])?;
        }
        Ok(StepStats { grad_norm, skipped: false })
    }
}
