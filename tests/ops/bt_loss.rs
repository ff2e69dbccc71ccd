//! The Bradley–Terry pairwise loss and the binary outcome loss: hand-computed values, an f64
//! reference on awkward sizes, gradients against finite differences, extreme rewards, and errors.

use runtime::ops::bt_loss::BtPairs;
use runtime::{Backend, DType, Error, Tensor};

use crate::backend_tests;
use crate::common::{assert_close, assert_shape_error, bf16_round, dot, error_of, numeric_grad, to_f64, Rng};

/// `log(1 + e^x)` in f64, stable both ways.
fn softplus(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// The documented formula, term by term:
/// `−[(1−ε)·y·log σ(Δ) + (1−ε)(1−y)·log σ(−Δ) + ε/2·(log σ(Δ) + log σ(−Δ))]`.
fn bt_reference(chosen: &[f64], rejected: &[f64], margin: &[f64], label: &[f64], eps: f64) -> Vec<f64> {
    (0..chosen.len())
        .map(|p| {
            let delta = chosen[p] - rejected[p] - margin[p];
            let (log_win, log_lose) = (-softplus(-delta), -softplus(delta));
            let y = label[p];
            -((1.0 - eps) * y * log_win + (1.0 - eps) * (1.0 - y) * log_lose + eps / 2.0 * (log_win + log_lose))
        })
        .collect()
}

fn binary_reference(reward: &[f64], label: &[f64]) -> Vec<f64> {
    reward.iter().zip(label).map(|(&r, &y)| y * softplus(-r) + (1.0 - y) * softplus(r)).collect()
}

struct Pairs<B: Backend> {
    chosen: Tensor<B>,
    rejected: Tensor<B>,
    margin: Tensor<B>,
    label: Tensor<B>,
}

impl<B: Backend> Pairs<B> {
    fn upload(backend: &B, data: [&[f32]; 4], dtype: DType) -> Self {
        let up = |x: &[f32]| backend.upload_f32(&[x.len()], x, dtype).unwrap();
        Pairs { chosen: up(data[0]), rejected: up(data[1]), margin: up(data[2]), label: up(data[3]) }
    }

    fn view(&self) -> BtPairs<'_, B> {
        BtPairs { reward_chosen: &self.chosen, reward_rejected: &self.rejected, margin: &self.margin, label: &self.label }
    }
}

fn bt_loss_matches_hand_computed_values<B: Backend>(backend: &B) {
    // Δ = 2 − 1 − 0 = 1, hard label: −log σ(1) = log(1 + e^−1).
    // Δ = 0.5 − 1.5 − 0.5 = −1.5 (Llama 2's margin): log(1 + e^1.5).
    // Δ = 0, any label and smoothing: log 2.
    // Δ = 3, soft label 0.25, no smoothing: 0.25·log(1 + e^−3) + 0.75·log(1 + e^3).
    let pairs = Pairs::upload(
        backend,
        [&[2.0, 0.5, 1.0, 3.0], &[1.0, 1.5, 1.0, 0.0], &[0.0, 0.5, 0.0, 0.0], &[1.0, 1.0, 0.7, 0.25]],
        DType::F32,
    );
    let got = backend.download_f32(&backend.bt_loss_fwd(pairs.view(), 0.0).unwrap()).unwrap();
    let want = [
        (1.0 + (-1.0f64).exp()).ln(),
        (1.0 + 1.5f64.exp()).ln(),
        2f64.ln(),
        0.25 * (1.0 + (-3.0f64).exp()).ln() + 0.75 * (1.0 + 3f64.exp()).ln(),
    ];
    assert_close("bt loss, no smoothing", &got, &want, 1e-6, 1e-6);

    // ε = 0.2 on a hard label: target 0.9, so 0.9·log(1 + e^−1) + 0.1·log(1 + e^1) for Δ = 1.
    let got = backend.download_f32(&backend.bt_loss_fwd(pairs.view(), 0.2).unwrap()).unwrap();
    let smoothed = 0.9 * (1.0 + (-1.0f64).exp()).ln() + 0.1 * (1.0 + 1f64.exp()).ln();
    assert_close("bt loss, ε = 0.2", &got[..1], &[smoothed], 1e-6, 1e-6);
    assert_close("bt loss at Δ = 0, ε = 0.2", &got[2..3], &[2f64.ln()], 1e-6, 1e-6);

    // Gradients: σ(Δ) − t, and the negation for the rejected side.
    let dloss = backend.upload_f32(&[4], &[1.0, 2.0, 1.0, -1.0], DType::F32).unwrap();
    let grads = backend.bt_loss_bwd(pairs.view(), 0.0, &dloss).unwrap();
    let sigmoid = |x: f64| 1.0 / (1.0 + (-x).exp());
    let want = [sigmoid(1.0) - 1.0, 2.0 * (sigmoid(-1.5) - 1.0), 0.5 - 0.7, -(sigmoid(3.0) - 0.25)];
    assert_close("d chosen", &backend.download_f32(&grads.reward_chosen).unwrap(), &want, 1e-6, 1e-6);
    let negated: Vec<f64> = want.iter().map(|g| -g).collect();
    assert_close("d rejected", &backend.download_f32(&grads.reward_rejected).unwrap(), &negated, 1e-6, 1e-6);
}

