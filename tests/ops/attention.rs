use runtime::ops::attention::{AttentionGrads, QUERY_BLOCK};
use runtime::{Backend, DType, Error, Tensor};

use crate::backend_tests;
use crate::common::{assert_close, bf16_round, dot, numeric_grad, to_f64, Rng};

/// One attention case: q `[b, tq, nh, hs]`, k and v `[b, tk, nkv, hs]`; batch entry `i` has
/// `pads[i] = (left, right)` padding keys at the start and end of its `tk` positions.
#[derive(Clone, Copy, Debug)]
struct Case {
    b: usize,
    tq: usize,
    tk: usize,
    nh: usize,
    nkv: usize,
    hs: usize,
    pads: &'static [(usize, usize)],
}

impl Case {
    fn q_dims(&self) -> [usize; 4] {
        [self.b, self.tq, self.nh, self.hs]
    }

    fn kv_dims(&self) -> [usize; 4] {
        [self.b, self.tk, self.nkv, self.hs]
    }

    fn q_len(&self) -> usize {
        self.q_dims().iter().product()
    }

    fn kv_len(&self) -> usize {
        self.kv_dims().iter().product()
    }

    fn scale(&self) -> f32 {
        1.0 / (self.hs as f32).sqrt()
    }

    fn key_valid(&self) -> Vec<u32> {
        assert_eq!(self.pads.len(), self.b);
        let mut mask = vec![];
        for &(left, right) in self.pads {
            mask.extend((0..self.tk).map(|j| (j >= left && j + right < self.tk) as u32));
        }
        mask
    }
}

/// Naive attention in f64: returns `out` `[b, tq, nh, hs]` and `lse` `[b, nh, tq]`.
fn reference(c: &Case, q: &[f64], k: &[f64], v: &[f64], valid: &[u32]) -> (Vec<f64>, Vec<f64>) {
    let scale = c.scale() as f64;
    let mut out = vec![0.0; c.q_len()];
    let mut lse = vec![f64::NEG_INFINITY; c.b * c.nh * c.tq];
    for b in 0..c.b {
        for h in 0..c.nh {
            let g = h / (c.nh / c.nkv);
            for i in 0..c.tq {
                let pos = c.tk - c.tq + i;
                let qi = &q[((b * c.tq + i) * c.nh + h) * c.hs..][..c.hs];
                let keys: Vec<usize> = (0..=pos).filter(|&j| valid[b * c.tk + j] == 1).collect();
                if keys.is_empty() {
                    continue;
                }
                let kv_at = |j: usize| ((b * c.tk + j) * c.nkv + g) * c.hs;
                let scores: Vec<f64> =
                    keys.iter().map(|&j| scale * dot(qi, &k[kv_at(j)..][..c.hs])).collect();
                let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let sum: f64 = scores.iter().map(|s| (s - max).exp()).sum();
                lse[(b * c.nh + h) * c.tq + i] = max + sum.ln();
                let o = &mut out[((b * c.tq + i) * c.nh + h) * c.hs..][..c.hs];
                for (&j, s) in keys.iter().zip(&scores) {
                    let p = (s - max).exp() / sum;
                    o.iter_mut().zip(&v[kv_at(j)..][..c.hs]).for_each(|(o, &vv)| *o += p * vv);
                }
            }
        }
    }
    (out, lse)
}

const SMALL_CASES: [Case; 8] = [
    // T = 1.
    Case { b: 1, tq: 1, tk: 1, nh: 2, nkv: 1, hs: 8, pads: &[(0, 0)] },
    // Training, GQA ratio 1, unpadded + left-padded + right-padded in one batch.
    Case { b: 3, tq: 13, tk: 13, nh: 4, nkv: 4, hs: 16, pads: &[(0, 0), (4, 0), (0, 5)] },
    // GQA ratio 2.
    Case { b: 2, tq: 13, tk: 13, nh: 4, nkv: 2, hs: 8, pads: &[(3, 0), (0, 2)] },
    // Decoding one token against a cache of 9, GQA ratio 4.
    Case { b: 2, tq: 1, tk: 9, nh: 4, nkv: 1, hs: 16, pads: &[(2, 0), (0, 3)] },
    // A few new queries against a longer cache.
    Case { b: 2, tq: 3, tk: 8, nh: 8, nkv: 2, hs: 8, pads: &[(1, 0), (0, 2)] },
    // One sequence entirely padding.
    Case { b: 2, tq: 5, tk: 5, nh: 2, nkv: 1, hs: 8, pads: &[(5, 0), (1, 1)] },
    // More queries than one Cpu query block.
    Case { b: 1, tq: 70, tk: 70, nh: 2, nkv: 1, hs: 8, pads: &[(3, 4)] },
    // GQA ratio 4, fewer queries than keys, a head size that is not a multiple of 4.
    Case { b: 1, tq: 6, tk: 11, nh: 4, nkv: 1, hs: 5, pads: &[(1, 2)] },
];

