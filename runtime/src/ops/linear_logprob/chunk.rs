//! The per-chunk ops of [`super::LinearLogProb`]: the fold of a chunk of logits into the
//! softmax state ([`Backend::linear_logprob_fold`]) and the gradient of a chunk
//! ([`Backend::linear_logprob_chunk_bwd`]), their checks, the Cpu implementations (the log-prob's
//! row kernels, `ops::logprob::row`) and the GPU launchers (`kernels/src/linear_logprob.cu`).

use rayon::prelude::*;

use super::{Folded, SoftmaxChunkState, VocabChunk};
use crate::cpu::{bf16_data, f32_data, from_host, u32_data, HostFloat};
use crate::gpu::{self, Arg, GpuBackend, Launch};
use crate::ops::check;
use crate::ops::logprob::{check_targets_in_range, grad_rows, rows_per_task, LogProbOut, OnlineSums, RowGrad};
use crate::{Backend, Cpu, DType, Error, Result, Tensor};

const OP_FOLD: &str = "linear_logprob_fold";
const OP_CHUNK_BWD: &str = "linear_logprob_chunk_bwd";

/// Threads per block (one block per row); which thread folds which logit depends on it.
const GPU_THREADS: u32 = 256;

/// Checks a chunk of logits `[N, Vc]` (`Vc >= 1`) lying inside the vocabulary, targets `[N]`
/// u32, `s > 0` and the `[N]` f32 row tensors; returns `(N, Vc)`.
fn check_chunk<B: Backend>(
    op: &'static str,
    chunk: &Tensor<B>,
    targets: &Tensor<B>,
    rows: &[(&'static str, &Tensor<B>)],
    span: VocabChunk,
    inv_temperature: f32,
) -> Result<(usize, usize)> {
    check::float(op, "chunk", chunk)?;
    check::rank(op, "chunk", chunk, 2)?;
    let (n, vc) = (chunk.dims()[0], chunk.dims()[1]);
    if vc == 0 || span.offset + vc > span.vocab {
        return Err(Error::shape(
            op,
            format!(
                "chunk {} must be [N, Vc] with Vc >= 1 inside the vocabulary: columns {}..{} of {}",
                chunk.shape(),
                span.offset,
                span.offset + vc,
                span.vocab
            ),
        ));
    }
    check::dtype(op, "targets", targets, DType::U32)?;
    check::dims(op, "targets", targets, &[n])?;
    check::positive(op, "inv_temperature", inv_temperature)?;
    for &(name, t) in rows {
        check::dtype(op, name, t, DType::F32)?;
        check::dims(op, name, t, &[n])?;
    }
    Ok((n, vc))
}

fn state_rows<B: Backend>(state: Option<&SoftmaxChunkState<B>>) -> Vec<(&'static str, &Tensor<B>)> {
    state.map_or_else(Vec::new, |s| {
        vec![("max", &s.max), ("sum", &s.sum), ("shifted", &s.shifted), ("target_logit", &s.target_logit)]
    })
}

/// Checks [`Backend::linear_logprob_fold`]'s arguments; returns `(N, Vc)`.
pub fn check_fold<B: Backend>(
    chunk: &Tensor<B>,
    targets: &Tensor<B>,
    state: Option<&SoftmaxChunkState<B>>,
    span: VocabChunk,
    inv_temperature: f32,
) -> Result<(usize, usize)> {
    check_chunk(OP_FOLD, chunk, targets, &state_rows(state), span, inv_temperature)
}

/// Checks [`Backend::linear_logprob_chunk_bwd`]'s arguments; returns `(N, Vc)`.
#[allow(clippy::too_many_arguments)]
pub fn check_chunk_bwd<B: Backend>(
    chunk: &Tensor<B>,
    targets: &Tensor<B>,
    lse: &Tensor<B>,
    entropy: &Tensor<B>,
    dlogprob: &Tensor<B>,
    dentropy: Option<&Tensor<B>>,
    span: VocabChunk,
    inv_temperature: f32,
) -> Result<(usize, usize)> {
    let mut rows = vec![("lse", lse), ("entropy", entropy), ("dlogprob", dlogprob)];
    rows.extend(dentropy.map(|d| ("dentropy", d)));
    check_chunk(OP_CHUNK_BWD, chunk, targets, &rows, span, inv_temperature)
}

/// One row's sums after the chunk, and its target's scaled logit (NaN until a chunk holds it).
fn fold_rows<T: HostFloat>(
    z: &[T],
    ids: &[u32],
    prior: Option<[&[f32]; 4]>,
    vc: usize,
    offset: usize,
    scale: f32,
) -> Vec<(OnlineSums, f32)> {
    z.par_chunks(vc)
        .zip(ids.par_iter())
        .enumerate()
        .with_min_len(rows_per_task(vc))
        .map(|(r, (row, &t))| {
            let sums = OnlineSums::of(row, scale);
            // A target before the chunk wraps past its end.
            let here = row.get((t as usize).wrapping_sub(offset)).map(|z| scale * z.to_f32());
            match prior {
                None => (sums, here.unwrap_or(f32::NAN)),
                Some([max, sum, shifted, xt]) => {
                    let before = OnlineSums { max: max[r], sum: sum[r], shifted: shifted[r] };
                    (before.merge(sums), here.unwrap_or(xt[r]))
                }
            }
        })
        .collect()
}

pub(crate) fn fold_cpu(
    chunk: &Tensor<Cpu>,
    targets: &Tensor<Cpu>,
    state: Option<&SoftmaxChunkState<Cpu>>,
    span: VocabChunk,
    inv_temperature: f32,
) -> Result<Folded<Cpu>> {
    let (n, vc) = check_fold(chunk, targets, state, span, inv_temperature)?;
    let ids = u32_data(targets);
    check_targets_in_range(OP_FOLD, ids, span.vocab, None)?;
    let prior = state.map(|s| [f32_data(&s.max), f32_data(&s.sum), f32_data(&s.shifted), f32_data(&s.target_logit)]);
    let prior_slices = prior.as_ref().map(|[a, b, c, d]| [&a[..], &b[..], &c[..], &d[..]]);
    let (offset, s) = (span.offset, inv_temperature);
    let rows = match chunk.dtype() {
        DType::BF16 => fold_rows(bf16_data(chunk), ids, prior_slices, vc, offset, s),
        _ => fold_rows(&f32_data(chunk), ids, prior_slices, vc, offset, s),
    };
    let column = |f: &dyn Fn(&(OnlineSums, f32)) -> f32| from_host(&[n], rows.iter().map(f).collect());
    if span.offset + vc < span.vocab {
        return Ok(Folded::Partial(SoftmaxChunkState {
            max: column(&|r| r.0.max),
            sum: column(&|r| r.0.sum),
            shifted: column(&|r| r.0.shifted),
            target_logit: column(&|r| r.1),
        }));
    }
    Ok(Folded::Done(LogProbOut {
        logprob: column(&|r| r.0.stats().log_softmax(r.1)),
        entropy: column(&|r| r.0.stats().entropy()),
        lse: column(&|r| r.0.stats().lse()),
    }))
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn chunk_bwd_cpu(
    chunk: &Tensor<Cpu>,
    targets: &Tensor<Cpu>,
    lse: &Tensor<Cpu>,
    entropy: &Tensor<Cpu>,
    dlogprob: &Tensor<Cpu>,
    dentropy: Option<&Tensor<Cpu>>,
    span: VocabChunk,
    inv_temperature: f32,
) -> Result<Tensor<Cpu>> {
    let (_, vc) = check_chunk_bwd(chunk, targets, lse, entropy, dlogprob, dentropy, span, inv_temperature)?;
    let ids = u32_data(targets);
    check_targets_in_range(OP_CHUNK_BWD, ids, span.vocab, None)?;
    let (lse, entropy, dlogprob) = (f32_data(lse), f32_data(entropy), f32_data(dlogprob));
    let dentropy = dentropy.map(f32_data);
    let row_grad = |r: usize| {
        Some(RowGrad {
            // A target outside the chunk lands past its end (wrapping when before it): no one-hot.
            target: (ids[r] as usize).wrapping_sub(span.offset),
            scale: inv_temperature,
            lse: lse[r],
            dlogprob: dlogprob[r],
            entropy: dentropy.as_ref().map(|d| (d[r], entropy[r])),
        })
    };
    Ok(match chunk.dtype() {
        DType::BF16 => from_host(chunk.dims(), grad_rows(bf16_data(chunk), vc, row_grad)),
        _ => from_host(chunk.dims(), grad_rows(&f32_data(chunk), vc, row_grad)),
    })
}

/// The targets are checked against V on the host first (free when the host wrote them), as
/// `logprob_fwd` does: a target no chunk holds would give a NaN log-prob.
pub(crate) fn fold_gpu<G: GpuBackend>(
    gpu: &G,
    chunk: &Tensor<G>,
    targets: &Tensor<G>,
    state: Option<&SoftmaxChunkState<G>>,
    span: VocabChunk,
    inv_temperature: f32,
) -> Result<Folded<G>> {
    let (rows, width) = check_fold(chunk, targets, state, span, inv_temperature)?;
    let vocab = span.vocab;
    gpu::transfer::check_u32_values(gpu, targets, vocab, |v| check_targets_in_range(OP_FOLD, v, vocab, None))?;
    let n = gpu::dim_u32(OP_FOLD, "N", rows)?;
    let (vc, offset) = (gpu::dim_u32(OP_FOLD, "Vc", width)?, gpu::dim_u32(OP_FOLD, "offset", span.offset)?);
    let last = span.offset + width == vocab;
    let row = || gpu::alloc(gpu, &[rows], DType::F32);
    let (o0, o1, o2) = (row()?, row()?, row()?);
    let target_out = if last { None } else { Some(row()?) };
    let mut args = vec![Arg::In(chunk), Arg::In(targets)];
    if let Some(s) = state {
        args.extend([Arg::In(&s.max), Arg::In(&s.sum), Arg::In(&s.shifted), Arg::In(&s.target_logit)]);
    }
    args.extend([Arg::Out(&o0), Arg::Out(&o1), Arg::Out(&o2)]);
    args.extend(target_out.as_ref().map(Arg::Out));
    args.extend([Arg::U32(n), Arg::U32(vc), Arg::U32(offset), Arg::F32(inv_temperature)]);
    let stem = match (state.is_some(), last) {
        (false, false) => "linear_logprob_fwd_first",
        (true, false) => "linear_logprob_fwd",
        (true, true) => "linear_logprob_fwd_last",
        (false, true) => "linear_logprob_fwd_whole",
    };
    gpu::launch(gpu, stem, chunk.dtype(), Launch::linear(n, GPU_THREADS), &args)?;
    drop(args);
    Ok(match target_out {
        Some(target_logit) => Folded::Partial(SoftmaxChunkState { max: o0, sum: o1, shifted: o2, target_logit }),
        None => Folded::Done(LogProbOut { logprob: o0, entropy: o1, lse: o2 }),
    })
}

/// `linear_logprob_bwd` without a `dentropy`, `linear_logprob_bwd_entropy` with one.
#[allow(clippy::too_many_arguments)]
pub(crate) fn chunk_bwd_gpu<G: GpuBackend>(
    gpu: &G,
    chunk: &Tensor<G>,
    targets: &Tensor<G>,
    lse: &Tensor<G>,
    entropy: &Tensor<G>,
    dlogprob: &Tensor<G>,
    dentropy: Option<&Tensor<G>>,
    span: VocabChunk,
    inv_temperature: f32,
) -> Result<Tensor<G>> {
    let op = OP_CHUNK_BWD;
    let (rows, width) = check_chunk_bwd(chunk, targets, lse, entropy, dlogprob, dentropy, span, inv_temperature)?;
    let vocab = span.vocab;
    gpu::transfer::check_u32_values(gpu, targets, vocab, |v| check_targets_in_range(op, v, vocab, None))?;
    let n = gpu::dim_u32(op, "N", rows)?;
    let (vc, offset) = (gpu::dim_u32(op, "Vc", width)?, gpu::dim_u32(op, "offset", span.offset)?);
    let dchunk = gpu::alloc(gpu, chunk.dims(), chunk.dtype())?;
    let (stem, mut args) = match dentropy {
        None => ("linear_logprob_bwd", vec![Arg::In(chunk), Arg::In(targets), Arg::In(lse), Arg::In(dlogprob)]),
        Some(dentropy) => (
            "linear_logprob_bwd_entropy",
            vec![Arg::In(chunk), Arg::In(targets), Arg::In(lse), Arg::In(entropy), Arg::In(dlogprob), Arg::In(dentropy)],
        ),
    };
    args.extend([Arg::Out(&dchunk), Arg::U32(n), Arg::U32(vc), Arg::U32(offset), Arg::F32(inv_temperature)]);
    gpu::launch(gpu, stem, chunk.dtype(), Launch::linear(n, GPU_THREADS), &args)?;
    drop(args);
    Ok(dchunk)
}