fn binary_loss_matches_hand_computed_values<B: Backend>(backend: &B) {
    let reward = backend.upload_f32(&[3], &[2.0, -1.0, 0.0], DType::F32).unwrap();
    let label = backend.upload_f32(&[3], &[1.0, 1.0, 0.0], DType::F32).unwrap();
    let got = backend.download_f32(&backend.binary_reward_loss_fwd(&reward, &label).unwrap()).unwrap();
    let want = [(1.0 + (-2.0f64).exp()).ln(), (1.0 + 1f64.exp()).ln(), 2f64.ln()];
    assert_close("binary loss", &got, &want, 1e-6, 1e-6);
    let dloss = backend.upload_f32(&[3], &[1.0, 1.0, 3.0], DType::F32).unwrap();
    let grad = backend.binary_reward_loss_bwd(&reward, &label, &dloss).unwrap();
    let sigmoid = |x: f64| 1.0 / (1.0 + (-x).exp());
    let want = [sigmoid(2.0) - 1.0, sigmoid(-1.0) - 1.0, 1.5];
    assert_close("d reward", &backend.download_f32(&grad).unwrap(), &want, 1e-6, 1e-6);
}

/// Random pairs: rewards of scale 3, margins in [0, 2), labels half hard and half soft.
fn random_pairs(rng: &mut Rng, p: usize) -> [Vec<f32>; 4] {
    let label = (0..p).map(|i| if i % 2 == 0 { 1.0 } else { rng.uniform() as f32 }).collect();
    [rng.normal_vec(p, 3.0), rng.normal_vec(p, 3.0), rng.uniform_vec(p, 0.0, 2.0), label]
}

fn bt_loss_matches_reference_and_finite_differences<B: Backend>(backend: &B) {
    let mut rng = Rng::new(40);
    for p in [1, 7, 33, 769] {
        for eps in [0.0, 0.1] {
            let data = random_pairs(&mut rng, p);
            let [c, r, m, y] = data.clone().map(|x| to_f64(&x));
            let pairs = Pairs::upload(backend, [&data[0], &data[1], &data[2], &data[3]], DType::F32);
            let loss = backend.bt_loss_fwd(pairs.view(), eps as f32).unwrap();
            assert_eq!((loss.dims(), loss.dtype()), (&[p][..], DType::F32));
            let what = format!("P={p} ε={eps}");
            let want = bt_reference(&c, &r, &m, &y, eps);
            assert_close(&format!("loss {what}"), &backend.download_f32(&loss).unwrap(), &want, 1e-6, 1e-5);

            let w = rng.normal_vec(p, 1.0);
            let w64 = to_f64(&w);
            let dloss = backend.upload_f32(&[p], &w, DType::F32).unwrap();
            let grads = backend.bt_loss_bwd(pairs.view(), eps as f32, &dloss).unwrap();
            let want_c = numeric_grad(&c, 1e-5, |x| dot(&w64, &bt_reference(x, &r, &m, &y, eps)));
            let want_r = numeric_grad(&r, 1e-5, |x| dot(&w64, &bt_reference(&c, x, &m, &y, eps)));
            for (name, got, want) in
                [("d chosen", &grads.reward_chosen, want_c), ("d rejected", &grads.reward_rejected, want_r)]
            {
                assert_eq!((got.dims(), got.dtype()), (&[p][..], DType::F32));
                assert_close(&format!("{name} {what}"), &backend.download_f32(got).unwrap(), &want, 1e-6, 1e-4);
            }
        }
    }
}

