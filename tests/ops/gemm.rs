use runtime::ops::gemm::GemmSpec;
use runtime::{Backend, DType, Error};

use crate::backend_tests;
use crate::common::{assert_close, dot, numeric_grad, to_f64, Rng};

/// One GEMM case: leading batch dims of `a`, sizes, transposes, whether `b` is batched, bias.
#[derive(Clone, Copy, Debug)]
struct Case {
    batch: &'static [usize],
    m: usize,
    n: usize,
    k: usize,
    spec: GemmSpec,
    b_batched: bool,
    bias: bool,
}

impl Case {
    fn a_dims(&self) -> Vec<usize> {
        let mut d = self.batch.to_vec();
        d.extend(if self.spec.trans_a { [self.k, self.m] } else { [self.m, self.k] });
        d
    }

    fn b_dims(&self) -> Vec<usize> {
        let mut d = if self.b_batched { self.batch.to_vec() } else { vec![] };
        d.extend(if self.spec.trans_b { [self.n, self.k] } else { [self.k, self.n] });
        d
    }

    fn batch_count(&self) -> usize {
        self.batch.iter().product()
    }
}

/// Naive f64 `op(a)·op(b) + bias` per batch entry.
fn reference(c: &Case, a: &[f64], b: &[f64], bias: Option<&[f64]>) -> Vec<f64> {
    let (m, n, k) = (c.m, c.n, c.k);
    let mut out = vec![0.0; c.batch_count() * m * n];
    for bi in 0..c.batch_count() {
        let ab = &a[bi * m * k..];
        let bb = if c.b_batched { &b[bi * k * n..] } else { b };
        for i in 0..m {
            for j in 0..n {
                let mut s = bias.map_or(0.0, |bias| bias[j]);
                for p in 0..k {
                    let av = if c.spec.trans_a { ab[p * m + i] } else { ab[i * k + p] };
                    let bv = if c.spec.trans_b { bb[j * k + p] } else { bb[p * n + j] };
                    s += av * bv;
                }
                out[bi * m * n + i * n + j] = s;
            }
        }
    }
    out
}

fn cases() -> Vec<Case> {
    let mut cases = vec![];
    for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
        let spec = GemmSpec { trans_a: ta, trans_b: tb };
        for (batch, b_batched) in [(&[][..], false), (&[3][..], false), (&[2, 3][..], true)] {
            for (m, n, k) in [(1, 1, 1), (7, 5, 3), (33, 17, 65)] {
                cases.push(Case { batch, m, n, k, spec, b_batched, bias: m % 2 == 1 });
            }
        }
    }
    cases
}

fn gemm_forward_matches_reference<B: Backend>(backend: &B) {
    let mut rng = Rng::new(1);
    for c in cases() {
        let a = rng.normal_vec(c.a_dims().iter().product(), 1.0);
        let b = rng.normal_vec(c.b_dims().iter().product(), 1.0);
        let bias = rng.normal_vec(c.n, 1.0);
        let want = reference(&c, &to_f64(&a), &to_f64(&b), c.bias.then_some(&to_f64(&bias)[..]));
        let at = backend.upload_f32(&c.a_dims(), &a, DType::F32).unwrap();
        let bt = backend.upload_f32(&c.b_dims(), &b, DType::F32).unwrap();
        let biast = backend.upload_f32(&[c.n], &bias, DType::F32).unwrap();
        let out = backend.gemm(&at, &bt, c.bias.then_some(&biast), c.spec).unwrap();
        let mut want_dims = c.batch.to_vec();
        want_dims.extend([c.m, c.n]);
        assert_eq!(out.dims(), &want_dims[..], "{c:?}");
        let got = backend.download_f32(&out).unwrap();
        assert_close(&format!("gemm {c:?}"), &got, &want, 1e-4, 1e-4);
    }
}

