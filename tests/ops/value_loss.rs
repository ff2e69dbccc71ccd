//! `value_loss`: hand-computed cases, an f64 reference over ragged masks, its gradient against
//! finite differences, bf16, and bad arguments.

use runtime::ops::ppo_loss::LossReduction;
use runtime::ops::value_loss::ValueLossConfig;
use runtime::{Backend, DType, Error};

use crate::backend_tests;
use crate::common::{assert_close, assert_shape_error, bf16_round, error_of, numeric_grad, to_f64, Rng};
use crate::ppo_loss::{ragged_mask, reduction_weights, REDUCTIONS};

fn reference(v: &[f64], old: &[f64], ret: &[f64], weights: &[f64], clip: Option<f32>) -> f64 {
    (0..v.len())
        .filter(|&i| weights[i] > 0.0)
        .map(|i| {
            let unclipped = (v[i] - ret[i]).powi(2);
            let term = match clip {
                Some(eps) => {
                    let eps = f64::from(eps);
                    unclipped.max((v[i].clamp(old[i] - eps, old[i] + eps) - ret[i]).powi(2))
                }
                None => unclipped,
            };
            weights[i] * term / 2.0
        })
        .sum()
}

fn upload<B: Backend>(backend: &B, dims: &[usize], x: &[f32], dtype: DType) -> runtime::Tensor<B> {
    backend.upload_f32(dims, x, dtype).unwrap()
}

fn value_loss_matches_hand_computed_values<B: Backend>(backend: &B) {
    // ε = 0.5. Token 0: v = 2, v_old = 1, R = 3: unclipped 1, clipped (1.5 − 3)² = 2.25 → 2.25,
    // gradient 0. Token 1: v = 1.2, v_old = 1, R = 0: unclipped 1.44, clipped (1.2)² → tie, gradient
    // 1.2. Token 2: v = −1, v_old = 0, R = −3: unclipped 4, clipped (−0.5 + 3)² = 6.25 → 6.25.
    // Token 3: v = 0, v_old = 2, R = 1: unclipped 1, clipped (1.5 − 1)² = 0.25 → 1, gradient −1.
    let (v, old, ret) = ([2.0f32, 1.2, -1.0, 0.0, 7.0], [1.0f32, 1.0, 0.0, 2.0, 0.0], [3.0f32, 0.0, -3.0, 1.0, 0.0]);
    let mask = [1u32, 1, 1, 1, 0];
    let dims = [1, 5];
    let (vt, oldt, rett) = (
        upload(backend, &dims, &v, DType::F32),
        upload(backend, &dims, &old, DType::F32),
        upload(backend, &dims, &ret, DType::F32),
    );
    let maskt = backend.upload_u32(&dims, &mask).unwrap();
    let config = ValueLossConfig { clip: Some(0.5), reduction: LossReduction::TokenMean };
    let out = backend.value_loss(&vt, &oldt, &rett, &maskt, &config).unwrap();
    assert_close("loss", &[out.loss], &[(2.25 + 1.44 + 6.25 + 1.0) / 2.0 / 4.0], 1e-6, 1e-5);
    let grad = backend.download_f32(&out.dvalues).unwrap();
    assert_close("dvalues", &grad, &[0.0, 1.2 / 4.0, 0.0, -1.0 / 4.0, 0.0], 1e-7, 1e-5);
    assert_close("clip fraction", &[out.clip_fraction], &[0.5], 0.0, 1e-6);

    let config = ValueLossConfig { clip: None, reduction: LossReduction::TokenMean };
    let out = backend.value_loss(&vt, &oldt, &rett, &maskt, &config).unwrap();
    assert_close("unclipped loss", &[out.loss], &[(1.0 + 1.44 + 4.0 + 1.0) / 2.0 / 4.0], 1e-6, 1e-5);
    let grad = backend.download_f32(&out.dvalues).unwrap();
    assert_close("unclipped dvalues", &grad, &[-0.25, 0.3, 0.5, -0.25, 0.0], 1e-7, 1e-5);
    assert_eq!(out.clip_fraction, 0.0);
}

