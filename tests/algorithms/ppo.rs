//! PPO: the importance ratio starts at exactly 1, the rollout's rewards and advantages follow the
//! recipe (an f64 re-derivation), the KL controller and reward moments against hand-computed
//! values, and PPO fixing a tiny task the SFT policy gets wrong.

use algorithms::eval::{evaluate, EvalOptions};
use algorithms::ppo::kl_control::{KlControl, KlController, KlPenalty};
use algorithms::ppo::{PpoConfig, PpoTrainer};
use algorithms::rollout::policy::{copy_model, token_logprobs, PolicyForward};
use algorithms::rollout::reward::{GoldReward, RunningMoments};
use algorithms::rollout::{Sample, TokenLayout};
use algorithms::tasks::Task;
use algorithms::tokenizer::Response;
use runtime::ops::kl::KlEstimator;
use runtime::{Backend, Cpu, DType};

use crate::common::{assert_close, Rng};
use crate::rl_setup::setup;

fn small_config() -> PpoConfig {
    PpoConfig { prompts_per_step: 10, samples_per_prompt: 5, minibatch_size: 16, ..PpoConfig::default() }
}

#[test]
fn importance_ratio_is_exactly_one_before_the_first_update() {
    let s = setup("ppo-ratio", 60);
    let (backend, pad) = (&s.backend, s.tokenizer.pad_id());
    let mut trainer =
        PpoTrainer::new(backend, copy_model(backend, &s.policy).unwrap(), &s.task, small_config()).unwrap();
    let rollout = trainer.collect(backend, &s.tokenizer, &s.task, &mut GoldReward { task: &s.task }).unwrap();
    assert_eq!(rollout.minibatches.len(), 4, "50 samples in minibatches of 16");
    for mb in &rollout.minibatches {
        // What the update computes first on this minibatch.
        let pass = PolicyForward::run(backend, &trainer.policy, mb, pad, 1.0).unwrap();
        let now = backend.download_f32(pass.logprob()).unwrap();
        let old = mb.gather(&rollout.old_logprob);
        for (i, ((a, b), &m)) in now.iter().zip(&old).zip(&mb.mask).enumerate() {
            assert!(m == 0 || a.to_bits() == b.to_bits(), "token {i}: training {a} vs rollout {b}");
        }
        let dims = mb.dims();
        let up = |x: &[f32]| backend.upload_f32(&dims, x, DType::F32).unwrap();
        let out = backend
            .ppo_loss(
                pass.logprob(),
                &up(&old),
                &up(&mb.gather(&rollout.advantages)),
                &backend.upload_u32(&dims, &mb.mask).unwrap(),
                &trainer.config.policy_loss,
            )
            .unwrap();
        assert_eq!((out.stats.clip_fraction, out.stats.approx_kl), (0.0, 0.0), "ratio 1 everywhere");
    }
    // The fused log-prob and the Cpu forward do not depend on the batch: the whole rollout in one
    // batch gives the same bits as its minibatches.
    let everything = rollout.layout.minibatch(&(0..rollout.layout.rows()).collect::<Vec<_>>());
    let (whole, _) = token_logprobs(backend, &trainer.policy, &everything, pad, 1.0).unwrap();
    let masked_bits = |x: &[f32]| {
        x.iter().zip(&rollout.layout.mask).filter(|(_, &m)| m == 1).map(|(v, _)| v.to_bits()).collect::<Vec<_>>()
    };
    assert_eq!(masked_bits(&whole), masked_bits(&rollout.old_logprob));

    let stats = trainer.update(backend, &rollout, pad).unwrap();
    assert_eq!(stats.initial_logprob_mismatches, 0);
    assert_eq!(stats.policy_steps, 2 * 4);
    assert!(stats.approx_kl > 0.0, "later minibatches see an updated policy: {stats:?}");
}

/// GAE by the textbook recursion over one row's masked tokens, f64.
fn gae_row(rewards: &[f64], values: &[f64], gamma: f64, lambda: f64) -> Vec<f64> {
    let mut adv = vec![0.0; rewards.len()];
    let (mut next_v, mut next_a) = (0.0, 0.0);
    for t in (0..rewards.len()).rev() {
        adv[t] = rewards[t] + gamma * next_v - values[t] + gamma * lambda * next_a;
        (next_v, next_a) = (values[t], adv[t]);
    }
    adv
}

