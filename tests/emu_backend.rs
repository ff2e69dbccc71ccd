//! The Emu backend beyond the shared op tests (tests/ops, which run on Emu too): memory transfers
//! round-trip, tensors free their memory, a tensor of another
//! device is refused, the norm backwards are deterministic with more rows than blocks, and the
//! GEMM kernels read what their I/O model says, coalesced.
//! Needs the CUDA tools (`scripts/setup-cuda-tools.sh`).

#[path = "common/mod.rs"]
mod common;

use runtime::ops::gemm::{GemmKernel, GemmSpec};
use runtime::{Backend, Cpu, DType, Emu, Error};

use common::{assert_close, bf16_round, to_f64, Rng};

fn emu() -> Emu {
    Emu::new().unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn transfers_round_trip_and_round_like_the_cpu() {
    let emu = emu();
    let mut rng = Rng::new(1);
    let x = rng.normal_vec(37, 3.0);
    let f32_t = emu.upload_f32(&[37], &x, DType::F32).unwrap();
    assert_eq!(emu.download_f32(&f32_t).unwrap(), x);
    let bf16_t = emu.upload_f32(&[37], &x, DType::BF16).unwrap();
    assert_eq!(emu.download_f32(&bf16_t).unwrap(), bf16_round(&x));
    let cast = emu.cast(&f32_t, DType::BF16).unwrap();
    assert_eq!((cast.dtype(), emu.download_f32(&cast).unwrap()), (DType::BF16, bf16_round(&x)));
    let back = emu.cast(&cast, DType::F32).unwrap();
    assert_eq!((back.dtype(), emu.download_f32(&back).unwrap()), (DType::F32, bf16_round(&x)));

    let ids = [0, 7, u32::MAX, 123_456];
    assert_eq!(emu.download_u32(&emu.upload_u32(&[2, 2], &ids).unwrap()).unwrap(), ids);
    for dtype in [DType::F32, DType::BF16] {
        let z = emu.zeros(&[3, 5], dtype).unwrap();
        assert_eq!((z.dims(), z.dtype()), (&[3, 5][..], dtype));
        assert_eq!(emu.download_f32(&z).unwrap(), vec![0.0; 15]);
    }
    assert_eq!(emu.download_u32(&emu.zeros(&[4], DType::U32).unwrap()).unwrap(), vec![0; 4]);

    let err = emu.upload_f32(&[2, 2], &x[..3], DType::F32).unwrap_err();
    assert!(matches!(err, Error::Shape { op: "upload_f32", .. }), "{err}");
    let err = emu.upload_f32(&[3], &x[..3], DType::U32).unwrap_err();
    assert!(matches!(err, Error::DType { op: "upload_f32", arg: "dtype", .. }), "{err}");
    let err = emu.download_u32(&f32_t).unwrap_err();
    assert!(matches!(err, Error::DType { op: "download_u32", .. }), "{err}");
}

#[test]
fn tensors_free_their_memory_when_dropped() {
    let emu = emu();
    let x = emu.upload_f32(&[64, 33], &vec![1.0; 64 * 33], DType::F32).unwrap();
    let w = emu.upload_f32(&[33], &[1.0; 33], DType::F32).unwrap();
    // Load the module first: its variables (if any) stay mapped.
    drop(emu.rmsnorm_fwd(&x, &w, 1e-5).unwrap());
    let before = emu.allocated_bytes();
    let out = emu.rmsnorm_fwd(&x, &w, 1e-5).unwrap();
    let grads = emu.rmsnorm_bwd(&x, &x, &w, &out.rstd).unwrap();
    assert!(emu.allocated_bytes() > before);
    drop((out, grads));
    // The backward's scratch partials were freed on return, its outputs just now.
    assert_eq!(emu.allocated_bytes(), before);
}

#[test]
fn a_tensor_of_another_emu_is_refused() {
    let (one, other) = (emu(), emu());
    let a = one.zeros(&[4], DType::F32).unwrap();
    let b = other.zeros(&[4], DType::F32).unwrap();
    let err = one.add(&a, &b).unwrap_err();
    assert!(matches!(err, Error::Backend { backend: "emu", .. }), "{err}");
    assert!(err.to_string().contains("another device"), "{err}");
    assert!(one.download_f32(&b).is_err());
    // Clones share their device.
    assert!(one.clone().add(&a, &a).is_ok());
}

/// More rows than the backward kernels' fixed 256 blocks, so blocks take several rows each
/// (b, b + 256, ...): the weight gradients against the Cpu, dx bit for bit the same whatever
/// the batch around a row, and every result the same on a second run.
#[test]
fn norm_backwards_stride_rows_over_blocks_deterministically() {
    let (emu, cpu) = (emu(), Cpu::new());
    let mut rng = Rng::new(2);
    let (rows, c) = (600, 33);
    let x = rng.normal_vec(rows * c, 2.0);
    let dy = rng.normal_vec(rows * c, 1.0);
    let w = rng.normal_vec(c, 1.0);
    let run = |rows: usize| {
        let xt = emu.upload_f32(&[rows, c], &x[..rows * c], DType::F32).unwrap();
        let dyt = emu.upload_f32(&[rows, c], &dy[..rows * c], DType::F32).unwrap();
        let wt = emu.upload_f32(&[c], &w, DType::F32).unwrap();
        let out = emu.layernorm_fwd(&xt, &wt, &wt, 1e-5).unwrap();
        let ln = emu.layernorm_bwd(&dyt, &xt, &wt, &out.mean, &out.rstd).unwrap();
        let out = emu.rmsnorm_fwd(&xt, &wt, 1e-5).unwrap();
        let rms = emu.rmsnorm_bwd(&dyt, &xt, &wt, &out.rstd).unwrap();
        [ln.dx, ln.dweight, ln.dbias, rms.dx, rms.dweight].map(|t| emu.download_f32(&t).unwrap())
    };
    let full = run(rows);
    assert!(run(rows) == full, "a second run differs");
    let few = run(3);
    assert!(few[0] == full[0][..3 * c] && few[3] == full[3][..3 * c], "dx depends on the batch");

    let xt = cpu.upload_f32(&[rows, c], &x, DType::F32).unwrap();
    let dyt = cpu.upload_f32(&[rows, c], &dy, DType::F32).unwrap();
    let wt = cpu.upload_f32(&[c], &w, DType::F32).unwrap();
    let out = cpu.layernorm_fwd(&xt, &wt, &wt, 1e-5).unwrap();
    let ln = cpu.layernorm_bwd(&dyt, &xt, &wt, &out.mean, &out.rstd).unwrap();
    let out = cpu.rmsnorm_fwd(&xt, &wt, 1e-5).unwrap();
    let rms = cpu.rmsnorm_bwd(&dyt, &xt, &wt, &out.rstd).unwrap();
    let want = [ln.dx, ln.dweight, ln.dbias, rms.dx, rms.dweight];
    let names = ["layernorm dx", "layernorm dweight", "layernorm dbias", "rmsnorm dx", "rmsnorm dweight"];
    for ((name, got), want) in names.iter().zip(&full).zip(&want) {
        let want = to_f64(&cpu.download_f32(want).unwrap());
        assert_close(name, got, &want, 1e-4, 1e-4);
    }
}

/// Each GEMM kernel, on a shape that is a multiple of its 64×64 tile, reads exactly the bytes of
/// gemm.cu's I/O model, S·(M·K·⌈N/64⌉ + K·N·⌈M/64⌉), writes C once, with every sector fully
/// used; and the bf16 kernels agree with the Cpu.
#[test]
fn gemm_kernels_read_their_io_model_coalesced() {
    let (m, n, k) = (128usize, 192usize, 96usize);
    let mut rng = Rng::new(11);
    let a = rng.normal_vec(m * k, 1.0);
    let b = rng.normal_vec(n * k, 1.0);
    for (kernel, dtype, entry) in [
        (GemmKernel::Simt, DType::F32, "gemm_fwd_f32"),
        (GemmKernel::Simt, DType::BF16, "gemm_fwd_bf16"),
        (GemmKernel::TensorCore, DType::BF16, "gemm_fwd_mma_bf16"),
    ] {
        let emu = emu().with_gemm_kernel(kernel);
        let (at, bt) = (emu.upload_f32(&[m, k], &a, dtype).unwrap(), emu.upload_f32(&[n, k], &b, dtype).unwrap());
        let c = emu.gemm(&at, &bt, None, GemmSpec::nt()).unwrap();
        let cpu = Cpu::new();
        let want = cpu.gemm(
            &cpu.upload_f32(&[m, k], &a, dtype).unwrap(),
            &cpu.upload_f32(&[n, k], &b, dtype).unwrap(),
            None,
            GemmSpec::nt(),
        ).unwrap();
        let tol = if dtype == DType::F32 { 1e-4 } else { 1.0 / 128.0 };
        assert_close(entry, &emu.download_f32(&c).unwrap(), &to_f64(&cpu.download_f32(&want).unwrap()), tol, tol);
        let stats = emu.kernel_stats();
        let (_, s) = stats.iter().find(|(name, _)| *name == entry).unwrap_or_else(|| panic!("{entry} did not run"));
        let size = dtype.size_in_bytes() as u64;
        let (mu, nu, ku) = (m as u64, n as u64, k as u64);
        let model = size * (mu * ku * nu.div_ceil(64) + ku * nu * mu.div_ceil(64));
        let counters = &s.counters;
        eprintln!(
            "{entry} {m}x{n}x{k}: loads {} B (model {model} B), stores {} B, coalescing {:.3}, \
             shared requests {} load / {} store, bank-conflict wavefronts {}, warp instructions {}",
            counters.global_load_bytes,
            counters.global_store_bytes,
            counters.global_coalescing(),
            counters.shared_load_requests,
            counters.shared_store_requests,
            counters.shared_bank_conflicts(),
            counters.by_class.iter().sum::<u64>(),
        );
        assert_eq!(counters.global_load_bytes, model, "{entry}");
        assert_eq!(counters.global_store_bytes, size * mu * nu, "{entry}");
        assert!(counters.global_coalescing() > 0.99, "{entry}: {}", counters.global_coalescing());
    }
}
