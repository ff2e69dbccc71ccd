//! Model configuration from a Hugging Face `config.json` (`model_type` gpt2, llama, qwen2).
//!
//! Only settings that this runtime implements are accepted: a field that would change the maths
//! into something we do not compute (rope scaling, sliding windows, MLP bias on Llama, another
//! activation, ...) is an error naming the field, never a silently different model.

use std::path::Path;

use serde_json::{Map, Value};

use crate::{ModelError, Result};

/// The model families whose block structure we implement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    /// LayerNorm, learned positions, fused c_attn with bias, GELU (tanh) MLP, Conv1D `[in, out]`
    /// weights.
    Gpt2,
    /// RMSNorm, RoPE, grouped-query attention without bias, SwiGLU MLP.
    Llama,
    /// Llama with bias on the q/k/v projections.
    Qwen2,
}

/// Everything the forward pass needs to know about a checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    pub arch: Architecture,
    /// V
    pub vocab_size: usize,
    /// C
    pub hidden_size: usize,
    pub num_layers: usize,
    /// NH
    pub num_heads: usize,
    /// NKV (equal to NH for GPT-2)
    pub num_kv_heads: usize,
    /// HS
    pub head_dim: usize,
    /// Width of the MLP's hidden layer.
    pub intermediate_size: usize,
    pub max_positions: usize,
    pub norm_eps: f32,
    /// RoPE base (Llama, Qwen2); unused by GPT-2.
    pub rope_theta: f32,
    pub tie_word_embeddings: bool,
    /// Bias on the q/k/v projections (GPT-2 and Qwen2).
    pub qkv_bias: bool,
    pub bos_token_id: Option<u32>,
    /// Every id that ends a sequence (Llama 3 lists several).
    pub eos_token_ids: Vec<u32>,
    pub pad_token_id: Option<u32>,
}

/// Typed access to the fields of one `config.json`, with errors that name the file and field.
struct Fields<'a> {
    path: &'a str,
    map: &'a Map<String, Value>,
}

impl Fields<'_> {
    fn err(&self, msg: impl Into<String>) -> ModelError {
        ModelError::Config { path: self.path.to_string(), msg: msg.into() }
    }

    fn get(&self, key: &str) -> Option<&Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    fn usize_opt(&self, key: &str) -> Result<Option<usize>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .map(|x| Some(x as usize))
                .ok_or_else(|| self.err(format!("field `{key}` must be a non-negative integer, got {v}"))),
        }
    }

    fn usize(&self, key: &str) -> Result<usize> {
        self.usize_opt(key)?.ok_or_else(|| self.err(format!("missing field `{key}`")))
    }

    fn positive(&self, key: &str) -> Result<usize> {
        match self.usize(key)? {
            0 => Err(self.err(format!("field `{key}` must be positive"))),
            n => Ok(n),
        }
    }

    fn f32_or(&self, key: &str, default: f32) -> Result<f32> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v
                .as_f64()
                .map(|x| x as f32)
                .ok_or_else(|| self.err(format!("field `{key}` must be a number, got {v}"))),
        }
    }

    fn bool_or(&self, key: &str, default: bool) -> Result<bool> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v.as_bool().ok_or_else(|| self.err(format!("field `{key}` must be a boolean, got {v}"))),
        }
    }

    fn str_or<'v>(&'v self, key: &str, default: &'v str) -> Result<&'v str> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v.as_str().ok_or_else(|| self.err(format!("field `{key}` must be a string, got {v}"))),
        }
    }

    /// Fails unless `key` is absent, null, or equal to `allowed`.
    fn require(&self, key: &str, allowed: &Value, why: &str) -> Result<()> {
        match self.get(key) {
            Some(v) if v != allowed => Err(self.err(format!("field `{key}` = {v} is not supported: {why}"))),
            _ => Ok(()),
        }
    }

    fn token_ids(&self, key: &str) -> Result<Vec<u32>> {
        let bad = || self.err(format!("field `{key}` must be a token id or a list of them"));
        match self.get(key) {
            None => Ok(vec![]),
            Some(Value::Array(items)) => {
                items.iter().map(|v| v.as_u64().map(|x| x as u32).ok_or_else(bad)).collect()
            }
            Some(v) => v.as_u64().map(|x| vec![x as u32]).ok_or_else(bad),
        }
    }
}

