//! The project's own kernels that use shared memory and barriers (kernels/src/*.cu, compiled by
//! NVRTC for compute_80) run clean under the sanitizer: no races, no barrier divergence, no
//! uninitialised shared reads, over awkward shapes and several blocks. Each launch also checks
//! a result against a small f64 reference, so a clean run is a run that did the work. Needs the
//! CUDA tools (`scripts/setup-cuda-tools.sh`), not a GPU.

use runtime::compile::{Arch, Compiler};
use runtime::emu::{
    Device, DevicePtr, KernelArg, LaunchConfig, LaunchReport, Module, SanitizerMode,
};

use crate::common::{f32s, from_bytes, Rng};

fn module(op: &str) -> Module {
    let compiler = Compiler::locate().unwrap_or_else(|e| panic!("{e}"));
    let source = kernels::source(op).expect("an embedded source");
    let ptx = compiler
        .compile_source(source, Arch::Sm80)
        .unwrap_or_else(|e| panic!("{e}"))
        .ptx;
    Module::parse(&ptx).unwrap_or_else(|e| panic!("{op}: {e}"))
}

fn device() -> Device {
    let mut dev = Device::new();
    dev.set_sanitizer_mode(SanitizerMode::Collect);
    dev
}

/// Uploads `values` as f32, or as bf16 when `bf16`; returns the pointer and the values as
/// stored.
fn upload(dev: &mut Device, values: &[f32], bf16: bool) -> (DevicePtr, Vec<f32>) {
    let (bytes, stored): (Vec<u8>, Vec<f32>) = if bf16 {
        let h: Vec<half::bf16> = values.iter().map(|&v| half::bf16::from_f32(v)).collect();
        (
            h.iter().flat_map(|v| v.to_bits().to_le_bytes()).collect(),
            h.iter().map(|v| v.to_f32()).collect(),
        )
    } else {
        (
            values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            values.to_vec(),
        )
    };
    let p = dev.alloc(bytes.len());
    dev.write(p, &bytes).unwrap();
    (p, stored)
}

fn upload_u32(dev: &mut Device, values: &[u32]) -> DevicePtr {
    let p = dev.alloc(values.len() * 4);
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    dev.write(p, &bytes).unwrap();
    p
}

fn download_f32(dev: &Device, p: DevicePtr, n: usize) -> Vec<f32> {
    f32s(&from_bytes(&dev.read(p, n * 4).unwrap()))
}

fn random(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.uniform() * 2.0).collect()
}

/// Launches and checks the sanitizer found nothing and had shared memory and barriers to watch.
fn launch_clean(
    dev: &mut Device,
    module: &Module,
    kernel: &str,
    cfg: LaunchConfig,
    args: &[KernelArg],
) -> LaunchReport {
    let report = dev
        .launch(module, kernel, cfg, args)
        .unwrap_or_else(|e| panic!("{kernel}: {e}"));
    assert!(
        report.findings.is_empty(),
        "{kernel} {cfg:?}: {:#?}",
        report.findings
    );
    let c = &report.counters;
    assert!(
        c.barriers > 0 && c.shared_load_requests > 0,
        "{kernel}: {c:?}"
    );
    report
}

fn assert_close(what: &str, got: &[f32], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g as f64 - w).abs() <= tol * (1.0 + w.abs()),
            "{what}[{i}]: got {g}, want {w}"
        );
    }
}

/// Column sums over partial rows of `c` channels stored `stride` floats apart (the kernels pad
/// each row to a multiple of 8 floats, a 32-byte sector).
fn fold(partials: &[f32], stride: usize, c: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; c];
    for row in partials.chunks(stride) {
        for (o, v) in out.iter_mut().zip(row) {
            *o += v;
        }
    }
    out
}

