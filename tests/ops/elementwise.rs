use runtime::{Backend, DType, Error};

use crate::backend_tests;
use crate::common::{assert_close, bf16_round, to_f64, Rng};

const SHAPES: [&[usize]; 5] = [&[1], &[7], &[3, 13], &[769], &[5, 40_001]];

/// The values a tensor of `dtype` holds after uploading `x`.
fn stored(x: &[f32], dtype: DType) -> Vec<f64> {
    if dtype == DType::BF16 {
        to_f64(&bf16_round(x))
    } else {
        to_f64(x)
    }
}

/// Tolerance of one rounding to `dtype` (bf16 keeps 8 significant bits).
fn rtol(dtype: DType) -> f64 {
    if dtype == DType::BF16 {
        1.0 / 256.0
    } else {
        1e-6
    }
}

fn add_matches_reference<B: Backend>(backend: &B) {
    let mut rng = Rng::new(60);
    for dims in SHAPES {
        for dtype in [DType::F32, DType::BF16] {
            let n = dims.iter().product();
            let (a, b) = (rng.normal_vec(n, 1.0), rng.normal_vec(n, 1.0));
            let out = backend
                .add(&backend.upload_f32(dims, &a, dtype).unwrap(), &backend.upload_f32(dims, &b, dtype).unwrap())
                .unwrap();
            assert_eq!((out.dims(), out.dtype()), (dims, dtype));
            let want: Vec<f64> = stored(&a, dtype).iter().zip(stored(&b, dtype)).map(|(a, b)| a + b).collect();
            assert_close(&format!("add {dims:?} {dtype}"), &backend.download_f32(&out).unwrap(), &want, 1e-7, rtol(dtype));
        }
    }
}

fn axpy_and_scale_match_reference<B: Backend>(backend: &B) {
    let mut rng = Rng::new(61);
    for dims in SHAPES {
        for dtype in [DType::F32, DType::BF16] {
            let n = dims.iter().product();
            let (y, x) = (rng.normal_vec(n, 1.0), rng.normal_vec(n, 1.0));
            let mut yt = backend.upload_f32(dims, &y, dtype).unwrap();
            let xt = backend.upload_f32(dims, &x, dtype).unwrap();
            backend.axpy(&mut yt, -0.37, &xt).unwrap();
            assert_eq!((yt.dims(), yt.dtype()), (dims, dtype));
            let want: Vec<f64> = stored(&y, dtype).iter().zip(stored(&x, dtype)).map(|(y, x)| y - 0.37 * x).collect();
            let got = backend.download_f32(&yt).unwrap();
            assert_close(&format!("axpy {dims:?} {dtype}"), &got, &want, 1e-7, rtol(dtype));

            backend.scale_inplace(&mut yt, 2.5).unwrap();
            let want: Vec<f64> = stored(&got, dtype).iter().map(|v| v * 2.5).collect();
            assert_close(&format!("scale {dims:?} {dtype}"), &backend.download_f32(&yt).unwrap(), &want, 1e-7, rtol(dtype));
        }
    }
}

/// Gradient accumulation: several `axpy` calls into one f32 buffer.
fn axpy_accumulates_repeatedly<B: Backend>(backend: &B) {
    let mut rng = Rng::new(62);
    let n = 1000;
    let mut acc = backend.zeros(&[n], DType::F32).unwrap();
    let mut want = vec![0.0; n];
    for alpha in [1.0, 0.5, -2.0] {
        let g = rng.normal_vec(n, 1.0);
        backend.axpy(&mut acc, alpha, &backend.upload_f32(&[n], &g, DType::F32).unwrap()).unwrap();
        want.iter_mut().zip(&g).for_each(|(w, &g)| *w += alpha as f64 * g as f64);
    }
    assert_close("accumulated", &backend.download_f32(&acc).unwrap(), &want, 1e-6, 1e-6);
}

fn elementwise_rejects_bad_arguments<B: Backend>(backend: &B) {
    let a = backend.zeros(&[2, 3], DType::F32).unwrap();
    let b = backend.zeros(&[3, 2], DType::F32).unwrap();
    let err = backend.add(&a, &b).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Shape { op: "add", .. }), "{msg}");
    assert!(msg.contains("[2, 3]") && msg.contains("[3, 2]"), "{msg}");

    let a16 = backend.zeros(&[2, 3], DType::BF16).unwrap();
    let err = backend.add(&a, &a16).unwrap_err();
    assert!(matches!(err, Error::DType { op: "add", arg: "b", .. }), "{err}");

    let mut y = backend.zeros(&[2, 3], DType::F32).unwrap();
    let err = backend.axpy(&mut y, 1.0, &b).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Shape { op: "axpy", .. }) && msg.contains("[3, 2]"), "{msg}");
    let err = backend.axpy(&mut y, 1.0, &a16).unwrap_err();
    assert!(matches!(err, Error::DType { op: "axpy", arg: "x", .. }), "{err}");
    let err = backend.axpy(&mut y, f32::NAN, &a).unwrap_err();
    assert!(matches!(err, Error::Argument { op: "axpy", .. }), "{err}");

    let mut ids = backend.zeros(&[2, 3], DType::U32).unwrap();
    let err = backend.scale_inplace(&mut ids, 2.0).unwrap_err();
    assert!(matches!(err, Error::DType { op: "scale_inplace", arg: "x", .. }), "{err}");
    let err = backend.scale_inplace(&mut y, f32::INFINITY).unwrap_err();
    assert!(matches!(err, Error::Argument { op: "scale_inplace", .. }), "{err}");
}

backend_tests!(
    cpu, emu, cuda;
    add_matches_reference,
    axpy_and_scale_match_reference,
    axpy_accumulates_repeatedly,
    elementwise_rejects_bad_arguments,
);
