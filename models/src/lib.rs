//! Transformer models (GPT-2, Llama, Qwen2) built from the ops of [`runtime::Backend`].
//! Filled in by the models work; the crate exists so the workspace has its final shape.
