//! The demo's reward stage and what it is built from: the token-sum readout against the scores of
//! the response's prefixes, early stopping on noisy validation labels, and the whole stage on the
//! successor task.

use algorithms::reward::{
    evaluate_pairs, run_reward_stage, standard_error, train_selected, PreferencePair, Readout, RewardConfig, RewardModel,
    RewardStageConfig,
};
use algorithms::tasks::annotator::Annotator;
use algorithms::tokenizer::TaskTokenizer;
use runtime::Cpu;

use crate::reward_train::tiny_sft_policy;
use crate::successor::Successor;

/// Every (prompt, right answer, wrong answer) of the successor task labelled by `annotator`.
fn labelled_pairs(tok: &TaskTokenizer, annotator: &mut Annotator) -> Vec<PreferencePair> {
    let mut pairs = Vec::new();
    for d in 0..10u32 {
        let right = (d + 1) % 10;
        for w in (0..10).filter(|&w| w != right) {
            let label = annotator.label_gold((1.0, 0.0));
            let (c, r, gold) = if label.first_preferred { (right, w, (1.0, 0.0)) } else { (w, right, (0.0, 1.0)) };
            pairs.push(PreferencePair {
                prompt: tok.encode(&format!("{d}>")).unwrap(),
                chosen: tok.encode_response(&c.to_string()).unwrap(),
                rejected: tok.encode_response(&r.to_string()).unwrap(),
                label: 1.0,
                margin: 0.0,
                outcomes: None,
                gold,
            });
        }
    }
    pairs
}

/// Causal attention makes the hidden state at a response position the same as at the last token
/// of the row cut after it, so the token-sum reward is the sum of the last-token rewards of the
/// response's prefixes.
#[test]
fn token_sum_readout_adds_the_scores_of_the_response_prefixes() {
    let backend = Cpu::new();
    let (_dir, tok, policy) = tiny_sft_policy("reward-readout", 30);
    let last = RewardModel::from_policy(&backend, &policy, 0.5, 2).unwrap();
    let sum = RewardModel::from_policy(&backend, &policy, 0.5, 2).unwrap().with_readout(Readout::TokenSum);
    let mean = RewardModel::from_policy(&backend, &policy, 0.5, 2).unwrap().with_readout(Readout::TokenMean);
    let prompt = tok.encode("3>").unwrap();
    let responses = [tok.encode_response("4").unwrap(), tok.encode_response("47").unwrap(), tok.encode_response("123").unwrap()];
    let rows: Vec<(&[u32], &[u32])> = responses.iter().map(|r| (prompt.as_slice(), r.as_slice())).collect();
    // Scored in one padded batch and one row at a time: padding must not leak into the sums.
    let batched = sum.score(&backend, &rows, tok.pad_id(), 8).unwrap();
    let single = sum.score(&backend, &rows, tok.pad_id(), 1).unwrap();
    let means = mean.score(&backend, &rows, tok.pad_id(), 8).unwrap();
    for (((response, &b), &s), &m) in responses.iter().zip(&batched).zip(&single).zip(&means) {
        let prefixes: Vec<(&[u32], &[u32])> = (1..=response.len()).map(|k| (prompt.as_slice(), &response[..k])).collect();
        let want: f64 = last.score(&backend, &prefixes, tok.pad_id(), 1).unwrap().iter().map(|&x| f64::from(x)).sum();
        assert!((f64::from(b) - want).abs() < 1e-5, "{response:?}: token sum {b}, prefix sum {want}");
        assert!((b - s).abs() < 1e-5, "{response:?}: batched {b}, alone {s}");
        assert!((f64::from(m) - want / response.len() as f64).abs() < 1e-5, "{response:?}: token mean {m}");
    }
    // A one-token response reads the same position either way.
    let one = [(prompt.as_slice(), responses[0].as_slice())];
    let (a, b) = (last.score(&backend, &one, tok.pad_id(), 1).unwrap(), sum.score(&backend, &one, tok.pad_id(), 1).unwrap());
    assert_eq!(responses[0].len(), 2, "the digit and the end marker");
    assert_ne!(a, b, "two positions are summed for a digit and its end marker");
}

