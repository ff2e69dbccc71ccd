//! The LM head and the token log-prob together, one vocabulary chunk at a time ("fused linear
//! cross-entropy"): the `[N, V]` logits are never materialised.
//!
//! Shapes: hidden `h` `[N, C]` and the LM head weight `W` `[V, C]` (the model's `[out, in]`
//! layout, read with [`GemmSpec::nt`] as the model's LM head GEMM does), of one float dtype;
//! targets `[N]` u32 `< V`; inverse temperature `s > 0`; a chunk size `Vc >= 1`. The results are
//! those of [`Backend::logprob_fwd`] on `z = h·Wᵀ` (logprob, entropy, lse, each `[N]` f32).
//!
//! Forward: for each chunk `[o, o + Vc)` of the vocabulary in order (the last one possibly
//! shorter), the chunk's logits `z_c = h·W[o..o+Vc]ᵀ` `[N, Vc]` come from [`Backend::gemm`], and
//! [`Backend::linear_logprob_fold`] folds them into per-row online softmax state
//! ([`SoftmaxChunkState`]: the running max `m`, `S = Σ e^(x−m)`, `Q = Σ e^(x−m)·(x−m)` and the
//! target's scaled logit, `x = s·z`), merged as the log-prob kernel merges its blocks; the last
//! chunk's fold gives `lse = m + log S`, `logprob = (x_t − m) − log S`, `entropy = log S − Q/S`.
//! A chunk covering the whole vocabulary gives exactly `gemm` + `logprob_fwd`'s bits.
//!
//! Backward (`=`): per chunk, the chunk's logits are recomputed, their gradient formed from the
//! saved lse and entropy by [`Backend::linear_logprob_chunk_bwd`] (the formula of
//! [`Backend::logprob_bwd`], one-hot at the target's column when the chunk holds it), then
//! [`Backend::gemm_bwd`] gives the chunk's share of `dh = Σ_c dz_c·W_c` and `dW_c = dz_cᵀ·h`.
//! `dh` is accumulated in f32 (a bf16 sum would round once per chunk) and rounded to the
//! storage dtype at the end; each `dW_c` is written into rows `o..o+Vc` of `dW`.
//!
//! Memory: beside the inputs and results, one chunk's logits `[N, Vc]` (and in the backward its
//! gradient), the chunk's weight rows `[Vc, C]` (a gather by [`Backend::embedding_fwd`], skipped
//! when one chunk covers V) and O(N) state: never `[N, V]`. Peak and bytes measured in
//! docs/ARCHITECTURE.md.

mod chunk;

pub(crate) use self::chunk::{chunk_bwd_cpu, chunk_bwd_gpu, fold_cpu, fold_gpu};
use super::check;
use crate::ops::gemm::GemmSpec;
use crate::ops::logprob::LogProbOut;
use crate::{Backend, DType, Error, Result, Tensor};

const OP_FWD: &str = "linear_logprob_fwd";
const OP_BWD: &str = "linear_logprob_bwd";

/// Per-row online softmax state of the vocabulary columns folded so far, each `[N]` f32.
pub struct SoftmaxChunkState<B: Backend> {
    /// The running max `m` of `x = s·z`.
    pub max: Tensor<B>,
    /// `S = Σ e^(x−m)`.
    pub sum: Tensor<B>,
    /// `Q = Σ e^(x−m)·(x−m)`.
    pub shifted: Tensor<B>,
    /// `s·z_target` once a chunk held the target, NaN before.
    pub target_logit: Tensor<B>,
}

/// What [`Backend::linear_logprob_fold`] gives: the state to carry to the next chunk, or the
/// results after the last one.
pub enum Folded<B: Backend> {
    Partial(SoftmaxChunkState<B>),
    Done(LogProbOut<B>),
}

/// Where a chunk of logits `[N, Vc]` lies: columns `offset..offset + Vc` of a vocabulary of
/// `vocab` classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VocabChunk {
    pub offset: usize,
    pub vocab: usize,
}

/// Gradients of [`LinearLogProb::backward`].
pub struct LinearLogProbGrads<B: Backend> {
    /// `[N, C]`, the hidden states' dtype.
    pub dhidden: Tensor<B>,
    /// `[V, C]`, the weight's dtype.
    pub dweight: Tensor<B>,
}

/// The chunked LM head + log-prob: its inputs, and the forward and backward over any backend.
pub struct LinearLogProb<'a, B: Backend> {
    /// `[N, C]`.
    pub hidden: &'a Tensor<B>,
    /// `[V, C]`, read as `hidden · weightᵀ`.
    pub weight: &'a Tensor<B>,
    /// `[N]` u32, each `< V`.
    pub targets: &'a Tensor<B>,
    pub inv_temperature: f32,
    /// Vocabulary columns per chunk (`>= 1`; `>= V` for one chunk).
    pub chunk: usize,
}

