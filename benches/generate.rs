//! Batched KV-cache decoding on the Cpu backend: a GPT-2-124M-shaped model with random weights,
//! B = 8 prompts of 16 tokens, 128 new tokens each (greedy, no EOS so every row runs to the end).
//! Reported as generated tokens per second (B·128 per iteration).

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use models::generate::{generate, GenerateOptions};
use models::sampling::Sampling;
use models::transformer::{Model, Transformer};
use models::ModelConfig;
use runtime::{Cpu, DType};

const BATCH: usize = 8;
const PROMPT: usize = 16;
const NEW_TOKENS: usize = 128;

fn gpt2_124m(cpu: &Cpu) -> Model<Cpu> {
    let config = ModelConfig::from_json(
        r#"{"model_type":"gpt2","vocab_size":50257,"n_positions":1024,"n_embd":768,"n_layer":12,"n_head":12}"#,
        "gpt2-124m config",
    )
    .expect("valid config");
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let (layout, params) = Transformer::build(&config, cpu, DType::F32, &mut |name, dims| {
        let n: usize = dims.iter().product();
        if name.contains("ln_") {
            return Ok(vec![1.0; n]);
        }
        Ok((0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.04
            })
            .collect())
    })
    .expect("build");
    Model { layout, params }
}

fn bench_generate(c: &mut Criterion) {
    let cpu = Cpu::new();
    let model = gpt2_124m(&cpu);
    let prompts: Vec<Vec<u32>> = (0..BATCH).map(|b| (0..PROMPT).map(|t| ((b * 131 + t * 17) % 50000) as u32).collect()).collect();
    let options = GenerateOptions {
        max_new_tokens: NEW_TOKENS,
        sampling: Sampling::Greedy,
        seed: 0,
        eos_token_ids: vec![],
        pad_token_id: 0,
    };
    let mut group = c.benchmark_group("generate");
    group.sample_size(10).measurement_time(Duration::from_secs(60)).warm_up_time(Duration::from_secs(1));
    group.throughput(Throughput::Elements((BATCH * NEW_TOKENS) as u64));
    group.bench_function("gpt2-124m B=8 prompt=16 new=128", |b| {
        b.iter(|| generate(&cpu, &model, &prompts, &options).expect("generate"))
    });
    group.finish();
    println!("(throughput in elements/s is generated tokens/s)");
}

criterion_group!(benches, bench_generate);
criterion_main!(benches);
