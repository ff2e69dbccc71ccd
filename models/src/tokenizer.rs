//! Text ↔ token ids through a Hugging Face `tokenizer.json` (the `tokenizers` crate, pure-Rust
//! regex engine).

use std::path::Path;

use crate::{ModelError, Result};

/// A loaded `tokenizer.json`.
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    path: String,
}

impl Tokenizer {
    pub fn from_file(path: &Path) -> Result<Self> {
        let shown = path.display().to_string();
        if !path.exists() {
            return Err(ModelError::Config { path: shown, msg: "tokenizer file not found".into() });
        }
        let inner = tokenizers::Tokenizer::from_file(path)
            .map_err(|e| ModelError::Config { path: shown.clone(), msg: format!("invalid tokenizer: {e}") })?;
        Ok(Tokenizer { inner, path: shown })
    }

    fn err(&self, msg: String) -> ModelError {
        ModelError::Config { path: self.path.clone(), msg }
    }

    /// Token ids of `text`, with the special tokens the tokenizer's post-processor adds (a BOS for
    /// Llama-style tokenizers, nothing for GPT-2), as `tokenizer(text)` does in transformers.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self.inner.encode(text, true).map_err(|e| self.err(format!("cannot encode {text:?}: {e}")))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Text of `ids`, leaving out special tokens.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner.decode(ids, true).map_err(|e| self.err(format!("cannot decode {ids:?}: {e}")))
    }

    /// The id of a token string (e.g. `"<|endoftext|>"`), if the vocabulary has it.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }
}