const LARGE_CASES: [Case; 3] = [
    Case { b: 2, tq: 77, tk: 77, nh: 4, nkv: 2, hs: 64, pads: &[(5, 0), (0, 9)] },
    Case { b: 2, tq: 37, tk: 100, nh: 2, nkv: 2, hs: 64, pads: &[(11, 0), (0, 0)] },
    Case { b: 1, tq: 40, tk: 40, nh: 4, nkv: 1, hs: 128, pads: &[(0, 3)] },
];

struct Inputs {
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    valid: Vec<u32>,
}

fn random_inputs(c: &Case, rng: &mut Rng) -> Inputs {
    Inputs {
        q: rng.normal_vec(c.q_len(), 1.0),
        k: rng.normal_vec(c.kv_len(), 1.0),
        v: rng.normal_vec(c.kv_len(), 1.0),
        valid: c.key_valid(),
    }
}

struct Uploaded<B: Backend> {
    q: Tensor<B>,
    k: Tensor<B>,
    v: Tensor<B>,
    valid: Tensor<B>,
}

fn upload<B: Backend>(backend: &B, c: &Case, x: &Inputs, dtype: DType) -> Uploaded<B> {
    Uploaded {
        q: backend.upload_f32(&c.q_dims(), &x.q, dtype).unwrap(),
        k: backend.upload_f32(&c.kv_dims(), &x.k, dtype).unwrap(),
        v: backend.upload_f32(&c.kv_dims(), &x.v, dtype).unwrap(),
        valid: backend.upload_u32(&[c.b, c.tk], &x.valid).unwrap(),
    }
}

fn attention_forward_matches_reference<B: Backend>(backend: &B) {
    let mut rng = Rng::new(21);
    for c in SMALL_CASES.iter().chain(&LARGE_CASES) {
        let x = random_inputs(c, &mut rng);
        let t = upload(backend, c, &x, DType::F32);
        let got = backend.attention_fwd(&t.q, &t.k, &t.v, &t.valid, c.scale()).unwrap();
        assert_eq!(got.out.dims(), &c.q_dims(), "{c:?}");
        assert_eq!(got.lse.dims(), &[c.b, c.nh, c.tq], "{c:?}");
        assert_eq!((got.out.dtype(), got.lse.dtype()), (DType::F32, DType::F32));
        let (want_out, want_lse) =
            reference(c, &to_f64(&x.q), &to_f64(&x.k), &to_f64(&x.v), &x.valid);
        assert_close(
            &format!("out {c:?}"),
            &backend.download_f32(&got.out).unwrap(),
            &want_out,
            1e-5,
            1e-5,
        );
        assert_close(
            &format!("lse {c:?}"),
            &backend.download_f32(&got.lse).unwrap(),
            &want_lse,
            1e-5,
            1e-5,
        );
    }
}

/// Forward then backward on the backend with upstream gradient `dout`.
fn forward_backward<B: Backend>(
    backend: &B,
    c: &Case,
    x: &Inputs,
    dout: &[f32],
) -> AttentionGrads<B> {
    let t = upload(backend, c, x, DType::F32);
    let fwd = backend.attention_fwd(&t.q, &t.k, &t.v, &t.valid, c.scale()).unwrap();
    let dout = backend.upload_f32(&c.q_dims(), dout, DType::F32).unwrap();
    backend.attention_bwd(&t.q, &t.k, &t.v, &t.valid, &fwd.out, &fwd.lse, &dout, c.scale()).unwrap()
}

