//! The scalar head: one number per chosen position, `v = h·wᵀ (+ b)` with `w` `[1, C]`. It is the
//! value head of a critic and the score of a reward model; its parameters are named `score.weight`
//! (and `score.bias`) as in transformers' `*ForSequenceClassification`, and live in the same
//! parameter set as the trunk, so a model can carry both the LM head and the scalar head over one
//! shared trunk (what GRM-style reward models train).

use runtime::ops::gemm::GemmSpec;
use runtime::{Backend, DType, Tensor};

use super::backward::linear_backward;
use super::forward::linear;
use super::layout::{InitFn, Linear, Transformer};
use crate::params::{GradSlots, ParamSet};
use crate::{ModelError, Result};

impl Transformer {
    pub fn has_scalar_head(&self) -> bool {
        self.score.is_some()
    }

    /// Adds the scalar head to `params` (`score.weight` `[1, C]`, and `score.bias` `[1]` when
    /// `bias`), each tensor created by `init(name, dims)`.
    pub fn add_scalar_head<B: Backend>(
        &mut self,
        backend: &B,
        params: &mut ParamSet<B>,
        dtype: DType,
        bias: bool,
        init: &mut InitFn,
    ) -> Result<()> {
        if self.score.is_some() {
            return Err(ModelError::Input("the model already has a scalar head".into()));
        }
        let c = self.config.hidden_size;
        let w = params.push("score.weight", backend.upload_f32(&[1, c], &init("score.weight", &[1, c])?, dtype)?);
        let b = if bias {
            Some(params.push("score.bias", backend.upload_f32(&[1], &init("score.bias", &[1])?, dtype)?))
        } else {
            None
        };
        self.score = Some(Linear { w, b, spec: GemmSpec::nt() });
        Ok(())
    }

    fn score_head(&self) -> Result<Linear> {
        self.score.ok_or_else(|| ModelError::Input("the model has no scalar head (add one with add_scalar_head)".into()))
    }

    /// The scalar head at rows `rows` `[M]` (u32 indices into `hidden` `[N, C]`): values `[M]`.
    pub fn scalar<B: Backend>(&self, backend: &B, params: &ParamSet<B>, hidden: &Tensor<B>, rows: &Tensor<B>) -> Result<Tensor<B>> {
        let head = self.score_head()?;
        let picked = backend.embedding_fwd(rows, hidden)?;
        let values = linear(backend, params, head, &picked)?;
        let m = values.dims()[0];
        Ok(values.reshape(&[m])?)
    }

    /// Backward of [`Transformer::scalar`]: adds the head's gradients to `grads` and returns
    /// d(hidden) `[N, C]` (zero at rows that were not picked).
    pub fn scalar_backward<B: Backend>(
        &self,
        backend: &B,
        params: &ParamSet<B>,
        hidden: &Tensor<B>,
        rows: &Tensor<B>,
        dvalues: &Tensor<B>,
        grads: &mut GradSlots<B>,
    ) -> Result<Tensor<B>> {
        let head = self.score_head()?;
        let picked = backend.embedding_fwd(rows, hidden)?;
        let m = picked.dims()[0];
        let dvalues = backend.cast(dvalues, picked.dtype())?.reshape(&[m, 1])?;
        let dpicked = linear_backward(backend, params, head, &picked, &dvalues, grads)?;
        Ok(backend.embedding_bwd(rows, &dpicked, hidden.dims()[0])?)
    }
}
