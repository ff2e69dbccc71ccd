//! Every CUDA kernel, run through the Emu backend's ops, against the Cpu backend on the same
//! inputs (`rlhf kernels test`): awkward shapes, f32 and bf16. One module per op family builds
//! its cases and runs them on any backend (`rows`: the row-wise ops, rows 1, 7, 64 crossed with
//! C 1, 33, 769; V 5, 1000, 50257 for cross-entropy; `logprob`: the fused log-prob over V 5,
//! 1000, 50257, 70000 and the KL estimators; `linear_logprob`: the LM head + log-prob by
//! vocabulary chunks, V 1000 in chunks of 256 and 70000 in chunks of 30000; `losses`: the RL and reward-model losses, masked
//! whitening and GAE, with rows that have no masked token; `optim`: AdamW and the sum of squares; `gemm`: forward and
//! backward of each GEMM kernel over awkward M×N×K, transposes, batches and bias; `attention`: attention
//! forward, backward and decoding, KV-cache writes and RoPE over ragged, padded and GQA shapes; `sample`:
//! the next-token choice under greedy, temperature, top-k and top-p rules, ids compared exactly).
//!
//! The Cpu backend is the specification, so the check is "the kernel computes what the Cpu
//! computes", per output tensor, element by element: `|emu − cpu| <= atol + rtol·|cpu|`, with
//! `rtol` = 1e-4 for f32 outputs and 2⁻⁷ (one bf16 rounding) for bf16 outputs, and
//! `atol` = 1e-5·max(1, max |cpu|). Every input is O(1), so `atol` is f32 rounding noise at the
//! scale of the terms an output is computed from: it covers outputs that come out of a
//! cancellation (a norm's dx when C = 1, GELU's tail), whose last bits depend on each backend's
//! order of operations. Backward kernels get the same saved statistics on both backends
//! (computed on the host), so each check isolates one kernel.

pub mod io_model;
mod linear_logprob;
mod logprob;
mod losses;
mod optim;
mod gemm;
mod attention;
mod rng;
mod rows;
mod sample;

pub use rows::{CHANNELS, ROWS, VOCABS};

use crate::{Backend, Cpu, DType, Emu, Result};

/// The outcome of one kernel on one shape.
#[derive(Debug, Clone, PartialEq)]
pub struct KernelCheck {
    /// The op's entry point, e.g. `layernorm_bwd_bf16` (its `_reduce` or `_rank` helper runs too).
    pub name: String,
    pub shape: String,
    /// Largest `|emu − cpu|` over the op's outputs (infinite when the kernel produced a NaN the
    /// Cpu did not).
    pub max_abs_err: f64,
    /// Largest `|emu − cpu| / |cpu|` over elements whose `|cpu| >= atol / rtol` (smaller values
    /// are judged by `atol`).
    pub max_rel_err: f64,
    pub passed: bool,
    /// The error that stopped the op from running, if one did (the errors are then infinite).
    pub error: Option<String>,
}

/// The family a case belongs to, with the family's own description of the case.
#[derive(Debug, Clone, Copy)]
enum Family {
    Rows(rows::Case),
    Logprob(logprob::Case),
    LinearLogprob(linear_logprob::Case),
    Losses(losses::Case),
    Optim(optim::Case),
    Gemm(gemm::Case),
    Attention(attention::Case),
    Sample(sample::Case),
}

/// One check: entry point `name` (its helper kernels run too) on one shape.
#[derive(Debug, Clone)]
struct Case {
    name: String,
    shape: String,
    /// The seed of the inputs, the same on both backends.
    seed: u64,
    family: Family,
}

/// Every case `rlhf kernels test` runs, in report order, each with its own seed.
fn cases() -> Vec<Case> {
    let mut cases = rows::cases();
    cases.extend(logprob::cases());
    cases.extend(linear_logprob::cases());
    cases.extend(losses::cases());
    cases.extend(optim::cases());
    cases.extend(gemm::cases());
    cases.extend(attention::cases());
    cases.extend(sample::cases());
    for (seed, case) in (1..).zip(cases.iter_mut()) {
        case.seed = seed;
    }
    cases
}

/// Runs `case` on `backend` and downloads each output with its dtype.
fn run<B: Backend>(backend: &B, case: &Case) -> Result<Vec<(Vec<f32>, DType)>> {
    let mut rng = rng::Rng::new(case.seed);
    match &case.family {
        Family::Rows(c) => rows::run(backend, c, &mut rng),
        Family::Logprob(c) => logprob::run(backend, c, &mut rng),
        Family::LinearLogprob(c) => linear_logprob::run(backend, c, &mut rng),
        Family::Losses(c) => losses::run(backend, c, &mut rng),
        Family::Optim(c) => optim::run(backend, c, &mut rng),
        Family::Gemm(c) => gemm::run(backend, c, &mut rng),
        Family::Attention(c) => attention::run(backend, c, &mut rng),
        Family::Sample(c) => sample::run(backend, c, &mut rng),
    }
}

