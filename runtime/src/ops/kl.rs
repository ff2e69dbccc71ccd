//! Per-token estimators of KL(π ‖ π_ref) from sampled-token log-probs (Schulman's k1, k2, k3).
//!
//! Shapes: `logprob` and `ref_logprob` of any one shape and float dtype (usually `[B, T]` f32);
//! the result has that shape and dtype. With `log r = logprob − ref_logprob`:
//!
//! - k1 = `log r` (unbiased, high variance, can be negative);
//! - k2 = `(log r)² / 2` (biased, low variance, always >= 0);
//! - k3 = `e^(−log r) − 1 + log r` (unbiased for tokens sampled from π, always >= 0).
//!
//! Backward (`=`): `d(logprob)` for upstream `dkl`, same shape and dtype; the reference gets no
//! gradient. k1: `dkl`; k2: `dkl·log r`; k3: `dkl·(1 − e^(−log r))`.
//!
//! k3 is evaluated as `expm1(−log r) + log r` and its derivative as `−expm1(−log r)`: for the
//! small `log r` that policy updates produce, `e^(−log r) − 1` would lose most of its digits.

use super::check;
use crate::cpu::{f32_data, from_f32};
use crate::gpu::{self, Arg, GpuBackend};
use crate::{Backend, Cpu, Result, Tensor};

/// Which KL estimator [`Backend::kl_fwd`] computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KlEstimator {
    /// `log r`.
    K1,
    /// `(log r)² / 2`.
    K2,
    /// `e^(−log r) − 1 + log r`.
    K3,
}

impl KlEstimator {
    pub(crate) fn value(self, log_ratio: f32) -> f32 {
        match self {
            KlEstimator::K1 => log_ratio,
            KlEstimator::K2 => 0.5 * log_ratio * log_ratio,
            KlEstimator::K3 => (-log_ratio).exp_m1() + log_ratio,
        }
    }

    /// The kernels' `estimator` argument.
    pub(crate) fn kernel_code(self) -> u32 {
        match self {
            KlEstimator::K1 => 0,
            KlEstimator::K2 => 1,
            KlEstimator::K3 => 2,
        }
    }

    /// Derivative with respect to `log r` (and so to the policy's log-prob).
    pub(crate) fn derivative(self, log_ratio: f32) -> f32 {
        match self {
            KlEstimator::K1 => 1.0,
            KlEstimator::K2 => log_ratio,
            KlEstimator::K3 => -(-log_ratio).exp_m1(),
        }
    }
}

/// Checks [`Backend::kl_fwd`]'s arguments: floats of one dtype and one shape.
pub fn check_forward<B: Backend>(logprob: &Tensor<B>, ref_logprob: &Tensor<B>) -> Result<()> {
    check::same_float("kl_fwd", &[("logprob", logprob), ("ref_logprob", ref_logprob)])?;
    check::same_shape("kl_fwd", ("logprob", logprob), ("ref_logprob", ref_logprob))
}

/// Checks [`Backend::kl_bwd`]'s arguments: floats of one dtype and one shape.
pub fn check_backward<B: Backend>(logprob: &Tensor<B>, ref_logprob: &Tensor<B>, dkl: &Tensor<B>) -> Result<()> {
    let args = [("logprob", logprob), ("ref_logprob", ref_logprob), ("dkl", dkl)];
    check::same_float("kl_bwd", &args)?;
    check::same_shape("kl_bwd", args[0], args[1])?;
    check::same_shape("kl_bwd", args[0], args[2])
}

/// `f(logprob − ref_logprob)` per element, as f32. `N = B·T` is small next to the model's
/// tensors, so one thread is enough.
fn map_log_ratio(logprob: &Tensor<Cpu>, ref_logprob: &Tensor<Cpu>, f: impl Fn(usize, f32) -> f32) -> Vec<f32> {
    let (lp, rp) = (f32_data(logprob), f32_data(ref_logprob));
    lp.iter().zip(rp.iter()).enumerate().map(|(i, (&lp, &rp))| f(i, lp - rp)).collect()
}

pub(crate) fn forward_cpu(
    logprob: &Tensor<Cpu>,
    ref_logprob: &Tensor<Cpu>,
    estimator: KlEstimator,
) -> Result<Tensor<Cpu>> {
    check_forward(logprob, ref_logprob)?;
    let kl = map_log_ratio(logprob, ref_logprob, |_, log_ratio| estimator.value(log_ratio));
    Ok(from_f32(logprob.dims(), kl, logprob.dtype()))
}

pub(crate) fn backward_cpu(
    logprob: &Tensor<Cpu>,
    ref_logprob: &Tensor<Cpu>,
    estimator: KlEstimator,
    dkl: &Tensor<Cpu>,
) -> Result<Tensor<Cpu>> {
    check_backward(logprob, ref_logprob, dkl)?;
    let dkl = f32_data(dkl);
    let grad = map_log_ratio(logprob, ref_logprob, |i, log_ratio| dkl[i] * estimator.derivative(log_ratio));
    Ok(from_f32(logprob.dims(), grad, logprob.dtype()))
}

pub(crate) fn forward_gpu<G: GpuBackend>(
    gpu: &G,
    logprob: &Tensor<G>,
    ref_logprob: &Tensor<G>,
    estimator: KlEstimator,
) -> Result<Tensor<G>> {
    check_forward(logprob, ref_logprob)?;
    let dtype = logprob.dtype();
    let n = gpu::dim_u32("kl_fwd", "n", logprob.numel())?;
    let kl = gpu::alloc(gpu, logprob.dims(), dtype)?;
    let args = [Arg::In(logprob), Arg::In(ref_logprob), Arg::Out(&kl), Arg::U32(n), Arg::U32(estimator.kernel_code())];
    gpu::launch(gpu, "kl_fwd", dtype, gpu::elementwise_launch(n, dtype), &args)?;
    Ok(kl)
}

pub(crate) fn backward_gpu<G: GpuBackend>(
    gpu: &G,
    logprob: &Tensor<G>,
    ref_logprob: &Tensor<G>,
    estimator: KlEstimator,
    dkl: &Tensor<G>,
) -> Result<Tensor<G>> {
    check_backward(logprob, ref_logprob, dkl)?;
    let dtype = logprob.dtype();
    let n = gpu::dim_u32("kl_bwd", "n", logprob.numel())?;
    let grad = gpu::alloc(gpu, logprob.dims(), dtype)?;
    let args = [
        Arg::In(logprob),
        Arg::In(ref_logprob),
        Arg::In(dkl),
        Arg::Out(&grad),
        Arg::U32(n),
        Arg::U32(estimator.kernel_code()),
    ];
    gpu::launch(gpu, "kl_bwd", dtype, gpu::elementwise_launch(n, dtype), &args)?;
    Ok(grad)
}
