//! LayerNorm over the last dim (GPT-2's `ln_1`, `ln_2`, `ln_f`).
//!
//! For `x` `[.., C]` viewed as `[N, C]` (`N` = product of the leading dims), per row:
//! `mean = Σx/C`, `var = Σ(x − mean)²/C` (biased), `rstd = 1/√(var + eps)`,
//! `y = (x − mean)·rstd·weight + bias`, with `weight` and `bias` `[C]`. Returns `y` (shape and
//! dtype of `x`) and the saved statistics `mean`, `rstd` `[N]` f32.
//!
//! Backward, with `x̂ = (x − mean)·rstd` and `g = dy·weight`:
//! `dx = rstd·(g − mean_C(g) − x̂·mean_C(g·x̂))`, `dweight = Σ_N dy·x̂`, `dbias = Σ_N dy`
//! (the sums over rows accumulated in f64 in a fixed order), returned as [`LayerNormGrads`].
//!
//! `eps` must be finite and `>= 0`; `C` must be at least 1.

use rayon::prelude::*;

use super::check;
use crate::cpu::{f32_data, from_f32, par_rows_with_column_sums};
use crate::gpu::{self, Arg, GpuBackend, Launch};
use crate::{Backend, Cpu, DType, Error, Result, Tensor};

const OP_FWD: &str = "layernorm_fwd";
const OP_BWD: &str = "layernorm_bwd";

/// Threads per block of the norm kernels (LayerNorm and RMSNorm): the forward runs one warp per
/// row, so 8 rows per block.
pub(crate) const NORM_THREADS: u32 = 256;

/// Blocks of the norm backward kernels. Each block sums the weight gradients of its rows and
/// the partials are added in block order, so this number fixes the rounding: it is a constant,
/// never derived from N or from the device, and results are the same bit for bit on every call
/// and every GPU. 256 blocks of 256 threads fill an A100/H100 about twice over for large N.
pub(crate) const NORM_BWD_BLOCKS: u32 = 256;

/// The forward launch of a norm over `rows` rows: one warp per row.
pub(crate) fn norm_forward_launch(rows: u32) -> Launch {
    Launch::linear(rows.div_ceil(NORM_THREADS / 32), NORM_THREADS)
}

/// The backward launch of a norm whose blocks keep `sums_per_channel` f32 accumulators per
/// channel in dynamic shared memory (saturating: an oversize request is rejected at launch).
pub(crate) fn norm_backward_launch(channels: usize, sums_per_channel: usize) -> Launch {
    let bytes = u32::try_from(channels * sums_per_channel * 4).unwrap_or(u32::MAX);
    Launch::linear(NORM_BWD_BLOCKS, NORM_THREADS).with_shared(bytes)
}

/// Row stride, in floats, of the norm backward's partials: C rounded up to 8 floats (one 32-byte
/// sector), as the kernels' `norm_partial_stride`, so the reduce reads whole sectors.
pub(crate) fn norm_partial_stride(channels: usize) -> usize {
    channels.next_multiple_of(8)
}

/// The launch of a `*_bwd_reduce` kernel: one thread per channel.
pub(crate) fn norm_reduce_launch(channels: u32) -> Launch {
    Launch::linear(channels.div_ceil(NORM_THREADS), NORM_THREADS)
}

/// Result of [`Backend::layernorm_fwd`].
pub struct LayerNormOut<B: Backend> {
    /// The normalised, scaled and shifted input: shape and dtype of `x`.
    pub y: Tensor<B>,
    /// Per-row mean `[N]` f32, saved for the backward.
    pub mean: Tensor<B>,
    /// Per-row `1/√(var + eps)` `[N]` f32, saved for the backward.
    pub rstd: Tensor<B>,
}

/// Gradients of [`Backend::layernorm_fwd`].
pub struct LayerNormGrads<B: Backend> {
    /// `∂loss/∂x`: shape and dtype of `x`.
    pub dx: Tensor<B>,
    /// `∂loss/∂weight` `[C]`, summed over rows.
    pub dweight: Tensor<B>,
    /// `∂loss/∂bias` `[C]`, summed over rows.
    pub dbias: Tensor<B>,
}

/// `(N, C)` of a tensor normalised over its last dim: rank at least 1 and `C >= 1`. Shared with
/// RMSNorm.
pub(crate) fn rows_and_channels<B: Backend>(
    op: &'static str,
    x: &Tensor<B>,
) -> Result<(usize, usize)> {
    if x.shape().rank() == 0 || x.shape().last() == 0 {
        return Err(Error::shape(
            op,
            format!("`x` has shape {}, expected [.., C] with C >= 1", x.shape()),
        ));
    }
    Ok((x.shape().rows(), x.shape().last()))
}

