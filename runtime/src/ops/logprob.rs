//! Fused token log-prob and entropy.
use crate::{Backend, Cpu, Result, Tensor};

pub struct LogProbOut<B: Backend> {
    pub logprob: Tensor<B>,
    pub entropy: Tensor<B>,
    pub lse: Tensor<B>,
}

pub(crate) fn forward_cpu(_logits: &Tensor<Cpu>, _targets: &Tensor<Cpu>, _inv_temperature: f32) -> Result<LogProbOut<Cpu>> { Err(crate::Error::Backend { backend: "cpu", msg: "not implemented yet".into() }) }
#[allow(clippy::too_many_arguments)]
pub(crate) fn backward_cpu(_logits: &Tensor<Cpu>, _targets: &Tensor<Cpu>, _lse: &Tensor<Cpu>, _entropy: &Tensor<Cpu>, _dlogprob: &Tensor<Cpu>, _dentropy: Option<&Tensor<Cpu>>, _inv_temperature: f32) -> Result<Tensor<Cpu>> { Err(crate::Error::Backend { backend: "cpu", msg: "not implemented yet".into() }) }
