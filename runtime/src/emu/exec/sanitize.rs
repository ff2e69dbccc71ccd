//! The sanitizer's hooks in execution: each lane's shared-memory access, and each completed
//! barrier (see [`crate::emu::sanitizer`] for the rules).

use super::lanes::lanes;
use super::memory::{concrete, LaneState};
use super::{BlockEnv, Trap, Warp};
use crate::emu::sanitizer::{Finding, FindingKind, Hazard, SharedAccess};
use crate::emu::types::Space;

/// What a memory instruction does to the bytes it touches.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Touch {
    pub reads: bool,
    pub writes: bool,
    /// Atomic, or a `.volatile`/`.relaxed`/`.acquire`/`.release` load or store.
    pub strong: bool,
}

impl Touch {
    fn verb(self) -> &'static str {
        match (self.reads, self.writes) {
            (true, true) => "atomic",
            (false, true) => "write",
            _ => "read",
        }
    }
}

/// Checks one lane's access of `len` bytes at `addr` of `space`, when the sanitizer is on and
/// the address is in shared memory. The access has already been bounds-checked.
#[inline]
pub(crate) fn shared_access(
    env: &mut BlockEnv,
    state: &LaneState,
    space: Space,
    lane: usize,
    addr: u64,
    len: usize,
    touch: Touch,
) -> Result<(), Trap> {
    let Some(san) = env.sanitizer.as_deref_mut() else {
        return Ok(());
    };
    let (space, offset) = concrete(space, addr);
    if space != Space::Shared {
        return Ok(());
    }
    let access = SharedAccess {
        thread: state.warp * 32 + lane as u32,
        pc: state.pc,
        reads: touch.reads,
        writes: touch.writes,
        strong: touch.strong,
    };
    let Some(hazard) = san.shadow.access(&access, offset as usize, len) else {
        return Ok(());
    };
    let finding = describe(env, &access, hazard, touch, offset, len);
    env.report(finding).map_err(Trap::Finding)
}

fn describe(
    env: &BlockEnv,
    access: &SharedAccess,
    hazard: Hazard,
    touch: Touch,
    offset: u64,
    len: usize,
) -> Finding {
    let mut f = env.finding(
        hazard.kind,
        access.thread,
        access.pc,
        hazard.other,
        String::new(),
    );
    let range = format!("{len}-byte {} at shared offset {offset:#x}", touch.verb());
    let same_warp = hazard
        .other
        .is_some_and(|(t, _)| t / 32 == access.thread / 32);
    let sync = if same_warp {
        "bar.sync or bar.warp.sync"
    } else {
        "bar.sync"
    };
    f.msg =
        match &f.other {
            Some(other) => format!(
            "{range}: byte {:#x} was {} by thread {:?} at PTX line {} (`{}`) with no {sync} in \
             between",
            hazard.offset,
            if hazard.other_wrote { "written" } else { "read" },
            other.thread,
            other.line,
            other.text
        ),
            None => format!(
                "{range}: byte {:#x} has not been written by any thread of the block",
                hazard.offset
            ),
        };
    f
}

/// When a barrier completes: every thread that waited must have waited at the same `bar.sync`,
/// and no thread may have exited since the previous barrier. Starts the next interval.
pub(crate) fn barrier(env: &mut BlockEnv, warps: &[Warp]) -> Result<(), Box<Finding>> {
    if env.sanitizer.is_none() {
        return Ok(());
    }
    let finding = divergence(env, warps);
    if let Some(s) = env.sanitizer.as_deref_mut() {
        s.shadow.barrier();
    }
    match finding {
        Some(f) => env.report(f),
        None => Ok(()),
    }
}

fn divergence(env: &BlockEnv, warps: &[Warp]) -> Option<Finding> {
    // (thread, pc) of the first waiting thread, and of the first thread that disagrees with it.
    let mut reference: Option<(u32, u32)> = None;
    let mut odd: Option<(u32, u32, bool)> = None;
    let (mut arrived, mut exited) = (0u32, 0u32);
    for w in warps {
        for lane in lanes(w.waiting | w.exited) {
            let t = w.index * 32 + lane as u32;
            if w.waiting >> lane & 1 != 0 {
                arrived += 1;
                let pc = w.bar_pc[lane];
                match reference {
                    None => reference = Some((t, pc)),
                    Some((_, first)) if first != pc && odd.is_none() => odd = Some((t, pc, false)),
                    _ => {}
                }
            } else {
                exited += 1;
                odd = odd.or(Some((t, w.exit_pc[lane], true)));
            }
        }
    }
    let ((thread, pc), (other, other_pc, other_exited)) = (reference?, odd?);
    let mut f = env.finding(
        FindingKind::BarrierDivergence,
        thread,
        pc,
        Some((other, other_pc)),
        String::new(),
    );
    let o = f.other.as_ref()?;
    f.msg = if other_exited {
        format!(
            "{arrived} threads wait at this barrier while {exited} exited since the previous one \
             without reaching it, e.g. thread {:?} at PTX line {} (`{}`); every thread of the \
             block must reach each __syncthreads",
            o.thread, o.line, o.text
        )
    } else {
        format!(
            "threads wait at different barriers: thread {:?} waits at PTX line {} (`{}`)",
            o.thread, o.line, o.text
        )
    };
    Some(f)
}
