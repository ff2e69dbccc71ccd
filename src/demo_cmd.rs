//! `rlhf demo`: the main job. SFT → PPO → GRPO on a bundled task with a progress bar, then a
//! table of held-out results (on `style`, also the over-optimisation runs); files in `--out`.

use std::path::PathBuf;

use algorithms::demo::{run_demo, DemoOptions, Progress, Stage};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use runtime::Cpu;

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
}

fn stage_name(stage: Stage) -> &'static str {
    match stage {
        Stage::Sft => "SFT",
        Stage::Reward => "RM",
        Stage::Ppo => "PPO",
        Stage::Grpo => "GRPO",
        Stage::Eval => "eval",
    }
}

pub fn run(args: &DemoArgs) -> Result<(), CliError> {
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
    let summary = run_demo(&Cpu::new(), &options, &mut on_progress)?;
    bar.finish_and_clear();
    println!("task {} (seed {}), RL reward: {}", summary.task, summary.seed, summary.reward_source);
    println!("{:<6} {:>12} {:>10} {:>9}", "policy", "held-out gold", "KL to SFT", "seconds");
    for (name, r) in [("SFT", summary.sft), ("PPO", summary.ppo), ("GRPO", summary.grpo)] {
        println!("{name:<6} {:>13.3} {:>10.3} {:>9.1}", r.gold, r.kl, r.seconds);
    }
    if let Some(report) = &summary.overoptimisation {
        let (plain, grm) = (report.reward_model, report.grm_reward_model);
        println!(
            "reward models, held-out pair accuracy vs gold / noisy labels: plain {:.3} / {:.3}, GRM (alpha {}) {:.3} / {:.3}",
            plain.gold_accuracy, plain.noisy_accuracy, grm.grm_alpha, grm.gold_accuracy, grm.noisy_accuracy
        );
        println!(
            "PPO against the proxy reward model (rollout means over {} steps; the PPO row above is strong_kl):",
            report.window
        );
        println!(
            "{:<10} {:>6} {:>9} {:>12} {:>10} {:>11} {:>8} {:>8}",
            "run", "beta", "peak gold", "(step, KL)", "final gold", "final proxy", "final KL", "seconds"
        );
        for r in &report.runs {
            let c = r.curve;
            let at = format!("({}, {:.1})", c.peak_step, c.peak_kl);
            println!(
                "{:<10} {:>6} {:>9.3} {at:>12} {:>10.3} {:>11.3} {:>8.2} {:>8.1}",
                r.name, r.beta, c.peak_gold, c.final_gold, c.final_proxy, c.final_kl, r.seconds
            );
        }
    }
    println!("total {:.1} s; summary, metrics and curves in {}", summary.seconds, args.out.display());
    Ok(())
}
