//! The backward pass: each block's backward in reverse, consuming the saved activations so their
//! memory is released block by block.

use runtime::ops::gemm::GemmSpec;
use runtime::{Backend, Tensor};

use super::forward::{Activations, BlockSaved, Inputs, MlpSaved, NormSaved};
use super::layout::{Block, Linear, Mlp, Norm, Transformer};
use crate::params::{GradSlots, ParamSet};
use crate::Result;

/// Backward of `y = x·W (+ b)`: adds dW (and db) to `grads`, returns dx.
pub(crate) fn linear_backward<B: Backend>(
    backend: &B,
    params: &ParamSet<B>,
    lin: Linear,
    x: &Tensor<B>,
    dy: &Tensor<B>,
    grads: &mut GradSlots<B>,
) -> Result<Tensor<B>> {
    let g = backend.gemm_bwd(x, params.get(lin.w), dy, lin.b.is_some(), lin.spec)?;
    grads.add(backend, lin.w, g.db)?;
    if let (Some(b), Some(db)) = (lin.b, g.dbias) {
        grads.add(backend, b, db)?;
    }
    Ok(g.da)
}

fn norm_backward<B: Backend>(
    backend: &B,
    params: &ParamSet<B>,
    norm: Norm,
    x: &Tensor<B>,
    saved: &NormSaved<B>,
    dy: &Tensor<B>,
    grads: &mut GradSlots<B>,
) -> Result<Tensor<B>> {
    let w = params.get(norm.w);
    match (norm.b, &saved.mean) {
        (Some(b), Some(mean)) => {
            let g = backend.layernorm_bwd(dy, x, w, mean, &saved.rstd)?;
            grads.add(backend, norm.w, g.dweight)?;
            grads.add(backend, b, g.dbias)?;
            Ok(g.dx)
        }
        _ => {
            let g = backend.rmsnorm_bwd(dy, x, w, &saved.rstd)?;
            grads.add(backend, norm.w, g.dweight)?;
            Ok(g.dx)
        }
    }
}

impl Transformer {
    /// Backward of [`Transformer::forward`] from `dhidden` `[N, C]` (the gradient of the final
    /// hidden state): adds every parameter's gradient to `grads`.
    pub fn backward<B: Backend>(
        &self,
        backend: &B,
        params: &ParamSet<B>,
        inputs: &Inputs<B>,
        acts: Activations<B>,
        dhidden: &Tensor<B>,
        grads: &mut GradSlots<B>,
    ) -> Result<()> {
        let Activations { blocks, x_final, ln_f, .. } = acts;
        let mut dx = norm_backward(backend, params, self.ln_f, &x_final, &ln_f, dhidden, grads)?;
        for (block, saved) in self.blocks.iter().zip(blocks).rev() {
            dx = self.block_backward(backend, params, block, saved, inputs, &dx, grads)?;
        }
        let dx = dx.reshape(&[inputs.batch, inputs.len, self.config.hidden_size])?;
        let dwte = backend.embedding_bwd(&inputs.ids, &dx, self.config.vocab_size)?;
        grads.add(backend, self.wte, dwte)?;
        if let Some(wpe) = self.wpe {
            let dwpe = backend.embedding_bwd(&inputs.positions, &dx, self.config.max_positions)?;
            grads.add(backend, wpe, dwpe)?;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn block_backward<B: Backend>(
        &self,
        backend: &B,
        params: &ParamSet<B>,
        block: &Block,
        s: BlockSaved<B>,
        inputs: &Inputs<B>,
        dout: &Tensor<B>,
        grads: &mut GradSlots<B>,
    ) -> Result<Tensor<B>> {
        let cfg = &self.config;
        let (bsz, t) = (inputs.batch, inputs.len);
        let (n, nh, nkv, hs) = (bsz * t, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim);

        let dh2 = match (block.mlp, &s.mlp) {
            (Mlp::Gelu { fc, proj }, MlpSaved::Gelu { pre, act }) => {
                let dact = linear_backward(backend, params, proj, act, dout, grads)?;
                let dpre = backend.gelu_bwd(pre, &dact)?;
                linear_backward(backend, params, fc, &s.h2, &dpre, grads)?
            }
            (Mlp::SwiGlu { gate, up, down }, MlpSaved::SwiGlu { gate: g, up: u, act }) => {
                let dact = linear_backward(backend, params, down, act, dout, grads)?;
                let d = backend.swiglu_bwd(g, u, &dact)?;
                let mut dh2 = linear_backward(backend, params, gate, &s.h2, &d.dgate, grads)?;
                let dh2_up = linear_backward(backend, params, up, &s.h2, &d.dup, grads)?;
                backend.axpy(&mut dh2, 1.0, &dh2_up)?;
                dh2
            }
            _ => unreachable!("a block's saved MLP state is built from its own MLP kind"),
        };
        let mut dx_mid = norm_backward(backend, params, block.ln2, &s.x_mid, &s.ln2, &dh2, grads)?;
        backend.axpy(&mut dx_mid, 1.0, dout)?;

        let datt = linear_backward(backend, params, block.o, &s.att, &dx_mid, grads)?;
        let att = s.att.reshape(&[bsz, t, nh, hs])?;
        let datt = datt.reshape(&[bsz, t, nh, hs])?;
        let g = backend.attention_bwd(&s.q, &s.k, &s.v, &inputs.key_valid, &att, &s.lse, &datt, self.softmax_scale())?;
        let (mut dq, mut dk) = (g.dq, g.dk);
        if self.uses_rope() {
            dq = backend.rope_bwd(&dq, &inputs.positions, cfg.rope_theta)?;
            dk = backend.rope_bwd(&dk, &inputs.positions, cfg.rope_theta)?;
        }
        let dq = dq.reshape(&[n, nh * hs])?;
        let dk = dk.reshape(&[n, nkv * hs])?;
        let dv = g.dv.reshape(&[n, nkv * hs])?;
        let mut dh1 = linear_backward(backend, params, block.q, &s.h1, &dq, grads)?;
        backend.axpy(&mut dh1, 1.0, &linear_backward(backend, params, block.k, &s.h1, &dk, grads)?)?;
        backend.axpy(&mut dh1, 1.0, &linear_backward(backend, params, block.v, &s.h1, &dv, grads)?)?;
        let mut dx = norm_backward(backend, params, block.ln1, &s.x, &s.ln1, &dh1, grads)?;
        backend.axpy(&mut dx, 1.0, &dx_mid)?;
        Ok(dx)
    }

    /// Backward of [`Transformer::logits`]: adds the LM head's (or the tied embedding's) gradient
    /// to `grads` and returns d(hidden).
    pub fn logits_backward<B: Backend>(
        &self,
        backend: &B,
        params: &ParamSet<B>,
        hidden: &Tensor<B>,
        dlogits: &Tensor<B>,
        grads: &mut GradSlots<B>,
    ) -> Result<Tensor<B>> {
        match self.lm_head {
            Some(head) => linear_backward(backend, params, head, hidden, dlogits, grads),
            None => {
                let tied = Linear { w: self.wte, b: None, spec: GemmSpec::nt() };
                linear_backward(backend, params, tied, hidden, dlogits, grads)
            }
        }
    }
}
