//! The row-wise ops over `[rows, C]` inputs (elementwise, GELU, SwiGLU, the norms, embedding)
//! and cross-entropy over `[rows, V]`: their cases and how one runs on a backend.

use super::rng::{stored, Rng};
use super::Family;
use crate::{Backend, DType, Result, Tensor};

/// Rows of the row-wise kernels and cross-entropy.
pub const ROWS: [usize; 3] = [1, 7, 64];
/// Channels of the row-wise kernels.
pub const CHANNELS: [usize; 3] = [1, 33, 769];
/// Classes of cross-entropy (GPT-2's vocabulary last).
pub const VOCABS: [usize; 3] = [5, 1000, 50257];
/// Rows of the embedding table: fewer than the 64 positions, so ids repeat.
const EMBEDDING_VOCAB: usize = 50;
const EPS: f32 = 1e-5;
const IGNORE_INDEX: u32 = u32::MAX;

/// What a check runs: one Backend op and the kernels behind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    Add,
    Axpy,
    Scale,
    GeluFwd,
    GeluBwd,
    SwiGluFwd,
    SwiGluBwd,
    LayerNormFwd,
    LayerNormBwd,
    RmsNormFwd,
    RmsNormBwd,
    EmbeddingFwd,
    EmbeddingBwd,
    CrossEntropyFwd,
    CrossEntropyBwd,
}

/// The ops over `[rows, C]` inputs.
const ROW_OPS: [Op; 13] = [
    Op::Add,
    Op::Axpy,
    Op::Scale,
    Op::GeluFwd,
    Op::GeluBwd,
    Op::SwiGluFwd,
    Op::SwiGluBwd,
    Op::LayerNormFwd,
    Op::LayerNormBwd,
    Op::RmsNormFwd,
    Op::RmsNormBwd,
    Op::EmbeddingFwd,
    Op::EmbeddingBwd,
];

impl Op {
    /// The entry-point stem, completed by the dtype suffix.
    fn stem(self) -> &'static str {
        match self {
            Op::Add => "elementwise_fwd_add",
            Op::Axpy => "elementwise_fwd_axpy",
            Op::Scale => "elementwise_fwd_scale",
            Op::GeluFwd => "gelu_fwd",
            Op::GeluBwd => "gelu_bwd",
            Op::SwiGluFwd => "swiglu_fwd",
            Op::SwiGluBwd => "swiglu_bwd",
            Op::LayerNormFwd => "layernorm_fwd",
            Op::LayerNormBwd => "layernorm_bwd",
            Op::RmsNormFwd => "rmsnorm_fwd",
            Op::RmsNormBwd => "rmsnorm_bwd",
            Op::EmbeddingFwd => "embedding_fwd",
            Op::EmbeddingBwd => "embedding_bwd",
            Op::CrossEntropyFwd => "cross_entropy_fwd",
            Op::CrossEntropyBwd => "cross_entropy_bwd",
        }
    }
}

/// One op's inputs: `[rows, cols]` (cols = C, or V for cross-entropy).
#[derive(Debug, Clone, Copy)]
pub(super) struct Case {
    op: Op,
    rows: usize,
    cols: usize,
    dtype: DType,
}

impl Case {
    fn shape(&self) -> String {
        match self.op {
            Op::EmbeddingFwd | Op::EmbeddingBwd => {
                format!(
                    "ids [{}], table [{EMBEDDING_VOCAB}, {}]",
                    self.rows, self.cols
                )
            }
            _ => format!("[{}, {}]", self.rows, self.cols),
        }
    }
}

/// The family's cases, in report order.
pub(super) fn cases() -> Vec<super::Case> {
    let mut cases = vec![];
    for dtype in [DType::F32, DType::BF16] {
        for op in ROW_OPS {
            for rows in ROWS {
                for cols in CHANNELS {
                    cases.push(Case {
                        op,
                        rows,
                        cols,
                        dtype,
                    });
                }
            }
        }
        for op in [Op::CrossEntropyFwd, Op::CrossEntropyBwd] {
            for rows in ROWS {
                for cols in VOCABS {
                    cases.push(Case {
                        op,
                        rows,
                        cols,
                        dtype,
                    });
                }
            }
        }
    }
    cases
        .into_iter()
        .map(|c| super::Case {
            name: format!("{}_{}", c.op.stem(), c.dtype),
            shape: c.shape(),
            seed: 0,
            family: Family::Rows(c),
        })
        .collect()
}

