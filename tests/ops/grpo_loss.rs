//! `grpo_loss`: a hand-computed case, an f64 reference (clipped surrogate + β·k3) over ragged
//! masks, its gradient against finite differences, no reference at β = 0, and bad arguments.

use runtime::ops::grpo_loss::GrpoLossConfig;
use runtime::ops::ppo_loss::{LossReduction, PpoLossConfig};
use runtime::{Backend, DType, Error};

use crate::backend_tests;
use crate::common::{assert_close, error_of, numeric_grad, to_f64, Rng};
use crate::ppo_loss::{configs, log_ratios, ragged_mask, reduction_weights, surrogate};

fn k3(log_q: f64) -> f64 {
    (-log_q).exp() - 1.0 + log_q
}

fn reference(
    lp: &[f64],
    old: &[f64],
    reference: Option<&[f64]>,
    adv: &[f64],
    w: &[f64],
    config: &GrpoLossConfig,
) -> f64 {
    (0..lp.len())
        .filter(|&i| w[i] > 0.0)
        .map(|i| {
            let kl = reference.map_or(0.0, |r| k3(lp[i] - r[i]));
            w[i] * (surrogate(lp[i] - old[i], adv[i], &config.surrogate) + f64::from(config.beta) * kl)
        })
        .sum()
}

fn upload<B: Backend>(backend: &B, dims: &[usize], x: &[f32]) -> runtime::Tensor<B> {
    backend.upload_f32(dims, x, DType::F32).unwrap()
}

fn grpo_loss_matches_hand_computed_values<B: Backend>(backend: &B) {
    // Two tokens, ε = 0.2, β = 0.1, token mean. Token 0: r = 1, A = 1 → −1; log q = ln 2 →
    // k3 = 1/2 − 1 + ln 2. Token 1: r = 1.5, A = 1 → −1.2 (clipped); log q = 0 → k3 = 0.
    let old = [-1.0f32, -2.0];
    let lp = [-1.0f32, -2.0 + 1.5f32.ln()];
    let reference_lp = [-1.0 - 2f32.ln(), lp[1]];
    let dims = [1, 2];
    let config = GrpoLossConfig { surrogate: PpoLossConfig::new(0.2), beta: 0.1 };
    let mask = backend.upload_u32(&dims, &[1, 1]).unwrap();
    let out = backend
        .grpo_loss(
            &upload(backend, &dims, &lp),
            &upload(backend, &dims, &old),
            Some(&upload(backend, &dims, &reference_lp)),
            &upload(backend, &dims, &[1.0, 1.0]),
            &mask,
            &config,
        )
        .unwrap();
    let kl0 = 0.5 - 1.0 + 2f64.ln();
    assert_close("loss", &[out.loss], &[(-1.0 - 1.2 + 0.1 * kl0) / 2.0], 1e-6, 1e-5);
    assert_close("kl", &[out.kl], &[kl0 / 2.0], 1e-7, 1e-5);
    // Token 0: d(−A·r) = −1 and β·(1 − e^(−log q)) = 0.1·(1 − 1/2); token 1 is clipped and its k3
    // has zero slope at log q = 0.
    let grad = backend.download_f32(&out.dlogprob).unwrap();
    assert_close("dlogprob", &grad, &[(-1.0 + 0.05) / 2.0, 0.0], 1e-7, 1e-5);
    assert_close("clip fraction", &[out.stats.clip_fraction], &[0.5], 0.0, 1e-6);
}

