//! Tiny random models of each architecture, shared by the model tests.

use models::transformer::{Model, Transformer};
use models::ModelConfig;
use runtime::{Backend, DType};

use crate::common::Rng;

pub const ARCHITECTURES: [&str; 3] = ["gpt2", "llama", "qwen2"];

pub fn config(model_type: &str) -> ModelConfig {
    let json = match model_type {
        "gpt2" => r#"{"model_type":"gpt2","vocab_size":23,"n_positions":32,"n_embd":16,"n_layer":2,"n_head":2,"n_inner":24,"tie_word_embeddings":true}"#,
        "llama" => r#"{"model_type":"llama","vocab_size":23,"hidden_size":16,"intermediate_size":24,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"max_position_embeddings":32,"rms_norm_eps":1e-5,"rope_theta":100.0}"#,
        _ => r#"{"model_type":"qwen2","vocab_size":23,"hidden_size":16,"intermediate_size":24,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":1,"max_position_embeddings":32,"rms_norm_eps":1e-5,"tie_word_embeddings":true}"#,
    };
    ModelConfig::from_json(json, "tiny config.json").unwrap()
}

/// A model with random weights (norm weights near 1 so it is well-conditioned).
pub fn model<B: Backend>(backend: &B, model_type: &str, seed: u64) -> Model<B> {
    let mut rng = Rng::new(seed);
    let (layout, params) = Transformer::build(&config(model_type), backend, DType::F32, &mut |name, dims| {
        let n: usize = dims.iter().product();
        Ok(if name.contains("ln") || name.contains("norm") { rng.uniform_vec(n, 0.8, 1.2) } else { rng.normal_vec(n, 0.3) })
    })
    .unwrap();
    Model { layout, params }
}
