//! Against Hugging Face transformers: tiny checkpoints written by `tests/fixtures/make_fixtures.py`
//! with the log-probs and greedy continuations transformers computed (float32).

use std::path::{Path, PathBuf};

use models::generate::{generate, GenerateOptions};
use models::sampling::Sampling;
use models::tokenizer::Tokenizer;
use models::transformer::{Inputs, Model};
use models::weights::StorageDtype;
use runtime::{Backend, DType};
use serde_json::Value;

use crate::backend_tests;

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

struct Expected {
    texts: Vec<String>,
    ids: Vec<Vec<u32>>,
    logprobs: Vec<Vec<f64>>,
    greedy: Vec<Vec<u32>>,
}

fn expected(dir: &Path) -> Expected {
    let v: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let ids = |key: &str| -> Vec<Vec<u32>> {
        v[key].as_array().unwrap().iter().map(|r| r.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()).collect()
    };
    Expected {
        texts: v["texts"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_string()).collect(),
        ids: ids("ids"),
        logprobs: v["logprobs"].as_array().unwrap().iter().map(|r| r.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()).collect(),
        greedy: ids("greedy"),
    }
}

/// `logprobs[i] = log p(ids[i+1] | ids[..=i])` through our model.
pub fn logprobs<B: Backend>(backend: &B, model: &Model<B>, ids: &[u32]) -> Vec<f32> {
    let inputs = Inputs::from_rows(backend, &[ids.to_vec()], false, 0).unwrap();
    let acts = model.layout.forward(backend, &model.params, &inputs).unwrap();
    let logits = model.layout.logits(backend, &model.params, &acts.hidden).unwrap();
    let mut targets = ids[1..].to_vec();
    targets.push(0);
    let targets = backend.upload_u32(&[ids.len()], &targets).unwrap();
    let lp = backend.logprob_fwd(&logits, &targets, 1.0).unwrap();
    let mut out = backend.download_f32(&lp.logprob).unwrap();
    out.pop();
    out
}

fn check_against_transformers<B: Backend>(backend: &B, dir: &Path, model: &Model<B>) {
    let want = expected(dir);
    let tokenizer = Tokenizer::from_file(&dir.join("tokenizer.json")).unwrap();
    for (i, text) in want.texts.iter().enumerate() {
        assert_eq!(tokenizer.encode(text).unwrap(), want.ids[i], "{}: token ids of {text:?}", dir.display());
        let got = logprobs(backend, model, &want.ids[i]);
        assert_eq!(got.len(), want.logprobs[i].len());
        let worst = got.iter().zip(&want.logprobs[i]).map(|(&g, &w)| (g as f64 - w).abs()).fold(0.0, f64::max);
        assert!(worst <= 1e-4, "{}: text {i}: max |logprob - transformers| = {worst}", dir.display());
        let options = GenerateOptions { max_new_tokens: 16, sampling: Sampling::Greedy, seed: 0, eos_token_ids: vec![], pad_token_id: 0 };
        let greedy = generate(backend, model, &[want.ids[i].clone()], &options).unwrap();
        assert_eq!(greedy[0], want.greedy[i], "{}: greedy continuation of text {i}", dir.display());
    }
}

fn matches_transformers_for_every_architecture<B: Backend>(backend: &B) {
    for name in ["gpt2", "llama", "qwen2", "llama-sharded"] {
        let dir = fixture(name);
        let model = Model::load(&dir, backend, DType::F32).unwrap();
        check_against_transformers(backend, &dir, &model);
    }
}

fn saved_models_load_back_identically<B: Backend>(backend: &B) {
    for name in ["gpt2", "llama", "qwen2"] {
        let model = Model::load(&fixture(name), backend, DType::F32).unwrap();
        let dir = std::env::temp_dir().join(format!("rlhf-save-{name}-{}-{}", backend.name(), std::process::id()));
        model.save(&dir, backend, StorageDtype::F32).unwrap();
        let again = Model::load(&dir, backend, DType::F32).unwrap();
        let ids = expected(&fixture(name)).ids[0].clone();
        assert_eq!(logprobs(backend, &model, &ids), logprobs(backend, &again, &ids), "{name}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

backend_tests!(matches_transformers_for_every_architecture, saved_models_load_back_identically);
