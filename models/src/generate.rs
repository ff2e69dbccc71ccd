//! Batched KV-cache decoding: prompts are left-padded to a common length, the prompt is run once
//! (prefill), then one token per step is fed against the per-layer caches. Each row stops at an
//! EOS id or after `max_new_tokens`.

use runtime::ops::sample::SampleDraw;
use runtime::{Backend, Tensor};

use crate::sampling::Sampling;
use crate::transformer::Model;
use crate::{ModelError, Result};

/// Step-by-step decoding state for one batch of prompts.
pub struct Decoder<'m, B: Backend> {
    backend: &'m B,
    model: &'m Model<B>,
    caches: Vec<(Tensor<B>, Tensor<B>)>,
    /// `[B, Tmax]` host copy of which cache rows hold real tokens.
    key_valid: Vec<u32>,
    /// Position of each row's next token.
    next_position: Vec<u32>,
    /// Cache rows filled so far (the same for every row: prompts are left-padded).
    filled: usize,
    capacity: usize,
    batch: usize,
}

impl<'m, B: Backend> Decoder<'m, B> {
    /// Allocates caches for `prompts` plus `max_new_tokens`, runs the prompts, and returns the
    /// decoder with the logits `[B, V]` (on the device) for each row's first new token.
    pub fn prefill(backend: &'m B, model: &'m Model<B>, prompts: &[Vec<u32>], max_new_tokens: usize) -> Result<(Self, Tensor<B>)> {
        let cfg = &model.layout.config;
        if prompts.is_empty() || prompts.iter().any(Vec::is_empty) {
            return Err(ModelError::Input("every prompt needs at least one token".into()));
        }
        let prompt_len = prompts.iter().map(Vec::len).max().unwrap_or(0);
        let capacity = prompt_len + max_new_tokens;
        if model.layout.has_learned_positions() && capacity > cfg.max_positions {
            return Err(ModelError::Input(format!(
                "prompt ({prompt_len} tokens) + max_new_tokens ({max_new_tokens}) exceeds the model's {} positions",
                cfg.max_positions
            )));
        }
        if let Some(bad) = prompts.iter().flatten().find(|&&id| id as usize >= cfg.vocab_size) {
            return Err(ModelError::Input(format!("token id {bad} is outside the vocabulary ({})", cfg.vocab_size)));
        }
        let batch = prompts.len();
        let dtype = model.params.get(0).dtype();
        let kv_dims = [batch, capacity, cfg.num_kv_heads, cfg.head_dim];
        let caches = (0..cfg.num_layers)
            .map(|_| Ok((backend.zeros(&kv_dims, dtype)?, backend.zeros(&kv_dims, dtype)?)))
            .collect::<Result<Vec<_>>>()?;
        let mut ids = Vec::with_capacity(batch * prompt_len);
        let mut positions = Vec::with_capacity(batch * prompt_len);
        let mut key_valid = vec![1u32; batch * capacity];
        for (b, row) in prompts.iter().enumerate() {
            let pad = prompt_len - row.len();
            ids.extend(std::iter::repeat_n(0, pad).chain(row.iter().copied()));
            positions.extend(std::iter::repeat_n(0, pad).chain(0..row.len() as u32));
            key_valid[b * capacity..b * capacity + pad].fill(0);
        }
        let next_position = prompts.iter().map(|r| r.len() as u32).collect();
        let mut decoder = Decoder { backend, model, caches, key_valid, next_position, filled: 0, capacity, batch };
        let logits = decoder.run(&ids, &positions, prompt_len)?;
        Ok((decoder, logits))
    }

    /// Feeds one token per row and returns the logits `[B, V]` for the next one.
    pub fn step(&mut self, tokens: &[u32]) -> Result<Tensor<B>> {
        if tokens.len() != self.batch {
            return Err(ModelError::Input(format!("step got {} tokens for a batch of {}", tokens.len(), self.batch)));
        }
        if self.filled >= self.capacity {
            return Err(ModelError::Input(format!("the KV cache is full ({} tokens)", self.capacity)));
        }
        let positions = self.next_position.clone();
        let logits = self.run(tokens, &positions, 1)?;
        for p in &mut self.next_position {
            *p += 1;
        }
        Ok(logits)
    }

    /// Runs `Tn` tokens per row (`ids`, `positions` are `[B, Tn]`) and returns the logits of each
    /// row's last one.
    fn run(&mut self, ids: &[u32], positions: &[u32], tn: usize) -> Result<Tensor<B>> {
        let (backend, layout, params) = (self.backend, &self.model.layout, &self.model.params);
        let dims = [self.batch, tn];
        let ids_t = backend.upload_u32(&dims, ids)?;
        let pos_t = backend.upload_u32(&dims, positions)?;
        let valid_t = backend.upload_u32(&[self.batch, self.capacity], &self.key_valid)?;
        let hidden = layout.forward_cached(backend, params, &mut self.caches, &ids_t, &pos_t, &valid_t, self.filled)?;
        self.filled += tn;
        let last_rows: Vec<u32> = (0..self.batch).map(|b| (b * tn + tn - 1) as u32).collect();
        let last_rows = backend.upload_u32(&[self.batch], &last_rows)?;
        let last_hidden = backend.embedding_fwd(&last_rows, &hidden)?;
        layout.logits(backend, params, &last_hidden)
    }
}

/// Settings of [`generate`].
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    pub max_new_tokens: usize,
    pub sampling: Sampling,
    pub seed: u64,
    /// Ids that end a row (kept as its last token).
    pub eos_token_ids: Vec<u32>,
    /// Fed to rows that have finished while others go on.
    pub pad_token_id: u32,
}

/// Generates continuations of `prompts`: for each row the new tokens, ending with an EOS id when
/// one was produced. Tokens are chosen on the backend ([`Backend::sample`]; row `b` of step `s`
/// draws with the counter `(seed, b, s)`), so each step copies `B` ids to the host, not logits.
pub fn generate<B: Backend>(backend: &B, model: &Model<B>, prompts: &[Vec<u32>], options: &GenerateOptions) -> Result<Vec<Vec<u32>>> {
    options.sampling.validate()?;
    let mut out = vec![Vec::new(); prompts.len()];
    if options.max_new_tokens == 0 {
        return Ok(out);
    }
    let (mut decoder, mut logits) = Decoder::prefill(backend, model, prompts, options.max_new_tokens)?;
    let mut done = vec![false; prompts.len()];
    for step in 0..options.max_new_tokens {
        let draw = SampleDraw { seed: options.seed, first_sequence: 0, step: step as u64 };
        let tokens = backend.download_u32(&backend.sample(&logits, options.sampling, draw)?)?;
        let mut fed = Vec::with_capacity(prompts.len());
        for (b, &token) in tokens.iter().enumerate() {
            if done[b] {
                fed.push(options.pad_token_id);
                continue;
            }
            out[b].push(token);
            done[b] = options.eos_token_ids.contains(&token);
            fed.push(token);
        }
        if step + 1 == options.max_new_tokens || done.iter().all(|&d| d) {
            break;
        }
        logits = decoder.step(&fed)?;
    }
    Ok(out)
}