fn binary_loss_matches_reference_and_finite_differences<B: Backend>(backend: &B) {
    let mut rng = Rng::new(41);
    for p in [1, 13, 769] {
        let reward = rng.normal_vec(p, 4.0);
        let label: Vec<f32> = (0..p).map(|i| if i % 3 == 0 { rng.uniform() as f32 } else { (i % 2) as f32 }).collect();
        let (r64, y64) = (to_f64(&reward), to_f64(&label));
        let rt = backend.upload_f32(&[p], &reward, DType::F32).unwrap();
        let yt = backend.upload_f32(&[p], &label, DType::F32).unwrap();
        let loss = backend.binary_reward_loss_fwd(&rt, &yt).unwrap();
        assert_eq!((loss.dims(), loss.dtype()), (&[p][..], DType::F32));
        let want = binary_reference(&r64, &y64);
        assert_close(&format!("binary loss P={p}"), &backend.download_f32(&loss).unwrap(), &want, 1e-6, 1e-5);
        let w = rng.normal_vec(p, 1.0);
        let w64 = to_f64(&w);
        let dloss = backend.upload_f32(&[p], &w, DType::F32).unwrap();
        let grad = backend.binary_reward_loss_bwd(&rt, &yt, &dloss).unwrap();
        let want = numeric_grad(&r64, 1e-5, |x| dot(&w64, &binary_reference(x, &y64)));
        assert_close(&format!("d reward P={p}"), &backend.download_f32(&grad).unwrap(), &want, 1e-6, 1e-4);
    }
}

/// Rewards far from 0: `log σ` computed as `log(σ)` would give `log 0 = −inf` or round a small
/// loss to 0, and `σ(Δ) − 1` would round a small gradient to 0; both stay accurate.
fn losses_stay_exact_for_extreme_rewards<B: Backend>(backend: &B) {
    let pairs = Pairs::upload(
        backend,
        [&[50.0, -100.0, 30.0, 1e4], &[0.0, 0.0, 0.0, -1e4], &[0.0; 4], &[1.0, 1.0, 1.0, 0.0]],
        DType::F32,
    );
    let loss = backend.download_f32(&backend.bt_loss_fwd(pairs.view(), 0.0).unwrap()).unwrap();
    let want = [(-50f64).exp().ln_1p(), 100.0, (-30f64).exp().ln_1p(), 2e4];
    assert_close("extreme bt loss", &loss, &want, 0.0, 1e-5);
    let dloss = backend.upload_f32(&[4], &[1.0; 4], DType::F32).unwrap();
    let grads = backend.bt_loss_bwd(pairs.view(), 0.0, &dloss).unwrap();
    let got = backend.download_f32(&grads.reward_chosen).unwrap();
    let sigmoid = |x: f64| 1.0 / (1.0 + (-x).exp());
    assert_close("extreme d chosen", &got, &[-sigmoid(-50.0), -1.0, -sigmoid(-30.0), 1.0], 0.0, 1e-5);

    let reward = backend.upload_f32(&[2], &[-200.0, 200.0], DType::F32).unwrap();
    let label = backend.upload_f32(&[2], &[0.0, 0.0], DType::F32).unwrap();
    let loss = backend.download_f32(&backend.binary_reward_loss_fwd(&reward, &label).unwrap()).unwrap();
    assert_close("extreme binary loss", &loss, &[0.0, 200.0], 1e-30, 1e-6);
}

fn bt_loss_bf16_within_bf16_tolerance<B: Backend>(backend: &B) {
    let mut rng = Rng::new(42);
    let p = 33;
    let data = random_pairs(&mut rng, p);
    let [c, r, m, y] = data.clone().map(|x| to_f64(&bf16_round(&x)));
    let pairs = Pairs::upload(backend, [&data[0], &data[1], &data[2], &data[3]], DType::BF16);
    let loss = backend.bt_loss_fwd(pairs.view(), 0.1).unwrap();
    assert_eq!(loss.dtype(), DType::F32, "per-pair losses are f32 whatever the inputs");
    assert_close("bf16 loss", &backend.download_f32(&loss).unwrap(), &bt_reference(&c, &r, &m, &y, 0.1), 1e-5, 1e-4);
    let w = rng.normal_vec(p, 1.0);
    let dloss = backend.upload_f32(&[p], &w, DType::F32).unwrap();
    let grads = backend.bt_loss_bwd(pairs.view(), 0.1, &dloss).unwrap();
    assert_eq!(grads.reward_chosen.dtype(), DType::BF16);
    let w64 = to_f64(&w);
    let want = numeric_grad(&c, 1e-5, |x| dot(&w64, &bt_reference(x, &r, &m, &y, 0.1)));
    assert_close("bf16 d chosen", &backend.download_f32(&grads.reward_chosen).unwrap(), &want, 1e-3, 8e-3);
}