impl<B: Backend> LinearLogProb<'_, B> {
    /// Checks shapes, dtypes, the temperature and the chunk size (and that V fits the u32 ids the
    /// weight rows are gathered by); returns `(N, C, V)`.
    pub fn check(&self, op: &'static str) -> Result<(usize, usize, usize)> {
        let (hidden, weight) = (self.hidden, self.weight);
        check::same_float(op, &[("hidden", hidden), ("weight", weight)])?;
        check::rank(op, "hidden", hidden, 2)?;
        check::rank(op, "weight", weight, 2)?;
        let (n, c, v) = (hidden.dims()[0], hidden.dims()[1], weight.dims()[0]);
        if u32::try_from(v).is_err() {
            return Err(Error::shape(op, format!("weight {} has more than 2^32 rows", weight.shape())));
        }
        if weight.dims()[1] != c || v == 0 {
            return Err(Error::shape(
                op,
                format!(
                    "weight {} must be [V, C] with V >= 1 and C = {c} of hidden {}",
                    weight.shape(),
                    hidden.shape()
                ),
            ));
        }
        check::dtype(op, "targets", self.targets, DType::U32)?;
        if self.targets.dims() != [n] {
            return Err(Error::shape(
                op,
                format!("targets {} must be [{n}] for hidden {}", self.targets.shape(), hidden.shape()),
            ));
        }
        check::positive(op, "inv_temperature", self.inv_temperature)?;
        if self.chunk == 0 {
            return Err(Error::argument(op, format!("chunk must be >= 1 (weight {})", weight.shape())));
        }
        Ok((n, c, v))
    }

    /// Rows `offset..offset + width` of the weight, gathered; `None` when they are all of it.
    fn weight_rows(&self, backend: &B, offset: usize, width: usize) -> Result<Option<Tensor<B>>> {
        if width == self.weight.dims()[0] {
            return Ok(None);
        }
        let ids: Vec<u32> = (offset..offset + width).map(|i| i as u32).collect();
        let ids = backend.upload_u32(&[width], &ids)?;
        Ok(Some(backend.embedding_fwd(&ids, self.weight)?))
    }

    /// The chunks' logits folded in order: [`LogProbOut`] as `gemm` + `logprob_fwd` would give.
    pub fn forward(&self, backend: &B) -> Result<LogProbOut<B>> {
        let (_, _, v) = self.check(OP_FWD)?;
        let mut state = None;
        let mut offset = 0;
        // Ends: the fold of the chunk reaching V returns `Done`, and a fold past V is an error.
        loop {
            let width = self.chunk.min(v - offset);
            let logits = {
                let rows = self.weight_rows(backend, offset, width)?;
                backend.gemm(self.hidden, rows.as_ref().unwrap_or(self.weight), None, GemmSpec::nt())?
            };
            let span = VocabChunk { offset, vocab: v };
            match backend.linear_logprob_fold(&logits, self.targets, state.as_ref(), span, self.inv_temperature)? {
                Folded::Partial(next) => state = Some(next),
                Folded::Done(out) => return Ok(out),
            }
            offset += width;
        }
    }

    /// `(dhidden, dweight)` for upstream `dlogprob` and optional `dentropy` (`[N]` f32), from
    /// the forward's saved `lse` and `entropy`.
    pub fn backward(
        &self,
        backend: &B,
        lse: &Tensor<B>,
        entropy: &Tensor<B>,
        dlogprob: &Tensor<B>,
        dentropy: Option<&Tensor<B>>,
    ) -> Result<LinearLogProbGrads<B>> {
        let (_, c, v) = self.check(OP_BWD)?;
        let dtype = self.hidden.dtype();
        let mut dhidden: Option<Tensor<B>> = None;
        // Rows of dW are written chunk by chunk, through kv_cache_write's view `[1, V, 1, C]`.
        let mut dweight = if self.chunk >= v { None } else { Some(backend.zeros(&[1, v, 1, c], dtype)?) };
        let mut offset = 0;
        while offset < v {
            let width = self.chunk.min(v - offset);
            let rows = self.weight_rows(backend, offset, width)?;
            let w = rows.as_ref().unwrap_or(self.weight);
            let dz = {
                let logits = backend.gemm(self.hidden, w, None, GemmSpec::nt())?;
                let span = VocabChunk { offset, vocab: v };
                let s = self.inv_temperature;
                backend.linear_logprob_chunk_bwd(&logits, self.targets, lse, entropy, dlogprob, dentropy, span, s)?
            };
            let grads = backend.gemm_bwd(self.hidden, w, &dz, false, GemmSpec::nt())?;
            let part = if dtype == DType::F32 { grads.da } else { backend.cast(&grads.da, DType::F32)? };
            match dhidden.as_mut() {
                None => dhidden = Some(part),
                Some(acc) => backend.axpy(acc, 1.0, &part)?,
            }
            match dweight.as_mut() {
                None => dweight = Some(grads.db),
                Some(dw) => backend.kv_cache_write(dw, &grads.db.reshape(&[1, width, 1, c])?, offset)?,
            }
            offset += width;
        }
        // Both are set: V >= 1, so the loop ran at least once.
        let (Some(dhidden), Some(dweight)) = (dhidden, dweight) else {
            return Err(Error::shape(OP_BWD, format!("weight {} has no rows", self.weight.shape())));
        };
        let dhidden = if dtype == DType::F32 { dhidden } else { backend.cast(&dhidden, dtype)? };
        Ok(LinearLogProbGrads { dhidden, dweight: dweight.reshape(&[v, c])? })
    }
}
