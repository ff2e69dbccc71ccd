//! The forward pass, keeping what the backward needs.

use runtime::ops::gemm::GemmSpec;
use runtime::{Backend, Tensor};

use super::layout::{Block, Linear, Mlp, Norm, Transformer};
use crate::params::ParamSet;
use crate::{ModelError, Result};

/// One batch of token rows `[B, T]`: ids, per-token positions and which tokens are real.
pub struct Inputs<B: Backend> {
    pub ids: Tensor<B>,
    pub positions: Tensor<B>,
    pub key_valid: Tensor<B>,
    pub batch: usize,
    pub len: usize,
}

impl<B: Backend> Inputs<B> {
    /// Pads `rows` to the longest with `pad_id` on the left (for generation) or the right (for
    /// training). Positions count real tokens only (0, 1, 2, ... from each row's first real token;
    /// padding gets 0), which is what Hugging Face derives from the attention mask.
    pub fn from_rows(backend: &B, rows: &[Vec<u32>], pad_left: bool, pad_id: u32) -> Result<Self> {
        let len = rows.iter().map(Vec::len).max().unwrap_or(0);
        if rows.is_empty() || len == 0 {
            return Err(ModelError::Input("a batch needs at least one non-empty row".into()));
        }
        let batch = rows.len();
        let (mut ids, mut positions, mut valid) = (Vec::new(), Vec::new(), Vec::new());
        for row in rows {
            let pad = len - row.len();
            let (front, back) = if pad_left { (pad, 0) } else { (0, pad) };
            ids.extend(std::iter::repeat_n(pad_id, front).chain(row.iter().copied()).chain(std::iter::repeat_n(pad_id, back)));
            positions.extend(std::iter::repeat_n(0, front).chain(0..row.len() as u32).chain(std::iter::repeat_n(0, back)));
            valid.extend(std::iter::repeat_n(0, front).chain(std::iter::repeat_n(1, row.len())).chain(std::iter::repeat_n(0, back)));
        }
        let dims = [batch, len];
        Ok(Inputs {
            ids: backend.upload_u32(&dims, &ids)?,
            positions: backend.upload_u32(&dims, &positions)?,
            key_valid: backend.upload_u32(&dims, &valid)?,
            batch,
            len,
        })
    }
}

