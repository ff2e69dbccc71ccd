//! `e^x` for the Cpu backend's inner loops, as plain arithmetic the compiler inlines and
//! vectorises (a call to libm's `expf` per element stops the attention and log-prob row loops from
//! vectorising and cost a fifth of the attention's time).

/// `e^x` in f32 within 2 ulp for `x <= 88` (larger `x` saturate at `e^88`); arguments below
/// `ln(f32::MIN_POSITIVE)`, −inf included, give 0; NaN stays NaN.
///
/// Range reduction `x = n·ln2 + r`, `|r| <= ln2/2`, with `ln2` split in two (Cody–Waite) so that
/// `n·LN2_HI` is exact; `e^r` by its Taylor polynomial to degree 7 (truncation below 1e-8); `2^n`
/// written straight into the exponent bits.
#[inline(always)]
pub(crate) fn exp_f32(x: f32) -> f32 {
    const LOW: f32 = -87.336_55; // ln of the smallest normal f32
    const HIGH: f32 = 88.0;
    // 1.5·2^23: adding it rounds to an integer, which then sits in the low mantissa bits
    // (`round_ties_even` and float-to-int casts do not vectorise on baseline x86-64).
    const ROUND: f32 = 12_582_912.0;
    // 355/512: few enough bits that n·LN2_HI is exact for every n here.
    const LN2_HI: f32 = 355.0 / 512.0;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let clamped = x.clamp(LOW, HIGH);
    let rounded = clamped * std::f32::consts::LOG2_E + ROUND;
    let n = rounded - ROUND;
    let r = (clamped - n * LN2_HI) - n * LN2_LO;
    let poly = 1.0
        + r * (1.0
            + r * (1.0 / 2.0
                + r * (1.0 / 6.0
                    + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    let exponent = rounded.to_bits().wrapping_sub(ROUND.to_bits()).wrapping_add(127);
    let pow2n = f32::from_bits(exponent << 23);
    if x < LOW {
        0.0
    } else {
        poly * pow2n
    }
}

#[cfg(test)]
mod tests {
    use super::exp_f32;

    #[test]
    fn exp_f32_is_within_two_ulp() {
        let mut worst = 0f64;
        for i in 0..=2_000_000 {
            let x = -87.3 + 175.3 * i as f64 / 2_000_000.0;
            let x = x as f32;
            let want = (x as f64).exp();
            let ulp = (want as f32).abs() * f32::EPSILON;
            worst = worst.max(((exp_f32(x) as f64 - want) / ulp as f64).abs());
        }
        assert!(worst <= 2.0, "worst error {worst} ulp");
    }

    #[test]
    fn exp_f32_edges() {
        assert_eq!(exp_f32(0.0), 1.0);
        assert_eq!(exp_f32(-87.5), 0.0);
        assert_eq!(exp_f32(-1000.0), 0.0);
        assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
        assert!(exp_f32(f32::NAN).is_nan());
    }
}
