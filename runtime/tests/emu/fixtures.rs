//! Kernels compiled by NVRTC 12.9 (`tests/fixtures/*.cu` → `*.ptx`, `--gpu-architecture=compute_80`)
//! run on the emulator and compared with Rust references.

use runtime::emu::{Device, KernelArg, LaunchConfig, Module};

use crate::common::{f32s, Rng};

const LAYERNORM_PTX: &str = include_str!("../fixtures/layernorm.ptx");
const LOGPROB_PTX: &str = include_str!("../fixtures/logprob.ptx");

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn bf16_round(x: f32) -> f32 {
    half::bf16::from_f32(x).to_f32()
}

/// Rows of `x` normalised, scaled and shifted, with each row's mean and rstd (f64 reference).
fn layernorm_ref(
    x: &[f32],
    w: &[f32],
    b: &[f32],
    c: usize,
    eps: f32,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let mut y = Vec::new();
    let (mut means, mut rstds) = (Vec::new(), Vec::new());
    for row in x.chunks(c) {
        let mean = row.iter().map(|&v| v as f64).sum::<f64>() / c as f64;
        let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / c as f64;
        let rstd = 1.0 / (var + eps as f64).sqrt();
        for (i, &v) in row.iter().enumerate() {
            y.push((v as f64 - mean) * rstd * w[i] as f64 + b[i] as f64);
        }
        means.push(mean);
        rstds.push(rstd);
    }
    (y, means, rstds)
}

fn assert_close(what: &str, got: &[f32], want: &[f64], atol: f64, rtol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (g as f64 - w).abs();
        assert!(
            err <= atol + rtol * w.abs(),
            "{what}[{i}]: got {g}, want {w} (err {err:e})"
        );
    }
}

fn run_layernorm(bf16: bool, n: usize, c: usize, warps_per_block: u32) {
    let mut rng = Rng::new(7 + n as u64 * 31 + c as u64);
    let x: Vec<f32> = (0..n * c).map(|_| rng.uniform() * 3.0 + 0.5).collect();
    let x: Vec<f32> = if bf16 {
        x.iter().map(|&v| bf16_round(v)).collect()
    } else {
        x
    };
    let w: Vec<f32> = (0..c).map(|_| 1.0 + 0.5 * rng.uniform()).collect();
    let b: Vec<f32> = (0..c).map(|_| 0.1 * rng.uniform()).collect();
    let eps = 1e-5f32;
    let module = Module::parse(LAYERNORM_PTX).expect("layernorm.ptx decodes");
    let mut dev = Device::new();
    let elem = if bf16 { 2 } else { 4 };
    let x_bytes: Vec<u8> = if bf16 {
        x.iter()
            .flat_map(|&v| half::bf16::from_f32(v).to_le_bytes())
            .collect()
    } else {
        f32_bytes(&x)
    };
    let (px, pw, pb) = (dev.alloc(n * c * elem), dev.alloc(c * 4), dev.alloc(c * 4));
    let (py, pmean, prstd) = (dev.alloc(n * c * elem), dev.alloc(n * 4), dev.alloc(n * 4));
    dev.write(px, &x_bytes).unwrap();
    dev.write(pw, &f32_bytes(&w)).unwrap();
    dev.write(pb, &f32_bytes(&b)).unwrap();
    let kernel = if bf16 {
        "layernorm_fwd_bf16"
    } else {
        "layernorm_fwd_f32"
    };
    let cfg = LaunchConfig::linear((n as u32).div_ceil(warps_per_block), 32 * warps_per_block);
    let args = [
        KernelArg::Ptr(py),
        KernelArg::Ptr(pmean),
        KernelArg::Ptr(prstd),
        KernelArg::Ptr(px),
        KernelArg::Ptr(pw),
        KernelArg::Ptr(pb),
        KernelArg::I32(n as i32),
        KernelArg::I32(c as i32),
        KernelArg::F32(eps),
    ];
    let report = dev
        .launch(&module, kernel, cfg, &args)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(report.thread_instructions > 0);
    let y: Vec<f32> = if bf16 {
        dev.read(py, n * c * 2)
            .unwrap()
            .chunks(2)
            .map(|h| half::bf16::from_le_bytes([h[0], h[1]]).to_f32())
            .collect()
    } else {
        f32s(&crate::common::from_bytes(
            &dev.read(py, n * c * 4).unwrap(),
        ))
    };
    let mean = f32s(&crate::common::from_bytes(&dev.read(pmean, n * 4).unwrap()));
    let rstd = f32s(&crate::common::from_bytes(&dev.read(prstd, n * 4).unwrap()));
    let (y_ref, mean_ref, rstd_ref) = layernorm_ref(&x, &w, &b, c, eps);
    let (atol, rtol) = if bf16 { (1e-2, 1e-2) } else { (1e-5, 1e-5) };
    assert_close("y", &y, &y_ref, atol, rtol);
    assert_close("mean", &mean, &mean_ref, 1e-6, 1e-6);
    assert_close("rstd", &rstd, &rstd_ref, 1e-5, 1e-5);
}

