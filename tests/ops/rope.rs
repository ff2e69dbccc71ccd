use runtime::{Backend, DType, Error};

use crate::backend_tests;
use crate::common::{assert_close, bf16_round, dot, numeric_grad, to_f64, Rng};

/// One RoPE case: x `[b, t, nh, hs]`, positions drawn from `positions`.
#[derive(Clone, Copy, Debug)]
struct Case {
    b: usize,
    t: usize,
    nh: usize,
    hs: usize,
    theta: f32,
    positions: (u32, u32),
}

impl Case {
    fn x_dims(&self) -> [usize; 4] {
        [self.b, self.t, self.nh, self.hs]
    }

    fn numel(&self) -> usize {
        self.b * self.t * self.nh * self.hs
    }

    fn positions(&self, rng: &mut Rng) -> Vec<u32> {
        let (lo, hi) = self.positions;
        (0..self.b * self.t).map(|_| lo + rng.below((hi - lo) as usize + 1) as u32).collect()
    }
}

/// The angle of pair `i` at `pos` as Hugging Face `transformers` computes it, in float32:
/// `inv_freq = 1 / theta ** (arange(0, hs, 2).float() / hs)`, then `inv_freq * pos`. This is the
/// definition the op follows (at positions in the thousands the f32 rounding of the angle moves
/// the result by ~1e-4, see `rope_mirrors_the_float32_angle_at_large_positions`).
fn hf_angle(pos: u32, i: usize, hs: usize, theta: f32) -> f64 {
    let inv_freq = 1.0f32 / theta.powf((2 * i) as f32 / hs as f32);
    (pos as f32 * inv_freq) as f64
}

/// The angle computed exactly, in f64.
fn exact_angle(pos: u32, i: usize, hs: usize, theta: f32) -> f64 {
    pos as f64 * (theta as f64).powf(-((2 * i) as f64) / hs as f64)
}

/// Naive rotate-half RoPE in f64 with the given angle function.
fn reference(
    c: &Case,
    x: &[f64],
    positions: &[u32],
    angle: fn(u32, usize, usize, f32) -> f64,
) -> Vec<f64> {
    let half = c.hs / 2;
    let mut y = vec![0.0; x.len()];
    for (row, &pos) in positions.iter().enumerate() {
        for h in 0..c.nh {
            let base = (row * c.nh + h) * c.hs;
            for i in 0..half {
                let a = angle(pos, i, c.hs, c.theta);
                let (x1, x2) = (x[base + i], x[base + i + half]);
                y[base + i] = x1 * a.cos() - x2 * a.sin();
                y[base + i + half] = x2 * a.cos() + x1 * a.sin();
            }
        }
    }
    y
}

fn cases() -> Vec<Case> {
    vec![
        Case { b: 1, t: 1, nh: 1, hs: 8, theta: 10000.0, positions: (0, 0) },
        Case { b: 2, t: 13, nh: 3, hs: 16, theta: 10000.0, positions: (0, 40) },
        Case { b: 3, t: 7, nh: 2, hs: 8, theta: 1e6, positions: (0, 300) },
        Case { b: 1, t: 5, nh: 4, hs: 64, theta: 1e6, positions: (1000, 4095) },
        Case { b: 2, t: 3, nh: 2, hs: 2, theta: 500.0, positions: (0, 9) },
    ]
}

fn rope_forward_matches_reference<B: Backend>(backend: &B) {
    let mut rng = Rng::new(11);
    for c in cases() {
        let x = rng.normal_vec(c.numel(), 1.0);
        let pos = c.positions(&mut rng);
        let xt = backend.upload_f32(&c.x_dims(), &x, DType::F32).unwrap();
        let pt = backend.upload_u32(&[c.b, c.t], &pos).unwrap();
        let y = backend.rope_fwd(&xt, &pt, c.theta).unwrap();
        assert_eq!(y.dims(), &c.x_dims(), "{c:?}");
        assert_eq!(y.dtype(), DType::F32);
        let want = reference(&c, &to_f64(&x), &pos, hf_angle);
        assert_close(&format!("rope {c:?}"), &backend.download_f32(&y).unwrap(), &want, 1e-6, 1e-6);
    }
}

