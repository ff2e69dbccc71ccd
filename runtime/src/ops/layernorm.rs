//! LayerNorm over the last dim.
use crate::{Backend, Cpu, Result, Tensor};

pub struct LayerNormOut<B: Backend> {
    pub y: Tensor<B>,
    pub mean: Tensor<B>,
    pub rstd: Tensor<B>,
}

pub struct LayerNormGrads<B: Backend> {
    pub dx: Tensor<B>,
    pub dweight: Tensor<B>,
    pub dbias: Tensor<B>,
}

pub(crate) fn forward_cpu(_x: &Tensor<Cpu>, _w: &Tensor<Cpu>, _b: &Tensor<Cpu>, _eps: f32) -> Result<LayerNormOut<Cpu>> { Err(crate::Error::Backend { backend: "cpu", msg: "not implemented yet".into() }) }
pub(crate) fn backward_cpu(_dy: &Tensor<Cpu>, _x: &Tensor<Cpu>, _w: &Tensor<Cpu>, _mean: &Tensor<Cpu>, _rstd: &Tensor<Cpu>) -> Result<LayerNormGrads<Cpu>> { Err(crate::Error::Backend { backend: "cpu", msg: "not implemented yet".into() }) }
