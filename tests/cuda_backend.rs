//! The Cuda backend where it can run, and its errors where it cannot. On a machine without an
//! NVIDIA GPU and driver (CI, development machines) `Cuda::new` must return an error naming what
//! is missing — never panic; with a GPU, transfers, kernels and cuBLAS GEMMs are compared with
//! the Cpu backend. The shared op bodies of `tests/ops` run on Cuda through
//! `backend_tests!(.., cuda; ..)`.

#[path = "common/mod.rs"]
mod common;

use runtime::ops::gemm::GemmSpec;
use runtime::{Backend, Cpu, Cuda, CudaOptions, DType, Error, GemmImpl};

use common::{assert_close, to_f64, Rng};

/// The device, or `None` (with the reason printed) where there is none.
fn cuda() -> Option<Cuda> {
    match Cuda::new(0) {
        Ok(cuda) => Some(cuda),
        Err(e) => {
            eprintln!("skipped: no Cuda device ({e})");
            None
        }
    }
}

#[test]
fn opening_a_device_never_panics_and_names_what_is_missing() {
    for ordinal in [0, 1000] {
        let options = CudaOptions { ordinal, ..CudaOptions::default() };
        match Cuda::with_options(options) {
            Ok(cuda) => assert!(ordinal == 0 && !cuda.device_name().is_empty()),
            Err(Error::Backend { backend: "cuda", msg }) => {
                let named = ["driver library", "no CUDA device", "no usable device", "out of range"];
                assert!(named.iter().any(|n| msg.contains(n)), "{msg}");
            }
            Err(other) => panic!("unexpected error: {other}"),
        }
    }
}

#[test]
fn kernels_and_cublas_match_the_cpu() {
    let Some(cuda) = cuda() else { return };
    let cpu = Cpu::new();
    let mut rng = Rng::new(7);
    for dtype in [DType::F32, DType::BF16] {
        let (tol, rtol) = if dtype == DType::F32 { (1e-5, 1e-4) } else { (2e-2, 2e-2) };
        let x = rng.normal_vec(3 * 33 * 65, 1.0);
        let w = rng.normal_vec(17 * 65, 0.2);
        let bias = rng.normal_vec(17, 1.0);
        let spec = GemmSpec::nt();
        let run = |gemm: GemmImpl| -> Option<Vec<f32>> {
            let cuda = cuda.clone().with_gemm(gemm);
            let (cx, cw, cb) = (
                cuda.upload_f32(&[3, 33, 65], &x, dtype).unwrap(),
                cuda.upload_f32(&[17, 65], &w, dtype).unwrap(),
                cuda.upload_f32(&[17], &bias, dtype).unwrap(),
            );
            let y = cuda.gemm(&cx, &cw, Some(&cb), spec).ok()?;
            let y = cuda.gelu_fwd(&y).unwrap();
            Some(cuda.download_f32(&y).unwrap())
        };
        let (px, pw, pb) = (
            cpu.upload_f32(&[3, 33, 65], &x, dtype).unwrap(),
            cpu.upload_f32(&[17, 65], &w, dtype).unwrap(),
            cpu.upload_f32(&[17], &bias, dtype).unwrap(),
        );
        let want = cpu.download_f32(&cpu.gelu_fwd(&cpu.gemm(&px, &pw, Some(&pb), spec).unwrap()).unwrap()).unwrap();
        let got = run(GemmImpl::Cublas).expect("cuBLAS GEMM");
        assert_close("cuBLAS gemm + gelu", &got, &to_f64(&want), tol, rtol);
        if let Some(got) = run(GemmImpl::Kernel) {
            assert_close("kernel gemm + gelu", &got, &to_f64(&want), tol, rtol);
        }
    }
}
