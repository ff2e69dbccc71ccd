//! Generalised advantage estimation (Schulman et al. 2016): a reverse scan over each row's
//! tokens.
//!
//! Shapes: `rewards` and `values` `[B, T]` of one float dtype, `mask` `[B, T]` u32 (1 = a step of
//! the episode, i.e. a response token; 0 = prompt or padding). Within a row, the masked tokens
//! are the episode's steps in order; the step after the last one is terminal (value 0). Scanning
//! `t` from `T − 1` down over masked tokens, with `v'` and `A'` the value and advantage of the
//! next masked token (0 past the last):
//!
//! - `δ_t = r_t + γ·v' − v_t`,
//! - `A_t = δ_t + γ·λ·A'`,
//! - `R_t = A_t + v_t` (the λ-return, the critic's target).
//!
//! Unmasked tokens are skipped (they neither end nor break the chain) and get `A = R = 0`.
//! Results `[B, T]` in the inputs' dtype, computed in f32. `γ, λ ∈ [0, 1]`. No backward: the
//! advantages and returns are targets, not functions of trained parameters.

use rayon::prelude::*;

use super::check;
use crate::cpu::{f32_data, from_f32, u32_data};
use crate::gpu::{self, Arg, GpuBackend, Launch};
use crate::{Backend, Cpu, Error, Result, Tensor};

const OP: &str = "gae";

/// Result of [`Backend::gae`], each `[B, T]`.
pub struct GaeOut<B: Backend> {
    pub advantages: Tensor<B>,
    pub returns: Tensor<B>,
}

/// Checks [`Backend::gae`]'s arguments: `[B, T]` floats of one dtype, a `[B, T]` u32 mask,
/// `γ, λ ∈ [0, 1]`. Returns `(B, T)`.
pub fn check_gae<B: Backend>(
    rewards: &Tensor<B>,
    values: &Tensor<B>,
    mask: &Tensor<B>,
    gamma: f32,
    lambda: f32,
) -> Result<(usize, usize)> {
    check::masked(OP, &[("rewards", rewards), ("values", values)], mask)?;
    check::rank(OP, "rewards", rewards, 2)?;
    for (name, x) in [("gamma", gamma), ("lambda", lambda)] {
        if !(0.0..=1.0).contains(&x) {
            return Err(Error::argument(OP, format!("`{name}` must be in [0, 1], got {x}")));
        }
    }
    Ok((rewards.dims()[0], rewards.dims()[1]))
}

pub(crate) fn gae_cpu(
    rewards: &Tensor<Cpu>,
    values: &Tensor<Cpu>,
    mask: &Tensor<Cpu>,
    gamma: f32,
    lambda: f32,
) -> Result<GaeOut<Cpu>> {
    let (b, t) = check_gae(rewards, values, mask, gamma, lambda)?;
    let m = u32_data(mask);
    check::binary_mask(OP, m, t)?;
    let (r, v) = (f32_data(rewards), f32_data(values));
    let mut advantages = vec![0f32; b * t];
    let mut returns = vec![0f32; b * t];
    if t > 0 {
        advantages.par_chunks_mut(t).zip(returns.par_chunks_mut(t)).enumerate().for_each(|(row, (adv, ret))| {
            let base = row * t;
            let (mut next_value, mut next_advantage) = (0f32, 0f32);
            for i in (0..t).rev() {
                if m[base + i] == 0 {
                    continue;
                }
                let value = v[base + i];
                let delta = r[base + i] + gamma * next_value - value;
                adv[i] = delta + gamma * lambda * next_advantage;
                ret[i] = adv[i] + value;
                (next_value, next_advantage) = (value, adv[i]);
            }
        });
    }
    let dtype = rewards.dtype();
    Ok(GaeOut { advantages: from_f32(&[b, t], advantages, dtype), returns: from_f32(&[b, t], returns, dtype) })
}

/// Rows (one warp each) per block of the kernel.
const GPU_ROWS_PER_BLOCK: u32 = 4;

pub(crate) fn gae_gpu<G: GpuBackend>(
    gpu: &G,
    rewards: &Tensor<G>,
    values: &Tensor<G>,
    mask: &Tensor<G>,
    gamma: f32,
    lambda: f32,
) -> Result<GaeOut<G>> {
    let (b, t) = check_gae(rewards, values, mask, gamma, lambda)?;
    gpu::transfer::check_u32_values(gpu, mask, 2, |v| check::binary_mask(OP, v, t))?;
    let (rows, cols) = (gpu::dim_u32(OP, "B", b)?, gpu::dim_u32(OP, "T", t)?);
    gpu::dim_u32(OP, "B·T", b * t)?;
    let dtype = rewards.dtype();
    let out = GaeOut { advantages: gpu::alloc(gpu, &[b, t], dtype)?, returns: gpu::alloc(gpu, &[b, t], dtype)? };
    let args = [
        Arg::In(rewards),
        Arg::In(values),
        Arg::In(mask),
        Arg::Out(&out.advantages),
        Arg::Out(&out.returns),
        Arg::U32(rows),
        Arg::U32(cols),
        Arg::F32(gamma),
        Arg::F32(lambda),
    ];
    let launch = Launch::linear(rows.div_ceil(GPU_ROWS_PER_BLOCK), 32 * GPU_ROWS_PER_BLOCK);
    gpu::launch(gpu, "gae_fwd", dtype, launch, &args)?;
    Ok(out)
}
