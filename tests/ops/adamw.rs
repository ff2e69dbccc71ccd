use runtime::ops::adamw::AdamW;
use runtime::{Backend, Cpu, DType, Error, Tensor};

use crate::backend_tests;
use crate::common::{assert_close, bf16_round, to_f64, Rng};

/// Optimizer state on the backend.
struct State<B: Backend> {
    param: Tensor<B>,
    m: Tensor<B>,
    v: Tensor<B>,
}

impl<B: Backend> State<B> {
    fn new(backend: &B, param: &[f32]) -> Self {
        let n = [param.len()];
        State {
            param: backend.upload_f32(&n, param, DType::F32).unwrap(),
            m: backend.zeros(&n, DType::F32).unwrap(),
            v: backend.zeros(&n, DType::F32).unwrap(),
        }
    }

    fn step(&mut self, backend: &B, grad: &[f32], grad_dtype: DType, hyper: &AdamW, step: u32) {
        let g = backend.upload_f32(&[grad.len()], grad, grad_dtype).unwrap();
        backend.adamw_step(&mut self.param, &g, &mut self.m, &mut self.v, hyper, step).unwrap();
    }
}

/// Naive f64 AdamW, straight from the definition.
fn reference_step(p: &mut [f64], m: &mut [f64], v: &mut [f64], g: &[f64], h: &AdamW, t: u32) {
    let (lr, b1, b2, eps, wd) = (h.lr as f64, h.beta1 as f64, h.beta2 as f64, h.eps as f64, h.weight_decay as f64);
    for i in 0..p.len() {
        m[i] = b1 * m[i] + (1.0 - b1) * g[i];
        v[i] = b2 * v[i] + (1.0 - b2) * g[i] * g[i];
        let m_hat = m[i] / (1.0 - b1.powi(t as i32));
        let v_hat = v[i] / (1.0 - b2.powi(t as i32));
        p[i] -= lr * (m_hat / (v_hat.sqrt() + eps) + wd * p[i]);
    }
}

/// Two steps on three elements, worked out by hand with lr 0.1, betas (0.9, 0.999), wd 0.01
/// (eps 1e-8 changes nothing at this tolerance).
fn adamw_matches_hand_computed_steps<B: Backend>(backend: &B) {
    let hyper = AdamW { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01 };
    let mut s = State::new(backend, &[1.0, -2.0, 0.5]);
    let get = |t: &Tensor<B>| backend.download_f32(t).unwrap();

    // Step 1, g = [0.5, -1, 0]: m = 0.1·g, v = 0.001·g²; the bias corrections (0.1 and 0.001)
    // undo those factors, so m̂ = g, v̂ = g², and m̂/√v̂ = sign(g) = [1, -1, 0] (0/eps = 0).
    // p -= 0.1·(m̂/√v̂ + 0.01·p).
    // The f32 betas are 0.9 and 0.999 to 2e-8 absolute, so 1 − β2 is 0.001 only to 1.3e-5
    // relative; m̂ and v̂ divide by corrections made from the same betas, which cancels it.
    s.step(backend, &[0.5, -1.0, 0.0], DType::F32, &hyper, 1);
    assert_close("m after 1", &get(&s.m), &[0.05, -0.1, 0.0], 1e-7, 1e-6);
    assert_close("v after 1", &get(&s.v), &[0.00025, 0.001, 0.0], 1e-9, 2e-5);
    let p1 = [1.0 - 0.1 * (1.0 + 0.01 * 1.0), -2.0 - 0.1 * (-1.0 + 0.01 * -2.0), 0.5 - 0.1 * (0.0 + 0.01 * 0.5)];
    assert_eq!(p1, [0.899, -1.898, 0.4995]);
    assert_close("param after 1", &get(&s.param), &p1, 1e-6, 1e-6);

    // Step 2, g = [0.5, 1, -1]:
    //   m = 0.9·[0.05, -0.1, 0] + 0.1·g = [0.095, 0.01, -0.1]
    //   v = 0.999·[0.00025, 0.001, 0] + 0.001·g² = [0.00049975, 0.001999, 0.001]
    //   corrections 1 - 0.9² = 0.19 and 1 - 0.999² = 0.001999, so
    //   m̂ = [0.5, 1/19, -10/19], v̂ = [0.25, 1, 1000/1999],
    //   m̂/√v̂ = [1, 1/19, -(10/19)·√1.999].
    s.step(backend, &[0.5, 1.0, -1.0], DType::F32, &hyper, 2);
    assert_close("m after 2", &get(&s.m), &[0.095, 0.01, -0.1], 1e-7, 1e-6);
    assert_close("v after 2", &get(&s.v), &[0.00049975, 0.001999, 0.001], 1e-9, 2e-5);
    let update = [1.0, 1.0 / 19.0, -(10.0 / 19.0) * 1.999f64.sqrt()];
    let p2: Vec<f64> = p1.iter().zip(update).map(|(&p, u)| p - 0.1 * (u + 0.01 * p)).collect();
    // = [0.7981010, -1.9013652, 0.5734142]
    assert_close("param after 2", &get(&s.param), &p2, 1e-6, 1e-6);
}

