//! `rlhf kernels build|report|test`: compile every CUDA kernel to PTX and cubins, report each
//! kernel's resources per architecture, and check every kernel (run by the PTX emulator) against
//! the Cpu backend.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use runtime::compile::{build_all, Arch};
use runtime::kernel_check::{self, KernelCheck};
use runtime::Emu;
use serde::Serialize;

use crate::error::CliError;
use crate::kernels_report;

#[derive(Subcommand)]
pub enum KernelsCommand {
    /// Write `DIR/sm_XX/<op>.ptx` and `.cubin` for every kernel.
    Build(BuildArgs),
    /// Print registers, spills and shared memory per kernel and architecture.
    Report(ReportArgs),
    /// Run every kernel on the PTX emulator against the Cpu backend over awkward shapes.
    Test(TestArgs),
}

#[derive(Args)]
pub struct BuildArgs {
    /// Architectures, comma-separated (sm_80, sm_90).
    #[arg(long, value_delimiter = ',', default_value = "sm_80,sm_90")]
    arch: Vec<Arch>,
    /// Output directory.
    #[arg(long, default_value = "kernels-build")]
    out: PathBuf,
}

#[derive(Args)]
pub struct ReportArgs {
    #[arg(long, value_delimiter = ',', default_value = "sm_80,sm_90")]
    arch: Vec<Arch>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct TestArgs {
    /// Run the emulator's sanitizer (shared-memory races, barrier divergence, uninitialised
    /// shared reads): a finding fails that kernel's check.
    #[arg(long)]
    sanitize: bool,
    /// Print JSON instead of one line per kernel and shape.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct TestRow<'a> {
    name: &'a str,
    shape: &'a str,
    max_abs_err: f64,
    max_rel_err: f64,
    passed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

impl<'a> From<&'a KernelCheck> for TestRow<'a> {
    fn from(c: &'a KernelCheck) -> Self {
        TestRow {
            name: &c.name,
            shape: &c.shape,
            max_abs_err: c.max_abs_err,
            max_rel_err: c.max_rel_err,
            passed: c.passed,
            error: c.error.as_deref(),
        }
    }
}

#[derive(Serialize)]
struct TestSummary<'a> {
    passed: usize,
    failed: usize,
    kernels: Vec<TestRow<'a>>,
}

pub fn run(command: &KernelsCommand) -> Result<(), CliError> {
    match command {
        KernelsCommand::Build(args) => {
            let reports = build_all(&args.arch, &args.out)?;
            let spilling = reports.iter().filter(|r| r.spill_bytes() > 0).count();
            println!("built {} kernel entries into {}", reports.len(), args.out.display());
            if spilling > 0 {
                return Err(CliError::Usage(format!("{spilling} kernel entries spill registers (see `rlhf kernels report`)")));
            }
            Ok(())
        }
        KernelsCommand::Test(args) => test(args),
        KernelsCommand::Report(args) => kernels_report::report(&args.arch, args.json),
    }
}

/// Prints one line per check (or the JSON summary) and `N passed, M failed` last; fails when a
/// check failed.
fn test(args: &TestArgs) -> Result<(), CliError> {
    let checks = kernel_check::run_all(&Emu::with_sanitizer(args.sanitize)?);
    let passed = checks.iter().filter(|c| c.passed).count();
    let failed = checks.len() - passed;
    if args.json {
        let kernels = checks.iter().map(TestRow::from).collect();
        let summary = TestSummary { passed, failed, kernels };
        println!("{}", serde_json::to_string(&summary).map_err(|e| CliError::Usage(e.to_string()))?);
    } else {
        for c in &checks {
            let verdict = if c.passed { "ok  " } else { "FAIL" };
            println!(
                "{verdict} {:<28} {:<28} max abs err {:<9.2e} max rel err {:.2e}",
                c.name, c.shape, c.max_abs_err, c.max_rel_err
            );
            if let Some(error) = &c.error {
                println!("     {error}");
            }
        }
        println!("{passed} passed, {failed} failed");
    }
    if failed > 0 {
        return Err(CliError::Usage(format!("{failed} kernel checks failed")));
    }
    Ok(())
}
