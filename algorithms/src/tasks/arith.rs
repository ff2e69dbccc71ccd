//! `arith`: sums of two numbers, `37+45=` → `82`.
//!
//! Prompts are every pair `a+b=` with `0 <= a, b <= max_operand`, shuffled by the seed; the first
//! `eval_prompts` of them are held out and the rest are for training, so the two sets are
//! disjoint. The gold reward is 1 when the response is exactly the decimal sum (no spaces, no
//! leading zeros) and 0 otherwise.
//!
//! The SFT corpus is written by a careless writer, so that the SFT policy is imperfect and RL has
//! something to fix:
//! - on a sum whose units digits carry (`7 + 5 >= 10`) the writer drops the carry with
//!   probability `carry_slip` and writes `a + b − 10` (`37+45=72`);
//! - any other row gets another slip with probability `other_slip`: off by one, off by ten, or
//!   the last two digits swapped.
//!
//! The slips are concentrated on purpose. Were they spread independently over all rows, the most
//! likely answer would still be the right one everywhere and greedy decoding of a well-fitted
//! model would be perfect; with the defaults the dropped carry is the commonest answer on carry
//! problems (≈45% of prompts), so greedy SFT decoding gets those wrong while sampling still finds
//! the right sum often enough for the reward to teach it. About a third of the corpus is wrong
//! ([`Arith::expected_wrong_fraction`]).

use super::{check_probability, Example, Granularity, Task};
use crate::rng::Rng;
use crate::{Error, Result};

/// Settings of the `arith` task.
#[derive(Debug, Clone, PartialEq)]
pub struct ArithConfig {
    pub seed: u64,
    /// Operands range over `0..=max_operand`.
    pub max_operand: u32,
    /// How many prompts are held out for evaluation.
    pub eval_prompts: usize,
    /// Rows of the SFT corpus; each training prompt appears about equally often.
    pub sft_rows: usize,
    /// P(the carry is dropped | the units digits carry).
    pub carry_slip: f64,
    /// P(another slip) on rows the carry slip left right.
    pub other_slip: f64,
}

impl Default for ArithConfig {
    fn default() -> Self {
        ArithConfig { seed: 0, max_operand: 49, eval_prompts: 500, sft_rows: 10_000, carry_slip: 0.6, other_slip: 0.1 }
    }
}

/// The generated task.
#[derive(Debug, Clone)]
pub struct Arith {
    config: ArithConfig,
    train: Vec<String>,
    eval: Vec<String>,
    corpus: Vec<Example>,
}

/// The prompt for `a + b`.
pub fn prompt(a: u32, b: u32) -> String {
    format!("{a}+{b}=")
}

/// The operands of a prompt `a+b=`, or `None` if it is not one.
pub fn parse_prompt(prompt: &str) -> Option<(u32, u32)> {
    let (a, b) = prompt.strip_suffix('=')?.split_once('+')?;
    let number = |s: &str| if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) { None } else { s.parse().ok() };
    Some((number(a)?, number(b)?))
}

/// Whether adding the units digits carries into the tens.
pub fn has_carry(a: u32, b: u32) -> bool {
    a % 10 + b % 10 >= 10
}

/// A plausible wrong answer to `a + b` other than the dropped carry: off by one, off by ten, or
/// the last two digits swapped, whichever of them is possible and differs from the sum.
fn other_slip(a: u32, b: u32, rng: &mut Rng) -> u32 {
    let sum = a + b;
    let up_or_down = |rng: &mut Rng, d: u32| if sum >= d && rng.bernoulli(0.5) { sum - d } else { sum + d };
    match rng.below(3) {
        0 => up_or_down(rng, 1),
        1 => up_or_down(rng, 10),
        _ => {
            let (tens, units) = ((sum / 10) % 10, sum % 10);
            if sum >= 10 && tens != units {
                sum - tens * 10 - units + units * 10 + tens
            } else {
                up_or_down(rng, 1)
            }
        }
    }
}

impl Arith {
    pub fn new(config: ArithConfig) -> Result<Self> {
        check_probability("carry_slip", config.carry_slip)?;
        check_probability("other_slip", config.other_slip)?;
        let side = config.max_operand as usize + 1;
        let total = side * side;
        if config.eval_prompts == 0 || config.eval_prompts >= total {
            return Err(Error::Config(format!(
                "eval_prompts must be in 1..{total} for operands up to {}, got {}",
                config.max_operand, config.eval_prompts
            )));
        }
        if config.sft_rows == 0 {
            return Err(Error::Config("sft_rows must be positive".into()));
        }
        let mut pairs: Vec<(u32, u32)> =
            (0..=config.max_operand).flat_map(|a| (0..=config.max_operand).map(move |b| (a, b))).collect();
        Rng::derived(config.seed, 1).shuffle(&mut pairs);
        let (eval_pairs, train_pairs) = pairs.split_at(config.eval_prompts);

        let mut rng = Rng::derived(config.seed, 2);
        let mut order: Vec<usize> = (0..train_pairs.len()).collect();
        let mut corpus = Vec::with_capacity(config.sft_rows);
        while corpus.len() < config.sft_rows {
            rng.shuffle(&mut order);
            for &i in order.iter().take(config.sft_rows - corpus.len()) {
                let (a, b) = train_pairs[i];
                let answer = if has_carry(a, b) && rng.bernoulli(config.carry_slip) {
                    a + b - 10
                } else if rng.bernoulli(config.other_slip) {
                    other_slip(a, b, &mut rng)
                } else {
                    a + b
                };
                corpus.push(Example { prompt: prompt(a, b), response: answer.to_string() });
            }
        }
        let to_prompts = |pairs: &[(u32, u32)]| pairs.iter().map(|&(a, b)| prompt(a, b)).collect();
        Ok(Arith { train: to_prompts(train_pairs), eval: to_prompts(eval_pairs), corpus, config })
    }

    pub fn config(&self) -> &ArithConfig {
        &self.config
    }

    /// The fraction of wrong rows the corpus is drawn with: `c·carry_slip + (1 − c·carry_slip)·
    /// other_slip`, `c` the fraction of training prompts whose units carry.
    pub fn expected_wrong_fraction(&self) -> f64 {
        let carries = self.train.iter().filter_map(|p| parse_prompt(p)).filter(|&(a, b)| has_carry(a, b)).count();
        let dropped = carries as f64 / self.train.len() as f64 * self.config.carry_slip;
        dropped + (1.0 - dropped) * self.config.other_slip
    }
}

impl Task for Arith {
    fn name(&self) -> &'static str {
        "arith"
    }

    fn granularity(&self) -> Granularity {
        Granularity::Characters
    }

    fn train_prompts(&self) -> &[String] {
        &self.train
    }

    fn eval_prompts(&self) -> &[String] {
        &self.eval
    }

    fn sft_corpus(&self) -> &[Example] {
        &self.corpus
    }

    fn gold_reward(&self, prompt: &str, response: &str) -> f32 {
        match parse_prompt(prompt) {
            Some((a, b)) if response == (a + b).to_string() => 1.0,
            _ => 0.0,
        }
    }

    fn max_response_tokens(&self) -> usize {
        // The longest sum's digits and the end marker.
        (2 * self.config.max_operand).to_string().len() + 1
    }
}
