//! RLHF algorithms built on `models` and `runtime`: the bundled tasks, their tokenizers, supervised
//! fine-tuning, evaluation, reward models, best-of-N, rollouts, PPO (with a critic) and GRPO.

mod error;
pub mod best_of_n;
pub mod demo;
pub mod eval;
pub mod grpo;
pub mod model;
pub mod optim;
pub mod overopt;
pub mod plot;
pub mod ppo;
pub mod reward;
pub mod rng;
pub mod rollout;
pub mod sft;
pub mod tasks;
pub mod tokenizer;

pub use error::{Error, Result};
