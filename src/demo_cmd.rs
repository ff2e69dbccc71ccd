//! `rlhf demo`: the main job. SFT → PPO → GRPO on a bundled task with a progress bar, then a
//! table of held-out results; files in `--out`.

use std::path::PathBuf;

use algorithms::demo::{run_demo, DemoOptions, Progress, Stage};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use runtime::Backend;

use crate::backend_arg::{with_backend, BackendArg};
use crate::error::CliError;

#[derive(Args)]
pub struct DemoArgs {
    /// Bundled task: `arith` (verifiable sums) or `style`.
    #[arg(long, default_value = "arith")]
    task: String,
    /// A shorter run (about 2 minutes on 2 cores) that still shows the improvement.
    #[arg(long)]
    quick: bool,
    /// Output directory: summary.json, metrics.jsonl, PNG curves, tokenizer and checkpoints.
    #[arg(long, default_value = "demo-out")]
    out: PathBuf,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[command(flatten)]
    backend: BackendArg,
}

fn stage_name(stage: Stage) -> &'static str {
    match stage {
        Stage::Sft => "SFT",
        Stage::Ppo => "PPO",
        Stage::Grpo => "GRPO",
        Stage::Eval => "eval",
    }
}

pub fn run(args: &DemoArgs) -> Result<(), CliError> {
    with_backend!(args.backend.backend, backend => run_on(backend, args))
}

fn run_on<B: Backend>(backend: &B, args: &DemoArgs) -> Result<(), CliError> {
    let options = DemoOptions { task: args.task.clone(), quick: args.quick, out: args.out.clone(), seed: args.seed };
    let bar = ProgressBar::new(1);
    bar.set_style(
        ProgressStyle::with_template("{prefix:>5} [{bar:30}] {pos}/{len} {elapsed_precise} {msg}")
            .map_err(|e| CliError::Usage(e.to_string()))?
            .progress_chars("=> "),
    );
    let mut on_progress = |p: &Progress| {
        bar.set_prefix(stage_name(p.stage));
        bar.set_length(p.total as u64);
        bar.set_position(p.step as u64);
        bar.set_message(p.message.clone());
    };
    let summary = run_demo(backend, &options, &mut on_progress)?;
    bar.finish_and_clear();
    println!("task {} (seed {}), RL reward: {}", summary.task, summary.seed, summary.reward_source);
    println!("{:<6} {:>12} {:>10} {:>9}", "policy", "held-out gold", "KL to SFT", "seconds");
    for (name, r) in [("SFT", summary.sft), ("PPO", summary.ppo), ("GRPO", summary.grpo)] {
        println!("{name:<6} {:>13.3} {:>10.3} {:>9.1}", r.gold, r.kl, r.seconds);
    }
    println!("total {:.1} s; summary, metrics and curves in {}", summary.seconds, args.out.display());
    Ok(())
}
