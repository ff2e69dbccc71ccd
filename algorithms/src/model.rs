//! Fresh models for the bundled tasks: a small GPT-2- or Llama-style configuration sized for the
//! task, and GPT-2's initialisation.

use models::transformer::{Model, Transformer};
use models::{Architecture, ModelConfig};
use runtime::{Backend, DType};

use crate::rng::Rng;
use crate::tasks::{Granularity, Task};
use crate::tokenizer::TaskTokenizer;
use crate::Result;

/// The size of a transformer trained from scratch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelShape {
    /// GPT-2 (learned positions, LayerNorm, GELU) or Llama (RoPE, RMSNorm, SwiGLU); Qwen2 is
    /// taken as Llama.
    pub arch: Architecture,
    /// C
    pub hidden: usize,
    pub layers: usize,
    /// NH
    pub heads: usize,
    /// Width of the MLP's hidden layer.
    pub intermediate: usize,
    /// Longest prompt plus response the model will see.
    pub max_positions: usize,
}

impl ModelShape {
    /// The default size for `task`: 2 layers of width 64 (about 100k parameters), room for the
    /// longest prompt and response. Measured on the Cpu backend with 2 cores (shared): an `arith`
    /// SFT step on 64 rows takes about 12 ms, a `style` step about 30 ms.
    pub fn for_task(task: &dyn Task) -> Self {
        let prompt_tokens = |p: &String| match task.granularity() {
            Granularity::Characters => p.chars().count(),
            Granularity::Words => p.split(' ').count(),
        };
        let longest_prompt = task.train_prompts().iter().chain(task.eval_prompts()).map(prompt_tokens).max();
        let max_positions = (longest_prompt.unwrap_or(0) + task.max_response_tokens()).next_power_of_two();
        ModelShape { arch: Architecture::Gpt2, hidden: 64, layers: 2, heads: 4, intermediate: 256, max_positions }
    }

    /// A configuration of this shape for `tokenizer`'s vocabulary and special tokens, with tied
    /// input and output embeddings.
    pub fn config(&self, tokenizer: &TaskTokenizer) -> ModelConfig {
        let gpt2 = self.arch == Architecture::Gpt2;
        ModelConfig {
            arch: if gpt2 { Architecture::Gpt2 } else { Architecture::Llama },
            vocab_size: tokenizer.vocab_size(),
            hidden_size: self.hidden,
            num_layers: self.layers,
            num_heads: self.heads,
            num_kv_heads: self.heads,
            head_dim: self.hidden / self.heads,
            intermediate_size: self.intermediate,
            max_positions: self.max_positions,
            norm_eps: 1e-5,
            rope_theta: if gpt2 { 0.0 } else { 10_000.0 },
            tie_word_embeddings: true,
            qkv_bias: gpt2,
            bos_token_id: None,
            eos_token_ids: vec![tokenizer.eos_id()],
            pad_token_id: Some(tokenizer.pad_id()),
        }
    }
}

/// Standard deviation of GPT-2's initial weights.
const INIT_STD: f64 = 0.02;

/// A model of `config` with GPT-2's initialisation, in f32: weights N(0, 0.02²), the projections
/// that write into the residual stream scaled by `1/√(2·layers)` so the stream's variance does not
/// grow with depth, biases 0, norm weights 1.
pub fn init_model<B: Backend>(backend: &B, config: &ModelConfig, seed: u64) -> Result<Model<B>> {
    let mut rng = Rng::derived(seed, 4);
    let residual_std = INIT_STD / (2.0 * config.num_layers as f64).sqrt();
    let (layout, params) = Transformer::build(config, backend, DType::F32, &mut |name, dims| {
        let n: usize = dims.iter().product();
        let is_norm = ["ln_", "norm"].iter().any(|k| name.contains(k));
        Ok(if name.ends_with(".bias") {
            vec![0.0; n]
        } else if is_norm {
            vec![1.0; n]
        } else {
            let writes_residual = ["c_proj", "o_proj", "down_proj"].iter().any(|k| name.contains(k));
            let std = if writes_residual { residual_std } else { INIT_STD };
            (0..n).map(|_| (rng.normal() * std) as f32).collect()
        })
    })?;
    Ok(Model { layout, params })
}
