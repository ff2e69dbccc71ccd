//! RMSNorm over the last dim, as in Llama and Qwen2 (no mean subtraction, no bias).
//!
//! For `x` `[.., C]` viewed as `[N, C]` (`N` = product of the leading dims), per row:
//! `rstd = 1/√(Σx²/C + eps)`, `y = x·rstd·weight` with `weight` `[C]`. Returns `y` (shape and
//! dtype of `x`) and the saved `rstd` `[N]` f32.
//!
//! Backward, with `x̂ = x·rstd` and `g = dy·weight`: `dx = rstd·(g − x̂·mean_C(g·x̂))` and
//! `dweight = Σ_N dy·x̂` (accumulated in f64 in a fixed order), returned as [`RmsNormGrads`].
//!
//! `eps` must be finite and `>= 0`; `C` must be at least 1.

use rayon::prelude::*;

use super::check;
use super::layernorm::{
    check_eps, check_stat, norm_backward_launch, norm_forward_launch, norm_partial_stride,
    norm_reduce_launch, rows_and_channels, NORM_BWD_BLOCKS,
};
use crate::cpu::{f32_data, from_f32, par_rows_with_column_sums};
use crate::gpu::{self, Arg, GpuBackend};
use crate::{Backend, Cpu, DType, Result, Tensor};

const OP_FWD: &str = "rmsnorm_fwd";
const OP_BWD: &str = "rmsnorm_bwd";

/// Result of [`Backend::rmsnorm_fwd`].
pub struct RmsNormOut<B: Backend> {
    /// The normalised, scaled input: shape and dtype of `x`.
    pub y: Tensor<B>,
    /// Per-row `1/√(mean(x²) + eps)` `[N]` f32, saved for the backward.
    pub rstd: Tensor<B>,
}

/// Gradients of [`Backend::rmsnorm_fwd`].
pub struct RmsNormGrads<B: Backend> {
    /// `∂loss/∂x`: shape and dtype of `x`.
    pub dx: Tensor<B>,
    /// `∂loss/∂weight` `[C]`, summed over rows.
    pub dweight: Tensor<B>,
}

/// Checks the forward arguments: `x` `[.., C]` and `weight` `[C]` of one float dtype, and `eps`.
/// Returns `(N, C)`.
pub fn check_forward<B: Backend>(
    x: &Tensor<B>,
    weight: &Tensor<B>,
    eps: f32,
) -> Result<(usize, usize)> {
    check::same_float(OP_FWD, &[("x", x), ("weight", weight)])?;
    let (rows, channels) = rows_and_channels(OP_FWD, x)?;
    check::dims(OP_FWD, "weight", weight, &[channels])?;
    check_eps(OP_FWD, eps)?;
    Ok((rows, channels))
}

/// Checks the backward arguments: `dy` and `x` `[.., C]`, `weight` `[C]`, all one float dtype;
/// `rstd` `[N]` f32. Returns `(N, C)`.
pub fn check_backward<B: Backend>(
    dy: &Tensor<B>,
    x: &Tensor<B>,
    weight: &Tensor<B>,
    rstd: &Tensor<B>,
) -> Result<(usize, usize)> {
    check::same_float(OP_BWD, &[("x", x), ("dy", dy), ("weight", weight)])?;
    let (rows, channels) = rows_and_channels(OP_BWD, x)?;
    check::same_shape(OP_BWD, ("x", x), ("dy", dy))?;
    check::dims(OP_BWD, "weight", weight, &[channels])?;
    check_stat(OP_BWD, "rstd", rstd, rows)?;
    Ok((rows, channels))
}

pub(crate) fn forward_cpu(
    x: &Tensor<Cpu>,
    weight: &Tensor<Cpu>,
    eps: f32,
) -> Result<RmsNormOut<Cpu>> {
    let (rows, channels) = check_forward(x, weight, eps)?;
    let (xd, wd) = (f32_data(x), f32_data(weight));
    let mut y = vec![0f32; rows * channels];
    let mut rstd = vec![0f32; rows];
    let n = channels as f32;
    (y.par_chunks_mut(channels), xd.par_chunks(channels), rstd.par_iter_mut())
        .into_par_iter()
        .with_min_len((4096 / channels).max(1))
        .for_each(|(y_row, x_row, rstd)| {
            let mean_square = x_row.iter().map(|&v| v * v).sum::<f32>() / n;
            let r = 1.0 / (mean_square + eps).sqrt();
            for ((y, &v), &w) in y_row.iter_mut().zip(x_row).zip(wd.iter()) {
                *y = v * r * w;
            }
            *rstd = r;
        });
    Ok(RmsNormOut {
        y: from_f32(x.dims(), y, x.dtype()),
        rstd: from_f32(&[rows], rstd, DType::F32),
    })
}

