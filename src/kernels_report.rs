//! `rlhf kernels report`: per kernel and architecture, ptxas's resources and what the emulator
//! counted over the `rlhf kernels test` shapes, with a roofline time estimate on an H100; then
//! the memory-critical ops against their I/O models (`runtime::kernel_check::io_model`).
//!
//! The roofline estimate of a launch is `max(bytes / HBM bandwidth, CUDA-core FLOPs / FP32 peak)`
//! from the counted global bytes and floating-point operations: what the kernel would take if
//! it ran at the machine's limits, the yardstick a measured time on a GPU is compared with.

use runtime::compile::{build_all, Arch, KernelBuildReport};
use runtime::emu::Counters;
use runtime::kernel_check::{self, io_model::{self, IoCheck}};
use runtime::{Emu, KernelStats};
use serde::Serialize;

use crate::error::CliError;

/// H100 SXM: HBM3 bandwidth (bytes/s), from NVIDIA's datasheet.
const H100_BYTES_PER_S: f64 = 3.35e12;
/// H100 SXM: FP32 on the CUDA cores (FLOP/s), the peak of the kernels' `fma.f32` arithmetic.
const H100_FP32_FLOPS: f64 = 66.9e12;
/// H100 SXM: dense bf16 on the tensor cores (FLOP/s), the peak of `mma.sync`.
const H100_BF16_TENSOR_FLOPS: f64 = 989e12;

/// The roofline time in microseconds of moving `bytes` and computing `float_ops` on the CUDA
/// cores and `tensor_ops` on the tensor cores of an H100 (the two kinds of arithmetic share the
/// issue slots, so their times add).
fn roofline_us(bytes: f64, float_ops: f64, tensor_ops: f64) -> f64 {
    let compute = float_ops / H100_FP32_FLOPS + tensor_ops / H100_BF16_TENSOR_FLOPS;
    1e6 * (bytes / H100_BYTES_PER_S).max(compute)
}

/// One kernel on one architecture: ptxas resources, and what the emulator counted while the
/// kernel ran over the `rlhf kernels test` shapes (the same PTX serves every architecture).
#[derive(Serialize)]
struct ReportRow {
    kernel: &'static str,
    op: &'static str,
    arch: String,
    registers: u32,
    spill_bytes: u32,
    static_shared_bytes: u32,
    stack_frame_bytes: u32,
    /// Launches the emulator ran (0 when the kernel has no Emu op yet).
    emu_launches: u64,
    /// Global bytes requested (loads + stores) per launch, averaged over those launches.
    global_bytes_per_launch: f64,
    /// CUDA-core floating-point operations per launch, averaged over those launches.
    float_ops_per_launch: f64,
    /// Tensor-core floating-point operations per launch.
    tensor_ops_per_launch: f64,
    /// Requested bytes over the bytes of the 32-byte sectors that served them.
    coalescing: f64,
    shared_bank_conflicts: u64,
    /// Roofline time of the average launch on an H100, in microseconds.
    roofline_us_h100: f64,
}

fn report_row(r: &KernelBuildReport, stats: &[(&'static str, KernelStats)]) -> ReportRow {
    let found = stats.iter().find(|(name, _)| *name == r.entry).map(|(_, s)| s);
    let (launches, counters) = found.map_or((0, Counters::default()), |s| (s.launches, s.counters.clone()));
    let per_launch = |total: u64| if launches > 0 { total as f64 / launches as f64 } else { 0.0 };
    let bytes = per_launch(counters.global_load_bytes + counters.global_store_bytes);
    let float_ops = per_launch(counters.float_ops);
    let tensor_ops = per_launch(counters.tensor_ops);
    ReportRow {
        kernel: r.entry,
        op: r.op,
        arch: r.arch.to_string(),
        registers: r.registers,
        spill_bytes: r.spill_bytes(),
        static_shared_bytes: r.static_shared_bytes,
        stack_frame_bytes: r.stack_frame_bytes,
        emu_launches: launches,
        global_bytes_per_launch: bytes,
        float_ops_per_launch: float_ops,
        tensor_ops_per_launch: tensor_ops,
        coalescing: counters.global_coalescing(),
        shared_bank_conflicts: counters.shared_bank_conflicts(),
        roofline_us_h100: roofline_us(bytes, float_ops, tensor_ops),
    }
}

/// One op at one shape against its I/O model.
#[derive(Serialize)]
struct IoRow<'a> {
    kernel: &'a str,
    shape: &'a str,
    counted_bytes: u64,
    model_bytes: u64,
    /// Counted over model bytes.
    ratio: f64,
    coalescing: f64,
    roofline_us_h100: f64,
}

impl<'a> From<&'a IoCheck> for IoRow<'a> {
    fn from(c: &'a IoCheck) -> Self {
        IoRow {
            kernel: &c.kernel,
            shape: &c.shape,
            counted_bytes: c.counted_bytes,
            model_bytes: c.model_bytes,
            ratio: c.ratio(),
            coalescing: c.coalescing,
            roofline_us_h100: roofline_us(c.counted_bytes as f64, c.float_ops as f64, c.tensor_ops as f64),
        }
    }
}

