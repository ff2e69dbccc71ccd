//! Fused token log-prob and entropy of a tempered softmax, one pass over each row of logits.
//!
//! Shapes: logits `z` `[N, V]` (f32 or bf16), targets `[N]` u32 with every target `< V`, inverse
//! temperature `s > 0`. Per row, with `x = s·z`, `lse = log Σ_j e^(x_j)` and `p_j = e^(x_j − lse)`:
//!
//! - `logprob = x_t − lse` (the target's log-probability),
//! - `entropy = H = −Σ_j p_j log p_j = lse − Σ_j p_j x_j`,
//! - `lse`, saved for the backward; all three `[N]` f32.
//!
//! Forward: an online log-sum-exp reads each row once and never materialises the `[N, V]`
//! softmax. It keeps a running max `m`, `S = Σ e^(x−m)` and `Q = Σ e^(x−m)·(x−m)`; when a block of
//! the row raises the max to `m'`, both are rescaled by `e^(m−m')` (and `Q` shifted by
//! `(m−m')·S`). Then `lse = m + log S` and `H = log S − Q/S`. `Q` is kept relative to the max
//! rather than as `Σ e^(x−m)·x` so that `H` is not the difference of two numbers the size of the
//! logits, which for logits of ±1e4 would cancel away every digit of the entropy. Exponentials use
//! a vectorisable polynomial (a few ulp) rather than a library call per element.
//!
//! Backward (`=`): `d(logits)` `[N, V]` in the logits' dtype, with `p` recomputed from the saved
//! `lse`: `dz_j = s·[dlogprob·(δ_jt − p_j) − dentropy·p_j·(log p_j + H)]`; the entropy term is
//! skipped when there is no `dentropy`.
//!
//! Determinism: a row is reduced by one thread in a fixed order (blocks of 256 in sequence, each
//! summed by a fixed pairwise tree), whatever N and the thread count, so a row's results are
//! bit-identical alone or in any batch: rollout and training log-probs agree exactly.
//!
//! The row kernels (`logprob/row.rs`) also serve [`crate::ops::cross_entropy`] (`s = 1`,
//! `loss = −logprob`).

mod row;
mod with_kl;

use rayon::prelude::*;

pub(crate) use self::row::{grad_rows, rows_per_task, OnlineSums, RowGrad, RowStats};
pub(crate) use self::with_kl::forward_kl_gpu;
pub use self::with_kl::{check_forward_kl, LogProbKlOut};
use super::check;
use crate::cpu::{bf16_data, f32_data, from_host, u32_data, HostFloat};
use crate::gpu::{self, Arg, GpuBackend, Launch};
use crate::{Backend, Cpu, DType, Error, Result, Tensor};

const OP_FWD: &str = "logprob_fwd";
const OP_BWD: &str = "logprob_bwd";
const OP_BWD_ENTROPY: &str = "logprob_bwd_entropy";

/// Threads per block of the GPU kernels (one block per row). Which thread folds which logit,
/// and so the forward's bits, depend on it, so it is a constant.
const GPU_THREADS: u32 = 256;

/// Results of [`Backend::logprob_fwd`], each `[N]` f32.
pub struct LogProbOut<B: Backend> {
    /// `log softmax(s·z)[target]`.
    pub logprob: Tensor<B>,
    /// Entropy of `softmax(s·z)`.
    pub entropy: Tensor<B>,
    /// `log Σ_j e^(s·z_j)`, for the backward.
    pub lse: Tensor<B>,
}

impl<B: Backend> std::fmt::Debug for LogProbOut<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogProbOut")
            .field("logprob", &self.logprob)
            .field("entropy", &self.entropy)
            .field("lse", &self.lse)
            .finish()
    }
}

/// Checks logits `[N, V]` (float, `V >= 1`) and targets `[N]` (u32); returns `(N, V)`. Whether
/// each target is `< V` depends on the data: backends check it where the data is
/// ([`check_targets_in_range`] on the host).
pub fn check_logits_targets<B: Backend>(
    op: &'static str,
    logits: &Tensor<B>,
    targets: &Tensor<B>,
) -> Result<(usize, usize)> {
    check::float(op, "logits", logits)?;
    check::rank(op, "logits", logits, 2)?;
    let (n, v) = (logits.dims()[0], logits.dims()[1]);
    if v == 0 {
        return Err(Error::shape(op, format!("`logits` has shape {}, a softmax needs V >= 1", logits.shape())));
    }
    check::dtype(op, "targets", targets, DType::U32)?;
    if targets.dims() != [n] {
        return Err(Error::shape(
            op,
            format!("`targets` has shape {}, expected [{n}] for logits {}", targets.shape(), logits.shape()),
        ));
    }
    Ok((n, v))
}

