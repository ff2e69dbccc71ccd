use models::{Architecture, ModelConfig, ModelError};

fn parse(json: &str) -> Result<ModelConfig, ModelError> {
    ModelConfig::from_json(json, "dir/config.json")
}

#[test]
fn reads_each_architecture() {
    let gpt2 = parse(r#"{"model_type":"gpt2","vocab_size":50,"n_positions":64,"n_embd":32,"n_layer":2,"n_head":4,"n_inner":null,"layer_norm_epsilon":1e-5,"bos_token_id":7,"eos_token_id":7}"#).unwrap();
    assert_eq!(gpt2.arch, Architecture::Gpt2);
    assert_eq!((gpt2.head_dim, gpt2.intermediate_size, gpt2.num_kv_heads), (8, 128, 4));
    assert!(gpt2.tie_word_embeddings && gpt2.qkv_bias);
    assert_eq!(gpt2.eos_token_ids, vec![7]);

    let llama = parse(r#"{"model_type":"llama","vocab_size":50,"hidden_size":32,"intermediate_size":64,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"max_position_embeddings":128,"rms_norm_eps":1e-6,"rope_parameters":{"rope_theta":500000.0,"rope_type":"default"},"eos_token_id":[1,2]}"#).unwrap();
    assert_eq!(llama.arch, Architecture::Llama);
    assert_eq!((llama.num_kv_heads, llama.head_dim, llama.rope_theta), (2, 8, 500000.0));
    assert!(!llama.tie_word_embeddings && !llama.qkv_bias);
    assert_eq!(llama.eos_token_ids, vec![1, 2]);

    let qwen = parse(r#"{"model_type":"qwen2","vocab_size":50,"hidden_size":32,"intermediate_size":64,"num_hidden_layers":1,"num_attention_heads":4,"num_key_value_heads":1,"max_position_embeddings":128,"rope_theta":1000000.0,"tie_word_embeddings":true,"use_sliding_window":false,"sliding_window":null}"#).unwrap();
    assert_eq!(qwen.arch, Architecture::Qwen2);
    assert!(qwen.qkv_bias && qwen.tie_word_embeddings);
    assert_eq!(qwen.rope_theta, 1e6);
}

#[test]
fn rejects_settings_that_change_the_maths() {
    let base = r#""vocab_size":50,"hidden_size":32,"intermediate_size":64,"num_hidden_layers":1,"num_attention_heads":4,"max_position_embeddings":128"#;
    for (extra, field) in [
        (r#""rope_scaling":{"type":"linear","factor":2.0}"#, "rope_scaling"),
        (r#""hidden_act":"gelu""#, "hidden_act"),
        (r#""mlp_bias":true"#, "mlp_bias"),
        (r#""num_key_value_heads":3"#, "num_key_value_heads"),
        (r#""rope_parameters":{"rope_type":"yarn","rope_theta":10000.0}"#, "rope_type"),
    ] {
        let err = parse(&format!(r#"{{"model_type":"llama",{base},{extra}}}"#)).unwrap_err().to_string();
        assert!(err.contains("dir/config.json") && err.contains(field), "{extra}: {err}");
    }
    let err = parse(r#"{"model_type":"qwen2","vocab_size":50,"hidden_size":32,"intermediate_size":64,"num_hidden_layers":1,"num_attention_heads":4,"max_position_embeddings":128,"use_sliding_window":true}"#).unwrap_err();
    assert!(err.to_string().contains("use_sliding_window"), "{err}");
    let err = parse(r#"{"model_type":"gpt2","vocab_size":50,"n_positions":64,"n_embd":32,"n_layer":2,"n_head":4,"activation_function":"relu"}"#).unwrap_err();
    assert!(err.to_string().contains("activation_function"), "{err}");
}

#[test]
fn reports_missing_and_mistyped_fields() {
    let err = parse(r#"{"model_type":"gpt2","vocab_size":50,"n_positions":64,"n_layer":2,"n_head":4}"#).unwrap_err();
    assert!(err.to_string().contains("missing field `n_embd`"), "{err}");
    let err = parse(r#"{"model_type":"gpt2","vocab_size":"fifty","n_positions":64,"n_embd":32,"n_layer":2,"n_head":4}"#).unwrap_err();
    assert!(err.to_string().contains("vocab_size"), "{err}");
    let err = parse(r#"{"model_type":"bert"}"#).unwrap_err();
    assert!(err.to_string().contains("bert"), "{err}");
    let err = parse("{not json").unwrap_err();
    assert!(err.to_string().contains("invalid JSON"), "{err}");
    let err = parse(r#"{"model_type":"gpt2","vocab_size":50,"n_positions":64,"n_embd":32,"n_layer":2,"n_head":4,"eos_token_id":99}"#).unwrap_err();
    assert!(err.to_string().contains("99"), "{err}");
}
