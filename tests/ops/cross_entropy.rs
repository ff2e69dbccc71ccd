use runtime::{Backend, DType, Error, Tensor};

use crate::backend_tests;
use crate::common::{assert_close, bf16_round, dot, numeric_grad, to_f64, Rng};

/// Naive f64 per-row (loss, lse); loss 0 where the target is `ignore`.
fn reference(z: &[f64], targets: &[u32], v: usize, ignore: u32) -> Vec<(f64, f64)> {
    z.chunks(v)
        .zip(targets)
        .map(|(row, &t)| {
            let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let lse = m + row.iter().map(|&x| (x - m).exp()).sum::<f64>().ln();
            let loss = if t == ignore { 0.0 } else { lse - row[t as usize] };
            (loss, lse)
        })
        .collect()
}

/// Targets in `[0, V)` with about a third of the rows set to `ignore`.
fn targets_with_ignored(rng: &mut Rng, n: usize, v: usize, ignore: u32) -> Vec<u32> {
    (0..n).map(|_| if rng.below(3) == 0 { ignore } else { rng.below(v) as u32 }).collect()
}

fn run<B: Backend>(backend: &B, zt: &Tensor<B>, targets: &[u32], ignore: u32, dloss: &[f32]) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let n = targets.len();
    let tt = backend.upload_u32(&[n], targets).unwrap();
    let out = backend.cross_entropy_fwd(zt, &tt, ignore).unwrap();
    for t in [&out.loss, &out.lse] {
        assert_eq!((t.dims(), t.dtype()), (&[n][..], DType::F32));
    }
    let dlt = backend.upload_f32(&[n], dloss, DType::F32).unwrap();
    let dz = backend.cross_entropy_bwd(zt, &tt, &out.lse, &dlt, ignore).unwrap();
    assert_eq!((dz.dims(), dz.dtype()), (zt.dims(), zt.dtype()));
    let get = |t| backend.download_f32(t).unwrap();
    (get(&out.loss), get(&out.lse), get(&dz))
}

fn cross_entropy_forward_matches_reference<B: Backend>(backend: &B) {
    let mut rng = Rng::new(20);
    // u32::MAX is the usual "no target"; 3 is a real token id that a caller chose to ignore.
    for (n, v, ignore) in [(1, 1, u32::MAX), (4, 7, u32::MAX), (6, 13, 3), (3, 769, u32::MAX), (2, 50257, u32::MAX), (5, 70000, 3)] {
        for dtype in [DType::F32, DType::BF16] {
            let z = rng.normal_vec(n * v, 3.0);
            let targets = targets_with_ignored(&mut rng, n, v, ignore);
            let exact = if dtype == DType::BF16 { to_f64(&bf16_round(&z)) } else { to_f64(&z) };
            let want = reference(&exact, &targets, v, ignore);
            let zt = backend.upload_f32(&[n, v], &z, dtype).unwrap();
            let (loss, lse, _) = run(backend, &zt, &targets, ignore, &vec![0.0; n]);
            let what = format!("N={n} V={v} ignore={ignore} {dtype}");
            assert_close(&format!("loss {what}"), &loss, &want.iter().map(|r| r.0).collect::<Vec<_>>(), 2e-4, 1e-5);
            assert_close(&format!("lse {what}"), &lse, &want.iter().map(|r| r.1).collect::<Vec<_>>(), 2e-4, 1e-5);
            for (row, &t) in targets.iter().enumerate() {
                if t == ignore {
                    assert_eq!(loss[row], 0.0, "{what}: ignored row {row}");
                }
            }
        }
    }
}

