//! Per-warp register access: each helper reads its sources for all 32 lanes, applies a pure
//! function lane by lane and writes only the lanes of `mask`. The functions must not panic on any
//! input, since inactive lanes may be computed and discarded.

use crate::emu::program::{PredSrc, Reg, Src};

pub const FULL: u32 = u32::MAX;

#[inline(always)]
pub fn load(regs: &[u64], s: Src) -> [u64; 32] {
    match s {
        Src::Reg(r) => {
            let mut out = [0u64; 32];
            out.copy_from_slice(&regs[r as usize * 32..r as usize * 32 + 32]);
            out
        }
        Src::Imm(v) => [v; 32],
    }
}

/// The value of `s` in one lane.
#[inline(always)]
pub fn lane_value(regs: &[u64], s: Src, lane: usize) -> u64 {
    match s {
        Src::Reg(r) => regs[r as usize * 32 + lane],
        Src::Imm(v) => v,
    }
}

/// The lanes where predicate `p` holds.
#[inline(always)]
pub fn pred_mask(preds: &[u32], p: PredSrc) -> u32 {
    let m = preds[p.reg as usize];
    if p.negated {
        !m
    } else {
        m
    }
}

#[inline(always)]
pub fn dst(regs: &mut [u64], d: Reg) -> &mut [u64] {
    &mut regs[d as usize * 32..d as usize * 32 + 32]
}

#[inline(always)]
fn store(out: &mut [u64], mask: u32, values: [u64; 32]) {
    if mask == FULL {
        out.copy_from_slice(&values);
    } else {
        for (lane, (o, v)) in out.iter_mut().zip(values).enumerate() {
            if mask >> lane & 1 != 0 {
                *o = v;
            }
        }
    }
}

#[inline(always)]
pub fn map1(regs: &mut [u64], mask: u32, d: Reg, a: Src, f: impl Fn(u64) -> u64) {
    let av = load(regs, a);
    store(dst(regs, d), mask, av.map(f));
}

#[inline(always)]
pub fn map2(regs: &mut [u64], mask: u32, d: Reg, a: Src, b: Src, f: impl Fn(u64, u64) -> u64) {
    let av = load(regs, a);
    let bv = load(regs, b);
    let mut out = [0u64; 32];
    for ((o, x), y) in out.iter_mut().zip(av).zip(bv) {
        *o = f(x, y);
    }
    store(dst(regs, d), mask, out);
}

#[inline(always)]
pub fn map3(
    regs: &mut [u64],
    mask: u32,
    d: Reg,
    a: Src,
    b: Src,
    c: Src,
    f: impl Fn(u64, u64, u64) -> u64,
) {
    let av = load(regs, a);
    let bv = load(regs, b);
    let cv = load(regs, c);
    let mut out = [0u64; 32];
    for (((o, x), y), z) in out.iter_mut().zip(av).zip(bv).zip(cv) {
        *o = f(x, y, z);
    }
    store(dst(regs, d), mask, out);
}

/// Writes a predicate result: lanes of `mask` take their bit from `bits`.
#[inline(always)]
pub fn set_pred(preds: &mut [u32], p: u32, mask: u32, bits: u32) {
    let slot = &mut preds[p as usize];
    *slot = (*slot & !mask) | (bits & mask);
}

/// Collects a per-lane boolean into a lane mask.
#[inline(always)]
pub fn lanes_where(f: impl Fn(usize) -> bool) -> u32 {
    let mut m = 0u32;
    for lane in 0..32 {
        m |= (f(lane) as u32) << lane;
    }
    m
}

/// Iterates the set lanes of a mask in ascending order.
pub fn lanes(mask: u32) -> impl Iterator<Item = usize> {
    let mut m = mask;
    std::iter::from_fn(move || {
        if m == 0 {
            None
        } else {
            let l = m.trailing_zeros() as usize;
            m &= m - 1;
            Some(l)
        }
    })
}