/// Checks [`Backend::logprob_fwd`]'s arguments; returns `(N, V)`.
pub fn check_forward<B: Backend>(
    logits: &Tensor<B>,
    targets: &Tensor<B>,
    inv_temperature: f32,
) -> Result<(usize, usize)> {
    let nv = check_logits_targets(OP_FWD, logits, targets)?;
    check::positive(OP_FWD, "inv_temperature", inv_temperature)?;
    Ok(nv)
}

/// Checks [`Backend::logprob_bwd`]'s arguments: those of the forward, plus `lse`, `entropy`,
/// `dlogprob` and `dentropy` all `[N]` f32. Returns `(N, V)`.
pub fn check_backward<B: Backend>(
    logits: &Tensor<B>,
    targets: &Tensor<B>,
    lse: &Tensor<B>,
    entropy: &Tensor<B>,
    dlogprob: &Tensor<B>,
    dentropy: Option<&Tensor<B>>,
    inv_temperature: f32,
) -> Result<(usize, usize)> {
    let (n, v) = check_logits_targets(OP_BWD, logits, targets)?;
    check::positive(OP_BWD, "inv_temperature", inv_temperature)?;
    let rows = [("lse", lse), ("entropy", entropy), ("dlogprob", dlogprob)];
    for (name, t) in rows.into_iter().chain(dentropy.map(|d| ("dentropy", d))) {
        check::dtype(OP_BWD, name, t, DType::F32)?;
        check::dims(OP_BWD, name, t, &[n])?;
    }
    Ok((n, v))
}

/// Fails on the first target `>= V` that is not `ignore_index`, naming its row and value.
pub fn check_targets_in_range(
    op: &'static str,
    targets: &[u32],
    v: usize,
    ignore_index: Option<u32>,
) -> Result<()> {
    for (row, &t) in targets.iter().enumerate() {
        if t as usize >= v && Some(t) != ignore_index {
            let ignored = ignore_index.map_or(String::new(), |i| format!(" and is not ignore_index {i}"));
            return Err(Error::argument(
                op,
                format!("target {t} at row {row} is out of range for logits [{}, {v}]{ignored}", targets.len()),
            ));
        }
    }
    Ok(())
}

struct Forward {
    logprob: Vec<f32>,
    entropy: Vec<f32>,
    lse: Vec<f32>,
}

fn forward_rows<T: HostFloat>(z: &[T], targets: &[u32], v: usize, scale: f32) -> Forward {
    let n = targets.len();
    let mut out = Forward { logprob: vec![0.0; n], entropy: vec![0.0; n], lse: vec![0.0; n] };
    let results = out.logprob.par_iter_mut().zip(out.entropy.par_iter_mut()).zip(out.lse.par_iter_mut());
    z.par_chunks(v)
        .zip(targets.par_iter())
        .zip(results)
        .with_min_len(rows_per_task(v))
        .for_each(|((row, &t), ((logprob, entropy), lse))| {
            let stats = RowStats::of(row, scale);
            *logprob = stats.log_softmax(scale * row[t as usize].to_f32());
            *entropy = stats.entropy();
            *lse = stats.lse();
        });
    out
}

