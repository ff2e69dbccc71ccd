//! GRPO: group advantages against hand-computed values (std scaling, Dr. GRPO's mean only,
//! asymmetric shrinking), β = 0 keeping no reference, and GRPO fixing a tiny task.

use algorithms::eval::{evaluate, EvalOptions};
use algorithms::grpo::{group_advantages, GrpoConfig, GrpoTrainer};
use algorithms::rollout::policy::copy_model;
use algorithms::rollout::reward::GoldReward;
use algorithms::tasks::Task;
use runtime::ops::ppo_loss::LossReduction;

use crate::common::assert_close;
use crate::rl_setup::setup;

#[test]
fn group_advantages_match_hand_computed_values() {
    let scores = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 3.0, 0.0, 0.0, 1.0];
    // Group 0: mean 0.5, std 0.5 → ±0.5/(0.5 + 1e-4). Group 1: all equal → 0. Group 2: mean 1,
    // std √1.5 → (2, −1, −1, 0)/(√1.5 + 1e-4).
    let s0 = 0.5 / (0.5 + 1e-4);
    let s2 = 1.0 / (1.5f64.sqrt() + 1e-4);
    let want = [s0, -s0, -s0, s0, 0.0, 0.0, 0.0, 0.0, 2.0 * s2, -s2, -s2, 0.0];
    assert_close("scaled by std", &group_advantages(&scores, 4, true, 1.0), &want, 1e-6, 1e-5);
    // Asymmetric shrinking halves only the negative ones.
    let shrunk: Vec<f64> = want.iter().map(|&a| if a < 0.0 { 0.5 * a } else { a }).collect();
    assert_close("shrunk", &group_advantages(&scores, 4, true, 0.5), &shrunk, 1e-6, 1e-5);
    // Dr. GRPO: the mean only.
    let centred = [0.5, -0.5, -0.5, 0.5, 0.0, 0.0, 0.0, 0.0, 2.0, -1.0, -1.0, 0.0];
    assert_close("mean only", &group_advantages(&scores, 4, false, 1.0), &centred, 1e-7, 0.0);
}

#[test]
fn grpo_fixes_what_the_sft_policy_gets_wrong() {
    let s = setup("grpo-learns", 100);
    let backend = &s.backend;
    let options = EvalOptions::default();
    let accuracy = |model: &models::transformer::Model<runtime::Cpu>| {
        evaluate(backend, model, &s.tokenizer, &s.task, s.task.eval_prompts(), &options).unwrap().0.accuracy
    };
    let before = accuracy(&s.policy);
    assert!(before <= 0.3, "the SFT policy prefers the corpus's commoner wrong answer: {before}");
    for (beta, reduction, scale_by_std, negative_scale) in
        [(0.04, LossReduction::TokenMean, true, 1.0), (0.0, LossReduction::SequenceMean, false, 0.5)]
    {
        let mut config = GrpoConfig {
            prompts_per_step: 10,
            group_size: 8,
            minibatch_size: 40,
            scale_by_std,
            negative_scale,
            ..GrpoConfig::default()
        };
        config.adamw.lr = 3e-3;
        config.loss.beta = beta;
        config.loss.surrogate.reduction = reduction;
        let mut trainer = GrpoTrainer::new(backend, copy_model(backend, &s.policy).unwrap(), &s.task, config).unwrap();
        assert_eq!(trainer.reference.is_some(), beta > 0.0, "β = 0 loads no reference model");
        let mut reward = GoldReward { task: &s.task };
        let metrics: Vec<_> =
            (0..15).map(|_| trainer.step(backend, &s.tokenizer, &s.task, &mut reward).unwrap()).collect();
        let after = accuracy(&trainer.policy);
        let what = format!("β {beta} {reduction:?} std {scale_by_std} α {negative_scale}");
        assert!(after >= 0.9, "{what}: {before} -> {after}, {metrics:?}");
        assert!(metrics.iter().all(|m| m.initial_logprob_mismatches == 0 && m.optimizer_steps == 2), "{what}");
        let kl_seen = metrics.iter().any(|m| m.kl > 0.0);
        assert_eq!(kl_seen, beta > 0.0, "{what}: the KL is measured against a reference only when there is one");
    }
}

#[test]
fn grpo_config_rejects_bad_settings() {
    let s = setup("grpo-config", 1);
    for bad in [
        GrpoConfig { group_size: 0, ..GrpoConfig::default() },
        GrpoConfig { negative_scale: -1.0, ..GrpoConfig::default() },
        GrpoConfig { temperature: 0.0, ..GrpoConfig::default() },
        GrpoConfig { reference_update_every: Some(0), ..GrpoConfig::default() },
    ] {
        assert!(
            GrpoTrainer::new(&s.backend, copy_model(&s.backend, &s.policy).unwrap(), &s.task, bad.clone()).is_err(),
            "{bad:?}"
        );
    }
}