/// `eps` is finite and `>= 0`. Shared with RMSNorm.
pub(crate) fn check_eps(op: &'static str, eps: f32) -> Result<()> {
    check::finite(op, "eps", eps)?;
    if eps < 0.0 {
        return Err(Error::argument(op, format!("`eps` must be >= 0, got {eps}")));
    }
    Ok(())
}

/// A saved per-row statistic: f32 `[N]`. Shared with RMSNorm.
pub(crate) fn check_stat<B: Backend>(
    op: &'static str,
    name: &'static str,
    stat: &Tensor<B>,
    rows: usize,
) -> Result<()> {
    check::dtype(op, name, stat, DType::F32)?;
    check::dims(op, name, stat, &[rows])
}

/// Checks the forward arguments: `x` `[.., C]`, `weight` and `bias` `[C]`, all one float dtype,
/// and `eps`. Returns `(N, C)`.
pub fn check_forward<B: Backend>(
    x: &Tensor<B>,
    weight: &Tensor<B>,
    bias: &Tensor<B>,
    eps: f32,
) -> Result<(usize, usize)> {
    check::same_float(OP_FWD, &[("x", x), ("weight", weight), ("bias", bias)])?;
    let (rows, channels) = rows_and_channels(OP_FWD, x)?;
    check::dims(OP_FWD, "weight", weight, &[channels])?;
    check::dims(OP_FWD, "bias", bias, &[channels])?;
    check_eps(OP_FWD, eps)?;
    Ok((rows, channels))
}

/// Checks the backward arguments: `dy` and `x` `[.., C]`, `weight` `[C]`, all one float dtype;
/// `mean` and `rstd` `[N]` f32. Returns `(N, C)`.
pub fn check_backward<B: Backend>(
    dy: &Tensor<B>,
    x: &Tensor<B>,
    weight: &Tensor<B>,
    mean: &Tensor<B>,
    rstd: &Tensor<B>,
) -> Result<(usize, usize)> {
    check::same_float(OP_BWD, &[("x", x), ("dy", dy), ("weight", weight)])?;
    let (rows, channels) = rows_and_channels(OP_BWD, x)?;
    check::same_shape(OP_BWD, ("x", x), ("dy", dy))?;
    check::dims(OP_BWD, "weight", weight, &[channels])?;
    check_stat(OP_BWD, "mean", mean, rows)?;
    check_stat(OP_BWD, "rstd", rstd, rows)?;
    Ok((rows, channels))
}

pub(crate) fn forward_cpu(
    x: &Tensor<Cpu>,
    weight: &Tensor<Cpu>,
    bias: &Tensor<Cpu>,
    eps: f32,
) -> Result<LayerNormOut<Cpu>> {
    let (rows, channels) = check_forward(x, weight, bias, eps)?;
    let (xd, wd, bd) = (f32_data(x), f32_data(weight), f32_data(bias));
    let mut y = vec![0f32; rows * channels];
    let mut mean = vec![0f32; rows];
    let mut rstd = vec![0f32; rows];
    let n = channels as f32;
    (y.par_chunks_mut(channels), xd.par_chunks(channels), mean.par_iter_mut(), rstd.par_iter_mut())
        .into_par_iter()
        .with_min_len((4096 / channels).max(1))
        .for_each(|(y_row, x_row, mean, rstd)| {
            let m = x_row.iter().sum::<f32>() / n;
            // Two passes: the variance from centred values does not cancel catastrophically.
            let var = x_row.iter().map(|&v| (v - m) * (v - m)).sum::<f32>() / n;
            let r = 1.0 / (var + eps).sqrt();
            for (((y, &v), &w), &b) in y_row.iter_mut().zip(x_row).zip(wd.iter()).zip(bd.iter()) {
                *y = (v - m) * r * w + b;
            }
            (*mean, *rstd) = (m, r);
        });
    Ok(LayerNormOut {
        y: from_f32(x.dims(), y, x.dtype()),
        mean: from_f32(&[rows], mean, DType::F32),
        rstd: from_f32(&[rows], rstd, DType::F32),
    })
}

