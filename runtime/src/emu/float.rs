//! Correctly rounded floating-point helpers.
//!
//! Directed roundings and narrow formats are computed through *round-to-odd*: the exact result of
//! an f32/f16/bf16 operation is formed in f64 as `hi + lo` (an error-free transformation), folded
//! into one f64 whose last bit is set when the fold was inexact, and that f64 is then rounded to
//! the target format in the requested mode. Rounding a round-to-odd value of precision p to a
//! precision q ≤ p − 2 gives the same result as rounding the exact value, for every mode.

use super::program::Rnd;

pub const CANONICAL_NAN_F32: u32 = 0x7fff_ffff;
pub const CANONICAL_NAN_16: u16 = 0x7fff;

/// `a + b = s + e` exactly (Knuth's TwoSum); `e` is 0 when `s` is not finite.
pub fn two_sum(a: f64, b: f64) -> (f64, f64) {
    let s = a + b;
    if !s.is_finite() {
        return (s, 0.0);
    }
    let bb = s - a;
    let e = (a - (s - bb)) + (b - bb);
    (s, e)
}

/// Folds an exact `hi + lo` (with `|lo|` at most half an ulp of `hi`) into the round-to-odd f64.
pub fn odd(hi: f64, lo: f64) -> f64 {
    if lo == 0.0 || !hi.is_finite() || hi.to_bits() & 1 == 1 {
        return hi;
    }
    let bits = hi.to_bits();
    if (lo > 0.0) == (hi > 0.0) {
        f64::from_bits(bits + 1)
    } else {
        f64::from_bits(bits - 1)
    }
}

/// Moves an IEEE sign-magnitude encoding one step toward +∞ (`up`) or −∞.
fn step(bits: u64, sign_bit: u64, up: bool) -> u64 {
    let magnitude = bits & !sign_bit;
    let negative = bits & sign_bit != 0;
    if magnitude == 0 {
        return if up { 1 } else { sign_bit | 1 };
    }
    if negative == up {
        bits - 1
    } else {
        bits + 1
    }
}

fn toward_zero(bits: u64) -> u64 {
    bits - 1
}

/// Rounds an exact (or round-to-odd) f64 to f32 in mode `rnd`.
pub fn f64_to_f32(x: f64, rnd: Rnd) -> f32 {
    let r = x as f32;
    let rv = r as f64;
    if rnd == Rnd::Nearest || x.is_nan() || rv == x {
        return r;
    }
    let bits = r.to_bits() as u64;
    let out = match rnd {
        Rnd::Zero if rv.abs() > x.abs() => toward_zero(bits),
        Rnd::Down if rv > x => step(bits, 1 << 31, false),
        Rnd::Up if rv < x => step(bits, 1 << 31, true),
        _ => bits,
    };
    f32::from_bits(out as u32)
}

/// Rounds an f64 to f32 with round-to-odd (for a second rounding to a 16-bit format).
pub fn f64_to_f32_odd(x: f64) -> f32 {
    let r = x as f32;
    if x.is_nan() || r as f64 == x {
        return r;
    }
    let truncated = if (r as f64).abs() > x.abs() {
        toward_zero(r.to_bits() as u64) as u32
    } else {
        r.to_bits()
    };
    f32::from_bits(truncated | 1)
}

/// Rounds an exact (or round-to-odd) f64 to f64 precision given the sign of the remainder: used
/// by directed f64 add/sub/mul where `lo` is the exact error of the nearest result `hi`.
pub fn directed_f64(hi: f64, lo: f64, rnd: Rnd) -> f64 {
    if lo == 0.0 || rnd == Rnd::Nearest || hi.is_nan() {
        return hi;
    }
    let bits = hi.to_bits();
    let sign = 1u64 << 63;
    f64::from_bits(match rnd {
        Rnd::Zero if (lo > 0.0) != (hi > 0.0) => toward_zero(bits),
        Rnd::Down if lo < 0.0 => step(bits, sign, false),
        Rnd::Up if lo > 0.0 => step(bits, sign, true),
        _ => bits,
    })
}

