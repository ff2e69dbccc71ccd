//! Embedding: row gather and scatter-add.
use crate::{Cpu, Result, Tensor};

pub(crate) fn forward_cpu(_ids: &Tensor<Cpu>, _table: &Tensor<Cpu>) -> Result<Tensor<Cpu>> { Err(crate::Error::Backend { backend: "cpu", msg: "not implemented yet".into() }) }
pub(crate) fn backward_cpu(_ids: &Tensor<Cpu>, _dy: &Tensor<Cpu>, _vocab: usize) -> Result<Tensor<Cpu>> { Err(crate::Error::Backend { backend: "cpu", msg: "not implemented yet".into() }) }
