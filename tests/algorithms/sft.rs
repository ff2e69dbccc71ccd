//! SFT: batch layout, the loss and its gradients against an f64 reference, and learning a trivial
//! task end to end.

use algorithms::eval::{evaluate, EvalOptions};
use algorithms::model::{init_model, ModelShape};
use algorithms::sft::{batch_targets, loss_and_grads, tokenize, train_sft, BatchLoss, SftConfig, SftRow, IGNORE};
use algorithms::tasks::arith::{Arith, ArithConfig};
use algorithms::tasks::style::{Style, StyleConfig};
use algorithms::tasks::Task;
use algorithms::tokenizer::{train_tokenizer, TaskTokenizer, TOKENIZER_FILE};
use models::transformer::{Inputs, Model, Transformer};
use models::weights::StorageDtype;
use models::{Architecture, ModelConfig};
use runtime::{Backend, Cpu, DType};

use crate::common::Rng;
use crate::successor::Successor;
use crate::Scratch;

fn row(prompt: &[u32], response: &[u32]) -> SftRow {
    SftRow { prompt: prompt.to_vec(), response: response.to_vec() }
}

#[test]
fn batch_targets_mark_only_response_tokens() {
    let rows = [row(&[5, 6, 7], &[8, 1]), row(&[4], &[9, 9, 1]), row(&[2, 3], &[1])];
    let (inputs, targets) = batch_targets(&rows.iter().collect::<Vec<_>>()).unwrap();
    assert_eq!(inputs, vec![vec![5, 6, 7, 8], vec![4, 9, 9], vec![2, 3]]);
    let x = IGNORE;
    #[rustfmt::skip]
    let want = vec![
        x, x, 8, 1,
        9, 9, 1, x,
        x, 1, x, x,
    ];
    assert_eq!(targets, want);
    assert!(batch_targets(&[&row(&[], &[1])]).is_err());
    assert!(batch_targets(&[&row(&[3], &[])]).is_err());
}

fn random_model(backend: &Cpu, seed: u64) -> Model<Cpu> {
    let json =
        r#"{"model_type":"gpt2","vocab_size":11,"n_positions":16,"n_embd":16,"n_layer":1,"n_head":2,"n_inner":32}"#;
    let config = ModelConfig::from_json(json, "sft test config").unwrap();
    let mut rng = Rng::new(seed);
    let (layout, params) = Transformer::build(&config, backend, DType::F32, &mut |name, dims| {
        let n: usize = dims.iter().product();
        Ok(if name.contains("ln") { rng.uniform_vec(n, 0.8, 1.2) } else { rng.normal_vec(n, 0.3) })
    })
    .unwrap();
    Model { layout, params }
}

/// Mean cross-entropy over response tokens, from the model's logits, in f64.
fn reference_loss(backend: &Cpu, model: &Model<Cpu>, rows: &[SftRow]) -> f64 {
    let inputs: Vec<Vec<u32>> = rows.iter().map(|r| r.prompt.iter().chain(&r.response).copied().collect()).collect();
    let fed: Vec<Vec<u32>> = inputs.iter().map(|r| r[..r.len() - 1].to_vec()).collect();
    let batch = Inputs::from_rows(backend, &fed, false, 0).unwrap();
    let acts = model.layout.forward(backend, &model.params, &batch).unwrap();
    let logits = backend.download_f32(&model.layout.logits(backend, &model.params, &acts.hidden).unwrap()).unwrap();
    let v = model.layout.config.vocab_size;
    let (mut total, mut count) = (0.0, 0);
    for (b, (tokens, r)) in inputs.iter().zip(rows).enumerate() {
        for t in r.prompt.len() - 1..tokens.len() - 1 {
            let z: Vec<f64> = logits[(b * batch.len + t) * v..][..v].iter().map(|&x| f64::from(x)).collect();
            let max = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let lse = max + z.iter().map(|x| (x - max).exp()).sum::<f64>().ln();
            total += lse - z[tokens[t + 1] as usize];
            count += 1;
        }
    }
    total / f64::from(count)
}

