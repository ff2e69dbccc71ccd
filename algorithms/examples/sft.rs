//! Trains the SFT policy of a bundled task on the Cpu backend and reports time and held-out
//! scores: `cargo run --release -p algorithms --example sft -- [arith|style] [steps] [batch] [lr]`.

use std::time::Instant;

use algorithms::eval::{evaluate, EvalOptions};
use algorithms::model::{init_model, ModelShape};
use algorithms::sft::{tokenize, train_sft, SftConfig};
use algorithms::tasks::{arith, by_name};
use algorithms::tokenizer::train_tokenizer;
use models::sampling::Sampling;
use runtime::Cpu;

fn main() -> algorithms::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: &str| args.get(i).cloned().unwrap_or_else(|| default.to_string());
    let task = by_name(&arg(0, "arith"), 0)?;
    let steps: usize = arg(1, "1500").parse().expect("steps");
    let batch: usize = arg(2, "64").parse().expect("batch");
    let lr: f32 = arg(3, "3e-3").parse().expect("lr");

    let dir = std::env::temp_dir().join(format!("rlhf-sft-example-{}", std::process::id()));
    let tokenizer = train_tokenizer(task.as_ref(), &dir)?;
    let config = ModelShape::for_task(task.as_ref()).config(&tokenizer);
    let backend = Cpu::new();
    let mut model = init_model(&backend, &config, 0)?;
    println!("{}: vocab {}, {} parameters", task.name(), tokenizer.vocab_size(), model.params.numel());
    let rows = tokenize(&tokenizer, task.sft_corpus())?;

    let start = Instant::now();
    let sft = SftConfig::new(steps, batch, lr);
    train_sft(&backend, &mut model, &rows, tokenizer.pad_id(), &sft, &mut |m| {
        if m.step % 100 == 0 || m.step + 1 == steps {
            println!(
                "step {:5} loss {:.4} grad norm {:.3} lr {:.2e} ({:.1} s)",
                m.step,
                m.loss,
                m.grad_norm,
                m.lr,
                start.elapsed().as_secs_f64()
            );
        }
    })?;
    println!("SFT: {steps} steps of {batch} rows in {:.1} s", start.elapsed().as_secs_f64());

    let start = Instant::now();
    let prompts = task.eval_prompts();
    let (greedy, scored) = evaluate(&backend, &model, &tokenizer, task.as_ref(), prompts, &EvalOptions::default())?;
    println!("held-out greedy: {greedy:?} ({:.1} s)", start.elapsed().as_secs_f64());
    let sampled_options =
        EvalOptions { sampling: Sampling::Sample { temperature: 1.0, top_k: 0, top_p: 1.0 }, seed: 1, batch_size: 256 };
    let (sampled, _) = evaluate(&backend, &model, &tokenizer, task.as_ref(), prompts, &sampled_options)?;
    println!("held-out sampled (T=1): {sampled:?}");
    if task.name() == "arith" {
        let carries = |carry: bool| {
            let rows: Vec<_> = scored
                .iter()
                .filter(|s| arith::parse_prompt(&s.prompt).is_some_and(|(a, b)| arith::has_carry(a, b) == carry))
                .collect();
            rows.iter().filter(|s| s.solved).count() as f64 / rows.len().max(1) as f64
        };
        println!("greedy accuracy on carry prompts {:.3}, on the others {:.3}", carries(true), carries(false));
    }
    for s in scored.iter().take(8) {
        println!("  {} {:?} gold {}", s.prompt, s.response.text, s.gold);
    }
    std::fs::remove_dir_all(&dir)
        .map_err(|source| algorithms::Error::Io { path: dir.display().to_string(), source })?;
    Ok(())
}
