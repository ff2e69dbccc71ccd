//! Kernels in the style the project's own will have (`tests/fixtures/realistic.cu`, compiled by
//! NVRTC 12.9 for compute_80): softmax with float4 and dynamic shared memory, AdamW on bf16 with a
//! grid-stride loop, a 2-D tiled GEMM, GELU on bf16x2, cross-entropy with atomics, and a
//! warp-per-row causal attention with online softmax, each against an f64 Rust reference.

use runtime::emu::{Device, DevicePtr, KernelArg, LaunchConfig, Module};

use crate::common::{f32s, from_bytes, Rng};

const PTX: &str = include_str!("../fixtures/realistic.ptx");

fn module() -> Module {
    Module::parse(PTX).unwrap_or_else(|e| panic!("{e}"))
}

fn upload_f32(dev: &mut Device, v: &[f32]) -> DevicePtr {
    let p = dev.alloc(v.len() * 4);
    dev.write(
        p,
        &v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>(),
    )
    .unwrap();
    p
}

fn download_f32(dev: &Device, p: DevicePtr, n: usize) -> Vec<f32> {
    f32s(&from_bytes(&dev.read(p, n * 4).unwrap()))
}

fn random(seed: u64, n: usize, scale: f32) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    (0..n).map(|_| rng.uniform() * scale).collect()
}

fn assert_close(what: &str, got: &[f32], want: &[f64], atol: f64, rtol: f64) {
    assert_eq!(got.len(), want.len());
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g as f64 - w).abs() <= atol + rtol * w.abs(),
            "{what}[{i}]: got {g}, want {w}"
        );
    }
}

