//! Loading and saving whole models in Hugging Face's layout: `config.json` plus
//! `model.safetensors` (or sharded safetensors with an index), with the tensor names transformers
//! uses, so a checkpoint goes both ways without conversion.
//!
//! Internally GPT-2's fused `attn.c_attn` (`[C, 3C]` weight, `[3C]` bias) is held as three
//! projections `attn.q`, `attn.k`, `attn.v`; loading splits its columns and saving joins them.

use std::collections::BTreeSet;
use std::path::Path;

use runtime::{Backend, DType};
use serde_json::json;

use crate::transformer::{Model, Transformer};
use crate::weights::{self, Checkpoint, HostTensor, StorageDtype};
use crate::{Architecture, ModelConfig, ModelError, Result};

/// Buffers some checkpoints carry that are not parameters (attention masks, RoPE tables).
fn is_ignored_buffer(name: &str) -> bool {
    name.ends_with(".attn.bias") && !name.contains("c_attn")
        || name.ends_with(".attn.masked_bias")
        || name.ends_with("rotary_emb.inv_freq")
}

/// For a GPT-2 split projection name, the fused tensor it comes from and which third it is.
fn fused_source(name: &str) -> Option<(String, usize)> {
    for (part, third) in [(".attn.q.", 0), (".attn.k.", 1), (".attn.v.", 2)] {
        if let Some(at) = name.find(part) {
            let suffix = &name[at + part.len()..];
            return Some((format!("{}.attn.c_attn.{suffix}", &name[..at]), third));
        }
    }
    None
}

/// Columns `third·C .. (third+1)·C` of a row-major `[rows, 3C]` (or `[3C]`) tensor.
fn column_third(t: &HostTensor, third: usize) -> HostTensor {
    let cols = t.dims[t.dims.len() - 1];
    let c = cols / 3;
    let data = t.data.chunks(cols).flat_map(|row| row[third * c..(third + 1) * c].to_vec()).collect();
    let mut dims = t.dims.clone();
    *dims.last_mut().expect("a fused tensor has at least one dim") = c;
    HostTensor { dims, data }
}

/// Joins three `[rows, C]` (or `[C]`) tensors column-wise into `[rows, 3C]`.
fn join_columns(parts: [&HostTensor; 3]) -> HostTensor {
    let c = parts[0].dims[parts[0].dims.len() - 1];
    let rows = parts[0].data.len() / c.max(1);
    let mut data = Vec::with_capacity(rows * 3 * c);
    for r in 0..rows {
        for p in parts {
            data.extend_from_slice(&p.data[r * c..(r + 1) * c]);
        }
    }
    let mut dims = parts[0].dims.clone();
    *dims.last_mut().expect("a projection has at least one dim") = 3 * c;
    HostTensor { dims, data }
}

/// Finds `name` in the checkpoint, also without the `transformer.` / `model.` prefix that base
/// (headless) models omit.
fn resolve(ckpt: &Checkpoint, name: &str) -> Option<String> {
    if ckpt.contains(name) {
        return Some(name.to_string());
    }
    let bare = name.strip_prefix("transformer.").or_else(|| name.strip_prefix("model."))?;
    ckpt.contains(bare).then(|| bare.to_string())
}

impl<B: Backend> Model<B> {
    /// Loads `dir/config.json` and the weights beside it into `dtype` (f32 or bf16) tensors.
    pub fn load(dir: &Path, backend: &B, dtype: DType) -> Result<Self> {
        let config = ModelConfig::from_file(&dir.join("config.json"))?;
        let ckpt = Checkpoint::open(dir)?;
        let mut used = BTreeSet::new();
        let shown = dir.display().to_string();
        let missing = |name: &str| ModelError::Weights { path: shown.clone(), msg: format!("tensor `{name}` is missing") };
        let (layout, params) = Transformer::build(&config, backend, dtype, &mut |name, dims| {
            let tensor = match fused_source(name) {
                Some((fused, third)) => {
                    let source = resolve(&ckpt, &fused).ok_or_else(|| missing(&fused))?;
                    used.insert(source.clone());
                    column_third(&ckpt.read_f32(&source)?, third)
                }
                None => {
                    let source = resolve(&ckpt, name).ok_or_else(|| missing(name))?;
                    used.insert(source.clone());
                    ckpt.read_f32(&source)?
                }
            };
            if tensor.dims != dims {
                return Err(ModelError::Weights {
                    path: shown.clone(),
                    msg: format!("tensor `{name}` has shape {:?} in the checkpoint, the config needs {dims:?}", tensor.dims),
                });
            }
            Ok(tensor.data)
        })?;
        let tied_head = config.tie_word_embeddings && ckpt.contains("lm_head.weight");
        if let Some(extra) = ckpt.names().find(|n| !(used.contains(*n) || is_ignored_buffer(n) || tied_head && *n == "lm_head.weight")) {
            return Err(ModelError::Weights {
                path: shown,
                msg: format!("unexpected tensor `{extra}` (not part of a {:?} model with this config)", config.arch),
            });
        }
        Ok(Model { layout, params })
    }

