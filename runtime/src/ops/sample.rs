//! Choosing each row's next token from its logits on the device: greedy, or sampling with
//! temperature, top-k and top-p (applied in that order, as Hugging Face's `generate` does), with a
//! counter-based draw. Only the `[B]` ids leave the device.
//!
//! Shapes: logits `[B, V]` (f32 or bf16, `1 <= V <= 2^24`), result `[B]` u32.
//!
//! Semantics (the Cpu implementation below is the specification; the kernel gives the same ids
//! bit for bit, because every step is either integer arithmetic or one f32 operation per element
//! that both sides perform in the same order):
//! - Order: candidates are ordered by (logit descending, id ascending), logits compared by their
//!   IEEE total order (`f32::total_cmp`: −0 below +0, a positive NaN above +inf). The key of a
//!   logit is its bits made order-preserving as an unsigned integer, and `(key << 32) | !id` is
//!   one u64 that sorts the candidates, larger first.
//! - Greedy: the first candidate (the argmax, the lowest id on ties). It is top-k with k = 1.
//! - Sample: weights `w_i = e^((z_i − m)/T)`, `m` the first candidate's logit, as fixed-point
//!   integers `floor(w_i · 2^40)` ([`weight`]: `(z − m)·(1/T)` in f32, then `e^d` by a degree-7
//!   polynomial in f32 mul/add, no fused multiply-add, then scaled by a power of two and
//!   truncated; weights below 2^−40 of the maximum are 0 and never drawn). Integer sums are exact
//!   and associative, so no float reduction order enters the result.
//!   - top-k keeps the first k candidates (0 = all).
//!   - top-p keeps the shortest prefix of that order whose mass reaches `p` of the top-k set's:
//!     `Σ_prefix w >= ceil(p · W_k)` computed exactly (p is `mant / 2^shift`), at least one token.
//!   - the draw `u = counter_bits(seed, first_sequence + row, step) / 2^53` picks
//!     `target = floor(u · W)` (`W` the kept mass, integer maths), and the token is the lowest id
//!     of the kept set whose running mass **in id order** exceeds `target`: probability exactly
//!     `w_i / W` (to 2^−53). Walking in id order rather than in the candidate order is the same
//!     distribution and needs no sort on the device.
//!
//!   A row whose weights are all 0 (its maximum is NaN) gets its first candidate.
//! - The draw of row `r` depends only on `(seed, first_sequence + r, step)`, and a row's id only on
//!   its logits and its draw: not on the other rows, nor on `B`.
//!
//! Compared with sampling from `softmax(z/T)` in f64, the only differences are the f32 rounding
//! of `(z − m)/T` and of `e^d` (relative 1e-6 on a weight) and the 2^−40 truncation.

use rayon::prelude::*;

use crate::cpu::{f32_data, CpuBuffer};
use crate::gpu::{self, Arg, GpuBackend, Launch};
use crate::{Backend, Cpu, DType, Error, Result, Shape, Tensor};

const OP: &str = "sample_fwd";

/// Threads per block of the kernel (one block per row); `sample.cu` assumes this many.
const GPU_THREADS: u32 = 256;

/// Weights are integers in units of 2^−40 of the largest one.
pub const FIXED_SHIFT: u32 = 40;

/// The largest vocabulary: `V · 2^40` mass must fit in a u64.
pub const MAX_VOCAB: usize = 1 << 24;

/// How each row's token is chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SampleRule {
    /// The most likely token (the lowest id on ties).
    Greedy,
    /// Sample from `softmax(logits / temperature)` restricted to the `top_k` most likely tokens
    /// (0 = no limit) and then to the shortest prefix whose probability reaches `top_p`.
    Sample { temperature: f32, top_k: usize, top_p: f32 },
}

/// The counters of the draws: row `r` uses `(seed, first_sequence + r, step)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SampleDraw {
    pub seed: u64,
    pub first_sequence: u64,
    pub step: u64,
}

/// The 53 random bits of (seed, sequence, step): a splitmix64-style hash of the three numbers.
pub fn counter_bits(seed: u64, sequence: u64, step: u64) -> u64 {
    let mut z = seed ^ sequence.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ step.wrapping_mul(0xD1B5_4A32_D192_ED03);
    for _ in 0..2 {
        z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
    }
    z >> 11
}

/// A uniform number in [0, 1) determined by (seed, sequence, step) alone (exact in f64).
pub fn counter_uniform(seed: u64, sequence: u64, step: u64) -> f64 {
    counter_bits(seed, sequence, step) as f64 / (1u64 << 53) as f64
}

/// The rule as the kernel takes it.
#[derive(Debug, Clone, Copy)]
struct Params {
    /// Candidates kept by top-k, in 1..=V (V = no limit; greedy is 1).
    top_k: usize,
    inv_temperature: f32,
    /// `top_p = mant / 2^shift`; `None` when top_p is 1.
    top_p: Option<(u32, u32)>,
}

