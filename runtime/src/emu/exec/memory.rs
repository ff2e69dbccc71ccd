//! `ld`, `st`, `atom`/`red`: per-lane address computation, state-space resolution (including the
//! generic windows), alignment and bounds checks, and the counter hook.

use super::lanes::{lane_value, lanes, load};
use super::sanitize::{shared_access, Touch};
use super::{BlockEnv, Fault, Trap};
use crate::emu::float::ftz32;
use crate::emu::memory::GlobalMemory;
use crate::emu::program::{Addr, AtomOp, AtomTy, Reg, Src};
use crate::emu::types::{Space, LOCAL_WINDOW, SHARED_WINDOW, WINDOW_SIZE};

/// The per-lane register and local-memory state a memory instruction touches.
pub(crate) struct LaneState<'a> {
    pub regs: &'a mut [u64],
    pub local: &'a mut [u8],
    pub local_bytes: usize,
    /// The warp and instruction, for the sanitizer.
    pub warp: u32,
    pub pc: u32,
}

/// The concrete space of an address: generic addresses pick their window.
pub(crate) fn concrete(space: Space, addr: u64) -> (Space, u64) {
    if space != Space::Generic {
        return (space, addr);
    }
    if (SHARED_WINDOW..SHARED_WINDOW + WINDOW_SIZE).contains(&addr) {
        (Space::Shared, addr - SHARED_WINDOW)
    } else if (LOCAL_WINDOW..LOCAL_WINDOW + WINDOW_SIZE).contains(&addr) {
        (Space::Local, addr - LOCAL_WINDOW)
    } else {
        (Space::Global, addr)
    }
}

/// The bytes `[addr, addr + len)` of `space` as seen by `lane`.
pub(crate) fn bytes<'b>(
    env: &'b mut BlockEnv,
    state: &'b mut LaneState,
    space: Space,
    lane: usize,
    addr: u64,
    len: usize,
) -> Result<&'b mut [u8], String> {
    let (space, addr) = concrete(space, addr);
    match space {
        Space::Shared => {
            let size = env.shared.len();
            match usize::try_from(addr).ok().filter(|&a| a.checked_add(len).is_some_and(|end| end <= size)) {
                Some(a) => Ok(&mut env.shared[a..a + len]),
                None => Err(format!(
                    "out-of-range shared access of {len} bytes at offset {addr:#x} (block has {size} bytes of shared memory)"
                )),
            }
        }
        Space::Local => {
            let size = state.local_bytes;
            match usize::try_from(addr).ok().filter(|&a| a.checked_add(len).is_some_and(|end| end <= size)) {
                Some(a) => Ok(&mut state.local[lane * size + a..lane * size + a + len]),
                None => Err(format!(
                    "out-of-range local access of {len} bytes at offset {addr:#x} (thread has {size} bytes of local memory)"
                )),
            }
        }
        Space::Param => Err("param space is read-only".into()),
        _ => match env.global.find(addr, len) {
            Some((index, offset)) => Ok(env.global.bytes_mut(index, offset, len)),
            None => Err(env.global.describe_fault(addr, len)),
        },
    }
}

/// Reads a little-endian value of `bytes.len()` (1, 2, 4 or 8) bytes, sign-extended if `signed`.
#[inline(always)]
fn read_le(bytes: &[u8], signed: bool) -> u64 {
    match (bytes.len(), signed) {
        (1, false) => bytes[0] as u64,
        (1, true) => bytes[0] as i8 as i64 as u64,
        (2, false) => u16::from_le_bytes([bytes[0], bytes[1]]) as u64,
        (2, true) => i16::from_le_bytes([bytes[0], bytes[1]]) as i64 as u64,
        (4, false) => u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as u64,
        (4, true) => i32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as i64 as u64,
        _ => {
            let mut buf = [0u8; 8];
            buf[..bytes.len()].copy_from_slice(bytes);
            u64::from_le_bytes(buf)
        }
    }
}

#[inline(always)]
fn write_le(out: &mut [u8], value: u64) {
    match out.len() {
        1 => out[0] = value as u8,
        2 => out.copy_from_slice(&(value as u16).to_le_bytes()),
        4 => out.copy_from_slice(&(value as u32).to_le_bytes()),
        n => out.copy_from_slice(&value.to_le_bytes()[..n]),
    }
}

/// The memory of a warp request whose lanes all address global memory: the allocation of the
/// previous lane is tried first, so a coalesced request looks its allocation up once.
struct GlobalCursor {
    index: usize,
    base: u64,
    end: u64,
}

impl GlobalCursor {
    fn new() -> Self {
        GlobalCursor {
            index: 0,
            base: 1,
            end: 0,
        }
    }

