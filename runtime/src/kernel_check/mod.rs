//! Every CUDA kernel, run through the Emu backend's ops, against the Cpu backend on the same
//! inputs (`rlhf kernels test`): awkward shapes (rows 1, 7, 64 crossed with C 1, 33, 769; V 5,
//! 1000, 50257 for cross-entropy), f32 and bf16.
//!
//! The Cpu backend is the specification, so the check is "the kernel computes what the Cpu
//! computes", per output tensor, element by element: `|emu − cpu| <= atol + rtol·|cpu|`, with
//! `rtol` = 1e-4 for f32 outputs and 2⁻⁷ (one bf16 rounding) for bf16 outputs, and
//! `atol` = 1e-5·max(1, max |cpu|). Every input is O(1), so `atol` is f32 rounding noise at the
//! scale of the terms an output is computed from: it covers outputs that come out of a
//! cancellation (a norm's dx when C = 1, GELU's tail), whose last bits depend on each backend's
//! order of operations. Backward kernels get the same saved statistics on both backends
//! (computed on the host), so each check isolates one kernel.

mod run;

use run::run;

use crate::{Cpu, DType, Emu};

/// Rows of the row-wise kernels and cross-entropy.
pub const ROWS: [usize; 3] = [1, 7, 64];
/// Channels of the row-wise kernels.
pub const CHANNELS: [usize; 3] = [1, 33, 769];
/// Classes of cross-entropy (GPT-2's vocabulary last).
pub const VOCABS: [usize; 3] = [5, 1000, 50257];
/// Rows of the embedding table: fewer than the 64 positions, so ids repeat.
const EMBEDDING_VOCAB: usize = 50;
const EPS: f32 = 1e-5;
const IGNORE_INDEX: u32 = u32::MAX;

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

/// What a check runs: one Backend op and the kernels behind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Add,
    Axpy,
    Scale,
    GeluFwd,
    GeluBwd,
    SwiGluFwd,
    SwiGluBwd,
    LayerNormFwd,
    LayerNormBwd,
    RmsNormFwd,
    RmsNormBwd,
    EmbeddingFwd,
    EmbeddingBwd,
    CrossEntropyFwd,
    CrossEntropyBwd,
}

/// The ops over `[rows, C]` inputs.
const ROW_OPS: [Op; 13] = [
    Op::Add,
    Op::Axpy,
    Op::Scale,
    Op::GeluFwd,
    Op::GeluBwd,
    Op::SwiGluFwd,
    Op::SwiGluBwd,
    Op::LayerNormFwd,
    Op::LayerNormBwd,
    Op::RmsNormFwd,
    Op::RmsNormBwd,
    Op::EmbeddingFwd,
    Op::EmbeddingBwd,
];

impl Op {
    /// The entry-point stem, completed by the dtype suffix.
    fn stem(self) -> &'static str {
        match self {
            Op::Add => "elementwise_fwd_add",
            Op::Axpy => "elementwise_fwd_axpy",
            Op::Scale => "elementwise_fwd_scale",
            Op::GeluFwd => "gelu_fwd",
            Op::GeluBwd => "gelu_bwd",
            Op::SwiGluFwd => "swiglu_fwd",
            Op::SwiGluBwd => "swiglu_bwd",
            Op::LayerNormFwd => "layernorm_fwd",
            Op::LayerNormBwd => "layernorm_bwd",
            Op::RmsNormFwd => "rmsnorm_fwd",
            Op::RmsNormBwd => "rmsnorm_bwd",
            Op::EmbeddingFwd => "embedding_fwd",
            Op::EmbeddingBwd => "embedding_bwd",
            Op::CrossEntropyFwd => "cross_entropy_fwd",
            Op::CrossEntropyBwd => "cross_entropy_bwd",
        }
    }
}

/// One op's inputs: `[rows, cols]` (cols = C, or V for cross-entropy), generated from `seed`.
#[derive(Debug, Clone, Copy)]
struct Case {
    op: Op,
    rows: usize,
    cols: usize,
    dtype: DType,
    seed: u64,
}

impl Case {
    fn shape(&self) -> String {
        match self.op {
            Op::EmbeddingFwd | Op::EmbeddingBwd => {
                format!(
                    "ids [{}], table [{EMBEDDING_VOCAB}, {}]",
                    self.rows, self.cols
                )
            }
            _ => format!("[{}, {}]", self.rows, self.cols),
        }
    }
}

/// Every case `rlhf kernels test` runs, in report order.
fn cases() -> Vec<Case> {
    let mut cases = vec![];
    for dtype in [DType::F32, DType::BF16] {
        for op in ROW_OPS {
            for rows in ROWS {
                for cols in CHANNELS {
                    cases.push(Case {
                        op,
                        rows,
                        cols,
                        dtype,
                        seed: 0,
                    });
                }
            }
        }
        for op in [Op::CrossEntropyFwd, Op::CrossEntropyBwd] {
            for rows in ROWS {
                for cols in VOCABS {
                    cases.push(Case {
                        op,
                        rows,
                        cols,
                        dtype,
                        seed: 0,
                    });
                }
            }
        }
    }
    for (seed, case) in (1..).zip(cases.iter_mut()) {
        case.seed = seed;
    }
    cases
}

/// Runs every case on `emu` and on the Cpu. A case whose op returns an error (a kernel the
/// emulator cannot load or run, say) fails with that error and the run goes on.
pub fn run_all(emu: &Emu) -> Vec<KernelCheck> {
    cases().iter().map(|case| check(emu, case)).collect()
}

fn check(emu: &Emu, case: &Case) -> KernelCheck {
    let mut result = KernelCheck {
        name: format!("{}_{}", case.op.stem(), case.dtype),
        shape: case.shape(),
        max_abs_err: 0.0,
        max_rel_err: 0.0,
        passed: true,
        error: None,
    };
    match (run(&Cpu::new(), case), run(emu, case)) {
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
        let names: std::collections::HashSet<String> = cases
            .iter()
            .map(|c| format!("{}_{}", c.op.stem(), c.dtype))
            .collect();
        for source in kernels::SOURCES {
            for entry in source.entries {
                // The `_reduce` and `_rank` helpers run inside their op's backward.
                let covered = names.contains(entry.name)
                    || entry.name.contains("_bwd_reduce_")
                    || entry.name == "embedding_bwd_rank_u32";
                assert!(covered, "{} is not checked", entry.name);
            }
        }
        assert_eq!(cases.len(), 2 * (13 * 9 + 2 * 9));
    }
}
