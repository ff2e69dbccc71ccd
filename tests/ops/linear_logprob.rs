use runtime::ops::gemm::GemmSpec;
use runtime::ops::linear_logprob::{LinearLogProb, LinearLogProbGrads};
use runtime::ops::logprob::LogProbOut;
use runtime::{Backend, DType, Error, Tensor};

use crate::backend_tests;
use crate::common::{assert_close, assert_shape_error, dot, error_of, numeric_grad, to_f64, Rng};

/// One problem: hidden `[N, C]`, weight `[V, C]`, targets, upstream gradients.
struct Problem<B: Backend> {
    hidden: Tensor<B>,
    weight: Tensor<B>,
    targets: Tensor<B>,
    dlogprob: Tensor<B>,
    dentropy: Tensor<B>,
}

fn problem<B: Backend>(b: &B, rng: &mut Rng, (n, c, v): (usize, usize, usize), dtype: DType) -> Problem<B> {
    Problem {
        hidden: b.upload_f32(&[n, c], &rng.normal_vec(n * c, 1.0), dtype).unwrap(),
        weight: b.upload_f32(&[v, c], &rng.normal_vec(v * c, 0.5), dtype).unwrap(),
        targets: b.upload_u32(&[n], &rng.ids(n, v)).unwrap(),
        dlogprob: b.upload_f32(&[n], &rng.normal_vec(n, 1.0), DType::F32).unwrap(),
        dentropy: b.upload_f32(&[n], &rng.normal_vec(n, 1.0), DType::F32).unwrap(),
    }
}

fn op<'a, B: Backend>(p: &'a Problem<B>, s: f32, chunk: usize) -> LinearLogProb<'a, B> {
    LinearLogProb { hidden: &p.hidden, weight: &p.weight, targets: &p.targets, inv_temperature: s, chunk }
}

/// The unfused path: the `[N, V]` logits by one GEMM, then `logprob_fwd`.
fn unfused_fwd<B: Backend>(b: &B, p: &Problem<B>, s: f32) -> LogProbOut<B> {
    let logits = b.gemm(&p.hidden, &p.weight, None, GemmSpec::nt()).unwrap();
    b.logprob_fwd(&logits, &p.targets, s).unwrap()
}

/// `gemm_bwd ∘ logprob_bwd` from the saved `fwd`.
fn unfused_bwd<B: Backend>(b: &B, p: &Problem<B>, s: f32, fwd: &LogProbOut<B>, entropy: bool) -> (Tensor<B>, Tensor<B>) {
    let logits = b.gemm(&p.hidden, &p.weight, None, GemmSpec::nt()).unwrap();
    let dh = entropy.then_some(&p.dentropy);
    let dz = b.logprob_bwd(&logits, &p.targets, &fwd.lse, &fwd.entropy, &p.dlogprob, dh, s).unwrap();
    let g = b.gemm_bwd(&p.hidden, &p.weight, &dz, false, GemmSpec::nt()).unwrap();
    (g.da, g.db)
}

fn get<B: Backend>(b: &B, t: &Tensor<B>) -> Vec<f32> {
    b.download_f32(t).unwrap()
}

fn bits<B: Backend>(b: &B, t: &Tensor<B>) -> Vec<u32> {
    get(b, t).iter().map(|x| x.to_bits()).collect()
}

/// `atol` relative to the largest magnitude of `want`.
fn close_to<B: Backend>(b: &B, what: &str, got: &Tensor<B>, want: &Tensor<B>, rel: f64) {
    let want = to_f64(&get(b, want));
    let scale = want.iter().fold(1f64, |m, &x| m.max(x.abs()));
    assert_close(what, &get(b, got), &want, rel * scale, rel);
}