fn rope_mirrors_the_float32_angle_at_large_positions<B: Backend>(backend: &B) {
    let mut rng = Rng::new(12);
    for theta in [10000.0, 1e6] {
        let c = Case { b: 2, t: 6, nh: 2, hs: 128, theta, positions: (4000, 4095) };
        let x = rng.normal_vec(c.numel(), 1.0);
        let mut pos = c.positions(&mut rng);
        pos[0] = 4095;
        let xt = backend.upload_f32(&c.x_dims(), &x, DType::F32).unwrap();
        let pt = backend.upload_u32(&[c.b, c.t], &pos).unwrap();
        let got = backend.download_f32(&backend.rope_fwd(&xt, &pt, theta).unwrap()).unwrap();
        let want = reference(&c, &to_f64(&x), &pos, hf_angle);
        assert_close(&format!("rope theta={theta}"), &got, &want, 1e-6, 1e-6);
        // The exact angle gives visibly different values here: matching to 1e-6 above is only
        // possible by following transformers' float32 angle.
        let exact = reference(&c, &to_f64(&x), &pos, exact_angle);
        let gap = got.iter().zip(&exact).map(|(&g, e)| (g as f64 - e).abs()).fold(0.0, f64::max);
        assert!(gap > 1e-5, "theta={theta}: f32 and exact angles agree to {gap}");
    }
}

fn rope_small_positions_match_exact_angles<B: Backend>(backend: &B) {
    let mut rng = Rng::new(13);
    let c = Case { b: 2, t: 9, nh: 3, hs: 16, theta: 10000.0, positions: (0, 20) };
    let x = rng.normal_vec(c.numel(), 1.0);
    let pos = c.positions(&mut rng);
    let xt = backend.upload_f32(&c.x_dims(), &x, DType::F32).unwrap();
    let pt = backend.upload_u32(&[c.b, c.t], &pos).unwrap();
    let got = backend.download_f32(&backend.rope_fwd(&xt, &pt, c.theta).unwrap()).unwrap();
    let want = reference(&c, &to_f64(&x), &pos, exact_angle);
    assert_close("rope vs exact angle", &got, &want, 1e-5, 1e-5);
}

fn rope_backward_matches_finite_differences<B: Backend>(backend: &B) {
    let mut rng = Rng::new(14);
    for c in cases() {
        let x = to_f64(&rng.normal_vec(c.numel(), 1.0));
        let pos = c.positions(&mut rng);
        let w = rng.normal_vec(c.numel(), 1.0);
        let wd = to_f64(&w);
        let num_dx = numeric_grad(&x, 1e-3, |x| dot(&wd, &reference(&c, x, &pos, hf_angle)));
        let dy = backend.upload_f32(&c.x_dims(), &w, DType::F32).unwrap();
        let pt = backend.upload_u32(&[c.b, c.t], &pos).unwrap();
        let dx = backend.rope_bwd(&dy, &pt, c.theta).unwrap();
        assert_eq!(dx.dims(), &c.x_dims());
        assert_close(
            &format!("rope dx {c:?}"),
            &backend.download_f32(&dx).unwrap(),
            &num_dx,
            1e-5,
            1e-5,
        );
    }
}

fn rope_backward_undoes_forward<B: Backend>(backend: &B) {
    let mut rng = Rng::new(15);
    let c = Case { b: 2, t: 5, nh: 3, hs: 32, theta: 1e6, positions: (0, 4095) };
    let x = rng.normal_vec(c.numel(), 1.0);
    let pos = c.positions(&mut rng);
    let xt = backend.upload_f32(&c.x_dims(), &x, DType::F32).unwrap();
    let pt = backend.upload_u32(&[c.b, c.t], &pos).unwrap();
    let y = backend.rope_fwd(&xt, &pt, c.theta).unwrap();
    let back = backend.rope_bwd(&y, &pt, c.theta).unwrap();
    assert_close(
        "rope_bwd(rope_fwd(x))",
        &backend.download_f32(&back).unwrap(),
        &to_f64(&x),
        1e-6,
        1e-6,
    );
}

