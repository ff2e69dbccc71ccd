//! Softmax cross-entropy with an ignore index.
//!
//! Shapes: logits `z` `[N, V]` (f32 or bf16), targets `[N]` u32. Per row `n` with target `t`:
//! `loss[n] = lse_n − z[n, t]` where `lse_n = log Σ_j e^(z[n, j])`, and `loss[n] = 0` when
//! `t == ignore_index`. Results: `loss` `[N]` f32 and `lse` `[N]` f32 (every row's log-sum-exp,
//! ignored or not). A target `>= V` that is not `ignore_index` is an error naming its row.
//!
//! Backward (`=`): `d(logits)[n, j] = dloss[n]·(softmax(z_n)_j − δ_jt)` in the logits' dtype,
//! zero rows where the target is ignored; `dloss` is `[N]` f32.
//!
//! This is the fused log-prob at temperature 1 with `loss = −logprob`, so it runs the same row
//! routines ([`crate::ops::logprob`]): one online pass per row, no `[N, V]` intermediate in the
//! forward, and the same determinism.

use rayon::prelude::*;

use super::check;
use super::logprob::{check_logits_targets, check_targets_in_range, grad_rows, rows_per_task, RowGrad, RowStats};
use crate::cpu::{bf16_data, f32_data, from_host, u32_data, HostFloat};
use crate::gpu::{self, Arg, GpuBackend, Launch};
use crate::{Backend, Cpu, DType, Result, Tensor};

const OP_FWD: &str = "cross_entropy_fwd";
const OP_BWD: &str = "cross_entropy_bwd";

/// Threads per block of the GPU kernels (one block per row). The forward's log-sum-exp depends
/// on the block size, so it is a constant.
const GPU_THREADS: u32 = 256;

/// Results of [`Backend::cross_entropy_fwd`], each `[N]` f32.
pub struct CrossEntropyOut<B: Backend> {
    /// Per-row loss, 0 for ignored rows.
    pub loss: Tensor<B>,
    /// Per-row log-sum-exp of the logits, for the backward.
    pub lse: Tensor<B>,
}

impl<B: Backend> std::fmt::Debug for CrossEntropyOut<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CrossEntropyOut").field("loss", &self.loss).field("lse", &self.lse).finish()
    }
}

/// Checks [`Backend::cross_entropy_fwd`]'s arguments; returns `(N, V)`.
pub fn check_forward<B: Backend>(logits: &Tensor<B>, targets: &Tensor<B>) -> Result<(usize, usize)> {
    check_logits_targets(OP_FWD, logits, targets)
}

/// Checks [`Backend::cross_entropy_bwd`]'s arguments: those of the forward, plus `lse` and
/// `dloss` `[N]` f32. Returns `(N, V)`.
pub fn check_backward<B: Backend>(
    logits: &Tensor<B>,
    targets: &Tensor<B>,
    lse: &Tensor<B>,
    dloss: &Tensor<B>,
) -> Result<(usize, usize)> {
    let (n, v) = check_logits_targets(OP_BWD, logits, targets)?;
    for (name, t) in [("lse", lse), ("dloss", dloss)] {
        check::dtype(OP_BWD, name, t, DType::F32)?;
        check::dims(OP_BWD, name, t, &[n])?;
    }
    Ok((n, v))
}

/// Per-row `(loss, lse)`.
fn forward_rows<T: HostFloat>(z: &[T], targets: &[u32], v: usize, ignore_index: u32) -> (Vec<f32>, Vec<f32>) {
    let n = targets.len();
    let (mut loss, mut lse) = (vec![0f32; n], vec![0f32; n]);
    z.par_chunks(v)
        .zip(targets.par_iter())
        .zip(loss.par_iter_mut().zip(lse.par_iter_mut()))
        .with_min_len(rows_per_task(v))
        .for_each(|((row, &t), (loss, lse))| {
            let stats = RowStats::of(row, 1.0);
            *lse = stats.lse();
            if t != ignore_index {
                *loss = -stats.log_softmax(row[t as usize].to_f32());
            }
        });
    (loss, lse)
}

