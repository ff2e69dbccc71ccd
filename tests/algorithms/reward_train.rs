//! Reward-model training: the combined loss against an f64 reference (Bradley–Terry with margin,
//! soft label and smoothing, binary outcome loss, GRM's SFT term) and its gradients against finite
//! differences, the GRM term adding exactly `alpha` times the SFT loss, pairs sampled from a
//! policy, and learning a tiny preference problem end to end.

use algorithms::model::{init_model, ModelShape};
use algorithms::reward::{
    evaluate_pairs, pair_accuracy, reward_loss_and_grads, sample_preference_pairs, train_ensemble,
    ensemble_strength, PairSampling, PreferencePair, Readout, RewardConfig, RewardLossConfig, RewardModel,
};
use algorithms::sft::{loss_and_grads, tokenize, train_sft, SftConfig, SftRow};
use algorithms::tasks::annotator::Annotator;
use algorithms::tasks::Task;
use algorithms::tokenizer::{train_tokenizer, TaskTokenizer};
use models::transformer::Model;
use models::Architecture;
use models::sampling::Sampling;
use runtime::{Backend, Cpu, DType};

use crate::common::Rng;
use crate::successor::Successor;
use crate::Scratch;

fn tiny_setup(name: &str) -> (Scratch, TaskTokenizer, Model<Cpu>) {
    let dir = Scratch::new(name);
    let tokenizer = train_tokenizer(&Successor::new(), dir.path()).unwrap();
    let shape = ModelShape { arch: Architecture::Gpt2, hidden: 32, layers: 1, heads: 2, intermediate: 64, max_positions: 8 };
    let policy = init_model(&Cpu::new(), &shape.config(&tokenizer), 1).unwrap();
    (dir, tokenizer, policy)
}

/// The tiny policy after `steps` SFT steps on the successor task.
pub(crate) fn tiny_sft_policy(name: &str, steps: usize) -> (Scratch, TaskTokenizer, Model<Cpu>) {
    let (dir, tokenizer, mut policy) = tiny_setup(name);
    let rows = tokenize(&tokenizer, Successor::new().sft_corpus()).unwrap();
    train_sft(&Cpu::new(), &mut policy, &rows, tokenizer.pad_id(), &SftConfig::new(steps, 32, 1e-2), &mut |_| {}).unwrap();
    (dir, tokenizer, policy)
}

/// The pair "`prompt`> chosen `c` over rejected `r`" with the given label, margin and outcomes.
fn pair(tok: &TaskTokenizer, prompt: u32, c: u32, r: u32, label: f32, margin: f32) -> PreferencePair {
    let right = |x: u32| if x == (prompt + 1) % 10 { 1.0 } else { 0.0 };
    PreferencePair {
        prompt: tok.encode(&format!("{prompt}>")).unwrap(),
        chosen: tok.encode_response(&c.to_string()).unwrap(),
        rejected: tok.encode_response(&r.to_string()).unwrap(),
        label,
        margin,
        outcomes: Some((right(c), right(r))),
        gold: (right(c), right(r)),
    }
}

