use runtime::ops::kl::KlEstimator;
use runtime::{Backend, DType, Error, Tensor};

use crate::backend_tests;
use crate::common::{assert_close, bf16_round, dot, numeric_grad, to_f64, Rng};

/// Per-row f64 results: (logprob, entropy, lse).
type RowRef = (f64, f64, f64);

/// Naive f64 log-softmax at the target, entropy and log-sum-exp of `s·z` for each row.
fn reference(z: &[f64], targets: &[u32], v: usize, s: f64) -> Vec<RowRef> {
    z.chunks(v)
        .zip(targets)
        .map(|(row, &t)| {
            let x: Vec<f64> = row.iter().map(|&z| s * z).collect();
            let m = x.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let lse = m + x.iter().map(|&x| (x - m).exp()).sum::<f64>().ln();
            let entropy = -x
                .iter()
                .map(|&x| {
                    let p = (x - lse).exp();
                    if p == 0.0 { 0.0 } else { p * (x - lse) }
                })
                .sum::<f64>();
            (x[t as usize] - lse, entropy, lse)
        })
        .collect()
}

/// Analytic f64 d(logits) (checked against finite differences on small V by the test below).
fn reference_grad(z: &[f64], targets: &[u32], v: usize, s: f64, dlp: &[f64], dh: Option<&[f64]>) -> Vec<f64> {
    let rows = reference(z, targets, v, s);
    let mut out = vec![0.0; z.len()];
    for (n, (row, &(_, h, lse))) in z.chunks(v).zip(&rows).enumerate() {
        for (j, &zj) in row.iter().enumerate() {
            let log_p = s * zj - lse;
            let p = log_p.exp();
            let onehot = if j == targets[n] as usize { 1.0 } else { 0.0 };
            let ent = dh.map_or(0.0, |dh| if p == 0.0 { 0.0 } else { -dh[n] * p * (log_p + h) });
            out[n * v + j] = s * (dlp[n] * (onehot - p) + ent);
        }
    }
    out
}

fn column(rows: &[RowRef], pick: fn(&RowRef) -> f64) -> Vec<f64> {
    rows.iter().map(pick).collect()
}

fn upload_logits<B: Backend>(backend: &B, n: usize, v: usize, z: &[f32], dtype: DType) -> (Tensor<B>, Vec<f64>) {
    let t = backend.upload_f32(&[n, v], z, dtype).unwrap();
    let exact = if dtype == DType::BF16 { to_f64(&bf16_round(z)) } else { to_f64(z) };
    (t, exact)
}

/// Forward results against the reference; lse/logprob get an absolute tolerance scaled by the
/// logits' magnitude (the f32 rounding of numbers that size).
fn check_forward<B: Backend>(backend: &B, what: &str, z: &[f32], targets: &[u32], v: usize, s: f32, dtype: DType) {
    let n = targets.len();
    let (zt, exact) = upload_logits(backend, n, v, z, dtype);
    let tt = backend.upload_u32(&[n], targets).unwrap();
    let out = backend.logprob_fwd(&zt, &tt, s).unwrap();
    let want = reference(&exact, targets, v, s as f64);
    let scale = exact.iter().filter(|x| x.is_finite()).fold(1.0f64, |m, &x| m.max((x * s as f64).abs()));
    let atol = 2e-4 + 2e-7 * scale;
    for t in [&out.logprob, &out.entropy, &out.lse] {
        assert_eq!((t.dims(), t.dtype()), (&[n][..], DType::F32), "{what}");
    }
    let get = |t| backend.download_f32(t).unwrap();
    assert_close(&format!("logprob {what}"), &get(&out.logprob), &column(&want, |r| r.0), atol, 1e-5);
    assert_close(&format!("entropy {what}"), &get(&out.entropy), &column(&want, |r| r.1), 2e-4, 1e-5);
    assert_close(&format!("lse {what}"), &get(&out.lse), &column(&want, |r| r.2), atol, 1e-6);
}

