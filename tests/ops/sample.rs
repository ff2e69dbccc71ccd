//! Next-token choice on the backend: greedy and ties, top-k = 1, top-p keeping the head, ids equal
//! to the Cpu's over many rows, draws, shapes and both dtypes, frequencies against an f64
//! softmax, batch independence, and the device's counter hash.

use runtime::ops::sample::{counter_uniform, weight, SampleDraw, SampleRule, FIXED_SHIFT};
use runtime::{Backend, Cpu, DType, Error};

use crate::backend_tests;
use crate::common::{assert_shape_error, error_of, Rng};

fn sample<B: Backend>(b: &B, logits: &[f32], dims: [usize; 2], dtype: DType, rule: SampleRule, draw: SampleDraw) -> Vec<u32> {
    let z = b.upload_f32(&dims, logits, dtype).unwrap();
    b.download_u32(&b.sample(&z, rule, draw).unwrap()).unwrap()
}

fn draw(seed: u64, first_sequence: u64, step: u64) -> SampleDraw {
    SampleDraw { seed, first_sequence, step }
}

fn rule(temperature: f32, top_k: usize, top_p: f32) -> SampleRule {
    SampleRule::Sample { temperature, top_k, top_p }
}

fn greedy_takes_the_first_maximum<B: Backend>(backend: &B) {
    for dtype in [DType::F32, DType::BF16] {
        let rows = [0.1, 3.0, -1.0, 3.0, -0.0, 0.0, -5.0, 0.0, 2.0, 2.0, 2.0, 2.0, -1.0, -2.0, -3.0, 7.5];
        let greedy = sample(backend, &rows, [4, 4], dtype, SampleRule::Greedy, draw(0, 0, 0));
        // +0 ranks above −0 (total order); then the lowest id among equals.
        assert_eq!(greedy, [1, 1, 0, 3], "{dtype}");
        let top1 = sample(backend, &rows, [4, 4], dtype, rule(0.7, 1, 0.5), draw(3, 9, 1));
        assert_eq!(top1, greedy, "top-k = 1 is greedy ({dtype})");
        // V > 65535: the maximum appears twice past 65536; the lower id wins.
        let mut wide = vec![-1.0f32; 70_000];
        wide[66_001] = 4.0;
        wide[69_999] = 4.0;
        wide[12] = 3.9;
        assert_eq!(sample(backend, &wide, [1, 70_000], dtype, SampleRule::Greedy, draw(0, 0, 0)), [66_001], "{dtype}");
    }
}

fn top_p_keeps_the_head<B: Backend>(backend: &B) {
    // p = (0.09, 0.66, 0.24, 0.004) at T = 1.
    let logits: Vec<f32> = [0.0, 2.0, 1.0, -3.0].repeat(64);
    let dims = [64, 4];
    // top-p = 0.5: token 1 alone reaches it.
    assert!(sample(backend, &logits, dims, DType::F32, rule(1.0, 0, 0.5), draw(5, 0, 0)).iter().all(|&t| t == 1));
    // top-p = 0.9 keeps tokens 1 and 2 (0.66 + 0.24 >= 0.9), both drawn, never 0 or 3.
    let ids = sample(backend, &logits, dims, DType::F32, rule(1.0, 0, 0.9), draw(5, 0, 0));
    assert!(ids.iter().all(|&t| t == 1 || t == 2), "{ids:?}");
    assert!(ids.contains(&1) && ids.contains(&2), "{ids:?}");
    // top-k = 2 keeps the same two.
    let ids = sample(backend, &logits, dims, DType::BF16, rule(1.0, 2, 1.0), draw(6, 0, 0));
    assert!(ids.iter().all(|&t| t == 1 || t == 2) && ids.contains(&2), "{ids:?}");
}

/// Logits for `rows × v`: normals, with every other row rounded to quarters so that ties straddle
/// the top-k and top-p boundaries.
fn tied_logits(rng: &mut Rng, rows: usize, v: usize) -> Vec<f32> {
    let mut z = rng.normal_vec(rows * v, 2.0);
    for row in z.chunks_mut(v).skip(1).step_by(2) {
        row.iter_mut().for_each(|x| *x = (*x * 4.0).round() / 4.0);
    }
    z
}

