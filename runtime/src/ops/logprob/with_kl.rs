//! The fused log-prob + KL forward: for policy logits `z` and reference logits `z_ref`, both
//! `[N, V]` of one dtype, and targets `[N]`, the policy's [`LogProbOut`], the reference's
//! log-prob of the same targets and the per-token KL estimate `[N]` f32 — what
//! `logprob_fwd(z)`, `logprob_fwd(z_ref)` and `kl_fwd` compute, in one launch on the GPU
//! backends (one block per row reads both rows). The Cpu runs the three ops (the trait's
//! default). No backward: the reference gets no gradient, and the policy's flows through
//! `logprob_bwd` and `kl_bwd`.

use super::{check_forward, check_targets_in_range, LogProbOut, GPU_THREADS};
use crate::gpu::{self, Arg, GpuBackend, Launch};
use crate::ops::kl::KlEstimator;
use crate::{Backend, DType, Error, Result, Tensor};

const OP: &str = "logprob_fwd_kl";

/// Results of [`Backend::logprob_kl_fwd`], each `[N]` f32.
pub struct LogProbKlOut<B: Backend> {
    /// The policy's log-prob, entropy and log-sum-exp, as [`Backend::logprob_fwd`].
    pub policy: LogProbOut<B>,
    /// The reference's log-prob of the same targets.
    pub ref_logprob: Tensor<B>,
    /// The KL estimate of each token from `policy.logprob − ref_logprob`.
    pub kl: Tensor<B>,
}

impl<B: Backend> std::fmt::Debug for LogProbKlOut<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogProbKlOut")
            .field("policy", &self.policy)
            .field("ref_logprob", &self.ref_logprob)
            .field("kl", &self.kl)
            .finish()
    }
}

/// Checks the policy's arguments as [`Backend::logprob_fwd`] and that `ref_logits` has the
/// policy logits' shape and dtype; returns `(N, V)`.
pub fn check_forward_kl<B: Backend>(
    logits: &Tensor<B>,
    ref_logits: &Tensor<B>,
    targets: &Tensor<B>,
    inv_temperature: f32,
) -> Result<(usize, usize)> {
    let nv = check_forward(logits, targets, inv_temperature)?;
    if ref_logits.dims() != logits.dims() {
        return Err(Error::shape(
            OP,
            format!("ref_logits {:?} must have the logits' shape {:?}", ref_logits.dims(), logits.dims()),
        ));
    }
    if ref_logits.dtype() != logits.dtype() {
        return Err(Error::DType {
            op: OP,
            arg: "ref_logits",
            got: ref_logits.dtype(),
            expected: logits.dtype().to_string(),
        });
    }
    Ok(nv)
}

pub(crate) fn forward_kl_gpu<G: GpuBackend>(
    gpu: &G,
    logits: &Tensor<G>,
    ref_logits: &Tensor<G>,
    targets: &Tensor<G>,
    inv_temperature: f32,
    estimator: KlEstimator,
) -> Result<LogProbKlOut<G>> {
    let (rows, classes) = check_forward_kl(logits, ref_logits, targets, inv_temperature)?;
    gpu::transfer::check_u32_values(gpu, targets, classes, |v| check_targets_in_range(OP, v, classes, None))?;
    let (n, v) = (gpu::dim_u32(OP, "N", rows)?, gpu::dim_u32(OP, "V", classes)?);
    let f32_row = || gpu::alloc(gpu, &[rows], DType::F32);
    let out = LogProbKlOut {
        policy: LogProbOut { logprob: f32_row()?, entropy: f32_row()?, lse: f32_row()? },
        ref_logprob: f32_row()?,
        kl: f32_row()?,
    };
    let args = [
        Arg::In(logits),
        Arg::In(ref_logits),
        Arg::In(targets),
        Arg::Out(&out.policy.logprob),
        Arg::Out(&out.policy.entropy),
        Arg::Out(&out.policy.lse),
        Arg::Out(&out.ref_logprob),
        Arg::Out(&out.kl),
        Arg::U32(n),
        Arg::U32(v),
        Arg::F32(inv_temperature),
        Arg::U32(estimator.kernel_code()),
    ];
    gpu::launch(gpu, OP, logits.dtype(), Launch::linear(n, GPU_THREADS), &args)?;
    Ok(out)
}
