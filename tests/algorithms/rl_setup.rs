//! A tiny task for the RL tests and a policy fine-tuned on it: `3>` → `4`, but the SFT corpus
//! answers `d + 2` more often than `d + 1`, so the SFT policy's greedy answer is wrong while its
//! samples are right often enough for a reward to teach it.

use algorithms::model::{init_model, ModelShape};
use algorithms::sft::{tokenize, train_sft, SftConfig};
use algorithms::tasks::{Example, Granularity, Task};
use algorithms::tokenizer::{train_tokenizer, TaskTokenizer};
use models::transformer::Model;
use models::Architecture;
use runtime::Cpu;

use crate::Scratch;

pub struct NoisySuccessor {
    prompts: Vec<String>,
    corpus: Vec<Example>,
}

impl NoisySuccessor {
    /// 40% of the corpus is right, 60% is `d + 2`.
    pub fn new() -> Self {
        let prompts: Vec<String> = (0..10).map(|d| format!("{d}>")).collect();
        let corpus = (0..200)
            .map(|i| {
                let d = i % 10;
                let answer = if (i / 10) % 5 < 2 { d + 1 } else { d + 2 };
                Example { prompt: format!("{d}>"), response: (answer % 10).to_string() }
            })
            .collect();
        NoisySuccessor { prompts, corpus }
    }
}

impl Task for NoisySuccessor {
    fn name(&self) -> &'static str {
        "noisy-successor"
    }

    fn granularity(&self) -> Granularity {
        Granularity::Characters
    }

    fn train_prompts(&self) -> &[String] {
        &self.prompts
    }

    fn eval_prompts(&self) -> &[String] {
        &self.prompts
    }

    fn sft_corpus(&self) -> &[Example] {
        &self.corpus
    }

    fn gold_reward(&self, prompt: &str, response: &str) -> f32 {
        let digit = prompt.strip_suffix('>').and_then(|d| d.parse::<u32>().ok());
        f32::from(u8::from(digit.is_some_and(|d| response == ((d + 1) % 10).to_string())))
    }

    fn max_response_tokens(&self) -> usize {
        3
    }
}

/// The task, its tokenizer and an SFT policy (1 layer of width 32, `sft_steps` steps).
pub struct Setup {
    pub backend: Cpu,
    pub task: NoisySuccessor,
    pub tokenizer: TaskTokenizer,
    pub policy: Model<Cpu>,
    _dir: Scratch,
}

pub fn setup(name: &str, sft_steps: usize) -> Setup {
    let backend = Cpu::new();
    let task = NoisySuccessor::new();
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