fn attention_backward_matches_finite_differences<B: Backend>(backend: &B) {
    let mut rng = Rng::new(22);
    assert!(SMALL_CASES.iter().any(|c| c.tq > QUERY_BLOCK), "no case spans several query blocks");
    for c in &SMALL_CASES {
        let x = random_inputs(c, &mut rng);
        let w = rng.normal_vec(c.q_len(), 1.0);
        let wd = to_f64(&w);
        let (q, k, v) = (to_f64(&x.q), to_f64(&x.k), to_f64(&x.v));
        let loss = |q: &[f64], k: &[f64], v: &[f64]| dot(&wd, &reference(c, q, k, v, &x.valid).0);
        let num_dq = numeric_grad(&q, 1e-3, |q| loss(q, &k, &v));
        let num_dk = numeric_grad(&k, 1e-3, |k| loss(&q, k, &v));
        let num_dv = numeric_grad(&v, 1e-3, |v| loss(&q, &k, v));

        let g = forward_backward(backend, c, &x, &w);
        assert_eq!(
            (g.dq.dims(), g.dk.dims(), g.dv.dims()),
            (&c.q_dims()[..], &c.kv_dims()[..], &c.kv_dims()[..])
        );
        assert_close(
            &format!("dq {c:?}"),
            &backend.download_f32(&g.dq).unwrap(),
            &num_dq,
            1e-4,
            1e-3,
        );
        assert_close(
            &format!("dk {c:?}"),
            &backend.download_f32(&g.dk).unwrap(),
            &num_dk,
            1e-4,
            1e-3,
        );
        assert_close(
            &format!("dv {c:?}"),
            &backend.download_f32(&g.dv).unwrap(),
            &num_dv,
            1e-4,
            1e-3,
        );
    }
}

/// Left padding leaves early queries with no key at all; an all-padding sequence leaves every
/// query without one. Those rows must be exact zeros with lse −inf, and get exact zero gradients;
/// padding keys must get exact zero dk and dv.
fn attention_masked_rows_are_zero<B: Backend>(backend: &B) {
    let mut rng = Rng::new(23);
    let c = Case { b: 3, tq: 9, tk: 9, nh: 4, nkv: 2, hs: 8, pads: &[(4, 0), (9, 0), (0, 3)] };
    let x = random_inputs(&c, &mut rng);
    let t = upload(backend, &c, &x, DType::F32);
    let fwd = backend.attention_fwd(&t.q, &t.k, &t.v, &t.valid, c.scale()).unwrap();
    let out = backend.download_f32(&fwd.out).unwrap();
    let lse = backend.download_f32(&fwd.lse).unwrap();
    let dout = rng.normal_vec(c.q_len(), 1.0);
    let g = forward_backward(backend, &c, &x, &dout);
    let dq = backend.download_f32(&g.dq).unwrap();
    let (dk, dv) = (backend.download_f32(&g.dk).unwrap(), backend.download_f32(&g.dv).unwrap());

    let mut blind_rows = 0;
    for b in 0..c.b {
        let first_valid = c.pads[b].0;
        for i in 0..c.tq {
            let sees_nothing = i < first_valid;
            for h in 0..c.nh {
                let lse_bhi = lse[(b * c.nh + h) * c.tq + i];
                let row =
                    ((b * c.tq + i) * c.nh + h) * c.hs..((b * c.tq + i) * c.nh + h + 1) * c.hs;
                if sees_nothing {
                    blind_rows += 1;
                    assert_eq!(lse_bhi, f32::NEG_INFINITY, "lse b={b} h={h} i={i}");
                    assert!(out[row.clone()].iter().all(|&o| o == 0.0), "out b={b} h={h} i={i}");
                    assert!(dq[row].iter().all(|&d| d == 0.0), "dq b={b} h={h} i={i}");
                } else {
                    assert!(lse_bhi.is_finite(), "lse b={b} h={h} i={i} = {lse_bhi}");
                    assert!(out[row].iter().any(|&o| o != 0.0), "out b={b} h={h} i={i}");
                }
            }
        }
        for j in 0..c.tk {
            let row = ((b * c.tk + j) * c.nkv) * c.hs..((b * c.tk + j + 1) * c.nkv) * c.hs;
            if x.valid[b * c.tk + j] == 0 {
                assert!(dk[row.clone()].iter().all(|&d| d == 0.0), "dk b={b} j={j}");
                assert!(dv[row].iter().all(|&d| d == 0.0), "dv b={b} j={j}");
            }
        }
    }
    assert_eq!(blind_rows, (4 + 9) * c.nh);
}