#[test]
fn layernorm_and_rmsnorm_backward_run_clean() {
    let layernorm = module("layernorm");
    let rmsnorm = module("rmsnorm");
    for (bf16, n, c, blocks, threads) in [
        (false, 7, 33, 3, 64),
        (true, 5, 769, 2, 96),
        (false, 1, 13, 4, 32),
    ] {
        let suffix = if bf16 { "bf16" } else { "f32" };
        let mut rng = Rng::new(n as u64 * 1000 + c as u64);
        let mut dev = device();
        let (dy, dy_v) = upload(&mut dev, &random(&mut rng, n * c), bf16);
        let (x, x_v) = upload(&mut dev, &random(&mut rng, n * c), bf16);
        let (w, _) = upload(&mut dev, &random(&mut rng, c), bf16);
        let (mean, mean_v) = upload(&mut dev, &random(&mut rng, n), false);
        let rstd_v: Vec<f32> = (0..n).map(|_| 1.0 + rng.uniform().abs()).collect();
        let (rstd, _) = upload(&mut dev, &rstd_v, false);
        let dx = dev.alloc(n * c * 4);
        let stride = c.next_multiple_of(8);
        let partial = dev.alloc(2 * blocks * stride * 4);
        let dims = [KernelArg::U32(n as u32), KernelArg::U32(c as u32)];
        let cfg = LaunchConfig {
            dynamic_shared_bytes: 2 * c as u32 * 4,
            ..LaunchConfig::linear(blocks as u32, threads)
        };
        let mut args: Vec<KernelArg> = [dy, x, w, mean, rstd, dx, partial]
            .map(KernelArg::Ptr)
            .to_vec();
        args.extend_from_slice(&dims);
        launch_clean(
            &mut dev,
            &layernorm,
            &format!("layernorm_bwd_{suffix}"),
            cfg,
            &args,
        );
        // dbias = Σ_rows dy: the second half of the partials, folded over blocks.
        let parts = download_f32(&dev, partial, 2 * blocks * stride);
        let want: Vec<f64> = (0..c)
            .map(|j| (0..n).map(|r| dy_v[r * c + j] as f64).sum())
            .collect();
        assert_close(
            "layernorm dbias",
            &fold(&parts[blocks * stride..], stride, c),
            &want,
            1e-5,
        );
        let want: Vec<f64> = (0..c)
            .map(|j| {
                (0..n)
                    .map(|r| {
                        let xhat = (x_v[r * c + j] as f64 - mean_v[r] as f64) * rstd_v[r] as f64;
                        dy_v[r * c + j] as f64 * xhat
                    })
                    .sum()
            })
            .collect();
        assert_close(
            "layernorm dweight",
            &fold(&parts[..blocks * stride], stride, c),
            &want,
            1e-5,
        );

        let cfg = LaunchConfig {
            dynamic_shared_bytes: c as u32 * 4,
            ..cfg
        };
        let mut args: Vec<KernelArg> = [dy, x, w, rstd, dx, partial].map(KernelArg::Ptr).to_vec();
        args.extend_from_slice(&dims);
        launch_clean(
            &mut dev,
            &rmsnorm,
            &format!("rmsnorm_bwd_{suffix}"),
            cfg,
            &args,
        );
        let parts = download_f32(&dev, partial, blocks * stride);
        let want: Vec<f64> = (0..c)
            .map(|j| {
                (0..n)
                    .map(|r| dy_v[r * c + j] as f64 * x_v[r * c + j] as f64 * rstd_v[r] as f64)
                    .sum()
            })
            .collect();
        assert_close("rmsnorm dweight", &fold(&parts, stride, c), &want, 1e-5);
    }
}

#[test]
fn cross_entropy_forward_runs_clean() {
    let module = module("cross_entropy");
    for (bf16, n, v, threads) in [(false, 3, 100, 64), (true, 2, 1000, 256), (false, 4, 7, 32)] {
        let suffix = if bf16 { "bf16" } else { "f32" };
        let mut rng = Rng::new(v as u64);
        let mut dev = device();
        let (logits, logits_v) = upload(&mut dev, &random(&mut rng, n * v), bf16);
        let targets: Vec<u32> = (0..n as u32).map(|r| (r * 5) % v as u32).collect();
        let targets_p = upload_u32(&mut dev, &targets);
        let (loss, lse) = (dev.alloc(n * 4), dev.alloc(n * 4));
        let args = [
            KernelArg::Ptr(logits),
            KernelArg::Ptr(targets_p),
            KernelArg::Ptr(loss),
            KernelArg::Ptr(lse),
            KernelArg::U32(n as u32),
            KernelArg::U32(v as u32),
            KernelArg::U32(u32::MAX),
        ];
        let cfg = LaunchConfig::linear(n as u32, threads);
        launch_clean(
            &mut dev,
            &module,
            &format!("cross_entropy_fwd_{suffix}"),
            cfg,
            &args,
        );
        let want: Vec<f64> = logits_v
            .chunks(v)
            .map(|row| row.iter().map(|&x| (x as f64).exp()).sum::<f64>().ln())
            .collect();
        assert_close(
            "cross-entropy lse",
            &download_f32(&dev, lse, n),
            &want,
            1e-5,
        );
    }
}

