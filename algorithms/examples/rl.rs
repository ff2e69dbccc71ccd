//! SFT, then PPO and GRPO with the gold reward on `arith`, on the Cpu backend: held-out greedy
//! accuracy before and after each, and wall time.
//!
//! `cargo run --release -p algorithms --example rl -- [--algo ppo|grpo|both] [--steps N]
//! [--lr X] [--beta X] [--n N] [--prompts N] [--epochs N] [--minibatch N] [--seed N]
//! [--clip X] [--clip-high X] [--dual-clip X] [--reduction token|sequence] [--eval-every N]
//! [--sft-steps N] [--sft-cache DIR]`, PPO only: `[--critic-lr X] [--value-clip X (0: none)]
//! [--warmup N] [--target-kl X (adaptive β)] [--kl-estimator k1|k3]`, GRPO only: `[--alpha X]
//! [--scale-by-std true|false]`. Settings not given take the defaults below; `--sft-cache` saves
//! the SFT model on the first run and reuses it afterwards.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use algorithms::eval::{evaluate, EvalOptions};
use algorithms::grpo::{GrpoConfig, GrpoTrainer};
use algorithms::model::{init_model, ModelShape};
use algorithms::ppo::kl_control::KlControl;
use algorithms::ppo::{PpoConfig, PpoTrainer};
use algorithms::rollout::policy::copy_model;
use algorithms::rollout::reward::GoldReward;
use algorithms::sft::{tokenize, train_sft, SftConfig};
use algorithms::tasks::{arith, by_name, Task};
use algorithms::tokenizer::{train_tokenizer, TaskTokenizer};
use algorithms::Result;
use models::transformer::Model;
use models::weights::StorageDtype;
use runtime::ops::kl::KlEstimator;
use runtime::ops::ppo_loss::{LossReduction, PpoLossConfig};
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

    fn has(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    /// The clip range, dual clip and reduction of the clipped surrogate.
    fn surrogate(&self, defaults: PpoLossConfig) -> PpoLossConfig {
        let clip = self.get("clip", defaults.clip_low);
        let reduction = match self.get("reduction", "token".to_string()).as_str() {
            "sequence" => LossReduction::SequenceMean,
            _ => LossReduction::TokenMean,
        };
        let dual_clip = self.has("dual-clip").then(|| self.get("dual-clip", 3.0));
        PpoLossConfig { clip_low: clip, clip_high: self.get("clip-high", clip), dual_clip, reduction }
    }
}

fn accuracy(backend: &Cpu, model: &Model<Cpu>, tokenizer: &TaskTokenizer, task: &dyn Task) -> Result<f64> {
    Ok(evaluate(backend, model, tokenizer, task, task.eval_prompts(), &EvalOptions::default())?.0.accuracy)
}

/// Held-out greedy accuracy, printed with its split into prompts whose units carry and the others.
fn report(what: &str, backend: &Cpu, model: &Model<Cpu>, tokenizer: &TaskTokenizer, task: &dyn Task) -> Result<f64> {
    let (report, scored) = evaluate(backend, model, tokenizer, task, task.eval_prompts(), &EvalOptions::default())?;
    let split = |carry: bool| {
        let rows: Vec<_> = scored
            .iter()
            .filter(|s| arith::parse_prompt(&s.prompt).is_some_and(|(a, b)| arith::has_carry(a, b) == carry))
            .collect();
        rows.iter().filter(|s| s.solved).count() as f64 / rows.len().max(1) as f64
    };
    println!(
        "{what} held-out greedy accuracy {:.3} (carry prompts {:.3}, others {:.3})",
        report.accuracy,
        split(true),
        split(false)
    );
    Ok(report.accuracy)
}

fn sft_policy(backend: &Cpu, args: &Args, tokenizer: &TaskTokenizer, task: &dyn Task) -> Result<Model<Cpu>> {
    let cache: Option<PathBuf> = args.0.get("sft-cache").map(PathBuf::from);
    if let Some(dir) = cache.as_ref().filter(|d| d.join("model.safetensors").exists()) {
        println!("SFT policy loaded from {}", dir.display());
        return Ok(Model::load(dir, backend, DType::F32)?);
    }
    let config = ModelShape::for_task(task).config(tokenizer);
    let mut model = init_model(backend, &config, 0)?;
    let steps = args.get("sft-steps", 1500);
    let start = Instant::now();
    train_sft(
        backend,
        &mut model,
        &tokenize(tokenizer, task.sft_corpus())?,
        tokenizer.pad_id(),
        &SftConfig::new(steps, 64, 3e-3),
        &mut |_| {},
    )?;
    println!("SFT: {steps} steps in {:.1} s", start.elapsed().as_secs_f64());
    if let Some(dir) = cache {
        model.save(&dir, backend, StorageDtype::F32)?;
    }
    Ok(model)
}

