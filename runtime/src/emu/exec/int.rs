//! Integer and bit-manipulation instructions, monomorphised per operand type.

use super::lanes::{map1, map2, map3};
use crate::emu::program::{IntBinOp, IntTriOp, IntTy, IntUnOp, Reg, Src};

/// The integer operand types, read from the low bits of a register.
pub trait Int: Copy + Ord {
    const BITS: u32;
    const SIGNED: bool;
    fn from_reg(v: u64) -> Self;
    /// The value's bits, zero-extended to 64.
    fn to_reg(self) -> u64;
    fn to_i128(self) -> i128;
    /// Truncates an i128 to this type.
    fn from_i128(v: i128) -> Self;
}

macro_rules! impl_int {
    ($t:ty, $u:ty, $signed:expr) => {
        impl Int for $t {
            const BITS: u32 = <$t>::BITS;
            const SIGNED: bool = $signed;
            #[inline(always)]
            fn from_reg(v: u64) -> Self {
                v as $u as $t
            }
            #[inline(always)]
            fn to_reg(self) -> u64 {
                self as $u as u64
            }
            #[inline(always)]
            fn to_i128(self) -> i128 {
                self as i128
            }
            #[inline(always)]
            fn from_i128(v: i128) -> Self {
                v as $t
            }
        }
    };
}

impl_int!(u16, u16, false);
impl_int!(i16, u16, true);
impl_int!(u32, u32, false);
impl_int!(i32, u32, true);
impl_int!(u64, u64, false);
impl_int!(i64, u64, true);

#[inline(always)]
fn width_mask(bits: u32) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}

#[inline(always)]
fn wrap<T: Int>(v: i128) -> u64 {
    T::from_i128(v).to_reg()
}

#[inline(always)]
fn val<T: Int>(v: u64) -> i128 {
    T::from_reg(v).to_i128()
}

/// The value range of `T`.
fn range<T: Int>() -> (i128, i128) {
    if T::SIGNED {
        (-(1i128 << (T::BITS - 1)), (1i128 << (T::BITS - 1)) - 1)
    } else {
        (0, (1i128 << T::BITS) - 1)
    }
}

fn bin<T: Int>(op: IntBinOp, regs: &mut [u64], mask: u32, d: Reg, a: Src, b: Src) {
    let (lo, hi) = range::<T>();
    let bits = T::BITS;
    match op {
        IntBinOp::Add => map2(regs, mask, d, a, b, |x, y| {
            x.wrapping_add(y) & width_mask(bits)
        }),
        IntBinOp::Sub => map2(regs, mask, d, a, b, |x, y| {
            x.wrapping_sub(y) & width_mask(bits)
        }),
        IntBinOp::MulLo => map2(regs, mask, d, a, b, |x, y| {
            x.wrapping_mul(y) & width_mask(bits)
        }),
        IntBinOp::AddSat => map2(regs, mask, d, a, b, |x, y| {
            wrap::<T>((val::<T>(x) + val::<T>(y)).clamp(lo, hi))
        }),
        IntBinOp::SubSat => map2(regs, mask, d, a, b, |x, y| {
            wrap::<T>((val::<T>(x) - val::<T>(y)).clamp(lo, hi))
        }),
        IntBinOp::MulHi => map2(regs, mask, d, a, b, |x, y| {
            let p = if T::SIGNED {
                (val::<T>(x) * val::<T>(y)) >> bits
            } else {
                ((val::<T>(x) as u128 * val::<T>(y) as u128) >> bits) as i128
            };
            wrap::<T>(p)
        }),
        IntBinOp::Div => map2(regs, mask, d, a, b, |x, y| {
            let (x, y) = (val::<T>(x), val::<T>(y));
            // Division by zero is undefined in PTX; the hardware gives all ones.
            if y == 0 {
                width_mask(bits)
            } else {
                wrap::<T>(x / y)
            }
        }),
        IntBinOp::Rem => map2(regs, mask, d, a, b, |x, y| {
            let (x, y) = (val::<T>(x), val::<T>(y));
            if y == 0 {
                wrap::<T>(x)
            } else {
                wrap::<T>(x % y)
            }
        }),
        IntBinOp::Min => map2(regs, mask, d, a, b, |x, y| {
            T::from_reg(x).min(T::from_reg(y)).to_reg()
        }),
        IntBinOp::Max => map2(regs, mask, d, a, b, |x, y| {
            T::from_reg(x).max(T::from_reg(y)).to_reg()
        }),
        IntBinOp::And => map2(regs, mask, d, a, b, |x, y| x & y & width_mask(bits)),
        IntBinOp::Or => map2(regs, mask, d, a, b, |x, y| (x | y) & width_mask(bits)),
        IntBinOp::Xor => map2(regs, mask, d, a, b, |x, y| (x ^ y) & width_mask(bits)),
        IntBinOp::Shl => map2(regs, mask, d, a, b, |x, y| {
            let n = y as u32;
            if n >= bits {
                0
            } else {
                (x << n) & width_mask(bits)
            }
        }),
        IntBinOp::Shr => map2(regs, mask, d, a, b, |x, y| {
            // Shift amounts past the width clamp: zeros, or sign bits for signed types.
            let n = (y as u32).min(bits - 1 + u32::from(!T::SIGNED));
            if n >= bits {
                0
            } else {
                wrap::<T>(val::<T>(x) >> n)
            }
        }),
    }
}