#[test]
fn layernorm_f32_matches_reference() {
    run_layernorm(false, 5, 768, 4);
    run_layernorm(false, 7, 33, 2);
    run_layernorm(false, 3, 1, 1);
    run_layernorm(false, 9, 769, 8);
}

#[test]
fn layernorm_bf16_matches_reference() {
    run_layernorm(true, 6, 256, 4);
    run_layernorm(true, 3, 13, 2);
}

fn run_logprob(bf16: bool, n: usize, v: usize, threads: u32) {
    let mut rng = Rng::new(11 + v as u64);
    let logits: Vec<f32> = (0..n * v).map(|_| rng.uniform() * 8.0).collect();
    let logits: Vec<f32> = if bf16 {
        logits.iter().map(|&x| bf16_round(x)).collect()
    } else {
        logits
    };
    let targets: Vec<i32> = (0..n).map(|i| ((i * 7919 + 3) % v) as i32).collect();
    let module = Module::parse(LOGPROB_PTX).expect("logprob.ptx decodes");
    let mut dev = Device::new();
    let bytes: Vec<u8> = if bf16 {
        logits
            .iter()
            .flat_map(|&x| half::bf16::from_f32(x).to_le_bytes())
            .collect()
    } else {
        f32_bytes(&logits)
    };
    let (pl, pt, po) = (dev.alloc(bytes.len()), dev.alloc(n * 4), dev.alloc(n * 4));
    dev.write(pl, &bytes).unwrap();
    dev.write(
        pt,
        &targets
            .iter()
            .flat_map(|t| t.to_le_bytes())
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    let kernel = if bf16 {
        "logprob_fwd_bf16"
    } else {
        "logprob_fwd_f32"
    };
    let args = [
        KernelArg::Ptr(po),
        KernelArg::Ptr(pl),
        KernelArg::Ptr(pt),
        KernelArg::I32(n as i32),
        KernelArg::I32(v as i32),
    ];
    let report = dev
        .launch(
            &module,
            kernel,
            LaunchConfig::linear(n as u32, threads),
            &args,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        report.counters.barriers, n as u64,
        "one __syncthreads per block"
    );
    let out = f32s(&crate::common::from_bytes(&dev.read(po, n * 4).unwrap()));
    let want: Vec<f64> = logits
        .chunks(v)
        .zip(&targets)
        .map(|(row, &t)| {
            let m = row.iter().fold(f64::NEG_INFINITY, |a, &x| a.max(x as f64));
            let lse = m + row.iter().map(|&x| (x as f64 - m).exp()).sum::<f64>().ln();
            row[t as usize] as f64 - lse
        })
        .collect();
    assert_close("logprob", &out, &want, 2e-5, 2e-5);
}

#[test]
fn logprob_f32_matches_reference() {
    run_logprob(false, 4, 50257 / 16, 256);
    run_logprob(false, 3, 7, 64);
    run_logprob(false, 2, 1000, 1024);
    run_logprob(false, 5, 33, 96);
}

#[test]
fn logprob_bf16_matches_reference() {
    run_logprob(true, 3, 769, 128);
}