/// Forward and backward against the unfused ops on the same backend, for chunks that divide V,
/// do not, are 1 column, and cover V (then the forward is the same bits).
fn linear_logprob_matches_gemm_and_logprob<B: Backend>(b: &B) {
    let mut rng = Rng::new(40);
    let cases = [((1, 33, 1000), &[256, 1000, 4096][..]), ((7, 33, 1000), &[256, 333]), ((5, 16, 129), &[1, 7, 64, 129])];
    for (dims, chunks) in cases {
        for dtype in [DType::F32, DType::BF16] {
            let p = problem(b, &mut rng, dims, dtype);
            let s = 0.8;
            let want = unfused_fwd(b, &p, s);
            // bf16 logits are rounded once per GEMM, on both paths alike; the softmax sums in f32.
            let rel = if dtype == DType::F32 { 2e-5 } else { 1e-4 };
            let grad_rel = if dtype == DType::F32 { 1e-4 } else { 2e-2 };
            for &chunk in chunks {
                let what = format!("{dims:?} chunk {chunk} {dtype}");
                let got = op(&p, s, chunk).forward(b).unwrap();
                for (name, g, w) in [("logprob", &got.logprob, &want.logprob), ("entropy", &got.entropy, &want.entropy), ("lse", &got.lse, &want.lse)] {
                    assert_eq!((g.dims(), g.dtype()), (&[dims.0][..], DType::F32), "{name} {what}");
                    if chunk >= dims.2 {
                        assert_eq!(bits(b, g), bits(b, w), "{name} {what}: one chunk is logprob_fwd's bits");
                    }
                    close_to(b, &format!("{name} {what}"), g, w, rel);
                }
                for entropy in [false, true] {
                    let (dh, dw) = unfused_bwd(b, &p, s, &want, entropy);
                    let de = entropy.then_some(&p.dentropy);
                    let LinearLogProbGrads { dhidden, dweight } =
                        op(&p, s, chunk).backward(b, &want.lse, &want.entropy, &p.dlogprob, de).unwrap();
                    assert_eq!((dhidden.dims(), dhidden.dtype()), (p.hidden.dims(), dtype));
                    assert_eq!((dweight.dims(), dweight.dtype()), (p.weight.dims(), dtype));
                    close_to(b, &format!("dhidden {what} entropy={entropy}"), &dhidden, &dh, grad_rel);
                    close_to(b, &format!("dweight {what} entropy={entropy}"), &dweight, &dw, grad_rel);
                }
            }
        }
    }
}

/// Row-wise f64 `(logprob, entropy)` of `s·h·Wᵀ`.
fn reference(h: &[f64], w: &[f64], targets: &[u32], c: usize, s: f64) -> Vec<(f64, f64)> {
    h.chunks(c)
        .zip(targets)
        .map(|(hr, &t)| {
            let x: Vec<f64> = w.chunks(c).map(|wr| s * dot(hr, wr)).collect();
            let m = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let lse = m + x.iter().map(|&x| (x - m).exp()).sum::<f64>().ln();
            let entropy = -x.iter().map(|&x| (x - lse).exp() * (x - lse)).sum::<f64>();
            (x[t as usize] - lse, entropy)
        })
        .collect()
}

/// Gradients of `Σ dlogprob·logprob + dentropy·entropy` against central differences in f64.
fn linear_logprob_backward_matches_finite_differences<B: Backend>(b: &B) {
    let mut rng = Rng::new(41);
    let (n, c, v, s) = (3, 4, 11, 0.7);
    for chunk in [3, 11] {
        let (h, w) = (rng.normal_vec(n * c, 1.0), rng.normal_vec(v * c, 1.0));
        let targets = rng.ids(n, v);
        let (dlp, dh) = (to_f64(&rng.normal_vec(n, 1.0)), to_f64(&rng.normal_vec(n, 1.0)));
        let loss = |h: &[f64], w: &[f64]| {
            let rows = reference(h, w, &targets, c, s);
            rows.iter().zip(dlp.iter().zip(&dh)).map(|(r, (a, e))| a * r.0 + e * r.1).sum::<f64>()
        };
        let (h64, w64) = (to_f64(&h), to_f64(&w));
        let want_dh = numeric_grad(&h64, 1e-4, |x| loss(x, &w64));
        let want_dw = numeric_grad(&w64, 1e-4, |x| loss(&h64, x));
        let up = |dims: &[usize], x: &[f64]| {
            b.upload_f32(dims, &x.iter().map(|&v| v as f32).collect::<Vec<_>>(), DType::F32).unwrap()
        };
        let (ht, wt, tt) = (up(&[n, c], &h64), up(&[v, c], &w64), b.upload_u32(&[n], &targets).unwrap());
        let fused = LinearLogProb { hidden: &ht, weight: &wt, targets: &tt, inv_temperature: s as f32, chunk };
        let fwd = fused.forward(b).unwrap();
        let (dlpt, dht) = (up(&[n], &dlp), up(&[n], &dh));
        let g = fused.backward(b, &fwd.lse, &fwd.entropy, &dlpt, Some(&dht)).unwrap();
        assert_close(&format!("dhidden chunk {chunk}"), &get(b, &g.dhidden), &want_dh, 1e-4, 1e-3);
        assert_close(&format!("dweight chunk {chunk}"), &get(b, &g.dweight), &want_dw, 1e-4, 1e-3);
        let want: Vec<f64> = reference(&h64, &w64, &targets, c, s).iter().map(|r| r.0).collect();
        assert_close(&format!("logprob chunk {chunk}"), &get(b, &fwd.logprob), &want, 1e-5, 1e-5);
    }
}