#[derive(Serialize)]
struct Report<'a> {
    kernels: Vec<ReportRow>,
    io_model: Vec<IoRow<'a>>,
}

/// Builds every kernel for `arch`, runs the kernel checks and the I/O-model cases on the
/// emulator, and prints the report (a table, or JSON with `json`).
pub fn report(arch: &[Arch], json: bool) -> Result<(), CliError> {
    let dir = std::env::temp_dir().join(format!("rlhf-kernels-report-{}", std::process::id()));
    let builds = build_all(arch, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    let emu = Emu::with_sanitizer(false)?;
    kernel_check::run_all(&emu);
    let stats = emu.kernel_stats();
    let kernels: Vec<ReportRow> = builds?.iter().map(|r| report_row(r, &stats)).collect();
    let io_checks = io_model::run_all()?;
    let report = Report { kernels, io_model: io_checks.iter().map(IoRow::from).collect() };
    if json {
        println!("{}", serde_json::to_string(&report).map_err(|e| CliError::Usage(e.to_string()))?);
    } else {
        print_tables(&report);
    }
    Ok(())
}

fn print_tables(report: &Report) {
    println!(
        "{:<30} {:<6} {:>5} {:>7} {:>6} {:>5} {:>8} {:>12} {:>9} {:>11}",
        "kernel", "arch", "regs", "spill B", "smem B", "stack", "launches", "bytes/launch", "coalesced", "H100 µs"
    );
    for r in &report.kernels {
        println!(
            "{:<30} {:<6} {:>5} {:>7} {:>6} {:>5} {:>8} {:>12.0} {:>8.1}% {:>11.3}",
            r.kernel,
            r.arch,
            r.registers,
            r.spill_bytes,
            r.static_shared_bytes,
            r.stack_frame_bytes,
            r.emu_launches,
            r.global_bytes_per_launch,
            100.0 * r.coalescing,
            r.roofline_us_h100
        );
    }
    println!();
    println!(
        "{:<30} {:<28} {:>14} {:>14} {:>7} {:>9} {:>11}",
        "I/O model", "shape", "counted B", "model B", "ratio", "coalesced", "H100 µs"
    );
    for r in &report.io_model {
        println!(
            "{:<30} {:<28} {:>14} {:>14} {:>7.3} {:>8.1}% {:>11.3}",
            r.kernel,
            r.shape,
            r.counted_bytes,
            r.model_bytes,
            r.ratio,
            100.0 * r.coalescing,
            r.roofline_us_h100
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roofline_takes_the_slower_of_memory_and_compute() {
        // 3.35 MB at 3.35 TB/s is 1 µs; 66.9 MFLOP at 66.9 TFLOP/s is 1 µs.
        assert!((roofline_us(3.35e6, 0.0, 0.0) - 1.0).abs() < 1e-9);
        assert!((roofline_us(3.35e6, 2.0 * 66.9e6, 0.0) - 2.0).abs() < 1e-9);
        assert!((roofline_us(0.0, 66.9e6, 989e6) - 2.0).abs() < 1e-9);
    }
}
