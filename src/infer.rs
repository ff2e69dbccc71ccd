//! `rlhf logprobs` and `rlhf generate`: score or continue text with a Hugging Face checkpoint
//! directory (config.json, model.safetensors, tokenizer.json). With `--json` the output shapes
//! are a contract:
//! - logprobs: `{"ids":[...],"logprobs":[...]}` with `logprobs[i] = log p(ids[i+1] | ids[..=i])`;
//! - generate: `{"new_ids":[...],"text":"..."}` (`text` is null when the directory has no
//!   tokenizer.json).

use std::path::{Path, PathBuf};

use clap::Args;
use models::generate::{generate, GenerateOptions};
use models::sampling::Sampling;
use models::tokenizer::Tokenizer;
use models::transformer::{Inputs, Model};
use runtime::{Backend, DType};
use serde_json::json;

use crate::backend_arg::{with_backend, BackendArg};
use crate::error::CliError;

#[derive(Args)]
pub struct LogprobsArgs {
    /// Checkpoint directory.
    #[arg(long)]
    model: PathBuf,
    /// Text to score (needs tokenizer.json).
    #[arg(long, required_unless_present = "ids", conflicts_with = "ids")]
    text: Option<String>,
    /// Token ids to score, comma-separated.
    #[arg(long, value_delimiter = ',')]
    ids: Option<Vec<u32>>,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    backend: BackendArg,
}

#[derive(Args)]
pub struct GenerateArgs {
    #[arg(long)]
    model: PathBuf,
    /// Prompt text (needs tokenizer.json).
    #[arg(long, required_unless_present = "ids", conflicts_with = "ids")]
    prompt: Option<String>,
    /// Prompt token ids, comma-separated.
    #[arg(long, value_delimiter = ',')]
    ids: Option<Vec<u32>>,
    #[arg(long)]
    max_new_tokens: usize,
    /// Take the most likely token each step (the default unless a sampling flag is given).
    #[arg(long, conflicts_with_all = ["temperature", "top_k", "top_p"])]
    greedy: bool,
    #[arg(long)]
    temperature: Option<f32>,
    /// Keep the K most likely tokens (0 = all).
    #[arg(long)]
    top_k: Option<usize>,
    #[arg(long)]
    top_p: Option<f32>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    backend: BackendArg,
}

fn tokenizer_in(dir: &Path) -> Result<Option<Tokenizer>, CliError> {
    let path = dir.join("tokenizer.json");
    if path.exists() {
        Ok(Some(Tokenizer::from_file(&path)?))
    } else {
        Ok(None)
    }
}

/// The ids to use: given directly, or the encoding of `text` by the directory's tokenizer.
fn input_ids(dir: &Path, text: Option<&str>, ids: Option<&[u32]>, tokenizer: Option<&Tokenizer>) -> Result<Vec<u32>, CliError> {
    let ids = match (text, ids) {
        (_, Some(ids)) => ids.to_vec(),
        (Some(text), None) => match tokenizer {
            Some(t) => t.encode(text)?,
            None => return Err(CliError::Usage(format!("{}: no tokenizer.json, so text cannot be encoded; pass --ids", dir.display()))),
        },
        (None, None) => vec![],
    };
    if ids.is_empty() {
        return Err(CliError::Usage("the input has no tokens".into()));
    }
    Ok(ids)
}

pub fn logprobs(args: &LogprobsArgs) -> Result<(), CliError> {
    with_backend!(args.backend.backend, backend => logprobs_on(backend, args))
}

fn logprobs_on<B: Backend>(backend: &B, args: &LogprobsArgs) -> Result<(), CliError> {
    let model = Model::load(&args.model, backend, DType::F32)?;
    let tokenizer = tokenizer_in(&args.model)?;
    let ids = input_ids(&args.model, args.text.as_deref(), args.ids.as_deref(), tokenizer.as_ref())?;
    let cfg = &model.layout.config;
    if model.layout.has_learned_positions() && ids.len() > cfg.max_positions {
        return Err(CliError::Usage(format!("{} tokens exceed the model's {} positions", ids.len(), cfg.max_positions)));
    }
    let inputs = Inputs::from_rows(backend, std::slice::from_ref(&ids), false, 0)?;
    let acts = model.layout.forward(backend, &model.params, &inputs)?;
    let logits = model.layout.logits(backend, &model.params, &acts.hidden)?;
    // The last position has no next token; score it against id 0 and drop it.
    let targets: Vec<u32> = ids[1..].iter().copied().chain([0]).collect();
    let targets = backend.upload_u32(&[ids.len()], &targets)?;
    let mut logprobs = backend.download_f32(&backend.logprob_fwd(&logits, &targets, 1.0)?.logprob)?;
    logprobs.pop();
    if args.json {
        println!("{}", json!({ "ids": ids, "logprobs": logprobs }));
    } else {
        for (i, lp) in logprobs.iter().enumerate() {
            println!("{:>6} -> {:>6}  {lp:>10.5}", ids[i], ids[i + 1]);
        }
        println!("sum {:.5}", logprobs.iter().map(|&x| x as f64).sum::<f64>());
    }
    Ok(())
}

pub fn generate_cmd(args: &GenerateArgs) -> Result<(), CliError> {
    with_backend!(args.backend.backend, backend => generate_on(backend, args))
}

fn generate_on<B: Backend>(backend: &B, args: &GenerateArgs) -> Result<(), CliError> {
    let model = Model::load(&args.model, backend, DType::F32)?;
    let tokenizer = tokenizer_in(&args.model)?;
    let ids = input_ids(&args.model, args.prompt.as_deref(), args.ids.as_deref(), tokenizer.as_ref())?;
    let sampling = if args.greedy || (args.temperature.is_none() && args.top_k.is_none() && args.top_p.is_none()) {
        Sampling::Greedy
    } else {
        Sampling::Sample {
            temperature: args.temperature.unwrap_or(1.0),
            top_k: args.top_k.unwrap_or(0),
            top_p: args.top_p.unwrap_or(1.0),
        }
    };
    let cfg = &model.layout.config;
    // EOS from config.json, else from the tokenizer's special tokens.
    let eos_token_ids = match (&cfg.eos_token_ids[..], &tokenizer) {
        ([], Some(t)) => t.eos_token_ids(),
        (ids, _) => ids.to_vec(),
    };
    let options = GenerateOptions {
        max_new_tokens: args.max_new_tokens,
        sampling,
        seed: args.seed,
        pad_token_id: cfg.pad_token_id.or(eos_token_ids.first().copied()).unwrap_or(0),
        eos_token_ids,
    };
    let new_ids = generate(backend, &model, &[ids], &options)?.remove(0);
    let text = tokenizer.as_ref().map(|t| t.decode(&new_ids)).transpose()?;
    if args.json {
        println!("{}", json!({ "new_ids": new_ids, "text": text }));
    } else {
        match text {
            Some(text) => println!("{text}"),
            None => println!("{new_ids:?}"),
        }
    }
    Ok(())
}