impl ModelConfig {
    /// Reads and validates `config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|source| ModelError::Io { path: shown.clone(), source })?;
        Self::from_json(&text, &shown)
    }

    /// Parses the text of a `config.json`; `path` is only used in error messages.
    pub fn from_json(text: &str, path: &str) -> Result<Self> {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| ModelError::Config { path: path.into(), msg: format!("invalid JSON: {e}") })?;
        let map = value
            .as_object()
            .ok_or_else(|| ModelError::Config { path: path.into(), msg: "expected a JSON object".into() })?;
        let f = Fields { path, map };
        let config = match f.str_or("model_type", "")? {
            "gpt2" => Self::gpt2(&f)?,
            "llama" => Self::llama_like(&f, Architecture::Llama)?,
            "qwen2" => Self::llama_like(&f, Architecture::Qwen2)?,
            "" => return Err(f.err("missing field `model_type`")),
            other => {
                return Err(f.err(format!("model_type `{other}` is not supported (gpt2, llama, qwen2 are)")))
            }
        };
        config.validate(&f)?;
        Ok(config)
    }

    fn gpt2(f: &Fields) -> Result<Self> {
        f.require("activation_function", &"gelu_new".into(), "only gelu_new (tanh GELU) is implemented")?;
        f.require("scale_attn_weights", &true.into(), "attention is always scaled by 1/sqrt(HS)")?;
        f.require("scale_attn_by_inverse_layer_idx", &false.into(), "not implemented")?;
        f.require("add_cross_attention", &false.into(), "decoder-only models only")?;
        let hidden = f.positive("n_embd")?;
        let heads = f.positive("n_head")?;
        Ok(ModelConfig {
            arch: Architecture::Gpt2,
            vocab_size: f.positive("vocab_size")?,
            hidden_size: hidden,
            num_layers: f.positive("n_layer")?,
            num_heads: heads,
            num_kv_heads: heads,
            head_dim: hidden / heads,
            intermediate_size: f.usize_opt("n_inner")?.unwrap_or(4 * hidden),
            max_positions: f.positive("n_positions")?,
            norm_eps: f.f32_or("layer_norm_epsilon", 1e-5)?,
            rope_theta: 0.0,
            tie_word_embeddings: f.bool_or("tie_word_embeddings", true)?,
            qkv_bias: true,
            bos_token_id: f.token_ids("bos_token_id")?.first().copied(),
            eos_token_ids: f.token_ids("eos_token_id")?,
            pad_token_id: f.token_ids("pad_token_id")?.first().copied(),
        })
    }

    fn llama_like(f: &Fields, arch: Architecture) -> Result<Self> {
        f.require("hidden_act", &"silu".into(), "only SwiGLU with silu is implemented")?;
        f.require("rope_scaling", &Value::Null, "RoPE scaling is not implemented")?;
        f.require("mlp_bias", &false.into(), "MLP bias is not implemented")?;
        f.require("pretraining_tp", &1.into(), "tensor-parallel pretraining slices are not implemented")?;
        f.require("use_sliding_window", &false.into(), "sliding-window attention is not implemented")?;
        let qkv_bias = match arch {
            Architecture::Qwen2 => true,
            _ => f.bool_or("attention_bias", false)?,
        };
        let theta = match f.get("rope_parameters") {
            Some(Value::Object(rope)) => {
                let rf = Fields { path: f.path, map: rope };
                rf.require("rope_type", &"default".into(), "only default RoPE is implemented")?;
                rf.f32_or("rope_theta", 10000.0)?
            }
            Some(v) => return Err(f.err(format!("field `rope_parameters` must be an object, got {v}"))),
            None => f.f32_or("rope_theta", 10000.0)?,
        };
        let hidden = f.positive("hidden_size")?;
        let heads = f.positive("num_attention_heads")?;
        Ok(ModelConfig {
            arch,
            vocab_size: f.positive("vocab_size")?,
            hidden_size: hidden,
            num_layers: f.positive("num_hidden_layers")?,
            num_heads: heads,
            num_kv_heads: f.usize_opt("num_key_value_heads")?.unwrap_or(heads),
            head_dim: f.usize_opt("head_dim")?.unwrap_or(hidden / heads),
            intermediate_size: f.positive("intermediate_size")?,
            max_positions: f.positive("max_position_embeddings")?,
            norm_eps: f.f32_or("rms_norm_eps", 1e-6)?,
            rope_theta: theta,
            tie_word_embeddings: f.bool_or("tie_word_embeddings", false)?,
            qkv_bias,
            bos_token_id: f.token_ids("bos_token_id")?.first().copied(),
            eos_token_ids: f.token_ids("eos_token_id")?,
            pad_token_id: f.token_ids("pad_token_id")?.first().copied(),
        })
    }

    fn validate(&self, f: &Fields) -> Result<()> {
        if self.num_kv_heads == 0 || self.num_heads % self.num_kv_heads != 0 {
            return Err(f.err(format!(
                "num_attention_heads ({}) must be a multiple of num_key_value_heads ({})",
                self.num_heads, self.num_kv_heads
            )));
        }
        if self.arch == Architecture::Gpt2 && self.hidden_size % self.num_heads != 0 {
            return Err(f.err(format!(
                "n_embd ({}) must be a multiple of n_head ({})",
                self.hidden_size, self.num_heads
            )));
        }
        if self.arch != Architecture::Gpt2 && self.head_dim % 2 != 0 {
            return Err(f.err(format!("head_dim ({}) must be even for RoPE", self.head_dim)));
        }
        if !(self.norm_eps.is_finite() && self.norm_eps >= 0.0) {
            return Err(f.err(format!("the norm epsilon must be finite and >= 0, got {}", self.norm_eps)));
        }
        if self.arch != Architecture::Gpt2 && !(self.rope_theta.is_finite() && self.rope_theta > 0.0) {
            return Err(f.err(format!("rope_theta must be positive, got {}", self.rope_theta)));
        }
        if let Some(bad) = self.eos_token_ids.iter().chain(&self.bos_token_id).chain(&self.pad_token_id).find(|&&id| id as usize >= self.vocab_size) {
            return Err(f.err(format!("special token id {bad} is outside the vocabulary (vocab_size {})", self.vocab_size)));
        }
        Ok(())
    }
}
