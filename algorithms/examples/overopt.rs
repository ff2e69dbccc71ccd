//! Reward over-optimisation on `style` (the experiment `rlhf demo --task style` runs), with its
//! settings exposed: prints each run's peak and final gold, final proxy and KL.
//!
//! `cargo run --release -p algorithms --example overopt -- [--quick true] [--seed N]
//! [--sft-steps N] [--sft-cache DIR] [--pair-rounds N] [--rm-steps N] [--grm-alpha X]
//! [--steps N] [--weak-beta X] [--strong-beta X] [--lr X] [--prompts N] [--n N] [--epochs N]
//! [--grpo-beta X] [--window N] [--out DIR]`. Settings not given take the demo's (`OveroptConfig::for_run`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use algorithms::model::{init_model, ModelShape};
use algorithms::overopt::{run_experiment, OveroptConfig, Sinks};
use algorithms::sft::{tokenize, train_sft, SftConfig};
use algorithms::tasks::by_name;
use algorithms::tokenizer::train_tokenizer;
use algorithms::Result;
use models::transformer::Model;
use models::weights::StorageDtype;
use runtime::{Cpu, DType};

struct Args(HashMap<String, String>);

impl Args {
    fn parse() -> Self {
        let raw: Vec<String> = std::env::args().skip(1).collect();
        let pairs = raw
            .chunks(2)
            .map(|kv| (kv[0].trim_start_matches("--").to_string(), kv.get(1).cloned().unwrap_or_default()));
        Args(pairs.collect())
    }

    fn get<T: std::str::FromStr>(&self, key: &str, default: T) -> T {
        self.0.get(key).map_or(default, |v| v.parse().unwrap_or_else(|_| panic!("bad value for --{key}: {v}")))
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    let seed: u64 = args.get("seed", 0);
    let base = OveroptConfig::for_run(args.get("quick", false), seed);
    let task = by_name("style", seed)?;
    let task = task.as_ref();
    let out: PathBuf = args.get("out", std::env::temp_dir().join("rlhf-overopt-example"));
    std::fs::create_dir_all(&out).map_err(|source| algorithms::Error::Io { path: out.display().to_string(), source })?;
    let tokenizer = train_tokenizer(task, &out)?;
    let backend = Cpu::new();
    let start = Instant::now();
    let cache: Option<PathBuf> = args.0.get("sft-cache").map(PathBuf::from);
    let sft = match cache.as_ref().filter(|d| d.join("model.safetensors").exists()) {
        Some(dir) => Model::load(dir, &backend, DType::F32)?,
        None => {
            let mut model = init_model(&backend, &ModelShape::for_task(task).config(&tokenizer), seed)?;
            let steps = args.get("sft-steps", 1500);
            let config = SftConfig { seed, ..SftConfig::new(steps, 64, 3e-3) };
            let rows = tokenize(&tokenizer, task.sft_corpus())?;
            train_sft(&backend, &mut model, &rows, tokenizer.pad_id(), &config, &mut |_| {})?;
            if let Some(dir) = &cache {
                model.save(dir, &backend, StorageDtype::F32)?;
            }
            model
        }
    };
    println!("SFT policy ready in {:.1} s", start.elapsed().as_secs_f64());

    let rm_steps = args.get("rm-steps", base.reward.steps);
    let mut config = OveroptConfig {
        pair_rounds: args.get("pair-rounds", base.pair_rounds),
        grm_alpha: args.get("grm-alpha", base.grm_alpha),
        ppo_steps: args.get("steps", base.ppo_steps),
        weak_beta: args.get("weak-beta", base.weak_beta),
        strong_beta: args.get("strong-beta", base.strong_beta),
        window: args.get("window", base.window),
        reward: algorithms::reward::RewardConfig { seed, ..algorithms::reward::RewardConfig::new(rm_steps, 32, 3e-3) },
        ..base.clone()
    };
    config.ppo.prompts_per_step = args.get("prompts", base.ppo.prompts_per_step);
    config.ppo.samples_per_prompt = args.get("n", base.ppo.samples_per_prompt);
    config.ppo.epochs = args.get("epochs", base.ppo.epochs);
    config.ppo.policy_adamw.lr = args.get("lr", base.ppo.policy_adamw.lr);
    config.grpo.loss.beta = args.get("grpo-beta", base.grpo.loss.beta);

    let start = Instant::now();
    let mut progress = |_: &algorithms::demo::Progress| {};
    let mut metrics = |m: &algorithms::overopt::RunMetrics| -> Result<()> {
        if m.step % 5 == 0 {
            println!(
                "{:<9} step {:>3} proxy {:>7.3} gold {:.3} kl {:>6.2} tokens {:.1}",
                m.run, m.step, m.proxy, m.gold, m.kl, m.response_tokens
            );
        }
        Ok(())
    };
    let mut sinks = Sinks { progress: &mut progress, metrics: &mut metrics };
    let outcome = run_experiment(&backend, task, &tokenizer, &sft, &config, &out, &mut sinks)?;
    println!("GRPO against the proxy: held-out gold {:.3}, KL {:.2}", outcome.grpo.gold, outcome.grpo.kl);
    println!("{}", serde_json::to_string_pretty(&outcome.report).map_err(|e| algorithms::Error::Config(e.to_string()))?);
    println!("experiment in {:.1} s; charts in {}", start.elapsed().as_secs_f64(), out.display());
    Ok(())
}
