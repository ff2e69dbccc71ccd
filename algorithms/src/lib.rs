//! RLHF algorithms built on `models` and `runtime`: the bundled tasks, their tokenizers, supervised
//! fine-tuning, evaluation and reward models (critic, PPO and GRPO build on these).

mod error;
pub mod eval;
pub mod model;
pub mod optim;
pub mod reward;
pub mod rng;
pub mod sft;
pub mod tasks;
pub mod tokenizer;

pub use error::{Error, Result};
