//! The over-optimisation experiment's wiring on the tiny successor task: every run is reported
//! with the reward model and β it was given, its peak and final values agree with the per-step
//! metrics it logged, and the charts and checkpoints are written.

use algorithms::overopt::{run_experiment, OveroptConfig, RunMetrics, Sinks};
use algorithms::reward::RewardConfig;

use crate::rl_setup::setup;
use crate::Scratch;

/// Mean of the last `window` values.
fn tail_mean(values: &[f64], window: usize) -> f64 {
    let tail = &values[values.len().saturating_sub(window)..];
    tail.iter().sum::<f64>() / tail.len() as f64
}

#[test]
fn experiment_reports_each_run_from_its_own_steps() {
    let s = setup("overopt", 60);
    let out = Scratch::new("overopt-out");
    std::fs::create_dir_all(out.path()).unwrap();
    let mut config = OveroptConfig::for_run(true, 0);
    config.pair_rounds = 4;
    config.eval_pair_rounds = 4;
    config.reward = RewardConfig::new(20, 8, 3e-3);
    config.ppo_steps = 4;
    config.window = 2;
    (config.ppo.prompts_per_step, config.ppo.samples_per_prompt, config.ppo.minibatch_size) = (4, 2, 4);
    (config.grpo.prompts_per_step, config.grpo.group_size, config.grpo.minibatch_size) = (4, 2, 4);

    let mut lines: Vec<(String, String, usize, f64, f64, f64)> = Vec::new();
    let mut metrics = |m: &RunMetrics| {
        let stage = serde_json::to_value(m.stage).unwrap().as_str().unwrap().to_string();
        lines.push((stage, m.run.to_string(), m.step, m.proxy.into(), m.gold.into(), m.kl.into()));
        Ok(())
    };
    let mut progress = |_: &algorithms::demo::Progress| {};
    let mut sinks = Sinks { progress: &mut progress, metrics: &mut metrics };
    let outcome = run_experiment(&s.backend, &s.task, &s.tokenizer, &s.policy, &config, out.path(), &mut sinks).unwrap();
    let report = &outcome.report;

    let runs: Vec<(&str, &str, f32)> = report.runs.iter().map(|r| (r.name, r.reward_model, r.beta)).collect();
    assert_eq!(runs, [("weak_kl", "plain", config.weak_beta), ("strong_kl", "plain", config.strong_beta), ("grm", "grm", config.weak_beta)]);
    assert_eq!(report.grm_reward_model.grm_alpha, config.grm_alpha);
    assert_eq!(report.reward_model.grm_alpha, 0.0);
    assert!(report.pairs > 0 && report.held_out_pairs > 0);
    for acc in [report.reward_model, report.grm_reward_model] {
        assert!((0.0..=1.0).contains(&acc.gold_accuracy) && (0.0..=1.0).contains(&acc.noisy_accuracy), "{acc:?}");
    }

    assert_eq!(lines.len(), 4 * config.ppo_steps);
    assert!(lines.iter().filter(|l| l.1 == "grpo").all(|l| l.0 == "grpo"));
    for run in &report.runs {
        let own: Vec<_> = lines.iter().filter(|l| l.1 == run.name).collect();
        assert!(own.iter().all(|l| l.0 == "ppo"));
        assert_eq!(own.iter().map(|l| l.2).collect::<Vec<_>>(), (0..config.ppo_steps).collect::<Vec<_>>());
        let column = |i: usize| own.iter().map(|l| [l.3, l.4, l.5][i]).collect::<Vec<f64>>();
        let (proxy, gold, kl) = (column(0), column(1), column(2));
        let c = run.curve;
        assert_eq!((c.start_proxy, c.start_gold), (proxy[0], gold[0]));
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-9;
        assert!(close(c.final_proxy, tail_mean(&proxy, 2)) && close(c.final_gold, tail_mean(&gold, 2)));
        assert!(close(c.final_kl, tail_mean(&kl, 2)));
        let smoothed_gold: Vec<f64> = (1..=gold.len()).map(|i| tail_mean(&gold[..i], 2)).collect();
        assert!(close(c.peak_gold, smoothed_gold.iter().copied().fold(f64::MIN, f64::max)), "{c:?}");
        assert!(close(c.gold_drop, c.peak_gold - c.final_gold));
        assert!(out.path().join(format!("ppo_{}/model.safetensors", run.name)).exists());
    }
    let strong = &report.runs[1];
    assert_eq!((outcome.ppo.gold, outcome.ppo.kl), (strong.held_out_gold, strong.held_out_kl));
    assert!(out.path().join("grpo/model.safetensors").exists());
    for chart in ["style_gold_vs_kl", "style_proxy_vs_kl", "style_gold", "style_proxy", "style_kl"] {
        assert!(out.path().join(format!("{chart}.png")).exists(), "{chart}");
    }
}

#[test]
fn experiment_rejects_empty_settings() {
    let s = setup("overopt-bad", 10);
    let out = Scratch::new("overopt-bad-out");
    let config = OveroptConfig { ppo_steps: 0, ..OveroptConfig::for_run(true, 0) };
    let mut metrics = |_: &RunMetrics| Ok(());
    let mut progress = |_: &algorithms::demo::Progress| {};
    let mut sinks = Sinks { progress: &mut progress, metrics: &mut metrics };
    let err = run_experiment(&s.backend, &s.task, &s.tokenizer, &s.policy, &config, out.path(), &mut sinks);
    assert!(err.unwrap_err().to_string().contains("PPO steps"));
}
