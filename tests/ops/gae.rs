//! `gae`: hand-computed scans (contiguous and gapped masks), an f64 reference over ragged masks,
//! the Monte Carlo special case γ = λ = 1, bf16, and bad arguments.

use runtime::{Backend, DType, Error};

use crate::backend_tests;
use crate::common::{assert_close, assert_shape_error, bf16_round, error_of, to_f64, Rng};
use crate::ppo_loss::ragged_mask;

/// Advantages and returns by the textbook recursion, f64.
fn reference(r: &[f64], v: &[f64], mask: &[u32], t: usize, gamma: f64, lambda: f64) -> (Vec<f64>, Vec<f64>) {
    let (mut adv, mut ret) = (vec![0.0; r.len()], vec![0.0; r.len()]);
    for row in 0..r.len() / t.max(1) {
        let steps: Vec<usize> = (0..t).map(|i| row * t + i).filter(|&i| mask[i] == 1).collect();
        for (k, &i) in steps.iter().enumerate().rev() {
            let (next_v, next_a) = steps.get(k + 1).map_or((0.0, 0.0), |&j| (v[j], adv[j]));
            adv[i] = r[i] + gamma * next_v - v[i] + gamma * lambda * next_a;
            ret[i] = adv[i] + v[i];
        }
    }
    (adv, ret)
}

fn gae_matches_hand_computed_values<B: Backend>(backend: &B) {
    // Row 0: prompt, three response tokens, padding. Row 1: masked tokens 0 and 2 only (the gap
    // is skipped, not a terminal). Unmasked entries hold junk (7, 9) that must not leak in.
    #[rustfmt::skip]
    let rewards = [9.0f32, 0.0, 0.0, 1.0, 9.0,
                   0.5, 7.0, -1.0, 7.0, 7.0];
    #[rustfmt::skip]
    let values = [9.0f32, 0.5, 0.6, 0.7, 9.0,
                  0.2, 7.0, 0.1, 7.0, 7.0];
    let mask = [0u32, 1, 1, 1, 0, 1, 0, 1, 0, 0];
    let up = |x: &[f32]| backend.upload_f32(&[2, 5], x, DType::F32).unwrap();
    let out = backend.gae(&up(&rewards), &up(&values), &backend.upload_u32(&[2, 5], &mask).unwrap(), 0.9, 0.8).unwrap();
    // Row 0 with γλ = 0.72: δ3 = 1 − 0.7 = 0.3; δ2 = 0.9·0.7 − 0.6 = 0.03, A2 = 0.03 + 0.72·0.3;
    // δ1 = 0.9·0.6 − 0.5 = 0.04, A1 = 0.04 + 0.72·0.246. Row 1: δ2 = −1 − 0.1 = −1.1;
    // δ0 = 0.5 + 0.9·0.1 − 0.2 = 0.39, A0 = 0.39 + 0.72·(−1.1).
    let adv = [0.0, 0.21712, 0.246, 0.3, 0.0, -0.402, 0.0, -1.1, 0.0, 0.0];
    let ret = [0.0, 0.71712, 0.846, 1.0, 0.0, -0.202, 0.0, -1.0, 0.0, 0.0];
    assert_close("advantages", &backend.download_f32(&out.advantages).unwrap(), &adv, 1e-6, 1e-5);
    assert_close("returns", &backend.download_f32(&out.returns).unwrap(), &ret, 1e-6, 1e-5);
}

