//! `cp.async` (global → shared copies that complete later), `cp.async.commit_group` and
//! `cp.async.wait_group N` / `cp.async.wait_all`.
//!
//! Functional model: at issue, each lane's source bytes are read (bounds- and alignment-checked,
//! counted as a global load request; with a `src-size` operand only that many bytes are read and
//! the rest of the destination is zero-filled) and the copy is queued in the warp, with the
//! destination checked. `commit_group` closes the queued copies into a group. A copy lands in
//! shared memory only when a `wait_group N` leaves at most `N` younger groups pending (or at
//! `wait_all`): then its bytes are written and passed to the sanitizer as a write by the issuing
//! thread at the `cp.async` line. So a thread that reads its destination before waiting sees the
//! old bytes, and the sanitizer reports it: an uninitialised shared read when nothing was there
//! before, a shared-memory race when another thread's read and the landing fall in one barrier
//! interval. Copies still queued when their thread exits never land (a kernel that reads them is
//! wrong on a GPU anyway). Groups are kept per warp, not per thread: a warp's lanes are expected
//! to commit and wait together (a wait by some lanes lands the whole warp's older groups).

use super::lanes::{lane_value, lanes};
use super::memory::{addresses, bytes, check_aligned, LaneState};
use super::sanitize::{shared_access, Touch};
use super::{BlockEnv, Fault, Trap};
use crate::emu::program::{Addr, Src};
use crate::emu::types::Space;

/// One lane's copy, waiting to land.
#[derive(Debug, Clone)]
pub(crate) struct AsyncCopy {
    lane: u8,
    len: u8,
    pc: u32,
    dst: u64,
    data: [u8; 16],
}

/// A warp's copies: those not yet committed, and the committed groups, oldest first.
#[derive(Debug, Default)]
pub(crate) struct AsyncCopies {
    open: Vec<AsyncCopy>,
    groups: std::collections::VecDeque<Vec<AsyncCopy>>,
}

impl AsyncCopies {
    pub fn clear(&mut self) {
        self.open.clear();
        self.groups.clear();
    }

    pub fn commit(&mut self) {
        let group = std::mem::take(&mut self.open);
        self.groups.push_back(group);
    }

    /// Lands the oldest groups until at most `keep` remain pending.
    pub fn wait(&mut self, env: &mut BlockEnv, state: &mut LaneState, keep: usize) -> Result<(), Trap> {
        let issuing_pc = state.pc;
        while self.groups.len() > keep {
            let group = self.groups.pop_front().unwrap_or_default();
            for c in group {
                let lane = c.lane as usize;
                let len = c.len as usize;
                let out = bytes(env, state, Space::Shared, lane, c.dst, len)
                    .map_err(|msg| Fault { lane, msg })?;
                out.copy_from_slice(&c.data[..len]);
                state.pc = c.pc;
                let touch = Touch { reads: false, writes: true, strong: false };
                let landed = shared_access(env, state, Space::Shared, lane, c.dst, len, touch);
                state.pc = issuing_pc;
                landed?;
            }
        }
        Ok(())
    }

    /// Queues one `cp.async` of `size` bytes per lane of `exec`.
    #[allow(clippy::too_many_arguments)]
    pub fn issue(
        &mut self,
        env: &mut BlockEnv,
        state: &mut LaneState,
        exec: u32,
        size: u8,
        src_size: Option<Src>,
        dst: Addr,
        src: Addr,
    ) -> Result<(), Trap> {
        let size = size as usize;
        let (dsts, srcs) = (addresses(state.regs, dst), addresses(state.regs, src));
        env.counters.global_request(false, exec, &srcs, size as u32);
        env.counters.shared_request(true, exec, &dsts, size as u32);
        for lane in lanes(exec) {
            check_aligned(lane, srcs[lane], size)?;
            check_aligned(lane, dsts[lane], size)?;
            let n = match src_size {
                Some(s) => lane_value(state.regs, s, lane) as u32 as usize,
                None => size,
            };
            if n > size {
                let msg = format!("cp.async src-size {n} exceeds the copy size {size}");
                return Err(Fault { lane, msg }.into());
            }
            let mut data = [0u8; 16];
            if n > 0 {
                let from = bytes(env, state, Space::Global, lane, srcs[lane], n)
                    .map_err(|msg| Fault { lane, msg })?;
                data[..n].copy_from_slice(from);
            }
            bytes(env, state, Space::Shared, lane, dsts[lane], size).map_err(|msg| Fault { lane, msg })?;
            self.open.push(AsyncCopy { lane: lane as u8, len: size as u8, pc: state.pc, dst: dsts[lane], data });
        }
        Ok(())
    }
}