#[test]
fn rollout_rewards_and_advantages_follow_the_recipe() {
    let s = setup("ppo-recipe", 60);
    let backend = &s.backend;
    let config = PpoConfig {
        kl: KlPenalty { estimator: KlEstimator::K1, control: KlControl::Fixed { beta: 0.3 } },
        reward_clip: Some(1.2),
        gamma: 0.9,
        lambda: 0.8,
        ..small_config()
    };
    let mut trainer =
        PpoTrainer::new(backend, copy_model(backend, &s.policy).unwrap(), &s.task, config.clone()).unwrap();
    // A reference other than the policy, so that the KL penalty is not 0; a critic whose values are
    // not all 0.
    let mut rng = Rng::new(5);
    for model in [&mut trainer.reference, &mut trainer.critic] {
        for i in 0..model.params.len() {
            let t = model.params.get(i);
            let noisy: Vec<f32> =
                backend.download_f32(t).unwrap().iter().map(|&x| x + (rng.normal() * 0.05) as f32).collect();
            *model.params.get_mut(i) = backend.upload_f32(t.dims(), &noisy, DType::F32).unwrap();
        }
    }
    let r = trainer.collect(backend, &s.tokenizer, &s.task, &mut GoldReward { task: &s.task }).unwrap();
    let t = r.layout.len;

    // Scores: gold, minus the penalty when unfinished, normalised by this first batch's own mean
    // and population std, clipped to ±1.2.
    let shaped: Vec<f64> = r
        .samples
        .iter()
        .zip(&r.scores)
        .map(|(s, &x)| f64::from(x) - if s.response.finished { 0.0 } else { 1.0 })
        .collect();
    let mean = shaped.iter().sum::<f64>() / shaped.len() as f64;
    let std = (shaped.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / shaped.len() as f64).sqrt();
    assert!(std > 0.0, "the batch has both right and wrong answers");
    let (mut all_adv, mut all_ret, mut all_rewards) =
        (vec![0.0; r.rewards.len()], vec![0.0; r.rewards.len()], vec![0.0; r.rewards.len()]);
    for (row, sample) in r.samples.iter().enumerate() {
        let cols: Vec<usize> = (0..t).filter(|&c| r.layout.mask[row * t + c] == 1).collect();
        assert_eq!(cols.len(), sample.response_ids.len(), "one masked position per response token");
        assert_eq!(*cols.last().unwrap(), r.layout.last[row]);
        let score = ((shaped[row] - mean) / std).clamp(-1.2, 1.2);
        let mut rewards: Vec<f64> = cols
            .iter()
            .map(|&c| -0.3 * (f64::from(r.old_logprob[row * t + c]) - f64::from(r.ref_logprob[row * t + c])))
            .collect();
        *rewards.last_mut().unwrap() += score;
        let values: Vec<f64> = cols.iter().map(|&c| f64::from(r.values[row * t + c])).collect();
        let adv = gae_row(&rewards, &values, 0.9, 0.8);
        for (k, &c) in cols.iter().enumerate() {
            all_rewards[row * t + c] = rewards[k];
            all_adv[row * t + c] = adv[k];
            all_ret[row * t + c] = adv[k] + values[k];
        }
    }
    assert_close("rewards", &r.rewards, &all_rewards, 1e-5, 1e-4);
    assert_close("returns", &r.returns, &all_ret, 1e-5, 1e-4);
    let picked: Vec<f64> = all_adv.iter().zip(&r.layout.mask).filter(|(_, &m)| m == 1).map(|(&a, _)| a).collect();
    let adv_mean = picked.iter().sum::<f64>() / picked.len() as f64;
    let adv_std = (picked.iter().map(|a| (a - adv_mean).powi(2)).sum::<f64>() / picked.len() as f64).sqrt();
    let whitened: Vec<f64> = all_adv
        .iter()
        .zip(&r.layout.mask)
        .map(|(&a, &m)| if m == 1 { (a - adv_mean) / adv_std } else { 0.0 })
        .collect();
    assert_close("whitened advantages", &r.advantages, &whitened, 1e-4, 1e-4);
    let summary = r.summary();
    assert!(summary.kl != 0.0 && summary.entropy > 0.0, "{summary:?}");
}