#[test]
fn loss_and_gradients_match_an_f64_reference() {
    let backend = Cpu::new();
    let mut model = random_model(&backend, 3);
    let rows = vec![row(&[2, 3, 4], &[5, 6, 1]), row(&[7], &[8, 1]), row(&[9, 10, 2, 3, 4], &[1])];
    let BatchLoss { loss, grads, tokens } =
        loss_and_grads(&backend, &model, &rows.iter().collect::<Vec<_>>(), 0).unwrap();
    assert_eq!(tokens, 6);
    let want = reference_loss(&backend, &model, &rows);
    assert!((f64::from(loss) - want).abs() < 1e-5 * want.abs().max(1.0), "loss {loss} vs reference {want}");

    let mut rng = Rng::new(4);
    let h = 1e-2f32;
    for i in 0..model.params.len() {
        let analytic = backend.download_f32(grads.get(i)).unwrap();
        let values = backend.download_f32(model.params.get(i)).unwrap();
        let dims = model.params.get(i).dims().to_vec();
        for _ in 0..2 {
            let j = rng.below(values.len());
            let mut probe = |delta: f32| {
                let mut v = values.clone();
                v[j] += delta;
                *model.params.get_mut(i) = backend.upload_f32(&dims, &v, DType::F32).unwrap();
                reference_loss(&backend, &model, &rows)
            };
            let numeric = (probe(h) - probe(-h)) / (2.0 * f64::from(h));
            *model.params.get_mut(i) = backend.upload_f32(&dims, &values, DType::F32).unwrap();
            let got = f64::from(analytic[j]);
            assert!(
                (got - numeric).abs() <= 1e-3 + 2e-2 * numeric.abs(),
                "{}[{j}]: gradient {got}, finite difference {numeric}",
                model.params.name(i)
            );
        }
    }
}

#[test]
fn a_tiny_model_learns_a_trivial_task_and_survives_a_save() {
    let backend = Cpu::new();
    let task = Successor::new();
    for arch in [Architecture::Gpt2, Architecture::Llama] {
        let dir = Scratch::new(&format!("sft-successor-{arch:?}"));
        let tokenizer = train_tokenizer(&task, dir.path()).unwrap();
        let shape = ModelShape { arch, hidden: 32, layers: 1, heads: 2, intermediate: 64, max_positions: 8 };
        let config = shape.config(&tokenizer);
        let mut model = init_model(&backend, &config, 1).unwrap();
        let options = EvalOptions::default();
        let (before, _) = evaluate(&backend, &model, &tokenizer, &task, task.eval_prompts(), &options).unwrap();
        assert!(before.accuracy <= 0.2, "{arch:?}: an untrained model should not know the task: {before:?}");

        let rows = tokenize(&tokenizer, task.sft_corpus()).unwrap();
        let sft = SftConfig::new(120, 32, 1e-2);
        let mut seen = 0;
        let history = train_sft(&backend, &mut model, &rows, tokenizer.pad_id(), &sft, &mut |m| {
            assert_eq!(m.step, seen);
            seen += 1;
        })
        .unwrap();
        assert_eq!(history.len(), 120);
        assert!(history.iter().all(|m| m.tokens == 64 && m.grad_norm.is_finite() && !m.skipped));
        let first = history[..5].iter().map(|m| m.loss).sum::<f32>() / 5.0;
        let last = history[history.len() - 5..].iter().map(|m| m.loss).sum::<f32>() / 5.0;
        assert!(last < 0.05 * first, "{arch:?}: loss went from {first} to {last}");

        let (after, scored) = evaluate(&backend, &model, &tokenizer, &task, task.eval_prompts(), &options).unwrap();
        assert_eq!(after.accuracy, 1.0, "{arch:?}: {scored:?}");
        assert_eq!(scored[3].response.text, "4");

        // The directory now holds tokenizer.json; with the model beside it, it is a checkpoint.
        model.save(dir.path(), &backend, StorageDtype::F32).unwrap();
        let loaded = Model::load(dir.path(), &backend, DType::F32).unwrap();
        assert_eq!(loaded.layout.config, config);
        let tokenizer = TaskTokenizer::load(&dir.path().join(TOKENIZER_FILE)).unwrap();
        let (reloaded, _) = evaluate(&backend, &loaded, &tokenizer, &task, task.eval_prompts(), &options).unwrap();
        assert_eq!(reloaded, after);
    }
}

#[test]
fn train_sft_rejects_empty_data_and_zero_batches() {
    let backend = Cpu::new();
    let mut model = random_model(&backend, 1);
    let config = SftConfig::new(1, 4, 1e-3);
    let mut ignore = |_: &_| {};
    assert!(train_sft(&backend, &mut model, &[], 0, &config, &mut ignore).is_err());
    let zero = SftConfig { batch_size: 0, ..config };
    assert!(train_sft(&backend, &mut model, &[row(&[1], &[2])], 0, &zero, &mut ignore).is_err());
}

#[test]
fn default_shapes_fit_the_tasks_and_round_trip_through_config_json() {
    let arith = Arith::new(ArithConfig::default()).unwrap();
    let style = Style::new(StyleConfig::default()).unwrap();
    for (task, positions) in [(&arith as &dyn Task, 16), (&style, 32)] {
        let shape = ModelShape::for_task(task);
        assert_eq!(shape.max_positions, positions, "{}", task.name());
        let dir = Scratch::new(&format!("shape-{}", task.name()));
        let tokenizer = train_tokenizer(task, dir.path()).unwrap();
        for arch in [Architecture::Gpt2, Architecture::Llama] {
            let config = ModelShape { arch, ..shape }.config(&tokenizer);
            let text = config.to_json().to_string();
            assert_eq!(ModelConfig::from_json(&text, "round trip").unwrap(), config);
        }
    }
}