fn ids_equal_the_cpu<B: Backend>(backend: &B) {
    let mut rng = Rng::new(11);
    let rules = [
        SampleRule::Greedy,
        rule(0.8, 0, 1.0),
        rule(1.3, 10, 0.95),
        rule(0.7, 0, 0.9),
        rule(1.0, 50, 1.0),
        rule(2.0, 0, 0.3),
    ];
    for dtype in [DType::F32, DType::BF16] {
        for (v, rows) in [(1, 3), (7, 13), (33, 9), (1000, 6), (50_257, 2), (70_000, 2)] {
            let z = tied_logits(&mut rng, rows, v);
            for (i, &r) in rules.iter().enumerate() {
                let d = draw(rng.next_u64(), rng.next_u64(), i as u64);
                let want = sample(&Cpu::new(), &z, [rows, v], dtype, r, d);
                let got = sample(backend, &z, [rows, v], dtype, r, d);
                assert_eq!(got, want, "{dtype} [{rows}, {v}] {r:?}");
                assert!(got.iter().all(|&t| (t as usize) < v));
            }
        }
        // top-k just below V and at V, and more rows of a small vocabulary with many draws.
        let z = tied_logits(&mut rng, 40, 19);
        for r in [rule(1.0, 18, 1.0), rule(1.0, 19, 0.99), rule(0.5, 3, 0.6), rule(1.0, 100, 0.7)] {
            for step in 0..3 {
                let d = draw(9, 1 << 40, step);
                assert_eq!(sample(backend, &z, [40, 19], dtype, r, d), sample(&Cpu::new(), &z, [40, 19], dtype, r, d), "{dtype} {r:?}");
            }
        }
    }
}

/// The f64 reference: softmax(z/T) over the top-k set, cut to the shortest prefix reaching top-p,
/// renormalised; `None` for tokens outside. Also the distance of the cut's mass from `top_p`.
fn reference(z: &[f32], temperature: f64, top_k: usize, top_p: f64) -> (Vec<f64>, f64) {
    let mut order: Vec<usize> = (0..z.len()).collect();
    order.sort_by(|&a, &b| z[b].total_cmp(&z[a]).then(a.cmp(&b)));
    order.truncate(if top_k == 0 { z.len() } else { top_k });
    let w: Vec<f64> = order.iter().map(|&i| ((z[i] as f64 - z[order[0]] as f64) / temperature).exp()).collect();
    let total: f64 = w.iter().sum();
    let (mut kept, mut mass, mut margin) = (0, 0.0, f64::INFINITY);
    while kept < order.len() {
        margin = margin.min((mass - top_p).abs());
        mass += w[kept] / total;
        kept += 1;
        if mass >= top_p {
            break;
        }
    }
    margin = margin.min((mass - top_p).abs());
    let kept_total: f64 = w[..kept].iter().sum();
    let mut p = vec![0.0; z.len()];
    for (slot, &i) in order[..kept].iter().enumerate() {
        p[i] = w[slot] / kept_total;
    }
    (p, margin)
}

fn frequencies_follow_the_softmax<B: Backend>(backend: &B) {
    let z = [0.5f32, 1.5, -0.5, 1.2, 0.9, -2.0, 0.0];
    let draws = 3000;
    for (temperature, top_k, top_p) in [(0.7, 0, 1.0), (1.0, 4, 1.0), (1.3, 0, 0.8), (0.9, 5, 0.7)] {
        let (p, margin) = reference(&z, temperature as f64, top_k, top_p as f64);
        // The cut is far from p, so f32 weights cannot move it.
        assert!(top_p == 1.0 || margin > 1e-3, "{margin}");
        let logits = z.repeat(draws);
        let ids = sample(backend, &logits, [draws, z.len()], DType::F32, rule(temperature, top_k, top_p), draw(21, 0, 4));
        let mut counts = vec![0usize; z.len()];
        ids.iter().for_each(|&t| counts[t as usize] += 1);
        let mut chi2 = 0.0;
        for (i, (&c, &pi)) in counts.iter().zip(&p).enumerate() {
            if pi == 0.0 {
                assert_eq!(c, 0, "token {i} is outside the kept set (T {temperature}, k {top_k}, p {top_p})");
                continue;
            }
            let expected = pi * draws as f64;
            chi2 += (c as f64 - expected).powi(2) / expected;
        }
        // At most 6 degrees of freedom: P(χ² > 30) < 5e-5.
        assert!(chi2 < 30.0, "χ² = {chi2}: counts {counts:?} vs p {p:?}");
    }
}

