//! Elementwise arithmetic on float tensors of any shape (f32 or bf16, computed in f32):
//!
//! - `add(a, b) = a + b`, same shape and dtype (the residual connection);
//! - `axpy(y, alpha, x)`: `y += alpha · x` in place, same shape and dtype (gradient accumulation);
//! - `scale_inplace(x, alpha)`: `x *= alpha` (gradient clipping, loss scaling).
//!
//! None of these has a backward of its own: `d(a + b)` is `dy` for both, and the in-place ops are
//! used on gradients, not inside a differentiated graph. bf16 results are rounded once per element.

use rayon::prelude::*;

use super::check;
use crate::cpu::{bf16_data, bf16_data_mut, f32_data, f32_data_mut, HostFloat};
use crate::gpu::{self, Arg, GpuBackend};
use crate::{Backend, Cpu, DType, Result, Tensor};

/// Elements per rayon task: enough that scheduling costs little beside the arithmetic.
const CHUNK: usize = 1 << 14;

/// Checks `add(a, b)`: floats of one dtype and one shape. Returns that dtype.
pub fn check_add<B: Backend>(a: &Tensor<B>, b: &Tensor<B>) -> Result<DType> {
    let dtype = check::same_float("add", &[("a", a), ("b", b)])?;
    check::same_shape("add", ("a", a), ("b", b))?;
    Ok(dtype)
}

/// Checks `axpy(y, alpha, x)`: floats of one dtype and one shape, `alpha` finite.
pub fn check_axpy<B: Backend>(y: &Tensor<B>, alpha: f32, x: &Tensor<B>) -> Result<()> {
    check::same_float("axpy", &[("y", y), ("x", x)])?;
    check::same_shape("axpy", ("y", y), ("x", x))?;
    check::finite("axpy", "alpha", alpha)
}

/// Checks `scale_inplace(x, alpha)`: a float tensor, `alpha` finite.
pub fn check_scale<B: Backend>(x: &Tensor<B>, alpha: f32) -> Result<()> {
    check::float("scale_inplace", "x", x)?;
    check::finite("scale_inplace", "alpha", alpha)
}

/// `y[i] = f(y[i], x[i])` in f32, rounded back to the stored type.
fn zip_in_place<T: HostFloat>(y: &mut [T], x: &[T], f: impl Fn(f32, f32) -> f32 + Sync) {
    y.par_chunks_mut(CHUNK).zip(x.par_chunks(CHUNK)).for_each(|(yc, xc)| {
        for (y, x) in yc.iter_mut().zip(xc) {
            *y = T::from_f32(f(y.to_f32(), x.to_f32()));
        }
    });
}

fn scale_slice<T: HostFloat>(x: &mut [T], alpha: f32) {
    x.par_chunks_mut(CHUNK).for_each(|chunk| {
        for x in chunk {
            *x = T::from_f32(x.to_f32() * alpha);
        }
    });
}

/// `y += alpha · x` for checked arguments.
fn axpy_unchecked(y: &mut Tensor<Cpu>, alpha: f32, x: &Tensor<Cpu>) {
    match y.dtype() {
        DType::BF16 => zip_in_place(bf16_data_mut(y), bf16_data(x), |y, x| y + alpha * x),
        _ => zip_in_place(f32_data_mut(y), &f32_data(x), |y, x| y + alpha * x),
    }
}

pub(crate) fn add_cpu(a: &Tensor<Cpu>, b: &Tensor<Cpu>) -> Result<Tensor<Cpu>> {
    let dtype = check_add(a, b)?;
    let mut sum = Tensor::from_parts(a.shape().clone(), dtype, a.buffer().clone());
    // 1·b is exact, so this is a plain `a + b` rounded once.
    axpy_unchecked(&mut sum, 1.0, b);
    Ok(sum)
}

pub(crate) fn axpy_cpu(y: &mut Tensor<Cpu>, alpha: f32, x: &Tensor<Cpu>) -> Result<()> {
    check_axpy(y, alpha, x)?;
    axpy_unchecked(y, alpha, x);
    Ok(())
}

pub(crate) fn scale_inplace_cpu(x: &mut Tensor<Cpu>, alpha: f32) -> Result<()> {
    check_scale(x, alpha)?;
    match x.dtype() {
        DType::BF16 => scale_slice(bf16_data_mut(x), alpha),
        _ => scale_slice(f32_data_mut(x), alpha),
    }
    Ok(())
}

/// `add` on a GPU backend: `elementwise_fwd_add` over all `n` elements.
pub(crate) fn add_gpu<G: GpuBackend>(gpu: &G, a: &Tensor<G>, b: &Tensor<G>) -> Result<Tensor<G>> {
    let dtype = check_add(a, b)?;
    let n = gpu::dim_u32("add", "n", a.numel())?;
    let y = gpu::alloc(gpu, a.dims(), dtype)?;
    let args = [Arg::In(a), Arg::In(b), Arg::Out(&y), Arg::U32(n)];
    gpu::launch(gpu, "elementwise_fwd_add", dtype, gpu::elementwise_launch(n, dtype), &args)?;
    Ok(y)
}

pub(crate) fn axpy_gpu<G: GpuBackend>(
    gpu: &G,
    y: &mut Tensor<G>,
    alpha: f32,
    x: &Tensor<G>,
) -> Result<()> {
    check_axpy(y, alpha, x)?;
    let (n, dtype) = (gpu::dim_u32("axpy", "n", y.numel())?, y.dtype());
    let args = [Arg::Out(y), Arg::F32(alpha), Arg::In(x), Arg::U32(n)];
    gpu::launch(gpu, "elementwise_fwd_axpy", dtype, gpu::elementwise_launch(n, dtype), &args)
}

pub(crate) fn scale_inplace_gpu<G: GpuBackend>(
    gpu: &G,
    x: &mut Tensor<G>,
    alpha: f32,
) -> Result<()> {
    check_scale(x, alpha)?;
    let (n, dtype) = (gpu::dim_u32("scale_inplace", "n", x.numel())?, x.dtype());
    let args = [Arg::Out(x), Arg::F32(alpha), Arg::U32(n)];
    gpu::launch(gpu, "elementwise_fwd_scale", dtype, gpu::elementwise_launch(n, dtype), &args)
}