pub(crate) fn forward_cpu(
    logits: &Tensor<Cpu>,
    targets: &Tensor<Cpu>,
    inv_temperature: f32,
) -> Result<LogProbOut<Cpu>> {
    let (n, v) = check_forward(logits, targets, inv_temperature)?;
    let ids = u32_data(targets);
    check_targets_in_range(OP_FWD, ids, v, None)?;
    let out = match logits.dtype() {
        DType::BF16 => forward_rows(bf16_data(logits), ids, v, inv_temperature),
        _ => forward_rows(&f32_data(logits), ids, v, inv_temperature),
    };
    Ok(LogProbOut {
        logprob: from_host(&[n], out.logprob),
        entropy: from_host(&[n], out.entropy),
        lse: from_host(&[n], out.lse),
    })
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn backward_cpu(
    logits: &Tensor<Cpu>,
    targets: &Tensor<Cpu>,
    lse: &Tensor<Cpu>,
    entropy: &Tensor<Cpu>,
    dlogprob: &Tensor<Cpu>,
    dentropy: Option<&Tensor<Cpu>>,
    inv_temperature: f32,
) -> Result<Tensor<Cpu>> {
    let (_, v) = check_backward(logits, targets, lse, entropy, dlogprob, dentropy, inv_temperature)?;
    let ids = u32_data(targets);
    check_targets_in_range(OP_BWD, ids, v, None)?;
    let (lse, entropy, dlogprob) = (f32_data(lse), f32_data(entropy), f32_data(dlogprob));
    let dentropy = dentropy.map(f32_data);
    let row_grad = |n: usize| {
        Some(RowGrad {
            target: ids[n] as usize,
            scale: inv_temperature,
            lse: lse[n],
            dlogprob: dlogprob[n],
            entropy: dentropy.as_ref().map(|d| (d[n], entropy[n])),
        })
    };
    Ok(match logits.dtype() {
        DType::BF16 => from_host(logits.dims(), grad_rows(bf16_data(logits), v, row_grad)),
        _ => from_host(logits.dims(), grad_rows(&f32_data(logits), v, row_grad)),
    })
}

/// The kernel reads no logit out of range but gives a NaN log-prob for a target `>= V`, so the
/// targets are checked on the host first (one download of `N` u32), giving the Cpu's error.
pub(crate) fn forward_gpu<G: GpuBackend>(
    gpu: &G,
    logits: &Tensor<G>,
    targets: &Tensor<G>,
    inv_temperature: f32,
) -> Result<LogProbOut<G>> {
    let (rows, classes) = check_forward(logits, targets, inv_temperature)?;
    gpu::transfer::check_u32_values(gpu, targets, classes, |v| check_targets_in_range(OP_FWD, v, classes, None))?;
    let (n, v) = (gpu::dim_u32(OP_FWD, "N", rows)?, gpu::dim_u32(OP_FWD, "V", classes)?);
    let out = LogProbOut {
        logprob: gpu::alloc(gpu, &[rows], DType::F32)?,
        entropy: gpu::alloc(gpu, &[rows], DType::F32)?,
        lse: gpu::alloc(gpu, &[rows], DType::F32)?,
    };
    let args = [
        Arg::In(logits),
        Arg::In(targets),
        Arg::Out(&out.logprob),
        Arg::Out(&out.entropy),
        Arg::Out(&out.lse),
        Arg::U32(n),
        Arg::U32(v),
        Arg::F32(inv_temperature),
    ];
    gpu::launch(gpu, OP_FWD, logits.dtype(), Launch::linear(n, GPU_THREADS), &args)?;
    Ok(out)
}

/// `logprob_bwd` without a `dentropy`, `logprob_bwd_entropy` with one.
#[allow(clippy::too_many_arguments)]
pub(crate) fn backward_gpu<G: GpuBackend>(
    gpu: &G,
    logits: &Tensor<G>,
    targets: &Tensor<G>,
    lse: &Tensor<G>,
    entropy: &Tensor<G>,
    dlogprob: &Tensor<G>,
    dentropy: Option<&Tensor<G>>,
    inv_temperature: f32,
) -> Result<Tensor<G>> {
    let (rows, classes) = check_backward(logits, targets, lse, entropy, dlogprob, dentropy, inv_temperature)?;
    gpu::transfer::check_u32_values(gpu, targets, classes, |v| check_targets_in_range(OP_BWD, v, classes, None))?;
    let (n, v) = (gpu::dim_u32(OP_BWD, "N", rows)?, gpu::dim_u32(OP_BWD, "V", classes)?);
    let dlogits = gpu::alloc(gpu, logits.dims(), logits.dtype())?;
    let sizes = [Arg::U32(n), Arg::U32(v), Arg::F32(inv_temperature)];
    let (stem, args): (&str, Vec<Arg<'_, G>>) = match dentropy {
        None => (OP_BWD, vec![Arg::In(logits), Arg::In(targets), Arg::In(lse), Arg::In(dlogprob), Arg::Out(&dlogits)]),
        Some(dentropy) => (
            OP_BWD_ENTROPY,
            vec![
                Arg::In(logits),
                Arg::In(targets),
                Arg::In(lse),
                Arg::In(entropy),
                Arg::In(dlogprob),
                Arg::In(dentropy),
                Arg::Out(&dlogits),
            ],
        ),
    };
    let args: Vec<Arg<'_, G>> = args.into_iter().chain(sizes).collect();
    gpu::launch(gpu, stem, logits.dtype(), Launch::linear(n, GPU_THREADS), &args)?;
    Ok(dlogits)
}