/// Checks the arguments of [`Backend::sample`]; returns `(B, V)`.
pub fn check<B: Backend>(logits: &Tensor<B>, rule: SampleRule) -> Result<(usize, usize)> {
    super::check::float(OP, "logits", logits)?;
    super::check::rank(OP, "logits", logits, 2)?;
    let (rows, vocab) = (logits.dims()[0], logits.dims()[1]);
    if vocab == 0 || vocab > MAX_VOCAB {
        return Err(Error::shape(OP, format!("`logits` has shape {}, V must be in 1..={MAX_VOCAB}", logits.shape())));
    }
    rule.validate()?;
    Ok((rows, vocab))
}

impl SampleRule {
    /// A sampling rule needs a positive, finite temperature and `top_p` in `(0, 1]`.
    pub fn validate(&self) -> Result<()> {
        if let SampleRule::Sample { temperature, top_p, .. } = *self {
            if !(temperature.is_finite() && temperature > 0.0) {
                return Err(Error::argument(OP, format!("temperature must be positive and finite, got {temperature}")));
            }
            if !(top_p > 0.0 && top_p <= 1.0) {
                return Err(Error::argument(OP, format!("top_p must be in (0, 1], got {top_p}")));
            }
        }
        Ok(())
    }
}

impl Params {
    fn of(rule: SampleRule, vocab: usize) -> Self {
        match rule {
            SampleRule::Greedy => Params { top_k: 1, inv_temperature: 1.0, top_p: None },
            SampleRule::Sample { temperature, top_k, top_p } => {
                let bits = top_p.to_bits();
                let (exponent, fraction) = ((bits >> 23) & 0xff, bits & 0x7f_ffff);
                let split = match exponent {
                    0 => (fraction, 149),
                    _ => (fraction | 0x80_0000, 150 - exponent),
                };
                Params {
                    top_k: if top_k == 0 { vocab } else { top_k.min(vocab) },
                    inv_temperature: 1.0 / temperature,
                    top_p: (top_p < 1.0).then_some(split),
                }
            }
        }
    }
}

/// The order-preserving key of a logit: larger keys for larger logits in IEEE total order.
fn order_key(x: f32) -> u32 {
    let b = x.to_bits();
    if b & 0x8000_0000 != 0 {
        !b
    } else {
        b | 0x8000_0000
    }
}

/// Sorts candidates by (logit descending, id ascending), larger first.
fn composite(x: f32, id: usize) -> u64 {
    (u64::from(order_key(x)) << 32) | u64::from(!(id as u32))
}

/// `floor(e^((x − max)·inv_t) · 2^40)`, as `sample.cu`'s `sample_weight` computes it: the same f32
/// operations in the same order (the kernel uses `__fmul_rn`/`__fadd_rn`, so nothing is fused).
pub fn weight(x: f32, max: f32, inv_t: f32) -> u64 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    // 1.5·2^23: adding it rounds to an integer, which then sits in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    // ln 2 in two parts; n·LN2_HI is exact for |n| <= 2^9.
    const LN2_HI: f32 = 355.0 / 512.0;
    const LN2_LO: f32 = -2.121_944_4e-4;
    const C: [f32; 6] = [1.0 / 2.0, 1.0 / 6.0, 1.0 / 24.0, 1.0 / 120.0, 1.0 / 720.0, 1.0 / 5040.0];
    if x == max {
        return 1 << FIXED_SHIFT;
    }
    let d = (x - max) * inv_t;
    // e^-28 · 2^40 < 1; NaN fails the test too.
    if d.is_nan() || d < -28.0 {
        return 0;
    }
    let rounded = d * LOG2_E + ROUND;
    let n = rounded - ROUND;
    let r = (d - n * LN2_HI) - n * LN2_LO;
    let poly = 1.0 + r * (1.0 + r * (C[0] + r * (C[1] + r * (C[2] + r * (C[3] + r * (C[4] + r * C[5]))))));
    // 2^(n + 40): n in [-41, 0], so the exponent field stays normal.
    let exponent = rounded.to_bits().wrapping_sub(ROUND.to_bits()).wrapping_add(127 + FIXED_SHIFT);
    (poly * f32::from_bits(exponent << 23)) as u64
}

/// `ceil(total · mant / 2^shift)`, exactly.
fn ceil_scaled(total: u64, mant: u32, shift: u32) -> u64 {
    let product = u128::from(total) * u128::from(mant);
    if shift >= 128 {
        return u64::from(product != 0);
    }
    ((product + (1u128 << shift) - 1) >> shift) as u64
}

