use runtime::ops::kl::KlEstimator;
use runtime::{Backend, DType, Error};

use crate::backend_tests;
use crate::common::{assert_close, bf16_round, dot, numeric_grad, to_f64, Rng};

const ESTIMATORS: [KlEstimator; 3] = [KlEstimator::K1, KlEstimator::K2, KlEstimator::K3];

/// Naive f64 estimator per element.
fn reference(lp: &[f64], rp: &[f64], estimator: KlEstimator) -> Vec<f64> {
    lp.iter()
        .zip(rp)
        .map(|(&lp, &rp)| {
            let log_ratio = lp - rp;
            match estimator {
                KlEstimator::K1 => log_ratio,
                KlEstimator::K2 => log_ratio * log_ratio / 2.0,
                KlEstimator::K3 => (-log_ratio).exp() - 1.0 + log_ratio,
            }
        })
        .collect()
}

/// Policy log-probs in (−6, 0) and reference ones off by `spread`-sized amounts.
fn log_probs(rng: &mut Rng, n: usize, spread: f64) -> (Vec<f32>, Vec<f32>) {
    let lp = rng.uniform_vec(n, -6.0, 0.0);
    let rp = lp.iter().map(|&x| x + (rng.normal() * spread) as f32).collect();
    (lp, rp)
}

fn kl_forward_matches_reference<B: Backend>(backend: &B) {
    let mut rng = Rng::new(30);
    for dims in [&[1][..], &[7], &[3, 13], &[4, 769]] {
        let n = dims.iter().product();
        for spread in [1.0, 1e-3] {
            let (lp, rp) = log_probs(&mut rng, n, spread);
            let lpt = backend.upload_f32(dims, &lp, DType::F32).unwrap();
            let rpt = backend.upload_f32(dims, &rp, DType::F32).unwrap();
            for est in ESTIMATORS {
                let out = backend.kl_fwd(&lpt, &rpt, est).unwrap();
                assert_eq!((out.dims(), out.dtype()), (dims, DType::F32));
                let want = reference(&to_f64(&lp), &to_f64(&rp), est);
                // The f32 inputs' difference is exact enough; tiny k3 values need relative accuracy.
                let what = format!("{est:?} {dims:?} spread {spread}");
                assert_close(&what, &backend.download_f32(&out).unwrap(), &want, 1e-9, 1e-4);
            }
        }
    }
}

fn kl_backward_matches_finite_differences<B: Backend>(backend: &B) {
    let mut rng = Rng::new(31);
    for dims in [&[1][..], &[7], &[3, 13]] {
        let n = dims.iter().product();
        let (lp, rp) = log_probs(&mut rng, n, 0.7);
        let dkl = rng.normal_vec(n, 1.0);
        let (lp64, rp64, w) = (to_f64(&lp), to_f64(&rp), to_f64(&dkl));
        let lpt = backend.upload_f32(dims, &lp, DType::F32).unwrap();
        let rpt = backend.upload_f32(dims, &rp, DType::F32).unwrap();
        let dklt = backend.upload_f32(dims, &dkl, DType::F32).unwrap();
        for est in ESTIMATORS {
            let want = numeric_grad(&lp64, 1e-4, |x| dot(&w, &reference(x, &rp64, est)));
            let got = backend.kl_bwd(&lpt, &rpt, est, &dklt).unwrap();
            assert_eq!((got.dims(), got.dtype()), (dims, DType::F32));
            assert_close(&format!("d(logprob) {est:?} {dims:?}"), &backend.download_f32(&got).unwrap(), &want, 1e-5, 1e-4);
        }
    }
}

fn kl_bf16_within_bf16_tolerance<B: Backend>(backend: &B) {
    let mut rng = Rng::new(32);
    let n = 33;
    let (lp, rp) = log_probs(&mut rng, n, 0.5);
    let dkl = rng.normal_vec(n, 1.0);
    let (lp16, rp16) = (to_f64(&bf16_round(&lp)), to_f64(&bf16_round(&rp)));
    let up = |x: &[f32]| backend.upload_f32(&[n], x, DType::BF16).unwrap();
    for est in ESTIMATORS {
        let out = backend.kl_fwd(&up(&lp), &up(&rp), est).unwrap();
        assert_eq!(out.dtype(), DType::BF16);
        let want = reference(&lp16, &rp16, est);
        assert_close(&format!("{est:?} bf16"), &backend.download_f32(&out).unwrap(), &want, 1e-6, 8e-3);
        let grad = backend.kl_bwd(&up(&lp), &up(&rp), est, &up(&dkl)).unwrap();
        assert_eq!(grad.dtype(), DType::BF16);
        let w = to_f64(&bf16_round(&dkl));
        let want = numeric_grad(&lp16, 1e-4, |x| dot(&w, &reference(x, &rp16, est)));
        assert_close(&format!("d(logprob) {est:?} bf16"), &backend.download_f32(&grad).unwrap(), &want, 1e-6, 8e-3);
    }
}

fn kl_rejects_bad_arguments<B: Backend>(backend: &B) {
    let a = backend.zeros(&[2, 5], DType::F32).unwrap();
    let b = backend.zeros(&[2, 4], DType::F32).unwrap();
    let err = backend.kl_fwd(&a, &b, KlEstimator::K3).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Shape { op: "kl_fwd", .. }), "{msg}");
    assert!(msg.contains("[2, 5]") && msg.contains("[2, 4]"), "{msg}");

    let a16 = backend.zeros(&[2, 5], DType::BF16).unwrap();
    let err = backend.kl_fwd(&a, &a16, KlEstimator::K1).unwrap_err();
    assert!(matches!(err, Error::DType { op: "kl_fwd", arg: "ref_logprob", .. }), "{err}");
    let ids = backend.zeros(&[2, 5], DType::U32).unwrap();
    assert!(matches!(backend.kl_fwd(&ids, &ids, KlEstimator::K1).unwrap_err(), Error::DType { .. }));

    let err = backend.kl_bwd(&a, &a, KlEstimator::K2, &b).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Shape { op: "kl_bwd", .. }), "{msg}");
    assert!(msg.contains("dkl") && msg.contains("[2, 4]"), "{msg}");
}

backend_tests!(cpu, emu, cuda;
    kl_forward_matches_reference,
    kl_backward_matches_finite_differences,
    kl_bf16_within_bf16_tolerance,
    kl_rejects_bad_arguments,
);
