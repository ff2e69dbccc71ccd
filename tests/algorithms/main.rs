//! The algorithms crate: bundled tasks, annotator, tokenizers, optimizer, SFT, evaluation, reward
//! models, PPO and GRPO.

#[path = "../common/mod.rs"]
mod common;

mod annotator;
mod best_of_n;
mod eval;
mod grpo;
mod optim;
mod overopt;
mod plot;
mod ppo;
mod reward_denoise;
mod reward_source;
mod reward_stage;
mod reward_train;
mod rl_setup;
mod sft;
mod successor;
mod tasks;
mod tokenizer;

use std::path::{Path, PathBuf};

/// A directory under the system temp dir, removed when dropped.
pub struct Scratch(PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("rlhf-algorithms-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Scratch(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Fails unless the observed fraction `hits / n` is within 4.5 standard errors of `p`.
#[track_caller]
pub fn assert_rate(what: &str, hits: usize, n: usize, p: f64) {
    let observed = hits as f64 / n as f64;
    let tolerance = 4.5 * (p * (1.0 - p) / n as f64).sqrt();
    assert!(
        (observed - p).abs() <= tolerance,
        "{what}: observed {observed:.4} over {n}, expected {p:.4} ± {tolerance:.4}"
    );
}