    /// Writes `dir/config.json` and `dir/model.safetensors` (atomically) in Hugging Face's layout.
    pub fn save(&self, dir: &Path, backend: &B, dtype: StorageDtype) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|source| ModelError::Io { path: dir.display().to_string(), source })?;
        let mut host = std::collections::HashMap::with_capacity(self.params.len());
        for (name, t) in self.params.iter() {
            host.insert(name.to_string(), HostTensor { dims: t.dims().to_vec(), data: backend.download_f32(t)? });
        }
        let mut out: Vec<(String, HostTensor)> = Vec::with_capacity(host.len());
        for (name, _) in self.params.iter() {
            match fused_source(name) {
                // The q part stands for the fused tensor; its k and v parts are joined to it.
                Some((fused, 0)) => {
                    let part = |p: &str| &host[&name.replacen(".attn.q.", p, 1)];
                    out.push((fused, join_columns([part(".attn.q."), part(".attn.k."), part(".attn.v.")])));
                }
                Some(_) => {}
                None => out.push((name.to_string(), host[name].clone())),
            }
        }
        weights::save(&dir.join("model.safetensors"), &out, dtype)?;
        let config = serde_json::to_vec_pretty(&self.layout.config.to_json())
            .map_err(|e| ModelError::Config { path: dir.display().to_string(), msg: e.to_string() })?;
        weights::write_atomically(&dir.join("config.json"), &config)
    }
}

impl ModelConfig {
    /// The `config.json` transformers reads for this model.
    pub fn to_json(&self) -> serde_json::Value {
        let eos = match self.eos_token_ids.as_slice() {
            [one] => json!(one),
            many => json!(many),
        };
        match self.arch {
            Architecture::Gpt2 => json!({
                "architectures": ["GPT2LMHeadModel"],
                "model_type": "gpt2",
                "vocab_size": self.vocab_size,
                "n_positions": self.max_positions,
                "n_embd": self.hidden_size,
                "n_layer": self.num_layers,
                "n_head": self.num_heads,
                "n_inner": self.intermediate_size,
                "activation_function": "gelu_new",
                "layer_norm_epsilon": self.norm_eps,
                "tie_word_embeddings": self.tie_word_embeddings,
                "bos_token_id": self.bos_token_id,
                "eos_token_id": eos,
                "pad_token_id": self.pad_token_id,
            }),
            Architecture::Llama | Architecture::Qwen2 => {
                let (arch, model_type) = if self.arch == Architecture::Llama {
                    ("LlamaForCausalLM", "llama")
                } else {
                    ("Qwen2ForCausalLM", "qwen2")
                };
                let mut v = json!({
                    "architectures": [arch],
                    "model_type": model_type,
                    "vocab_size": self.vocab_size,
                    "hidden_size": self.hidden_size,
                    "intermediate_size": self.intermediate_size,
                    "num_hidden_layers": self.num_layers,
                    "num_attention_heads": self.num_heads,
                    "num_key_value_heads": self.num_kv_heads,
                    "head_dim": self.head_dim,
                    "hidden_act": "silu",
                    "max_position_embeddings": self.max_positions,
                    "rms_norm_eps": self.norm_eps,
                    "rope_theta": self.rope_theta,
                    "tie_word_embeddings": self.tie_word_embeddings,
                    "bos_token_id": self.bos_token_id,
                    "eos_token_id": eos,
                    "pad_token_id": self.pad_token_id,
                });
                if self.arch == Architecture::Llama {
                    v["attention_bias"] = json!(self.qkv_bias);
                }
                v
            }
        }
    }
}