/// A row's log-prob, entropy, lse and d(hidden) are the same bits alone and inside a batch, for
/// a given chunk size. Run on Emu only: the `gemm` crate behind the Cpu backend picks its kernel
/// by the row count, so a row's logits there (and so the unfused path's too) depend on the
/// batch; the project's GEMM kernels and the chunk kernels do not.
fn linear_logprob_row_alone_equals_row_in_batch<B: Backend>(b: &B) {
    let mut rng = Rng::new(42);
    let (n, c, v, chunk) = (5, 33, 1000, 256);
    for dtype in [DType::F32, DType::BF16] {
        let hidden = rng.normal_vec(n * c, 1.0);
        let weight = b.upload_f32(&[v, c], &rng.normal_vec(v * c, 0.5), dtype).unwrap();
        let targets = rng.ids(n, v);
        let dlp = rng.normal_vec(n, 1.0);
        let run = |rows: std::ops::Range<usize>| {
            let m = rows.len();
            let ht = b.upload_f32(&[m, c], &hidden[rows.start * c..rows.end * c], dtype).unwrap();
            let tt = b.upload_u32(&[m], &targets[rows.clone()]).unwrap();
            let fused = LinearLogProb { hidden: &ht, weight: &weight, targets: &tt, inv_temperature: 1.1, chunk };
            let fwd = fused.forward(b).unwrap();
            let dlpt = b.upload_f32(&[m], &dlp[rows], DType::F32).unwrap();
            let g = fused.backward(b, &fwd.lse, &fwd.entropy, &dlpt, None).unwrap();
            [bits(b, &fwd.logprob), bits(b, &fwd.entropy), bits(b, &fwd.lse), bits(b, &g.dhidden)]
        };
        let batch = run(0..n);
        for r in 0..n {
            let alone = run(r..r + 1);
            for (k, name) in ["logprob", "entropy", "lse", "dhidden"].iter().enumerate() {
                let width = if k == 3 { c } else { 1 };
                assert_eq!(alone[k][..], batch[k][r * width..(r + 1) * width], "{dtype} row {r} {name}");
            }
        }
    }
}

/// Shapes, dtypes, temperature and chunk size are checked, naming the op and the shapes.
fn linear_logprob_rejects_bad_arguments<B: Backend>(b: &B) {
    let f = |dims: &[usize], dtype| b.zeros(dims, dtype).unwrap();
    let (h, w, t) = (f(&[4, 8], DType::F32), f(&[10, 8], DType::F32), b.upload_u32(&[4], &[0, 1, 2, 9]).unwrap());
    let (wbad, hbad, t3) = (f(&[10, 7], DType::F32), f(&[4, 8, 1], DType::F32), b.upload_u32(&[3], &[0, 1, 2]).unwrap());
    let (w16, tf) = (f(&[10, 8], DType::BF16), f(&[4], DType::F32));
    let call = |hidden, weight, targets, inv_temperature, chunk| {
        LinearLogProb { hidden, weight, targets, inv_temperature, chunk }.forward(b)
    };
    let fwd = "linear_logprob_fwd";
    assert_shape_error(call(&h, &wbad, &t, 1.0, 4), fwd, &["[10, 7]", "[4, 8]"]);
    assert_shape_error(call(&hbad, &w, &t, 1.0, 4), fwd, &["[4, 8, 1]"]);
    assert_shape_error(call(&h, &w, &t3, 1.0, 4), fwd, &["[3]", "[4, 8]"]);
    for (result, arg) in [(call(&h, &w16, &t, 1.0, 4), "weight"), (call(&h, &w, &tf, 1.0, 4), "targets")] {
        let e = error_of(result);
        assert!(matches!(e, Error::DType { op: "linear_logprob_fwd", arg: a, .. } if a == arg), "{e}");
    }
    let e = error_of(call(&h, &w, &t, 1.0, 0));
    assert!(matches!(e, Error::Argument { op: "linear_logprob_fwd", .. }) && e.to_string().contains("[10, 8]"), "{e}");
    assert!(matches!(error_of(call(&h, &w, &t, 0.0, 4)), Error::Argument { .. }));
    let out_of_range = b.upload_u32(&[4], &[0, 1, 2, 10]).unwrap();
    let e = error_of(call(&h, &w, &out_of_range, 1.0, 4));
    assert!(e.to_string().contains("target 10 at row 3"), "{e}");
    let (lse, dlp) = (f(&[4], DType::F32), f(&[3], DType::F32));
    let e = error_of(LinearLogProb { hidden: &h, weight: &w, targets: &t, inv_temperature: 1.0, chunk: 0 }.backward(b, &lse, &lse, &lse, None));
    assert!(matches!(e, Error::Argument { op: "linear_logprob_bwd", .. }), "{e}");
    let bwd = LinearLogProb { hidden: &h, weight: &w, targets: &t, inv_temperature: 1.0, chunk: 3 };
    let e = error_of(bwd.backward(b, &lse, &lse, &dlp, None));
    assert!(e.to_string().contains("dlogprob") && e.to_string().contains("[3]"), "{e}");
}

backend_tests!(cpu, emu, cuda;
    linear_logprob_matches_gemm_and_logprob,
    linear_logprob_backward_matches_finite_differences,
    linear_logprob_rejects_bad_arguments,
);
backend_tests!(emu; linear_logprob_row_alone_equals_row_in_batch);