fn logprob_forward_matches_reference<B: Backend>(backend: &B) {
    let mut rng = Rng::new(10);
    let cases = [(1, 1, 1.0), (3, 7, 1.0), (5, 13, 0.7), (4, 33, 1.9), (2, 769, 1.0), (3, 50257, 1.0), (2, 70000, 0.5)];
    for (n, v, s) in cases {
        let z = rng.normal_vec(n * v, 3.0);
        let targets = rng.ids(n, v);
        for dtype in [DType::F32, DType::BF16] {
            check_forward(backend, &format!("N={n} V={v} s={s} {dtype}"), &z, &targets, v, s, dtype);
        }
    }
}

/// Logits of ±1e4: a naive `Σ e^x` overflows, and an entropy taken as `lse − Σ p·x` cancels.
fn logprob_huge_logits_are_stable<B: Backend>(backend: &B) {
    let mut rng = Rng::new(11);
    let v = 4099;
    let ramp: Vec<f32> = (0..v).map(|j| -1e4 + 2e4 * j as f32 / (v - 1) as f32).collect();
    let mut spike = vec![-1e4f32; v];
    spike[v - 1] = 1e4;
    let mut near_tie = rng.uniform_vec(v, 1e4 - 3.0, 1e4);
    near_tie[17] = -1e4;
    let rows = [ramp, rng.uniform_vec(v, -1e4, 1e4), spike, vec![1e4f32; v], near_tie];
    let z: Vec<f32> = rows.concat();
    let targets = [v as u32 - 1, 5, 0, 1234, 17];
    for s in [1.0, 0.5, 3.0] {
        check_forward(backend, &format!("huge s={s}"), &z, &targets, v, s, DType::F32);
    }
    // Uniform row: exactly log V of entropy.
    let (zt, _) = upload_logits(backend, 5, v, &z, DType::F32);
    let out = backend.logprob_fwd(&zt, &backend.upload_u32(&[5], &targets).unwrap(), 1.0).unwrap();
    let h = backend.download_f32(&out.entropy).unwrap();
    assert!(((h[3] as f64) - (v as f64).ln()).abs() < 1e-4, "uniform entropy {}", h[3]);

    // The backward at these magnitudes against the analytic f64 gradient.
    let dlp = rng.normal_vec(5, 1.0);
    let dh = rng.normal_vec(5, 1.0);
    let dz = run_backward(backend, &zt, &targets, 1.0, &dlp, Some(&dh));
    let want = reference_grad(&to_f64(&z), &targets, v, 1.0, &to_f64(&dlp), Some(&to_f64(&dh)));
    assert_close("d(logits) huge", &dz, &want, 2e-3, 2e-3);
}

/// Tokens masked with −inf carry no probability and get no gradient, and poison nothing.
fn logprob_minus_infinity_logits_are_masked_out<B: Backend>(backend: &B) {
    let mut rng = Rng::new(12);
    let (n, v) = (3, 150);
    let mut z = rng.normal_vec(n * v, 2.0);
    for (i, x) in z.iter_mut().enumerate() {
        // Row 0 fully masked but its target; whole leading blocks masked in row 1.
        if (i < v && i != 4) || (v..v + 100).contains(&i) || i % 7 == 3 {
            *x = f32::NEG_INFINITY;
        }
    }
    let targets = [4, 120, 5];
    check_forward(backend, "masked", &z, &targets, v, 1.3, DType::F32);
    let (zt, exact) = upload_logits(backend, n, v, &z, DType::F32);
    let (dlp, dh) = (rng.normal_vec(n, 1.0), rng.normal_vec(n, 1.0));
    let dz = run_backward(backend, &zt, &targets, 1.3, &dlp, Some(&dh));
    let want = reference_grad(&exact, &targets, v, 1.3, &to_f64(&dlp), Some(&to_f64(&dh)));
    assert_close("d(logits) masked", &dz, &want, 1e-5, 1e-4);
}

fn run_backward<B: Backend>(backend: &B, zt: &Tensor<B>, targets: &[u32], s: f32, dlp: &[f32], dh: Option<&[f32]>) -> Vec<f32> {
    let n = targets.len();
    let tt = backend.upload_u32(&[n], targets).unwrap();
    let fwd = backend.logprob_fwd(zt, &tt, s).unwrap();
    let dlpt = backend.upload_f32(&[n], dlp, DType::F32).unwrap();
    let dht = dh.map(|dh| backend.upload_f32(&[n], dh, DType::F32).unwrap());
    let dz = backend.logprob_bwd(zt, &tt, &fwd.lse, &fwd.entropy, &dlpt, dht.as_ref(), s).unwrap();
    assert_eq!((dz.dims(), dz.dtype()), (zt.dims(), zt.dtype()));
    backend.download_f32(&dz).unwrap()
}

