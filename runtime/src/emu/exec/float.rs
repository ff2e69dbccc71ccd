//! Floating-point instructions. The common f32 round-to-nearest cases run natively; directed
//! rounding, `.ftz`/`.sat` and the 16-bit formats go through the exact helpers of
//! [`crate::emu::float`].

use super::lanes::{map1, map2, map3};
use crate::emu::float::{
    directed_f64, div_odd, f64_to_f32, fma_f32, ftz32, min_max, odd, overflow_f64, round_int, sat,
    sqrt_odd, two_sum, Half, CANONICAL_NAN_F32,
};
use crate::emu::program::{FloatBinOp, FloatMode, FloatTy, FloatUnOp, Reg, Rnd, Src, TestOp};

#[inline(always)]
fn f32_of(x: u64) -> f32 {
    f32::from_bits(x as u32)
}

#[inline(always)]
fn bits32(x: f32) -> u64 {
    x.to_bits() as u64
}

/// An f32 result with `.ftz`/`.sat` applied and NaN made canonical.
fn finish32(x: f32, mode: FloatMode) -> u64 {
    let x = if mode.ftz { ftz32(x) } else { x };
    let x = if mode.sat { sat(x as f64) as f32 } else { x };
    if x.is_nan() {
        CANONICAL_NAN_F32 as u64
    } else {
        bits32(x)
    }
}

/// The exact (round-to-odd) f64 value of a binary operation on values exact in f64 with at most
/// 24 significant bits, so that their product is exact.
fn exact_bin(op: FloatBinOp, x: f64, y: f64) -> f64 {
    match op {
        FloatBinOp::Add => {
            let (s, e) = two_sum(x, y);
            odd(s, e)
        }
        FloatBinOp::Sub => {
            let (s, e) = two_sum(x, -y);
            odd(s, e)
        }
        FloatBinOp::Mul => x * y,
        FloatBinOp::Div => div_odd(x, y),
        FloatBinOp::Min => min_max(x, y, false, false),
        FloatBinOp::Max => min_max(x, y, true, false),
        FloatBinOp::CopySign => y.abs().copysign(x),
    }
}

fn f32_bin(op: FloatBinOp, mode: FloatMode, x: f32, y: f32) -> u64 {
    let (x, y) = if mode.ftz {
        (ftz32(x), ftz32(y))
    } else {
        (x, y)
    };
    let r = match op {
        FloatBinOp::Min | FloatBinOp::Max => {
            min_max(x as f64, y as f64, op == FloatBinOp::Max, mode.nan) as f32
        }
        FloatBinOp::CopySign => return bits32(y.abs().copysign(x)),
        _ => f64_to_f32(exact_bin(op, x as f64, y as f64), mode.rnd),
    };
    finish32(r, mode)
}

fn f64_bin(op: FloatBinOp, mode: FloatMode, x: f64, y: f64) -> f64 {
    let rnd = mode.rnd;
    match op {
        FloatBinOp::Add | FloatBinOp::Sub => {
            let y = if op == FloatBinOp::Sub { -y } else { y };
            let (s, e) = two_sum(x, y);
            if s.is_infinite() && x.is_finite() && y.is_finite() {
                overflow_f64(s, rnd)
            } else {
                directed_f64(s, e, rnd)
            }
        }
        FloatBinOp::Mul => {
            let p = x * y;
            if p.is_infinite() && x.is_finite() && y.is_finite() {
                overflow_f64(p, rnd)
            } else if !p.is_finite() || rnd == Rnd::Nearest {
                p
            } else {
                directed_f64(p, x.mul_add(y, -p), rnd)
            }
        }
        FloatBinOp::Div => x / y,
        FloatBinOp::Min => min_max(x, y, false, mode.nan),
        FloatBinOp::Max => min_max(x, y, true, mode.nan),
        FloatBinOp::CopySign => y.abs().copysign(x),
    }
}

fn half_bin(h: Half, op: FloatBinOp, mode: FloatMode, x: u16, y: u16) -> u16 {
    let (x, y) = if mode.ftz {
        (h.flush(x), h.flush(y))
    } else {
        (x, y)
    };
    let (xf, yf) = (h.to_f32(x) as f64, h.to_f32(y) as f64);
    let r = match op {
        FloatBinOp::Min | FloatBinOp::Max => min_max(xf, yf, op == FloatBinOp::Max, mode.nan),
        _ => exact_bin(op, xf, yf),
    };
    finish_half(h, r, mode)
}

fn finish_half(h: Half, r: f64, mode: FloatMode) -> u16 {
    let r = if mode.sat { sat(r) } else { r };
    let bits = h.round_f64(r, mode.rnd);
    if mode.ftz {
        h.flush(bits)
    } else {
        bits
    }
}