/// How a block's attention reads keys and values.
pub(crate) enum Attend<'a, B: Backend> {
    /// Over the tokens of this call only (training, scoring).
    Full { key_valid: &'a Tensor<B> },
    /// Append this call's keys and values at row `start` of the layer's cache, then attend over
    /// the cache's first `start + Tn` rows.
    Cached { k_cache: &'a mut Tensor<B>, v_cache: &'a mut Tensor<B>, key_valid: &'a Tensor<B>, start: usize },
}

/// Saved statistics of one norm (LayerNorm keeps the mean, RMSNorm does not).
pub(crate) struct NormSaved<B: Backend> {
    pub mean: Option<Tensor<B>>,
    pub rstd: Tensor<B>,
}

pub(crate) enum MlpSaved<B: Backend> {
    Gelu { pre: Tensor<B>, act: Tensor<B> },
    SwiGlu { gate: Tensor<B>, up: Tensor<B>, act: Tensor<B> },
}

/// What one block's backward needs. Tensors are `[N, ·]` unless noted.
pub(crate) struct BlockSaved<B: Backend> {
    pub x: Tensor<B>,
    pub h1: Tensor<B>,
    pub ln1: NormSaved<B>,
    /// After RoPE: q `[B, T, NH, HS]`, k and v `[B, T, NKV, HS]`.
    pub q: Tensor<B>,
    pub k: Tensor<B>,
    pub v: Tensor<B>,
    /// Attention output viewed as `[N, NH·HS]`, and its log-sum-exp `[B, NH, T]`.
    pub att: Tensor<B>,
    pub lse: Tensor<B>,
    pub x_mid: Tensor<B>,
    pub h2: Tensor<B>,
    pub ln2: NormSaved<B>,
    pub mlp: MlpSaved<B>,
}

/// Everything the backward needs, and the final hidden state `[N, C]` (after the last norm).
pub struct Activations<B: Backend> {
    pub(crate) blocks: Vec<BlockSaved<B>>,
    pub(crate) x_final: Tensor<B>,
    pub(crate) ln_f: NormSaved<B>,
    pub hidden: Tensor<B>,
}

pub(crate) fn linear<B: Backend>(backend: &B, params: &ParamSet<B>, lin: Linear, x: &Tensor<B>) -> Result<Tensor<B>> {
    let bias = lin.b.map(|b| params.get(b));
    Ok(backend.gemm(x, params.get(lin.w), bias, lin.spec)?)
}

fn norm<B: Backend>(
    backend: &B,
    params: &ParamSet<B>,
    norm: Norm,
    x: &Tensor<B>,
    eps: f32,
) -> Result<(Tensor<B>, NormSaved<B>)> {
    let w = params.get(norm.w);
    Ok(match norm.b {
        Some(b) => {
            let out = backend.layernorm_fwd(x, w, params.get(b), eps)?;
            (out.y, NormSaved { mean: Some(out.mean), rstd: out.rstd })
        }
        None => {
            let out = backend.rmsnorm_fwd(x, w, eps)?;
            (out.y, NormSaved { mean: None, rstd: out.rstd })
        }
    })
}

impl Transformer {
    pub(crate) fn softmax_scale(&self) -> f32 {
        1.0 / (self.config.head_dim as f32).sqrt()
    }

    pub(crate) fn uses_rope(&self) -> bool {
        self.wpe.is_none()
    }

    /// Whether positions index a learned table (GPT-2), which bounds the sequence length.
    pub fn has_learned_positions(&self) -> bool {
        self.wpe.is_some()
    }

    /// Runs the whole trunk on `inputs` and returns the final hidden state with the saved
    /// activations.
    pub fn forward<B: Backend>(&self, backend: &B, params: &ParamSet<B>, inputs: &Inputs<B>) -> Result<Activations<B>> {
        let mut x = self.embed(backend, params, &inputs.ids, &inputs.positions)?;
        let mut blocks = Vec::with_capacity(self.blocks.len());
        for block in &self.blocks {
            let attend = Attend::Full { key_valid: &inputs.key_valid };
            let (saved, out) = self.block_forward(backend, params, block, x, &inputs.positions, attend)?;
            blocks.push(saved);
            x = out;
        }
        let (hidden, ln_f) = norm(backend, params, self.ln_f, &x, self.config.norm_eps)?;
        Ok(Activations { blocks, x_final: x, ln_f, hidden })
    }

    /// The embedding of `ids` `[B, Tn]` at `positions` `[B, Tn]`, as `[B·Tn, C]`.
    pub(crate) fn embed<B: Backend>(&self, backend: &B, params: &ParamSet<B>, ids: &Tensor<B>, positions: &Tensor<B>) -> Result<Tensor<B>> {
        let n = ids.numel();
        let c = self.config.hidden_size;
        let x = backend.embedding_fwd(ids, params.get(self.wte))?.reshape(&[n, c])?;
        match self.wpe {
            Some(wpe) => {
                let pos = backend.embedding_fwd(positions, params.get(wpe))?.reshape(&[n, c])?;
                Ok(backend.add(&x, &pos)?)
            }
            None => Ok(x),
        }
    }

    /// Runs `ids` `[B, Tn]` through the trunk against per-layer KV caches (keys and values of the
    /// earlier `start` tokens; this call's are appended), returning the final hidden state
    /// `[B·Tn, C]`. `key_valid` is `[B, Tmax]`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn forward_cached<B: Backend>(
        &self,
        backend: &B,
        params: &ParamSet<B>,
        caches: &mut [(Tensor<B>, Tensor<B>)],
        ids: &Tensor<B>,
        positions: &Tensor<B>,
        key_valid: &Tensor<B>,
        start: usize,
    ) -> Result<Tensor<B>> {
        let mut x = self.embed(backend, params, ids, positions)?;
        for (block, (k_cache, v_cache)) in self.blocks.iter().zip(caches) {
            let attend = Attend::Cached { k_cache, v_cache, key_valid, start };
            x = self.block_forward(backend, params, block, x, positions, attend)?.1;
        }
        Ok(norm(backend, params, self.ln_f, &x, self.config.norm_eps)?.0)
    }

    /// One block: its output `x_mid + mlp(norm2(x_mid))` with `x_mid = x + attn(norm1(x))`, and
    /// what its backward needs.
    fn block_forward<B: Backend>(
        &self,
        backend: &B,
        params: &ParamSet<B>,
        block: &Block,
        x: Tensor<B>,
        positions: &Tensor<B>,
        attend: Attend<B>,
    ) -> Result<(BlockSaved<B>, Tensor<B>)> {
        let cfg = &self.config;
        let (bsz, t) = (positions.dims()[0], positions.dims()[1]);
        let (nh, nkv, hs) = (cfg.num_heads, cfg.num_kv_heads, cfg.head_dim);
        let (h1, ln1) = norm(backend, params, block.ln1, &x, cfg.norm_eps)?;
        let mut q = linear(backend, params, block.q, &h1)?.reshape(&[bsz, t, nh, hs])?;
        let mut k = linear(backend, params, block.k, &h1)?.reshape(&[bsz, t, nkv, hs])?;
        let v = linear(backend, params, block.v, &h1)?.reshape(&[bsz, t, nkv, hs])?;
        if self.uses_rope() {
            q = backend.rope_fwd(&q, positions, cfg.rope_theta)?;
            k = backend.rope_fwd(&k, positions, cfg.rope_theta)?;
        }
        let att = match attend {
            Attend::Full { key_valid } => backend.attention_fwd(&q, &k, &v, key_valid, self.softmax_scale())?,
            Attend::Cached { k_cache, v_cache, key_valid, start } => {
                backend.kv_cache_write(k_cache, &k, start)?;
                backend.kv_cache_write(v_cache, &v, start)?;
                backend.attention_decode(&q, k_cache, v_cache, key_valid, start + t, self.softmax_scale())?
            }
        };
        let att_flat = att.out.reshape(&[bsz * t, nh * hs])?;
        let proj = linear(backend, params, block.o, &att_flat)?;
        let x_mid = backend.add(&x, &proj)?;
        let (h2, ln2) = norm(backend, params, block.ln2, &x_mid, cfg.norm_eps)?;
        let (mlp, mlp_out) = match block.mlp {
            Mlp::Gelu { fc, proj } => {
                let pre = linear(backend, params, fc, &h2)?;
                let act = backend.gelu_fwd(&pre)?;
                let out = linear(backend, params, proj, &act)?;
                (MlpSaved::Gelu { pre, act }, out)
            }
            Mlp::SwiGlu { gate, up, down } => {
                let gate = linear(backend, params, gate, &h2)?;
                let up = linear(backend, params, up, &h2)?;
                let act = backend.swiglu_fwd(&gate, &up)?;
                let out = linear(backend, params, down, &act)?;
                (MlpSaved::SwiGlu { gate, up, act }, out)
            }
        };
        let out = backend.add(&x_mid, &mlp_out)?;
        let saved = BlockSaved { x, h1, ln1, q, k, v, att: att_flat, lse: att.lse, x_mid, h2, ln2, mlp };
        Ok((saved, out))
    }

    /// Logits `[N, V]` of the LM head (tied to the token embedding when the config says so).
    pub fn logits<B: Backend>(&self, backend: &B, params: &ParamSet<B>, hidden: &Tensor<B>) -> Result<Tensor<B>> {
        match self.lm_head {
            Some(head) => linear(backend, params, head, hidden),
            None => Ok(backend.gemm(hidden, params.get(self.wte), None, GemmSpec::nt())?),
        }
    }
}
