//! The reward-model stage of `rlhf demo` on `arith` (Cpu backend), with its settings exposed:
//! trains (or loads from a cache directory) the SFT policy, then runs
//! [`algorithms::reward::run_reward_stage`] and prints the held-out accuracies.
//!
//! `cargo run --release -p algorithms --example reward_stage -- [key=value ...]`
//!
//! Keys (defaults in brackets; without keys the stage runs as in the full `rlhf demo`): `seed`
//! [0: the task, the SFT policy and the stage, as `rlhf demo --seed`], `rounds` [32], `members`
//! [5: the raw-label model and 4 more], `steps` [1200, every model], `batch` [64], `lr` [3e-3],
//! `check` [200], `grm` [0], `smoothing` [0], `soft` [0: flip only], `flip_z` [2], `layers` [2],
//! `sft_steps` [1500], `readout` [sum, mean or last], `held_out_rounds` [16], `drop` [0: flip
//! contradicted labels, 1: leave those pairs out], `cache` [none: a directory holding the SFT
//! policy between runs].

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use algorithms::best_of_n::best_of_n;
use algorithms::model::{init_model, ModelShape};
use algorithms::rollout::reward_model::ModelReward;
use algorithms::reward::{pair_accuracy, reward_differences, run_reward_stage, Readout, RewardLossConfig, RewardStageConfig};
use algorithms::tasks::arith::{has_carry, parse_prompt};
use algorithms::sft::{tokenize, train_sft, SftConfig};
use algorithms::tasks::by_name;
use algorithms::tokenizer::train_tokenizer;
use models::transformer::Model;
use models::weights::StorageDtype;
use runtime::{Cpu, DType};

fn main() -> algorithms::Result<()> {
    let args: HashMap<String, String> = std::env::args()
        .skip(1)
        .filter_map(|a| a.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
        .collect();
    let get = |key: &str, default: &str| args.get(key).cloned().unwrap_or_else(|| default.to_string());
    let num = |key: &str, default: &str| -> f64 { get(key, default).parse().expect(key) };
    let seed = num("seed", "0") as u64;
    let layers = num("layers", "2") as usize;
    let sft_steps = num("sft_steps", "1500") as usize;

    let task = by_name("arith", seed)?;
    let dir = std::env::temp_dir().join(format!("rlhf-reward-stage-{}", std::process::id()));
    let tokenizer = train_tokenizer(task.as_ref(), &dir)?;
    let backend = Cpu::new();
    let shape = ModelShape { layers, ..ModelShape::for_task(task.as_ref()) };
    let cached = args.get("cache").map(|c| PathBuf::from(c).join(format!("sft-l{layers}-s{sft_steps}-seed{seed}")));
    let start = Instant::now();
    let policy = match &cached {
        Some(path) if path.join("config.json").exists() => Model::load(path, &backend, DType::F32)?,
        _ => {
            let mut policy = init_model(&backend, &shape.config(&tokenizer), seed)?;
            let rows = tokenize(&tokenizer, task.sft_corpus())?;
            train_sft(&backend, &mut policy, &rows, tokenizer.pad_id(), &SftConfig { seed, ..SftConfig::new(sft_steps, 64, 3e-3) }, &mut |_| {})?;
            if let Some(path) = &cached {
                policy.save(path, &backend, StorageDtype::F32)?;
            }
            policy
        }
    };
    println!("SFT policy ({layers} layers) ready in {:.1} s", start.elapsed().as_secs_f64());

    let mut config = RewardStageConfig::new(
        num("rounds", "32") as usize,
        num("members", "5") as usize,
        num("steps", "1200") as usize,
        seed,
    );
    let batch = num("batch", "64") as usize;
    let lr = num("lr", "3e-3") as f32;
    let loss = RewardLossConfig {
        grm_alpha: num("grm", "0") as f32,
        label_smoothing: num("smoothing", "0") as f32,
        ..RewardLossConfig::default()
    };
    config.model = algorithms::reward::RewardConfig { loss, ..algorithms::reward::RewardConfig::new(config.model.steps, batch, lr) };
    config.readout = match get("readout", "sum").as_str() {
        "last" => Readout::LastToken,
        "mean" => Readout::TokenMean,
        _ => Readout::TokenSum,
    };
    config.drop_contradicted = num("drop", "0") != 0.0;
    config.held_out_rounds = num("held_out_rounds", "16") as usize;
    config.check_every = num("check", "200") as usize;
    config.denoise.soft_labels = num("soft", "0") != 0.0;
    config.denoise.flip_z = num("flip_z", "2") as f32;
    println!("{config:?}");

    let out = run_reward_stage(&backend, &policy, &tokenizer, task.as_ref(), &config, &mut |_| {})?;
    let report = &out.report;
    // Gold accuracy by kind of prompt: units that carry, and the others.
    let differences = reward_differences(&backend, &out.model, &out.held_out, tokenizer.pad_id())?;
    for carry in [true, false] {
        let mut kept = (Vec::new(), Vec::new());
        for (d, pair) in differences.iter().zip(&out.held_out) {
            let text = tokenizer.decode_response(&pair.prompt)?.text;
            let (a, b) = parse_prompt(&text).expect("an arith prompt");
            if has_carry(a, b) == carry {
                kept.0.push(*d);
                kept.1.push(pair.clone());
            }
        }
        let acc = pair_accuracy(&kept.0, &kept.1);
        println!("carry {carry}: {} pairs with a gold preference, gold accuracy {:.3}", acc.gold_pairs, acc.gold_accuracy);
    }
    println!(
        "pairs: {} train ({:?}), {} validation, {} held-out ({} with a gold preference)",
        report.train_pairs, report.train_stats, report.validation_pairs, report.held_out_pairs, report.held_out.gold_pairs
    );
    if let Some(acc) = report.ensemble_mean {
        println!("ensemble mean: gold {:.3} noisy {:.3}; members stopped at {:?}", acc.gold_accuracy, acc.label_accuracy, report.member_steps);
        let members: Vec<String> = report.member_accuracies.iter().map(|a| format!("{:.3}", a.gold_accuracy)).collect();
        println!("members' gold accuracy: {}", members.join(" "));
    }
    if let (Some(counts), Some(audit)) = (report.denoise_counts, report.audit) {
        println!("denoising: {counts:?}; {audit:?}");
    }
    for (name, found) in [("denoised", report.denoised), ("no denoising", Some(report.undenoised))] {
        if let Some((acc, validation)) = found {
            println!("{name}: gold {:.3} noisy {:.3} (validation {validation:.3})", acc.gold_accuracy, acc.label_accuracy);
        }
    }
    println!("kept the model trained on {} labels", if report.denoised.is_some() { "denoised" } else { "raw" });
    println!("checks: {:?}", report.selection.checks);
    println!(
        "FINAL seed {seed}: gold {:.3} noisy {:.3} (step {}, validation {:.3}); stage {:.1} s",
        report.held_out.gold_accuracy,
        report.held_out.label_accuracy,
        report.selection.step,
        report.selection.label_accuracy,
        report.seconds
    );
    let mut learned = ModelReward::new(&out.model, tokenizer.pad_id());
    let bon = best_of_n(&backend, &policy, &tokenizer, task.as_ref(), task.eval_prompts(), 16, 1.0, seed, &mut learned)?;
    println!("best-of-16: {bon:?}");
    std::fs::remove_dir_all(&dir).map_err(|source| algorithms::Error::Io { path: dir.display().to_string(), source })?;
    Ok(())
}
