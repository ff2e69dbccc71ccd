//! GELU, tanh approximation (GPT-2's gelu_new).
use crate::{Cpu, Result, Tensor};

pub(crate) fn forward_cpu(_x: &Tensor<Cpu>) -> Result<Tensor<Cpu>> { Err(crate::Error::Backend { backend: "cpu", msg: "not implemented yet".into() }) }
pub(crate) fn backward_cpu(_x: &Tensor<Cpu>, _dy: &Tensor<Cpu>) -> Result<Tensor<Cpu>> { Err(crate::Error::Backend { backend: "cpu", msg: "not implemented yet".into() }) }
