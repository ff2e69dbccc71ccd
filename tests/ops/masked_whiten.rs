//! `masked_whiten`: a hand-computed case, an f64 reference over ragged masks (with and without
//! keeping the mean), degenerate populations, bf16, and bad arguments.

use runtime::{Backend, DType, Error};

use crate::backend_tests;
use crate::common::{assert_close, assert_shape_error, bf16_round, error_of, to_f64, Rng};
use crate::ppo_loss::ragged_mask;

/// `(y, μ, σ)` in f64, population variance.
fn reference(x: &[f64], mask: &[u32], keep_mean: bool, eps: f64) -> (Vec<f64>, f64, f64) {
    let picked: Vec<f64> = x.iter().zip(mask).filter(|(_, &m)| m == 1).map(|(&x, _)| x).collect();
    let n = picked.len() as f64;
    let mean = picked.iter().sum::<f64>() / n;
    let var = picked.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    let shift = if keep_mean { mean } else { 0.0 };
    let y =
        x.iter().zip(mask).map(|(&x, &m)| if m == 1 { (x - mean) / (var + eps).sqrt() + shift } else { 0.0 }).collect();
    (y, mean, var.sqrt())
}

fn masked_whiten_matches_hand_computed_values<B: Backend>(backend: &B) {
    // Masked 1, 2, 3: μ = 2, σ² = 2/3; the unmasked 100 is ignored and comes back 0.
    let x = backend.upload_f32(&[4], &[1.0, 100.0, 2.0, 3.0], DType::F32).unwrap();
    let mask = backend.upload_u32(&[4], &[1, 0, 1, 1]).unwrap();
    let s = (2.0f64 / 3.0).sqrt();
    let out = backend.masked_whiten(&x, &mask, false, 1e-12).unwrap();
    assert_close("y", &backend.download_f32(&out.y).unwrap(), &[-1.0 / s, 0.0, 0.0, 1.0 / s], 1e-6, 1e-5);
    assert_close("mean, std", &[out.mean, out.std], &[2.0, s], 1e-6, 1e-6);
    let out = backend.masked_whiten(&x, &mask, true, 1e-12).unwrap();
    assert_close(
        "y keeping the mean",
        &backend.download_f32(&out.y).unwrap(),
        &[2.0 - 1.0 / s, 0.0, 2.0, 2.0 + 1.0 / s],
        1e-6,
        1e-5,
    );

    // One element: zero variance, whitened to 0 (or kept); none: zeros.
    let one = backend.upload_u32(&[4], &[0, 0, 1, 0]).unwrap();
    let out = backend.masked_whiten(&x, &one, false, 1e-8).unwrap();
    assert_eq!((backend.download_f32(&out.y).unwrap(), out.mean, out.std), (vec![0.0; 4], 2.0, 0.0));
    let out = backend.masked_whiten(&x, &one, true, 1e-8).unwrap();
    assert_eq!(backend.download_f32(&out.y).unwrap(), vec![0.0, 0.0, 2.0, 0.0]);
    let out = backend.masked_whiten(&x, &backend.zeros(&[4], DType::U32).unwrap(), false, 1e-8).unwrap();
    assert_eq!((backend.download_f32(&out.y).unwrap(), out.mean, out.std), (vec![0.0; 4], 0.0, 0.0));
}

fn masked_whiten_matches_reference<B: Backend>(backend: &B) {
    let mut rng = Rng::new(110);
    for (b, t) in [(1, 1), (3, 7), (5, 13), (4, 769)] {
        for keep_mean in [false, true] {
            let x: Vec<f32> = rng.normal_vec(b * t, 3.0).iter().map(|v| v + 5.0).collect();
            let mask = ragged_mask(&mut rng, b, t);
            let dims = [b, t];
            let out = backend
                .masked_whiten(
                    &backend.upload_f32(&dims, &x, DType::F32).unwrap(),
                    &backend.upload_u32(&dims, &mask).unwrap(),
                    keep_mean,
                    1e-8,
                )
                .unwrap();
            let (y, mean, std) = reference(&to_f64(&x), &mask, keep_mean, 1e-8);
            let what = format!("[{b}, {t}] keep mean {keep_mean}");
            assert_eq!((out.y.dims(), out.y.dtype()), (&dims[..], DType::F32));
            assert_close(&what, &backend.download_f32(&out.y).unwrap(), &y, 1e-5, 1e-5);
            assert_close(&format!("mean, std {what}"), &[out.mean, out.std], &[mean, std], 1e-5, 1e-5);
        }
    }
}

fn masked_whiten_bf16_within_bf16_tolerance<B: Backend>(backend: &B) {
    let mut rng = Rng::new(111);
    let x = bf16_round(&rng.normal_vec(99, 2.0));
    let mask = ragged_mask(&mut rng, 3, 33);
    let out = backend
        .masked_whiten(
            &backend.upload_f32(&[3, 33], &x, DType::BF16).unwrap(),
            &backend.upload_u32(&[3, 33], &mask).unwrap(),
            false,
            1e-8,
        )
        .unwrap();
    assert_eq!(out.y.dtype(), DType::BF16);
    let (y, _, _) = reference(&to_f64(&x), &mask, false, 1e-8);
    assert_close("bf16", &backend.download_f32(&out.y).unwrap(), &y, 1e-2, 8e-3);
}

fn masked_whiten_rejects_bad_arguments<B: Backend>(backend: &B) {
    let x = backend.zeros(&[2, 5], DType::F32).unwrap();
    let mask = backend.upload_u32(&[2, 5], &[1; 10]).unwrap();
    assert_shape_error(
        backend.masked_whiten(&x, &backend.upload_u32(&[10], &[1; 10]).unwrap(), false, 1e-8),
        "masked_whiten",
        &["mask", "[10]"],
    );
    let err = error_of(backend.masked_whiten(&mask, &mask, false, 1e-8));
    assert!(matches!(err, Error::DType { op: "masked_whiten", arg: "x", .. }), "{err}");
    let err = error_of(backend.masked_whiten(&x, &x, false, 1e-8));
    assert!(matches!(err, Error::DType { op: "masked_whiten", arg: "mask", .. }), "{err}");
    for eps in [0.0, -1.0, f32::NAN] {
        let err = error_of(backend.masked_whiten(&x, &mask, false, eps));
        assert!(matches!(err, Error::Argument { op: "masked_whiten", .. }), "{err}");
    }
    let err = error_of(backend.masked_whiten(
        &x,
        &backend.upload_u32(&[2, 5], &[1, 1, 1, 1, 1, 1, 9, 1, 1, 1]).unwrap(),
        false,
        1e-8,
    ));
    assert!(err.to_string().contains("row 1, column 1"), "{err}");
}

backend_tests!(cpu, emu, cuda;
    masked_whiten_matches_hand_computed_values,
    masked_whiten_matches_reference,
    masked_whiten_bf16_within_bf16_tolerance,
    masked_whiten_rejects_bad_arguments,
);