fn reward_losses_reject_bad_arguments<B: Backend>(backend: &B) {
    let f = |n: usize| backend.zeros(&[n], DType::F32).unwrap();
    let ones = backend.upload_f32(&[3], &[1.0; 3], DType::F32).unwrap();
    let (c, r, m) = (f(3), f(3), f(3));
    let short = f(2);
    let pairs = |margin, label| BtPairs { reward_chosen: &c, reward_rejected: &r, margin, label };

    assert_shape_error(backend.bt_loss_fwd(pairs(&m, &short), 0.0), "bt_loss_fwd", &["label", "[2]", "[3]"]);
    assert_shape_error(backend.bt_loss_fwd(pairs(&short, &ones), 0.0), "bt_loss_fwd", &["margin", "[2]"]);
    let square = backend.zeros(&[3, 1], DType::F32).unwrap();
    let not_flat = BtPairs { reward_chosen: &square, reward_rejected: &square, margin: &square, label: &square };
    assert_shape_error(backend.bt_loss_fwd(not_flat, 0.0), "bt_loss_fwd", &["reward_chosen", "rank 1"]);
    assert_shape_error(backend.bt_loss_bwd(pairs(&m, &ones), 0.0, &short), "bt_loss_bwd", &["dloss", "[2]"]);
    let dloss16 = backend.zeros(&[3], DType::BF16).unwrap();
    let err = error_of(backend.bt_loss_bwd(pairs(&m, &ones), 0.0, &dloss16));
    assert!(matches!(err, Error::DType { op: "bt_loss_bwd", arg: "dloss", .. }), "{err}");
    let label16 = backend.upload_f32(&[3], &[1.0; 3], DType::BF16).unwrap();
    let err = error_of(backend.bt_loss_fwd(pairs(&m, &label16), 0.0));
    assert!(matches!(err, Error::DType { op: "bt_loss_fwd", arg: "label", .. }), "{err}");

    for eps in [-0.1, 1.5, f32::NAN] {
        let err = error_of(backend.bt_loss_fwd(pairs(&m, &ones), eps));
        assert!(matches!(err, Error::Argument { op: "bt_loss_fwd", .. }) && err.to_string().contains("label_smoothing"), "{err}");
    }
    let bad_label = backend.upload_f32(&[3], &[1.0, 1.5, 0.0], DType::F32).unwrap();
    let err = error_of(backend.bt_loss_fwd(pairs(&m, &bad_label), 0.0));
    let msg = err.to_string();
    assert!(matches!(err, Error::Argument { op: "bt_loss_fwd", .. }) && msg.contains("pair 1") && msg.contains("1.5"), "{msg}");
    let bad_margin = backend.upload_f32(&[3], &[0.0, 0.0, f32::INFINITY], DType::F32).unwrap();
    let err = error_of(backend.bt_loss_bwd(pairs(&bad_margin, &ones), 0.0, &ones));
    let msg = err.to_string();
    assert!(matches!(err, Error::Argument { op: "bt_loss_bwd", .. }) && msg.contains("pair 2") && msg.contains("inf"), "{msg}");

    assert_shape_error(backend.binary_reward_loss_fwd(&c, &short), "binary_reward_loss_fwd", &["label", "[2]", "[3]"]);
    assert_shape_error(backend.binary_reward_loss_bwd(&c, &ones, &short), "binary_reward_loss_bwd", &["dloss", "[2]"]);
    let negative = backend.upload_f32(&[3], &[0.0, -1.0, 1.0], DType::F32).unwrap();
    let err = error_of(backend.binary_reward_loss_fwd(&c, &negative));
    assert!(matches!(err, Error::Argument { op: "binary_reward_loss_fwd", .. }) && err.to_string().contains("pair 1"), "{err}");
    let ids = backend.zeros(&[3], DType::U32).unwrap();
    let err = error_of(backend.binary_reward_loss_fwd(&ids, &ones));
    assert!(matches!(err, Error::DType { op: "binary_reward_loss_fwd", arg: "reward", .. }), "{err}");
}

backend_tests!(cpu, emu, cuda;
    bt_loss_matches_hand_computed_values,
    binary_loss_matches_hand_computed_values,
    bt_loss_matches_reference_and_finite_differences,
    binary_loss_matches_reference_and_finite_differences,
    losses_stay_exact_for_extreme_rewards,
    bt_loss_bf16_within_bf16_tolerance,
    reward_losses_reject_bad_arguments,
);
