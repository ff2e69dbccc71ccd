//! GEMM on the Cpu backend: the shapes of a GPT-2-small layer (C = 768) at N = B·T = 2048 rows,
//! forward and backward, reported as GFLOP/s.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use runtime::ops::gemm::GemmSpec;
use runtime::{Backend, Cpu, DType};

/// (name, M, K, N): rows × in-features → out-features.
const SHAPES: &[(&str, usize, usize, usize)] = &[
    ("qkv 2048x768x2304", 2048, 768, 2304),
    ("mlp_up 2048x768x3072", 2048, 768, 3072),
    ("lm_head 512x768x8192", 512, 768, 8192),
];

fn filled(cpu: &Cpu, dims: &[usize]) -> runtime::Tensor<Cpu> {
    let n: usize = dims.iter().product();
    let data: Vec<f32> = (0..n).map(|i| ((i * 7919 % 1000) as f32 - 500.0) * 1e-3).collect();
    cpu.upload_f32(dims, &data, DType::F32).expect("upload")
}

fn bench_gemm(c: &mut Criterion) {
    let cpu = Cpu::new();
    let mut group = c.benchmark_group("gemm");
    group.sample_size(10).measurement_time(Duration::from_secs(3));
    for &(name, m, k, n) in SHAPES {
        let x = filled(&cpu, &[m, k]);
        let w = filled(&cpu, &[n, k]);
        let bias = filled(&cpu, &[n]);
        let dy = filled(&cpu, &[m, n]);
        let flops = 2 * m * k * n;
        group.throughput(Throughput::Elements(flops as u64));
        group.bench_function(format!("fwd {name}"), |b| {
            b.iter(|| cpu.gemm(&x, &w, Some(&bias), GemmSpec::nt()).expect("gemm"))
        });
        group.throughput(Throughput::Elements(2 * flops as u64));
        group.bench_function(format!("bwd {name}"), |b| {
            b.iter(|| cpu.gemm_bwd(&x, &w, &dy, true, GemmSpec::nt()).expect("gemm_bwd"))
        });
    }
    group.finish();
    println!("(throughput in elements/s is FLOP/s: divide by 1e9 for GFLOP/s)");
}

criterion_group!(benches, bench_gemm);
criterion_main!(benches);
