//! Best-of-N: the pick is the highest-scored sample of each prompt, and the report's figures
//! follow from the samples' gold rewards.

use algorithms::best_of_n::{best_of_n, pick_best};
use algorithms::rollout::reward::{gold_rewards, GoldReward, RewardSource};
use algorithms::rollout::Sample;
use algorithms::tasks::Task;
use runtime::Cpu;

use crate::reward_train::tiny_sft_policy;
use crate::successor::Successor;

#[test]
fn pick_best_takes_each_groups_highest_score_first_on_ties() {
    let scores = [0.1, 0.9, 0.3, /* */ -2.0, -1.0, -1.0, /* */ 5.0, 5.0, 4.0];
    assert_eq!(pick_best(&scores, 3).unwrap(), [1, 4, 6]);
    assert_eq!(pick_best(&scores, 1).unwrap(), (0..9).collect::<Vec<_>>());
    assert_eq!(pick_best(&[], 4).unwrap(), Vec::<usize>::new());
    assert!(pick_best(&scores, 4).is_err(), "9 scores are not groups of 4");
    assert!(pick_best(&scores, 0).is_err());
}

/// Scores each sample by a fixed function of its gold reward and its index in the call.
struct Scripted<'a> {
    task: &'a dyn Task,
    score: fn(f32, usize) -> f32,
    seen: Vec<f32>,
}

impl RewardSource<Cpu> for Scripted<'_> {
    fn name(&self) -> &str {
        "scripted"
    }

    fn score(&mut self, _backend: &Cpu, samples: &[Sample]) -> algorithms::Result<Vec<f32>> {
        let gold = gold_rewards(self.task, samples);
        self.seen.extend(&gold);
        Ok(gold.iter().enumerate().map(|(i, &g)| (self.score)(g, i)).collect())
    }
}

#[test]
fn best_of_n_judges_the_reward_sources_pick_by_gold() {
    let backend = Cpu::new();
    let task = Successor::new();
    // Half-trained: some samples of each prompt are right and some wrong.
    let (_dir, tok, policy) = tiny_sft_policy("best-of-n", 25);
    let prompts = task.eval_prompts();
    let n = 6;
    let run = |reward: &mut dyn RewardSource<Cpu>| {
        best_of_n(&backend, &policy, &tok, &task, prompts, n, 1.0, 7, reward).unwrap()
    };
    // Picking by gold reaches the oracle; picking against gold finds a wrong sample wherever
    // there is one; a constant score takes each prompt's first sample.
    let by_gold = run(&mut GoldReward { task: &task });
    assert_eq!(by_gold.gold, by_gold.oracle_gold);
    let mut worst = Scripted { task: &task, score: |g, _| -g, seen: Vec::new() };
    let against = run(&mut worst);
    let all_right = worst.seen.chunks(n).filter(|g| g.iter().all(|&x| x == 1.0)).count();
    assert_eq!(against.gold, all_right as f64 / prompts.len() as f64);
    let mut constant = Scripted { task: &task, score: |_, _| 0.0, seen: Vec::new() };
    let first = run(&mut constant);
    let firsts: f64 = constant.seen.chunks(n).map(|g| f64::from(g[0])).sum();
    assert_eq!(first.gold, firsts / prompts.len() as f64);
    // The samples are the same draws whatever the reward source.
    assert_eq!(worst.seen, constant.seen);
    let mean = constant.seen.iter().map(|&g| f64::from(g)).sum::<f64>() / constant.seen.len() as f64;
    assert!((first.sample_gold - mean).abs() < 1e-12);
    assert!(against.gold < first.sample_gold && first.sample_gold < by_gold.gold, "{against:?} {first:?} {by_gold:?}");
    assert_eq!((by_gold.n, by_gold.prompts), (n, prompts.len()));
}
