//! Rotary position embedding, rotate-half layout.
use crate::{Cpu, Result, Tensor};

pub(crate) fn forward_cpu(_x: &Tensor<Cpu>, _positions: &Tensor<Cpu>, _theta: f32) -> Result<Tensor<Cpu>> { Err(crate::Error::Backend { backend: "cpu", msg: "not implemented yet".into() }) }
pub(crate) fn backward_cpu(_dy: &Tensor<Cpu>, _positions: &Tensor<Cpu>, _theta: f32) -> Result<Tensor<Cpu>> { Err(crate::Error::Backend { backend: "cpu", msg: "not implemented yet".into() }) }
