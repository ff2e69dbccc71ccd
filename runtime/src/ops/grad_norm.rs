//! Global gradient norm and clipping.
//!
//! `sum_squares(x) = Σ x²` over a float tensor of any shape (f32 or bf16), accumulated in f64.
//! [`clip_grad_norm`] composes it over many tensors: `norm = √(Σ_tensors Σ x²)`, and when
//! `max_norm / (norm + 1e-6) < 1` every gradient is scaled by that factor (PyTorch's
//! `clip_grad_norm_`). No backward: this acts on gradients.
//!
//! Determinism: the Cpu sum splits the tensor into fixed chunks, sums each in order, and adds the
//! chunk sums in order, so the result does not depend on the thread count. The GPU kernel
//! (`kernels/src/grad_norm.cu`) sums squares in f32 per thread over a fixed partition of
//! [`GPU_BLOCKS`] blocks, folds each block in a fixed order, and the launcher adds the block
//! partials in order in f64 on the host: the same bits on every call, for any batch or GPU (but
//! not the Cpu's bits: f32 partial sums against the Cpu's f64).

use rayon::prelude::*;

use super::check;
use crate::cpu::{bf16_data, f32_data, HostFloat};
use crate::gpu::{self, transfer, Arg, GpuBackend, Launch};
use crate::{Backend, Cpu, DType, Error, Result, Tensor};

/// Elements per partial sum.
const CHUNK: usize = 1 << 14;
/// Added to the norm before dividing, as PyTorch does, so that a zero norm cannot divide by zero.
const NORM_EPS: f64 = 1e-6;

/// Blocks that partition a tensor in the GPU sum of squares: a constant, so that the partition
/// (and the rounding) never depends on the device.
pub const GPU_BLOCKS: u32 = 512;
/// Threads per block of the GPU sum of squares.
const GPU_THREADS: u32 = 256;

/// Checks [`Backend::sum_squares`]'s argument: a float tensor.
pub fn check_sum_squares<B: Backend>(x: &Tensor<B>) -> Result<()> {
    check::float("sum_squares", "x", x)
}

fn sum_squares_slice<T: HostFloat>(x: &[T]) -> f64 {
    let partial: Vec<f64> = x
        .par_chunks(CHUNK)
        .map(|chunk| {
            chunk.iter().map(|&v| {
                let v = f64::from(v.to_f32());
                v * v
            })
            .sum()
        })
        .collect();
    partial.iter().sum()
}

pub(crate) fn sum_squares_cpu(x: &Tensor<Cpu>) -> Result<f64> {
    check_sum_squares(x)?;
    Ok(match x.dtype() {
        DType::BF16 => sum_squares_slice(bf16_data(x)),
        _ => sum_squares_slice(&f32_data(x)),
    })
}

/// `sum_squares` on a GPU backend: `grad_norm_fwd_sumsq` writes one f32 partial per block, and
/// the partials are added here in block order in f64. Blocks past `ceil(n / threads)` would own
/// no element, so they are not launched (their partials would be zeros).
pub(crate) fn sum_squares_gpu<G: GpuBackend>(gpu: &G, x: &Tensor<G>) -> Result<f64> {
    check_sum_squares(x)?;
    let n = gpu::dim_u32("sum_squares", "n", x.numel())?;
    let blocks = GPU_BLOCKS.min(n.div_ceil(GPU_THREADS));
    if blocks == 0 {
        return Ok(0.0);
    }
    let partial = gpu::alloc(gpu, &[blocks as usize], DType::F32)?;
    let args = [Arg::In(x), Arg::Out(&partial), Arg::U32(n), Arg::U32(GPU_BLOCKS)];
    gpu::launch(gpu, "grad_norm_fwd_sumsq", x.dtype(), Launch::linear(blocks, GPU_THREADS), &args)?;
    let partial = transfer::download_f32(gpu, &partial)?;
    Ok(partial.iter().map(|&p| f64::from(p)).sum())
}

/// Clips the global L2 norm of `grads` to `max_norm` (`>= 0`, finite) in place and returns the
/// norm before clipping, as f32.
///
/// The factor is `max_norm / (norm + 1e-6)`, applied when it is below 1 (PyTorch's
/// `clip_grad_norm_`). A non-finite norm (an overflowed or NaN gradient) leaves the gradients
/// untouched and is returned as is, so that the caller can skip the step: scaling by it would
/// zero or poison every gradient.
pub fn clip_grad_norm<B: Backend>(backend: &B, grads: &mut [&mut Tensor<B>], max_norm: f32) -> Result<f32> {
    if !(max_norm.is_finite() && max_norm >= 0.0) {
        return Err(Error::argument("clip_grad_norm", format!("max_norm must be finite and >= 0, got {max_norm}")));
    }
    let mut total = 0f64;
    for g in grads.iter() {
        total += backend.sum_squares(g)?;
    }
    let norm = total.sqrt();
    let factor = f64::from(max_norm) / (norm + NORM_EPS);
    if norm.is_finite() && factor < 1.0 {
        for g in grads.iter_mut() {
            backend.scale_inplace(g, factor as f32)?;
        }
    }
    Ok(norm as f32)
}
