//! `rlhf demo`: the main job. SFT → reward model → best-of-N → PPO → GRPO on a bundled task with
//! a progress bar, then a table of held-out results (on `style`, also the over-optimisation
//! runs); files in `--out`.

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
        Stage::Reward => "RM",
        Stage::BestOfN => "BoN",
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
    let used = &summary.rewards_used;
    println!(
        "task {} (seed {}); rewards: best-of-N {}, PPO {}, GRPO {}",
        summary.task, summary.seed, used.best_of_n, used.ppo, used.grpo
    );
    let rm = &summary.reward_model;
    println!(
        "reward model ({:.0}% of labels flipped, trained on {} labels): held-out pair accuracy vs gold {:.3}, vs noisy labels {:.3} ({:.1} s)",
        100.0 * rm.flip_fraction,
        rm.trained_on,
        rm.gold_accuracy,
        rm.noisy_accuracy,
        rm.seconds
    );
    if let (Some(denoised), Some(raw)) = (rm.denoised_gold_accuracy, rm.no_denoising_gold_accuracy) {
        println!("  gold accuracy trained on ensemble-denoised labels {denoised:.3}, on raw labels {raw:.3}");
        let members = &rm.member_gold_accuracies;
        if !members.is_empty() {
            let mean = members.iter().sum::<f64>() / members.len() as f64;
            let (low, high) = members.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &a| (l.min(a), h.max(a)));
            println!(
                "  the {} ensemble members, all on raw labels (the first is the model above): gold accuracy mean {mean:.3}, {low:.3}–{high:.3}",
                members.len()
            );
        }
    }
    println!("{:<10} {:>12} {:>10} {:>9}", "policy", "held-out gold", "KL to SFT", "seconds");
    let bon = &summary.best_of_n;
    for (name, r) in [("SFT", summary.sft), ("PPO", summary.ppo), ("GRPO", summary.grpo)] {
        println!("{name:<10} {:>13.3} {:>10.3} {:>9.1}", r.gold, r.kl, r.seconds);
        if name == "SFT" {
            println!("{:<10} {:>13.3} {:>10} {:>9.1}", format!("best-of-{}", bon.n), bon.gold, "-", bon.seconds);
        }
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
