//! AdamW.
use crate::{Cpu, Result, Tensor};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamW {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
}

pub(crate) fn step_cpu(_param: &mut Tensor<Cpu>, _grad: &Tensor<Cpu>, _m: &mut Tensor<Cpu>, _v: &mut Tensor<Cpu>, _hyper: &AdamW, _step: u32) -> Result<()> { Err(crate::Error::Backend { backend: "cpu", msg: "not implemented yet".into() }) }
