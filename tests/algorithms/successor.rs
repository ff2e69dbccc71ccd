//! A trivial task for fast end-to-end tests: `3>` → `4` (the next digit, 9 wrapping to 0), with
//! a clean SFT corpus or a noisy one.

use algorithms::tasks::{Example, Granularity, Task};

pub struct Successor {
    prompts: Vec<String>,
    corpus: Vec<Example>,
}

impl Successor {
    /// Every corpus answer is right.
    pub fn new() -> Self {
        Successor::with_answers(|_, d| d + 1)
    }

    /// 40% of the corpus is right, 60% is `d + 2`: the SFT policy's greedy answer is wrong while
    /// its samples are right often enough for a reward to teach it.
    pub fn noisy() -> Self {
        Successor::with_answers(|i, d| if (i / 10) % 5 < 2 { d + 1 } else { d + 2 })
    }

    /// 200 corpus rows; row `i` asks about digit `i % 10` and answers `answer(i, digit) % 10`.
    fn with_answers(answer: impl Fn(usize, usize) -> usize) -> Self {
        let prompts: Vec<String> = (0..10).map(|d| format!("{d}>")).collect();
        let corpus = (0..200)
            .map(|i| Example { prompt: format!("{}>", i % 10), response: (answer(i, i % 10) % 10).to_string() })
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
