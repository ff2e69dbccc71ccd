//! Running one [`Case`] on a backend: its inputs, drawn from the case's seed so that both
//! backends see the same values, and the op's outputs downloaded with their dtypes.

use super::{Case, Op, EMBEDDING_VOCAB, EPS, IGNORE_INDEX};
use crate::{Backend, DType, Result, Tensor};

/// Runs `case.op` on `backend` and downloads each output with its dtype.
pub(super) fn run<B: Backend>(b: &B, case: &Case) -> Result<Vec<(Vec<f32>, DType)>> {
    let (rows, cols, dtype) = (case.rows, case.cols, case.dtype);
    let mut rng = Rng(case.seed);
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
            let targets = b.upload_u32(&[rows], &rng.targets(rows, cols))?;
            let o =
                b.cross_entropy_fwd(&upload(&rng.scaled(n, 3.0), &dims)?, &targets, IGNORE_INDEX)?;
            Ok(vec![out(&o.loss)?, out(&o.lse)?])
        }
        Op::CrossEntropyBwd => {
            let targets = b.upload_u32(&[rows], &rng.targets(rows, cols))?;
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

/// The values a tensor of `dtype` holds after uploading `x`.
fn stored(x: &[f32], dtype: DType) -> Vec<f64> {
    match dtype {
        DType::BF16 => x
            .iter()
            .map(|&v| half::bf16::from_f32(v).to_f64())
            .collect(),
        _ => x.iter().map(|&v| v as f64).collect(),
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

/// splitmix64 with Box–Muller normals: small, seeded, the same on every backend.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn scaled(&mut self, n: usize, scale: f64) -> Vec<f32> {
        (0..n)
            .map(|_| {
                let (u1, u2) = (self.uniform().max(1e-300), self.uniform());
                let normal = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                (normal * scale) as f32
            })
            .collect()
    }

    fn normal(&mut self, n: usize) -> Vec<f32> {
        self.scaled(n, 1.0)
    }

    /// Normals around 1 (weights) or rows offset from 0, so centring and scaling both matter.
    fn offset(&mut self, n: usize) -> Vec<f32> {
        self.normal(n).iter().map(|v| v + 1.0).collect()
    }

    fn ids(&mut self, n: usize, below: usize) -> Vec<u32> {
        (0..n)
            .map(|_| (self.next_u64() % below as u64) as u32)
            .collect()
    }

    /// Targets in `[0, V)`, rows 4, 8, 12, ... ignored.
    fn targets(&mut self, n: usize, classes: usize) -> Vec<u32> {
        let mut targets = self.ids(n, classes);
        targets
            .iter_mut()
            .step_by(4)
            .skip(1)
            .for_each(|t| *t = IGNORE_INDEX);
        targets
    }
}
