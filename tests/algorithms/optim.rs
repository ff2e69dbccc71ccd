//! The optimizer: schedule values, AdamW with clipping against an f64 reference, skipped steps.

use algorithms::optim::{LrSchedule, Optimizer};
use models::params::ParamSet;
use runtime::ops::adamw::AdamW;
use runtime::{Backend, Cpu, DType};

use crate::common::{assert_close, Rng};

#[test]
fn schedule_warms_up_linearly_then_follows_a_cosine() {
    let s = LrSchedule { peak: 1.0, warmup_steps: 4, total_steps: 14, final_ratio: 0.1 };
    let want = |step: usize| -> f64 {
        if step < 4 {
            (step + 1) as f64 / 4.0
        } else {
            let progress = ((step - 4) as f64 / 10.0).min(1.0);
            0.1 + 0.9 * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
        }
    };
    for step in 0..20 {
        assert!((f64::from(s.at(step)) - want(step)).abs() < 1e-6, "step {step}: {} vs {}", s.at(step), want(step));
    }
    assert_eq!(s.at(3), 1.0);
    assert_eq!(s.at(4), 1.0);
    assert!((s.at(9) - 0.55).abs() < 1e-6, "half way down");
    assert!((s.at(100) - 0.1).abs() < 1e-6);
    assert!((0..10).all(|i| LrSchedule::constant(0.3).at(i) == 0.3));
}

fn upload(backend: &Cpu, dims: &[usize], data: &[f64]) -> runtime::Tensor<Cpu> {
    let host: Vec<f32> = data.iter().map(|&x| x as f32).collect();
    backend.upload_f32(dims, &host, DType::F32).unwrap()
}

#[test]
fn step_is_clipped_adamw_with_decay_on_matrices_only() {
    let backend = Cpu::new();
    let mut rng = Rng::new(21);
    let shapes: [&[usize]; 2] = [&[2, 3], &[3]];
    let mut want: Vec<Vec<f64>> =
        shapes.iter().map(|d| (0..d.iter().product()).map(|_| rng.normal()).collect()).collect();
    let mut params = ParamSet::default();
    for (i, dims) in shapes.iter().enumerate() {
        params.push(format!("p{i}"), upload(&backend, dims, &want[i]));
    }
    let hyper = AdamW { lr: 0.0, beta1: 0.8, beta2: 0.9, eps: 1e-6, weight_decay: 0.2 };
    let max_norm = 0.5f32;
    let mut optimizer = Optimizer::new(&backend, &params, hyper, max_norm).unwrap();
    let mut m: Vec<Vec<f64>> = want.iter().map(|p| vec![0.0; p.len()]).collect();
    let mut v = m.clone();
    for (t, lr) in [(1, 0.1), (2, 0.05), (3, 0.02)] {
        let grads: Vec<Vec<f64>> = want.iter().map(|p| p.iter().map(|_| rng.normal()).collect()).collect();
        let mut grad_set = ParamSet::default();
        for (i, dims) in shapes.iter().enumerate() {
            grad_set.push(format!("g{i}"), upload(&backend, dims, &grads[i]));
        }
        let stats = optimizer.step(&backend, &mut params, grad_set, lr as f32).unwrap();
        let norm = grads.iter().flatten().map(|g| g * g).sum::<f64>().sqrt();
        assert!((f64::from(stats.grad_norm) - norm).abs() < 1e-5 && !stats.skipped);
        let scale = (f64::from(max_norm) / (norm + 1e-6)).min(1.0);
        let (c1, c2) = (1.0 - 0.8f64.powi(t), 1.0 - 0.9f64.powi(t));
        for (i, p) in want.iter_mut().enumerate() {
            let decay = if i == 0 { 0.2 } else { 0.0 };
            for j in 0..p.len() {
                let g = grads[i][j] * scale;
                m[i][j] = 0.8 * m[i][j] + 0.2 * g;
                v[i][j] = 0.9 * v[i][j] + 0.1 * g * g;
                p[j] = p[j] * (1.0 - lr * decay) - lr / c1 * m[i][j] / (v[i][j].sqrt() / c2.sqrt() + 1e-6);
            }
        }
    }
    assert_eq!(optimizer.steps(), 3);
    for (i, p) in want.iter().enumerate() {
        assert_close(&format!("param {i}"), &backend.download_f32(params.get(i)).unwrap(), p, 1e-5, 1e-5);
    }

    // A NaN gradient skips the step and changes nothing.
    let before: Vec<Vec<f32>> = (0..2).map(|i| backend.download_f32(params.get(i)).unwrap()).collect();
    let mut bad = ParamSet::default();
    bad.push("g0", upload(&backend, &[2, 3], &[f64::NAN; 6]));
    bad.push("g1", upload(&backend, &[3], &[1.0; 3]));
    let stats = optimizer.step(&backend, &mut params, bad, 0.1).unwrap();
    assert!(stats.skipped && stats.grad_norm.is_nan());
    assert_eq!(optimizer.steps(), 3);
    for (i, b) in before.iter().enumerate() {
        assert_eq!(&backend.download_f32(params.get(i)).unwrap(), b);
    }
}