fn adamw_matches_reference_over_five_steps<B: Backend>(backend: &B) {
    let mut rng = Rng::new(40);
    let hypers = [
        AdamW::default(),
        AdamW { lr: 0.01, beta1: 0.0, beta2: 0.99, eps: 1e-6, weight_decay: 0.0 },
        AdamW { lr: 3e-2, beta1: 0.8, beta2: 0.95, eps: 1e-8, weight_decay: 0.1 },
    ];
    for (n, hyper, grad_dtype) in [(1, 0, DType::F32), (7, 1, DType::BF16), (769, 2, DType::F32), (40_000, 0, DType::BF16), (40_000, 2, DType::F32)] {
        let hyper = hypers[hyper];
        let p0 = rng.normal_vec(n, 1.0);
        let mut s = State::new(backend, &p0);
        let (mut p, mut m, mut v) = (to_f64(&p0), vec![0.0; n], vec![0.0; n]);
        for t in 1..=5 {
            let g = rng.normal_vec(n, 0.5);
            s.step(backend, &g, grad_dtype, &hyper, t);
            let g = if grad_dtype == DType::BF16 { to_f64(&bf16_round(&g)) } else { to_f64(&g) };
            reference_step(&mut p, &mut m, &mut v, &g, &hyper, t);
        }
        let what = format!("N={n} {hyper:?} grad {grad_dtype}");
        let get = |t: &Tensor<B>| backend.download_f32(t).unwrap();
        assert_close(&format!("param {what}"), &get(&s.param), &p, 2e-6, 1e-5);
        assert_close(&format!("m {what}"), &get(&s.m), &m, 1e-6, 1e-5);
        assert_close(&format!("v {what}"), &get(&s.v), &v, 1e-7, 1e-5);
    }
}

fn adamw_default_is_pytorchs<B: Backend>(_backend: &B) {
    let d = AdamW::default();
    assert_eq!((d.lr, d.beta1, d.beta2, d.eps, d.weight_decay), (1e-3, 0.9, 0.999, 1e-8, 0.01));
}

fn adamw_rejects_bad_arguments<B: Backend>(backend: &B) {
    let mut s = State::new(backend, &[1.0; 6]);
    let g = backend.zeros(&[6], DType::F32).unwrap();
    let h = AdamW::default();

    let mut p16 = backend.zeros(&[6], DType::BF16).unwrap();
    let err = backend.adamw_step(&mut p16, &g, &mut s.m, &mut s.v, &h, 1).unwrap_err();
    assert!(matches!(err, Error::DType { op: "adamw", arg: "param", .. }), "{err}");
    let gi = backend.zeros(&[6], DType::U32).unwrap();
    let err = backend.adamw_step(&mut s.param, &gi, &mut s.m, &mut s.v, &h, 1).unwrap_err();
    assert!(matches!(err, Error::DType { op: "adamw", arg: "grad", .. }), "{err}");
    let mut v16 = backend.zeros(&[6], DType::BF16).unwrap();
    let err = backend.adamw_step(&mut s.param, &g, &mut s.m, &mut v16, &h, 1).unwrap_err();
    assert!(matches!(err, Error::DType { op: "adamw", arg: "v", .. }), "{err}");

    let mut m23 = backend.zeros(&[2, 3], DType::F32).unwrap();
    let err = backend.adamw_step(&mut s.param, &g, &mut m23, &mut s.v, &h, 1).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Shape { op: "adamw", .. }), "{msg}");
    assert!(msg.contains("`m`") && msg.contains("[2, 3]") && msg.contains("[6]"), "{msg}");

    let bad = [
        ("lr", AdamW { lr: -1e-3, ..h }),
        ("lr", AdamW { lr: f32::NAN, ..h }),
        ("beta1", AdamW { beta1: 1.0, ..h }),
        ("beta1", AdamW { beta1: -0.1, ..h }),
        ("beta2", AdamW { beta2: 1.5, ..h }),
        ("eps", AdamW { eps: 0.0, ..h }),
        ("weight_decay", AdamW { weight_decay: -0.01, ..h }),
    ];
    for (name, hyper) in bad {
        let err = backend.adamw_step(&mut s.param, &g, &mut s.m, &mut s.v, &hyper, 1).unwrap_err();
        assert!(matches!(err, Error::Argument { op: "adamw", .. }) && err.to_string().contains(name), "{name}: {err}");
    }
    let err = backend.adamw_step(&mut s.param, &g, &mut s.m, &mut s.v, &h, 0).unwrap_err();
    assert!(matches!(err, Error::Argument { op: "adamw", .. }) && err.to_string().contains("step"), "{err}");
    // Nothing was touched by the failed calls.
    assert_eq!(backend.download_f32(&s.param).unwrap(), vec![1.0; 6]);
}

