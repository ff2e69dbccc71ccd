//! A policy fine-tuned on the noisy successor task for the RL tests: `3>` → `4`, but the SFT
//! corpus answers `d + 2` more often than `d + 1`.

use algorithms::model::{init_model, ModelShape};
use algorithms::sft::{tokenize, train_sft, SftConfig};
use algorithms::tasks::Task;
use algorithms::tokenizer::{train_tokenizer, TaskTokenizer};
use models::transformer::Model;
use models::Architecture;
use runtime::Cpu;

use crate::successor::Successor;
use crate::Scratch;

/// The task, its tokenizer and an SFT policy (1 layer of width 32, `sft_steps` steps).
pub struct Setup {
    pub backend: Cpu,
    pub task: Successor,
    pub tokenizer: TaskTokenizer,
    pub policy: Model<Cpu>,
    _dir: Scratch,
}

pub fn setup(name: &str, sft_steps: usize) -> Setup {
    let backend = Cpu::new();
    let task = Successor::noisy();
    let dir = Scratch::new(name);
    let tokenizer = train_tokenizer(&task, dir.path()).unwrap();
    let shape =
        ModelShape { arch: Architecture::Gpt2, hidden: 32, layers: 1, heads: 2, intermediate: 64, max_positions: 8 };
    let mut policy = init_model(&backend, &shape.config(&tokenizer), 1).unwrap();
    let rows = tokenize(&tokenizer, task.sft_corpus()).unwrap();
    train_sft(&backend, &mut policy, &rows, tokenizer.pad_id(), &SftConfig::new(sft_steps, 32, 1e-2), &mut |_| {})
        .unwrap();
    Setup { backend, task, tokenizer, policy, _dir: dir }
}
