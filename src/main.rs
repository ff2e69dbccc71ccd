//! `rlhf`: the command line of rlhf-rs.

mod bench;
mod error;

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
    /// Time the core ops (GEMM, attention, fused log-prob, LayerNorm) forward and backward.
    Bench(bench::BenchArgs),
}

fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Bench(args) => bench::run(&args),
    }
}

fn main() {
    if let Err(err) = run(Cli::parse()) {
        eprintln!("error: {err}");
        std::process::exit(1);
    }
}