fn attention_bf16_within_bf16_tolerance<B: Backend>(backend: &B) {
    let mut rng = Rng::new(24);
    for c in [&SMALL_CASES[1], &LARGE_CASES[0]] {
        let x = random_inputs(c, &mut rng);
        let t = upload(backend, c, &x, DType::BF16);
        let got = backend.attention_fwd(&t.q, &t.k, &t.v, &t.valid, c.scale()).unwrap();
        assert_eq!((got.out.dtype(), got.lse.dtype()), (DType::BF16, DType::F32));
        let rounded = |v: &[f32]| to_f64(&bf16_round(v));
        let (want_out, want_lse) =
            reference(c, &rounded(&x.q), &rounded(&x.k), &rounded(&x.v), &x.valid);
        // The output is a convex combination of v rows (|v| <~ 4) rounded to bf16 (2^-9 relative);
        // lse is f32 computed from the same bf16 inputs as the reference.
        assert_close(
            &format!("bf16 out {c:?}"),
            &backend.download_f32(&got.out).unwrap(),
            &want_out,
            1e-2,
            8e-3,
        );
        assert_close(
            &format!("bf16 lse {c:?}"),
            &backend.download_f32(&got.lse).unwrap(),
            &want_lse,
            1e-4,
            1e-5,
        );
        let dout =
            backend.upload_f32(&c.q_dims(), &rng.normal_vec(c.q_len(), 1.0), DType::BF16).unwrap();
        let g = backend
            .attention_bwd(&t.q, &t.k, &t.v, &t.valid, &got.out, &got.lse, &dout, c.scale())
            .unwrap();
        assert_eq!(
            (g.dq.dtype(), g.dk.dtype(), g.dv.dtype()),
            (DType::BF16, DType::BF16, DType::BF16)
        );
    }
}

/// The same results, bit for bit, on one thread and on several.
fn attention_is_deterministic_across_thread_counts<B: Backend>(backend: &B) {
    let mut rng = Rng::new(25);
    let c = Case { b: 2, tq: 150, tk: 150, nh: 4, nkv: 2, hs: 16, pads: &[(7, 0), (0, 20)] };
    let x = random_inputs(&c, &mut rng);
    let dout = rng.normal_vec(c.q_len(), 1.0);
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let t = upload(backend, &c, &x, DType::F32);
            let fwd = backend.attention_fwd(&t.q, &t.k, &t.v, &t.valid, c.scale()).unwrap();
            let g = forward_backward(backend, &c, &x, &dout);
            [&fwd.out, &fwd.lse, &g.dq, &g.dk, &g.dv].map(|t| backend.download_f32(t).unwrap())
        })
    };
    let one = run(1);
    for threads in [2, 5] {
        let many = run(threads);
        for (name, (a, b)) in ["out", "lse", "dq", "dk", "dv"].iter().zip(one.iter().zip(&many)) {
            let same = a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
            assert!(same, "{name} differs between 1 and {threads} threads");
        }
    }
}