pub(crate) fn forward_cpu(
    logits: &Tensor<Cpu>,
    targets: &Tensor<Cpu>,
    ignore_index: u32,
) -> Result<CrossEntropyOut<Cpu>> {
    let (n, v) = check_forward(logits, targets)?;
    let ids = u32_data(targets);
    check_targets_in_range(OP_FWD, ids, v, Some(ignore_index))?;
    let (loss, lse) = match logits.dtype() {
        DType::BF16 => forward_rows(bf16_data(logits), ids, v, ignore_index),
        _ => forward_rows(&f32_data(logits), ids, v, ignore_index),
    };
    Ok(CrossEntropyOut { loss: from_host(&[n], loss), lse: from_host(&[n], lse) })
}

pub(crate) fn backward_cpu(
    logits: &Tensor<Cpu>,
    targets: &Tensor<Cpu>,
    lse: &Tensor<Cpu>,
    dloss: &Tensor<Cpu>,
    ignore_index: u32,
) -> Result<Tensor<Cpu>> {
    let (_, v) = check_backward(logits, targets, lse, dloss)?;
    let ids = u32_data(targets);
    check_targets_in_range(OP_BWD, ids, v, Some(ignore_index))?;
    let (lse, dloss) = (f32_data(lse), f32_data(dloss));
    let row_grad = |n: usize| {
        (ids[n] != ignore_index).then(|| RowGrad {
            target: ids[n] as usize,
            scale: 1.0,
            lse: lse[n],
            dlogprob: -dloss[n],
            entropy: None,
        })
    };
    Ok(match logits.dtype() {
        DType::BF16 => from_host(logits.dims(), grad_rows(bf16_data(logits), v, row_grad)),
        _ => from_host(logits.dims(), grad_rows(&f32_data(logits), v, row_grad)),
    })
}

/// The kernel gives a NaN loss for a target out of range rather than reporting it, so the
/// targets are checked on the host first (one download of `N` u32), giving the Cpu's error.
pub(crate) fn forward_gpu<G: GpuBackend>(
    gpu: &G,
    logits: &Tensor<G>,
    targets: &Tensor<G>,
    ignore_index: u32,
) -> Result<CrossEntropyOut<G>> {
    let (rows, classes) = check_forward(logits, targets)?;
    gpu::transfer::check_u32_values(gpu, targets, classes, |v| check_targets_in_range(OP_FWD, v, classes, Some(ignore_index)))?;
    let (n, v) = (gpu::dim_u32(OP_FWD, "N", rows)?, gpu::dim_u32(OP_FWD, "V", classes)?);
    let loss = gpu::alloc(gpu, &[rows], DType::F32)?;
    let lse = gpu::alloc(gpu, &[rows], DType::F32)?;
    let args = [
        Arg::In(logits),
        Arg::In(targets),
        Arg::Out(&loss),
        Arg::Out(&lse),
        Arg::U32(n),
        Arg::U32(v),
        Arg::U32(ignore_index),
    ];
    gpu::launch(gpu, OP_FWD, logits.dtype(), Launch::linear(n, GPU_THREADS), &args)?;
    Ok(CrossEntropyOut { loss, lse })
}

pub(crate) fn backward_gpu<G: GpuBackend>(
    gpu: &G,
    logits: &Tensor<G>,
    targets: &Tensor<G>,
    lse: &Tensor<G>,
    dloss: &Tensor<G>,
    ignore_index: u32,
) -> Result<Tensor<G>> {
    let (rows, classes) = check_backward(logits, targets, lse, dloss)?;
    gpu::transfer::check_u32_values(gpu, targets, classes, |v| check_targets_in_range(OP_BWD, v, classes, Some(ignore_index)))?;
    let (n, v) = (gpu::dim_u32(OP_BWD, "N", rows)?, gpu::dim_u32(OP_BWD, "V", classes)?);
    let dlogits = gpu::alloc(gpu, logits.dims(), logits.dtype())?;
    let args = [
        Arg::In(logits),
        Arg::In(targets),
        Arg::In(lse),
        Arg::In(dloss),
        Arg::Out(&dlogits),
        Arg::U32(n),
        Arg::U32(v),
        Arg::U32(ignore_index),
    ];
    gpu::launch(gpu, OP_BWD, logits.dtype(), Launch::linear(n, GPU_THREADS), &args)?;
    Ok(dlogits)
}
