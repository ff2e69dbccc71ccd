//! Tensor-core instructions: `mma.sync` m16n8k16 and `ldmatrix`. Both are warp-collective
//! (`.sync.aligned`): every lane of the warp must execute them together, else the launch fails.
//!
//! Fragment layouts (PTX ISA, "Matrix fragments for mma.m16n8k16"), with `g = lane / 4` and
//! `t = lane % 4`; each 32-bit register holds two 16-bit elements, the lower column (or k) in
//! the low half:
//! - A (16×16, row-major): `a0` = A[g][2t..2t+2], `a1` = A[g+8][2t..], `a2` = A[g][2t+8..],
//!   `a3` = A[g+8][2t+8..].
//! - B (16×8, "col": indexed [k][n]): `b0` = B[2t..2t+2][g], `b1` = B[2t+8..2t+10][g].
//! - C and D (16×8 f32): `c0` = C[g][2t], `c1` = C[g][2t+1], `c2` = C[g+8][2t],
//!   `c3` = C[g+8][2t+1].
//!
//! Arithmetic: PTX leaves the order and precision of the internal sums to the hardware. The
//! emulator computes every product exactly (a 16-bit float times a 16-bit float is exact in
//! f64), adds them to `c` in f64 with k ascending, and rounds the total once to f32 (round to
//! nearest even). That is the exact result up to f64 rounding of the partial sums, so it can
//! differ from a GPU's tensor cores (which align and truncate partial sums) in the last bits of
//! an f32 result; tests compare against references with tolerances, never bit for bit.
//!
//! `ldmatrix`: lanes `8i..8i+8` give the addresses of the 8 rows (16 bytes each, 16-byte
//! aligned) of matrix `i`; lane `l` receives, of matrix `i`, row `l / 4` elements
//! `2(l % 4), 2(l % 4) + 1` — or with `.trans` column `l / 4` elements of rows `2(l % 4)`,
//! `2(l % 4) + 1`. Each row read counts as a shared read by the lane that supplied its address.

use super::lanes::{lane_value, FULL};
use super::memory::{addresses, bytes, check_aligned, LaneState};
use super::sanitize::{shared_access, Touch};
use super::{BlockEnv, Fault, Trap};
use crate::emu::float::Half;
use crate::emu::program::{Addr, MmaInput, Reg, Src};
use crate::emu::types::Space;

fn require_full_warp(exec: u32, live: u32, what: &str) -> Result<(), Fault> {
    if exec == FULL && live == FULL {
        return Ok(());
    }
    let missing = !exec;
    Err(Fault {
        lane: if missing == 0 { 0 } else { missing.trailing_zeros() as usize },
        msg: format!("{what} needs all 32 lanes of the warp converged (executing lanes {exec:#010x})"),
    })
}

/// `mma.sync.aligned.m16n8k16.row.col.f32.<in>.<in>.f32`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn mma(
    regs: &mut [u64],
    exec: u32,
    live: u32,
    input: MmaInput,
    d: [Reg; 4],
    a: [Src; 4],
    b: [Src; 2],
    c: [Src; 4],
) -> Result<(), Fault> {
    require_full_warp(exec, live, "mma.sync.aligned")?;
    let half = match input {
        MmaInput::Bf16 => Half::Bf16,
        MmaInput::F16 => Half::F16,
    };
    let elem = |word: u64, hi: bool| half.to_f32(if hi { (word >> 16) as u16 } else { word as u16 }) as f64;
    let mut am = [[0f64; 16]; 16];
    let mut bm = [[0f64; 8]; 16];
    let mut cm = [[0f64; 8]; 16];
    for lane in 0..32 {
        let (g, t) = (lane / 4, lane % 4);
        let av = a.map(|s| lane_value(regs, s, lane));
        for (i, word) in av.iter().enumerate() {
            let row = g + 8 * (i & 1);
            let col = 2 * t + 8 * (i >> 1);
            am[row][col] = elem(*word, false);
            am[row][col + 1] = elem(*word, true);
        }
        for (i, s) in b.iter().enumerate() {
            let word = lane_value(regs, *s, lane);
            let k = 2 * t + 8 * i;
            bm[k][g] = elem(word, false);
            bm[k + 1][g] = elem(word, true);
        }
        for (i, s) in c.iter().enumerate() {
            let value = f32::from_bits(lane_value(regs, *s, lane) as u32) as f64;
            cm[g + 8 * (i >> 1)][2 * t + (i & 1)] = value;
        }
    }
    for lane in 0..32 {
        let (g, t) = (lane / 4, lane % 4);
        for (i, r) in d.iter().enumerate() {
            let (row, col) = (g + 8 * (i >> 1), 2 * t + (i & 1));
            let mut acc = cm[row][col];
            for (k, bk) in bm.iter().enumerate() {
                acc += am[row][k] * bk[col];
            }
            regs[*r as usize * 32 + lane] = (acc as f32).to_bits() as u64;
        }
    }
    Ok(())
}

/// `ldmatrix.sync.aligned.m8n8.x{count}[.trans].shared.b16`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn ldmatrix(
    env: &mut BlockEnv,
    state: &mut LaneState,
    exec: u32,
    live: u32,
    count: u8,
    trans: bool,
    d: &[Reg; 4],
    addr: Addr,
) -> Result<(), Trap> {
    require_full_warp(exec, live, "ldmatrix.sync.aligned")?;
    let count = count as usize;
    let addrs = addresses(state.regs, addr);
    let lanes_used = 8 * count;
    let mask = if lanes_used == 32 { FULL } else { (1u32 << lanes_used) - 1 };
    env.counters.shared_request(false, mask, &addrs, 16);
    // rows[i][r]: the eight b16 elements of row r of matrix i.
    let mut rows = [[[0u16; 8]; 8]; 4];
    for lane in 0..lanes_used {
        check_aligned(lane, addrs[lane], 16)?;
        let row = bytes(env, state, Space::Shared, lane, addrs[lane], 16)
            .map_err(|msg| Fault { lane, msg })?;
        let out = &mut rows[lane / 8][lane % 8];
        for (j, e) in out.iter_mut().enumerate() {
            *e = u16::from_le_bytes([row[2 * j], row[2 * j + 1]]);
        }
        let touch = Touch { reads: true, writes: false, strong: false };
        shared_access(env, state, Space::Shared, lane, addrs[lane], 16, touch)?;
    }
    for (i, r) in d.iter().enumerate().take(count) {
        for lane in 0..32 {
            let (q, p) = (lane / 4, 2 * (lane % 4));
            let (lo, hi) = if trans {
                (rows[i][p][q], rows[i][p + 1][q])
            } else {
                (rows[i][q][p], rows[i][q][p + 1])
            };
            state.regs[*r as usize * 32 + lane] = (lo as u64) | ((hi as u64) << 16);
        }
    }
    Ok(())
}
