//! Which parameter plays which role, and how to create a freshly initialised parameter set.

use runtime::ops::gemm::GemmSpec;
use runtime::{Backend, DType};

use crate::params::ParamSet;
use crate::{Architecture, ModelConfig, Result};

/// A linear layer: weight index, optional bias index, and the weight's storage layout.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Linear {
    pub w: usize,
    pub b: Option<usize>,
    /// `trans_b = true` for Hugging Face's `[out, in]` Linear; false for GPT-2's `[in, out]` Conv1D.
    pub spec: GemmSpec,
}

/// LayerNorm when `b` is present, RMSNorm otherwise.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Norm {
    pub w: usize,
    pub b: Option<usize>,
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Mlp {
    Gelu { fc: Linear, proj: Linear },
    SwiGlu { gate: Linear, up: Linear, down: Linear },
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Block {
    pub ln1: Norm,
    pub q: Linear,
    pub k: Linear,
    pub v: Linear,
    pub o: Linear,
    pub ln2: Norm,
    pub mlp: Mlp,
}

/// The structure of a transformer: its config and where each parameter sits in the set.
#[derive(Debug, Clone)]
pub struct Transformer {
    pub config: ModelConfig,
    pub(crate) wte: usize,
    pub(crate) wpe: Option<usize>,
    pub(crate) blocks: Vec<Block>,
    pub(crate) ln_f: Norm,
    /// `None` when the LM head is tied to the token embedding.
    pub(crate) lm_head: Option<Linear>,
}

/// Supplies the host data of the parameter `name` with dimensions `dims`.
pub type InitFn<'a> = dyn FnMut(&str, &[usize]) -> Result<Vec<f32>> + 'a;

/// Builds a parameter set tensor by tensor from an [`InitFn`].
struct Builder<'a, B: Backend> {
    backend: &'a B,
    params: ParamSet<B>,
    init: &'a mut InitFn<'a>,
    dtype: DType,
}

impl<B: Backend> Builder<'_, B> {
    fn tensor(&mut self, name: String, dims: &[usize]) -> Result<usize> {
        let data = (self.init)(&name, dims)?;
        let t = self.backend.upload_f32(dims, &data, self.dtype)?;
        Ok(self.params.push(name, t))
    }

    fn linear(&mut self, prefix: &str, inp: usize, out: usize, bias: bool, conv1d: bool) -> Result<Linear> {
        let dims = if conv1d { [inp, out] } else { [out, inp] };
        let w = self.tensor(format!("{prefix}.weight"), &dims)?;
        let b = if bias { Some(self.tensor(format!("{prefix}.bias"), &[out])?) } else { None };
        Ok(Linear { w, b, spec: GemmSpec { trans_a: false, trans_b: !conv1d } })
    }

    fn norm(&mut self, prefix: &str, c: usize, with_bias: bool) -> Result<Norm> {
        let w = self.tensor(format!("{prefix}.weight"), &[c])?;
        let b = if with_bias { Some(self.tensor(format!("{prefix}.bias"), &[c])?) } else { None };
        Ok(Norm { w, b })
    }
}

impl Transformer {
    /// Lays out every parameter of `config` (names as Hugging Face's `*ForCausalLM` /
    /// `GPT2LMHeadModel` save them, except that GPT-2's fused `c_attn` is held as three
    /// projections `attn.q`, `attn.k`, `attn.v`) and creates each with `init(name, dims)`.
    pub fn build<B: Backend>(
        config: &ModelConfig,
        backend: &B,
        dtype: DType,
        init: &mut InitFn,
    ) -> Result<(Transformer, ParamSet<B>)> {
        let c = config.hidden_size;
        let (nh, nkv, hs) = (config.num_heads, config.num_kv_heads, config.head_dim);
        let gpt2 = config.arch == Architecture::Gpt2;
        let root = if gpt2 { "transformer" } else { "model" };
        let mut b = Builder { backend, params: ParamSet::default(), init, dtype };
        let wte_name = if gpt2 { "transformer.wte.weight" } else { "model.embed_tokens.weight" };
        let wte = b.tensor(wte_name.into(), &[config.vocab_size, c])?;
        let wpe = if gpt2 {
            Some(b.tensor("transformer.wpe.weight".into(), &[config.max_positions, c])?)
        } else {
            None
        };
        let mut blocks = Vec::with_capacity(config.num_layers);
        for i in 0..config.num_layers {
            let block = if gpt2 {
                let p = format!("{root}.h.{i}");
                Block {
                    ln1: b.norm(&format!("{p}.ln_1"), c, true)?,
                    q: b.linear(&format!("{p}.attn.q"), c, c, true, true)?,
                    k: b.linear(&format!("{p}.attn.k"), c, c, true, true)?,
                    v: b.linear(&format!("{p}.attn.v"), c, c, true, true)?,
                    o: b.linear(&format!("{p}.attn.c_proj"), c, c, true, true)?,
                    ln2: b.norm(&format!("{p}.ln_2"), c, true)?,
                    mlp: Mlp::Gelu {
                        fc: b.linear(&format!("{p}.mlp.c_fc"), c, config.intermediate_size, true, true)?,
                        proj: b.linear(&format!("{p}.mlp.c_proj"), config.intermediate_size, c, true, true)?,
                    },
                }
            } else {
                let p = format!("{root}.layers.{i}");
                let bias = config.qkv_bias;
                let ff = config.intermediate_size;
                Block {
                    ln1: b.norm(&format!("{p}.input_layernorm"), c, false)?,
                    q: b.linear(&format!("{p}.self_attn.q_proj"), c, nh * hs, bias, false)?,
                    k: b.linear(&format!("{p}.self_attn.k_proj"), c, nkv * hs, bias, false)?,
                    v: b.linear(&format!("{p}.self_attn.v_proj"), c, nkv * hs, bias, false)?,
                    o: b.linear(&format!("{p}.self_attn.o_proj"), nh * hs, c, false, false)?,
                    ln2: b.norm(&format!("{p}.post_attention_layernorm"), c, false)?,
                    mlp: Mlp::SwiGlu {
                        gate: b.linear(&format!("{p}.mlp.gate_proj"), c, ff, false, false)?,
                        up: b.linear(&format!("{p}.mlp.up_proj"), c, ff, false, false)?,
                        down: b.linear(&format!("{p}.mlp.down_proj"), ff, c, false, false)?,
                    },
                }
            };
            blocks.push(block);
        }
        let ln_f = if gpt2 { b.norm("transformer.ln_f", c, true)? } else { b.norm("model.norm", c, false)? };
        let lm_head = if config.tie_word_embeddings {
            None
        } else {
            Some(b.linear("lm_head", c, config.vocab_size, false, false)?)
        };
        let layout = Transformer { config: config.clone(), wte, wpe, blocks, ln_f, lm_head };
        Ok((layout, b.params))
    }
}
