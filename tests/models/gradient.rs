//! The whole tiny transformer's backward against finite differences of its forward, for every
//! architecture, on a sample of elements of every parameter tensor.

use models::params::{GradSlots, ParamSet};
use models::transformer::{Inputs, Model, Transformer};
use runtime::{Backend, DType};

use crate::backend_tests;
use crate::common::Rng;
use crate::tiny;

/// Sum over real tokens of the next-token cross-entropy, computed through the model.
fn loss<B: Backend>(backend: &B, layout: &Transformer, params: &ParamSet<B>, inputs: &Inputs<B>, targets: &runtime::Tensor<B>) -> f64 {
    let acts = layout.forward(backend, params, inputs).unwrap();
    let logits = layout.logits(backend, params, &acts.hidden).unwrap();
    let ce = backend.cross_entropy_fwd(&logits, targets, u32::MAX).unwrap();
    backend.download_f32(&ce.loss).unwrap().iter().map(|&x| x as f64).sum()
}

fn whole_model_gradients_match_finite_differences<B: Backend>(backend: &B) {
    for model_type in tiny::ARCHITECTURES {
        let config = tiny::config(model_type);
        let Model { layout, mut params } = tiny::model(backend, model_type, 11);
        let mut rng = Rng::new(12);
        // Right-padded second row so padding and ignored targets are exercised.
        let rows = vec![vec![1, 5, 9, 2, 7, 3], vec![4, 4, 8, 11]];
        let inputs = Inputs::from_rows(backend, &rows, false, 0).unwrap();
        let mut targets = Vec::new();
        for row in &rows {
            for i in 0..6 {
                targets.push(if i + 1 < row.len() { row[i + 1] } else { u32::MAX });
            }
        }
        let targets = backend.upload_u32(&[12], &targets).unwrap();

        let acts = layout.forward(backend, &params, &inputs).unwrap();
        let hidden = backend.download_f32(&acts.hidden).unwrap();
        let hidden = backend.upload_f32(&[12, config.hidden_size], &hidden, DType::F32).unwrap();
        let logits = layout.logits(backend, &params, &hidden).unwrap();
        let ce = backend.cross_entropy_fwd(&logits, &targets, u32::MAX).unwrap();
        let ones = backend.upload_f32(&[12], &[1.0; 12], DType::F32).unwrap();
        let dlogits = backend.cross_entropy_bwd(&logits, &targets, &ce.lse, &ones, u32::MAX).unwrap();
        let mut slots = GradSlots::new(params.len());
        let dhidden = layout.logits_backward(backend, &params, &hidden, &dlogits, &mut slots).unwrap();
        layout.backward(backend, &params, &inputs, acts, &dhidden, &mut slots).unwrap();
        let grads = slots.into_param_set(backend, &params).unwrap();

        let h = 1e-2f32;
        for i in 0..params.len() {
            let name = params.name(i).to_string();
            let analytic = backend.download_f32(grads.get(i)).unwrap();
            let values = backend.download_f32(params.get(i)).unwrap();
            let dims = params.get(i).dims().to_vec();
            for _ in 0..3 {
                let j = rng.below(values.len());
                let mut probe = |delta: f32| {
                    let mut v = values.clone();
                    v[j] += delta;
                    *params.get_mut(i) = backend.upload_f32(&dims, &v, DType::F32).unwrap();
                    loss(backend, &layout, &params, &inputs, &targets)
                };
                let numeric = (probe(h) - probe(-h)) / (2.0 * h as f64);
                *params.get_mut(i) = backend.upload_f32(&dims, &values, DType::F32).unwrap();
                let got = analytic[j] as f64;
                assert!(
                    (got - numeric).abs() <= 2e-3 + 2e-2 * numeric.abs(),
                    "{model_type} {name}[{j}]: backward {got}, finite difference {numeric}"
                );
            }
        }
    }
}

backend_tests!(whole_model_gradients_match_finite_differences);