#[test]
fn softmax_rows() {
    let m = module();
    for (rows, v, threads) in [(3usize, 1000usize, 256u32), (2, 769, 128), (4, 33, 64)] {
        let x = random(v as u64, rows * v, 6.0);
        let mut dev = Device::new();
        let px = upload_f32(&mut dev, &x);
        let py = dev.alloc(rows * v * 4);
        let cfg = LaunchConfig {
            grid: [rows as u32, 1, 1],
            block: [threads, 1, 1],
            dynamic_shared_bytes: 32 * 4,
        };
        dev.launch(
            &m,
            "softmax_fwd_f32",
            cfg,
            &[
                KernelArg::Ptr(py),
                KernelArg::Ptr(px),
                KernelArg::I32(v as i32),
            ],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let want: Vec<f64> = x
            .chunks(v)
            .flat_map(|r| {
                let mx = r.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b as f64));
                let s: f64 = r.iter().map(|&b| (b as f64 - mx).exp()).sum();
                r.iter()
                    .map(move |&b| (b as f64 - mx).exp() / s)
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_close(
            "softmax",
            &download_f32(&dev, py, rows * v),
            &want,
            1e-7,
            2e-6,
        );
    }
}

#[test]
fn adamw_bf16_grid_stride() {
    let m = module();
    let n = 3000usize;
    let (master, g) = (random(1, n, 1.0), random(2, n, 0.1));
    let (mom, var) = (
        random(3, n, 0.01),
        random(4, n, 0.01)
            .iter()
            .map(|x| x.abs())
            .collect::<Vec<_>>(),
    );
    let (lr, b1, b2, eps, wd, step) = (1e-3f32, 0.9f32, 0.999f32, 1e-8f32, 0.01f32, 7);
    let mut dev = Device::new();
    let pp = dev.alloc(n * 2);
    let (pw, pg, pm, pv) = (
        upload_f32(&mut dev, &master),
        upload_f32(&mut dev, &g),
        upload_f32(&mut dev, &mom),
        upload_f32(&mut dev, &var),
    );
    let args = [
        KernelArg::Ptr(pp),
        KernelArg::Ptr(pw),
        KernelArg::Ptr(pg),
        KernelArg::Ptr(pm),
        KernelArg::Ptr(pv),
        KernelArg::U64(n as u64),
        KernelArg::F32(lr),
        KernelArg::F32(b1),
        KernelArg::F32(b2),
        KernelArg::F32(eps),
        KernelArg::F32(wd),
        KernelArg::I32(step),
    ];
    // Fewer threads than elements: every thread loops.
    dev.launch(&m, "adamw_bf16", LaunchConfig::linear(3, 128), &args)
        .unwrap_or_else(|e| panic!("{e}"));
    let w_out = download_f32(&dev, pw, n);
    let p_out: Vec<u16> = dev
        .read(pp, n * 2)
        .unwrap()
        .chunks(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    let (bc1, bc2) = (1.0 - (b1 as f64).powi(step), 1.0 - (b2 as f64).powi(step));
    for i in 0..n {
        let mi = b1 as f64 * mom[i] as f64 + (1.0 - b1 as f64) * g[i] as f64;
        let vi = b2 as f64 * var[i] as f64 + (1.0 - b2 as f64) * (g[i] as f64).powi(2);
        let w = master[i] as f64;
        let want = w - lr as f64 * ((mi / bc1) / ((vi / bc2).sqrt() + eps as f64) + wd as f64 * w);
        assert!(
            (w_out[i] as f64 - want).abs() <= 1e-6 * (1.0 + want.abs()),
            "master[{i}]: {} vs {want}",
            w_out[i]
        );
        assert_eq!(
            p_out[i],
            half::bf16::from_f32(w_out[i]).to_bits(),
            "bf16 copy [{i}]"
        );
    }
}

#[test]
fn tiled_gemm_2d_blocks() {
    let m = module();
    let (mm, nn, kk) = (37usize, 29usize, 45usize);
    let (a, b) = (random(5, mm * kk, 1.0), random(6, kk * nn, 1.0));
    let mut dev = Device::new();
    let (pa, pb) = (upload_f32(&mut dev, &a), upload_f32(&mut dev, &b));
    let pc = dev.alloc(mm * nn * 4);
    let cfg = LaunchConfig {
        grid: [(nn as u32).div_ceil(16), (mm as u32).div_ceil(16), 1],
        block: [16, 16, 1],
        dynamic_shared_bytes: 0,
    };
    let args = [
        KernelArg::Ptr(pc),
        KernelArg::Ptr(pa),
        KernelArg::Ptr(pb),
        KernelArg::I32(mm as i32),
        KernelArg::I32(nn as i32),
        KernelArg::I32(kk as i32),
    ];
    let report = dev
        .launch(&m, "gemm_tiled_f32", cfg, &args)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut want = vec![0f64; mm * nn];
    for i in 0..mm {
        for j in 0..nn {
            want[i * nn + j] = (0..kk)
                .map(|k| a[i * kk + k] as f64 * b[k * nn + j] as f64)
                .sum();
        }
    }
    assert_close("gemm", &download_f32(&dev, pc, mm * nn), &want, 1e-5, 1e-5);
    // Padded As[16][17] rows avoid bank conflicts on the column reads of the inner loop.
    assert!(report.counters.barriers > 0);
}

#[test]
fn gelu_bf16x2() {
    let m = module();
    let n2 = 301usize;
    let x: Vec<f32> = random(8, 2 * n2, 4.0)
        .iter()
        .map(|&v| half::bf16::from_f32(v).to_f32())
        .collect();
    let mut dev = Device::new();
    let px = dev.alloc(n2 * 4);
    dev.write(
        px,
        &x.iter()
            .flat_map(|&v| half::bf16::from_f32(v).to_le_bytes())
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    let py = dev.alloc(n2 * 4);
    dev.launch(
        &m,
        "gelu_fwd_bf16",
        LaunchConfig::linear(3, 128),
        &[
            KernelArg::Ptr(py),
            KernelArg::Ptr(px),
            KernelArg::I32(n2 as i32),
        ],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let y: Vec<f32> = dev
        .read(py, n2 * 4)
        .unwrap()
        .chunks(2)
        .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
        .collect();
    let want: Vec<f64> = x
        .iter()
        .map(|&u| {
            let u = u as f64;
            0.5 * u * (1.0 + (0.7978845608 * (u + 0.044715 * u * u * u)).tanh())
        })
        .collect();
    assert_close("gelu", &y, &want, 1e-3, 8e-3);
}

#[test]
fn cross_entropy_with_atomic_mean() {
    let m = module();
    let (rows, v, ignore) = (6usize, 517usize, -100);
    let logits = random(9, rows * v, 5.0);
    let targets: Vec<i32> = (0..rows)
        .map(|r| if r == 2 { ignore } else { (r * 97 % v) as i32 })
        .collect();
    let mut dev = Device::new();
    let pl = upload_f32(&mut dev, &logits);
    let pt = dev.alloc(rows * 4);
    dev.write(
        pt,
        &targets
            .iter()
            .flat_map(|t| t.to_le_bytes())
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    let (psum, plosses) = (dev.alloc(4), dev.alloc(rows * 4));
    let args = [
        KernelArg::Ptr(psum),
        KernelArg::Ptr(plosses),
        KernelArg::Ptr(pl),
        KernelArg::Ptr(pt),
        KernelArg::I32(v as i32),
        KernelArg::I32(ignore),
    ];
    dev.launch(
        &m,
        "xent_fwd_f32",
        LaunchConfig::linear(rows as u32, 160),
        &args,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let want: Vec<f64> = logits
        .chunks(v)
        .zip(&targets)
        .map(|(r, &t)| {
            if t == ignore {
                return 0.0;
            }
            let mx = r.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b as f64));
            let lse = mx + r.iter().map(|&b| (b as f64 - mx).exp()).sum::<f64>().ln();
            lse - r[t as usize] as f64
        })
        .collect();
    assert_close(
        "losses",
        &download_f32(&dev, plosses, rows),
        &want,
        1e-5,
        1e-5,
    );
    let mean = want.iter().sum::<f64>() / rows as f64;
    assert_close("mean", &download_f32(&dev, psum, 1), &[mean], 1e-5, 1e-5);
}

#[test]
fn causal_attention_warp_per_row() {
    let m = module();
    let (t, hs) = (19usize, 72usize);
    let (q, k, v) = (
        random(10, t * hs, 1.0),
        random(11, t * hs, 1.0),
        random(12, t * hs, 1.0),
    );
    let scale = 1.0 / (hs as f32).sqrt();
    let mut dev = Device::new();
    let (pq, pk, pv) = (
        upload_f32(&mut dev, &q),
        upload_f32(&mut dev, &k),
        upload_f32(&mut dev, &v),
    );
    let po = dev.alloc(t * hs * 4);
    let args = [
        KernelArg::Ptr(po),
        KernelArg::Ptr(pq),
        KernelArg::Ptr(pk),
        KernelArg::Ptr(pv),
        KernelArg::I32(t as i32),
        KernelArg::I32(hs as i32),
        KernelArg::F32(scale),
    ];
    dev.launch(
        &m,
        "attn_row_f32",
        LaunchConfig::linear((t as u32).div_ceil(4), 128),
        &args,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut want = vec![0f64; t * hs];
    for i in 0..t {
        let scores: Vec<f64> = (0..=i)
            .map(|j| {
                (0..hs)
                    .map(|h| q[i * hs + h] as f64 * k[j * hs + h] as f64)
                    .sum::<f64>()
                    * scale as f64
            })
            .collect();
        let mx = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let den: f64 = scores.iter().map(|s| (s - mx).exp()).sum();
        for h in 0..hs {
            want[i * hs + h] = (0..=i)
                .map(|j| (scores[j] - mx).exp() / den * v[j * hs + h] as f64)
                .sum();
        }
    }
    assert_close(
        "attention",
        &download_f32(&dev, po, t * hs),
        &want,
        2e-6,
        2e-5,
    );
}

#[test]
fn accurate_trig_exp_log_including_large_arguments() {
    let m = module();
    let mut rng = Rng::new(13);
    let mut x: Vec<f32> = (0..200).map(|_| rng.uniform() * 10.0).collect();
    x.extend((0..56).map(|_| rng.uniform() * 3.0e5));
    x.extend([1.0e30f32, -7.5e12, 123456.79, 0.0, -0.0, 1e-30]);
    let n = x.len();
    let mut dev = Device::new();
    let px = upload_f32(&mut dev, &x);
    let po = dev.alloc(n * 16);
    dev.launch(
        &m,
        "trig_f32",
        LaunchConfig::linear((n as u32).div_ceil(64), 64),
        &[
            KernelArg::Ptr(po),
            KernelArg::Ptr(px),
            KernelArg::I32(n as i32),
        ],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let out = download_f32(&dev, po, n * 4);
    for (i, &v) in x.iter().enumerate() {
        let v64 = v as f64;
        // CUDA: sinf/cosf/expf/logf have at most 2 ulp error (1 ulp for logf); allow 2 ulp of
        // the result's magnitude (or absolute 2^-24 near zero).
        let check = |what: &str, got: f32, want: f64| {
            let ulp = want.abs().max(2f64.powi(-126)) * 2f64.powi(-23);
            // Near a zero of sin/cos the error bound is absolute.
            let tol = 2.0 * ulp
                + if want.abs() < 1e-3 {
                    2f64.powi(-24)
                } else {
                    0.0
                };
            let ok = got as f64 == want || (got as f64 - want).abs() <= tol;
            assert!(ok, "{what}({v}): got {got}, want {want}");
        };
        check("sin", out[4 * i], v64.sin());
        check("cos", out[4 * i + 1], v64.cos());
        check("exp", out[4 * i + 2], ((v * 1e-4f32) as f64).exp());
        check("log", out[4 * i + 3], ((v.abs() + 1.0) as f64).ln());
    }
}
