//! Rotary position embedding (RoPE), rotate-half layout as in Hugging Face Llama and Qwen2.
//!
//! Shapes: `x` `[B, T, NH, HS]` with `HS` even, `positions` `[B, T]` u32, result like `x`. With
//! `H = HS/2`, every head of token `(b, t)` is rotated pairwise, element `i` with element `i + H`,
//! by the angle `a_i = pos[b, t] · inv_freq_i`, `inv_freq_i = 1 / theta^(2i/HS)`:
//!
//! ```text
//! y[i]     = x[i]·cos(a_i) − x[i+H]·sin(a_i)
//! y[i + H] = x[i+H]·cos(a_i) + x[i]·sin(a_i)        for i in 0..H
//! ```
//!
//! The angle is computed in f32 in the same order as `transformers` does (the exponent `2i/HS`,
//! the power, the reciprocal and the product with the position each rounded to f32), because at
//! positions in the thousands the rounding of the angle moves the result by ~1e-4 and we want to
//! match Hugging Face checkpoints' float32 activations, not an exact angle.
//!
//! Backward: the rotation is orthogonal, so `dx` is `dy` rotated by `−a_i` (the transpose):
//! `dx[i] = dy[i]·cos + dy[i+H]·sin`, `dx[i+H] = dy[i+H]·cos − dy[i]·sin`.
//!
//! GPU (`kernels/src/rope.cu`): the launcher uploads [`inverse_frequencies`] (`HS/2` floats) so
//! the kernel starts from the Cpu's bits; one thread per (token, pair) computes the angle in f32
//! exactly as here and rotates that pair in every head.

use rayon::prelude::*;

use super::check;
use crate::cpu::{f32_data, from_f32, u32_data};
use crate::gpu::{self, Arg, GpuBackend, Launch};
use crate::{Backend, Cpu, DType, Error, Result, Tensor};

const OP: &str = "rope";

/// The sizes of one RoPE call, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RopeDims {
    pub batch: usize,
    pub seq_len: usize,
    pub heads: usize,
    pub head_size: usize,
}

/// Checks `x` (named `arg`: `x` forward, `dy` backward) `[B, T, NH, HS]` float with `HS` even,
/// `positions` `[B, T]` u32, and `theta` positive and finite.
pub fn check<B: Backend>(
    arg: &'static str,
    x: &Tensor<B>,
    positions: &Tensor<B>,
    theta: f32,
) -> Result<RopeDims> {
    check::float(OP, arg, x)?;
    check::dtype(OP, "positions", positions, DType::U32)?;
    check::positive(OP, "theta", theta)?;
    check::rank(OP, arg, x, 4)?;
    let d = x.dims();
    let (batch, seq_len, heads, head_size) = (d[0], d[1], d[2], d[3]);
    if head_size % 2 != 0 {
        return Err(Error::shape(
            OP,
            format!("`{arg}` has shape {}: head size {head_size} must be even", x.shape()),
        ));
    }
    if positions.dims() != [batch, seq_len] {
        return Err(Error::shape(
            OP,
            format!(
                "`positions` has shape {}, expected [B, T] = {:?} to match `{arg}` {}",
                positions.shape(),
                [batch, seq_len],
                x.shape()
            ),
        ));
    }
    Ok(RopeDims { batch, seq_len, heads, head_size })
}

/// `1 / theta^(2i/HS)` for `i` in `0..HS/2`, rounded at each step as `transformers` does in f32.
pub fn inverse_frequencies(theta: f32, head_size: usize) -> Vec<f32> {
    (0..head_size / 2).map(|i| 1.0 / theta.powf((2 * i) as f32 / head_size as f32)).collect()
}

