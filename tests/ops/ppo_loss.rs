//! `ppo_loss`: hand-computed cases, an f64 reference over ragged masks, its gradient against
//! finite differences, bf16, and bad arguments. The masks and reduction weights here serve the
//! other RL loss tests too.

use runtime::ops::ppo_loss::{LossReduction, PpoLossConfig};
use runtime::{Backend, DType, Error};

use crate::backend_tests;
use crate::common::{assert_close, assert_shape_error, bf16_round, error_of, numeric_grad, to_f64, Rng};

pub const REDUCTIONS: [LossReduction; 2] = [LossReduction::TokenMean, LossReduction::SequenceMean];

/// Rows laid out as RL batches are: a prompt, a response (the masked tokens), then padding.
/// Some rows have no response at all.
pub fn ragged_mask(rng: &mut Rng, b: usize, t: usize) -> Vec<u32> {
    let mut mask = vec![0u32; b * t];
    for row in mask.chunks_mut(t) {
        if t > 1 && rng.below(5) == 0 {
            continue;
        }
        let start = rng.below(t);
        let len = 1 + rng.below(t - start);
        row[start..start + len].fill(1);
    }
    if !mask.contains(&1) {
        mask[0] = 1;
    }
    mask
}

/// Per-token weights of the reduction, in f64.
pub fn reduction_weights(mask: &[u32], t: usize, reduction: LossReduction) -> Vec<f64> {
    let rows: Vec<f64> = mask.chunks(t).map(|r| r.iter().filter(|&&m| m == 1).count() as f64).collect();
    let total: f64 = rows.iter().sum();
    let nonempty = rows.iter().filter(|&&n| n > 0.0).count() as f64;
    mask.iter()
        .enumerate()
        .map(|(i, &m)| match (m, reduction) {
            (0, _) => 0.0,
            (_, LossReduction::TokenMean) => 1.0 / total,
            (_, LossReduction::SequenceMean) => 1.0 / (rows[i / t] * nonempty),
        })
        .collect()
}

/// The clipped surrogate of one token in f64.
pub fn surrogate(log_ratio: f64, advantage: f64, config: &PpoLossConfig) -> f64 {
    let ratio = log_ratio.exp();
    let clipped = ratio.clamp(1.0 - f64::from(config.clip_low), 1.0 + f64::from(config.clip_high));
    let loss = (-advantage * ratio).max(-advantage * clipped);
    match config.dual_clip {
        Some(c) if advantage < 0.0 => loss.min(-f64::from(c) * advantage),
        _ => loss,
    }
}

/// Log-ratios kept at least 1e-3 away from the kinks of the clipped surrogate (the clip bounds and
/// the dual clip), so that finite differences do not straddle one.
pub fn log_ratios(rng: &mut Rng, n: usize, config: &PpoLossConfig) -> Vec<f32> {
    let kinks = [1.0 - config.clip_low, 1.0 + config.clip_high, config.dual_clip.unwrap_or(f32::NAN)];
    (0..n)
        .map(|_| loop {
            let x = (rng.normal() * 0.4) as f32;
            if kinks.iter().all(|&k| (x.exp() - k).abs().is_nan() || (x.exp() - k).abs() > 1e-3) {
                break x;
            }
        })
        .collect()
}

fn reference(lp: &[f64], old: &[f64], adv: &[f64], weights: &[f64], config: &PpoLossConfig) -> f64 {
    (0..lp.len()).filter(|&i| weights[i] > 0.0).map(|i| weights[i] * surrogate(lp[i] - old[i], adv[i], config)).sum()
}

fn upload<B: Backend>(backend: &B, dims: &[usize], x: &[f32], dtype: DType) -> runtime::Tensor<B> {
    backend.upload_f32(dims, x, dtype).unwrap()
}

