//! Causal grouped-query attention with key padding.
use crate::{Backend, Cpu, Result, Tensor};

pub struct AttentionOut<B: Backend> {
    pub out: Tensor<B>,
    pub lse: Tensor<B>,
}

pub struct AttentionGrads<B: Backend> {
    pub dq: Tensor<B>,
    pub dk: Tensor<B>,
    pub dv: Tensor<B>,
}

pub(crate) fn forward_cpu(_q: &Tensor<Cpu>, _k: &Tensor<Cpu>, _v: &Tensor<Cpu>, _key_valid: &Tensor<Cpu>, _scale: f32) -> Result<AttentionOut<Cpu>> { Err(crate::Error::Backend { backend: "cpu", msg: "not implemented yet".into() }) }
#[allow(clippy::too_many_arguments)]
pub(crate) fn backward_cpu(_q: &Tensor<Cpu>, _k: &Tensor<Cpu>, _v: &Tensor<Cpu>, _key_valid: &Tensor<Cpu>, _out: &Tensor<Cpu>, _lse: &Tensor<Cpu>, _dout: &Tensor<Cpu>, _scale: f32) -> Result<AttentionGrads<Cpu>> { Err(crate::Error::Backend { backend: "cpu", msg: "not implemented yet".into() }) }
