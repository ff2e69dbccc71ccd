//! `rlhf`: the command line of rlhf-rs.

mod backend_arg;
mod bench;
mod demo_cmd;
mod error;
mod infer;
mod kernels_cmd;
mod kernels_report;

use clap::{Parser, Subcommand};

use crate::error::CliError;

#[derive(Parser)]
#[command(name = "rlhf", version, about = "RLHF on hand-written CUDA kernels")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The main job: SFT, PPO and GRPO on a bundled task, evaluated on held-out prompts.
    Demo(demo_cmd::DemoArgs),
    /// Time the core ops (GEMM, attention, fused log-prob, LayerNorm) forward and backward.
    Bench(bench::BenchArgs),
    /// Per-token log-probs of a sequence under a checkpoint.
    Logprobs(infer::LogprobsArgs),
    /// Continue a prompt with a checkpoint (KV-cache decoding).
    Generate(infer::GenerateArgs),
    /// Build the CUDA kernels (NVRTC + ptxas, no GPU needed) and report their resources.
    #[command(subcommand)]
    Kernels(kernels_cmd::KernelsCommand),
}

fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Demo(args) => demo_cmd::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Kernels(command) => kernels_cmd::run(&command),
        Command::Logprobs(args) => infer::logprobs(&args),
        Command::Generate(args) => infer::generate_cmd(&args),
    }
}

fn main() {
    if let Err(err) = run(Cli::parse()) {
        eprintln!("error: {err}");
        std::process::exit(1);
    }
}
