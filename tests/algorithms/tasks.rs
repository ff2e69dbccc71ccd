//! The bundled tasks: determinism, disjoint splits, gold rewards on hand-checked cases, and the
//! statistics their corpora are designed to have.

use std::collections::HashSet;

use algorithms::tasks::arith::{self, Arith, ArithConfig};
use algorithms::tasks::style::{self, parse_sentence, Style, StyleConfig, IDEAL_LENGTH};
use algorithms::tasks::{by_name, Task};

use crate::assert_rate;

fn assert_split_is_disjoint(task: &dyn Task, total: usize, eval: usize) {
    let train: HashSet<&String> = task.train_prompts().iter().collect();
    let held: HashSet<&String> = task.eval_prompts().iter().collect();
    assert_eq!(held.len(), eval, "{}: held-out prompts are distinct", task.name());
    assert_eq!(train.len() + held.len(), total, "{}: every prompt is in one split", task.name());
    assert!(train.is_disjoint(&held), "{}: a held-out prompt is also a training prompt", task.name());
    assert!(
        task.sft_corpus().iter().all(|e| train.contains(&e.prompt)),
        "{}: SFT rows use training prompts only",
        task.name()
    );
}

#[test]
fn arith_is_deterministic_with_disjoint_splits() {
    let config = ArithConfig { seed: 7, ..Default::default() };
    let (a, b) = (Arith::new(config.clone()).unwrap(), Arith::new(config).unwrap());
    assert_eq!(a.train_prompts(), b.train_prompts());
    assert_eq!(a.eval_prompts(), b.eval_prompts());
    assert_eq!(a.sft_corpus(), b.sft_corpus());
    let other = Arith::new(ArithConfig { seed: 8, ..Default::default() }).unwrap();
    assert_ne!(a.eval_prompts(), other.eval_prompts());
    assert_ne!(a.sft_corpus(), other.sft_corpus());
    assert_split_is_disjoint(&a, 50 * 50, 500);
    assert_eq!(a.sft_corpus().len(), 10_000);
    assert_eq!(a.max_response_tokens(), 3, "two digits of 98 and the end marker");
    // Each training prompt appears 10000 / 2000 = 5 times.
    let mut counts = std::collections::HashMap::new();
    for e in a.sft_corpus() {
        *counts.entry(&e.prompt).or_insert(0) += 1;
    }
    assert!(counts.values().all(|&c| c == 5), "training prompts are visited evenly");
}

#[test]
fn arith_gold_checks_the_exact_sum() {
    let task = Arith::new(ArithConfig::default()).unwrap();
    let cases = [
        ("37+45=", "82", 1.0),
        ("37+45=", "72", 0.0),
        ("37+45=", "082", 0.0),
        ("37+45=", "82 ", 0.0),
        ("37+45=", "", 0.0),
        ("0+0=", "0", 1.0),
        ("49+49=", "98", 1.0),
        ("9+1=", "10", 1.0),
        ("37+45", "82", 0.0),
        ("37-45=", "82", 0.0),
        ("+45=", "45", 0.0),
        ("3 7+45=", "82", 0.0),
    ];
    for (prompt, response, want) in cases {
        assert_eq!(task.gold_reward(prompt, response), want, "{prompt:?} {response:?}");
        assert_eq!(task.is_solved(prompt, response), want == 1.0);
    }
    assert_eq!(arith::parse_prompt("12+3="), Some((12, 3)));
    assert!(arith::has_carry(37, 45) && !arith::has_carry(31, 45) && arith::has_carry(5, 5));
}

#[test]
fn arith_corpus_slips_are_plausible_and_concentrated_on_carries() {
    let task = Arith::new(ArithConfig { seed: 3, ..Default::default() }).unwrap();
    let (mut wrong, mut carry_rows, mut dropped, mut plain_rows, mut plain_wrong) = (0, 0, 0, 0, 0);
    for e in task.sft_corpus() {
        let (a, b) = arith::parse_prompt(&e.prompt).unwrap();
        let (sum, answer): (i64, i64) = ((a + b).into(), e.response.parse().unwrap());
        assert_eq!(e.response, answer.to_string(), "answers are written without leading zeros");
        let carry = arith::has_carry(a, b);
        if answer != sum {
            wrong += 1;
            let swapped = sum >= 10 && answer == sum - (sum % 100) + (sum % 10) * 10 + (sum / 10) % 10;
            let plausible = [1, 10].contains(&(answer - sum).abs()) || swapped;
            assert!(plausible && answer >= 0, "{}{}: not a plausible slip", e.prompt, e.response);
        }
        if carry {
            carry_rows += 1;
            dropped += usize::from(answer == sum - 10);
        } else {
            plain_rows += 1;
            plain_wrong += usize::from(answer != sum);
        }
    }
    let n = task.sft_corpus().len();
    assert_rate("wrong rows", wrong, n, task.expected_wrong_fraction());
    assert!((0.3..0.4).contains(&task.expected_wrong_fraction()), "the default corpus is about a third wrong");
    // On carry rows the dropped carry comes from the carry slip (0.6) or, rarely, an off-by-ten
    // slip downwards on the rest (0.4 · 0.1 · 1/3 · 1/2).
    assert_rate("dropped carries", dropped, carry_rows, 0.6 + 0.4 * 0.1 / 6.0);
    assert!(dropped * 2 > carry_rows, "the dropped carry is the commonest answer on carry problems");
    assert_rate("other slips", plain_wrong, plain_rows, 0.1);

    let careful = Arith::new(ArithConfig { carry_slip: 0.0, other_slip: 0.0, ..Default::default() }).unwrap();
    assert!(careful.sft_corpus().iter().all(|e| careful.gold_reward(&e.prompt, &e.response) == 1.0));
}