fn softplus(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// The documented objective in f64 from the model's scores (read by `RewardModel::score`, a path
/// independent of the trainer's) and the SFT trainer's loss on the chosen rows.
fn reference_loss(backend: &Cpu, rm: &RewardModel<Cpu>, pairs: &[PreferencePair], config: &RewardLossConfig) -> f64 {
    let rows: Vec<(&[u32], &[u32])> =
        pairs.iter().flat_map(|p| [(&p.prompt[..], &p.chosen[..]), (&p.prompt[..], &p.rejected[..])]).collect();
    let scores = rm.score(backend, &rows, 0, 3).unwrap();
    let eps = f64::from(config.label_smoothing);
    let (mut bt, mut binary) = (0.0, 0.0);
    for (p, rc_rr) in pairs.iter().zip(scores.chunks(2)) {
        let (rc, rr) = (f64::from(rc_rr[0]), f64::from(rc_rr[1]));
        let t = (1.0 - eps) * f64::from(p.label) + eps / 2.0;
        let delta = rc - rr - f64::from(p.margin);
        bt += t * softplus(-delta) + (1.0 - t) * softplus(delta);
        let (yc, yr) = p.outcomes.unwrap();
        let (yc, yr) = (f64::from(yc), f64::from(yr));
        binary += yc * softplus(-rc) + (1.0 - yc) * softplus(rc) + yr * softplus(-rr) + (1.0 - yr) * softplus(rr);
    }
    let n = pairs.len() as f64;
    let sft_rows: Vec<SftRow> =
        pairs.iter().map(|p| SftRow { prompt: p.prompt.clone(), response: p.chosen.clone() }).collect();
    let sft = loss_and_grads(backend, &rm.model, &sft_rows.iter().collect::<Vec<_>>(), 0).unwrap().loss;
    bt / n + f64::from(config.binary_weight) * binary / (2.0 * n) + f64::from(config.grm_alpha) * f64::from(sft)
}

fn awkward_pairs(tok: &TaskTokenizer) -> Vec<PreferencePair> {
    // A two-digit response so that rows differ in length and padding is exercised.
    let mut long = pair(tok, 4, 5, 2, 1.0, 0.0);
    long.rejected = tok.encode_response("23").unwrap();
    vec![pair(tok, 3, 4, 7, 1.0, 0.5), pair(tok, 8, 1, 9, 0.3, 0.0), long, pair(tok, 0, 6, 1, 0.8, -0.2)]
}

#[test]
fn reward_loss_and_gradients_match_an_f64_reference() {
    for readout in [Readout::LastToken, Readout::TokenSum, Readout::TokenMean] {
        loss_and_gradients_match_an_f64_reference(readout);
    }
}

fn loss_and_gradients_match_an_f64_reference(readout: Readout) {
    let backend = Cpu::new();
    let (_dir, tok, policy) = tiny_setup("reward-loss-reference");
    let mut rm = RewardModel::from_policy(&backend, &policy, 0.5, 3).unwrap().with_readout(readout);
    let pairs = awkward_pairs(&tok);
    let config = RewardLossConfig { label_smoothing: 0.1, binary_weight: 0.7, grm_alpha: 0.4 };
    let refs: Vec<&PreferencePair> = pairs.iter().collect();
    let out = reward_loss_and_grads(&backend, &rm, &refs, tok.pad_id(), &config).unwrap();
    let want = reference_loss(&backend, &rm, &pairs, &config);
    assert!((f64::from(out.loss) - want).abs() < 1e-5 * want.abs().max(1.0), "loss {} vs reference {want}", out.loss);
    let terms = f64::from(out.bt) + 0.7 * f64::from(out.binary) + 0.4 * f64::from(out.sft);
    assert!((terms - f64::from(out.loss)).abs() < 1e-6, "the total is the weighted sum of the terms");

    let mut rng = Rng::new(5);
    let h = 1e-2f32;
    let params = &mut rm.model.params;
    for i in 0..params.len() {
        let analytic = backend.download_f32(out.grads.get(i)).unwrap();
        let values = backend.download_f32(params.get(i)).unwrap();
        let dims = params.get(i).dims().to_vec();
        for _ in 0..2 {
            let j = rng.below(values.len());
            let probe = |delta: f32, params: &mut models::params::ParamSet<Cpu>| {
                let mut v = values.clone();
                v[j] += delta;
                *params.get_mut(i) = backend.upload_f32(&dims, &v, DType::F32).unwrap();
                let model = Model { layout: rm.model.layout.clone(), params: std::mem::take(params) };
                let probe_rm = RewardModel { model, readout: rm.readout };
                let loss = reference_loss(&backend, &probe_rm, &pairs, &config);
                *params = probe_rm.model.params;
                loss
            };
            let numeric = (probe(h, params) - probe(-h, params)) / (2.0 * f64::from(h));
            *params.get_mut(i) = backend.upload_f32(&dims, &values, DType::F32).unwrap();
            let got = f64::from(analytic[j]);
            assert!(
                (got - numeric).abs() <= 1e-3 + 2e-2 * numeric.abs(),
                "{}[{j}]: gradient {got}, finite difference {numeric}",
                params.name(i)
            );
        }
    }
}

#[test]
fn grm_term_adds_alpha_times_the_sft_loss() {
    let backend = Cpu::new();
    let (_dir, tok, policy) = tiny_setup("reward-grm");
    let rm = RewardModel::from_policy(&backend, &policy, 0.3, 4).unwrap();
    let pairs = awkward_pairs(&tok);
    let refs: Vec<&PreferencePair> = pairs.iter().collect();
    let sft_rows: Vec<SftRow> =
        pairs.iter().map(|p| SftRow { prompt: p.prompt.clone(), response: p.chosen.clone() }).collect();
    let sft = loss_and_grads(&backend, &rm.model, &sft_rows.iter().collect::<Vec<_>>(), tok.pad_id()).unwrap();

    let alpha = 0.7;
    let off = reward_loss_and_grads(&backend, &rm, &refs, tok.pad_id(), &RewardLossConfig::default()).unwrap();
    let config = RewardLossConfig { grm_alpha: alpha, ..RewardLossConfig::default() };
    let on = reward_loss_and_grads(&backend, &rm, &refs, tok.pad_id(), &config).unwrap();
    assert_eq!(off.sft, 0.0, "alpha 0 computes no SFT term");
    assert_eq!(on.bt, off.bt, "the pairwise term does not depend on alpha");
    assert!((on.sft - sft.loss).abs() <= 1e-6 * sft.loss, "SFT term {} vs the SFT trainer's {}", on.sft, sft.loss);
    let added = f64::from(on.loss) - f64::from(off.loss);
    let want = f64::from(alpha) * f64::from(sft.loss);
    assert!((added - want).abs() <= 1e-6 * want, "loss rose by {added}, alpha x SFT = {want}");
    // The gradients rise by alpha times the SFT gradients, parameter by parameter (the scalar
    // head's, which SFT does not touch, not at all).
    for i in 0..rm.model.params.len() {
        let name = rm.model.params.name(i);
        let (g_on, g_off) = (backend.download_f32(on.grads.get(i)).unwrap(), backend.download_f32(off.grads.get(i)).unwrap());
        let g_sft = if name.starts_with("score.") {
            vec![0.0; g_on.len()]
        } else {
            backend.download_f32(sft.grads.get(i)).unwrap()
        };
        for (j, ((a, b), s)) in g_on.iter().zip(&g_off).zip(&g_sft).enumerate() {
            let (diff, want) = (f64::from(a - b), f64::from(alpha * s));
            assert!((diff - want).abs() <= 1e-6 + 1e-4 * want.abs(), "{name}[{j}]: gradient rose by {diff}, want {want}");
        }
    }
}

#[test]
fn reward_loss_rejects_bad_batches() {
    let backend = Cpu::new();
    let (_dir, tok, policy) = tiny_setup("reward-errors");
    let rm = RewardModel::from_policy(&backend, &policy, 0.3, 4).unwrap();
    let mut p = pair(&tok, 1, 2, 3, 1.0, 0.0);
    assert!(reward_loss_and_grads(&backend, &rm, &[], 0, &RewardLossConfig::default()).is_err());
    p.outcomes = None;
    let binary = RewardLossConfig { binary_weight: 1.0, ..RewardLossConfig::default() };
    let err = reward_loss_and_grads(&backend, &rm, &[&p], 0, &binary).err().unwrap();
    assert!(err.to_string().contains("outcome"), "{err}");
    p.label = 1.5;
    let err = reward_loss_and_grads(&backend, &rm, &[&p], 0, &RewardLossConfig::default()).err().unwrap();
    assert!(err.to_string().contains("pair 0") && err.to_string().contains("1.5"), "{err}");
    p.rejected.clear();
    assert!(reward_loss_and_grads(&backend, &rm, &[&p], 0, &RewardLossConfig::default()).is_err());
}

#[test]
fn sampled_pairs_follow_the_annotator() {
    let backend = Cpu::new();
    let task = Successor::new();
    // Half-trained and sampled hot, the policy answers right about half the time.
    let (_dir, tok, policy) = tiny_sft_policy("reward-sampling", 40);
    let prompts = task.train_prompts();
    let sampling = Sampling::Sample { temperature: 2.0, top_k: 0, top_p: 1.0 };
    let options = PairSampling { rounds: 3, seed: 5, batch_prompts: 4, sampling, ..PairSampling::default() };
    for flip in [0.0, 1.0] {
        let mut annotator = Annotator::new(flip, 1).unwrap();
        let (pairs, stats) = sample_preference_pairs(&backend, &policy, &tok, &task, prompts, &mut annotator, &options).unwrap();
        assert_eq!(stats.drawn, 3 * prompts.len());
        assert_eq!(pairs.len(), stats.drawn - stats.identical);
        assert_eq!(stats.flipped, if flip == 1.0 { pairs.len() } else { 0 });
        assert_eq!(stats.gold_ties, pairs.iter().filter(|p| p.gold_tie()).count());
        for p in &pairs {
            assert_ne!(p.chosen, p.rejected, "identical responses are dropped");
            assert_eq!((p.label, p.margin, p.outcomes), (1.0, 0.0, Some(p.gold)));
            assert!(prompts.iter().any(|x| tok.encode(x).unwrap() == p.prompt));
            if !p.gold_tie() {
                assert_eq!(p.label_agrees_with_gold(), Some(flip == 0.0), "{p:?}");
            }
        }
        assert!(pairs.iter().filter(|p| !p.gold_tie()).count() >= 5, "too few pairs tell right from wrong: {pairs:?}");
    }
}

/// Every (prompt, right answer, wrong answer) of the successor task, in random order.
fn successor_pairs(tok: &TaskTokenizer, annotator: &mut Annotator, wrong: impl Fn(u32, u32) -> bool) -> Vec<PreferencePair> {
    let mut pairs = Vec::new();
    for d in 0..10 {
        let right = (d + 1) % 10;
        for w in (0..10).filter(|&w| w != right && wrong(d, w)) {
            let label = annotator.label_gold((1.0, 0.0));
            let (c, r) = if label.first_preferred { (right, w) } else { (w, right) };
            pairs.push(pair(tok, d, c, r, 1.0, 0.0));
        }
    }
    pairs
}

#[test]
fn a_reward_model_learns_a_tiny_noisy_preference_problem() {
    let backend = Cpu::new();
    // The reward model starts from a policy that has learnt the task, as it does in RLHF.
    let (_dir, tok, policy) = tiny_sft_policy("reward-learns", 120);
    // Train on two thirds of the wrong answers, with 10% of labels flipped; test on the rest, so
    // that the model has to relate the answer to the prompt rather than remember answers.
    let mut annotator = Annotator::new(0.1, 3).unwrap();
    let train = successor_pairs(&tok, &mut annotator, |d, w| (d + w) % 3 != 0);
    let mut clean = Annotator::new(0.0, 4).unwrap();
    let held_out = successor_pairs(&tok, &mut clean, |d, w| (d + w) % 3 == 0);
    let config = RewardConfig::new(600, 16, 3e-3);
    let untrained = RewardModel::from_policy(&backend, &policy, config.head_init_std, 0).unwrap();
    let before = evaluate_pairs(&backend, &untrained, &held_out, tok.pad_id()).unwrap();
    let mut history = Vec::new();
    let members = train_ensemble(&backend, &policy, &train, tok.pad_id(), &config, 3, &mut |m, metrics| {
        if m == 0 {
            history.push(*metrics);
        }
    })
    .unwrap();
    assert_eq!(history.len(), 600);
    assert!(history.iter().all(|m| m.loss.is_finite() && !m.skipped && m.sft == 0.0));
    for (m, rm) in members.iter().enumerate() {
        let after = evaluate_pairs(&backend, rm, &held_out, tok.pad_id()).unwrap();
        assert_eq!(after.gold_pairs, held_out.len());
        assert!(after.gold_accuracy >= 0.8, "member {m}: held-out {after:?} (untrained {before:?})");
    }
    // The ensemble's mean ranks better than its members, and its members differ.
    let strength = ensemble_strength(&backend, &members.iter().collect::<Vec<_>>(), &held_out, tok.pad_id()).unwrap();
    let mean: Vec<f32> = strength.iter().map(|s| s.mean).collect();
    let together = pair_accuracy(&mean, &held_out);
    assert!(together.gold_accuracy >= 0.85, "ensemble mean: {together:?}");
    assert!(strength.iter().all(|s| s.std > 0.0), "members of different seeds differ");
}