#[test]
fn embedding_rank_runs_clean() {
    // N = 300 ids stream through shared memory in two tiles of 256, over blocks of 128 threads
    // of which the last has 84 threads past N that still reach every barrier.
    let module = module("embedding");
    let n = 300usize;
    let mut rng = Rng::new(3);
    let ids: Vec<u32> = (0..n).map(|_| (rng.next_u64() % 17) as u32).collect();
    let mut dev = device();
    let ids_p = upload_u32(&mut dev, &ids);
    let (order, sorted) = (dev.alloc(n * 4), dev.alloc(n * 4));
    let args = [
        KernelArg::Ptr(ids_p),
        KernelArg::Ptr(order),
        KernelArg::Ptr(sorted),
        KernelArg::U32(n as u32),
    ];
    let cfg = LaunchConfig::linear(n.div_ceil(128) as u32, 128);
    launch_clean(&mut dev, &module, "embedding_bwd_rank_u32", cfg, &args);
    let order = from_bytes(&dev.read(order, n * 4).unwrap());
    let sorted = from_bytes(&dev.read(sorted, n * 4).unwrap());
    let mut want: Vec<u32> = (0..n as u32).collect();
    want.sort_by_key(|&i| (ids[i as usize], i));
    assert_eq!(order, want);
    let want_ids: Vec<u32> = want.iter().map(|&i| ids[i as usize]).collect();
    assert_eq!(sorted, want_ids);
}

#[test]
fn a_block_reduction_missing_its_trailing_barrier_is_a_race() {
    // common.cuh's block_sum without the barrier that lets the caller reuse `scratch`: in
    // rmsnorm_bwd's next row, lane 0 overwrites scratch[0] while the lanes of its warp have read
    // it with no barrier (or __syncwarp) since.
    let header = kernels::header("common.cuh").expect("common.cuh").code;
    let broken = header.replacen(
        "    __syncthreads();\n    return total;",
        "    return total;",
        1,
    );
    assert_ne!(broken, header, "block_sum's trailing barrier not found");
    let source = kernels::source("rmsnorm").expect("rmsnorm.cu");
    let code = source.code.replace("#include \"common.cuh\"", &broken);
    let compiler = Compiler::locate().unwrap_or_else(|e| panic!("{e}"));
    let ptx = compiler
        .compile(
            "rmsnorm_no_trailing_barrier",
            "rmsnorm.cu",
            &code,
            Arch::Sm80,
        )
        .unwrap_or_else(|e| panic!("{e}"))
        .ptx;
    let module = Module::parse(&ptx).unwrap_or_else(|e| panic!("{e}"));
    let (n, c) = (3usize, 64usize);
    let mut dev = Device::new();
    let mut rng = Rng::new(5);
    let (x, _) = upload(&mut dev, &random(&mut rng, n * c), false);
    let (w, _) = upload(&mut dev, &random(&mut rng, c), false);
    let (rstd, _) = upload(&mut dev, &vec![1.0; n], false);
    let (dx, partial) = (dev.alloc(n * c * 4), dev.alloc(c * 4));
    let mut args: Vec<KernelArg> = [x, x, w, rstd, dx, partial].map(KernelArg::Ptr).to_vec();
    args.extend([KernelArg::U32(n as u32), KernelArg::U32(c as u32)]);
    let cfg = LaunchConfig {
        dynamic_shared_bytes: c as u32 * 4,
        ..LaunchConfig::linear(1, 64)
    };
    match dev.launch(&module, "rmsnorm_bwd_f32", cfg, &args) {
        Err(runtime::emu::EmuError::Sanitizer(f)) => {
            assert_eq!(f.kind, runtime::emu::FindingKind::SharedRace, "{f}");
            assert!(f.text.starts_with("st.shared"), "{f}");
            assert_eq!(f.pos.thread, [0, 0, 0], "{f}");
            let other = f.other.as_ref().expect("the reader");
            assert!(other.text.starts_with("ld.shared"), "{f}");
            assert!(other.thread[0] < 32, "{f}");
        }
        other => panic!("expected a race, got {other:?}"),
    }
    // The same launch with the sanitizer off runs to the end (the emulator's warp order hides
    // the race).
    dev.set_sanitizer(false);
    dev.launch(&module, "rmsnorm_bwd_f32", cfg, &args).unwrap();
}
