//! The LM head + log-prob by vocabulary chunks (`ops::linear_logprob`) against the unfused path
//! (GEMM and `logprob_fwd`; `logprob_bwd` and `gemm_bwd` for the backward) on the Cpu backend:
//! hidden `[512, 768]` f32, LM head `[32768, 768]`, chunks of 4096 columns. The unfused path
//! holds the `[512, 32768]` f32 logits (64 MiB); the chunked one a `[512, 4096]` chunk (8 MiB).
//! Times from a few runs are printed once before criterion's own measurement.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use runtime::ops::gemm::GemmSpec;
use runtime::ops::linear_logprob::LinearLogProb;
use runtime::{Backend, Cpu, DType, Tensor};

const N: usize = 512;
const C: usize = 768;
const V: usize = 32_768;
const CHUNK: usize = 4096;

/// Best of a few runs of `f`, printed as time and GFLOP/s of the GEMMs for `flops`.
fn report_once(what: &str, flops: f64, mut f: impl FnMut()) {
    f();
    let best = (0..3)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .min()
        .unwrap_or_default();
    println!(
        "{what}: {:.1} ms, {:.1} GFLOP/s of GEMM ({} threads)",
        best.as_secs_f64() * 1e3,
        flops / best.as_secs_f64() / 1e9,
        rayon::current_num_threads()
    );
}

/// Deterministic values in [-scale, scale).
fn values(n: usize, seed: u32, scale: f32) -> Vec<f32> {
    (0..n as u32)
        .map(|i| ((i ^ seed).wrapping_mul(2_654_435_761) >> 8) as f32 / (1u32 << 24) as f32 * 2.0 * scale - scale)
        .collect()
}

fn unfused_backward(b: &Cpu, hidden: &Tensor<Cpu>, weight: &Tensor<Cpu>, targets: &Tensor<Cpu>, rows: [&Tensor<Cpu>; 3]) {
    let [lse, entropy, dlogprob] = rows;
    let logits = b.gemm(hidden, weight, None, GemmSpec::nt()).unwrap();
    let dz = b.logprob_bwd(&logits, targets, lse, entropy, dlogprob, None, 1.0).unwrap();
    black_box(b.gemm_bwd(hidden, weight, &dz, false, GemmSpec::nt()).unwrap());
}

fn linear_logprob(c: &mut Criterion) {
    let b = Cpu::new();
    let hidden = b.upload_f32(&[N, C], &values(N * C, 1, 1.0), DType::F32).unwrap();
    let weight = b.upload_f32(&[V, C], &values(V * C, 2, 0.1), DType::F32).unwrap();
    let ids: Vec<u32> = (0..N as u32).map(|i| i.wrapping_mul(7919) % V as u32).collect();
    let targets = b.upload_u32(&[N], &ids).unwrap();
    let dlogprob = b.upload_f32(&[N], &vec![1.0; N], DType::F32).unwrap();
    let op = LinearLogProb { hidden: &hidden, weight: &weight, targets: &targets, inv_temperature: 1.0, chunk: CHUNK };
    let saved = op.forward(&b).unwrap();
    let rows = [&saved.lse, &saved.entropy, &dlogprob];

    let gemm_flops = 2.0 * (N * C * V) as f64;
    let fused_fwd = || black_box(op.forward(&b).unwrap());
    let unfused_fwd = || {
        let logits = b.gemm(&hidden, &weight, None, GemmSpec::nt()).unwrap();
        black_box(b.logprob_fwd(&logits, &targets, 1.0).unwrap())
    };
    let fused_bwd = || black_box(op.backward(&b, &saved.lse, &saved.entropy, &dlogprob, None).unwrap());
    let unfused_bwd = || unfused_backward(&b, &hidden, &weight, &targets, rows);
    report_once("linear_logprob fwd chunked (4096)", gemm_flops, || {
        fused_fwd();
    });
    report_once("gemm + logprob_fwd unfused", gemm_flops, || {
        unfused_fwd();
    });
    report_once("linear_logprob bwd chunked (4096)", 3.0 * gemm_flops, || {
        fused_bwd();
    });
    report_once("gemm + logprob_bwd + gemm_bwd unfused", 3.0 * gemm_flops, unfused_bwd);

    let mut group = c.benchmark_group("linear_logprob");
    group.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements((N * V) as u64));
    group.bench_function("fwd_chunked_f32_N512_C768_V32768", |it| it.iter(fused_fwd));
    group.bench_function("fwd_unfused_f32_N512_C768_V32768", |it| it.iter(unfused_fwd));
    group.bench_function("bwd_chunked_f32_N512_C768_V32768", |it| it.iter(fused_bwd));
    group.bench_function("bwd_unfused_f32_N512_C768_V32768", |it| it.iter(unfused_bwd));
    group.finish();
}

criterion_group!(benches, linear_logprob);
criterion_main!(benches);