fn cross_entropy_huge_logits_are_stable<B: Backend>(backend: &B) {
    let mut rng = Rng::new(21);
    let v = 1000;
    let ramp: Vec<f32> = (0..v).map(|j| -1e4 + 20.0 * j as f32).collect();
    let z: Vec<f32> = [ramp, rng.uniform_vec(v, -1e4, 1e4), vec![1e4; v]].concat();
    let targets = [3, 500, 999];
    let want = reference(&to_f64(&z), &targets, v, u32::MAX);
    let zt = backend.upload_f32(&[3, v], &z, DType::F32).unwrap();
    let (loss, lse, _) = run(backend, &zt, &targets, u32::MAX, &[0.0; 3]);
    assert_close("loss huge", &loss, &want.iter().map(|r| r.0).collect::<Vec<_>>(), 1e-3, 1e-6);
    assert_close("lse huge", &lse, &want.iter().map(|r| r.1).collect::<Vec<_>>(), 1e-3, 1e-6);
}

fn cross_entropy_backward_matches_finite_differences<B: Backend>(backend: &B) {
    let mut rng = Rng::new(22);
    for (n, v, ignore) in [(1, 1, u32::MAX), (5, 7, u32::MAX), (4, 13, 2), (3, 33, u32::MAX)] {
        let z = rng.normal_vec(n * v, 2.0);
        let mut targets = targets_with_ignored(&mut rng, n, v, ignore);
        // At least one row counted and, when there are two, one ignored.
        targets[0] = if ignore == v as u32 - 1 { 0 } else { v as u32 - 1 };
        if n > 1 {
            targets[n - 1] = ignore;
        }
        let dloss = rng.normal_vec(n, 1.0);
        let w = to_f64(&dloss);
        let loss = |z: &[f64]| dot(&w, &reference(z, &targets, v, ignore).iter().map(|r| r.0).collect::<Vec<_>>());
        let want = numeric_grad(&to_f64(&z), 1e-3, loss);
        let zt = backend.upload_f32(&[n, v], &z, DType::F32).unwrap();
        let (_, _, dz) = run(backend, &zt, &targets, ignore, &dloss);
        assert_close(&format!("d(logits) N={n} V={v} ignore={ignore}"), &dz, &want, 2e-4, 1e-3);
        for (row, &t) in targets.iter().enumerate() {
            if t == ignore {
                assert!(dz[row * v..(row + 1) * v].iter().all(|&g| g == 0.0), "ignored row {row} has a gradient");
            }
        }
    }
}

fn cross_entropy_bf16_backward<B: Backend>(backend: &B) {
    let mut rng = Rng::new(23);
    let (n, v) = (4, 769);
    let z = rng.normal_vec(n * v, 3.0);
    let targets = [5, u32::MAX, 768, 0];
    let dloss = rng.normal_vec(n, 1.0);
    let exact = to_f64(&bf16_round(&z));
    let lse: Vec<f64> = reference(&exact, &targets, v, u32::MAX).iter().map(|r| r.1).collect();
    let mut want = vec![0.0; n * v];
    for (row, &t) in targets.iter().enumerate().filter(|(_, &t)| t != u32::MAX) {
        for j in 0..v {
            let p = (exact[row * v + j] - lse[row]).exp();
            want[row * v + j] = dloss[row] as f64 * (p - if j == t as usize { 1.0 } else { 0.0 });
        }
    }
    let zt = backend.upload_f32(&[n, v], &z, DType::BF16).unwrap();
    let (_, _, dz) = run(backend, &zt, &targets, u32::MAX, &dloss);
    assert_close("d(logits) bf16", &dz, &want, 1e-6, 4e-3);
}

