//! Reward models on `arith` with noisy labels, on the Cpu backend: trains the SFT policy, samples
//! preference pairs from it (two responses per prompt, 25% of labels flipped by the annotator),
//! then compares reward models by held-out accuracy against the noisy labels and against gold:
//! plain Bradley–Terry, the same with GRM regularisation, and ensemble denoising (flip, soft
//! labels, adaptive margin), with clean labels as the ceiling.
//!
//! `cargo run --release -p algorithms --example reward -- [rm_steps] [members] [train_rounds]`

use std::time::Instant;

use algorithms::model::{init_model, ModelShape};
use algorithms::reward::{
    audit_denoising, denoise, ensemble_strength, evaluate_pairs, sample_preference_pairs, train_ensemble,
    train_reward_model, DenoiseConfig, PairAccuracy, PairSampling, PreferencePair, RewardConfig, RewardModel,
};
use algorithms::sft::{tokenize, train_sft, SftConfig};
use algorithms::tasks::annotator::{Annotator, DEFAULT_FLIP_FRACTION};
use algorithms::tasks::by_name;
use algorithms::tokenizer::train_tokenizer;
use models::transformer::Model;
use runtime::Cpu;

fn report(name: &str, acc: &PairAccuracy, seconds: f64) {
    println!(
        "{name:<34} held-out label accuracy {:.3}  gold accuracy {:.3} ({} gold pairs)  trained in {seconds:.1} s",
        acc.label_accuracy, acc.gold_accuracy, acc.gold_pairs
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
    let rm_steps: usize = arg(0, "300").parse().expect("rm_steps");
    let members: usize = arg(1, "4").parse().expect("members");
    let train_rounds: usize = arg(2, "1").parse().expect("train_rounds");

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

    let start = Instant::now();
    let mut annotator = Annotator::new(DEFAULT_FLIP_FRACTION, 1)?;
    let sampling = PairSampling { rounds: train_rounds, seed: 11, ..PairSampling::default() };
    let (train, train_stats) =
        sample_preference_pairs(&backend, &policy, &tokenizer, task.as_ref(), task.train_prompts(), &mut annotator, &sampling)?;
    let mut annotator = Annotator::new(DEFAULT_FLIP_FRACTION, 2)?;
    let sampling = PairSampling { rounds: 4, seed: 12, ..PairSampling::default() };
    let (held_out, held_out_stats) =
        sample_preference_pairs(&backend, &policy, &tokenizer, task.as_ref(), task.eval_prompts(), &mut annotator, &sampling)?;
    println!("pairs sampled in {:.1} s: train {train_stats:?}, held-out {held_out_stats:?}", start.elapsed().as_secs_f64());

    let config = RewardConfig::new(rm_steps, 32, 1e-3);
    let clean: Vec<PreferencePair> =
        train.iter().map(|p| if p.label_agrees_with_gold() == Some(false) { PreferencePair { label: 1.0, ..p.swapped() } } else { p.clone() }).collect();
    let (acc, seconds) = train_and_evaluate(&backend, &policy, &clean, &held_out, pad, &config)?;
    report("clean labels (ceiling)", &acc, seconds);
    let (acc, seconds) = train_and_evaluate(&backend, &policy, &train, &held_out, pad, &config)?;
    report("noisy labels, plain BT", &acc, seconds);

    let start = Instant::now();
    let ensemble = train_ensemble(&backend, &policy, &train, pad, &RewardConfig { seed: 100, ..config.clone() }, members, &mut |_, _| {})?;
    let strengths = ensemble_strength(&backend, &ensemble, &train, pad)?;
    let ensemble_seconds = start.elapsed().as_secs_f64();
    println!("ensemble of {members} trained and measured in {ensemble_seconds:.1} s");
    for (name, denoise_config) in [
        ("denoised: flip", DenoiseConfig { soft_labels: false, ..DenoiseConfig::default() }),
        ("denoised: flip + soft", DenoiseConfig::default()),
        ("denoised: flip + soft + margin", DenoiseConfig { margin_scale: 0.5, ..DenoiseConfig::default() }),
    ] {
        let (denoised, treatments, counts) = denoise(&train, &strengths, &denoise_config)?;
        let audit = audit_denoising(&train, &denoised, &treatments);
        println!("{name}: {counts:?} {audit:?}");
        let (acc, seconds) = train_and_evaluate(&backend, &policy, &denoised, &held_out, pad, &config)?;
        report(name, &acc, seconds + ensemble_seconds);
    }
    std::fs::remove_dir_all(&dir)
        .map_err(|source| algorithms::Error::Io { path: dir.display().to_string(), source })?;
    Ok(())
}
