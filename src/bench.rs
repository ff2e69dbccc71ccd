//! `rlhf bench`: times the core ops on a backend and reports throughput beside time (GFLOP/s for
//! compute-bound ops, GB/s for memory-bound ones). For careful comparisons use the criterion
//! benches (`cargo bench`); this command is the quick, scriptable view.

use std::time::Instant;

use clap::Args;
use serde::Serialize;
use runtime::ops::gemm::GemmSpec;
use runtime::{Backend, Cpu, DType, Result, Tensor};

use crate::error::CliError;

#[derive(Args)]
pub struct BenchArgs {
    /// Rows N = B·T of the activations.
    #[arg(long, default_value_t = 1024)]
    rows: usize,
    /// Model width C.
    #[arg(long, default_value_t = 768)]
    channels: usize,
    /// Vocabulary size V for the log-prob.
    #[arg(long, default_value_t = 32768)]
    vocab: usize,
    /// Timed repetitions per op (the median is reported).
    #[arg(long, default_value_t = 5)]
    repeats: usize,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

/// One measured op: its median time and the work it does.
#[derive(Serialize)]
struct Measurement {
    op: &'static str,
    shape: String,
    seconds: f64,
    flops: f64,
    bytes: f64,
}

fn median_seconds(repeats: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    let mut times = Vec::with_capacity(repeats);
    for _ in 0..repeats.max(1) {
        let start = Instant::now();
        f()?;
        times.push(start.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

fn filled<B: Backend>(backend: &B, dims: &[usize], scale: f32) -> Result<Tensor<B>> {
    let n: usize = dims.iter().product();
    let data: Vec<f32> = (0..n).map(|i| ((i * 7919 % 1000) as f32 - 500.0) * scale).collect();
    backend.upload_f32(dims, &data, DType::F32)
}

fn measure<B: Backend>(backend: &B, args: &BenchArgs) -> Result<Vec<Measurement>> {
    let (n, c, v, r) = (args.rows, args.channels, args.vocab, args.repeats);
    let mut out = Vec::new();

    let x = filled(backend, &[n, c], 1e-3)?;
    let w = filled(backend, &[4 * c, c], 1e-3)?;
    let dy = filled(backend, &[n, 4 * c], 1e-3)?;
    let gemm_flops = 2.0 * (n * c * 4 * c) as f64;
    let seconds = median_seconds(r, || backend.gemm(&x, &w, None, GemmSpec::nt()).map(drop))?;
    let shape = format!("[{n},{c}]x[{},{c}]^T", 4 * c);
    out.push(Measurement { op: "gemm fwd", shape: shape.clone(), seconds, flops: gemm_flops, bytes: 0.0 });
    let seconds =
        median_seconds(r, || backend.gemm_bwd(&x, &w, &dy, false, GemmSpec::nt()).map(drop))?;
    out.push(Measurement { op: "gemm bwd", shape, seconds, flops: 2.0 * gemm_flops, bytes: 0.0 });

    let logits = filled(backend, &[n, v], 1e-2)?;
    let targets: Vec<u32> = (0..n).map(|i| (i * 31 % v) as u32).collect();
    let targets = backend.upload_u32(&[n], &targets)?;
    let logits_bytes = (n * v * 4) as f64;
    let seconds = median_seconds(r, || backend.logprob_fwd(&logits, &targets, 1.0).map(drop))?;
    let shape = format!("[{n},{v}]");
    out.push(Measurement { op: "logprob fwd", shape: shape.clone(), seconds, flops: 0.0, bytes: logits_bytes });
    let lp = backend.logprob_fwd(&logits, &targets, 1.0)?;
    let seconds = median_seconds(r, || {
        backend.logprob_bwd(&logits, &targets, &lp.lse, &lp.entropy, &lp.logprob, Some(&lp.entropy), 1.0).map(drop)
    })?;
    out.push(Measurement { op: "logprob bwd", shape, seconds, flops: 0.0, bytes: 2.0 * logits_bytes });

    let (heads, hs) = (c / 64, 64);
    let t = 256.min(n);
    let b = (n / t).max(1);
    let q = filled(backend, &[b, t, heads, hs], 1e-2)?;
    let valid = backend.upload_u32(&[b, t], &vec![1; b * t])?;
    let scale = 1.0 / (hs as f32).sqrt();
    let attn_flops = 2.0 * (b * heads * t * t * hs) as f64; // causal: half of 4·B·NH·T²·HS
    let seconds = median_seconds(r, || backend.attention_fwd(&q, &q, &q, &valid, scale).map(drop))?;
    let shape = format!("B={b} T={t} NH={heads} HS={hs}");
    out.push(Measurement { op: "attention fwd", shape: shape.clone(), seconds, flops: attn_flops, bytes: 0.0 });
    let fwd = backend.attention_fwd(&q, &q, &q, &valid, scale)?;
    let seconds = median_seconds(r, || {
        backend.attention_bwd(&q, &q, &q, &valid, &fwd.out, &fwd.lse, &q, scale).map(drop)
    })?;
    out.push(Measurement { op: "attention bwd", shape, seconds, flops: 2.5 * attn_flops, bytes: 0.0 });

    let lw = filled(backend, &[c], 1e-3)?;
    let lb = filled(backend, &[c], 1e-3)?;
    let ln_bytes = (2 * n * c * 4) as f64;
    let seconds = median_seconds(r, || backend.layernorm_fwd(&x, &lw, &lb, 1e-5).map(drop))?;
    let shape = format!("[{n},{c}]");
    out.push(Measurement { op: "layernorm fwd", shape: shape.clone(), seconds, flops: 0.0, bytes: ln_bytes });
    let ln = backend.layernorm_fwd(&x, &lw, &lb, 1e-5)?;
    let seconds = median_seconds(r, || {
        backend.layernorm_bwd(&x, &x, &lw, &ln.mean, &ln.rstd).map(drop)
    })?;
    out.push(Measurement { op: "layernorm bwd", shape, seconds, flops: 0.0, bytes: 1.5 * ln_bytes });
    Ok(out)
}

fn rate(m: &Measurement) -> String {
    if m.flops > 0.0 {
        format!("{:8.1} GFLOP/s", m.flops / m.seconds / 1e9)
    } else {
        format!("{:8.2} GB/s", m.bytes / m.seconds / 1e9)
    }
}

pub fn run(args: &BenchArgs) -> std::result::Result<(), CliError> {
    if args.rows == 0 || args.channels < 64 || args.vocab == 0 {
        return Err(CliError::Usage("bench needs --rows >= 1, --channels >= 64, --vocab >= 1".into()));
    }
    let backend = Cpu::new();
    let results = measure(&backend, args)?;
    if args.json {
        let report = serde_json::json!({ "backend": backend.name(), "results": results });
        println!("{report}");
    } else {
        println!("backend: {}  (median of {} runs)", backend.name(), args.repeats);
        for m in &results {
            println!("{:<14} {:<28} {:9.3} ms {}", m.op, m.shape, m.seconds * 1e3, rate(m));
        }
    }
    Ok(())
}
