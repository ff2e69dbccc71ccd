//! The shadow of a block's shared memory: per byte, which threads wrote and read it in the
//! current barrier interval, and whether any thread wrote it since the block started.
//!
//! Intervals are numbered (epochs) instead of clearing the shadow at every barrier: a byte's
//! writers are current when its `write_epoch` is the current epoch, and the byte has been
//! written in this block when `write_epoch >= block_start`. A block start and every completed
//! barrier begin a new epoch.

use super::FindingKind;

/// No thread (an empty slot).
const NOBODY: u16 = u16::MAX;
/// Set in [`Access::thread`] for a strong access (atomic, volatile, relaxed, acquire/release).
const STRONG: u16 = 0x8000;
const THREAD_BITS: u16 = !STRONG;

/// One access remembered for a byte.
#[derive(Debug, Clone, Copy)]
struct Access {
    pc: u32,
    /// Linear thread index in the block (at most 1023), with [`STRONG`]; [`NOBODY`] if empty.
    thread: u16,
    /// The `bar.warp.sync` count of the thread's warp at the access.
    sync: u16,
}

const EMPTY: Access = Access {
    pc: 0,
    thread: NOBODY,
    sync: 0,
};

impl Access {
    fn index(self) -> u16 {
        self.thread & THREAD_BITS
    }

    fn is_strong(self) -> bool {
        self.thread & STRONG != 0
    }
}

#[derive(Debug, Clone, Copy)]
struct ByteState {
    /// Epoch of the latest write; 0 when never written.
    write_epoch: u32,
    read_epoch: u32,
    /// The latest writer, then the latest writer that is another thread.
    writers: [Access; 2],
    /// The same for plain and strong loads (atomics count as writes).
    readers: [Access; 2],
}

const UNTOUCHED: ByteState = ByteState {
    write_epoch: 0,
    read_epoch: 0,
    writers: [EMPTY; 2],
    readers: [EMPTY; 2],
};

/// An access to check: thread, instruction, and what it does to memory.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SharedAccess {
    /// Linear thread index in the block.
    pub thread: u32,
    pub pc: u32,
    pub reads: bool,
    pub writes: bool,
    pub strong: bool,
}

/// What an access ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hazard {
    pub kind: FindingKind,
    /// Shared-memory offset of the first byte concerned.
    pub offset: usize,
    /// The conflicting earlier access (linear thread index, PC), for races.
    pub other: Option<(u32, u32)>,
    /// Whether the earlier access wrote (races only).
    pub other_wrote: bool,
}

pub(crate) struct SharedShadow {
    bytes: Vec<ByteState>,
    epoch: u32,
    block_start: u32,
    /// Per warp, the `bar.warp.sync` instructions executed in this interval.
    warp_syncs: Vec<u16>,
}

impl SharedShadow {
    pub fn new(shared_bytes: usize, warps: usize) -> Self {
        SharedShadow {
            bytes: vec![UNTOUCHED; shared_bytes],
            epoch: 0,
            block_start: 0,
            warp_syncs: vec![0; warps],
        }
    }

    /// A new block: nothing written, no accesses.
    pub fn start_block(&mut self) {
        self.advance();
        self.block_start = self.epoch;
    }

    /// A barrier completed: accesses before it are ordered before those after it.
    pub fn barrier(&mut self) {
        self.advance();
    }

    /// Warp `warp` executed `bar.warp.sync`.
    pub fn warp_sync(&mut self, warp: u32) {
        let count = &mut self.warp_syncs[warp as usize];
        *count = count.wrapping_add(1);
    }

    fn advance(&mut self) {
        if self.epoch == u32::MAX {
            self.renumber();
        }
        self.epoch += 1;
        self.warp_syncs.fill(0);
    }

    /// Restarts the epoch numbering, keeping which bytes the current block has written.
    fn renumber(&mut self) {
        let block_start = self.block_start.max(1);
        for b in &mut self.bytes {
            let written = b.write_epoch >= block_start;
            *b = UNTOUCHED;
            b.write_epoch = written as u32;
        }
        self.block_start = 1;
        self.epoch = 1;
    }

    /// Checks and records an access to `[offset, offset + len)`, which the caller has checked
    /// to lie inside shared memory; returns the first hazard among its bytes.
    pub fn access(&mut self, a: &SharedAccess, offset: usize, len: usize) -> Option<Hazard> {
        let warp = a.thread as usize / 32;
        let me = Access {
            pc: a.pc,
            thread: a.thread as u16 | if a.strong { STRONG } else { 0 },
            sync: self.warp_syncs[warp],
        };
        let conflicts = |other: Access| {
            other.thread != NOBODY
                && other.index() != me.index()
                && !(other.is_strong() && a.strong)
                && !(other.index() as usize / 32 == warp && other.sync != me.sync)
        };
        let (epoch, block_start) = (self.epoch, self.block_start);
        let mut hazard = None;
        for (i, b) in self.bytes[offset..offset + len].iter_mut().enumerate() {
            if hazard.is_none() {
                let race = |other: Access, other_wrote: bool| Hazard {
                    kind: FindingKind::SharedRace,
                    offset: offset + i,
                    other: Some((other.index() as u32, other.pc)),
                    other_wrote,
                };
                if a.reads && b.write_epoch < block_start {
                    hazard = Some(Hazard {
                        kind: FindingKind::UninitializedSharedRead,
                        offset: offset + i,
                        other: None,
                        other_wrote: false,
                    });
                } else if let Some(w) = b
                    .writers
                    .iter()
                    .find(|w| b.write_epoch == epoch && conflicts(**w))
                {
                    hazard = Some(race(*w, true));
                } else if let Some(r) = b
                    .readers
                    .iter()
                    .find(|r| a.writes && b.read_epoch == epoch && conflicts(**r))
                {
                    hazard = Some(race(*r, false));
                }
            }
            if a.writes {
                if b.write_epoch != epoch {
                    b.write_epoch = epoch;
                    b.writers = [EMPTY; 2];
                }
                remember(&mut b.writers, me);
            } else if a.reads {
                if b.read_epoch != epoch {
                    b.read_epoch = epoch;
                    b.readers = [EMPTY; 2];
                }
                remember(&mut b.readers, me);
            }
        }
        hazard
    }
}

