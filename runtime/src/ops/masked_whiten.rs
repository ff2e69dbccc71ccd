//! Masked whitening: normalise the masked elements of a tensor to zero mean and unit variance
//! (PPO's advantage normalisation), optionally keeping their mean (reward scaling).
//!
//! Shapes: `x` of any shape and float dtype, `mask` u32 of the same shape (1 = the element is
//! part of the population). Over the `n` masked elements, with the population statistics
//! `μ = Σ m·x / n` and `σ² = Σ m·(x − μ)² / n`:
//!
//! - `y = (x − μ) / √(σ² + eps)`, plus `μ` again when `keep_mean`;
//! - unmasked elements get `y = 0`.
//!
//! The population variance (not Bessel's `n − 1`) keeps a single element defined: it whitens to
//! 0 (or to itself when keeping the mean). No masked element gives zeros and `μ = σ = 0`.
//! Result in `x`'s dtype, computed in f32 from statistics accumulated in f64 in index order on
//! one thread (`N` is the size of a batch of rewards or advantages). No backward: whitening acts
//! on advantages and rewards, which are not differentiated.

use super::check;
use crate::cpu::{f32_data, from_f32, u32_data};
use crate::gpu::{self, Arg, GpuBackend, Launch};
use crate::{Backend, Cpu, DType, Result, Tensor};

const OP: &str = "masked_whiten";

/// Result of [`Backend::masked_whiten`].
pub struct WhitenOut<B: Backend> {
    /// Whitened `x`, same shape and dtype.
    pub y: Tensor<B>,
    /// `μ` of the masked elements.
    pub mean: f32,
    /// `σ` of the masked elements (population).
    pub std: f32,
}

/// Checks [`Backend::masked_whiten`]'s arguments: a float `x`, a u32 mask of its shape, a
/// positive finite `eps`.
pub fn check_masked_whiten<B: Backend>(x: &Tensor<B>, mask: &Tensor<B>, eps: f32) -> Result<()> {
    check::masked(OP, &[("x", x)], mask)?;
    check::positive(OP, "eps", eps)
}

pub(crate) fn masked_whiten_cpu(
    x: &Tensor<Cpu>,
    mask: &Tensor<Cpu>,
    keep_mean: bool,
    eps: f32,
) -> Result<WhitenOut<Cpu>> {
    check_masked_whiten(x, mask, eps)?;
    let m = u32_data(mask);
    check::binary_mask(OP, m, x.shape().last().max(1))?;
    let data = f32_data(x);
    let masked = || data.iter().zip(m).filter(|(_, &m)| m == 1).map(|(&x, _)| f64::from(x));
    let n = m.iter().filter(|&&m| m == 1).count();
    if n == 0 {
        return Ok(WhitenOut { y: from_f32(x.dims(), vec![0.0; data.len()], x.dtype()), mean: 0.0, std: 0.0 });
    }
    let mean = masked().sum::<f64>() / n as f64;
    let variance = masked().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n as f64;
    let (mean32, inv_std) = (mean as f32, (1.0 / (variance + f64::from(eps)).sqrt()) as f32);
    let shift = if keep_mean { mean32 } else { 0.0 };
    let y = data.iter().zip(m).map(|(&x, &m)| if m == 1 { (x - mean32) * inv_std + shift } else { 0.0 }).collect();
    Ok(WhitenOut { y: from_f32(x.dims(), y, x.dtype()), mean: mean32, std: variance.sqrt() as f32 })
}

/// One block of the kernel's (it makes three passes over `x`; see `masked_whiten.cu`).
const GPU_THREADS: u32 = 1024;

pub(crate) fn masked_whiten_gpu<G: GpuBackend>(
    gpu: &G,
    x: &Tensor<G>,
    mask: &Tensor<G>,
    keep_mean: bool,
    eps: f32,
) -> Result<WhitenOut<G>> {
    check_masked_whiten(x, mask, eps)?;
    gpu::transfer::check_u32_values(gpu, mask, 2, |v| check::binary_mask(OP, v, x.shape().last().max(1)))?;
    let n = gpu::dim_u32(OP, "n", x.numel())?;
    let y = gpu::alloc(gpu, x.dims(), x.dtype())?;
    if n == 0 {
        return Ok(WhitenOut { y, mean: 0.0, std: 0.0 });
    }
    let stats = gpu::alloc(gpu, &[3], DType::F32)?;
    let args = [
        Arg::In(x),
        Arg::In(mask),
        Arg::Out(&y),
        Arg::Out(&stats),
        Arg::U32(n),
        Arg::U32(u32::from(keep_mean)),
        Arg::F32(eps),
    ];
    gpu::launch(gpu, "masked_whiten_fwd", x.dtype(), Launch::linear(1, GPU_THREADS), &args)?;
    let stats = gpu.download_f32(&stats)?;
    Ok(WhitenOut { y, mean: stats[0], std: stats[1] })
}