fn logprob_backward_matches_finite_differences<B: Backend>(backend: &B) {
    let mut rng = Rng::new(13);
    for (n, v, s) in [(1, 1, 1.0), (3, 7, 1.0), (2, 13, 0.6), (4, 33, 1.7), (1, 70, 2.3), (2, 129, 1.0)] {
        for with_entropy in [false, true] {
            let z = rng.normal_vec(n * v, 2.0);
            let targets = rng.ids(n, v);
            let (dlp, dh) = (rng.normal_vec(n, 1.0), rng.normal_vec(n, 1.0));
            let (wl, wh) = (to_f64(&dlp), if with_entropy { to_f64(&dh) } else { vec![0.0; n] });
            let loss = |z: &[f64]| {
                let rows = reference(z, &targets, v, s as f64);
                dot(&wl, &column(&rows, |r| r.0)) + dot(&wh, &column(&rows, |r| r.1))
            };
            let want = numeric_grad(&to_f64(&z), 1e-3, loss);
            let zt = backend.upload_f32(&[n, v], &z, DType::F32).unwrap();
            let got = run_backward(backend, &zt, &targets, s, &dlp, with_entropy.then_some(&dh[..]));
            let what = format!("d(logits) N={n} V={v} s={s} entropy={with_entropy}");
            assert_close(&what, &got, &want, 2e-4, 1e-3);
        }
    }
}

fn logprob_backward_large_vocab_and_bf16<B: Backend>(backend: &B) {
    let mut rng = Rng::new(14);
    for (n, v, s, dtype) in [(2, 50257, 1.0, DType::F32), (2, 70000, 0.8, DType::F32), (3, 769, 1.4, DType::BF16)] {
        let z = rng.normal_vec(n * v, 3.0);
        let targets = rng.ids(n, v);
        let (dlp, dh) = (rng.normal_vec(n, 1.0), rng.normal_vec(n, 1.0));
        let (zt, exact) = upload_logits(backend, n, v, &z, dtype);
        let got = run_backward(backend, &zt, &targets, s, &dlp, Some(&dh));
        let want = reference_grad(&exact, &targets, v, s as f64, &to_f64(&dlp), Some(&to_f64(&dh)));
        // bf16 output: one rounding of relative 2^-9.
        let rtol = if dtype == DType::BF16 { 4e-3 } else { 1e-3 };
        assert_close(&format!("d(logits) N={n} V={v} {dtype}"), &got, &want, 1e-6, rtol);
    }
}

/// A row's results do not depend on the rows beside it or on the thread count.
fn logprob_rows_are_bit_identical_alone_or_batched<B: Backend>(backend: &B) {
    let mut rng = Rng::new(15);
    for (n, v) in [(37, 1031), (4, 50257)] {
        let z = rng.normal_vec(n * v, 4.0);
        let targets = rng.ids(n, v);
        let (dlp, dh) = (rng.normal_vec(n, 1.0), rng.normal_vec(n, 1.0));
        let run = |rows: &[usize]| -> (Vec<u32>, Vec<u32>) {
            let zs: Vec<f32> = rows.iter().flat_map(|&r| z[r * v..(r + 1) * v].iter().copied()).collect();
            let ts: Vec<u32> = rows.iter().map(|&r| targets[r]).collect();
            let zt = backend.upload_f32(&[rows.len(), v], &zs, DType::F32).unwrap();
            let tt = backend.upload_u32(&[rows.len()], &ts).unwrap();
            let out = backend.logprob_fwd(&zt, &tt, 0.9).unwrap();
            let mut fwd = vec![];
            for t in [&out.logprob, &out.entropy, &out.lse] {
                fwd.extend(backend.download_f32(t).unwrap().iter().map(|x| x.to_bits()));
            }
            let pick = |x: &[f32]| -> Vec<f32> { rows.iter().map(|&r| x[r]).collect() };
            let bwd = run_backward(backend, &zt, &ts, 0.9, &pick(&dlp), Some(&pick(&dh)));
            (fwd, bwd.iter().map(|x| x.to_bits()).collect())
        };
        let all: Vec<usize> = (0..n).collect();
        let batched = run(&all);
        let one_thread = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        assert!(one_thread.install(|| run(&all)) == batched, "N={n} V={v}: one thread differs");
        let reversed: Vec<usize> = (0..n).rev().collect();
        let (rev_fwd, rev_bwd) = run(&reversed);
        for r in [0, n / 2, n - 1] {
            let (alone_fwd, alone_bwd) = run(&[r]);
            let k = n - 1 - r;
            for (col, want) in alone_fwd.iter().enumerate() {
                assert_eq!(batched.0[col * n + r], *want, "N={n} V={v} row {r} output {col} batched");
                assert_eq!(rev_fwd[col * n + k], *want, "N={n} V={v} row {r} output {col} reversed");
            }
            assert!(batched.1[r * v..(r + 1) * v] == alone_bwd[..], "N={n} V={v} row {r} d(logits) batched");
            assert!(rev_bwd[k * v..(k + 1) * v] == alone_bwd[..], "N={n} V={v} row {r} d(logits) reversed");
        }
    }
}