/// Puts `me` first in `slots`, keeping the latest access of one other thread second. A thread's
/// repeated accesses merge into one entry, which stays plain if any of them (since the last
/// `bar.warp.sync`) was plain, so it keeps conflicting with other threads' strong accesses.
fn remember(slots: &mut [Access; 2], me: Access) {
    if slots[1].thread != NOBODY && slots[1].index() == me.index() {
        slots.swap(0, 1);
    }
    let first = &mut slots[0];
    if first.thread != NOBODY && first.index() == me.index() {
        if first.sync == me.sync && !first.is_strong() && me.thread & STRONG != 0 {
            return;
        }
        *first = me;
    } else {
        slots[1] = slots[0];
        slots[0] = me;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(thread: u32, reads: bool, writes: bool, strong: bool) -> SharedAccess {
        SharedAccess {
            thread,
            pc: 100 + thread,
            reads,
            writes,
            strong,
        }
    }

    fn kind(h: Option<Hazard>) -> Option<FindingKind> {
        h.map(|h| h.kind)
    }

    #[test]
    fn conflicts_within_an_interval_only() {
        let mut s = SharedShadow::new(16, 2);
        s.start_block();
        assert_eq!(
            kind(s.access(&access(0, true, false, false), 0, 4)),
            Some(FindingKind::UninitializedSharedRead)
        );
        assert_eq!(s.access(&access(0, false, true, false), 0, 4), None);
        // A read of the same bytes by another thread (other warp) before a barrier races.
        let h = s.access(&access(40, true, false, false), 2, 2).unwrap();
        assert_eq!(h.kind, FindingKind::SharedRace);
        assert_eq!(
            (h.offset, h.other, h.other_wrote),
            (2, Some((0, 100)), true)
        );
        s.barrier();
        assert_eq!(s.access(&access(40, true, false, false), 0, 4), None);
        assert_eq!(s.access(&access(41, true, false, false), 0, 4), None);
        // A write after two readers conflicts with the one that is not the writer.
        let h = s.access(&access(40, false, true, false), 0, 1).unwrap();
        assert_eq!((h.other, h.other_wrote), (Some((41, 141)), false));
        // A new block forgets everything written.
        s.start_block();
        assert_eq!(
            kind(s.access(&access(3, true, false, false), 1, 1)),
            Some(FindingKind::UninitializedSharedRead)
        );
    }

    #[test]
    fn strong_accesses_and_warp_syncs() {
        let mut s = SharedShadow::new(8, 2);
        s.start_block();
        assert_eq!(s.access(&access(0, false, true, false), 0, 4), None);
        s.barrier();
        // Atomics by many threads do not race with each other, but a plain read does.
        for t in [1, 2, 33] {
            assert_eq!(s.access(&access(t, true, true, true), 0, 4), None);
        }
        assert_eq!(s.access(&access(3, true, false, true), 0, 4), None);
        assert_eq!(
            kind(s.access(&access(1, true, false, false), 0, 4)),
            Some(FindingKind::SharedRace)
        );
        // Within a warp, `bar.warp.sync` orders a write before another lane's read.
        s.barrier();
        assert_eq!(s.access(&access(5, false, true, false), 4, 4), None);
        assert_eq!(
            kind(s.access(&access(6, true, false, false), 4, 4)),
            Some(FindingKind::SharedRace)
        );
        s.warp_sync(0);
        assert_eq!(s.access(&access(7, true, false, false), 4, 4), None);
        // ... but not another warp's.
        assert_eq!(
            kind(s.access(&access(40, true, false, false), 4, 4)),
            Some(FindingKind::SharedRace)
        );
    }

    #[test]
    fn renumbering_keeps_what_the_block_wrote() {
        let mut s = SharedShadow::new(4, 1);
        s.start_block();
        s.epoch = u32::MAX - 1;
        s.block_start = u32::MAX - 1;
        assert_eq!(s.access(&access(0, false, true, false), 0, 2), None);
        s.barrier();
        s.barrier();
        assert_eq!(s.epoch, 2);
        assert_eq!(s.access(&access(1, true, false, false), 0, 2), None);
        assert_eq!(
            kind(s.access(&access(1, true, false, false), 2, 2)),
            Some(FindingKind::UninitializedSharedRead)
        );
    }
}
