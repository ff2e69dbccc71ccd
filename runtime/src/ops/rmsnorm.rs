//! RMSNorm over the last dim.
use crate::{Backend, Cpu, Result, Tensor};

pub struct RmsNormOut<B: Backend> {
    pub y: Tensor<B>,
    pub rstd: Tensor<B>,
}

pub struct RmsNormGrads<B: Backend> {
    pub dx: Tensor<B>,
    pub dweight: Tensor<B>,
}

pub(crate) fn forward_cpu(_x: &Tensor<Cpu>, _w: &Tensor<Cpu>, _eps: f32) -> Result<RmsNormOut<Cpu>> { Err(crate::Error::Backend { backend: "cpu", msg: "not implemented yet".into() }) }
pub(crate) fn backward_cpu(_dy: &Tensor<Cpu>, _x: &Tensor<Cpu>, _w: &Tensor<Cpu>, _rstd: &Tensor<Cpu>) -> Result<RmsNormGrads<Cpu>> { Err(crate::Error::Backend { backend: "cpu", msg: "not implemented yet".into() }) }
