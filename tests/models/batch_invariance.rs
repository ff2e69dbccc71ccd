//! A sequence's token log-probs through the whole tiny transformer (forward, LM head, fused
//! log-prob) are bit-identical whether it is scored alone or inside a right-padded batch with
//! other sequences, longer and shorter, at any position, on the GPU code path (the kernels run by
//! the emulator). This is what lets rollout log-probs equal training log-probs exactly (an
//! importance ratio of exactly 1 before the first update), whatever minibatch a sequence lands in.
//!
//! The Cpu backend does not promise this across padded lengths: its GEMM (the `gemm` crate)
//! changes its summation order with the number of rows for narrow outputs (N ≤ ~23 seen), so the
//! tiny models here differ in the last bit between a batch of 9 rows and one of 39. The Cpu's
//! rollouts get exact ratios by scoring each minibatch with the same forward as the update.

use models::transformer::{Inputs, Model};
use runtime::Backend;

use crate::backend_tests;
use crate::tiny;

/// Log-probs of each row's next tokens, `[rows][T − 1]` over the batch's padded length.
fn logprobs<B: Backend>(backend: &B, model: &Model<B>, rows: &[Vec<u32>]) -> Vec<Vec<u32>> {
    let inputs = Inputs::from_rows(backend, rows, false, 0).unwrap();
    let t = inputs.len;
    let acts = model.layout.forward(backend, &model.params, &inputs).unwrap();
    let logits = model.layout.logits(backend, &model.params, &acts.hidden).unwrap();
    // Target of position i is token i + 1 (token 0 past the end: its result is not compared).
    let targets: Vec<u32> = rows
        .iter()
        .flat_map(|row| (0..t).map(move |i| row.get(i + 1).copied().unwrap_or(0)))
        .collect();
    let targets = backend.upload_u32(&[rows.len() * t], &targets).unwrap();
    let out = backend.logprob_fwd(&logits, &targets, 1.0).unwrap();
    let bits: Vec<u32> = backend.download_f32(&out.logprob).unwrap().iter().map(|x| x.to_bits()).collect();
    bits.chunks(t).map(|row| row.to_vec()).collect()
}

fn sequence_logprobs_do_not_depend_on_the_batch<B: Backend>(backend: &B) {
    for model_type in tiny::ARCHITECTURES {
        let model = tiny::model(backend, model_type, 31);
        let seq = vec![3, 14, 15, 9, 2, 6, 5, 3, 5];
        let real = seq.len() - 1;
        let alone = &logprobs(backend, &model, std::slice::from_ref(&seq))[0][..real];
        let longer = vec![2, 7, 1, 8, 2, 8, 1, 8, 2, 8, 4, 5, 9];
        let shorter = vec![1, 4, 1, 4];
        for position in 0..3 {
            let mut batch = vec![longer.clone(), shorter.clone()];
            batch.insert(position, seq.clone());
            let got = &logprobs(backend, &model, &batch)[position][..real];
            assert_eq!(got, alone, "{model_type}: sequence at row {position} of a batch of 3");
        }
    }
}

backend_tests!(emu, cuda; sequence_logprobs_do_not_depend_on_the_batch);