/// The kernels' determinism claim: one row scored alone, and at each position of a batch of 5
/// whose other rows are fresh random logits (so its start, for an odd V, has every alignment),
/// gives bit-identical log-prob, lse and entropy, in f32 and bf16.
fn logprob_row_alone_equals_row_in_any_batch_position<B: Backend>(backend: &B) {
    let mut rng = Rng::new(16);
    for (v, dtype) in [(1031, DType::F32), (1031, DType::BF16), (50257, DType::F32), (4099, DType::BF16)] {
        // Most of the mass in the first and last 160 logits, which misaligned rows read element
        // by element, so that any change of their fold order shows in the totals' last bits.
        let mut row = rng.normal_vec(v, 4.0);
        for j in (0..160).chain(v - 160..v) {
            row[j] += 12.0;
        }
        let target = rng.ids(1, v)[0];
        let score = |z: &[f32], targets: &[u32]| -> Vec<[u32; 3]> {
            let n = targets.len();
            let zt = backend.upload_f32(&[n, v], z, dtype).unwrap();
            let out = backend.logprob_fwd(&zt, &backend.upload_u32(&[n], targets).unwrap(), 0.8).unwrap();
            let [lp, h, lse] = [&out.logprob, &out.entropy, &out.lse].map(|t| backend.download_f32(t).unwrap());
            (0..n).map(|i| [lp[i].to_bits(), h[i].to_bits(), lse[i].to_bits()]).collect()
        };
        let alone = score(&row, &[target])[0];
        for position in 0..5 {
            let mut z = rng.normal_vec(5 * v, 6.0);
            z[position * v..(position + 1) * v].copy_from_slice(&row);
            let mut targets = rng.ids(5, v);
            targets[position] = target;
            let batched = score(&z, &targets)[position];
            assert_eq!(batched, alone, "V={v} {dtype} position {position}: (logprob, entropy, lse) bits differ");
        }
    }
}

