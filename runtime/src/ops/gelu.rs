//! GELU, tanh form, exactly as GPT-2's `gelu_new`:
//!
//! `y = 0.5·x·(1 + tanh(u))`, `u = √(2/π)·(x + 0.044715·x³)`.
//!
//! Shapes: `x` any float shape; `y` has the shape and dtype of `x`.
//!
//! Backward: `dx = dy · gelu'(x)` with
//! `gelu'(x) = 0.5·(1 + tanh(u)) + 0.5·x·(1 − tanh²(u))·√(2/π)·(1 + 3·0.044715·x²)`;
//! `dy` has the shape and dtype of `x`, and so does `dx`.
//!
//! The Cpu evaluates `0.5·(1 + tanh(u))` as the identical `σ(2u)` (see `half_one_plus_tanh`).

use rayon::prelude::*;

use super::check;
use crate::cpu::{f32_data, from_f32};
use crate::gpu::{self, Arg, GpuBackend};
use crate::{Backend, Cpu, DType, Result, Tensor};

const OP_FWD: &str = "gelu_fwd";
const OP_BWD: &str = "gelu_bwd";

/// √(2/π).
const SQRT_2_OVER_PI: f32 = 0.797_884_6;
const CUBIC: f32 = 0.044_715;

/// Elements per rayon task: large enough that task overhead stays negligible next to a `tanh`.
const CHUNK: usize = 1 << 14;

/// Checks the forward argument: any float tensor. Returns its dtype.
pub fn check_forward<B: Backend>(x: &Tensor<B>) -> Result<DType> {
    check::float(OP_FWD, "x", x)?;
    Ok(x.dtype())
}

/// Checks the backward arguments: `x` and `dy` floats of one dtype and one shape. Returns the
/// dtype.
pub fn check_backward<B: Backend>(x: &Tensor<B>, dy: &Tensor<B>) -> Result<DType> {
    let dtype = check::same_float(OP_BWD, &[("x", x), ("dy", dy)])?;
    check::same_shape(OP_BWD, ("x", x), ("dy", dy))?;
    Ok(dtype)
}

/// `0.5·(1 + tanh(u))` computed as the equal `σ(2u) = 1/(1 + e^(−2u))`: one `exp` is several
/// times cheaper than `tanh`, and for very negative `u` the quotient is still the correct limit
/// (e^(−2u) overflows to +inf, giving 0).
fn half_one_plus_tanh(u: f32) -> f32 {
    1.0 / (1.0 + (-2.0 * u).exp())
}

fn gelu(x: f32) -> f32 {
    let u = SQRT_2_OVER_PI * (x + CUBIC * x * x * x);
    x * half_one_plus_tanh(u)
}

/// With `s = 0.5·(1 + tanh(u))`: `0.5·(1 − tanh²(u)) = 2·s·(1 − s)`.
fn gelu_grad(x: f32) -> f32 {
    let u = SQRT_2_OVER_PI * (x + CUBIC * x * x * x);
    let s = half_one_plus_tanh(u);
    let du_dx = SQRT_2_OVER_PI * (1.0 + 3.0 * CUBIC * x * x);
    s + x * 2.0 * s * (1.0 - s) * du_dx
}

pub(crate) fn forward_cpu(x: &Tensor<Cpu>) -> Result<Tensor<Cpu>> {
    let dtype = check_forward(x)?;
    let xd = f32_data(x);
    let mut y = vec![0f32; xd.len()];
    y.par_chunks_mut(CHUNK).zip(xd.par_chunks(CHUNK)).for_each(|(yc, xc)| {
        yc.iter_mut().zip(xc).for_each(|(y, &x)| *y = gelu(x));
    });
    Ok(from_f32(x.dims(), y, dtype))
}

pub(crate) fn backward_cpu(x: &Tensor<Cpu>, dy: &Tensor<Cpu>) -> Result<Tensor<Cpu>> {
    let dtype = check_backward(x, dy)?;
    let (xd, dyd) = (f32_data(x), f32_data(dy));
    let mut dx = vec![0f32; xd.len()];
    dx.par_chunks_mut(CHUNK).zip(xd.par_chunks(CHUNK)).zip(dyd.par_chunks(CHUNK)).for_each(
        |((dxc, xc), dyc)| {
            for ((dx, &x), &dy) in dxc.iter_mut().zip(xc).zip(dyc) {
                *dx = dy * gelu_grad(x);
            }
        },
    );
    Ok(from_f32(x.dims(), dx, dtype))
}

pub(crate) fn forward_gpu<G: GpuBackend>(gpu: &G, x: &Tensor<G>) -> Result<Tensor<G>> {
    let dtype = check_forward(x)?;
    let n = gpu::dim_u32(OP_FWD, "n", x.numel())?;
    let y = gpu::alloc(gpu, x.dims(), dtype)?;
    let args = [Arg::In(x), Arg::Out(&y), Arg::U32(n)];
    gpu::launch(gpu, OP_FWD, dtype, gpu::elementwise_launch(n, dtype), &args)?;
    Ok(y)
}

pub(crate) fn backward_gpu<G: GpuBackend>(
    gpu: &G,
    x: &Tensor<G>,
    dy: &Tensor<G>,
) -> Result<Tensor<G>> {
    let dtype = check_backward(x, dy)?;
    let n = gpu::dim_u32(OP_BWD, "n", x.numel())?;
    let dx = gpu::alloc(gpu, x.dims(), dtype)?;
    let args = [Arg::In(x), Arg::In(dy), Arg::Out(&dx), Arg::U32(n)];
    gpu::launch(gpu, OP_BWD, dtype, gpu::elementwise_launch(n, dtype), &args)?;
    Ok(dx)
}