#[test]
fn optimizer_rejects_bf16_masters_and_mismatched_gradients() {
    let backend = Cpu::new();
    let mut params = ParamSet::default();
    params.push("w", backend.upload_f32(&[2], &[1.0, 2.0], DType::BF16).unwrap());
    assert!(Optimizer::new(&backend, &params, AdamW::default(), 1.0).is_err());
    let mut params = ParamSet::default();
    params.push("w", backend.upload_f32(&[2], &[1.0, 2.0], DType::F32).unwrap());
    assert!(Optimizer::new(&backend, &params, AdamW::default(), -1.0).is_err());
    let mut optimizer = Optimizer::new(&backend, &params, AdamW::default(), 1.0).unwrap();
    assert!(optimizer.step(&backend, &mut params, ParamSet::default(), 0.1).is_err());
}

#[test]
fn scaled_step_freezes_and_scales_parameters() {
    let backend = Cpu::new();
    let mut params = ParamSet::default();
    params.push("frozen", upload(&backend, &[2, 2], &[1.0, -2.0, 3.0, 0.5]));
    params.push("slow", upload(&backend, &[2], &[1.0, 1.0]));
    params.push("fast", upload(&backend, &[2], &[1.0, 1.0]));
    let hyper = AdamW { lr: 0.0, beta1: 0.9, beta2: 0.99, eps: 1e-8, weight_decay: 0.5 };
    // Clip at 1: the frozen parameter's large gradient must not shrink the others'.
    let mut optimizer = Optimizer::new(&backend, &params, hyper, 1.0).unwrap();
    let grads = |backend: &Cpu| {
        let mut g = ParamSet::default();
        g.push("frozen", upload(backend, &[2, 2], &[100.0; 4]));
        g.push("slow", upload(backend, &[2], &[0.3, -0.4]));
        g.push("fast", upload(backend, &[2], &[0.3, -0.4]));
        g
    };
    let stats = optimizer.step_scaled(&backend, &mut params, grads(&backend), 0.1, &[0.0, 0.5, 1.0]).unwrap();
    assert!((stats.grad_norm - 0.5f32.sqrt()).abs() < 1e-6, "the norm counts the trained parameters only: {stats:?}");
    assert_eq!(backend.download_f32(params.get(0)).unwrap(), vec![1.0, -2.0, 3.0, 0.5], "no update, no decay");
    // A first AdamW step moves each element by the rate against its gradient's sign.
    assert_close("slow", &backend.download_f32(params.get(1)).unwrap(), &[0.95, 1.05], 1e-6, 1e-6);
    assert_close("fast", &backend.download_f32(params.get(2)).unwrap(), &[0.9, 1.1], 1e-6, 1e-6);

    // Released after a step, the parameter starts like a fresh one (its own bias correction):
    // its first step is again the full rate with decay, 1 − 0.1·0.5·x − 0.1·sign(g).
    optimizer.step_scaled(&backend, &mut params, grads(&backend), 0.1, &[1.0, 1.0, 1.0]).unwrap();
    let want = [1.0 * 0.95 - 0.1, -2.0 * 0.95 - 0.1, 3.0 * 0.95 - 0.1, 0.5 * 0.95 - 0.1];
    assert_close("released", &backend.download_f32(params.get(0)).unwrap(), &want, 1e-5, 1e-5);
    assert_eq!(optimizer.steps(), 2);
    assert!(optimizer.step_scaled(&backend, &mut params, grads(&backend), 0.1, &[1.0, 1.0]).is_err());
    assert!(optimizer.step_scaled(&backend, &mut params, grads(&backend), 0.1, &[1.0, -1.0, 1.0]).is_err());
}