fn logprob_rejects_bad_arguments<B: Backend>(backend: &B) {
    let z = backend.zeros(&[3, 7], DType::F32).unwrap();
    let t = backend.upload_u32(&[3], &[0, 6, 1]).unwrap();

    let bad_t = backend.upload_u32(&[4], &[0, 1, 2, 3]).unwrap();
    let err = backend.logprob_fwd(&z, &bad_t, 1.0).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Shape { op: "logprob_fwd", .. }), "{msg}");
    assert!(msg.contains("[4]") && msg.contains("[3, 7]"), "{msg}");

    let flat = backend.zeros(&[21], DType::F32).unwrap();
    let msg = backend.logprob_fwd(&flat, &t, 1.0).unwrap_err().to_string();
    assert!(msg.contains("logits") && msg.contains("[21]"), "{msg}");
    let empty_vocab = backend.zeros(&[3, 0], DType::F32).unwrap();
    let msg = backend.logprob_fwd(&empty_vocab, &t, 1.0).unwrap_err().to_string();
    assert!(msg.contains("[3, 0]"), "{msg}");

    let float_t = backend.zeros(&[3], DType::F32).unwrap();
    let err = backend.logprob_fwd(&z, &float_t, 1.0).unwrap_err();
    assert!(matches!(err, Error::DType { op: "logprob_fwd", arg: "targets", .. }), "{err}");
    let int_z = backend.zeros(&[3, 7], DType::U32).unwrap();
    let err = backend.logprob_fwd(&int_z, &t, 1.0).unwrap_err();
    assert!(matches!(err, Error::DType { op: "logprob_fwd", arg: "logits", .. }), "{err}");

    let out_of_range = backend.upload_u32(&[3], &[0, 1, 7000]).unwrap();
    let err = backend.logprob_fwd(&z, &out_of_range, 1.0).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Argument { op: "logprob_fwd", .. }), "{msg}");
    assert!(msg.contains("row 2") && msg.contains("7000"), "{msg}");

    for s in [0.0, -1.0, f32::NAN, f32::INFINITY] {
        let err = backend.logprob_fwd(&z, &t, s).unwrap_err();
        assert!(matches!(err, Error::Argument { op: "logprob_fwd", .. }), "s={s}: {err}");
        assert!(err.to_string().contains("inv_temperature"), "{err}");
    }

    let fwd = backend.logprob_fwd(&z, &t, 1.0).unwrap();
    let d3 = backend.zeros(&[3], DType::F32).unwrap();
    let d4 = backend.zeros(&[4], DType::F32).unwrap();
    let msg = backend.logprob_bwd(&z, &t, &d4, &fwd.entropy, &d3, None, 1.0).unwrap_err().to_string();
    assert!(msg.contains("logprob_bwd") && msg.contains("lse") && msg.contains("[4]"), "{msg}");
    let msg = backend.logprob_bwd(&z, &t, &fwd.lse, &fwd.entropy, &d3, Some(&d4), 1.0).unwrap_err().to_string();
    assert!(msg.contains("dentropy") && msg.contains("[4]"), "{msg}");
    let d3_bf16 = backend.zeros(&[3], DType::BF16).unwrap();
    let err = backend.logprob_bwd(&z, &t, &fwd.lse, &fwd.entropy, &d3_bf16, None, 1.0).unwrap_err();
    assert!(matches!(err, Error::DType { op: "logprob_bwd", arg: "dlogprob", .. }), "{err}");
    let msg = backend.logprob_bwd(&z, &out_of_range, &fwd.lse, &fwd.entropy, &d3, None, 1.0).unwrap_err().to_string();
    assert!(msg.contains("logprob_bwd") && msg.contains("row 2") && msg.contains("7000"), "{msg}");
    let err = backend.logprob_bwd(&z, &t, &fwd.lse, &fwd.entropy, &d3, None, 0.0).unwrap_err();
    assert!(matches!(err, Error::Argument { op: "logprob_bwd", .. }), "{err}");
}