#[test]
fn early_stopping_keeps_the_last_checkpoint_within_a_standard_error_of_the_best() {
    let backend = Cpu::new();
    let (_dir, tok, policy) = tiny_sft_policy("reward-select", 120);
    let train = labelled_pairs(&tok, &mut Annotator::new(0.2, 1).unwrap());
    let validation = labelled_pairs(&tok, &mut Annotator::new(0.2, 2).unwrap());
    let config = RewardConfig::new(70, 16, 3e-3);
    let mut rm = RewardModel::from_policy(&backend, &policy, config.head_init_std, 0).unwrap();
    let mut steps = 0;
    let selection = train_selected(&backend, &mut rm, &train, &validation, tok.pad_id(), &config, 20, &mut |_| steps += 1).unwrap();
    assert_eq!(steps, 70);
    let checked: Vec<usize> = selection.checks.iter().map(|c| c.0).collect();
    assert_eq!(checked, [20, 40, 60, 70], "every 20 steps and after the last");
    let best = selection.checks.iter().map(|c| c.1).fold(f64::NEG_INFINITY, f64::max);
    let error = (best * (1.0 - best) / validation.len() as f64).sqrt();
    assert_eq!((selection.best_accuracy, selection.standard_error), (best, error));
    assert_eq!(standard_error(best, validation.len()), error);
    let last_close = selection.checks.iter().rev().find(|c| c.1 >= best - error).unwrap();
    assert_eq!((selection.step, selection.label_accuracy), *last_close);
    // The model left behind is that checkpoint: it scores exactly what the check measured.
    let now = evaluate_pairs(&backend, &rm, &validation, tok.pad_id()).unwrap();
    assert_eq!(now.label_accuracy, selection.label_accuracy);

    let mut rm = RewardModel::from_policy(&backend, &policy, config.head_init_std, 0).unwrap();
    let err = train_selected(&backend, &mut rm, &train, &[], tok.pad_id(), &config, 20, &mut |_| {}).err().unwrap();
    assert!(err.to_string().contains("validation"), "{err}");
    assert!(train_selected(&backend, &mut rm, &train, &validation, tok.pad_id(), &config, 0, &mut |_| {}).is_err());
}

#[test]
fn reward_stage_reports_every_model_it_trains() {
    let backend = Cpu::new();
    let task = Successor::noisy();
    // Barely trained, so that its two samples for a prompt often differ.
    let (_dir, tok, policy) = tiny_sft_policy("reward-stage", 10);
    let mut config = RewardStageConfig::new(6, 2, 40, 3);
    config.validation_fraction = 0.3;
    config.check_every = 20;
    let mut phases = Vec::new();
    let out = run_reward_stage(&backend, &policy, &tok, &task, &config, &mut |p| {
        if phases.last() != Some(&p.phase) {
            phases.push(p.phase.clone());
        }
    })
    .unwrap();
    assert_eq!(phases, ["pairs", "member 1/2 (raw labels)", "member 2/2", "denoised labels"]);
    let report = &out.report;
    assert_eq!(report.member_steps.len(), 2);
    assert!(report.train_pairs > 0 && report.validation_pairs > 0);
    assert_eq!(report.held_out_pairs, out.held_out.len());
    let counts = report.denoise_counts.unwrap();
    assert_eq!(counts.kept + counts.flipped + counts.softened, report.train_pairs);
    assert!(report.ensemble_mean.is_some());
    // With an ensemble the stage keeps the model on the denoised labels; the raw one is reported.
    let (denoised, denoised_validation) = report.denoised.unwrap();
    assert_eq!((report.held_out, report.selection.label_accuracy), (denoised, denoised_validation));
    assert_eq!(report.undenoised.0.pairs, report.held_out_pairs);
    // Every member is measured on the held-out pairs, the raw-label model first.
    assert_eq!(report.member_accuracies.len(), 2);
    assert_eq!(report.member_accuracies[0], report.undenoised.0);
    assert!(report.member_accuracies.iter().all(|a| a.pairs == report.held_out_pairs));
    // The report's accuracy is the returned model's on the returned pairs.
    let again = evaluate_pairs(&backend, &out.model, &out.held_out, tok.pad_id()).unwrap();
    assert_eq!(again, report.held_out);
    assert_eq!(out.model.readout, Readout::TokenSum);

    config.validation_fraction = 0.0;
    let err = run_reward_stage(&backend, &policy, &tok, &task, &config, &mut |_| {}).err().unwrap();
    assert!(err.to_string().contains("validation"), "{err}");
}
