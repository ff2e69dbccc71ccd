use runtime::ops::grad_norm::clip_grad_norm;
use runtime::{Backend, DType, Error, Tensor};

use crate::backend_tests;
use crate::common::{assert_close, bf16_round, to_f64, Rng};

fn sum_squares_matches_reference<B: Backend>(backend: &B) {
    let mut rng = Rng::new(50);
    for dims in [&[1][..], &[7], &[3, 13], &[100_003], &[2, 70_001]] {
        for dtype in [DType::F32, DType::BF16] {
            let n: usize = dims.iter().product();
            let x = rng.normal_vec(n, 3.0);
            let exact = if dtype == DType::BF16 { to_f64(&bf16_round(&x)) } else { to_f64(&x) };
            let want: f64 = exact.iter().map(|v| v * v).sum();
            let t = backend.upload_f32(dims, &x, dtype).unwrap();
            let got = backend.sum_squares(&t).unwrap();
            // Cpu: squares of f32 values are exact in f64; only the f64 additions round. GPU
            // kernels sum in f32: a thread adds at most 2 squares here (n <= 2·512·256), then
            // 5 butterfly and 8 warp-order additions, so each term is rounded at most 15 times
            // (all terms are positive: relative error <= 15·2⁻²⁴ < 1e-6).
            let rtol = if backend.name() == "cpu" { 1e-12 } else { 1e-6 };
            assert!((got - want).abs() <= rtol * want, "{dims:?} {dtype}: {got} vs {want}");
            let one_thread = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
            let again = one_thread.install(|| backend.sum_squares(&t).unwrap());
            assert_eq!(got.to_bits(), again.to_bits(), "{dims:?} {dtype}: depends on the thread count");
        }
    }
    let ids = backend.zeros(&[3], DType::U32).unwrap();
    let err = backend.sum_squares(&ids).unwrap_err();
    assert!(matches!(err, Error::DType { op: "sum_squares", arg: "x", .. }), "{err}");
}

fn clip_grad_norm_matches_hand_computed_norm<B: Backend>(backend: &B) {
    let up = |dims: &[usize], x: &[f32]| backend.upload_f32(dims, x, DType::F32).unwrap();
    let get = |t: &Tensor<B>| backend.download_f32(t).unwrap();
    let (a, b) = ([3.0, 4.0, 0.0], [1.0, 2.0, 2.0, 4.0]);
    // ‖a‖² = 9 + 16 = 25, ‖b‖² = 1 + 4 + 4 + 16 = 25: the global norm is √50.
    let norm = 50f64.sqrt();

    // Below the norm: every gradient is scaled by max_norm / (norm + 1e-6).
    let (mut ga, mut gb) = (up(&[3], &a), up(&[2, 2], &b));
    let got = clip_grad_norm(backend, &mut [&mut ga, &mut gb], 1.0).unwrap();
    assert!((got as f64 - norm).abs() < 1e-6, "norm {got}");
    let factor = 1.0 / (norm + 1e-6);
    let scaled = |x: &[f32]| -> Vec<f64> { x.iter().map(|&v| v as f64 * factor).collect() };
    assert_close("a clipped", &get(&ga), &scaled(&a), 1e-7, 1e-6);
    assert_close("b clipped", &get(&gb), &scaled(&b), 1e-7, 1e-6);
    assert_eq!(ga.dims(), &[3]);
    assert_eq!(gb.dims(), &[2, 2]);
    let clipped = clip_grad_norm(backend, &mut [&mut ga, &mut gb], 1.0).unwrap();
    assert!((clipped - 1.0).abs() < 1e-5, "norm after clipping {clipped}");

    // Above the norm, or no gradients at all: nothing changes.
    let (mut ga, mut gb) = (up(&[3], &a), up(&[2, 2], &b));
    let got = clip_grad_norm(backend, &mut [&mut ga, &mut gb], 10.0).unwrap();
    assert!((got as f64 - norm).abs() < 1e-6, "norm {got}");
    assert_eq!(get(&ga), a);
    assert_eq!(get(&gb), b);
    assert_eq!(clip_grad_norm::<B>(backend, &mut [], 1.0).unwrap(), 0.0);

    // A bf16 gradient beside an f32 one.
    let mut g16 = backend.upload_f32(&[3], &a, DType::BF16).unwrap();
    let mut g32 = up(&[2, 2], &b);
    let got = clip_grad_norm(backend, &mut [&mut g16, &mut g32], 5.0).unwrap();
    assert!((got as f64 - norm).abs() < 1e-6, "norm {got}");
    let factor = 5.0 / (norm + 1e-6);
    let want: Vec<f64> = a.iter().map(|&v| v as f64 * factor).collect();
    assert_close("bf16 clipped", &get(&g16), &want, 1e-6, 4e-3);
}

fn clip_grad_norm_leaves_non_finite_gradients_alone<B: Backend>(backend: &B) {
    let x = [f32::INFINITY, 1.0];
    let mut g = backend.upload_f32(&[2], &x, DType::F32).unwrap();
    let norm = clip_grad_norm(backend, &mut [&mut g], 1.0).unwrap();
    assert!(norm.is_infinite(), "{norm}");
    assert_eq!(backend.download_f32(&g).unwrap(), x);

    for bad in [-1.0, f32::NAN, f32::INFINITY] {
        let err = clip_grad_norm(backend, &mut [&mut g], bad).unwrap_err();
        assert!(matches!(err, Error::Argument { op: "clip_grad_norm", .. }), "{bad}: {err}");
    }
    let mut ids = backend.zeros(&[2], DType::U32).unwrap();
    assert!(matches!(clip_grad_norm(backend, &mut [&mut ids], 1.0).unwrap_err(), Error::DType { .. }));
}

backend_tests!(cpu, emu, cuda;
    sum_squares_matches_reference,
    clip_grad_norm_matches_hand_computed_norm,
    clip_grad_norm_leaves_non_finite_gradients_alone,
);
