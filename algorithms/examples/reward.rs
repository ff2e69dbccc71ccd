//! Reward models on `arith` with noisy labels, on the Cpu backend: trains the SFT policy, samples
//! preference pairs from it (two responses per prompt, 25% of labels flipped by the annotator),
//! then compares reward models by held-out accuracy against the noisy labels and against gold:
//! plain Bradley–Terry, with GRM regularisation, with the verifier's binary outcome loss, the
//! ensemble's mean, ensemble denoising (flip, soft labels, adaptive margin), and clean labels as
//! the ceiling.
//!
//! `cargo run --release -p algorithms --example reward -- [rm_steps] [members] [member_steps] [grm_alpha] [seed]`
//!
//! `seed` changes the sampled pairs, the annotator's flips and the reward models' seeds (the SFT
//! policy stays the same).

use std::time::Instant;

use algorithms::model::{init_model, ModelShape};
use algorithms::reward::{
    audit_denoising, denoise, ensemble_strength, evaluate_pairs, pair_accuracy, sample_preference_pairs,
    train_ensemble, train_reward_model, DenoiseConfig, PairAccuracy, PairSampling, PreferencePair, RewardConfig,
    RewardLossConfig, RewardModel,
};
use algorithms::sft::{tokenize, train_sft, SftConfig};
use algorithms::tasks::annotator::{Annotator, DEFAULT_FLIP_FRACTION};
use algorithms::tasks::by_name;
use algorithms::tokenizer::train_tokenizer;
use models::transformer::Model;
use runtime::Cpu;

fn report(name: &str, acc: &PairAccuracy, seconds: f64) {
    println!(
        "{name:<34} held-out accuracy vs noisy labels {:.3}, vs gold {:.3}   ({seconds:.1} s)",
        acc.label_accuracy, acc.gold_accuracy
    );
}

/// Trains one reward model from `policy` and returns its held-out accuracy and training time.
fn train_and_evaluate(
    backend: &Cpu,
    policy: &Model<Cpu>,
    train: &[PreferencePair],
    held_out: &[PreferencePair],
    pad_id: u32,
    config: &RewardConfig,
) -> algorithms::Result<(PairAccuracy, f64)> {
    let start = Instant::now();
    let mut rm = RewardModel::from_policy(backend, policy, config.head_init_std, config.seed)?;
    train_reward_model(backend, &mut rm, train, pad_id, config, &mut |_| {})?;
    let seconds = start.elapsed().as_secs_f64();
    Ok((evaluate_pairs(backend, &rm, held_out, pad_id)?, seconds))
}

