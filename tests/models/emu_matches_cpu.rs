//! The whole tiny transformer — forward, loss, backward of every parameter and one AdamW step —
//! on the Emu backend (the CUDA kernels run by the PTX emulator) against the Cpu backend, for
//! every architecture. Both backends start from the same weights; every stage is compared.
//!
//! Tolerances (design.md: f32 kernels at tight tolerance): `|emu − cpu| <= 1e-4·scale +
//! 1e-3·|cpu|` with `scale = max(1, max |cpu|)` per tensor. The kernels sum in other orders than
//! the Cpu (tiles, warp trees), so bits differ; errors of a wrong kernel are O(scale).

use models::params::GradSlots;
use models::transformer::{Inputs, Model};
use runtime::ops::adamw::AdamW;
use runtime::{Backend, Cpu, DType, Emu, Tensor};

use crate::tiny;

/// What one backend produced: logits, per-token losses, every gradient and every parameter after
/// one AdamW step, in parameter order.
struct Run {
    logits: Vec<f32>,
    loss: Vec<f32>,
    grads: Vec<(String, Vec<f32>)>,
    stepped: Vec<(String, Vec<f32>)>,
}

fn run<B: Backend>(backend: &B, model_type: &str) -> Run {
    let Model { layout, mut params } = tiny::model(backend, model_type, 21);
    // Right padding on the second row: padded keys, ignored targets.
    let rows = vec![vec![1, 5, 9, 2, 7, 3, 8], vec![4, 4, 8, 11, 19]];
    let t = 7;
    let inputs = Inputs::from_rows(backend, &rows, false, 0).unwrap();
    let targets: Vec<u32> = rows
        .iter()
        .flat_map(|row| (0..t).map(move |i| if i + 1 < row.len() { row[i + 1] } else { u32::MAX }))
        .collect();
    let targets = backend.upload_u32(&[rows.len() * t], &targets).unwrap();

    let acts = layout.forward(backend, &params, &inputs).unwrap();
    let logits = layout.logits(backend, &params, &acts.hidden).unwrap();
    let ce = backend.cross_entropy_fwd(&logits, &targets, u32::MAX).unwrap();
    let dloss = backend.upload_f32(&[rows.len() * t], &vec![1.0; rows.len() * t], DType::F32).unwrap();
    let dlogits = backend.cross_entropy_bwd(&logits, &targets, &ce.lse, &dloss, u32::MAX).unwrap();
    let mut slots = GradSlots::new(params.len());
    let hidden = backend.download_f32(&acts.hidden).unwrap();
    let hidden = backend.upload_f32(acts.hidden.dims(), &hidden, DType::F32).unwrap();
    let dhidden = layout.logits_backward(backend, &params, &hidden, &dlogits, &mut slots).unwrap();
    layout.backward(backend, &params, &inputs, acts, &dhidden, &mut slots).unwrap();
    let grads = slots.into_param_set(backend, &params).unwrap();

    let names: Vec<String> = (0..params.len()).map(|i| params.name(i).to_string()).collect();
    let download = |t: &Tensor<B>| backend.download_f32(t).unwrap();
    let named = |i: usize, t: &Tensor<B>| (names[i].clone(), download(t));
    let grad_values: Vec<_> = (0..grads.len()).map(|i| named(i, grads.get(i))).collect();
    // eps well above the gradients' rounding noise: at step 1 AdamW moves every parameter by about
    // lr·g/(|g| + eps), which for a tiny eps is ±lr whatever the size of g, so a gradient that is
    // 0 on one backend and 1e-9 on the other would differ by a whole step.
    let hyper = AdamW { lr: 1e-2, eps: 1e-3, ..AdamW::default() };
    for i in 0..params.len() {
        let mut m = backend.zeros(params.get(i).dims(), DType::F32).unwrap();
        let mut v = backend.zeros(params.get(i).dims(), DType::F32).unwrap();
        backend.adamw_step(params.get_mut(i), grads.get(i), &mut m, &mut v, &hyper, 1).unwrap();
    }
    let stepped = (0..params.len()).map(|i| named(i, params.get(i))).collect();
    Run { logits: download(&logits), loss: download(&ce.loss), grads: grad_values, stepped }
}

fn assert_close(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let scale = want.iter().fold(1f32, |m, w| m.max(w.abs()));
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let tol = 1e-4 * scale + 1e-3 * w.abs();
        assert!((g - w).abs() <= tol, "{what}[{i}]: emu {g} vs cpu {w} (tolerance {tol})");
    }
}

#[test]
fn tiny_transformer_step_on_emu_matches_cpu() {
    let emu = Emu::new().unwrap();
    for model_type in tiny::ARCHITECTURES {
        let want = run(&Cpu::new(), model_type);
        let got = run(&emu, model_type);
        assert_close(&format!("{model_type} logits"), &got.logits, &want.logits);
        assert_close(&format!("{model_type} loss"), &got.loss, &want.loss);
        for ((name, g), (_, w)) in got.grads.iter().zip(&want.grads) {
            assert_close(&format!("{model_type} grad {name}"), g, w);
        }
        for ((name, g), (_, w)) in got.stepped.iter().zip(&want.stepped) {
            assert_close(&format!("{model_type} stepped {name}"), g, w);
        }
    }
}
