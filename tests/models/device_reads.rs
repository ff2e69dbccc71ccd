//! The GPU code path reads nothing back from the device until a result is asked for. On a GPU a
//! device-to-host copy waits for all queued work, so a launcher that read its ids, targets or
//! masks back to validate them would stall the stream once per attention layer and per decoding
//! step. Ids, targets and masks uploaded by the host carry their largest value with them
//! (`Tensor::known_max`), and the launchers check that instead; tokens are sampled on the device,
//! so a decoding step copies back `B` ids, not `[B, V]` logits. The emulator counts its
//! device-to-host copies.

use models::generate::{generate, GenerateOptions};
use models::params::GradSlots;
use models::sampling::Sampling;
use models::transformer::{Inputs, Model};
use runtime::ops::ppo_loss::PpoLossConfig;
use runtime::{Backend, DType, Emu};

use crate::tiny;

fn emu() -> Emu {
    Emu::new().unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn a_training_step_reads_nothing_back_until_the_loss() {
    let backend = emu();
    for model_type in tiny::ARCHITECTURES {
        let Model { layout, params } = tiny::model(&backend, model_type, 5);
        let rows = vec![vec![1, 5, 9, 2, 7, 3], vec![4, 4, 8, 11]];
        let inputs = Inputs::from_rows(&backend, &rows, false, 0).unwrap();
        let t = inputs.len;
        let targets: Vec<u32> = rows.iter().flat_map(|r| (0..t).map(move |i| r.get(i + 1).copied().unwrap_or(0))).collect();
        let targets = backend.upload_u32(&[rows.len() * t], &targets).unwrap();
        let before = backend.downloads();

        let acts = layout.forward(&backend, &params, &inputs).unwrap();
        let logits = layout.logits(&backend, &params, &acts.hidden).unwrap();
        let out = backend.logprob_fwd(&logits, &targets, 1.0).unwrap();
        let ce = backend.cross_entropy_fwd(&logits, &targets, u32::MAX).unwrap();
        let ones = backend.upload_f32(&[rows.len() * t], &vec![1.0; rows.len() * t], DType::F32).unwrap();
        let dlogits = backend.cross_entropy_bwd(&logits, &targets, &ce.lse, &ones, u32::MAX).unwrap();
        backend.logprob_bwd(&logits, &targets, &out.lse, &out.entropy, &ones, None, 1.0).unwrap();
        let mut slots = GradSlots::new(params.len());
        let dhidden = layout.logits_backward(&backend, &params, &acts.hidden, &dlogits, &mut slots).unwrap();
        layout.backward(&backend, &params, &inputs, acts, &dhidden, &mut slots).unwrap();
        assert_eq!(backend.downloads(), before, "{model_type}: forward, log-probs and backward read the device");

        backend.download_f32(&out.logprob).unwrap();
        assert_eq!(backend.downloads(), before + 1, "{model_type}: the result is one read");
    }
}

#[test]
fn generation_reads_back_one_row_of_ids_per_step() {
    let backend = emu();
    let model = tiny::model(&backend, "llama", 8);
    let prompts = vec![vec![3, 1, 4], vec![1, 5]];
    let sampling = Sampling::Sample { temperature: 1.0, top_k: 5, top_p: 0.9 };
    let options = GenerateOptions { max_new_tokens: 5, sampling, seed: 2, eos_token_ids: vec![], pad_token_id: 0 };
    let before = backend.downloads();
    let out = generate(&backend, &model, &prompts, &options).unwrap();
    assert!(out.iter().all(|row| row.len() == 5));
    assert_eq!(backend.downloads(), before + 5, "one copy of the sampled ids per step, no logits, no masks");
}

#[test]
fn gae_reads_nothing_back_and_the_ppo_loss_its_mask_and_totals() {
    let backend = emu();
    let (b, t) = (3, 5);
    let values: Vec<f32> = (0..b * t).map(|i| (i as f32 * 0.37).sin()).collect();
    let x = backend.upload_f32(&[b, t], &values, DType::F32).unwrap();
    let mask: Vec<u32> = (0..b * t).map(|i| u32::from(i % t >= 1 && i % 7 != 3)).collect();
    let mask = backend.upload_u32(&[b, t], &mask).unwrap();
    let before = backend.downloads();
    let gae = backend.gae(&x, &x, &mask, 0.9, 0.95).unwrap();
    assert_eq!(backend.downloads(), before, "gae read the device");
    let loss = backend.ppo_loss(&gae.returns, &x, &gae.advantages, &mask, &PpoLossConfig::new(0.2)).unwrap();
    // The mask (for the rows' gradient weights, so the kernel reads each token once) and the totals.
    assert_eq!(backend.downloads(), before + 2, "the PPO loss reads back its mask and totals only");
    assert!(loss.loss.is_finite());
}

#[test]
fn bad_values_are_still_caught_without_a_read() {
    let backend = emu();
    let table = backend.upload_f32(&[4, 2], &[0.5; 8], DType::F32).unwrap();
    let ids = backend.upload_u32(&[3], &[1, 4, 0]).unwrap();
    let err = backend.embedding_fwd(&ids, &table).unwrap_err().to_string();
    assert!(err.contains("ids[1]") && err.contains("= 4"), "{err}");
    let x = backend.upload_f32(&[1, 3], &[0.1, 0.2, 0.3], DType::F32).unwrap();
    let mask = backend.upload_u32(&[1, 3], &[1, 2, 0]).unwrap();
    let err = backend.gae(&x, &x, &mask, 1.0, 1.0).err().expect("a mask value of 2 is an error").to_string();
    assert!(err.contains("mask value 2"), "{err}");
    // A mask the host wrote as zeros needs no read either.
    let zeros = backend.zeros(&[1, 3], DType::U32).unwrap();
    let before = backend.downloads();
    backend.gae(&x, &x, &zeros, 1.0, 1.0).unwrap();
    assert_eq!(backend.downloads(), before);
}
