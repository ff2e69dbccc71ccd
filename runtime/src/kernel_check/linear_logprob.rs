//! The LM head + log-prob by vocabulary chunks (`ops::linear_logprob`): the whole forward and
//! backward (GEMMs, gathers and the chunk kernels) over hidden `[rows, 64]`, vocabularies of
//! 1000 in chunks of 256 (the last one partial) and of 70000 (past 65535) in chunks of 30000,
//! plus one chunk covering the vocabulary (the `_whole` kernel).

use super::rng::{stored, Rng};
use super::Family;
use crate::ops::linear_logprob::LinearLogProb;
use crate::{Backend, DType, Result, Tensor};

/// Channels of the hidden states. The chunk kernels never see C (they read the chunk's logits),
/// so it is a model's row width: odd widths of the GEMMs and gathers C feeds are their own
/// families' cases, and here would only add short rows to those kernels' counters.
const CHANNELS: usize = 64;
/// `(V, Vc)`: a partial last chunk, and a vocabulary past 65535 in large chunks.
const VOCABS: [(usize, usize); 2] = [(1000, 256), (70000, 30000)];
const LARGE_VOCAB: usize = 65535;
const INV_TEMPERATURE: f32 = 0.8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    /// Several chunks: runs `_fwd_first`, `_fwd` and `_fwd_last`.
    Fwd,
    /// One chunk covering V.
    FwdWhole,
    Bwd,
    BwdEntropy,
}

impl Op {
    fn stem(self) -> &'static str {
        match self {
            Op::Fwd => "linear_logprob_fwd",
            Op::FwdWhole => "linear_logprob_fwd_whole",
            Op::Bwd => "linear_logprob_bwd",
            Op::BwdEntropy => "linear_logprob_bwd_entropy",
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Case {
    op: Op,
    rows: usize,
    vocab: usize,
    chunk: usize,
    dtype: DType,
}

/// The family's cases, in report order.
pub(super) fn cases() -> Vec<super::Case> {
    let mut cases = vec![];
    for dtype in [DType::F32, DType::BF16] {
        for op in [Op::Fwd, Op::FwdWhole, Op::Bwd, Op::BwdEntropy] {
            for (vocab, chunk) in VOCABS {
                for rows in [1, 7] {
                    if vocab > LARGE_VOCAB && (rows > 1 || op == Op::FwdWhole) {
                        continue;
                    }
                    let chunk = if op == Op::FwdWhole { vocab } else { chunk };
                    cases.push(Case { op, rows, vocab, chunk, dtype });
                }
            }
        }
    }
    cases
        .into_iter()
        .map(|c| super::Case {
            name: format!("{}_{}", c.op.stem(), c.dtype),
            shape: format!(
                "hidden [{}, {CHANNELS}] · weight [{}, {CHANNELS}]ᵀ, chunk {}, s = {INV_TEMPERATURE}",
                c.rows, c.vocab, c.chunk
            ),
            seed: 0,
            family: Family::LinearLogprob(c),
        })
        .collect()
}

/// Per-row `(lse, entropy)` of `s·h·Wᵀ` in f64 from the stored inputs: the saved statistics
/// both backwards get.
fn softmax_stats(h: &[f64], w: &[f64], v: usize, s: f64) -> (Vec<f32>, Vec<f32>) {
    h.chunks(CHANNELS)
        .map(|hr| {
            let x: Vec<f64> = w.chunks(CHANNELS).map(|wr| s * hr.iter().zip(wr).map(|(a, b)| a * b).sum::<f64>()).collect();
            let max = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let lse = max + x.iter().map(|&x| (x - max).exp()).sum::<f64>().ln();
            let entropy = -x.iter().map(|&x| (x - lse).exp() * (x - lse)).sum::<f64>();
            debug_assert_eq!(x.len(), v);
            (lse as f32, entropy as f32)
        })
        .unzip()
}

/// Runs `case.op` on `backend` and downloads each output with its dtype.
pub(super) fn run<B: Backend>(b: &B, case: &Case, rng: &mut Rng) -> Result<Vec<(Vec<f32>, DType)>> {
    let (rows, v, dtype) = (case.rows, case.vocab, case.dtype);
    let out = |t: &Tensor<B>| -> Result<(Vec<f32>, DType)> { Ok((b.download_f32(t)?, t.dtype())) };
    let (h, w) = (rng.scaled(rows * CHANNELS, 1.0), rng.scaled(v * CHANNELS, 0.5));
    let hidden = b.upload_f32(&[rows, CHANNELS], &h, dtype)?;
    let weight = b.upload_f32(&[v, CHANNELS], &w, dtype)?;
    let targets = b.upload_u32(&[rows], &rng.ids(rows, v))?;
    let op = LinearLogProb {
        hidden: &hidden,
        weight: &weight,
        targets: &targets,
        inv_temperature: INV_TEMPERATURE,
        chunk: case.chunk,
    };
    if let Op::Fwd | Op::FwdWhole = case.op {
        let o = op.forward(b)?;
        return Ok(vec![out(&o.logprob)?, out(&o.entropy)?, out(&o.lse)?]);
    }
    let (lse, entropy) = softmax_stats(&stored(&h, dtype), &stored(&w, dtype), v, f64::from(INV_TEMPERATURE));
    let row = |x: &[f32]| b.upload_f32(&[rows], x, DType::F32);
    let (lse, entropy, dlogprob) = (row(&lse)?, row(&entropy)?, row(&rng.normal(rows))?);
    let dentropy = match case.op {
        Op::BwdEntropy => Some(row(&rng.normal(rows))?),
        _ => None,
    };
    let g = op.backward(b, &lse, &entropy, &dlogprob, dentropy.as_ref())?;
    Ok(vec![out(&g.dhidden)?, out(&g.dweight)?])
}
