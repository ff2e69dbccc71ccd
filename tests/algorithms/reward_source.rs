//! A trained reward model as the rollout's reward source: its scores are the reward model's own
//! forward read at each sample's last token, whatever the batching; and PPO steps against it.

use algorithms::ppo::{PpoConfig, PpoTrainer};
use algorithms::reward::RewardModel;
use algorithms::rollout::policy::copy_model;
use algorithms::rollout::reward::RewardSource;
use algorithms::rollout::reward_model::ModelReward;
use algorithms::rollout::sample_responses;
use algorithms::tasks::Task;
use models::transformer::Inputs;
use runtime::Backend;

use crate::rl_setup::setup;

/// The reward of one row `prompt ++ response` from a single-row forward, with the scalar head
/// applied in f64 to the last position's hidden state.
fn reference_score(backend: &runtime::Cpu, rm: &RewardModel<runtime::Cpu>, prompt: &[u32], response: &[u32]) -> f64 {
    let row: Vec<u32> = prompt.iter().chain(response).copied().collect();
    let inputs = Inputs::from_rows(backend, std::slice::from_ref(&row), false, 0).unwrap();
    let layout = &rm.model.layout;
    let hidden = backend.download_f32(&layout.forward(backend, &rm.model.params, &inputs).unwrap().hidden).unwrap();
    let c = hidden.len() / row.len();
    let last = &hidden[(row.len() - 1) * c..][..c];
    let param = |name: &str| {
        let (_, t) = rm.model.params.iter().find(|(n, _)| *n == name).unwrap();
        backend.download_f32(t).unwrap()
    };
    let (weight, bias) = (param("score.weight"), param("score.bias"));
    last.iter().zip(&weight).map(|(&h, &w)| f64::from(h) * f64::from(w)).sum::<f64>() + f64::from(bias[0])
}

#[test]
fn model_reward_scores_are_the_reward_models_forward() {
    let s = setup("model-reward-scores", 60);
    let backend = &s.backend;
    // A large head so the scores differ visibly between samples.
    let rm = RewardModel::from_policy(backend, &s.policy, 0.5, 3).unwrap();
    let prompts: Vec<String> = s.task.train_prompts().iter().take(5).cloned().collect();
    let samples = sample_responses(backend, &s.policy, &s.tokenizer, &s.task, &prompts, 3, 1.0, 7).unwrap();
    let pad = s.tokenizer.pad_id();
    let mut whole = ModelReward::new(&rm, pad);
    assert_eq!(RewardSource::<runtime::Cpu>::name(&whole), "reward model");
    let scores = whole.score(backend, &samples).unwrap();
    assert_eq!(scores.len(), samples.len());
    for (sample, &got) in samples.iter().zip(&scores) {
        let want = reference_score(backend, &rm, &sample.prompt_ids, &sample.response_ids);
        assert!((f64::from(got) - want).abs() <= 1e-5 * (1.0 + want.abs()), "{got} vs {want}");
    }
    let spread = scores.iter().fold(f32::MIN, |a, &b| a.max(b)) - scores.iter().fold(f32::MAX, |a, &b| a.min(b));
    assert!(spread > 1e-3, "scores should differ between responses: {scores:?}");
    // Scoring two rows at a time pads differently but reads the same positions.
    let mut chunked = ModelReward { batch_size: 2, ..ModelReward::new(&rm, pad) };
    let again = chunked.score(backend, &samples).unwrap();
    for (a, b) in scores.iter().zip(&again) {
        assert!((a - b).abs() <= 1e-5 * (1.0 + a.abs()), "{a} vs {b}");
    }
}

#[test]
fn ppo_reports_the_reward_models_mean_score() {
    let s = setup("model-reward-ppo", 60);
    let backend = &s.backend;
    let rm = RewardModel::from_policy(backend, &s.policy, 0.5, 4).unwrap();
    let config = PpoConfig { prompts_per_step: 4, samples_per_prompt: 2, minibatch_size: 4, ..PpoConfig::default() };
    let mut trainer = PpoTrainer::new(backend, copy_model(backend, &s.policy).unwrap(), &s.task, config).unwrap();
    let mut reward = ModelReward::new(&rm, s.tokenizer.pad_id());
    let rollout = trainer.collect(backend, &s.tokenizer, &s.task, &mut reward).unwrap();
    let direct = reward.score(backend, &rollout.samples).unwrap();
    assert_eq!(rollout.scores, direct);
    let mean = direct.iter().sum::<f32>() / direct.len() as f32;
    assert!((rollout.summary().reward - mean).abs() <= 1e-6);
}