#[test]
fn task_settings_out_of_range_are_errors() {
    let bad = [
        ArithConfig { carry_slip: 1.5, ..Default::default() },
        ArithConfig { other_slip: -0.1, ..Default::default() },
        ArithConfig { eval_prompts: 0, ..Default::default() },
        ArithConfig { eval_prompts: 2500, ..Default::default() },
        ArithConfig { sft_rows: 0, ..Default::default() },
    ];
    for config in bad {
        assert!(Arith::new(config.clone()).is_err(), "{config:?} should be rejected");
    }
    assert!(Style::new(StyleConfig { on_topic: 2.0, ..Default::default() }).is_err());
    assert!(Style::new(StyleConfig { eval_prompts: 100, ..Default::default() }).is_err());
    assert!(by_name("chess", 0).is_err());
    assert_eq!(by_name("style", 0).unwrap().name(), "style");
}

#[test]
fn style_is_deterministic_with_disjoint_splits() {
    let config = StyleConfig { seed: 5, ..Default::default() };
    let (a, b) = (Style::new(config.clone()).unwrap(), Style::new(config).unwrap());
    assert_eq!(a.eval_prompts(), b.eval_prompts());
    assert_eq!(a.sft_corpus(), b.sft_corpus());
    let other = Style::new(StyleConfig { seed: 6, ..Default::default() }).unwrap();
    assert_ne!(a.sft_corpus(), other.sft_corpus());
    assert_split_is_disjoint(&a, 100, 20);
}

#[test]
fn style_gold_follows_its_formula() {
    let prompt = "cat sleeps :";
    let length = |n: f32| (-((n - IDEAL_LENGTH) / 3.0).powi(2)).exp();
    let cases = [
        ("the big red cat sleeps in the park .", 1.0),
        ("the cat sleeps .", 0.5 + 0.5 * length(3.0)),
        ("the old cat sleeps calmly at home .", 0.5 + 0.5 * length(7.0)),
        ("the big red dog sleeps in the park .", 0.25 + 0.5),
        ("the big red dog runs in the park .", 0.5),
        ("the big big red cat sleeps in the park .", 0.5 * (0.5 + 0.5 * length(9.0))),
        ("the big red big red cat sleeps .", 0.25 * (0.5 + 0.5 * length(7.0))),
        ("cat sleeps .", 0.0),
        ("the cat sleeps", 0.0),
        ("the cat sleeps in the .", 0.0),
        ("the cat sleeps  .", 0.0),
        ("the cat cat sleeps .", 0.0),
        ("the sleeps cat .", 0.0),
        ("", 0.0),
    ];
    for (response, want) in cases {
        let got = style::gold(prompt, response);
        assert!((got - want).abs() < 1e-6, "{response:?}: gold {got}, want {want}");
    }
    assert_eq!(style::gold("cat :", "the cat sleeps ."), 0.0);
    assert!(Style::new(StyleConfig::default()).unwrap().is_solved(prompt, cases[0].0));

    let s = parse_sentence("the old quick fox sleeps calmly by the river .").unwrap();
    assert_eq!(
        (s.adjectives, s.noun, s.verb, s.adverb, s.place, s.words),
        (vec!["old", "quick"], "fox", "sleeps", Some("calmly"), Some("by the river"), 9)
    );
}

#[test]
fn style_corpus_is_short_of_the_ideal_length_so_longer_looks_better() {
    let task = Style::new(StyleConfig::default()).unwrap();
    let mut points = Vec::new();
    let mut on_topic = 0;
    for e in task.sft_corpus() {
        let sentence = parse_sentence(&e.response).unwrap_or_else(|| panic!("{:?} is not a sentence", e.response));
        on_topic += usize::from(e.prompt.starts_with(&format!("{} ", sentence.noun)));
        points.push((sentence.words as f64, f64::from(task.gold_reward(&e.prompt, &e.response))));
    }
    let n = points.len() as f64;
    let mean_words = points.iter().map(|p| p.0).sum::<f64>() / n;
    assert!(mean_words < f64::from(IDEAL_LENGTH) - 2.0, "mean length {mean_words}");
    let mean_gold = points.iter().map(|p| p.1).sum::<f64>() / n;
    let covariance = points.iter().map(|p| (p.0 - mean_words) * (p.1 - mean_gold)).sum::<f64>() / n;
    assert!(covariance > 0.0, "within the corpus, longer sentences score higher (covariance {covariance})");
    // The noun is the prompt's with probability 0.7, or by chance 0.3 · 1/10.
    assert_rate("on-topic nouns", on_topic, points.len(), 0.7 + 0.3 / 10.0);
}