fn a_row_is_independent_of_its_batch<B: Backend>(backend: &B) {
    let mut rng = Rng::new(5);
    let (rows, v) = (6, 333);
    let z = tied_logits(&mut rng, rows, v);
    for dtype in [DType::F32, DType::BF16] {
        for r in [rule(1.0, 0, 1.0), rule(0.8, 20, 0.9), rule(1.5, 0, 0.5)] {
            let batch = sample(backend, &z, [rows, v], dtype, r, draw(77, 1000, 3));
            for (row, &id) in batch.iter().enumerate() {
                let alone = sample(backend, &z[row * v..][..v], [1, v], dtype, r, draw(77, 1000 + row as u64, 3));
                assert_eq!(alone, [id], "{dtype} {r:?} row {row}");
            }
            // The same row at another position of a smaller batch.
            let tail = sample(backend, &z[3 * v..], [3, v], dtype, r, draw(77, 1003, 3));
            assert_eq!(tail, batch[3..], "{dtype} {r:?}");
        }
    }
}

/// With V equal logits every weight is the same, so the token is floor(u·V): the top bits of the
/// draw the backend computed, which must be those of `counter_uniform`.
fn the_draw_is_counter_uniform<B: Backend>(backend: &B) {
    let (rows, v) = (200, 4096);
    let z = vec![0.25f32; rows * v];
    for (seed, first, step) in [(0, 0, 0), (u64::MAX - 7, 1 << 33, 5), (0x0123_4567_89AB_CDEF, u64::MAX - 100, 1 << 40)] {
        let ids = sample(backend, &z, [rows, v], DType::F32, rule(1.0, 0, 1.0), draw(seed, first, step));
        for (row, &id) in ids.iter().enumerate() {
            let u = counter_uniform(seed, first.wrapping_add(row as u64), step);
            assert_eq!(id as usize, (u * v as f64) as usize, "seed {seed} sequence {first}+{row} step {step}");
        }
    }
}

/// Rows `[0, x]` where the token flips between 0 and 1 for adjacent f32 `x`, for each row's draw
/// (found from the Cpu's `weight` and `counter_uniform` by bisection): a backend whose weight or
/// target differs from the Cpu's by more than one step of `x` (~1e-7 relative, e.g. `expf` for
/// the polynomial) moves some flip. Bit-exactness below that step holds by construction (the same
/// f32 operations in the same order), not by this test.
fn weights_are_exact_at_the_draw_boundary<B: Backend>(backend: &B) {
    let one = 1u64 << FIXED_SHIFT;
    let (seed, step, rows) = (31, 2, 256);
    for temperature in [1.0f32, 0.7] {
        let picks_one = |x: f32, u: f64| {
            let total = one + weight(x, 0.0, 1.0 / temperature);
            let bits = (u * (1u64 << 53) as f64) as u64;
            ((u128::from(bits << 11) * u128::from(total)) >> 64) as u64 >= one
        };
        let (mut below, mut above) = (vec![], vec![]);
        let (mut want_below, mut want_above) = (vec![], vec![]);
        for row in 0..rows {
            let u = counter_uniform(seed, row as u64, step);
            let (mut lo, mut hi) = (-30.0f32, -0.0f32);
            if picks_one(lo, u) || !picks_one(hi, u) {
                // Below u = 1/2 the second token is never drawn: no edge, one fixed row.
                (lo, hi) = (-0.5, -0.5);
            } else {
                // Bisect over the f32s between lo (token 0) and hi (token 1) by their bits
                // (both negative: larger bits are more negative).
                while lo.to_bits() - hi.to_bits() > 1 {
                    let mid = f32::from_bits(u32::midpoint(lo.to_bits(), hi.to_bits()));
                    if picks_one(mid, u) {
                        hi = mid;
                    } else {
                        lo = mid;
                    }
                }
            }
            below.extend([0.0, lo]);
            above.extend([0.0, hi]);
            want_below.push(u32::from(picks_one(lo, u)));
            want_above.push(u32::from(picks_one(hi, u)));
        }
        let r = rule(temperature, 0, 1.0);
        assert!(want_below.contains(&0) && want_above.contains(&1));
        assert_eq!(sample(backend, &below, [rows, 2], DType::F32, r, draw(seed, 0, step)), want_below, "T = {temperature}");
        assert_eq!(sample(backend, &above, [rows, 2], DType::F32, r, draw(seed, 0, step)), want_above, "T = {temperature}");
    }
}

