//! SwiGLU, the gated MLP activation of Llama and Qwen2: `y = silu(gate) · up`, with
//! `silu(g) = g·σ(g)` and `σ(g) = 1 / (1 + e^(−g))`.
//!
//! Shapes: `gate` and `up` share any float shape and dtype (usually `[B, T, 4C]`-like); `y` has
//! it too.
//!
//! Backward, for upstream `dy` of the same shape: `dup = dy · silu(gate)` and
//! `dgate = dy · up · σ(gate)·(1 + gate·(1 − σ(gate)))`, returned as [`SwiGluGrads`].

use rayon::prelude::*;

use super::check;
use crate::cpu::{f32_data, from_f32};
use crate::gpu::{self, Arg, GpuBackend};
use crate::{Backend, Cpu, DType, Result, Tensor};

const OP_FWD: &str = "swiglu_fwd";
const OP_BWD: &str = "swiglu_bwd";

/// Elements per rayon task: large enough that task overhead stays negligible next to an `exp`.
const CHUNK: usize = 1 << 14;

/// Gradients of [`Backend::swiglu_fwd`], each with the shape and dtype of its input.
pub struct SwiGluGrads<B: Backend> {
    /// `∂loss/∂gate`.
    pub dgate: Tensor<B>,
    /// `∂loss/∂up`.
    pub dup: Tensor<B>,
}

/// Checks the forward arguments: `gate` and `up` floats of one dtype and one shape. Returns the
/// dtype.
pub fn check_forward<B: Backend>(gate: &Tensor<B>, up: &Tensor<B>) -> Result<DType> {
    let dtype = check::same_float(OP_FWD, &[("gate", gate), ("up", up)])?;
    check::same_shape(OP_FWD, ("gate", gate), ("up", up))?;
    Ok(dtype)
}

/// Checks the backward arguments: `gate`, `up` and `dy` floats of one dtype and one shape.
/// Returns the dtype.
pub fn check_backward<B: Backend>(
    gate: &Tensor<B>,
    up: &Tensor<B>,
    dy: &Tensor<B>,
) -> Result<DType> {
    let dtype = check::same_float(OP_BWD, &[("gate", gate), ("up", up), ("dy", dy)])?;
    check::same_shape(OP_BWD, ("gate", gate), ("up", up))?;
    check::same_shape(OP_BWD, ("gate", gate), ("dy", dy))?;
    Ok(dtype)
}

fn sigmoid(g: f32) -> f32 {
    // For very negative g, e^(−g) overflows to +inf and the quotient is the correct limit 0.
    1.0 / (1.0 + (-g).exp())
}

pub(crate) fn forward_cpu(gate: &Tensor<Cpu>, up: &Tensor<Cpu>) -> Result<Tensor<Cpu>> {
    let dtype = check_forward(gate, up)?;
    let (gd, ud) = (f32_data(gate), f32_data(up));
    let mut y = vec![0f32; gd.len()];
    y.par_chunks_mut(CHUNK).zip(gd.par_chunks(CHUNK)).zip(ud.par_chunks(CHUNK)).for_each(
        |((yc, gc), uc)| {
            for ((y, &g), &u) in yc.iter_mut().zip(gc).zip(uc) {
                *y = g * sigmoid(g) * u;
            }
        },
    );
    Ok(from_f32(gate.dims(), y, dtype))
}

pub(crate) fn backward_cpu(
    gate: &Tensor<Cpu>,
    up: &Tensor<Cpu>,
    dy: &Tensor<Cpu>,
) -> Result<SwiGluGrads<Cpu>> {
    let dtype = check_backward(gate, up, dy)?;
    let (gd, ud, dyd) = (f32_data(gate), f32_data(up), f32_data(dy));
    let mut dgate = vec![0f32; gd.len()];
    let mut dup = vec![0f32; gd.len()];
    dgate
        .par_chunks_mut(CHUNK)
        .zip(dup.par_chunks_mut(CHUNK))
        .zip(gd.par_chunks(CHUNK))
        .zip(ud.par_chunks(CHUNK).zip(dyd.par_chunks(CHUNK)))
        .for_each(|(((dgc, duc), gc), (uc, dyc))| {
            let grads = dgc.iter_mut().zip(duc.iter_mut());
            let inputs = gc.iter().zip(uc).zip(dyc);
            for ((dgate, dup), ((&g, &u), &dy)) in grads.zip(inputs) {
                let s = sigmoid(g);
                *dup = dy * g * s;
                *dgate = dy * u * s * (1.0 + g * (1.0 - s));
            }
        });
    Ok(SwiGluGrads {
        dgate: from_f32(gate.dims(), dgate, dtype),
        dup: from_f32(up.dims(), dup, dtype),
    })
}

pub(crate) fn forward_gpu<G: GpuBackend>(
    gpu: &G,
    gate: &Tensor<G>,
    up: &Tensor<G>,
) -> Result<Tensor<G>> {
    let dtype = check_forward(gate, up)?;
    let n = gpu::dim_u32(OP_FWD, "n", gate.numel())?;
    let y = gpu::alloc(gpu, gate.dims(), dtype)?;
    let args = [Arg::In(gate), Arg::In(up), Arg::Out(&y), Arg::U32(n)];
    gpu::launch(gpu, OP_FWD, dtype, gpu::elementwise_launch(n, dtype), &args)?;
    Ok(y)
}

pub(crate) fn backward_gpu<G: GpuBackend>(
    gpu: &G,
    gate: &Tensor<G>,
    up: &Tensor<G>,
    dy: &Tensor<G>,
) -> Result<SwiGluGrads<G>> {
    let dtype = check_backward(gate, up, dy)?;
    let n = gpu::dim_u32(OP_BWD, "n", gate.numel())?;
    let dgate = gpu::alloc(gpu, gate.dims(), dtype)?;
    let dup = gpu::alloc(gpu, gate.dims(), dtype)?;
    let args =
        [Arg::In(gate), Arg::In(up), Arg::In(dy), Arg::Out(&dgate), Arg::Out(&dup), Arg::U32(n)];
    gpu::launch(gpu, OP_BWD, dtype, gpu::elementwise_launch(n, dtype), &args)?;
    Ok(SwiGluGrads { dgate, dup })
}
