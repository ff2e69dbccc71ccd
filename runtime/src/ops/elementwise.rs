//! Elementwise arithmetic: residual add, gradient accumulation, in-place scaling.
use crate::{Cpu, Result, Tensor};

pub(crate) fn add_cpu(_a: &Tensor<Cpu>, _b: &Tensor<Cpu>) -> Result<Tensor<Cpu>> { Err(crate::Error::Backend { backend: "cpu", msg: "not implemented yet".into() }) }
pub(crate) fn axpy_cpu(_y: &mut Tensor<Cpu>, _alpha: f32, _x: &Tensor<Cpu>) -> Result<()> { Err(crate::Error::Backend { backend: "cpu", msg: "not implemented yet".into() }) }
pub(crate) fn scale_inplace_cpu(_x: &mut Tensor<Cpu>, _alpha: f32) -> Result<()> { Err(crate::Error::Backend { backend: "cpu", msg: "not implemented yet".into() }) }