fn ppo_loss_matches_hand_computed_values<B: Backend>(backend: &B) {
    // Ratios 1.5, 0.5, 1.1, 4 (and a masked-out token) with ε = 0.2 and dual clip c = 3:
    // token 0: A = 2,  max(−3, −2.4) = −2.4 (clipped above);
    // token 1: A = −1, max(0.5, 0.8) = 0.8 (clipped below);
    // token 2: A = 1,  −1.1 (inside the range, gradient −1.1);
    // token 3: A = −1, max(4, 1.2) = 4, dual clip min(4, 3) = 3.
    let ratios = [1.5f32, 0.5, 1.1, 4.0, 2.0];
    let old = [-1.0f32, -2.0, -0.5, -3.0, -1.0];
    let lp: Vec<f32> = ratios.iter().zip(old).map(|(r, o)| o + r.ln()).collect();
    let adv = [2.0f32, -1.0, 1.0, -1.0, 5.0];
    let mask = [1u32, 1, 1, 1, 0];
    let dims = [1, 5];
    let (lpt, oldt, advt) = (
        upload(backend, &dims, &lp, DType::F32),
        upload(backend, &dims, &old, DType::F32),
        upload(backend, &dims, &adv, DType::F32),
    );
    let maskt = backend.upload_u32(&dims, &mask).unwrap();
    let config = PpoLossConfig { dual_clip: Some(3.0), ..PpoLossConfig::new(0.2) };
    let out = backend.ppo_loss(&lpt, &oldt, &advt, &maskt, &config).unwrap();
    assert_close("loss", &[out.loss], &[(-2.4 + 0.8 - 1.1 + 3.0) / 4.0], 1e-6, 1e-5);
    let grad = backend.download_f32(&out.dlogprob).unwrap();
    // Only token 2 is unclipped: d/d(logprob) of −A·r is −A·r = −1.1, times the weight 1/4.
    assert_close("dlogprob", &grad, &[0.0, 0.0, -1.1 / 4.0, 0.0, 0.0], 1e-7, 1e-5);
    assert_eq!(out.stats.tokens, 4);
    assert_close("clip fraction", &[out.stats.clip_fraction], &[0.5], 0.0, 1e-6);
    assert_close("dual clip fraction", &[out.stats.dual_clip_fraction], &[0.25], 0.0, 1e-6);
    let k3 = |r: f64| r - 1.0 - r.ln();
    let approx_kl = (k3(1.5) + k3(0.5) + k3(1.1) + k3(4.0)) / 4.0;
    assert_close("approx kl", &[out.stats.approx_kl], &[approx_kl], 1e-6, 1e-5);

    // Without the dual clip token 3 costs 4; the sequence mean of two rows weighs them equally:
    // row 0 tokens 0, 1 → (−2.4 + 0.8)/2; row 1 token 2 alone → −1.1; mean of the rows.
    let config = PpoLossConfig { reduction: LossReduction::SequenceMean, ..PpoLossConfig::new(0.2) };
    let two_rows = [1u32, 1, 0, 0, 0, 0, 0, 1, 0, 0];
    let dims = [2, 5];
    let cat = |x: &[f32]| x.iter().chain(x).copied().collect::<Vec<_>>();
    let (lpt, oldt, advt) = (
        upload(backend, &dims, &cat(&lp), DType::F32),
        upload(backend, &dims, &cat(&old), DType::F32),
        upload(backend, &dims, &cat(&adv), DType::F32),
    );
    let maskt = backend.upload_u32(&dims, &two_rows).unwrap();
    let out = backend.ppo_loss(&lpt, &oldt, &advt, &maskt, &config).unwrap();
    assert_close("sequence-mean loss", &[out.loss], &[((-2.4 + 0.8) / 2.0 - 1.1) / 2.0], 1e-6, 1e-5);
    let grad = backend.download_f32(&out.dlogprob).unwrap();
    let mut want = vec![0.0; 10];
    want[7] = -1.1 / 2.0;
    assert_close("sequence-mean dlogprob", &grad, &want, 1e-7, 1e-5);
}

/// Random configs: symmetric and clip-higher ranges, with and without a dual clip.
pub fn configs() -> Vec<PpoLossConfig> {
    let mut out = vec![];
    for reduction in REDUCTIONS {
        for (clip_low, clip_high, dual_clip) in [(0.2, 0.2, None), (0.1, 0.28, Some(2.0)), (0.0, 0.0, Some(1.5))] {
            out.push(PpoLossConfig { clip_low, clip_high, dual_clip, reduction });
        }
    }
    out
}