fn run_ppo(backend: &Cpu, args: &Args, sft: &Model<Cpu>, tokenizer: &TaskTokenizer, task: &dyn Task) -> Result<f64> {
    let defaults = PpoConfig::default();
    let mut config = PpoConfig {
        prompts_per_step: args.get("prompts", 32),
        samples_per_prompt: args.get("n", 4),
        epochs: args.get("epochs", 2),
        minibatch_size: args.get("minibatch", 64),
        critic_warmup_steps: args.get("warmup", 0),
        value_clip: Some(args.get("value-clip", 0.2)).filter(|&c| c > 0.0),
        policy_loss: args.surrogate(defaults.policy_loss),
        seed: args.get("seed", 0),
        ..defaults.clone()
    };
    if args.get("kl-estimator", "k1".to_string()) == "k3" {
        config.kl.estimator = KlEstimator::K3;
    }
    config.policy_adamw.lr = args.get("lr", defaults.policy_adamw.lr);
    config.critic_adamw.lr = args.get("critic-lr", defaults.critic_adamw.lr);
    config.kl.control = KlControl::Fixed { beta: args.get("beta", 0.05) };
    if args.has("target-kl") {
        config.kl.control = KlControl::Adaptive {
            initial_beta: args.get("beta", 0.05),
            target: args.get("target-kl", 1.0),
            horizon: 10_000.0,
        };
    }
    let steps = args.get("steps", 50);
    let eval_every = args.get("eval-every", 25);
    println!("PPO: {steps} steps, {config:?}");
    let mut trainer = PpoTrainer::new(backend, copy_model(backend, sft)?, task, config)?;
    let mut reward = GoldReward { task };
    let start = Instant::now();
    for step in 0..steps {
        let m = trainer.step(backend, tokenizer, task, &mut reward)?;
        if step % 5 == 0 || step + 1 == steps {
            let u = m.update;
            println!(
                "ppo {step:4} reward {:.3} kl {:.3} β {:.3} H {:.3} clip {:.3} akl {:.4} vloss {:.3} ev {:.2} len {:.2} mism {} ({:.1} s)",
                m.reward, m.kl, m.beta, m.entropy, u.clip_fraction, u.approx_kl, u.value_loss, m.explained_variance,
                m.response_tokens, u.initial_logprob_mismatches, start.elapsed().as_secs_f64()
            );
        }
        if (step + 1) % eval_every == 0 && step + 1 != steps {
            println!("  held-out greedy accuracy {:.3}", accuracy(backend, &trainer.policy, tokenizer, task)?);
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    println!("PPO: {steps} steps in {seconds:.1} s");
    let acc = report("PPO", backend, &trainer.policy, tokenizer, task)?;
    Ok(acc)
}

fn run_grpo(backend: &Cpu, args: &Args, sft: &Model<Cpu>, tokenizer: &TaskTokenizer, task: &dyn Task) -> Result<f64> {
    let defaults = GrpoConfig::default();
    let mut config = GrpoConfig {
        prompts_per_step: args.get("prompts", 32),
        group_size: args.get("n", 8),
        epochs: args.get("epochs", 1),
        minibatch_size: args.get("minibatch", 64),
        negative_scale: args.get("alpha", 1.0),
        scale_by_std: args.get("scale-by-std", true),
        seed: args.get("seed", 0),
        ..defaults.clone()
    };
    config.loss.surrogate = args.surrogate(defaults.loss.surrogate);
    config.adamw.lr = args.get("lr", defaults.adamw.lr);
    config.loss.beta = args.get("beta", defaults.loss.beta);
    let steps = args.get("steps", 50);
    let eval_every = args.get("eval-every", 25);
    println!("GRPO: {steps} steps, {config:?}");
    let mut trainer = GrpoTrainer::new(backend, copy_model(backend, sft)?, task, config)?;
    let mut reward = GoldReward { task };
    let start = Instant::now();
    for step in 0..steps {
        let m = trainer.step(backend, tokenizer, task, &mut reward)?;
        if step % 5 == 0 || step + 1 == steps {
            println!(
                "grpo {step:4} reward {:.3} kl {:.4} H {:.3} flat {:.2} clip {:.3} akl {:.4} len {:.2} mism {} ({:.1} s)",
                m.reward, m.kl, m.entropy, m.flat_groups, m.clip_fraction, m.approx_kl, m.response_tokens,
                m.initial_logprob_mismatches, start.elapsed().as_secs_f64()
            );
        }
        if (step + 1) % eval_every == 0 && step + 1 != steps {
            println!("  held-out greedy accuracy {:.3}", accuracy(backend, &trainer.policy, tokenizer, task)?);
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    println!("GRPO: {steps} steps in {seconds:.1} s");
    let acc = report("GRPO", backend, &trainer.policy, tokenizer, task)?;
    Ok(acc)
}

fn main() -> Result<()> {
    let args = Args::parse();
    let task = by_name("arith", 0)?;
    let dir = std::env::temp_dir().join(format!("rlhf-rl-example-{}", std::process::id()));
    let tokenizer = train_tokenizer(task.as_ref(), &dir)?;
    let backend = Cpu::new();
    let sft = sft_policy(&backend, &args, &tokenizer, task.as_ref())?;
    let before = report("SFT", &backend, &sft, &tokenizer, task.as_ref())?;
    let algo: String = args.get("algo", "both".to_string());
    if algo == "ppo" || algo == "both" {
        let after = run_ppo(&backend, &args, &sft, &tokenizer, task.as_ref())?;
        println!("PPO: {before:.3} -> {after:.3} ({:+.1} points)", 100.0 * (after - before));
    }
    if algo == "grpo" || algo == "both" {
        let after = run_grpo(&backend, &args, &sft, &tokenizer, task.as_ref())?;
        println!("GRPO: {before:.3} -> {after:.3} ({:+.1} points)", 100.0 * (after - before));
    }
    std::fs::remove_dir_all(&dir).map_err(|source| algorithms::Error::Io { path: dir.display().to_string(), source })
}
