//! Warp-synchronous instructions: `shfl.sync`, `vote.sync`, `bar.warp.sync`.
//!
//! Every live lane named in `membermask` must execute the instruction together (the scheduler
//! runs converged lanes together, so lanes missing here are at another PC). A mismatch is a
//! fault rather than a guess, since on hardware its result is undefined.

use super::lanes::{lane_value, lanes, load, pred_mask};
use super::Fault;
use crate::emu::program::{PredSrc, Reg, ShflMode, Src, VoteMode};

/// Reads the (lane-uniform) member mask and checks that every live member is executing.
pub(crate) fn member_mask(regs: &[u64], mask_src: Src, exec: u32, live: u32) -> Result<u32, Fault> {
    let first = exec.trailing_zeros() as usize;
    let members = lane_value(regs, mask_src, first) as u32;
    for lane in lanes(exec) {
        if lane_value(regs, mask_src, lane) as u32 != members {
            return Err(Fault {
                lane,
                msg: "membermask differs between lanes".into(),
            });
        }
    }
    if exec & !members != 0 {
        let lane = (exec & !members).trailing_zeros() as usize;
        return Err(Fault { lane, msg: format!("lane executes a warp-synchronous instruction outside its membermask {members:#010x}") });
    }
    let missing = members & live & !exec;
    if missing != 0 {
        return Err(Fault {
            lane: first,
            msg: format!(
                "membermask {members:#010x} names lanes {missing:#010x} that are not converged here (divergent warp-synchronous instruction)"
            ),
        });
    }
    Ok(members)
}

/// `shfl.sync`: PTX's definition with the packed `c` operand (`c[4:0]` clamp, `c[12:8]` segment
/// mask). Lanes whose source is out of range keep their own value and get `p = false`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn shfl(
    regs: &mut [u64],
    preds: &mut [u32],
    exec: u32,
    mode: ShflMode,
    d: Reg,
    p: Option<u32>,
    a: Src,
    b: Src,
    c: Src,
) {
    let av = load(regs, a);
    let bv = load(regs, b);
    let cv = load(regs, c);
    let mut valid = 0u32;
    for lane in lanes(exec) {
        let (bval, cval) = (bv[lane] as u32 & 0x1f, cv[lane] as u32);
        let clamp = cval & 0x1f;
        let seg = (cval >> 8) & 0x1f;
        let l = lane as u32;
        let max_lane = (l & seg) | (clamp & !seg);
        let min_lane = l & seg;
        let (j, ok) = match mode {
            ShflMode::Up => {
                let j = l as i32 - bval as i32;
                (j, j >= max_lane as i32)
            }
            ShflMode::Down => {
                let j = (l + bval) as i32;
                (j, j <= max_lane as i32)
            }
            ShflMode::Bfly => {
                let j = (l ^ bval) as i32;
                (j, j <= max_lane as i32)
            }
            ShflMode::Idx => {
                let j = (min_lane | (bval & !seg)) as i32;
                (j, j <= max_lane as i32)
            }
        };
        let src = if ok { j as usize & 31 } else { lane };
        regs[d as usize * 32 + lane] = av[src] as u32 as u64;
        valid |= (ok as u32) << lane;
    }
    if let Some(p) = p {
        let slot = &mut preds[p as usize];
        *slot = (*slot & !exec) | (valid & exec);
    }
}

/// `vote.sync.{all,any,uni}.pred` over the executing lanes.
pub(crate) fn vote(preds: &mut [u32], exec: u32, mode: VoteMode, d: u32, a: PredSrc) {
    let votes = pred_mask(preds, a) & exec;
    let result = match mode {
        VoteMode::All => votes == exec,
        VoteMode::Any => votes != 0,
        VoteMode::Uni => votes == 0 || votes == exec,
    };
    let slot = &mut preds[d as usize];
    *slot = if result { *slot | exec } else { *slot & !exec };
}

/// `vote.sync.ballot.b32`.
pub(crate) fn ballot(regs: &mut [u64], preds: &[u32], exec: u32, d: Reg, a: PredSrc) {
    let votes = (pred_mask(preds, a) & exec) as u64;
    for lane in lanes(exec) {
        regs[d as usize * 32 + lane] = votes;
    }
}