/// Applies `f` to each 16-bit half of a packed pair (or to the single half).
#[inline(always)]
fn halves(x: u64, y: u64, packed: bool, f: impl Fn(u16, u16) -> u16) -> u64 {
    let lo = f(x as u16, y as u16) as u64;
    if packed {
        lo | (f((x >> 16) as u16, (y >> 16) as u16) as u64) << 16
    } else {
        lo
    }
}

fn half_of(ty: FloatTy) -> Option<(Half, bool)> {
    match ty {
        FloatTy::F16 => Some((Half::F16, false)),
        FloatTy::F16x2 => Some((Half::F16, true)),
        FloatTy::Bf16 => Some((Half::Bf16, false)),
        FloatTy::Bf16x2 => Some((Half::Bf16, true)),
        FloatTy::F32 | FloatTy::F64 => None,
    }
}

pub fn exec_bin(
    op: FloatBinOp,
    ty: FloatTy,
    mode: FloatMode,
    regs: &mut [u64],
    mask: u32,
    d: Reg,
    [a, b]: [Src; 2],
) {
    let plain = mode.rnd == Rnd::Nearest && !mode.ftz && !mode.sat;
    match ty {
        FloatTy::F32 if plain && op == FloatBinOp::Add => {
            map2(regs, mask, d, a, b, |x, y| bits32(f32_of(x) + f32_of(y)))
        }
        FloatTy::F32 if plain && op == FloatBinOp::Sub => {
            map2(regs, mask, d, a, b, |x, y| bits32(f32_of(x) - f32_of(y)))
        }
        FloatTy::F32 if plain && op == FloatBinOp::Mul => {
            map2(regs, mask, d, a, b, |x, y| bits32(f32_of(x) * f32_of(y)))
        }
        FloatTy::F32 if plain && op == FloatBinOp::Div => {
            map2(regs, mask, d, a, b, |x, y| bits32(f32_of(x) / f32_of(y)))
        }
        FloatTy::F32 => map2(regs, mask, d, a, b, |x, y| {
            f32_bin(op, mode, f32_of(x), f32_of(y))
        }),
        FloatTy::F64 => map2(regs, mask, d, a, b, |x, y| {
            f64_bin(op, mode, f64::from_bits(x), f64::from_bits(y)).to_bits()
        }),
        _ => {
            let (h, packed) = half_of(ty).expect("16-bit float types");
            map2(regs, mask, d, a, b, |x, y| {
                halves(x, y, packed, |p, q| half_bin(h, op, mode, p, q))
            })
        }
    }
}

pub fn exec_fma(
    ty: FloatTy,
    mode: FloatMode,
    regs: &mut [u64],
    mask: u32,
    d: Reg,
    [a, b, c]: [Src; 3],
) {
    let plain = mode.rnd == Rnd::Nearest && !mode.ftz && !mode.sat;
    match ty {
        FloatTy::F32 if plain => map3(regs, mask, d, a, b, c, |x, y, z| {
            bits32(fma_f32(f32_of(x), f32_of(y), f32_of(z)))
        }),
        FloatTy::F32 => map3(regs, mask, d, a, b, c, |x, y, z| {
            let f = |v: u64| if mode.ftz { ftz32(f32_of(v)) } else { f32_of(v) } as f64;
            let p = f(x) * f(y);
            let (s, e) = two_sum(p, f(z));
            let exact = if s.is_finite() && p.is_finite() {
                odd(s, e)
            } else {
                p + f(z)
            };
            finish32(f64_to_f32(exact, mode.rnd), mode)
        }),
        FloatTy::F64 => map3(regs, mask, d, a, b, c, |x, y, z| {
            f64::from_bits(x)
                .mul_add(f64::from_bits(y), f64::from_bits(z))
                .to_bits()
        }),
        _ => {
            let (h, packed) = half_of(ty).expect("16-bit float types");
            let one = |x: u16, y: u16, z: u16| {
                let (x, y, z) = if mode.ftz {
                    (h.flush(x), h.flush(y), h.flush(z))
                } else {
                    (x, y, z)
                };
                let p = h.to_f32(x) as f64 * h.to_f32(y) as f64;
                let (s, e) = two_sum(p, h.to_f32(z) as f64);
                let exact = if s.is_finite() && p.is_finite() {
                    odd(s, e)
                } else {
                    p + h.to_f32(z) as f64
                };
                finish_half(h, exact, mode)
            };
            map3(regs, mask, d, a, b, c, |x, y, z| {
                let lo = one(x as u16, y as u16, z as u16) as u64;
                if packed {
                    lo | (one((x >> 16) as u16, (y >> 16) as u16, (z >> 16) as u16) as u64) << 16
                } else {
                    lo
                }
            })
        }
    }
}

