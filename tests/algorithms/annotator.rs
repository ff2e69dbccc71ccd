//! The noisy annotator: flip rate, tie breaking, reproducibility.

use algorithms::tasks::annotator::{Annotator, DEFAULT_FLIP_FRACTION};
use algorithms::tasks::arith::{Arith, ArithConfig};
use algorithms::tasks::Task;

use crate::assert_rate;
use crate::common::Rng;

/// Pairs (prompt, first, second) of one right and one wrong answer, in random order.
fn mixed_pairs(task: &Arith, n: usize, seed: u64) -> Vec<(String, String, String)> {
    let mut rng = Rng::new(seed);
    let prompts = task.train_prompts();
    (0..n)
        .map(|_| {
            let prompt = prompts[rng.below(prompts.len())].clone();
            let (a, b) = algorithms::tasks::arith::parse_prompt(&prompt).unwrap();
            let (right, wrong) = ((a + b).to_string(), (a + b + 1).to_string());
            if rng.below(2) == 0 {
                (prompt, right, wrong)
            } else {
                (prompt, wrong, right)
            }
        })
        .collect()
}

#[test]
fn flips_the_configured_fraction_of_labels() {
    let task = Arith::new(ArithConfig::default()).unwrap();
    let pairs = mixed_pairs(&task, 20_000, 1);
    for flip in [DEFAULT_FLIP_FRACTION, 0.1, 0.0, 1.0] {
        let mut annotator = Annotator::new(flip, 9).unwrap();
        let mut disagreements = 0;
        for (prompt, first, second) in &pairs {
            let label = annotator.label(&task, prompt, first, second);
            let gold_first = task.gold_reward(prompt, first) > task.gold_reward(prompt, second);
            assert!(!label.tie);
            assert_eq!(
                label.flipped,
                label.first_preferred != gold_first,
                "`flipped` says whether the label disagrees with gold"
            );
            disagreements += usize::from(label.flipped);
        }
        match flip {
            0.0 => assert_eq!(disagreements, 0),
            1.0 => assert_eq!(disagreements, pairs.len()),
            p => assert_rate(&format!("flip fraction {p}"), disagreements, pairs.len(), p),
        }
    }
}

#[test]
fn breaks_ties_with_a_fair_coin() {
    let task = Arith::new(ArithConfig::default()).unwrap();
    let mut annotator = Annotator::new(DEFAULT_FLIP_FRACTION, 4).unwrap();
    let n = 20_000;
    let mut first = 0;
    for i in 0..n {
        // Both wrong: equal gold.
        let label = annotator.label(&task, "37+45=", "72", &format!("{}", 100 + i % 7));
        assert!(label.tie && label.gold == (0.0, 0.0));
        first += usize::from(label.first_preferred);
    }
    assert_rate("first preferred on ties", first, n, 0.5);
}

#[test]
fn labels_are_reproducible_from_the_seed() {
    let task = Arith::new(ArithConfig::default()).unwrap();
    let pairs = mixed_pairs(&task, 500, 2);
    let run = |seed| {
        let mut annotator = Annotator::new(0.3, seed).unwrap();
        pairs.iter().map(|(p, a, b)| annotator.label(&task, p, a, b).first_preferred).collect::<Vec<_>>()
    };
    assert_eq!(run(5), run(5));
    assert_ne!(run(5), run(6));
    for bad in [-0.1, 1.1, f64::NAN] {
        assert!(Annotator::new(bad, 0).is_err(), "flip fraction {bad} should be rejected");
    }
}