fn gemm_backward_matches_finite_differences<B: Backend>(backend: &B) {
    let mut rng = Rng::new(2);
    for c in cases().into_iter().filter(|c| c.m * c.n * c.k < 1000) {
        let a = to_f64(&rng.normal_vec(c.a_dims().iter().product(), 1.0));
        let b = to_f64(&rng.normal_vec(c.b_dims().iter().product(), 1.0));
        let bias = to_f64(&rng.normal_vec(c.n, 1.0));
        let w = rng.normal_vec(c.batch_count() * c.m * c.n, 1.0);
        let wd = to_f64(&w);
        let loss = |a: &[f64], b: &[f64], bias: &[f64]| {
            dot(&wd, &reference(&c, a, b, c.bias.then_some(bias)))
        };
        let num_da = numeric_grad(&a, 1e-3, |x| loss(x, &b, &bias));
        let num_db = numeric_grad(&b, 1e-3, |x| loss(&a, x, &bias));
        let num_dbias = numeric_grad(&bias, 1e-3, |x| loss(&a, &b, x));

        let up = |x: &[f64], dims: &[usize]| {
            let x: Vec<f32> = x.iter().map(|&v| v as f32).collect();
            backend.upload_f32(dims, &x, DType::F32).unwrap()
        };
        let mut out_dims = c.batch.to_vec();
        out_dims.extend([c.m, c.n]);
        let dc = backend.upload_f32(&out_dims, &w, DType::F32).unwrap();
        let g = backend.gemm_bwd(&up(&a, &c.a_dims()), &up(&b, &c.b_dims()), &dc, c.bias, c.spec).unwrap();
        let what = format!("{c:?}");
        assert_close(&format!("da {what}"), &backend.download_f32(&g.da).unwrap(), &num_da, 1e-3, 1e-3);
        assert_close(&format!("db {what}"), &backend.download_f32(&g.db).unwrap(), &num_db, 1e-3, 1e-3);
        match (c.bias, g.dbias) {
            (true, Some(dbias)) => {
                assert_close(&format!("dbias {what}"), &backend.download_f32(&dbias).unwrap(), &num_dbias, 1e-3, 1e-3)
            }
            (false, None) => {}
            (want, got) => panic!("{what}: bias gradient wanted {want}, present {}", got.is_some()),
        }
    }
}

fn gemm_bf16_within_bf16_tolerance<B: Backend>(backend: &B) {
    let mut rng = Rng::new(3);
    let c = Case { batch: &[2], m: 19, n: 23, k: 64, spec: GemmSpec::nt(), b_batched: false, bias: true };
    let a = rng.normal_vec(c.a_dims().iter().product(), 1.0);
    let b = rng.normal_vec(c.b_dims().iter().product(), 1.0);
    let bias = rng.normal_vec(c.n, 1.0);
    let at = backend.upload_f32(&c.a_dims(), &a, DType::BF16).unwrap();
    let bt = backend.upload_f32(&c.b_dims(), &b, DType::BF16).unwrap();
    let biast = backend.upload_f32(&[c.n], &bias, DType::BF16).unwrap();
    let out = backend.gemm(&at, &bt, Some(&biast), c.spec).unwrap();
    assert_eq!(out.dtype(), DType::BF16);
    let want = reference(&c, &to_f64(&a), &to_f64(&b), Some(&to_f64(&bias)));
    // Inputs rounded to bf16 (rel. 2^-9 each) over K=64 terms of size ~1, then the output rounded.
    assert_close("gemm bf16", &backend.download_f32(&out).unwrap(), &want, 0.25, 1e-2);
}

fn gemm_rejects_bad_shapes_and_dtypes<B: Backend>(backend: &B) {
    let a = backend.zeros(&[4, 3], DType::F32).unwrap();
    let b = backend.zeros(&[5, 2], DType::F32).unwrap();
    let err = backend.gemm(&a, &b, None, GemmSpec::default()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Shape { op: "gemm", .. }), "{msg}");
    assert!(msg.contains("[4, 3]") && msg.contains("[5, 2]"), "{msg}");

    let b = backend.zeros(&[3, 2], DType::F32).unwrap();
    let bias = backend.zeros(&[3], DType::F32).unwrap();
    let msg = backend.gemm(&a, &b, Some(&bias), GemmSpec::default()).unwrap_err().to_string();
    assert!(msg.contains("bias") && msg.contains("[3]"), "{msg}");

    let b16 = backend.zeros(&[3, 2], DType::BF16).unwrap();
    let err = backend.gemm(&a, &b16, None, GemmSpec::default()).unwrap_err();
    assert!(matches!(err, Error::DType { op: "gemm", arg: "b", .. }), "{err}");

    let ids = backend.zeros(&[4, 3], DType::U32).unwrap();
    assert!(backend.gemm(&ids, &b, None, GemmSpec::default()).is_err());

    let batched_a = backend.zeros(&[2, 4, 3], DType::F32).unwrap();
    let batched_b = backend.zeros(&[5, 3, 2], DType::F32).unwrap();
    let msg = backend.gemm(&batched_a, &batched_b, None, GemmSpec::default()).unwrap_err().to_string();
    assert!(msg.contains("batch"), "{msg}");
}

backend_tests!(
    cpu, emu, cuda;
    gemm_forward_matches_reference,
    gemm_backward_matches_finite_differences,
    gemm_bf16_within_bf16_tolerance,
    gemm_rejects_bad_shapes_and_dtypes,
);