    #[inline(always)]
    fn bytes<'g>(
        &mut self,
        global: &'g mut GlobalMemory,
        lane: usize,
        addr: u64,
        len: usize,
    ) -> Result<&'g mut [u8], Fault> {
        if addr < self.base || addr.saturating_add(len as u64) > self.end {
            let Some((index, _)) = global.find(addr, len) else {
                return Err(Fault {
                    lane,
                    msg: global.describe_fault(addr, len),
                });
            };
            let (base, data) = global.allocation(index);
            *self = GlobalCursor {
                index,
                base,
                end: base + data.len() as u64,
            };
        }
        let (_, data) = global.allocation(self.index);
        let off = (addr - self.base) as usize;
        Ok(&mut data[off..off + len])
    }
}

/// Whether a request in `space` goes to global memory for every lane (generic requests are
/// resolved per lane).
fn is_global(space: Space) -> bool {
    matches!(space, Space::Global | Space::Const)
}

pub(crate) fn addresses(regs: &[u64], addr: Addr) -> [u64; 32] {
    load(regs, addr.base).map(|b| b.wrapping_add(addr.offset as u64))
}

/// Calls the counter hook for a warp request.
fn record(env: &mut BlockEnv, space: Space, store: bool, mask: u32, addrs: &[u64; 32], bytes: u32) {
    let first = addrs[mask.trailing_zeros() as usize & 31];
    match concrete(space, first).0 {
        Space::Global | Space::Const => env.counters.global_request(store, mask, addrs, bytes),
        Space::Shared => env.counters.shared_request(store, mask, addrs, bytes),
        _ => {}
    }
}

