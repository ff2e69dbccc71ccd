//! Transformer models (GPT-2, Llama, Qwen2) built from the ops of [`runtime::Backend`], read from
//! the files Hugging Face `transformers` writes.

pub mod checkpoint;
pub mod config;
mod error;
pub mod generate;
pub mod params;
pub mod sampling;
pub mod tokenizer;
pub mod transformer;
pub mod weights;

pub use config::{Architecture, ModelConfig};
pub use error::{ModelError, Result};