/// The token of one row (the specification of the kernel).
fn sample_row(row: &[f32], p: &Params, bits: u64) -> u32 {
    let key = |i: u32| composite(row[i as usize], i as usize);
    // `row` is not empty (V >= 1 is checked), so there is a maximum.
    let best = (0..row.len() as u32).max_by_key(|&i| key(i)).unwrap_or(0);
    if p.top_k == 1 {
        return best;
    }
    let max = row[best as usize];
    let w = |i: u32| weight(row[i as usize], max, p.inv_temperature);
    let mut kept: Vec<u32> = (0..row.len() as u32).collect();
    if p.top_k < row.len() {
        kept.select_nth_unstable_by_key(p.top_k - 1, |&i| std::cmp::Reverse(key(i)));
        kept.truncate(p.top_k);
    }
    if let Some((mant, shift)) = p.top_p {
        let total: u64 = kept.iter().map(|&i| w(i)).sum();
        if total > 0 {
            let need = ceil_scaled(total, mant, shift);
            kept.sort_unstable_by_key(|&i| std::cmp::Reverse(key(i)));
            // need <= total, so the running mass reaches it.
            let mut mass = 0;
            let last = kept.iter().position(|&i| {
                mass += w(i);
                mass >= need
            });
            kept.truncate(last.map_or(kept.len(), |p| p + 1));
        }
    }
    kept.sort_unstable();
    let total: u64 = kept.iter().map(|&i| w(i)).sum();
    if total == 0 {
        return best;
    }
    let target = ((u128::from(bits << 11) * u128::from(total)) >> 64) as u64;
    let mut mass = 0;
    // The running mass ends at `total > target`, so some id is found.
    kept.into_iter()
        .find(|&i| {
            mass += w(i);
            mass > target
        })
        .unwrap_or(best)
}

pub(crate) fn sample_cpu(logits: &Tensor<Cpu>, rule: SampleRule, draw: SampleDraw) -> Result<Tensor<Cpu>> {
    let (rows, vocab) = check(logits, rule)?;
    let params = Params::of(rule, vocab);
    let data = f32_data(logits);
    let ids: Vec<u32> = data
        .par_chunks(vocab)
        .enumerate()
        .map(|(r, row)| {
            let bits = counter_bits(draw.seed, draw.first_sequence.wrapping_add(r as u64), draw.step);
            sample_row(row, &params, bits)
        })
        .collect();
    Ok(Tensor::from_parts(Shape::new(&[rows]), DType::U32, CpuBuffer::U32(ids)))
}

/// One block of [`GPU_THREADS`] per row.
pub(crate) fn sample_gpu<G: GpuBackend>(gpu: &G, logits: &Tensor<G>, rule: SampleRule, draw: SampleDraw) -> Result<Tensor<G>> {
    let (rows, vocab) = check(logits, rule)?;
    let params = Params::of(rule, vocab);
    let (b, v) = (gpu::dim_u32(OP, "B", rows)?, gpu::dim_u32(OP, "V", vocab)?);
    let ids = gpu::alloc(gpu, &[rows], DType::U32)?;
    let (p_mant, p_shift) = params.top_p.unwrap_or((0, 0));
    let split = |x: u64| [Arg::U32(x as u32), Arg::U32((x >> 32) as u32)];
    let [seed_lo, seed_hi] = split(draw.seed);
    let [sequence_lo, sequence_hi] = split(draw.first_sequence);
    let [step_lo, step_hi] = split(draw.step);
    let args = [
        Arg::In(logits),
        Arg::Out(&ids),
        Arg::U32(v),
        // top_k <= V <= 2^24.
        Arg::U32(params.top_k as u32),
        Arg::U32(p_mant),
        Arg::U32(p_shift),
        Arg::F32(params.inv_temperature),
        seed_lo,
        seed_hi,
        sequence_lo,
        sequence_hi,
        step_lo,
        step_hi,
    ];
    gpu::launch(gpu, OP, logits.dtype(), Launch::linear(b, GPU_THREADS), &args)?;
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weight_matches_exp_within_a_few_ulp() {
        for i in 0..=28_000 {
            let x = -(i as f32) / 1000.0;
            let want = (x as f64).exp() * (1u64 << FIXED_SHIFT) as f64;
            let got = weight(x, 0.0, 1.0) as f64;
            assert!((got - want).abs() <= want * 1e-6 + 1.0, "x = {x}: {got} vs {want}");
        }
        assert_eq!(weight(3.0, 3.0, 0.5), 1 << FIXED_SHIFT);
        assert_eq!(weight(f32::NEG_INFINITY, 0.0, 1.0), 0);
        assert_eq!(weight(-30.0, 0.0, 1.0), 0);
    }

    #[test]
    fn top_p_split_is_exact() {
        for p in [0.9f32, 0.5, 1e-30, 0.333] {
            let Params { top_p: Some((mant, shift)), .. } = Params::of(SampleRule::Sample { temperature: 1.0, top_k: 0, top_p: p }, 3)
            else {
                panic!("top_p {p} should be on");
            };
            assert_eq!(mant as f64 / 2f64.powi(shift as i32), p as f64);
        }
        assert_eq!(ceil_scaled(10, 3, 2), 8);
        assert_eq!(ceil_scaled(8, 1, 3), 1);
        assert_eq!(ceil_scaled(5, 1, 140), 1);
    }

    #[test]
    fn counter_draws_depend_only_on_their_coordinates() {
        assert_eq!(counter_uniform(1, 2, 3), counter_uniform(1, 2, 3));
        assert_ne!(counter_uniform(1, 2, 3), counter_uniform(1, 3, 2));
        assert_ne!(counter_uniform(1, 2, 3), counter_uniform(2, 2, 3));
        assert!((0..1000).all(|s| (0.0..1.0).contains(&counter_uniform(s, 0, 0))));
    }
}