pub(crate) fn backward_cpu(
    dy: &Tensor<Cpu>,
    x: &Tensor<Cpu>,
    weight: &Tensor<Cpu>,
    rstd: &Tensor<Cpu>,
) -> Result<RmsNormGrads<Cpu>> {
    let (rows, channels) = check_backward(dy, x, weight, rstd)?;
    let (dyd, xd, wd, rstd) = (f32_data(dy), f32_data(x), f32_data(weight), f32_data(rstd));
    let n = channels as f32;
    let mut dx = vec![0f32; rows * channels];
    let dweight = par_rows_with_column_sums(&mut dx, channels, channels, |r, dx_row, dweight| {
        let x_row = &xd[r * channels..(r + 1) * channels];
        let dy_row = &dyd[r * channels..(r + 1) * channels];
        let rs = rstd[r];
        let sum_g_xhat: f32 =
            x_row.iter().zip(dy_row).zip(wd.iter()).map(|((&v, &d), &w)| d * w * v * rs).sum();
        let mean_g_xhat = sum_g_xhat / n;
        let row = dx_row.iter_mut().zip(x_row).zip(dy_row).zip(wd.iter());
        for ((((dx, &v), &d), &w), dw) in row.zip(dweight.iter_mut()) {
            let xhat = v * rs;
            *dx = rs * (d * w - xhat * mean_g_xhat);
            *dw += (d * xhat) as f64;
        }
    });
    let dweight: Vec<f32> = dweight.into_iter().map(|v| v as f32).collect();
    Ok(RmsNormGrads {
        dx: from_f32(x.dims(), dx, x.dtype()),
        dweight: from_f32(&[channels], dweight, weight.dtype()),
    })
}

pub(crate) fn forward_gpu<G: GpuBackend>(
    gpu: &G,
    x: &Tensor<G>,
    weight: &Tensor<G>,
    eps: f32,
) -> Result<RmsNormOut<G>> {
    let (rows, channels) = check_forward(x, weight, eps)?;
    let (n, c) = (gpu::dim_u32(OP_FWD, "N", rows)?, gpu::dim_u32(OP_FWD, "C", channels)?);
    let y = gpu::alloc(gpu, x.dims(), x.dtype())?;
    let rstd = gpu::alloc(gpu, &[rows], DType::F32)?;
    let args = [
        Arg::In(x),
        Arg::In(weight),
        Arg::Out(&y),
        Arg::Out(&rstd),
        Arg::U32(n),
        Arg::U32(c),
        Arg::F32(eps),
    ];
    gpu::launch(gpu, OP_FWD, x.dtype(), norm_forward_launch(n), &args)?;
    Ok(RmsNormOut { y, rstd })
}

/// Two launches, as LayerNorm's: dx and per-block partials `[G, C_p]` (C padded to 8 floats),
/// then their sum in block order.
pub(crate) fn backward_gpu<G: GpuBackend>(
    gpu: &G,
    dy: &Tensor<G>,
    x: &Tensor<G>,
    weight: &Tensor<G>,
    rstd: &Tensor<G>,
) -> Result<RmsNormGrads<G>> {
    let (rows, channels) = check_backward(dy, x, weight, rstd)?;
    let (n, c) = (gpu::dim_u32(OP_BWD, "N", rows)?, gpu::dim_u32(OP_BWD, "C", channels)?);
    let dtype = x.dtype();
    let dx = gpu::alloc(gpu, x.dims(), dtype)?;
    let partial_dims = [NORM_BWD_BLOCKS as usize, norm_partial_stride(channels)];
    let partial = gpu::alloc(gpu, &partial_dims, DType::F32)?;
    let args = [
        Arg::In(dy),
        Arg::In(x),
        Arg::In(weight),
        Arg::In(rstd),
        Arg::Out(&dx),
        Arg::Out(&partial),
        Arg::U32(n),
        Arg::U32(c),
    ];
    gpu::launch(gpu, OP_BWD, dtype, norm_backward_launch(channels, 1), &args)?;
    let dweight = gpu::alloc(gpu, &[channels], dtype)?;
    let args = [Arg::In(&partial), Arg::Out(&dweight), Arg::U32(NORM_BWD_BLOCKS), Arg::U32(c)];
    gpu::launch(gpu, "rmsnorm_bwd_reduce", dtype, norm_reduce_launch(c), &args)?;
    Ok(RmsNormGrads { dx, dweight })
}