pub(crate) fn backward_cpu(
    dy: &Tensor<Cpu>,
    x: &Tensor<Cpu>,
    weight: &Tensor<Cpu>,
    mean: &Tensor<Cpu>,
    rstd: &Tensor<Cpu>,
) -> Result<LayerNormGrads<Cpu>> {
    let (rows, channels) = check_backward(dy, x, weight, mean, rstd)?;
    let (dyd, xd, wd) = (f32_data(dy), f32_data(x), f32_data(weight));
    let (mean, rstd) = (f32_data(mean), f32_data(rstd));
    let n = channels as f32;
    let mut dx = vec![0f32; rows * channels];
    let sums = par_rows_with_column_sums(&mut dx, channels, 2 * channels, |r, dx_row, sums| {
        let x_row = &xd[r * channels..(r + 1) * channels];
        let dy_row = &dyd[r * channels..(r + 1) * channels];
        let (m, rs) = (mean[r], rstd[r]);
        let (mut sum_g, mut sum_g_xhat) = (0f32, 0f32);
        for ((&v, &d), &w) in x_row.iter().zip(dy_row).zip(wd.iter()) {
            let g = d * w;
            sum_g += g;
            sum_g_xhat += g * (v - m) * rs;
        }
        let (mean_g, mean_g_xhat) = (sum_g / n, sum_g_xhat / n);
        let (dweight, dbias) = sums.split_at_mut(channels);
        let row = dx_row.iter_mut().zip(x_row).zip(dy_row).zip(wd.iter());
        for ((((dx, &v), &d), &w), (dw, db)) in row.zip(dweight.iter_mut().zip(dbias)) {
            let xhat = (v - m) * rs;
            *dx = rs * (d * w - mean_g - xhat * mean_g_xhat);
            *dw += (d * xhat) as f64;
            *db += d as f64;
        }
    });
    let (dweight, dbias) = sums.split_at(channels);
    let to_f32 = |s: &[f64]| s.iter().map(|&v| v as f32).collect::<Vec<f32>>();
    Ok(LayerNormGrads {
        dx: from_f32(x.dims(), dx, x.dtype()),
        dweight: from_f32(&[channels], to_f32(dweight), weight.dtype()),
        dbias: from_f32(&[channels], to_f32(dbias), weight.dtype()),
    })
}

pub(crate) fn forward_gpu<G: GpuBackend>(
    gpu: &G,
    x: &Tensor<G>,
    weight: &Tensor<G>,
    bias: &Tensor<G>,
    eps: f32,
) -> Result<LayerNormOut<G>> {
    let (rows, channels) = check_forward(x, weight, bias, eps)?;
    let (n, c) = (gpu::dim_u32(OP_FWD, "N", rows)?, gpu::dim_u32(OP_FWD, "C", channels)?);
    let y = gpu::alloc(gpu, x.dims(), x.dtype())?;
    let mean = gpu::alloc(gpu, &[rows], DType::F32)?;
    let rstd = gpu::alloc(gpu, &[rows], DType::F32)?;
    let args = [
        Arg::In(x),
        Arg::In(weight),
        Arg::In(bias),
        Arg::Out(&y),
        Arg::Out(&mean),
        Arg::Out(&rstd),
        Arg::U32(n),
        Arg::U32(c),
        Arg::F32(eps),
    ];
    gpu::launch(gpu, OP_FWD, x.dtype(), norm_forward_launch(n), &args)?;
    Ok(LayerNormOut { y, mean, rstd })
}

/// Two launches: `layernorm_bwd` writes dx and per-block partial sums `[2, G, C_p]` (C padded to
/// [`norm_partial_stride`]), then `layernorm_bwd_reduce` adds the partials in block order.
pub(crate) fn backward_gpu<G: GpuBackend>(
    gpu: &G,
    dy: &Tensor<G>,
    x: &Tensor<G>,
    weight: &Tensor<G>,
    mean: &Tensor<G>,
    rstd: &Tensor<G>,
) -> Result<LayerNormGrads<G>> {
    let (rows, channels) = check_backward(dy, x, weight, mean, rstd)?;
    let (n, c) = (gpu::dim_u32(OP_BWD, "N", rows)?, gpu::dim_u32(OP_BWD, "C", channels)?);
    let dtype = x.dtype();
    let dx = gpu::alloc(gpu, x.dims(), dtype)?;
    let partial = gpu::alloc(
        gpu,
        &[2, NORM_BWD_BLOCKS as usize, norm_partial_stride(channels)],
        DType::F32,
    )?;
    let args = [
        Arg::In(dy),
        Arg::In(x),
        Arg::In(weight),
        Arg::In(mean),
        Arg::In(rstd),
        Arg::Out(&dx),
        Arg::Out(&partial),
        Arg::U32(n),
        Arg::U32(c),
    ];
    gpu::launch(gpu, OP_BWD, dtype, norm_backward_launch(channels, 2), &args)?;
    let dweight = gpu::alloc(gpu, &[channels], dtype)?;
    let dbias = gpu::alloc(gpu, &[channels], dtype)?;
    let args = [
        Arg::In(&partial),
        Arg::Out(&dweight),
        Arg::Out(&dbias),
        Arg::U32(NORM_BWD_BLOCKS),
        Arg::U32(c),
    ];
    gpu::launch(gpu, "layernorm_bwd_reduce", dtype, norm_reduce_launch(c), &args)?;
    Ok(LayerNormGrads { dx, dweight, dbias })
}