#[test]
fn adaptive_kl_controller_matches_hand_computed_updates() {
    let mut kl = KlController::new(KlControl::Adaptive { initial_beta: 0.1, target: 6.0, horizon: 10_000.0 }).unwrap();
    // KL 9 is 50% over target; the error is clipped to 0.2: β·(1 + 0.2·512/10000).
    kl.update(9.0, 512);
    assert_close("β after KL 9", &[kl.beta()], &[0.1 * 1.01024], 1e-9, 1e-6);
    // KL 5.4 is 10% under: β·(1 − 0.1·256/10000).
    kl.update(5.4, 256);
    assert_close("β after KL 5.4", &[kl.beta()], &[0.1 * 1.01024 * 0.99744], 1e-9, 1e-6);
    // On target: unchanged. A horizon shorter than a rollout cannot make β negative.
    let before = kl.beta();
    kl.update(6.0, 512);
    assert_eq!(kl.beta(), before);
    let mut fast = KlController::new(KlControl::Adaptive { initial_beta: 0.1, target: 1.0, horizon: 10.0 }).unwrap();
    fast.update(0.0, 512);
    assert_eq!(fast.beta(), 0.0);

    let mut fixed = KlController::new(KlControl::Fixed { beta: 0.05 }).unwrap();
    fixed.update(100.0, 512);
    assert_eq!(fixed.beta(), 0.05);
    for bad in [
        KlControl::Fixed { beta: -0.1 },
        KlControl::Adaptive { initial_beta: 0.1, target: 0.0, horizon: 1.0 },
        KlControl::Adaptive { initial_beta: 0.1, target: 1.0, horizon: f32::NAN },
    ] {
        assert!(KlController::new(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn running_moments_match_the_whole_stream() {
    let mut m = RunningMoments::default();
    assert_eq!((m.count(), m.mean(), m.std()), (0, 0.0, 0.0));
    m.update(&[1.0, 2.0, 3.0]);
    m.update(&[]);
    m.update(&[4.0, 5.0]);
    // 1..5: mean 3, population variance 2.
    assert_eq!(m.count(), 5);
    assert_close("mean, std", &[m.mean() as f32, m.std() as f32], &[3.0, 2f64.sqrt()], 1e-7, 1e-7);
    assert_close("normalised 5", &[m.normalize(5.0, 1e-4)], &[2.0 / 2f64.sqrt()], 1e-6, 1e-6);
    let mut constant = RunningMoments::default();
    constant.update(&[0.5; 4]);
    assert_eq!(constant.normalize(1.5, 0.25), 4.0, "the std is floored");
}

#[test]
fn token_layout_marks_the_response_positions() {
    let sample = |prompt: &[u32], response: &[u32]| Sample {
        prompt: String::new(),
        group: 0,
        prompt_ids: prompt.to_vec(),
        response_ids: response.to_vec(),
        response: Response { text: String::new(), finished: true },
    };
    let layout =
        TokenLayout::new(&[sample(&[5, 6, 7], &[8, 1]), sample(&[4], &[9, 9, 1]), sample(&[2, 3], &[1])], 0).unwrap();
    assert_eq!(layout.inputs, vec![vec![5, 6, 7, 8], vec![4, 9, 9], vec![2, 3]]);
    assert_eq!(layout.len, 4);
    #[rustfmt::skip]
    assert_eq!(layout.mask, vec![0, 0, 1, 1,  1, 1, 1, 0,  0, 1, 0, 0]);
    #[rustfmt::skip]
    assert_eq!(layout.targets, vec![0, 0, 8, 1,  9, 9, 1, 0,  0, 1, 0, 0]);
    assert_eq!(layout.last, vec![3, 2, 1]);
    // A minibatch of rows 2 and 1 keeps 3 columns; gather and scatter invert each other.
    let mb = layout.minibatch(&[2, 1]);
    assert_eq!((mb.dims(), mb.mask.clone()), ([2, 3], vec![0, 1, 0, 1, 1, 1]));
    let full: Vec<f32> = (0..12).map(|i| i as f32).collect();
    assert_eq!(mb.gather(&full), vec![8.0, 9.0, 10.0, 4.0, 5.0, 6.0]);
    let mut back = vec![0.0; 12];
    mb.scatter(&mb.gather(&full), &mut back);
    assert_eq!(back, vec![0.0, 0.0, 0.0, 0.0, 4.0, 5.0, 6.0, 0.0, 8.0, 9.0, 10.0, 0.0]);
}

fn greedy_accuracy(backend: &Cpu, model: &models::transformer::Model<Cpu>, s: &crate::rl_setup::Setup) -> f64 {
    evaluate(backend, model, &s.tokenizer, &s.task, s.task.eval_prompts(), &EvalOptions::default()).unwrap().0.accuracy
}

#[test]
fn ppo_fixes_what_the_sft_policy_gets_wrong() {
    let s = setup("ppo-learns", 100);
    let backend = &s.backend;
    let before = greedy_accuracy(backend, &s.policy, &s);
    assert!(before <= 0.3, "the SFT policy prefers the corpus's commoner wrong answer: {before}");
    let mut config =
        PpoConfig { prompts_per_step: 10, samples_per_prompt: 8, minibatch_size: 40, ..PpoConfig::default() };
    config.policy_adamw.lr = 3e-3;
    let mut trainer = PpoTrainer::new(backend, copy_model(backend, &s.policy).unwrap(), &s.task, config).unwrap();
    let mut reward = GoldReward { task: &s.task };
    let metrics: Vec<_> = (0..15).map(|_| trainer.step(backend, &s.tokenizer, &s.task, &mut reward).unwrap()).collect();
    let after = greedy_accuracy(backend, &trainer.policy, &s);
    assert!(after >= 0.9, "PPO should make the right answer the likeliest: {before} -> {after}, {metrics:?}");
    assert!(metrics.iter().all(|m| m.update.initial_logprob_mismatches == 0 && m.seconds > 0.0));
    assert!(metrics.last().unwrap().kl > 0.0, "the policy moved away from the reference");
}