fn rope_bf16_within_bf16_tolerance<B: Backend>(backend: &B) {
    let mut rng = Rng::new(16);
    let c = Case { b: 2, t: 13, nh: 3, hs: 16, theta: 10000.0, positions: (0, 4095) };
    let x = rng.normal_vec(c.numel(), 1.0);
    let pos = c.positions(&mut rng);
    let xt = backend.upload_f32(&c.x_dims(), &x, DType::BF16).unwrap();
    let pt = backend.upload_u32(&[c.b, c.t], &pos).unwrap();
    let y = backend.rope_fwd(&xt, &pt, c.theta).unwrap();
    assert_eq!(y.dtype(), DType::BF16);
    let want = reference(&c, &to_f64(&bf16_round(&x)), &pos, hf_angle);
    // Output rounded to bf16: relative 2^-9, two terms of size ~1.
    assert_close("rope bf16", &backend.download_f32(&y).unwrap(), &want, 1e-2, 8e-3);
    let dx = backend.rope_bwd(&y, &pt, c.theta).unwrap();
    assert_eq!(dx.dtype(), DType::BF16);
}

fn rope_rejects_bad_arguments<B: Backend>(backend: &B) {
    let x = backend.zeros(&[2, 3, 4, 8], DType::F32).unwrap();
    let pos = backend.zeros(&[2, 3], DType::U32).unwrap();

    let odd = backend.zeros(&[2, 3, 4, 7], DType::F32).unwrap();
    let err = backend.rope_fwd(&odd, &pos, 10000.0).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Shape { op: "rope", .. }), "{msg}");
    assert!(msg.contains("[2, 3, 4, 7]") && msg.contains("even"), "{msg}");

    let bad_pos = backend.zeros(&[3, 2], DType::U32).unwrap();
    for err in [
        backend.rope_fwd(&x, &bad_pos, 10000.0).unwrap_err(),
        backend.rope_bwd(&x, &bad_pos, 10000.0).unwrap_err(),
    ] {
        let msg = err.to_string();
        assert!(matches!(err, Error::Shape { op: "rope", .. }), "{msg}");
        assert!(
            msg.contains("positions") && msg.contains("[3, 2]") && msg.contains("[2, 3, 4, 8]"),
            "{msg}"
        );
    }

    let float_pos = backend.zeros(&[2, 3], DType::F32).unwrap();
    let err = backend.rope_fwd(&x, &float_pos, 10000.0).unwrap_err();
    assert!(matches!(err, Error::DType { op: "rope", arg: "positions", .. }), "{err}");

    let ids = backend.zeros(&[2, 3, 4, 8], DType::U32).unwrap();
    let err = backend.rope_fwd(&ids, &pos, 10000.0).unwrap_err();
    assert!(matches!(err, Error::DType { op: "rope", arg: "x", .. }), "{err}");
    let err = backend.rope_bwd(&ids, &pos, 10000.0).unwrap_err();
    assert!(matches!(err, Error::DType { op: "rope", arg: "dy", .. }), "{err}");

    let rank3 = backend.zeros(&[2, 3, 32], DType::F32).unwrap();
    let msg = backend.rope_fwd(&rank3, &pos, 10000.0).unwrap_err().to_string();
    assert!(msg.contains("rope") && msg.contains("[2, 3, 32]"), "{msg}");

    for theta in [0.0, -1.0, f32::NAN, f32::INFINITY] {
        let err = backend.rope_fwd(&x, &pos, theta).unwrap_err();
        assert!(matches!(err, Error::Argument { op: "rope", .. }), "theta {theta}: {err}");
        assert!(err.to_string().contains("theta"), "{err}");
    }
}

backend_tests!(
    cpu, emu, cuda;
    rope_forward_matches_reference,
    rope_mirrors_the_float32_angle_at_large_positions,
    rope_small_positions_match_exact_angles,
    rope_backward_matches_finite_differences,
    rope_backward_undoes_forward,
    rope_bf16_within_bf16_tolerance,
    rope_rejects_bad_arguments,
);