fn cross_entropy_rejects_bad_arguments<B: Backend>(backend: &B) {
    let z = backend.zeros(&[3, 7], DType::F32).unwrap();
    let bad_t = backend.upload_u32(&[2], &[0, 1]).unwrap();
    let err = backend.cross_entropy_fwd(&z, &bad_t, u32::MAX).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Shape { op: "cross_entropy_fwd", .. }), "{msg}");
    assert!(msg.contains("[2]") && msg.contains("[3, 7]"), "{msg}");

    let out_of_range = backend.upload_u32(&[3], &[0, 9, u32::MAX]).unwrap();
    let err = backend.cross_entropy_fwd(&z, &out_of_range, u32::MAX).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Argument { op: "cross_entropy_fwd", .. }), "{msg}");
    assert!(msg.contains("row 1") && msg.contains("target 9"), "{msg}");
    // The same targets with 9 ignored are fine, and u32::MAX is then out of range.
    let msg = backend.cross_entropy_fwd(&z, &out_of_range, 9).unwrap_err().to_string();
    assert!(msg.contains("row 2") && msg.contains(&u32::MAX.to_string()), "{msg}");

    let t = backend.upload_u32(&[3], &[0, 6, u32::MAX]).unwrap();
    let fwd = backend.cross_entropy_fwd(&z, &t, u32::MAX).unwrap();
    let d2 = backend.zeros(&[2], DType::F32).unwrap();
    let msg = backend.cross_entropy_bwd(&z, &t, &fwd.lse, &d2, u32::MAX).unwrap_err().to_string();
    assert!(msg.contains("cross_entropy_bwd") && msg.contains("dloss") && msg.contains("[2]"), "{msg}");
    let lse16 = backend.zeros(&[3], DType::BF16).unwrap();
    let err = backend.cross_entropy_bwd(&z, &t, &lse16, &fwd.loss, u32::MAX).unwrap_err();
    assert!(matches!(err, Error::DType { op: "cross_entropy_bwd", arg: "lse", .. }), "{err}");
    let err = backend.cross_entropy_bwd(&z, &out_of_range, &fwd.lse, &fwd.loss, u32::MAX).unwrap_err();
    assert!(err.to_string().contains("row 1"), "{err}");
    let ids = backend.zeros(&[3, 7], DType::U32).unwrap();
    let err = backend.cross_entropy_fwd(&ids, &t, u32::MAX).unwrap_err();
    assert!(matches!(err, Error::DType { op: "cross_entropy_fwd", arg: "logits", .. }), "{err}");
}

/// A row's loss and log-sum-exp are bit-identical whether it is scored alone or inside a batch,
/// where its logits start at another alignment (V odd) and its neighbours differ.
fn cross_entropy_row_is_batch_invariant<B: Backend>(backend: &B) {
    let mut rng = Rng::new(29);
    for dtype in [DType::F32, DType::BF16] {
        let v = 1003;
        let row = rng.normal_vec(v, 2.0);
        let alone = backend.upload_f32(&[1, v], &row, dtype).unwrap();
        let alone = backend.cross_entropy_fwd(&alone, &backend.upload_u32(&[1], &[17]).unwrap(), u32::MAX).unwrap();
        for position in 1..5 {
            let mut batch = rng.normal_vec(5 * v, 2.0);
            batch[position * v..(position + 1) * v].copy_from_slice(&row);
            let mut targets = vec![3; 5];
            targets[position] = 17;
            let batch = backend.upload_f32(&[5, v], &batch, dtype).unwrap();
            let out = backend.cross_entropy_fwd(&batch, &backend.upload_u32(&[5], &targets).unwrap(), u32::MAX).unwrap();
            for (what, a, b) in [("loss", &alone.loss, &out.loss), ("lse", &alone.lse, &out.lse)] {
                let (a, b) = (backend.download_f32(a).unwrap(), backend.download_f32(b).unwrap());
                assert_eq!(a[0].to_bits(), b[position].to_bits(), "{what} {dtype} at row {position}");
            }
        }
    }
}

backend_tests!(
    cpu, emu, cuda;
    cross_entropy_row_is_batch_invariant,
    cross_entropy_forward_matches_reference,
    cross_entropy_huge_logits_are_stable,
    cross_entropy_backward_matches_finite_differences,
    cross_entropy_bf16_backward,
    cross_entropy_rejects_bad_arguments,
);