/// Every access size (element size times vector width) is a power of two.
#[inline(always)]
pub(crate) fn check_aligned(lane: usize, addr: u64, total: usize) -> Result<(), Fault> {
    if addr & (total as u64 - 1) != 0 {
        return Err(Fault {
            lane,
            msg: format!("misaligned {total}-byte access at {addr:#x}"),
        });
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn exec_ld(
    env: &mut BlockEnv,
    state: &mut LaneState,
    mask: u32,
    space: Space,
    size: u8,
    count: u8,
    signed: bool,
    strong: bool,
    d: &[Option<Reg>; 4],
    addr: Addr,
) -> Result<(), Trap> {
    let (size, count) = (size as usize, count as usize);
    let total = size * count;
    let addrs = addresses(state.regs, addr);
    if space == Space::Param {
        let params = env.params;
        for lane in lanes(mask) {
            let a = addrs[lane];
            let range = usize::try_from(a)
                .ok()
                .filter(|&a| a + total <= params.len());
            let Some(a) = range else {
                return Err(Fault {
                    lane,
                    msg: format!(
                        "param read of {total} bytes at offset {a:#x} past the parameters"
                    ),
                }
                .into());
            };
            for (i, r) in d.iter().enumerate().take(count) {
                if let Some(r) = r {
                    state.regs[*r as usize * 32 + lane] =
                        read_le(&params[a + i * size..a + (i + 1) * size], signed);
                }
            }
        }
        return Ok(());
    }
    record(env, space, false, mask, &addrs, total as u32);
    if is_global(space) {
        let mut cursor = GlobalCursor::new();
        for lane in lanes(mask) {
            check_aligned(lane, addrs[lane], total)?;
            let b = cursor.bytes(env.global, lane, addrs[lane], total)?;
            for (i, r) in d.iter().enumerate().take(count) {
                if let Some(r) = r {
                    state.regs[*r as usize * 32 + lane] =
                        read_le(&b[i * size..(i + 1) * size], signed);
                }
            }
        }
        return Ok(());
    }
    for lane in lanes(mask) {
        check_aligned(lane, addrs[lane], total)?;
        let mut values = [0u64; 4];
        {
            let b = bytes(env, state, space, lane, addrs[lane], total)
                .map_err(|msg| Fault { lane, msg })?;
            for (i, v) in values.iter_mut().enumerate().take(count) {
                *v = read_le(&b[i * size..(i + 1) * size], signed);
            }
        }
        let touch = Touch {
            reads: true,
            writes: false,
            strong,
        };
        shared_access(env, state, space, lane, addrs[lane], total, touch)?;
        for (r, v) in d.iter().zip(values).take(count) {
            if let Some(r) = r {
                state.regs[*r as usize * 32 + lane] = v;
            }
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn exec_st(
    env: &mut BlockEnv,
    state: &mut LaneState,
    mask: u32,
    space: Space,
    size: u8,
    count: u8,
    strong: bool,
    v: &[Src; 4],
    addr: Addr,
) -> Result<(), Trap> {
    let (size, count) = (size as usize, count as usize);
    let total = size * count;
    let addrs = addresses(state.regs, addr);
    record(env, space, true, mask, &addrs, total as u32);
    let mut cursor = GlobalCursor::new();
    for lane in lanes(mask) {
        check_aligned(lane, addrs[lane], total)?;
        let mut values = [0u64; 4];
        for (slot, s) in values.iter_mut().zip(v).take(count) {
            *slot = lane_value(state.regs, *s, lane);
        }
        let values = &values[..count];
        if is_global(space) {
            write_values(
                cursor.bytes(env.global, lane, addrs[lane], total)?,
                size,
                values,
            );
        } else {
            let b = bytes(env, state, space, lane, addrs[lane], total)
                .map_err(|msg| Fault { lane, msg })?;
            write_values(b, size, values);
            let touch = Touch {
                reads: false,
                writes: true,
                strong,
            };
            shared_access(env, state, space, lane, addrs[lane], total, touch)?;
        }
    }
    Ok(())
}

fn write_values(out: &mut [u8], size: usize, values: &[u64]) {
    for (i, value) in values.iter().enumerate() {
        write_le(&mut out[i * size..(i + 1) * size], *value);
    }
}

/// The new memory value of an atomic given the old one and the operands.
fn atomic_update(op: AtomOp, ty: AtomTy, old: u64, b: u64, c: u64) -> u64 {
    let (bits, signed) = match ty {
        AtomTy::U32 | AtomTy::F32 => (32, false),
        AtomTy::S32 => (32, true),
        AtomTy::U64 | AtomTy::F64 => (64, false),
        AtomTy::S64 => (64, true),
    };
    let mask = if bits == 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    let (old, b, c) = (old & mask, b & mask, c & mask);
    let as_signed = |x: u64| {
        if bits == 32 {
            x as u32 as i32 as i64
        } else {
            x as i64
        }
    };
    let less = |x: u64, y: u64| {
        if signed {
            as_signed(x) < as_signed(y)
        } else {
            x < y
        }
    };
    match (op, ty) {
        (AtomOp::Add, AtomTy::F32) => {
            // atom.add.f32 flushes subnormal inputs and results.
            let r = ftz32(ftz32(f32::from_bits(old as u32)) + ftz32(f32::from_bits(b as u32)));
            r.to_bits() as u64
        }
        (AtomOp::Add, AtomTy::F64) => (f64::from_bits(old) + f64::from_bits(b)).to_bits(),
        (AtomOp::Add, _) => old.wrapping_add(b) & mask,
        (AtomOp::Min, _) => {
            if less(b, old) {
                b
            } else {
                old
            }
        }
        (AtomOp::Max, _) => {
            if less(old, b) {
                b
            } else {
                old
            }
        }
        (AtomOp::Inc, _) => {
            if old >= b {
                0
            } else {
                old + 1
            }
        }
        (AtomOp::Dec, _) => {
            if old == 0 || old > b {
                b
            } else {
                old - 1
            }
        }
        (AtomOp::And, _) => old & b,
        (AtomOp::Or, _) => old | b,
        (AtomOp::Xor, _) => old ^ b,
        (AtomOp::Exch, _) => b,
        (AtomOp::Cas, _) => {
            if old == b {
                c
            } else {
                old
            }
        }
    }
}

/// Atomics run lane by lane in ascending lane order, so contended results are deterministic.
#[allow(clippy::too_many_arguments)]
pub(crate) fn exec_atom(
    env: &mut BlockEnv,
    state: &mut LaneState,
    mask: u32,
    space: Space,
    op: AtomOp,
    ty: AtomTy,
    d: Option<Reg>,
    addr: Addr,
    b: Src,
    c: Src,
) -> Result<(), Trap> {
    let size = match ty {
        AtomTy::U32 | AtomTy::S32 | AtomTy::F32 => 4,
        _ => 8,
    };
    let addrs = addresses(state.regs, addr);
    env.counters.atomic_requests += 1;
    for lane in lanes(mask) {
        check_aligned(lane, addrs[lane], size)?;
        let (bv, cv) = (
            lane_value(state.regs, b, lane),
            lane_value(state.regs, c, lane),
        );
        let mem =
            bytes(env, state, space, lane, addrs[lane], size).map_err(|msg| Fault { lane, msg })?;
        let old = read_le(mem, false);
        let new = atomic_update(op, ty, old, bv, cv);
        mem.copy_from_slice(&new.to_le_bytes()[..size]);
        if let Some(r) = d {
            state.regs[r as usize * 32 + lane] = old;
        }
        let touch = Touch {
            reads: true,
            writes: true,
            strong: true,
        };
        shared_access(env, state, space, lane, addrs[lane], size, touch)?;
    }
    Ok(())
}