pub fn exec_bin(op: IntBinOp, ty: IntTy, regs: &mut [u64], mask: u32, d: Reg, a: Src, b: Src) {
    match ty {
        IntTy::U16 => bin::<u16>(op, regs, mask, d, a, b),
        IntTy::S16 => bin::<i16>(op, regs, mask, d, a, b),
        IntTy::U32 => bin::<u32>(op, regs, mask, d, a, b),
        IntTy::S32 => bin::<i32>(op, regs, mask, d, a, b),
        IntTy::U64 => bin::<u64>(op, regs, mask, d, a, b),
        IntTy::S64 => bin::<i64>(op, regs, mask, d, a, b),
    }
}

fn un<T: Int>(op: IntUnOp, regs: &mut [u64], mask: u32, d: Reg, a: Src) {
    let bits = T::BITS;
    let m = width_mask(bits);
    match op {
        IntUnOp::Not => map1(regs, mask, d, a, |x| !x & m),
        IntUnOp::Neg => map1(regs, mask, d, a, |x| x.wrapping_neg() & m),
        IntUnOp::Abs => map1(regs, mask, d, a, |x| wrap::<T>(val::<T>(x).abs())),
        IntUnOp::Popc => map1(regs, mask, d, a, |x| (x & m).count_ones() as u64),
        IntUnOp::Clz => map1(regs, mask, d, a, |x| {
            ((x & m).leading_zeros() - (64 - bits)) as u64
        }),
        IntUnOp::Brev => map1(regs, mask, d, a, |x| (x & m).reverse_bits() >> (64 - bits)),
        IntUnOp::Cnot => map1(regs, mask, d, a, |x| u64::from(x & m == 0)),
        IntUnOp::Bfind | IntUnOp::BfindShiftAmt => {
            let shift_amount = op == IntUnOp::BfindShiftAmt;
            map1(regs, mask, d, a, |x| {
                let x = x & m;
                // For signed types, the most significant bit that differs from the sign bit.
                let search = if T::SIGNED && (x >> (bits - 1)) & 1 == 1 {
                    !x & m
                } else {
                    x
                };
                if search == 0 {
                    return 0xffff_ffff;
                }
                let pos = 63 - search.leading_zeros();
                (if shift_amount { bits - 1 - pos } else { pos }) as u64
            })
        }
    }
}