/// Runs `case.op` on `backend` and downloads each output with its dtype.
pub(super) fn run<B: Backend>(b: &B, case: &Case, rng: &mut Rng) -> Result<Vec<(Vec<f32>, DType)>> {
    let (rows, cols, dtype) = (case.rows, case.cols, case.dtype);
    let dims = [rows, cols];
    let n = rows * cols;
    let upload = |data: &[f32], dims: &[usize]| b.upload_f32(dims, data, dtype);
    let out = |t: &Tensor<B>| -> Result<(Vec<f32>, DType)> { Ok((b.download_f32(t)?, t.dtype())) };
    match case.op {
        Op::Add => {
            let (x, y) = (
                upload(&rng.normal(n), &dims)?,
                upload(&rng.normal(n), &dims)?,
            );
            Ok(vec![out(&b.add(&x, &y)?)?])
        }
        Op::Axpy => {
            let mut y = upload(&rng.normal(n), &dims)?;
            b.axpy(&mut y, -0.37, &upload(&rng.normal(n), &dims)?)?;
            Ok(vec![out(&y)?])
        }
        Op::Scale => {
            let mut x = upload(&rng.normal(n), &dims)?;
            b.scale_inplace(&mut x, 2.5)?;
            Ok(vec![out(&x)?])
        }
        Op::GeluFwd => Ok(vec![out(
            &b.gelu_fwd(&upload(&rng.scaled(n, 3.0), &dims)?)?
        )?]),
        Op::GeluBwd => {
            let (x, dy) = (
                upload(&rng.scaled(n, 3.0), &dims)?,
                upload(&rng.normal(n), &dims)?,
            );
            Ok(vec![out(&b.gelu_bwd(&x, &dy)?)?])
        }
        Op::SwiGluFwd => {
            let (gate, up) = (
                upload(&rng.scaled(n, 3.0), &dims)?,
                upload(&rng.normal(n), &dims)?,
            );
            Ok(vec![out(&b.swiglu_fwd(&gate, &up)?)?])
        }
        Op::SwiGluBwd => {
            let gate = upload(&rng.scaled(n, 3.0), &dims)?;
            let (up, dy) = (
                upload(&rng.normal(n), &dims)?,
                upload(&rng.normal(n), &dims)?,
            );
            let g = b.swiglu_bwd(&gate, &up, &dy)?;
            Ok(vec![out(&g.dgate)?, out(&g.dup)?])
        }
        Op::LayerNormFwd => {
            let (x, w, bias) = (rng.offset(n), rng.offset(cols), rng.normal(cols));
            let o = b.layernorm_fwd(
                &upload(&x, &dims)?,
                &upload(&w, &[cols])?,
                &upload(&bias, &[cols])?,
                EPS,
            )?;
            Ok(vec![out(&o.y)?, out(&o.mean)?, out(&o.rstd)?])
        }
        Op::LayerNormBwd => {
            let (x, w, dy) = (rng.offset(n), rng.offset(cols), rng.normal(n));
            let (mean, rstd) = row_stats(&stored(&x, dtype), cols, true);
            let (x, w, dy) = (
                upload(&x, &dims)?,
                upload(&w, &[cols])?,
                upload(&dy, &dims)?,
            );
            let mean = b.upload_f32(&[rows], &mean, DType::F32)?;
            let rstd = b.upload_f32(&[rows], &rstd, DType::F32)?;
            let g = b.layernorm_bwd(&dy, &x, &w, &mean, &rstd)?;
            Ok(vec![out(&g.dx)?, out(&g.dweight)?, out(&g.dbias)?])
        }
        Op::RmsNormFwd => {
            let (x, w) = (rng.offset(n), rng.offset(cols));
            let o = b.rmsnorm_fwd(&upload(&x, &dims)?, &upload(&w, &[cols])?, EPS)?;
            Ok(vec![out(&o.y)?, out(&o.rstd)?])
        }
        Op::RmsNormBwd => {
            let (x, w, dy) = (rng.offset(n), rng.offset(cols), rng.normal(n));
            let (_, rstd) = row_stats(&stored(&x, dtype), cols, false);
            let (x, w, dy) = (
                upload(&x, &dims)?,
                upload(&w, &[cols])?,
                upload(&dy, &dims)?,
            );
            let rstd = b.upload_f32(&[rows], &rstd, DType::F32)?;
            let g = b.rmsnorm_bwd(&dy, &x, &w, &rstd)?;
            Ok(vec![out(&g.dx)?, out(&g.dweight)?])
        }
        Op::EmbeddingFwd => {
            let ids = b.upload_u32(&[rows], &rng.ids(rows, EMBEDDING_VOCAB))?;
            let table = upload(
                &rng.normal(EMBEDDING_VOCAB * cols),
                &[EMBEDDING_VOCAB, cols],
            )?;
            Ok(vec![out(&b.embedding_fwd(&ids, &table)?)?])
        }
        Op::EmbeddingBwd => {
            let ids = b.upload_u32(&[rows], &rng.ids(rows, EMBEDDING_VOCAB))?;
            let dy = upload(&rng.normal(n), &dims)?;
            Ok(vec![out(&b.embedding_bwd(&ids, &dy, EMBEDDING_VOCAB)?)?])
        }
        Op::CrossEntropyFwd => {
            let targets = b.upload_u32(&[rows], &targets(rng, rows, cols))?;
            let o =
                b.cross_entropy_fwd(&upload(&rng.scaled(n, 3.0), &dims)?, &targets, IGNORE_INDEX)?;
            Ok(vec![out(&o.loss)?, out(&o.lse)?])
        }
        Op::CrossEntropyBwd => {
            let targets = b.upload_u32(&[rows], &targets(rng, rows, cols))?;
            let logits = rng.scaled(n, 3.0);
            let lse = b.upload_f32(
                &[rows],
                &log_sum_exp(&stored(&logits, dtype), cols),
                DType::F32,
            )?;
            let dloss = b.upload_f32(&[rows], &rng.normal(rows), DType::F32)?;
            let logits = upload(&logits, &dims)?;
            Ok(vec![out(&b.cross_entropy_bwd(
                &logits,
                &targets,
                &lse,
                &dloss,
                IGNORE_INDEX,
            )?)?])
        }
    }
}

/// Per-row `(mean, rstd)` of `[rows, cols]` in f64: LayerNorm's when `centred`, else RMSNorm's
/// rstd (and a zero mean).
fn row_stats(x: &[f64], cols: usize, centred: bool) -> (Vec<f32>, Vec<f32>) {
    x.chunks(cols)
        .map(|row| {
            let mean = if centred {
                row.iter().sum::<f64>() / cols as f64
            } else {
                0.0
            };
            let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / cols as f64;
            (mean as f32, (1.0 / (var + EPS as f64).sqrt()) as f32)
        })
        .unzip()
}

fn log_sum_exp(logits: &[f64], cols: usize) -> Vec<f32> {
    logits
        .chunks(cols)
        .map(|row| {
            let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            (max + row.iter().map(|v| (v - max).exp()).sum::<f64>().ln()) as f32
        })
        .collect()
}

/// Targets in `[0, V)`, rows 4, 8, 12, ... ignored.
fn targets(rng: &mut Rng, n: usize, classes: usize) -> Vec<u32> {
    let mut targets = rng.ids(n, classes);
    targets
        .iter_mut()
        .step_by(4)
        .skip(1)
        .for_each(|t| *t = IGNORE_INDEX);
    targets
}