fn main() -> algorithms::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: &str| args.get(i).cloned().unwrap_or_else(|| default.to_string());
    let rm_steps: usize = arg(0, "1000").parse().expect("rm_steps");
    let members: usize = arg(1, "4").parse().expect("members");
    let member_steps: usize = arg(2, "500").parse().expect("member_steps");
    let grm_alpha: f32 = arg(3, "0").parse().expect("grm_alpha");
    let seed: u64 = arg(4, "0").parse().expect("seed");

    let task = by_name("arith", 0)?;
    let dir = std::env::temp_dir().join(format!("rlhf-reward-example-{}", std::process::id()));
    let tokenizer = train_tokenizer(task.as_ref(), &dir)?;
    let pad = tokenizer.pad_id();
    let backend = Cpu::new();
    let mut policy = init_model(&backend, &ModelShape::for_task(task.as_ref()).config(&tokenizer), 0)?;

    let start = Instant::now();
    let rows = tokenize(&tokenizer, task.sft_corpus())?;
    train_sft(&backend, &mut policy, &rows, pad, &SftConfig::new(1500, 64, 3e-3), &mut |_| {})?;
    println!("SFT policy: 1500 steps of 64 rows in {:.1} s", start.elapsed().as_secs_f64());

    // Four passes over the prompts: the policy is sure of most answers, and pairs of identical
    // responses are dropped.
    let start = Instant::now();
    let mut annotator = Annotator::new(DEFAULT_FLIP_FRACTION, 1 + 10 * seed)?;
    let sampling = PairSampling { rounds: 4, seed: 11 + 10 * seed, ..PairSampling::default() };
    let (train, train_stats) =
        sample_preference_pairs(&backend, &policy, &tokenizer, task.as_ref(), task.train_prompts(), &mut annotator, &sampling)?;
    let mut annotator = Annotator::new(DEFAULT_FLIP_FRACTION, 2 + 10 * seed)?;
    let sampling = PairSampling { rounds: 4, seed: 12 + 10 * seed, ..PairSampling::default() };
    let (held_out, held_out_stats) =
        sample_preference_pairs(&backend, &policy, &tokenizer, task.as_ref(), task.eval_prompts(), &mut annotator, &sampling)?;
    println!("pairs sampled in {:.1} s", start.elapsed().as_secs_f64());
    println!("  train:    {} pairs, {train_stats:?}", train.len());
    println!("  held-out: {} pairs ({} without a gold tie), {held_out_stats:?}", held_out.len(), held_out.iter().filter(|p| !p.gold_tie()).count());

    let config = RewardConfig {
        loss: RewardLossConfig { grm_alpha, ..RewardLossConfig::default() },
        seed,
        ..RewardConfig::new(rm_steps, 32, 3e-3)
    };
    println!("reward models: {rm_steps} steps of 32 pairs, GRM alpha {grm_alpha}");
    let clean: Vec<PreferencePair> = train
        .iter()
        .map(|p| if p.label_agrees_with_gold() == Some(false) { PreferencePair { label: 1.0, ..p.swapped() } } else { p.clone() })
        .collect();
    let (acc, seconds) = train_and_evaluate(&backend, &policy, &clean, &held_out, pad, &config)?;
    report("clean labels (ceiling)", &acc, seconds);
    let (acc, seconds) = train_and_evaluate(&backend, &policy, &train, &held_out, pad, &config)?;
    report("noisy labels, plain BT", &acc, seconds);
    let short = RewardConfig { seed, loss: config.loss, ..RewardConfig::new(member_steps, 32, 3e-3) };
    let (acc, seconds) = train_and_evaluate(&backend, &policy, &train, &held_out, pad, &short)?;
    report(&format!("noisy labels, plain BT, {member_steps} steps"), &acc, seconds);
    let grm = RewardConfig { loss: RewardLossConfig { grm_alpha: 0.5, ..config.loss }, ..config.clone() };
    let (acc, seconds) = train_and_evaluate(&backend, &policy, &train, &held_out, pad, &grm)?;
    report("noisy labels, plain BT + GRM 0.5", &acc, seconds);
    // On a verifiable task the checker's 0/1 outcome can supervise each response directly.
    let verified = RewardConfig { loss: RewardLossConfig { binary_weight: 1.0, ..config.loss }, ..config.clone() };
    let (acc, seconds) = train_and_evaluate(&backend, &policy, &train, &held_out, pad, &verified)?;
    report("noisy labels + binary outcome loss", &acc, seconds);

    let start = Instant::now();
    let member_config = RewardConfig { seed: 100 + 10 * seed, ..short };
    let trained = train_ensemble(&backend, &policy, &train, pad, &member_config, members, &mut |_, _| {})?;
    let ensemble: Vec<_> = trained.iter().collect();
    let strengths = ensemble_strength(&backend, &ensemble, &train, pad)?;
    let ensemble_seconds = start.elapsed().as_secs_f64();
    let held_out_strength = ensemble_strength(&backend, &ensemble, &held_out, pad)?;
    let mean: Vec<f32> = held_out_strength.iter().map(|s| s.mean).collect();
    report(&format!("ensemble of {members} x {member_steps} steps (mean)"), &pair_accuracy(&mean, &held_out), ensemble_seconds);
    let flip_only = DenoiseConfig { soft_labels: false, ..DenoiseConfig::default() };
    for (name, denoise_config) in [
        ("denoised: flip", flip_only),
        ("denoised: flip + soft", DenoiseConfig::default()),
        ("denoised: flip + soft + margin", DenoiseConfig { margin_scale: 0.5, ..DenoiseConfig::default() }),
    ] {
        let (denoised, treatments, counts) = denoise(&train, &strengths, &denoise_config)?;
        let audit = audit_denoising(&train, &denoised, &treatments);
        let (acc, seconds) = train_and_evaluate(&backend, &policy, &denoised, &held_out, pad, &config)?;
        report(name, &acc, seconds + ensemble_seconds);
        println!(
            "  {} kept, {} flipped ({} corrections, {} damaging), {} softened ({} gold ties); wrong labels {} -> {}",
            counts.kept,
            counts.flipped,
            audit.flips_correcting,
            audit.flips_damaging,
            counts.softened,
            audit.softened_ties,
            audit.wrong_before,
            audit.wrong_after
        );
    }
    std::fs::remove_dir_all(&dir)
        .map_err(|source| algorithms::Error::Io { path: dir.display().to_string(), source })?;
    Ok(())
}