/// The exact or round-to-odd f64 value of a unary op (approximate ones computed in f64).
fn unary_f64(op: FloatUnOp, x: f64, rnd: Rnd) -> f64 {
    match op {
        FloatUnOp::Abs => x.abs(),
        FloatUnOp::Neg => -x,
        FloatUnOp::Sqrt => sqrt_odd(x),
        FloatUnOp::Rsqrt => 1.0 / x.sqrt(),
        FloatUnOp::Rcp => div_odd(1.0, x),
        FloatUnOp::Ex2 => x.exp2(),
        FloatUnOp::Lg2 => x.log2(),
        FloatUnOp::Sin => x.sin(),
        FloatUnOp::Cos => x.cos(),
        FloatUnOp::Tanh => x.tanh(),
        FloatUnOp::RoundInt => round_int(x, rnd),
        FloatUnOp::Identity => x,
    }
}

fn f32_un(op: FloatUnOp, mode: FloatMode, x: f32) -> u64 {
    let x = if mode.ftz { ftz32(x) } else { x };
    match op {
        // Sign operations are bit operations, NaN payload included.
        FloatUnOp::Abs => return finish_sign(x.abs(), mode),
        FloatUnOp::Neg => return finish_sign(-x, mode),
        _ => {}
    }
    let rnd = if op == FloatUnOp::RoundInt {
        Rnd::Nearest
    } else {
        mode.rnd
    };
    finish32(f64_to_f32(unary_f64(op, x as f64, mode.rnd), rnd), mode)
}

fn finish_sign(x: f32, mode: FloatMode) -> u64 {
    if x.is_nan() {
        bits32(x)
    } else {
        finish32(x, mode)
    }
}

pub fn exec_un(
    op: FloatUnOp,
    ty: FloatTy,
    mode: FloatMode,
    regs: &mut [u64],
    mask: u32,
    d: Reg,
    a: Src,
) {
    let plain = mode.rnd == Rnd::Nearest && !mode.ftz && !mode.sat;
    match ty {
        FloatTy::F32 if plain && op == FloatUnOp::Sqrt => {
            map1(regs, mask, d, a, |x| bits32(f32_of(x).sqrt()))
        }
        FloatTy::F32 if op == FloatUnOp::Ex2 && !mode.sat => map1(regs, mask, d, a, |x| {
            let x = if mode.ftz {
                ftz32(f32_of(x))
            } else {
                f32_of(x)
            };
            let r = (x as f64).exp2() as f32;
            bits32(if mode.ftz { ftz32(r) } else { r })
        }),
        FloatTy::F32 => map1(regs, mask, d, a, |x| f32_un(op, mode, f32_of(x))),
        FloatTy::F64 => map1(regs, mask, d, a, |x| {
            let x = f64::from_bits(x);
            let r = match op {
                FloatUnOp::Sqrt => x.sqrt(),
                FloatUnOp::Rcp => 1.0 / x,
                _ => unary_f64(op, x, mode.rnd),
            };
            r.to_bits()
        }),
        _ => {
            let (h, packed) = half_of(ty).expect("16-bit float types");
            let one = move |x: u16| -> u16 {
                match op {
                    FloatUnOp::Abs => return x & 0x7fff,
                    FloatUnOp::Neg => return x ^ 0x8000,
                    _ => {}
                }
                let x = if mode.ftz { h.flush(x) } else { x };
                let r = unary_f64(op, h.to_f32(x) as f64, mode.rnd);
                let mode = if op == FloatUnOp::RoundInt {
                    FloatMode {
                        rnd: Rnd::Nearest,
                        ..mode
                    }
                } else {
                    mode
                };
                finish_half(h, r, mode)
            };
            map1(regs, mask, d, a, |x| halves(x, 0, packed, |p, _| one(p)))
        }
    }
}

pub fn testp(op: TestOp, ty: FloatTy, x: u64) -> bool {
    let v = if ty == FloatTy::F64 {
        f64::from_bits(x)
    } else {
        f32_of(x) as f64
    };
    let subnormal = if ty == FloatTy::F64 {
        v.is_subnormal()
    } else {
        f32_of(x).is_subnormal()
    };
    match op {
        TestOp::Finite => v.is_finite(),
        TestOp::Infinite => v.is_infinite(),
        TestOp::Number => !v.is_nan(),
        TestOp::NotANumber => v.is_nan(),
        TestOp::Normal => v.is_finite() && v != 0.0 && !subnormal,
        TestOp::Subnormal => subnormal,
    }
}

/// Reads a float operand as an exact f64 (with `.ftz` for f32).
pub fn read_float(ty: FloatTy, x: u64, ftz: bool) -> f64 {
    match ty {
        FloatTy::F32 => {
            let v = f32_of(x);
            (if ftz { ftz32(v) } else { v }) as f64
        }
        FloatTy::F64 => f64::from_bits(x),
        FloatTy::F16 | FloatTy::F16x2 => Half::F16.to_f32(x as u16) as f64,
        FloatTy::Bf16 | FloatTy::Bf16x2 => Half::Bf16.to_f32(x as u16) as f64,
    }
}
