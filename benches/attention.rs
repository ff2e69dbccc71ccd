//! Causal attention on the Cpu backend, f32: forward, and forward + backward, for multi-head and
//! grouped-query heads. Throughput is counted in FLOPs of the causal products (criterion's
//! "elem/s" are FLOP/s): forward `2·2·B·NH·T²·HS / 2` (QKᵀ and PV over the lower triangle),
//! backward about 2.5× that (QKᵀ recomputed, dP, dV, dQ, dK).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use runtime::{Backend, Cpu, DType, Tensor};

struct Shape {
    name: &'static str,
    b: usize,
    t: usize,
    nh: usize,
    nkv: usize,
    hs: usize,
}

const SHAPES: [Shape; 2] = [
    Shape { name: "mha_b4_t256_nh12_hs64", b: 4, t: 256, nh: 12, nkv: 12, hs: 64 },
    Shape { name: "gqa_b4_t256_nh12_nkv4_hs64", b: 4, t: 256, nh: 12, nkv: 4, hs: 64 },
];

impl Shape {
    fn forward_flops(&self) -> f64 {
        2.0 * 2.0 * (self.b * self.nh * self.t * self.t * self.hs) as f64 / 2.0
    }
}

/// Deterministic values in [-1, 1) (splitmix64), so runs are comparable.
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut state = seed;
    (0..n)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

struct Inputs {
    q: Tensor<Cpu>,
    k: Tensor<Cpu>,
    v: Tensor<Cpu>,
    key_valid: Tensor<Cpu>,
    dout: Tensor<Cpu>,
    scale: f32,
}

fn inputs(cpu: &Cpu, s: &Shape) -> Inputs {
    let q_dims = [s.b, s.t, s.nh, s.hs];
    let kv_dims = [s.b, s.t, s.nkv, s.hs];
    let (q_len, kv_len) = (s.b * s.t * s.nh * s.hs, s.b * s.t * s.nkv * s.hs);
    Inputs {
        q: cpu.upload_f32(&q_dims, &values(q_len, 1), DType::F32).unwrap(),
        k: cpu.upload_f32(&kv_dims, &values(kv_len, 2), DType::F32).unwrap(),
        v: cpu.upload_f32(&kv_dims, &values(kv_len, 3), DType::F32).unwrap(),
        key_valid: cpu.upload_u32(&[s.b, s.t], &vec![1; s.b * s.t]).unwrap(),
        dout: cpu.upload_f32(&q_dims, &values(q_len, 4), DType::F32).unwrap(),
        scale: 1.0 / (s.hs as f32).sqrt(),
    }
}

fn forward_backward(cpu: &Cpu, x: &Inputs) {
    let fwd = cpu.attention_fwd(&x.q, &x.k, &x.v, &x.key_valid, x.scale).unwrap();
    let grads = cpu
        .attention_bwd(&x.q, &x.k, &x.v, &x.key_valid, &fwd.out, &fwd.lse, &x.dout, x.scale)
        .unwrap();
    black_box(grads);
}

/// Median wall time of a few runs of `f`, for the one-line GFLOP/s summary.
fn median_time(mut f: impl FnMut()) -> Duration {
    f();
    let mut times: Vec<Duration> = (0..5)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

fn attention(c: &mut Criterion) {
    let cpu = Cpu::new();
    for s in &SHAPES {
        let x = inputs(&cpu, s);
        let fwd_flops = s.forward_flops();
        let both_flops = 3.5 * fwd_flops;

        let fwd_time = median_time(|| {
            black_box(cpu.attention_fwd(&x.q, &x.k, &x.v, &x.key_valid, x.scale).unwrap());
        });
        let both_time = median_time(|| forward_backward(&cpu, &x));
        println!(
            "attention cpu f32 {}: forward {:.2} ms = {:.1} GFLOP/s, forward+backward {:.2} ms = {:.1} GFLOP/s ({} threads)",
            s.name,
            fwd_time.as_secs_f64() * 1e3,
            fwd_flops / fwd_time.as_secs_f64() / 1e9,
            both_time.as_secs_f64() * 1e3,
            both_flops / both_time.as_secs_f64() / 1e9,
            rayon::current_num_threads(),
        );

        let mut group = c.benchmark_group(format!("attention/{}", s.name));
        group.sample_size(10).warm_up_time(Duration::from_millis(300));
        group.measurement_time(Duration::from_secs(2));
        group.throughput(Throughput::Elements(fwd_flops as u64));
        group.bench_function("forward", |bench| {
            bench.iter(|| cpu.attention_fwd(&x.q, &x.k, &x.v, &x.key_valid, x.scale).unwrap())
        });
        group.throughput(Throughput::Elements(both_flops as u64));
        group.bench_function("forward+backward", |bench| bench.iter(|| forward_backward(&cpu, &x)));
        group.finish();
    }
}

criterion_group!(benches, attention);
criterion_main!(benches);
