//! A trivial task for fast end-to-end tests: `3>` → `4` (the next digit, 9 wrapping to 0).

use algorithms::tasks::{Example, Granularity, Task};

pub struct Successor {
    prompts: Vec<String>,
    corpus: Vec<Example>,
}

impl Successor {
    pub fn new() -> Self {
        let prompts: Vec<String> = (0..10).map(|d| format!("{d}>")).collect();
        let corpus = (0..200)
            .map(|i| Example { prompt: format!("{}>", i % 10), response: ((i + 1) % 10).to_string() })
            .collect();
        Successor { prompts, corpus }
    }
}

impl Task for Successor {
    fn name(&self) -> &'static str {
        "successor"
    }

    fn granularity(&self) -> Granularity {
        Granularity::Characters
    }

    fn train_prompts(&self) -> &[String] {
        &self.prompts
    }

    /// The same prompts: this task tests learning, not generalisation.
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