fn gae_matches_reference<B: Backend>(backend: &B) {
    let mut rng = Rng::new(100);
    for (b, t) in [(1, 1), (3, 7), (5, 13), (4, 769)] {
        for (gamma, lambda) in [(1.0, 0.95), (0.99, 0.9), (1.0, 1.0), (0.5, 0.0)] {
            let (r, v) = (rng.normal_vec(b * t, 1.0), rng.normal_vec(b * t, 1.0));
            let mask = ragged_mask(&mut rng, b, t);
            let dims = [b, t];
            let up = |x: &[f32]| backend.upload_f32(&dims, x, DType::F32).unwrap();
            let out = backend.gae(&up(&r), &up(&v), &backend.upload_u32(&dims, &mask).unwrap(), gamma, lambda).unwrap();
            assert_eq!((out.advantages.dims(), out.returns.dtype()), (&dims[..], DType::F32));
            let (adv, ret) = reference(&to_f64(&r), &to_f64(&v), &mask, t, f64::from(gamma), f64::from(lambda));
            let what = format!("[{b}, {t}] γ {gamma} λ {lambda}");
            // Long rows sum hundreds of terms in f32.
            assert_close(
                &format!("advantages {what}"),
                &backend.download_f32(&out.advantages).unwrap(),
                &adv,
                1e-4,
                1e-4,
            );
            assert_close(&format!("returns {what}"), &backend.download_f32(&out.returns).unwrap(), &ret, 1e-4, 1e-4);
            if (gamma, lambda) == (1.0, 1.0) {
                // Monte Carlo: the return is the sum of the rewards from the token to the end.
                let mc: Vec<f64> = (0..b * t)
                    .map(|i| {
                        let row_end = (i / t + 1) * t;
                        if mask[i] == 0 {
                            0.0
                        } else {
                            (i..row_end).filter(|&j| mask[j] == 1).map(|j| f64::from(r[j])).sum()
                        }
                    })
                    .collect();
                assert_close(
                    &format!("Monte Carlo returns {what}"),
                    &backend.download_f32(&out.returns).unwrap(),
                    &mc,
                    1e-4,
                    1e-4,
                );
            }
        }
    }
}

fn gae_bf16_within_bf16_tolerance<B: Backend>(backend: &B) {
    let mut rng = Rng::new(101);
    let (b, t) = (3, 9);
    let (r, v) = (bf16_round(&rng.normal_vec(b * t, 1.0)), bf16_round(&rng.normal_vec(b * t, 1.0)));
    let mask = ragged_mask(&mut rng, b, t);
    let up = |x: &[f32]| backend.upload_f32(&[b, t], x, DType::BF16).unwrap();
    let out = backend.gae(&up(&r), &up(&v), &backend.upload_u32(&[b, t], &mask).unwrap(), 0.99, 0.95).unwrap();
    assert_eq!(out.advantages.dtype(), DType::BF16);
    let (adv, _) = reference(&to_f64(&r), &to_f64(&v), &mask, t, 0.99, 0.95);
    assert_close("bf16 advantages", &backend.download_f32(&out.advantages).unwrap(), &adv, 2e-2, 8e-3);
}

fn gae_rejects_bad_arguments<B: Backend>(backend: &B) {
    let x = backend.zeros(&[2, 5], DType::F32).unwrap();
    let mask = backend.upload_u32(&[2, 5], &[1; 10]).unwrap();
    assert_shape_error(
        backend.gae(&x, &backend.zeros(&[5, 2], DType::F32).unwrap(), &mask, 1.0, 0.95),
        "gae",
        &["values", "[5, 2]"],
    );
    let flat = backend.zeros(&[10], DType::F32).unwrap();
    assert_shape_error(
        backend.gae(&flat, &flat, &backend.upload_u32(&[10], &[1; 10]).unwrap(), 1.0, 0.95),
        "gae",
        &["rank 2"],
    );
    let err = error_of(backend.gae(&x, &x, &x, 1.0, 0.95));
    assert!(matches!(err, Error::DType { op: "gae", arg: "mask", .. }), "{err}");
    for (gamma, lambda) in [(1.1, 0.9), (0.9, -0.1), (f32::NAN, 0.9)] {
        let err = error_of(backend.gae(&x, &x, &mask, gamma, lambda));
        assert!(matches!(err, Error::Argument { op: "gae", .. }), "{err}");
    }
    let err =
        error_of(backend.gae(&x, &x, &backend.upload_u32(&[2, 5], &[0, 0, 0, 0, 0, 0, 0, 0, 0, 5]).unwrap(), 1.0, 0.9));
    assert!(err.to_string().contains("row 1, column 4"), "{err}");
}

backend_tests!(cpu, emu, cuda;
    gae_matches_hand_computed_values,
    gae_matches_reference,
    gae_bf16_within_bf16_tolerance,
    gae_rejects_bad_arguments
);
