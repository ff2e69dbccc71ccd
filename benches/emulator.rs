//! PTX emulator speed: executed thread-instructions per second on the LayerNorm forward kernel
//! (`layernorm_fwd_f32`, B·T = 4096 rows, C = 768, the launch the Emu backend makes: one warp
//! per row, 256-thread blocks). The emulator runs a launch on one thread. The figure from a few
//! timed launches is printed once before criterion's own measurement, whose throughput is in
//! thread-instructions ("elem").
//!
//! Needs the CUDA tools (`scripts/setup-cuda-tools.sh`) to compile the kernel with NVRTC.

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use runtime::compile::{Arch, Compiler};
use runtime::emu::{Device, KernelArg, LaunchConfig, Module};

const ROWS: u32 = 4096;
const C: u32 = 768;
const THREADS: u32 = 256;

fn f32_bytes(values: impl Iterator<Item = f32>) -> Vec<u8> {
    values.flat_map(f32::to_le_bytes).collect()
}

fn emulator(c: &mut Criterion) {
    let compiler = Compiler::locate().unwrap_or_else(|e| panic!("{e}"));
    let source = kernels::source("layernorm").expect("layernorm.cu is embedded");
    let ptx = compiler.compile_source(source, Arch::Sm80).unwrap_or_else(|e| panic!("{e}")).ptx;
    let module = Module::parse(&ptx).unwrap_or_else(|e| panic!("{e}"));

    let mut device = Device::new();
    let n = (ROWS * C) as usize;
    let x = device.alloc(4 * n);
    let x_values = (0..n).map(|i| ((i as u32).wrapping_mul(2_654_435_761) >> 8) as f32 / (1 << 24) as f32);
    device.write(x, &f32_bytes(x_values)).unwrap();
    let weight = device.alloc(4 * C as usize);
    device.write(weight, &f32_bytes((0..C).map(|i| 1.0 + i as f32 / C as f32))).unwrap();
    let bias = device.alloc(4 * C as usize);
    let y = device.alloc(4 * n);
    let mean = device.alloc(4 * ROWS as usize);
    let rstd = device.alloc(4 * ROWS as usize);
    let args = [x, weight, bias, y, mean, rstd]
        .map(KernelArg::Ptr)
        .into_iter()
        .chain([KernelArg::U32(ROWS), KernelArg::U32(C), KernelArg::F32(1e-5)])
        .collect::<Vec<_>>();
    let config = LaunchConfig::linear(ROWS.div_ceil(THREADS / 32), THREADS);
    let mut launch = || device.launch(&module, "layernorm_fwd_f32", config, &args).unwrap();

    let report = launch();
    let start = Instant::now();
    let runs = 3;
    for _ in 0..runs {
        black_box(launch());
    }
    let seconds = start.elapsed().as_secs_f64() / runs as f64;
    println!(
        "layernorm_fwd_f32 [{ROWS}, {C}]: {:.1} M thread-instructions ({:.1} M warp-instructions) in \
         {:.0} ms: {:.1} M thread-instructions/s",
        report.thread_instructions as f64 / 1e6,
        report.warp_instructions as f64 / 1e6,
        seconds * 1e3,
        report.thread_instructions as f64 / seconds / 1e6
    );

    let mut group = c.benchmark_group("emulator");
    group.sample_size(10);
    group.throughput(Throughput::Elements(report.thread_instructions));
    group.bench_function("layernorm_fwd_f32_4096x768", |b| b.iter(|| black_box(launch())));
    group.finish();
}

criterion_group!(benches, emulator);
criterion_main!(benches);