/// The directed-rounding result of an f64 operation that overflowed to ±∞ from finite inputs.
pub fn overflow_f64(inf: f64, rnd: Rnd) -> f64 {
    match rnd {
        Rnd::Zero => f64::MAX.copysign(inf),
        Rnd::Down if inf > 0.0 => f64::MAX,
        Rnd::Up if inf < 0.0 => f64::MIN,
        _ => inf,
    }
}

/// The two 16-bit float formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Half {
    F16,
    Bf16,
}

impl Half {
    pub fn to_f32(self, bits: u16) -> f32 {
        match self {
            Half::F16 => half::f16::from_bits(bits).to_f32(),
            Half::Bf16 => f32::from_bits((bits as u32) << 16),
        }
    }

    fn exponent_mask(self) -> u16 {
        match self {
            Half::F16 => 0x7c00,
            Half::Bf16 => 0x7f80,
        }
    }

    pub fn is_subnormal(self, bits: u16) -> bool {
        bits & self.exponent_mask() == 0 && bits & 0x7fff != 0
    }

    /// Flushes a subnormal encoding to a zero of the same sign.
    pub fn flush(self, bits: u16) -> u16 {
        if self.is_subnormal(bits) {
            bits & 0x8000
        } else {
            bits
        }
    }

    /// Rounds an f32 (exact or round-to-odd) to this format; NaN becomes the canonical NaN.
    pub fn round_f32(self, x: f32, rnd: Rnd) -> u16 {
        if x.is_nan() {
            return CANONICAL_NAN_16;
        }
        match self {
            Half::Bf16 => {
                let bits = x.to_bits();
                let truncated = (bits >> 16) as u16;
                let inexact = bits & 0xffff != 0;
                let negative = bits >> 31 == 1;
                match rnd {
                    Rnd::Nearest => ((bits + 0x7fff + ((bits >> 16) & 1)) >> 16) as u16,
                    Rnd::Zero => truncated,
                    Rnd::Down if inexact && negative => truncated + 1,
                    Rnd::Up if inexact && !negative => truncated + 1,
                    _ => truncated,
                }
            }
            Half::F16 => {
                let r = half::f16::from_f32(x);
                let rv = r.to_f32();
                let bits = r.to_bits() as u64;
                if rnd == Rnd::Nearest || rv == x {
                    return r.to_bits();
                }
                (match rnd {
                    Rnd::Zero if rv.abs() > x.abs() => toward_zero(bits),
                    Rnd::Down if rv > x => step(bits, 0x8000, false),
                    Rnd::Up if rv < x => step(bits, 0x8000, true),
                    _ => bits,
                }) as u16
            }
        }
    }

    /// Rounds an exact (or round-to-odd) f64 to this format.
    pub fn round_f64(self, x: f64, rnd: Rnd) -> u16 {
        self.round_f32(f64_to_f32_odd(x), rnd)
    }
}

/// Flushes an f32 subnormal to a zero of the same sign (`.ftz`).
pub fn ftz32(x: f32) -> f32 {
    if x.is_subnormal() {
        0.0f32.copysign(x)
    } else {
        x
    }
}

/// Clamps to [0, 1], NaN to 0 (`.sat`).
pub fn sat(x: f64) -> f64 {
    if x.is_nan() || x <= 0.0 {
        0.0
    } else if x > 1.0 {
        1.0
    } else {
        x
    }
}

/// Correctly rounded f32 fused multiply-add: the product of two f32 is exact in f64.
#[inline]
pub fn fma_f32(a: f32, b: f32, c: f32) -> f32 {
    let p = a as f64 * b as f64;
    let (s, e) = two_sum(p, c as f64);
    if !s.is_finite() || !p.is_finite() {
        return (p + c as f64) as f32;
    }
    odd(s, e) as f32
}

/// The exact (or round-to-odd) f64 value of `a / b` for f32-representable inputs.
pub fn div_odd(a: f64, b: f64) -> f64 {
    let q = a / b;
    if !q.is_finite() || q == 0.0 {
        return q;
    }
    let r = (-q).mul_add(b, a);
    odd(q, if b > 0.0 { r } else { -r })
}

/// The round-to-odd f64 square root of an f32-representable input.
pub fn sqrt_odd(x: f64) -> f64 {
    let r = x.sqrt();
    if !r.is_finite() || r == 0.0 {
        return r;
    }
    let e = r.mul_add(r, -x);
    odd(r, -e)
}