fn value_loss_matches_reference_and_finite_differences<B: Backend>(backend: &B) {
    let mut rng = Rng::new(80);
    for (b, t) in [(1, 1), (3, 7), (5, 13), (4, 769)] {
        for reduction in REDUCTIONS {
            for clip in [None, Some(0.2), Some(0.0)] {
                let n = b * t;
                let old = rng.normal_vec(n, 1.0);
                // Values moved from the rollout's by up to ±0.6, away from the clip bounds ±ε.
                let moves: Vec<f32> = (0..n)
                    .map(|_| loop {
                        let d = (rng.uniform() * 1.2 - 0.6) as f32;
                        if clip.is_none_or(|eps| (d.abs() - eps).abs() > 1e-3) {
                            break d;
                        }
                    })
                    .collect();
                let v: Vec<f32> = old.iter().zip(&moves).map(|(o, d)| o + d).collect();
                let ret = rng.normal_vec(n, 1.0);
                let mask = ragged_mask(&mut rng, b, t);
                let dims = [b, t];
                let config = ValueLossConfig { clip, reduction };
                let out = backend
                    .value_loss(
                        &upload(backend, &dims, &v, DType::F32),
                        &upload(backend, &dims, &old, DType::F32),
                        &upload(backend, &dims, &ret, DType::F32),
                        &backend.upload_u32(&dims, &mask).unwrap(),
                        &config,
                    )
                    .unwrap();
                let (v64, old64, ret64) = (to_f64(&v), to_f64(&old), to_f64(&ret));
                let w = reduction_weights(&mask, t, reduction);
                let what = format!("[{b}, {t}] {config:?}");
                assert_close(
                    &format!("loss {what}"),
                    &[out.loss],
                    &[reference(&v64, &old64, &ret64, &w, clip)],
                    1e-6,
                    1e-5,
                );
                let want = numeric_grad(&v64, 1e-5, |x| reference(x, &old64, &ret64, &w, clip));
                assert_eq!((out.dvalues.dims(), out.dvalues.dtype()), (&dims[..], DType::F32));
                assert_close(
                    &format!("dvalues {what}"),
                    &backend.download_f32(&out.dvalues).unwrap(),
                    &want,
                    1e-7,
                    1e-4,
                );
            }
        }
    }
}

fn value_loss_bf16_within_bf16_tolerance<B: Backend>(backend: &B) {
    let mut rng = Rng::new(81);
    let (b, t) = (3, 33);
    let old = bf16_round(&rng.normal_vec(b * t, 1.0));
    let v = bf16_round(&rng.normal_vec(b * t, 1.0));
    let ret = bf16_round(&rng.normal_vec(b * t, 1.0));
    let mask = ragged_mask(&mut rng, b, t);
    let dims = [b, t];
    let up = |x: &[f32]| upload(backend, &dims, x, DType::BF16);
    let config = ValueLossConfig { clip: Some(0.3), reduction: LossReduction::TokenMean };
    let out =
        backend.value_loss(&up(&v), &up(&old), &up(&ret), &backend.upload_u32(&dims, &mask).unwrap(), &config).unwrap();
    assert_eq!(out.dvalues.dtype(), DType::BF16);
    let w = reduction_weights(&mask, t, config.reduction);
    let (v64, old64, ret64) = (to_f64(&v), to_f64(&old), to_f64(&ret));
    assert_close("bf16 loss", &[out.loss], &[reference(&v64, &old64, &ret64, &w, config.clip)], 1e-5, 1e-4);
    let want = numeric_grad(&v64, 1e-5, |x| reference(x, &old64, &ret64, &w, config.clip));
    assert_close("bf16 dvalues", &backend.download_f32(&out.dvalues).unwrap(), &want, 1e-5, 8e-3);
}

fn value_loss_rejects_bad_arguments<B: Backend>(backend: &B) {
    let x = backend.zeros(&[2, 5], DType::F32).unwrap();
    let mask = backend.upload_u32(&[2, 5], &[1; 10]).unwrap();
    let config = ValueLossConfig { clip: Some(0.2), reduction: LossReduction::TokenMean };
    let short = backend.zeros(&[2, 4], DType::F32).unwrap();
    assert_shape_error(backend.value_loss(&x, &x, &short, &mask, &config), "value_loss", &["returns", "[2, 4]"]);
    let err = error_of(backend.value_loss(&x, &x, &x, &x, &config));
    assert!(matches!(err, Error::DType { op: "value_loss", arg: "mask", .. }), "{err}");
    let mut bad = [0u32; 10];
    bad[3] = 7;
    let err = error_of(backend.value_loss(&x, &x, &x, &backend.upload_u32(&[2, 5], &bad).unwrap(), &config));
    assert!(
        matches!(err, Error::Argument { op: "value_loss", .. }) && err.to_string().contains("mask value 7"),
        "{err}"
    );
    for clip in [-0.1, f32::NAN, f32::INFINITY] {
        let err = error_of(backend.value_loss(&x, &x, &x, &mask, &ValueLossConfig { clip: Some(clip), ..config }));
        assert!(matches!(err, Error::Argument { op: "value_loss", .. }), "{err}");
    }
}

backend_tests!(cpu, emu, cuda;
    value_loss_matches_hand_computed_values,
    value_loss_matches_reference_and_finite_differences,
    value_loss_bf16_within_bf16_tolerance,
    value_loss_rejects_bad_arguments,
);
