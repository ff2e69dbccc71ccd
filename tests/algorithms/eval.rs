//! Evaluation: scoring and totals on hand-built responses, and reproducible sampled evaluation.

use algorithms::eval::{evaluate, score, EvalOptions, EvalReport};
use algorithms::model::{init_model, ModelShape};
use algorithms::tasks::arith::{Arith, ArithConfig};
use algorithms::tasks::Task;
use algorithms::tokenizer::{train_tokenizer, Response};
use models::sampling::Sampling;
use models::Architecture;
use runtime::Cpu;

use crate::Scratch;

fn response(text: &str, finished: bool) -> Response {
    Response { text: text.into(), finished }
}

#[test]
fn counts_only_finished_right_answers() {
    let task = Arith::new(ArithConfig::default()).unwrap();
    let scored = vec![
        score(&task, "37+45=", response("82", true), 3),
        score(&task, "37+45=", response("82", false), 3),
        score(&task, "37+45=", response("72", true), 3),
        score(&task, "1+2=", response("3", true), 2),
        score(&task, "1+2=", response("", true), 1),
    ];
    assert_eq!(scored.iter().map(|s| s.solved).collect::<Vec<_>>(), [true, false, false, true, false]);
    assert_eq!(scored.iter().map(|s| s.gold).collect::<Vec<_>>(), [1.0, 0.0, 0.0, 1.0, 0.0]);
    let report = EvalReport::summarize(&scored);
    assert_eq!(report.count, 5);
    assert!((report.accuracy - 0.4).abs() < 1e-12);
    assert!((report.mean_gold - 0.4).abs() < 1e-12);
    assert!((report.finished - 0.8).abs() < 1e-12);
    assert!((report.mean_tokens - 12.0 / 5.0).abs() < 1e-12);
    assert_eq!(EvalReport::summarize(&[]).count, 0);
}

#[test]
fn sampled_evaluation_is_reproducible_from_its_seed() {
    let backend = Cpu::new();
    let task = Arith::new(ArithConfig::default()).unwrap();
    let dir = Scratch::new("eval-sampled");
    let tokenizer = train_tokenizer(&task, dir.path()).unwrap();
    let shape =
        ModelShape { arch: Architecture::Gpt2, hidden: 16, layers: 1, heads: 2, intermediate: 32, max_positions: 16 };
    let model = init_model(&backend, &shape.config(&tokenizer), 2).unwrap();
    let prompts = &task.eval_prompts()[..40];
    let sampling = Sampling::Sample { temperature: 1.0, top_k: 0, top_p: 1.0 };
    let run = |seed| {
        let options = EvalOptions { sampling, seed, batch_size: 16 };
        evaluate(&backend, &model, &tokenizer, &task, prompts, &options).unwrap().1
    };
    let (a, b, c) = (run(1), run(1), run(2));
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert_eq!(a.len(), 40);
    assert!(a.iter().all(|s| s.tokens <= task.max_response_tokens()));
    // Batches get their own draws: rows at the same place in two batches differ somewhere.
    assert!((0..16).any(|i| a[i].response != a[16 + i].response));
    let zero = EvalOptions { batch_size: 0, ..EvalOptions::default() };
    assert!(evaluate(&backend, &model, &tokenizer, &task, prompts, &zero).is_err());
}