/// Infinities and NaN give the same ids as on the Cpu: a +inf logit takes all the mass, −inf
/// none (nor a logit 33 below the maximum: its weight is under 2^−40), an all −inf row is
/// uniform, and a row whose maximum is NaN gets that NaN's id. An empty batch gives no ids.
fn special_values_follow_the_cpu<B: Backend>(backend: &B) {
    let (inf, nan) = (f32::INFINITY, f32::NAN);
    let rows = [
        0.5, inf, -1.0, inf, 2.0, //
        -30.0, -inf, 3.0, -inf, 3.0, //
        -inf, -inf, -inf, -inf, -inf, //
        1.0, nan, 2.0, -inf, 0.0, //
    ];
    for dtype in [DType::F32, DType::BF16] {
        for r in [SampleRule::Greedy, rule(1.0, 0, 1.0), rule(0.5, 3, 0.8)] {
            for step in 0..8 {
                let d = draw(4, 0, step);
                let got = sample(backend, &rows, [4, 5], dtype, r, d);
                assert_eq!(got, sample(&Cpu::new(), &rows, [4, 5], dtype, r, d), "{dtype} {r:?}");
                assert!(got[0] == 1 || got[0] == 3, "{got:?}");
                assert!(got[1] == 2 || got[1] == 4, "{got:?}");
                assert_eq!(got[3], 1, "{got:?}");
            }
        }
        assert!(sample(backend, &[], [0, 5], dtype, rule(1.0, 0, 0.9), draw(0, 0, 0)).is_empty());
    }
}

fn bad_arguments_are_errors<B: Backend>(backend: &B) {
    let z = backend.upload_f32(&[2, 3], &[0.0; 6], DType::F32).unwrap();
    let d = draw(0, 0, 0);
    let flat = backend.upload_f32(&[6], &[0.0; 6], DType::F32).unwrap();
    assert_shape_error(backend.sample(&flat, SampleRule::Greedy, d), "sample_fwd", &["[6]"]);
    let empty = backend.upload_f32(&[2, 0], &[], DType::F32).unwrap();
    assert_shape_error(backend.sample(&empty, SampleRule::Greedy, d), "sample_fwd", &["V must be"]);
    let ids = backend.upload_u32(&[2, 3], &[0; 6]).unwrap();
    assert!(matches!(error_of(backend.sample(&ids, SampleRule::Greedy, d)), Error::DType { .. }));
    for (t, p, needle) in [(0.0, 0.9, "temperature"), (f32::NAN, 0.9, "temperature"), (1.0, 0.0, "top_p"), (1.0, 1.5, "top_p")] {
        let msg = error_of(backend.sample(&z, rule(t, 0, p), d)).to_string();
        assert!(msg.contains("sample_fwd") && msg.contains(needle), "{msg}");
    }
}

backend_tests!(cpu, emu, cuda;
    greedy_takes_the_first_maximum,
    top_p_keeps_the_head,
    ids_equal_the_cpu,
    frequencies_follow_the_softmax,
    a_row_is_independent_of_its_batch,
    the_draw_is_counter_uniform,
    weights_are_exact_at_the_draw_boundary,
    special_values_follow_the_cpu,
    bad_arguments_are_errors,
);