/// The fused policy + reference forward with the KL estimate gives what `logprob_fwd` twice and
/// `kl_fwd` give on the same backend: the log-probs, entropy and lse bit for bit (the same row
/// reduction), the KL within f32 rounding; odd V so rows are misaligned; bad arguments refused.
fn logprob_kl_fwd_equals_the_separate_ops<B: Backend>(backend: &B) {
    let mut rng = Rng::new(41);
    let (n, v) = (5, 1031);
    for dtype in [DType::F32, DType::BF16] {
        let policy = rng.normal_vec(n * v, 3.0);
        let reference: Vec<f32> = policy.iter().zip(rng.normal_vec(n * v, 0.3)).map(|(a, d)| a + d).collect();
        let z = backend.upload_f32(&[n, v], &policy, dtype).unwrap();
        let z_ref = backend.upload_f32(&[n, v], &reference, dtype).unwrap();
        let targets = backend.upload_u32(&[n], &rng.ids(n, v)).unwrap();
        for estimator in [KlEstimator::K1, KlEstimator::K2, KlEstimator::K3] {
            let fused = backend.logprob_kl_fwd(&z, &z_ref, &targets, 0.7, estimator).unwrap();
            let alone = backend.logprob_fwd(&z, &targets, 0.7).unwrap();
            let alone_ref = backend.logprob_fwd(&z_ref, &targets, 0.7).unwrap();
            let kl = backend.kl_fwd(&alone.logprob, &alone_ref.logprob, estimator).unwrap();
            let bits = |t: &Tensor<B>| backend.download_f32(t).unwrap().iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            for (what, got, want) in [
                ("logprob", &fused.policy.logprob, &alone.logprob),
                ("entropy", &fused.policy.entropy, &alone.entropy),
                ("lse", &fused.policy.lse, &alone.lse),
                ("ref_logprob", &fused.ref_logprob, &alone_ref.logprob),
            ] {
                assert_eq!(bits(got), bits(want), "{what} {dtype} {estimator:?}");
            }
            let want: Vec<f64> = backend.download_f32(&kl).unwrap().iter().map(|&x| x as f64).collect();
            assert_close(&format!("kl {dtype} {estimator:?}"), &backend.download_f32(&fused.kl).unwrap(), &want, 1e-6, 1e-6);
        }
    }
    let z = backend.zeros(&[2, 3], DType::F32).unwrap();
    let t = backend.upload_u32(&[2], &[0, 1]).unwrap();
    let err = backend.logprob_kl_fwd(&z, &backend.zeros(&[2, 4], DType::F32).unwrap(), &t, 1.0, KlEstimator::K3).unwrap_err();
    assert!(matches!(err, Error::Shape { op: "logprob_fwd_kl", .. }), "{err}");
    let err = backend.logprob_kl_fwd(&z, &backend.zeros(&[2, 3], DType::BF16).unwrap(), &t, 1.0, KlEstimator::K3).unwrap_err();
    assert!(matches!(err, Error::DType { op: "logprob_fwd_kl", arg: "ref_logits", .. }), "{err}");
}

backend_tests!(cpu, emu, cuda;
    logprob_kl_fwd_equals_the_separate_ops,
    logprob_forward_matches_reference,
    logprob_huge_logits_are_stable,
    logprob_minus_infinity_logits_are_masked_out,
    logprob_backward_matches_finite_differences,
    logprob_backward_large_vocab_and_bf16,
    logprob_rows_are_bit_identical_alone_or_batched,
    logprob_row_alone_equals_row_in_any_batch_position,
    logprob_rejects_bad_arguments,
);

/// The forward's I/O on the emulator's counters: global bytes read within 5% of the logits'
/// size (each logit read once; the repeated packs of misaligned rows, the targets and the
/// target logits are the rest) and at least 90% of the fetched sectors' bytes used.
#[test]
fn logprob_fwd_reads_the_logits_once_coalesced() {
    let mut rng = Rng::new(17);
    for (n, v, dtype) in [(3, 50257, DType::F32), (3, 50257, DType::BF16), (1, 70001, DType::F32), (4, 32768, DType::BF16)] {
        let emu = runtime::Emu::new().unwrap_or_else(|e| panic!("{e}"));
        let zt = emu.upload_f32(&[n, v], &rng.normal_vec(n * v, 3.0), dtype).unwrap();
        let tt = emu.upload_u32(&[n], &rng.ids(n, v)).unwrap();
        emu.logprob_fwd(&zt, &tt, 1.0).unwrap();
        let name = format!("logprob_fwd_{}", if dtype == DType::BF16 { "bf16" } else { "f32" });
        let stats = emu.kernel_stats();
        let (_, s) = stats.iter().find(|(k, _)| *k == name).unwrap_or_else(|| panic!("no stats for {name}"));
        let logits_bytes = (n * v * dtype.size_in_bytes()) as f64;
        let ratio = s.counters.global_load_bytes as f64 / logits_bytes;
        let coalescing = s.counters.global_coalescing();
        println!("{name} N={n} V={v}: read {ratio:.4}x the logits, coalescing {coalescing:.4}");
        assert!((1.0..=1.05).contains(&ratio), "{name} N={n} V={v}: read {ratio}x the logits");
        assert!(coalescing >= 0.9, "{name} N={n} V={v}: coalescing {coalescing}");
    }
}