pub fn exec_un(op: IntUnOp, ty: IntTy, regs: &mut [u64], mask: u32, d: Reg, a: Src) {
    match ty {
        IntTy::U16 => un::<u16>(op, regs, mask, d, a),
        IntTy::S16 => un::<i16>(op, regs, mask, d, a),
        IntTy::U32 => un::<u32>(op, regs, mask, d, a),
        IntTy::S32 => un::<i32>(op, regs, mask, d, a),
        IntTy::U64 => un::<u64>(op, regs, mask, d, a),
        IntTy::S64 => un::<i64>(op, regs, mask, d, a),
    }
}

/// `bfe`: extracts `len` bits at `pos`, sign-extending for signed types (PTX's definition, where
/// bits past the top replicate the field's last in-range bit).
fn bfe(x: u64, pos: u32, len: u32, bits: u32, signed: bool) -> u64 {
    if len == 0 {
        return 0;
    }
    let available = if pos >= bits { 0 } else { len.min(bits - pos) };
    let field = if available == 0 {
        0
    } else {
        (x >> pos) & width_mask(available)
    };
    if !signed {
        return field;
    }
    let sign_pos = (pos + len - 1).min(bits - 1);
    if (x >> sign_pos) & 1 == 1 {
        (field | !width_mask(available)) & width_mask(bits)
    } else {
        field
    }
}

fn tri<T: Int>(op: IntTriOp, regs: &mut [u64], mask: u32, d: Reg, a: Src, b: Src, c: Src) {
    let bits = T::BITS;
    match op {
        IntTriOp::MadLo => map3(regs, mask, d, a, b, c, |x, y, z| {
            x.wrapping_mul(y).wrapping_add(z) & width_mask(bits)
        }),
        IntTriOp::MadHi => map3(regs, mask, d, a, b, c, |x, y, z| {
            let hi = if T::SIGNED {
                (val::<T>(x) * val::<T>(y)) >> bits
            } else {
                ((val::<T>(x) as u128 * val::<T>(y) as u128) >> bits) as i128
            };
            wrap::<T>(hi + val::<T>(z))
        }),
        IntTriOp::Bfe => map3(regs, mask, d, a, b, c, |x, p, l| {
            bfe(x, p as u32 & 0xff, l as u32 & 0xff, bits, T::SIGNED)
        }),
    }
}

pub fn exec_tri(op: IntTriOp, ty: IntTy, regs: &mut [u64], mask: u32, d: Reg, [a, b, c]: [Src; 3]) {
    match ty {
        IntTy::U16 => tri::<u16>(op, regs, mask, d, a, b, c),
        IntTy::S16 => tri::<i16>(op, regs, mask, d, a, b, c),
        IntTy::U32 => tri::<u32>(op, regs, mask, d, a, b, c),
        IntTy::S32 => tri::<i32>(op, regs, mask, d, a, b, c),
        IntTy::U64 => tri::<u64>(op, regs, mask, d, a, b, c),
        IntTy::S64 => tri::<i64>(op, regs, mask, d, a, b, c),
    }
}

/// `mul.wide` / `mad.wide`: the full product of two `ty` values (plus `c`).
pub fn exec_wide(ty: IntTy, regs: &mut [u64], mask: u32, d: Reg, a: Src, b: Src, c: Option<Src>) {
    let (bits, signed) = match ty {
        IntTy::U16 => (16, false),
        IntTy::S16 => (16, true),
        IntTy::U32 => (32, false),
        IntTy::S32 => (32, true),
        IntTy::U64 | IntTy::S64 => (64, false),
    };
    let ext = move |x: u64| -> u64 {
        let x = x & width_mask(bits);
        if signed && (x >> (bits - 1)) & 1 == 1 {
            x | !width_mask(bits)
        } else {
            x
        }
    };
    let out_mask = width_mask(2 * bits);
    match c {
        None => map2(regs, mask, d, a, b, |x, y| {
            ext(x).wrapping_mul(ext(y)) & out_mask
        }),
        Some(c) => map3(regs, mask, d, a, b, c, |x, y, z| {
            ext(x).wrapping_mul(ext(y)).wrapping_add(z) & out_mask
        }),
    }
}