/// The GPU kernel rounds each operation in the Cpu's order, so every backend's step is the Cpu's
/// bit for bit; `adamw_step_copy` also writes the updated parameter rounded to bf16.
fn adamw_is_the_cpus_bit_for_bit_and_writes_a_bf16_copy<B: Backend>(backend: &B) {
    let cpu = Cpu::new();
    let mut rng = Rng::new(41);
    let hyper = AdamW { lr: 3e-2, beta1: 0.8, beta2: 0.95, eps: 1e-8, weight_decay: 0.1 };
    for (n, grad_dtype) in [(1, DType::F32), (257, DType::BF16), (40_000, DType::F32)] {
        let p0 = rng.normal_vec(n, 1.0);
        let (mut s, mut c) = (State::new(backend, &p0), State::new(&cpu, &p0));
        let mut copy = backend.zeros(&[n], DType::BF16).unwrap();
        for t in 1..=3 {
            let g = rng.normal_vec(n, 0.5);
            let gb = backend.upload_f32(&[n], &g, grad_dtype).unwrap();
            backend.adamw_step_copy(&mut s.param, &gb, &mut s.m, &mut s.v, &mut copy, &hyper, t).unwrap();
            c.step(&cpu, &g, grad_dtype, &hyper, t);
        }
        let bits = |x: Vec<f32>| x.into_iter().map(f32::to_bits).collect::<Vec<_>>();
        let what = format!("N={n} grad {grad_dtype}");
        let get = |t: &Tensor<B>| bits(backend.download_f32(t).unwrap());
        let want = |t: &Tensor<Cpu>| bits(cpu.download_f32(t).unwrap());
        assert_eq!(get(&s.param), want(&c.param), "param {what}");
        assert_eq!(get(&s.m), want(&c.m), "m {what}");
        assert_eq!(get(&s.v), want(&c.v), "v {what}");
        let rounded = bits(cpu.download_f32(&cpu.cast(&c.param, DType::BF16).unwrap()).unwrap());
        assert_eq!(get(&copy), rounded, "bf16 copy {what}");
    }

    let mut s = State::new(backend, &[1.0; 6]);
    let g = backend.zeros(&[6], DType::F32).unwrap();
    let h = AdamW::default();
    let mut copy32 = backend.zeros(&[6], DType::F32).unwrap();
    let err = backend.adamw_step_copy(&mut s.param, &g, &mut s.m, &mut s.v, &mut copy32, &h, 1).unwrap_err();
    assert!(matches!(err, Error::DType { op: "adamw", arg: "copy", .. }), "{err}");
    let mut copy5 = backend.zeros(&[5], DType::BF16).unwrap();
    let err = backend.adamw_step_copy(&mut s.param, &g, &mut s.m, &mut s.v, &mut copy5, &h, 1).unwrap_err();
    assert!(matches!(err, Error::Shape { op: "adamw", .. }) && err.to_string().contains("`copy`"), "{err}");
    assert_eq!(backend.download_f32(&s.param).unwrap(), vec![1.0; 6]);
}

backend_tests!(cpu, emu, cuda;
    adamw_is_the_cpus_bit_for_bit_and_writes_a_bf16_copy,
    adamw_matches_hand_computed_steps,
    adamw_matches_reference_over_five_steps,
    adamw_default_is_pytorchs,
    adamw_rejects_bad_arguments,
);