fn ppo_loss_matches_reference_and_finite_differences<B: Backend>(backend: &B) {
    let mut rng = Rng::new(70);
    for (b, t) in [(1, 1), (3, 7), (5, 13), (4, 769)] {
        for config in configs() {
            let n = b * t;
            let old = rng.uniform_vec(n, -6.0, -0.1);
            let lp: Vec<f32> = old.iter().zip(log_ratios(&mut rng, n, &config)).map(|(o, r)| o + r).collect();
            let adv = rng.normal_vec(n, 1.0);
            let mask = ragged_mask(&mut rng, b, t);
            let dims = [b, t];
            let out = backend
                .ppo_loss(
                    &upload(backend, &dims, &lp, DType::F32),
                    &upload(backend, &dims, &old, DType::F32),
                    &upload(backend, &dims, &adv, DType::F32),
                    &backend.upload_u32(&dims, &mask).unwrap(),
                    &config,
                )
                .unwrap();
            let (lp64, old64, adv64) = (to_f64(&lp), to_f64(&old), to_f64(&adv));
            let w = reduction_weights(&mask, t, config.reduction);
            let what = format!("[{b}, {t}] {config:?}");
            assert_close(
                &format!("loss {what}"),
                &[out.loss],
                &[reference(&lp64, &old64, &adv64, &w, &config)],
                1e-6,
                1e-5,
            );
            let want = numeric_grad(&lp64, 1e-5, |x| reference(x, &old64, &adv64, &w, &config));
            assert_eq!((out.dlogprob.dims(), out.dlogprob.dtype()), (&dims[..], DType::F32));
            assert_close(&format!("dlogprob {what}"), &backend.download_f32(&out.dlogprob).unwrap(), &want, 1e-7, 1e-4);

            let masked: Vec<usize> = (0..n).filter(|&i| mask[i] == 1).collect();
            let count = masked.len() as f64;
            let clipped = masked
                .iter()
                .filter(|&&i| {
                    let r = (lp64[i] - old64[i]).exp();
                    let hi = 1.0 + f64::from(config.clip_high);
                    let lo = 1.0 - f64::from(config.clip_low);
                    (adv64[i] > 0.0 && r > hi) || (adv64[i] < 0.0 && r < lo)
                })
                .count() as f64;
            assert_eq!(out.stats.tokens, masked.len(), "{what}");
            assert_close(&format!("clip fraction {what}"), &[out.stats.clip_fraction], &[clipped / count], 1e-7, 0.0);
            let kl: f64 =
                masked.iter().map(|&i| (lp64[i] - old64[i]).exp_m1() - (lp64[i] - old64[i])).sum::<f64>() / count;
            assert_close(&format!("approx kl {what}"), &[out.stats.approx_kl], &[kl], 1e-7, 1e-4);
        }
    }
}

fn ppo_loss_bf16_within_bf16_tolerance<B: Backend>(backend: &B) {
    let mut rng = Rng::new(71);
    let (b, t) = (3, 33);
    let config = PpoLossConfig::new(0.2);
    let old = bf16_round(&rng.uniform_vec(b * t, -4.0, -0.1));
    let lp = bf16_round(&old.iter().zip(log_ratios(&mut rng, b * t, &config)).map(|(o, r)| o + r).collect::<Vec<_>>());
    let adv = bf16_round(&rng.normal_vec(b * t, 1.0));
    let mask = ragged_mask(&mut rng, b, t);
    let dims = [b, t];
    let up = |x: &[f32]| upload(backend, &dims, x, DType::BF16);
    let out =
        backend.ppo_loss(&up(&lp), &up(&old), &up(&adv), &backend.upload_u32(&dims, &mask).unwrap(), &config).unwrap();
    assert_eq!(out.dlogprob.dtype(), DType::BF16);
    let w = reduction_weights(&mask, t, config.reduction);
    let (lp64, old64, adv64) = (to_f64(&lp), to_f64(&old), to_f64(&adv));
    assert_close("bf16 loss", &[out.loss], &[reference(&lp64, &old64, &adv64, &w, &config)], 1e-5, 1e-4);
    let want = numeric_grad(&lp64, 1e-5, |x| reference(x, &old64, &adv64, &w, &config));
    assert_close("bf16 dlogprob", &backend.download_f32(&out.dlogprob).unwrap(), &want, 1e-6, 8e-3);
}

fn ppo_loss_without_masked_tokens_is_zero<B: Backend>(backend: &B) {
    let x = upload(backend, &[2, 3], &[0.5; 6], DType::F32);
    let mask = backend.zeros(&[2, 3], DType::U32).unwrap();
    for reduction in REDUCTIONS {
        let out = backend.ppo_loss(&x, &x, &x, &mask, &PpoLossConfig { reduction, ..PpoLossConfig::new(0.2) }).unwrap();
        assert_eq!((out.loss, out.stats.tokens, out.stats.clip_fraction), (0.0, 0, 0.0));
        assert_eq!(backend.download_f32(&out.dlogprob).unwrap(), vec![0.0; 6]);
    }
}