fn grpo_loss_matches_reference_and_finite_differences<B: Backend>(backend: &B) {
    let mut rng = Rng::new(90);
    for (b, t) in [(1, 1), (3, 7), (6, 13), (4, 769)] {
        for surrogate in configs() {
            for (beta, with_ref) in [(0.0, false), (0.0, true), (0.04, true), (1.0, true)] {
                let n = b * t;
                let config = GrpoLossConfig { surrogate, beta };
                let old = rng.uniform_vec(n, -6.0, -0.1);
                let lp: Vec<f32> = old.iter().zip(log_ratios(&mut rng, n, &surrogate)).map(|(o, r)| o + r).collect();
                let reference_lp: Vec<f32> = lp.iter().map(|&x| x + (rng.normal() * 0.5) as f32).collect();
                let adv = rng.normal_vec(n, 1.0);
                let mask = ragged_mask(&mut rng, b, t);
                let dims = [b, t];
                let ref_t = upload(backend, &dims, &reference_lp);
                let out = backend
                    .grpo_loss(
                        &upload(backend, &dims, &lp),
                        &upload(backend, &dims, &old),
                        with_ref.then_some(&ref_t),
                        &upload(backend, &dims, &adv),
                        &backend.upload_u32(&dims, &mask).unwrap(),
                        &config,
                    )
                    .unwrap();
                let (lp64, old64, ref64, adv64) = (to_f64(&lp), to_f64(&old), to_f64(&reference_lp), to_f64(&adv));
                let ref_arg = with_ref.then_some(&ref64[..]);
                let w = reduction_weights(&mask, t, surrogate.reduction);
                let what = format!("[{b}, {t}] β {beta} reference {with_ref} {surrogate:?}");
                let want_loss = reference(&lp64, &old64, ref_arg, &adv64, &w, &config);
                assert_close(&format!("loss {what}"), &[out.loss], &[want_loss], 1e-6, 1e-5);
                let want = numeric_grad(&lp64, 1e-5, |x| reference(x, &old64, ref_arg, &adv64, &w, &config));
                assert_close(
                    &format!("dlogprob {what}"),
                    &backend.download_f32(&out.dlogprob).unwrap(),
                    &want,
                    1e-7,
                    1e-4,
                );
                let masked: Vec<usize> = (0..n).filter(|&i| mask[i] == 1).collect();
                let kl = if with_ref {
                    masked.iter().map(|&i| k3(lp64[i] - ref64[i])).sum::<f64>() / masked.len() as f64
                } else {
                    0.0
                };
                assert_close(&format!("kl {what}"), &[out.kl], &[kl], 1e-7, 1e-4);
                assert_eq!(out.stats.tokens, masked.len(), "{what}");
            }
        }
    }
}

fn grpo_loss_rejects_bad_arguments<B: Backend>(backend: &B) {
    let x = backend.zeros(&[2, 5], DType::F32).unwrap();
    let mask = backend.upload_u32(&[2, 5], &[1; 10]).unwrap();
    let config = GrpoLossConfig { surrogate: PpoLossConfig::new(0.2), beta: 0.04 };
    let err = error_of(backend.grpo_loss(&x, &x, None, &x, &mask, &config));
    assert!(matches!(err, Error::Argument { op: "grpo_loss", .. }) && err.to_string().contains("ref_logprob"), "{err}");
    for beta in [-1.0, f32::NAN] {
        let err = error_of(backend.grpo_loss(&x, &x, Some(&x), &x, &mask, &GrpoLossConfig { beta, ..config }));
        assert!(matches!(err, Error::Argument { op: "grpo_loss", .. }), "{err}");
    }
    let bad_clip = GrpoLossConfig { surrogate: PpoLossConfig::new(1.5), ..config };
    assert!(matches!(error_of(backend.grpo_loss(&x, &x, Some(&x), &x, &mask, &bad_clip)), Error::Argument { .. }));
    let short = backend.zeros(&[2, 4], DType::F32).unwrap();
    let err = error_of(backend.grpo_loss(&x, &x, Some(&short), &x, &mask, &config));
    let msg = err.to_string();
    assert!(
        matches!(err, Error::Shape { op: "grpo_loss", .. }) && msg.contains("ref_logprob") && msg.contains("[2, 4]"),
        "{msg}"
    );
    let x16 = backend.zeros(&[2, 5], DType::BF16).unwrap();
    let err = error_of(backend.grpo_loss(&x, &x, Some(&x16), &x, &mask, &config));
    assert!(matches!(err, Error::DType { op: "grpo_loss", arg: "ref_logprob", .. }), "{err}");
    let err =
        error_of(backend.grpo_loss(&x, &x, Some(&x), &x, &backend.upload_u32(&[2, 5], &[3; 10]).unwrap(), &config));
    assert!(matches!(err, Error::Argument { op: "grpo_loss", .. }), "{err}");
    let seq = GrpoLossConfig {
        surrogate: PpoLossConfig { reduction: LossReduction::SequenceMean, ..config.surrogate },
        ..config
    };
    assert!(backend.grpo_loss(&x, &x, Some(&x), &x, &mask, &seq).is_ok());
}

backend_tests!(cpu, emu, cuda;
    grpo_loss_matches_hand_computed_values,
    grpo_loss_matches_reference_and_finite_differences,
    grpo_loss_rejects_bad_arguments,
);