fn attention_rejects_bad_arguments<B: Backend>(backend: &B) {
    let f32s = |dims: &[usize]| backend.zeros(dims, DType::F32).unwrap();
    let (q, k, v) = (f32s(&[1, 4, 4, 8]), f32s(&[1, 6, 2, 8]), f32s(&[1, 6, 2, 8]));
    let valid = backend.upload_u32(&[1, 6], &[1; 6]).unwrap();
    let shape_err = |err: Error, parts: &[&str]| {
        let msg = err.to_string();
        assert!(matches!(err, Error::Shape { op: "attention", .. }), "{msg}");
        assert!(parts.iter().all(|p| msg.contains(p)), "{msg} should mention {parts:?}");
    };

    let k3 = f32s(&[1, 6, 3, 8]);
    let err = backend.attention_fwd(&q, &k3, &k3, &valid, 0.3).unwrap_err();
    shape_err(err, &["[1, 4, 4, 8]", "[1, 6, 3, 8]", "NKV=3"]);

    let short = f32s(&[1, 3, 2, 8]);
    let short_valid = backend.upload_u32(&[1, 3], &[1; 3]).unwrap();
    let err = backend.attention_fwd(&q, &short, &short, &short_valid, 0.3).unwrap_err();
    shape_err(err, &["[1, 4, 4, 8]", "[1, 3, 2, 8]", "Tq=4 > Tk=3"]);

    let wide = f32s(&[1, 6, 2, 16]);
    shape_err(
        backend.attention_fwd(&q, &wide, &wide, &valid, 0.3).unwrap_err(),
        &["[1, 6, 2, 16]"],
    );
    let other_batch = f32s(&[2, 6, 2, 8]);
    shape_err(
        backend.attention_fwd(&q, &other_batch, &other_batch, &valid, 0.3).unwrap_err(),
        &["[2, 6, 2, 8]"],
    );
    let v_other = f32s(&[1, 6, 1, 8]);
    shape_err(
        backend.attention_fwd(&q, &k, &v_other, &valid, 0.3).unwrap_err(),
        &["`v`", "[1, 6, 1, 8]"],
    );
    let flat = f32s(&[4, 32]);
    shape_err(backend.attention_fwd(&flat, &k, &v, &valid, 0.3).unwrap_err(), &["`q`", "[4, 32]"]);

    let bad_valid = backend.upload_u32(&[1, 5], &[1; 5]).unwrap();
    shape_err(
        backend.attention_fwd(&q, &k, &v, &bad_valid, 0.3).unwrap_err(),
        &["key_valid", "[1, 5]"],
    );
    let float_valid = f32s(&[1, 6]);
    let err = backend.attention_fwd(&q, &k, &v, &float_valid, 0.3).unwrap_err();
    assert!(matches!(err, Error::DType { op: "attention", arg: "key_valid", .. }), "{err}");
    let two = backend.upload_u32(&[1, 6], &[1, 1, 1, 2, 1, 1]).unwrap();
    let err = backend.attention_fwd(&q, &k, &v, &two, 0.3).unwrap_err();
    assert!(matches!(err, Error::Argument { op: "attention", .. }), "{err}");
    assert!(err.to_string().contains("key_valid[0, 3] = 2"), "{err}");

    let k16 = backend.zeros(&[1, 6, 2, 8], DType::BF16).unwrap();
    let err = backend.attention_fwd(&q, &k16, &v, &valid, 0.3).unwrap_err();
    assert!(matches!(err, Error::DType { op: "attention", arg: "k", .. }), "{err}");
    let q_ids = backend.zeros(&[1, 4, 4, 8], DType::U32).unwrap();
    let err = backend.attention_fwd(&q_ids, &k, &v, &valid, 0.3).unwrap_err();
    assert!(matches!(err, Error::DType { op: "attention", arg: "q", .. }), "{err}");
    let err = backend.attention_fwd(&q, &k, &v, &valid, f32::NAN).unwrap_err();
    assert!(matches!(err, Error::Argument { op: "attention", .. }), "{err}");

    let out = f32s(&[1, 4, 4, 8]);
    let lse = f32s(&[1, 4, 4]);
    assert!(backend.attention_bwd(&q, &k, &v, &valid, &out, &lse, &out, 0.3).is_ok());
    let bad_lse = f32s(&[1, 4, 3]);
    let err = backend.attention_bwd(&q, &k, &v, &valid, &out, &bad_lse, &out, 0.3).unwrap_err();
    shape_err(err, &["lse", "[1, 4, 3]", "[1, 4, 4]"]);
    let lse16 = backend.zeros(&[1, 4, 4], DType::BF16).unwrap();
    let err = backend.attention_bwd(&q, &k, &v, &valid, &out, &lse16, &out, 0.3).unwrap_err();
    assert!(matches!(err, Error::DType { op: "attention", arg: "lse", .. }), "{err}");
    let bad_dout = f32s(&[1, 4, 4, 7]);
    let err = backend.attention_bwd(&q, &k, &v, &valid, &out, &lse, &bad_dout, 0.3).unwrap_err();
    shape_err(err, &["dout", "[1, 4, 4, 7]"]);
    let out16 = backend.zeros(&[1, 4, 4, 8], DType::BF16).unwrap();
    let err = backend.attention_bwd(&q, &k, &v, &valid, &out16, &lse, &out, 0.3).unwrap_err();
    assert!(matches!(err, Error::DType { op: "attention", arg: "out", .. }), "{err}");
}

backend_tests!(
    cpu, emu, cuda;
    attention_forward_matches_reference,
    attention_backward_matches_finite_differences,
    attention_masked_rows_are_zero,
    attention_bf16_within_bf16_tolerance,
    attention_is_deterministic_across_thread_counts,
    attention_rejects_bad_arguments,
);
