//! The decoder-only transformer of GPT-2, Llama and Qwen2, as a layout of parameter indices over
//! a [`ParamSet`]. No autograd: [`Transformer::forward`] keeps what the backward needs in
//! [`Activations`], and [`Transformer::backward`] walks the blocks in reverse calling each op's
//! backward, so the whole backward of a block is one readable function.
//!
//! Block (pre-norm, both families): `x += attn(norm1(x)); x += mlp(norm2(x))`, then a final norm.
//! GPT-2: LayerNorm, learned positions, GELU MLP, Conv1D `[in, out]` weights, q/k/v bias.
//! Llama/Qwen2: RMSNorm, RoPE on q and k, grouped-query heads, SwiGLU MLP, `[out, in]` weights,
//! q/k/v bias on Qwen2 only.

mod backward;
mod forward;
mod layout;

pub use forward::{Activations, Inputs};
pub use layout::{InitFn, Transformer};

use crate::params::ParamSet;

/// A model: its layout (config and parameter indices) and its parameters on backend `B`.
pub struct Model<B: runtime::Backend> {
    pub layout: Transformer,
    pub params: ParamSet<B>,
}
