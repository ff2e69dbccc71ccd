//! The fused log-prob on the Cpu backend at N=2048 rows, V=32768, f32 logits (256 MiB).
//! Forward throughput counts the logits read; backward (with an entropy gradient) counts the
//! logits read plus the gradient written. GB/s from a few timed runs is printed once before
//! criterion's own measurement.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use runtime::{Backend, Cpu, DType};

const N: usize = 2048;
const V: usize = 32_768;

/// Best of a few runs of `f`, printed as time and GB/s for `bytes` moved.
fn report_once(what: &str, bytes: u64, mut f: impl FnMut()) {
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
        "{what}: {:.1} ms, {:.2} GB/s ({} threads)",
        best.as_secs_f64() * 1e3,
        bytes as f64 / best.as_secs_f64() / 1e9,
        rayon::current_num_threads()
    );
}

fn logprob(c: &mut Criterion) {
    let backend = Cpu::new();
    let host: Vec<f32> = (0..N * V)
        .map(|i| ((i as u32).wrapping_mul(2_654_435_761) >> 8) as f32 / (1u32 << 24) as f32 * 8.0 - 4.0)
        .collect();
    let logits = backend.upload_f32(&[N, V], &host, DType::F32).unwrap();
    drop(host);
    let ids: Vec<u32> = (0..N as u32).map(|i| i.wrapping_mul(7919) % V as u32).collect();
    let targets = backend.upload_u32(&[N], &ids).unwrap();
    let ones = vec![1.0f32; N];
    let dlogprob = backend.upload_f32(&[N], &ones, DType::F32).unwrap();
    let dentropy = backend.upload_f32(&[N], &ones, DType::F32).unwrap();
    let saved = backend.logprob_fwd(&logits, &targets, 1.0).unwrap();

    let logits_bytes = (N * V * std::mem::size_of::<f32>()) as u64;
    let forward = || black_box(backend.logprob_fwd(&logits, &targets, 1.0).unwrap());
    let backward = || {
        black_box(
            backend
                .logprob_bwd(&logits, &targets, &saved.lse, &saved.entropy, &dlogprob, Some(&dentropy), 1.0)
                .unwrap(),
        )
    };
    report_once("logprob_fwd f32 N=2048 V=32768 (read)", logits_bytes, || {
        forward();
    });
    report_once("logprob_bwd f32 N=2048 V=32768 (read + write)", 2 * logits_bytes, || {
        backward();
    });

    let mut group = c.benchmark_group("logprob");
    group.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    group.throughput(Throughput::Bytes(logits_bytes));
    group.bench_function("fwd_f32_N2048_V32768", |b| b.iter(forward));
    group.throughput(Throughput::Bytes(2 * logits_bytes));
    group.bench_function("bwd_f32_N2048_V32768", |b| b.iter(backward));
    group.finish();
}

criterion_group!(benches, logprob);
criterion_main!(benches);
