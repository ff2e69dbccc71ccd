//! SwiGLU: silu(gate) * up.
use crate::{Backend, Cpu, Result, Tensor};

pub struct SwiGluGrads<B: Backend> {
    pub dgate: Tensor<B>,
    pub dup: Tensor<B>,
}

pub(crate) fn forward_cpu(_gate: &Tensor<Cpu>, _up: &Tensor<Cpu>) -> Result<Tensor<Cpu>> { Err(crate::Error::Backend { backend: "cpu", msg: "not implemented yet".into() }) }
pub(crate) fn backward_cpu(_gate: &Tensor<Cpu>, _up: &Tensor<Cpu>, _dy: &Tensor<Cpu>) -> Result<SwiGluGrads<Cpu>> { Err(crate::Error::Backend { backend: "cpu", msg: "not implemented yet".into() }) }
