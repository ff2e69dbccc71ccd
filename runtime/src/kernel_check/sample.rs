//! The sampling kernel: each row's token under greedy, temperature, top-k and top-p rules over
//! `[rows, V]` logits, V 1, 7, 769, 50257 and 70000, with logits whose ties straddle the top-k and
//! top-p boundaries (half the rows rounded to quarters).
//!
//! Ids must be equal, not close, so each id is returned as its 24 bits (V <= 2^24), each 0 or 1:
//! a wrong id differs from the Cpu's by 1 in some bit, far past the comparison's tolerance.

use super::rng::Rng;
use super::rows::ROWS;
use super::Family;
use crate::ops::sample::{SampleDraw, SampleRule};
use crate::{Backend, DType, Result};

/// Vocabularies: one token, tiny, not a multiple of the block, GPT-2's, and one past 65535.
const VOCABS: [usize; 5] = [1, 7, 769, 50257, 70000];
/// Vocabularies past this run one row only (they are the slow ones on the emulator).
const LARGE_VOCAB: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Case {
    rows: usize,
    vocab: usize,
    dtype: DType,
    rule: SampleRule,
}

/// The rules of every shape: greedy, plain sampling, top-k with top-p, each alone, and a top-k
/// of V − 1 (every candidate but the last).
fn rules(vocab: usize) -> [SampleRule; 5] {
    let sample = |temperature, top_k, top_p| SampleRule::Sample { temperature, top_k, top_p };
    [
        SampleRule::Greedy,
        sample(0.8, 0, 1.0),
        sample(1.3, 10, 0.95),
        sample(0.7, 0, 0.6),
        sample(1.0, vocab.saturating_sub(1), 1.0),
    ]
}

fn describe(rule: SampleRule) -> String {
    match rule {
        SampleRule::Greedy => "greedy".into(),
        SampleRule::Sample { temperature, top_k, top_p } => format!("T = {temperature}, k = {top_k}, p = {top_p}"),
    }
}

/// The family's cases, in report order.
pub(super) fn cases() -> Vec<super::Case> {
    let mut cases = vec![];
    for dtype in [DType::F32, DType::BF16] {
        for vocab in VOCABS {
            for rows in ROWS {
                if vocab > LARGE_VOCAB && rows > 1 {
                    continue;
                }
                for rule in rules(vocab) {
                    cases.push(Case { rows, vocab, dtype, rule });
                }
            }
        }
    }
    cases
        .into_iter()
        .map(|c| super::Case {
            name: format!("sample_fwd_{}", c.dtype),
            shape: format!("[{}, {}] {}", c.rows, c.vocab, describe(c.rule)),
            seed: 0,
            family: Family::Sample(c),
        })
        .collect()
}

/// Runs the case on `backend`: the ids as bits.
pub(super) fn run<B: Backend>(b: &B, case: &Case, rng: &mut Rng) -> Result<Vec<(Vec<f32>, DType)>> {
    let (rows, vocab) = (case.rows, case.vocab);
    let mut logits = rng.scaled(rows * vocab, 2.0);
    for row in logits.chunks_mut(vocab).skip(1).step_by(2) {
        row.iter_mut().for_each(|x| *x = (*x * 4.0).round() / 4.0);
    }
    let z = b.upload_f32(&[rows, vocab], &logits, case.dtype)?;
    let draw = SampleDraw { seed: rng.next_u64(), first_sequence: rng.next_u64(), step: rng.next_u64() };
    let ids = b.download_u32(&b.sample(&z, case.rule, draw)?)?;
    let bits = ids.iter().flat_map(|&id| (0..24).map(move |bit| ((id >> bit) & 1) as f32)).collect();
    Ok(vec![(bits, DType::F32)])
}