/// A row's loss, statistics and gradient are bit-identical whether it is scored alone or at any
/// position of a batch whose other rows have no masked token (they add exact zeros): the kernel's
/// per-row fold depends on the token's index, not on where the row starts (T = 781 puts the five
/// rows at offsets 0, 13, 26, 7 and 20 of a 32-element window).
fn ppo_loss_row_alone_equals_row_in_any_batch_position<B: Backend>(backend: &B) {
    let mut rng = Rng::new(29);
    let (b, t) = (5, 781);
    let config = PpoLossConfig { dual_clip: Some(3.0), ..PpoLossConfig::new(0.2) };
    for dtype in [DType::F32, DType::BF16] {
        let old = rng.uniform_vec(t, -4.0, -0.1);
        let lp: Vec<f32> = old.iter().zip(log_ratios(&mut rng, t, &config)).map(|(o, r)| o + r).collect();
        let adv = rng.normal_vec(t, 1.0);
        let mut mask = vec![0u32; t];
        mask[100..700].fill(1);
        for reduction in REDUCTIONS {
            let config = PpoLossConfig { reduction, ..config };
            let run = |dims: &[usize], lp: &[f32], old: &[f32], adv: &[f32], mask: &[u32]| {
                let up = |x: &[f32]| upload(backend, dims, x, dtype);
                let out = backend
                    .ppo_loss(&up(lp), &up(old), &up(adv), &backend.upload_u32(dims, mask).unwrap(), &config)
                    .unwrap();
                let s = out.stats;
                let scalars = [out.loss, s.clip_fraction, s.dual_clip_fraction, s.approx_kl].map(f32::to_bits);
                (scalars, s.tokens, backend.download_f32(&out.dlogprob).unwrap())
            };
            let (alone, tokens, grad) = run(&[1, t], &lp, &old, &adv, &mask);
            for position in 0..b {
                let place = |row: &[f32], rng: &mut Rng| {
                    let mut x = rng.normal_vec(b * t, 1.0);
                    x[position * t..(position + 1) * t].copy_from_slice(row);
                    x
                };
                let (blp, bold, badv) = (place(&lp, &mut rng), place(&old, &mut rng), place(&adv, &mut rng));
                let mut bmask = vec![0u32; b * t];
                bmask[position * t..(position + 1) * t].copy_from_slice(&mask);
                let (batched, btokens, bgrad) = run(&[b, t], &blp, &bold, &badv, &bmask);
                let at = format!("{dtype} {reduction:?} row at {position}");
                assert_eq!((batched, btokens), (alone, tokens), "{at}");
                let row = &bgrad[position * t..(position + 1) * t];
                assert!(row.iter().zip(&grad).all(|(a, b)| a.to_bits() == b.to_bits()), "{at}: gradient");
                assert_eq!(bgrad.iter().filter(|&&g| g != 0.0).count(), grad.iter().filter(|&&g| g != 0.0).count(), "{at}");
            }
        }
    }
}

fn ppo_loss_rejects_bad_arguments<B: Backend>(backend: &B) {
    let x = backend.zeros(&[2, 5], DType::F32).unwrap();
    let mask = backend.upload_u32(&[2, 5], &[1; 10]).unwrap();
    let config = PpoLossConfig::new(0.2);
    let short = backend.zeros(&[2, 4], DType::F32).unwrap();
    assert_shape_error(
        backend.ppo_loss(&x, &short, &x, &mask, &config),
        "ppo_loss",
        &["old_logprob", "[2, 4]", "[2, 5]"],
    );
    assert_shape_error(
        backend.ppo_loss(&x, &x, &x, &backend.upload_u32(&[10], &[1; 10]).unwrap(), &config),
        "ppo_loss",
        &["mask", "[10]"],
    );
    let flat = backend.zeros(&[10], DType::F32).unwrap();
    assert_shape_error(
        backend.ppo_loss(&flat, &flat, &flat, &backend.upload_u32(&[10], &[1; 10]).unwrap(), &config),
        "ppo_loss",
        &["rank 2"],
    );
    let err = error_of(backend.ppo_loss(&x, &x, &x, &x, &config));
    assert!(matches!(err, Error::DType { op: "ppo_loss", arg: "mask", .. }), "{err}");
    let x16 = backend.zeros(&[2, 5], DType::BF16).unwrap();
    let err = error_of(backend.ppo_loss(&x, &x, &x16, &mask, &config));
    assert!(matches!(err, Error::DType { op: "ppo_loss", arg: "advantages", .. }), "{err}");
    let mut bad = [1u32; 10];
    bad[7] = 2;
    let err = error_of(backend.ppo_loss(&x, &x, &x, &backend.upload_u32(&[2, 5], &bad).unwrap(), &config));
    let msg = err.to_string();
    assert!(matches!(err, Error::Argument { op: "ppo_loss", .. }) && msg.contains("row 1, column 2"), "{msg}");
    for bad in [
        PpoLossConfig::new(1.0),
        PpoLossConfig::new(-0.1),
        PpoLossConfig { clip_high: f32::NAN, ..config },
        PpoLossConfig { dual_clip: Some(1.0), ..config },
        PpoLossConfig { dual_clip: Some(f32::INFINITY), ..config },
    ] {
        let err = error_of(backend.ppo_loss(&x, &x, &x, &mask, &bad));
        assert!(matches!(err, Error::Argument { op: "ppo_loss", .. }), "{bad:?}: {err}");
    }
}

backend_tests!(cpu, emu, cuda;
    ppo_loss_matches_hand_computed_values,
    ppo_loss_matches_reference_and_finite_differences,
    ppo_loss_bf16_within_bf16_tolerance,
    ppo_loss_without_masked_tokens_is_zero,
    ppo_loss_row_alone_equals_row_in_any_batch_position,
    ppo_loss_rejects_bad_arguments,
);
