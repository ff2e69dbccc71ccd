//! KL estimators k1, k2, k3.
use crate::{Cpu, Result, Tensor};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KlEstimator {
    K1,
    K2,
    K3,
}

pub(crate) fn forward_cpu(_logprob: &Tensor<Cpu>, _ref_logprob: &Tensor<Cpu>, _estimator: KlEstimator) -> Result<Tensor<Cpu>> { Err(crate::Error::Backend { backend: "cpu", msg: "not implemented yet".into() }) }
pub(crate) fn backward_cpu(_logprob: &Tensor<Cpu>, _ref_logprob: &Tensor<Cpu>, _estimator: KlEstimator, _dkl: &Tensor<Cpu>) -> Result<Tensor<Cpu>> { Err(crate::Error::Backend { backend: "cpu", msg: "not implemented yet".into() }) }