/// Rotates every head of every token; `direction` is +1 forward and −1 backward (the inverse
/// rotation, obtained by flipping the sign of the sine).
fn rotate(x: &[f32], positions: &[u32], dims: RopeDims, theta: f32, direction: f32) -> Vec<f32> {
    let half = dims.head_size / 2;
    let inv_freq = inverse_frequencies(theta, dims.head_size);
    let mut y = vec![0f32; x.len()];
    let row = (dims.heads * dims.head_size).max(1);
    y.par_chunks_mut(row).zip(x.par_chunks(row)).zip(positions.par_iter()).for_each_init(
        || (vec![0f32; half], vec![0f32; half]),
        |(cos, sin), ((y_row, x_row), &pos)| {
            for ((c, s), &f) in cos.iter_mut().zip(sin.iter_mut()).zip(&inv_freq) {
                let angle = pos as f32 * f;
                *c = angle.cos();
                *s = direction * angle.sin();
            }
            for (y_head, x_head) in
                y_row.chunks_mut(dims.head_size).zip(x_row.chunks(dims.head_size))
            {
                let (x1, x2) = x_head.split_at(half);
                let (y1, y2) = y_head.split_at_mut(half);
                for i in 0..half {
                    y1[i] = x1[i] * cos[i] - x2[i] * sin[i];
                    y2[i] = x2[i] * cos[i] + x1[i] * sin[i];
                }
            }
        },
    );
    y
}

pub(crate) fn forward_cpu(
    x: &Tensor<Cpu>,
    positions: &Tensor<Cpu>,
    theta: f32,
) -> Result<Tensor<Cpu>> {
    let dims = check("x", x, positions, theta)?;
    let y = rotate(&f32_data(x), u32_data(positions), dims, theta, 1.0);
    Ok(from_f32(x.dims(), y, x.dtype()))
}

pub(crate) fn backward_cpu(
    dy: &Tensor<Cpu>,
    positions: &Tensor<Cpu>,
    theta: f32,
) -> Result<Tensor<Cpu>> {
    let dims = check("dy", dy, positions, theta)?;
    let dx = rotate(&f32_data(dy), u32_data(positions), dims, theta, -1.0);
    Ok(from_f32(dy.dims(), dx, dy.dtype()))
}

/// Threads per block of the RoPE kernels.
const GPU_THREADS: u32 = 256;

/// `rope_fwd` or `rope_bwd` (`stem`) over `x` (`dy`), checked as `arg`.
fn rotate_gpu<G: GpuBackend>(
    gpu: &G,
    (stem, arg): (&str, &'static str),
    x: &Tensor<G>,
    positions: &Tensor<G>,
    theta: f32,
) -> Result<Tensor<G>> {
    let dims = check(arg, x, positions, theta)?;
    let tokens = dims.batch * dims.seq_len;
    gpu::dim_u32(OP, "B·T·NH·HS", x.numel())?;
    let pairs = gpu::dim_u32(OP, "B·T·HS/2", tokens * (dims.head_size / 2))?;
    let inv_freq = inverse_frequencies(theta, dims.head_size);
    let inv_freq = gpu.upload_f32(&[inv_freq.len()], &inv_freq, DType::F32)?;
    let y = gpu::alloc(gpu, x.dims(), x.dtype())?;
    let args = [
        Arg::In(x),
        Arg::In(positions),
        Arg::In(&inv_freq),
        Arg::Out(&y),
        Arg::U32(gpu::dim_u32(OP, "B·T", tokens)?),
        Arg::U32(gpu::dim_u32(OP, "NH", dims.heads)?),
        Arg::U32(gpu::dim_u32(OP, "HS", dims.head_size)?),
    ];
    let launch = Launch::linear(pairs.div_ceil(GPU_THREADS), GPU_THREADS);
    gpu::launch(gpu, stem, x.dtype(), launch, &args)?;
    Ok(y)
}

pub(crate) fn forward_gpu<G: GpuBackend>(
    gpu: &G,
    x: &Tensor<G>,
    positions: &Tensor<G>,
    theta: f32,
) -> Result<Tensor<G>> {
    rotate_gpu(gpu, ("rope_fwd", "x"), x, positions, theta)
}

pub(crate) fn backward_gpu<G: GpuBackend>(
    gpu: &G,
    dy: &Tensor<G>,
    positions: &Tensor<G>,
    theta: f32,
) -> Result<Tensor<G>> {
    rotate_gpu(gpu, ("rope_bwd", "dy"), dy, positions, theta)
}