/// `min`/`max` with PTX's rules: a NaN input yields the other input (both NaN: NaN) unless
/// `propagate_nan`; −0 orders below +0.
pub fn min_max(a: f64, b: f64, is_max: bool, propagate_nan: bool) -> f64 {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => return f64::NAN,
        (true, false) | (false, true) if propagate_nan => return f64::NAN,
        (true, false) => return b,
        (false, true) => return a,
        _ => {}
    }
    if a == b {
        // Only ±0 compare equal with different bits; pick by sign.
        let a_neg = a.is_sign_negative();
        return if a_neg == is_max { b } else { a };
    }
    if (a < b) != is_max {
        a
    } else {
        b
    }
}

/// Rounds to an integral value in mode `rnd`.
pub fn round_int(x: f64, rnd: Rnd) -> f64 {
    match rnd {
        Rnd::Nearest => x.round_ties_even(),
        Rnd::Zero => x.trunc(),
        Rnd::Down => x.floor(),
        Rnd::Up => x.ceil(),
    }
}

/// The round-to-odd f64 of an integer (exact for |v| < 2^53).
pub fn int_to_f64_odd(v: i128) -> f64 {
    let f = v as f64;
    if f as i128 == v {
        return f;
    }
    let truncated = if (f as i128).abs() > v.abs() {
        toward_zero(f.to_bits())
    } else {
        f.to_bits()
    };
    f64::from_bits(truncated | 1)
}

/// An integer converted to f64 in mode `rnd`.
pub fn int_to_f64(v: i128, rnd: Rnd) -> f64 {
    let f = v as f64;
    let back = f as i128;
    if rnd == Rnd::Nearest || back == v {
        return f;
    }
    let lo = if back < v { 1.0 } else { -1.0 };
    directed_f64(f, lo, rnd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_round_to_nearest_even_and_directed() {
        let bf = Half::Bf16;
        // 1 + 2^-8 is halfway between bf16 1.0 and 1.0078125: ties to even (1.0).
        assert_eq!(
            bf.round_f32(f32::from_bits(0x3f80_8000), Rnd::Nearest),
            0x3f80
        );
        // 1.0078125 + 2^-8 is halfway, the even neighbour is above.
        assert_eq!(
            bf.round_f32(f32::from_bits(0x3f81_8000), Rnd::Nearest),
            0x3f82
        );
        assert_eq!(
            bf.round_f32(f32::from_bits(0x3f80_8001), Rnd::Nearest),
            0x3f81
        );
        assert_eq!(bf.round_f32(f32::from_bits(0x3f80_ffff), Rnd::Zero), 0x3f80);
        assert_eq!(bf.round_f32(f32::from_bits(0xbf80_0001), Rnd::Down), 0xbf81);
        assert_eq!(bf.round_f32(f32::from_bits(0xbf80_0001), Rnd::Up), 0xbf80);
        assert_eq!(bf.round_f32(f32::NAN, Rnd::Nearest), CANONICAL_NAN_16);
        assert_eq!(bf.round_f32(f32::MAX, Rnd::Nearest), 0x7f80);
    }

    #[test]
    fn directed_f32_from_f64() {
        let x = 1.0f64 + 2f64.powi(-30);
        assert_eq!(f64_to_f32(x, Rnd::Nearest), 1.0);
        assert_eq!(f64_to_f32(x, Rnd::Up), 1.0 + f32::EPSILON);
        assert_eq!(f64_to_f32(-x, Rnd::Down), -(1.0 + f32::EPSILON));
        assert_eq!(f64_to_f32(-x, Rnd::Zero), -1.0);
        assert_eq!(f64_to_f32(1e300, Rnd::Zero), f32::MAX);
        assert_eq!(f64_to_f32(1e300, Rnd::Up), f32::INFINITY);
    }

    #[test]
    fn fma_is_single_rounding() {
        // a*b = 1 - 2^-48 exactly; adding -1 must give -2^-48, not 0.
        let a = 1.0f32 + f32::EPSILON;
        let b = 1.0f32 - f32::EPSILON;
        assert_eq!(fma_f32(a, b, -1.0), -(2f32.powi(-46)));
        assert_eq!(fma_f32(a, b, -1.0), a.mul_add(b, -1.0));
    }
}
