//! KV-cache decoding: incremental logits equal the full forward's, and generation stops per row
//! (on Cpu and on Emu, where the sample kernel picks each token).

use models::generate::{generate, Decoder, GenerateOptions};
use models::sampling::Sampling;
use models::transformer::Inputs;
use runtime::Backend;

use crate::backend_tests;
use crate::common::{assert_close, to_f64};
use crate::tiny;

fn argmax(row: &[f32]) -> u32 {
    (0..row.len()).fold(0, |best, i| if row[i] > row[best] { i } else { best }) as u32
}

fn incremental_logits_equal_full_forward<B: Backend>(backend: &B) {
    for model_type in tiny::ARCHITECTURES {
        let model = tiny::model(backend, model_type, 5);
        let vocab = model.layout.config.vocab_size;
        let prompts = vec![vec![3, 9, 14], vec![1, 7, 2, 20, 11]];
        let steps = 4;
        let (mut decoder, first) = Decoder::prefill(backend, &model, &prompts, steps).unwrap();
        let mut logits = backend.download_f32(&first).unwrap();
        let mut rows = prompts.clone();
        let mut step_logits = vec![logits.clone()];
        for _ in 1..steps {
            let next: Vec<u32> = logits.chunks(vocab).map(argmax).collect();
            for (row, &t) in rows.iter_mut().zip(&next) {
                row.push(t);
            }
            logits = backend.download_f32(&decoder.step(&next).unwrap()).unwrap();
            step_logits.push(logits.clone());
        }
        // The full forward over each finished row, left-padded exactly as the decoder pads.
        let inputs = Inputs::from_rows(backend, &rows, true, 0).unwrap();
        let acts = model.layout.forward(backend, &model.params, &inputs).unwrap();
        let full = backend.download_f32(&model.layout.logits(backend, &model.params, &acts.hidden).unwrap()).unwrap();
        let len = inputs.len;
        for (s, got) in step_logits.iter().enumerate() {
            for b in 0..rows.len() {
                // Step s predicts the token after the first (padded prompt + s) tokens.
                let t = len - (steps - 1) + s;
                let want = to_f64(&full[(b * len + t - 1) * vocab..][..vocab]);
                assert_close(&format!("{model_type} step {s} row {b}"), &got[b * vocab..][..vocab], &want, 1e-4, 1e-4);
            }
        }
    }
}

fn generation_stops_each_row_at_eos<B: Backend>(backend: &B) {
    let model = tiny::model(backend, "llama", 8);
    let prompts = vec![vec![4, 5, 6], vec![9]];
    let mut options = GenerateOptions {
        max_new_tokens: 6,
        sampling: Sampling::Greedy,
        seed: 0,
        eos_token_ids: vec![],
        pad_token_id: 0,
    };
    let free = generate(backend, &model, &prompts, &options).unwrap();
    assert_eq!(free.iter().map(Vec::len).collect::<Vec<_>>(), vec![6, 6]);
    // Make row 0's third token an EOS: row 0 stops there, row 1 is unaffected unless it meets it.
    options.eos_token_ids = vec![free[0][2]];
    let stopped = generate(backend, &model, &prompts, &options).unwrap();
    let first_eos = free[0].iter().position(|t| *t == free[0][2]).unwrap();
    assert_eq!(stopped[0], free[0][..=first_eos]);
    let row1_stop = free[1].iter().position(|t| *t == free[0][2]).map_or(6, |p| p + 1);
    assert_eq!(stopped[1], free[1][..row1_stop]);

    // Seeded sampling is reproducible and does not depend on the other rows of the batch.
    options.eos_token_ids = vec![];
    options.sampling = Sampling::Sample { temperature: 1.3, top_k: 10, top_p: 0.95 };
    options.seed = 42;
    let a = generate(backend, &model, &prompts, &options).unwrap();
    assert_eq!(a, generate(backend, &model, &prompts, &options).unwrap());
    let alone = generate(backend, &model, &prompts[..1], &options).unwrap();
    assert_eq!(alone[0], a[0]);
}

backend_tests!(incremental_logits_equal_full_forward);
backend_tests!(cpu, emu; generation_stops_each_row_at_eos);