pub fn bfi(x: u64, into: u64, pos: u32, len: u32, bits: u32) -> u64 {
    if len == 0 || pos >= bits {
        return into & width_mask(bits);
    }
    let n = len.min(bits - pos);
    let field = width_mask(n) << pos;
    ((into & !field) | ((x << pos) & field)) & width_mask(bits)
}

pub fn int_ty_bits(ty: IntTy) -> u32 {
    match ty {
        IntTy::U16 | IntTy::S16 => 16,
        IntTy::U32 | IntTy::S32 => 32,
        IntTy::U64 | IntTy::S64 => 64,
    }
}

/// `prmt.b32` in the default mode: picks four bytes of `{b, a}`, optionally sign-replicated.
pub fn prmt(a: u32, b: u32, selector: u32) -> u32 {
    let source = (a as u64) | ((b as u64) << 32);
    let mut out = 0u32;
    for i in 0..4 {
        let sel = (selector >> (4 * i)) & 0xf;
        let byte = (source >> (8 * (sel & 7))) as u8;
        let byte = if sel & 8 != 0 {
            if byte & 0x80 != 0 {
                0xff
            } else {
                0
            }
        } else {
            byte
        };
        out |= (byte as u32) << (8 * i);
    }
    out
}

/// `lop3.b32`: the bitwise function of three inputs given by its truth table.
pub fn lop3(a: u32, b: u32, c: u32, lut: u8) -> u32 {
    let mut out = 0u32;
    for i in 0..8 {
        if lut >> i & 1 == 1 {
            let ma = if i & 4 != 0 { a } else { !a };
            let mb = if i & 2 != 0 { b } else { !b };
            let mc = if i & 1 != 0 { c } else { !c };
            out |= ma & mb & mc;
        }
    }
    out
}

/// `shf.l`/`shf.r`: funnel shift of the 64-bit `{b, a}`.
pub fn shf(a: u32, b: u32, n: u32, left: bool, clamp: bool) -> u32 {
    let n = if clamp { n.min(32) } else { n & 31 };
    let wide = ((b as u64) << 32) | a as u64;
    if left {
        ((wide << n) >> 32) as u32
    } else {
        (wide >> n) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bfe_matches_ptx_definition() {
        assert_eq!(bfe(0xf0, 4, 4, 32, false), 0xf);
        assert_eq!(bfe(0xf0, 4, 4, 32, true), 0xffff_ffff);
        assert_eq!(bfe(0x70, 4, 4, 32, true), 0x7);
        assert_eq!(bfe(0x8000_0000, 31, 8, 32, true), 0xffff_ffff);
        assert_eq!(bfe(0x8000_0000, 40, 8, 32, false), 0);
        assert_eq!(bfe(0x1234, 0, 0, 32, true), 0);
    }

    #[test]
    fn prmt_lop3_shf() {
        assert_eq!(prmt(0x4433_2211, 0x8877_6655, 0x3210), 0x4433_2211);
        assert_eq!(prmt(0x4433_2211, 0x8877_6655, 0x7654), 0x8877_6655);
        assert_eq!(prmt(0x0000_0080, 0, 0x0008), 0x8080_80ff);
        assert_eq!(lop3(0b1100, 0b1010, 0b0110, 0x80), 0b1100 & 0b1010 & 0b0110);
        assert_eq!(lop3(0b1100, 0b1010, 0b0110, 0xfe), 0b1110);
        assert_eq!(shf(0x8000_0000, 0x1, 1, true, false), 0x3);
        assert_eq!(shf(0x0, 0x1, 1, false, false), 0x8000_0000);
        assert_eq!(shf(0x5, 0x7, 40, false, true), 0x7);
    }
}