/// Runs every case on `emu` and on the Cpu. A case whose op returns an error (a kernel the
/// emulator cannot load or run, say) fails with that error and the run goes on.
pub fn run_all(emu: &Emu) -> Vec<KernelCheck> {
    cases().iter().map(|case| check(emu, case)).collect()
}

fn check(emu: &Emu, case: &Case) -> KernelCheck {
    let mut result = KernelCheck {
        name: case.name.clone(),
        shape: case.shape.clone(),
        max_abs_err: 0.0,
        max_rel_err: 0.0,
        passed: true,
        error: None,
    };
    let emu = match &case.family {
        Family::Gemm(c) => emu.clone().with_gemm_kernel(c.kernel),
        _ => emu.clone(),
    };
    match (run(&Cpu::new(), case), run(&emu, case)) {
        (Ok(want), Ok(got)) => {
            for ((got, dtype), (want, _)) in got.iter().zip(&want) {
                compare(&mut result, got, want, *dtype);
            }
        }
        (Err(e), _) | (_, Err(e)) => {
            result.passed = false;
            result.max_abs_err = f64::INFINITY;
            result.max_rel_err = f64::INFINITY;
            result.error = Some(e.to_string());
        }
    }
    result
}

/// Folds one output tensor into `result`.
fn compare(result: &mut KernelCheck, got: &[f32], want: &[f32], dtype: DType) {
    let scale = want.iter().fold(1f64, |m, &w| m.max((w as f64).abs()));
    let atol = 1e-5 * scale;
    let rtol = if dtype == DType::BF16 {
        1.0 / 128.0
    } else {
        1e-4
    };
    result.passed &= got.len() == want.len();
    for (&g, &w) in got.iter().zip(want) {
        let (g, w) = (g as f64, w as f64);
        // Equal infinities (a -inf log-sum-exp, say) are exact, not NaN apart.
        let err = if g == w { 0.0 } else { (g - w).abs() };
        if err.is_nan() || err > atol + rtol * w.abs() {
            result.passed = false;
        }
        let err = if err.is_nan() { f64::INFINITY } else { err };
        result.max_abs_err = result.max_abs_err.max(err);
        if w.abs() >= atol / rtol && w != 0.0 {
            result.max_rel_err = result.max_rel_err.max(err / w.abs());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_judges_small_values_by_atol_and_flags_nan() {
        let mut r = KernelCheck {
            name: String::new(),
            shape: String::new(),
            max_abs_err: 0.0,
            max_rel_err: 0.0,
            passed: true,
            error: None,
        };
        // Scale 100: atol 1e-3, so 2e-7 for 1e-7 passes and is left out of the relative error.
        compare(&mut r, &[100.0, 2e-7], &[100.0, 1e-7], DType::F32);
        assert!(r.passed && r.max_rel_err == 0.0, "{r:?}");
        compare(&mut r, &[101.0], &[100.0], DType::F32);
        assert!(!r.passed && (r.max_rel_err - 0.01).abs() < 1e-12, "{r:?}");
        let mut r = KernelCheck { passed: true, ..r };
        compare(&mut r, &[f32::NAN], &[1.0], DType::BF16);
        assert!(!r.passed && r.max_abs_err == f64::INFINITY, "{r:?}");
    }

    #[test]
    fn cases_cover_every_kernel_source_in_both_dtypes() {
        let cases = cases();
        let names: std::collections::HashSet<&str> =
            cases.iter().map(|c| c.name.as_str()).collect();
        for source in kernels::SOURCES {
            for entry in source.entries {
                // The `_reduce`, `_rank`, `_prep`, `_dq` and `gemm_bwd_bias` helpers run inside
                // their op's backward; the masked losses run their `_fwd_totals` kernel in the
                // op that runs their `_fwd`; the chunked log-prob's forward over several chunks
                // runs its `_fwd_first` and `_fwd_last` kernels.
                let masked_loss = ["ppo_loss", "grpo_loss", "value_loss"].contains(&entry.op);
                let covered = names.contains(entry.name)
                    || entry.name.contains("_bwd_reduce_")
                    || entry.name.starts_with("gemm_bwd_bias_")
                    || entry.name.starts_with("attention_bwd_prep_")
                    || entry.name.starts_with("attention_bwd_dq_")
                    || entry.name == "embedding_bwd_rank_u32"
                    || names.contains(entry.name.replace("_fwd_first_", "_fwd_").replace("_fwd_last_", "_fwd_").as_str())
                    || (masked_loss && names.contains(entry.name.replace("_fwd_totals_", "_fwd_").as_str()));
                assert!(covered, "{} is not checked", entry.name);
            }
        }
    }
}
