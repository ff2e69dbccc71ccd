//! `cvt`: conversions between integer and float types with PTX's rounding, saturation and
//! flush-to-zero rules. Float-to-integer conversions always saturate and map NaN to 0.

use crate::emu::float::{f64_to_f32, ftz32, int_to_f64, int_to_f64_odd, round_int, sat, Half};
use crate::emu::program::{Conv, Rnd};
use crate::emu::types::{Kind, Ty};

fn int_range(ty: Ty) -> (i128, i128) {
    let bits = ty.bits();
    if ty.kind() == Kind::Signed {
        (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1)
    } else {
        (0, (1i128 << bits) - 1)
    }
}

fn read_int(ty: Ty, x: u64) -> i128 {
    let bits = ty.bits();
    let masked = if bits >= 64 {
        x
    } else {
        x & ((1u64 << bits) - 1)
    };
    if ty.kind() == Kind::Signed && bits < 128 && (masked >> (bits - 1)) & 1 == 1 {
        masked as i128 - (1i128 << bits)
    } else {
        masked as i128
    }
}

/// Truncates to the destination type; signed results are sign-extended, so a destination
/// register wider than the type (`cvt.s8.s32` into a `.b16` register) holds the extended value.
fn write_int(ty: Ty, v: i128) -> u64 {
    let bits = ty.bits();
    if bits >= 64 {
        return v as u64;
    }
    let truncated = (v as u64) & ((1u64 << bits) - 1);
    if ty.kind() == Kind::Signed && (truncated >> (bits - 1)) & 1 == 1 {
        truncated | (u64::MAX << bits)
    } else {
        truncated
    }
}

/// Reads a float source exactly as f64 (with `.ftz` for f32).
fn read_float(ty: Ty, x: u64, ftz: bool) -> f64 {
    match ty {
        Ty::F32 => {
            let v = f32::from_bits(x as u32);
            (if ftz { ftz32(v) } else { v }) as f64
        }
        Ty::F64 => f64::from_bits(x),
        Ty::F16 => Half::F16.to_f32(x as u16) as f64,
        _ => Half::Bf16.to_f32(x as u16) as f64,
    }
}

/// Writes an exact (or round-to-odd) f64 to a float type with rounding `rnd`.
fn write_float(ty: Ty, v: f64, rnd: Rnd, ftz: bool) -> u64 {
    match ty {
        Ty::F32 => {
            let r = f64_to_f32(v, rnd);
            (if ftz { ftz32(r) } else { r }).to_bits() as u64
        }
        Ty::F64 => v.to_bits(),
        Ty::F16 => Half::F16.round_f64(v, rnd) as u64,
        _ => Half::Bf16.round_f64(v, rnd) as u64,
    }
}

/// Converts one value as `conv` says.
pub fn convert(conv: &Conv, x: u64) -> u64 {
    let src_float = conv.src.is_float();
    let dst_float = conv.dst.is_float();
    match (src_float, dst_float) {
        (false, false) => {
            let v = read_int(conv.src, x);
            let v = if conv.sat {
                let (lo, hi) = int_range(conv.dst);
                v.clamp(lo, hi)
            } else {
                v
            };
            write_int(conv.dst, v)
        }
        (false, true) => {
            let v = read_int(conv.src, x);
            let rnd = conv.rnd.unwrap_or(Rnd::Nearest);
            let exact = if conv.dst == Ty::F64 {
                int_to_f64(v, rnd)
            } else {
                int_to_f64_odd(v)
            };
            let exact = if conv.sat { sat(exact) } else { exact };
            write_float(conv.dst, exact, rnd, false)
        }
        (true, false) => {
            let f = read_float(conv.src, x, conv.ftz);
            if f.is_nan() {
                return 0;
            }
            let r = round_int(f, conv.rnd.unwrap_or(Rnd::Zero));
            let (lo, hi) = int_range(conv.dst);
            let v = if r <= lo as f64 {
                lo
            } else if r >= hi as f64 {
                hi
            } else {
                r as i128
            };
            write_int(conv.dst, v)
        }
        (true, true) => {
            let f = read_float(conv.src, x, conv.ftz);
            let f = if conv.sat { sat(f) } else { f };
            if f.is_nan() && conv.dst != Ty::F64 && conv.dst != Ty::F32 {
                return write_float(conv.dst, f, Rnd::Nearest, false);
            }
            write_float(conv.dst, f, conv.rnd.unwrap_or(Rnd::Nearest), conv.ftz)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv(dst: Ty, src: Ty, rnd: Option<Rnd>, sat: bool) -> Conv {
        Conv {
            dst,
            src,
            rnd,
            int_rnd: false,
            sat,
            ftz: false,
        }
    }

    #[test]
    fn int_float_roundings() {
        let c = conv(Ty::S32, Ty::F32, Some(Rnd::Nearest), false);
        assert_eq!(convert(&c, 2.5f32.to_bits() as u64), 2);
        assert_eq!(convert(&c, 3.5f32.to_bits() as u64), 4);
        assert_eq!(convert(&c, (-2.5f32).to_bits() as u64) as u32 as i32, -2);
        assert_eq!(convert(&c, f32::NAN.to_bits() as u64), 0);
        assert_eq!(convert(&c, 1e20f32.to_bits() as u64), i32::MAX as u64);
        let c = conv(Ty::U32, Ty::F32, Some(Rnd::Down), false);
        assert_eq!(convert(&c, (-0.5f32).to_bits() as u64), 0);
        let c = conv(Ty::F32, Ty::S64, Some(Rnd::Zero), false);
        // 2^24 + 1 is not an f32: truncation gives 2^24.
        assert_eq!(
            f32::from_bits(convert(&c, (1u64 << 24) + 1) as u32),
            16777216.0
        );
        let c = conv(Ty::F32, Ty::U64, Some(Rnd::Up), false);
        assert_eq!(
            f32::from_bits(convert(&c, (1u64 << 24) + 1) as u32),
            16777218.0
        );
    }

    #[test]
    fn int_int_saturation() {
        assert_eq!(
            convert(&conv(Ty::U8, Ty::S32, None, true), (-5i32) as u32 as u64),
            0
        );
        assert_eq!(convert(&conv(Ty::S16, Ty::S32, None, true), 70000), 0x7fff);
        assert_eq!(
            convert(&conv(Ty::S8, Ty::S32, None, true), (-1i32) as u32 as u64),
            u64::MAX
        );
        assert_eq!(
            convert(&conv(Ty::S64, Ty::S32, None, false), 0xffff_ffff),
            u64::MAX
        );
        assert_eq!(
            convert(&conv(Ty::U32, Ty::U64, None, false), 0x1_0000_0005),
            5
        );
    }
}
