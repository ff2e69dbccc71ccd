//! The sanitizer: detectors for bugs that run without faulting on a GPU but give wrong or
//! timing-dependent results. Out-of-bounds global accesses (per allocation) and out-of-range
//! shared accesses are faults whether the sanitizer is on or not; with it on
//! ([`SanitizerMode::FailFast`], the default of [`Device::new`](super::Device::new)) a launch also
//! checks:
//!
//! - **Shared-memory races.** Two accesses to the same shared byte by different threads of a block
//!   in one barrier interval (no `bar.sync` completed between them), at least one a write, are a
//!   race unless both are *strong* in PTX's memory model: atomics (`atom`, `red`) and `.volatile`,
//!   `.relaxed`, `.acquire`, `.release` loads and stores. Lanes of one warp are different
//!   threads: executing in lock-step orders nothing (CUDA's memory model leaves warp-synchronous
//!   code without `__syncwarp` undefined), so lane 0 writing a word that lane 1 reads in the next
//!   instruction is a race, and so are two lanes of one store writing the same byte. A
//!   `bar.warp.sync` (`__syncwarp`) orders the accesses of its warp made before it with those
//!   made after it, whatever its membermask (a simplification: partial masks are not checked).
//!   `shfl.sync` and `vote.sync` exchange registers and order no memory, and neither do fences:
//!   plain data handed over through `membar` and a volatile flag is reported (the project's
//!   kernels synchronise through barriers only). Per byte, the detector
//!   keeps the latest two distinct writers and the latest two distinct readers of the interval,
//!   so a conflict is found whenever one exists among them; a third earlier thread hidden behind
//!   two later ones ordered by `__syncwarp` can be missed.
//! - **Barrier divergence.** When a barrier completes, every thread that waited must have
//!   waited at the same `bar.sync` instruction, and no thread may have exited during the
//!   interval without reaching it. PTX releases a barrier once the non-exited threads arrive, so
//!   the emulator (like the hardware) runs on, but CUDA requires `__syncthreads` to be reached by
//!   every thread of the block, and the project's kernels are written to that rule. A kernel
//!   that lets threads `return` before a barrier the others reach is reported; run it with the
//!   sanitizer off if that is intended.
//! - **Uninitialised shared reads.** A load or atomic reading a shared byte (static or dynamic)
//!   that no thread of the block has written since the block started.
//!
//! Every finding names the kernel, the PTX line and text of the access (and the CUDA line with
//! `-lineinfo`), the block and thread, and for races and divergence the other thread and its
//! PTX line. With [`SanitizerMode::FailFast`] the launch fails with the first finding as
//! [`EmuError::Sanitizer`]; with [`SanitizerMode::Collect`] it runs to the end and returns the
//! findings in [`LaunchReport::findings`](super::LaunchReport::findings) (one per kind and PTX
//! line, at most [`MAX_FINDINGS`]), which [`LaunchReport::check`](super::LaunchReport::check)
//! turns into that same error.
//!
//! Cost: the detectors look only at shared-memory accesses, barriers and exits; global memory
//! and arithmetic run as with the sanitizer off. Shared memory carries a 40-byte shadow per byte.

mod shadow;

use std::collections::HashSet;
use std::fmt;

use super::error::{EmuError, ThreadPos};
pub(crate) use shadow::{Hazard, SharedAccess, SharedShadow};

/// Whether launches run the sanitizer, and what a finding does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SanitizerMode {
    /// No checks beyond the faults (out-of-bounds, misaligned, out-of-range shared accesses).
    Off,
    /// The launch fails with the first finding ([`EmuError::Sanitizer`]).
    #[default]
    FailFast,
    /// The launch runs to the end and returns its findings in the report.
    Collect,
}

/// Most findings one launch collects in [`SanitizerMode::Collect`].
pub const MAX_FINDINGS: usize = 100;

/// What a sanitizer finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FindingKind {
    /// Conflicting accesses to one shared byte by two threads within one barrier interval.
    SharedRace,
    /// A `bar.sync` not reached by every thread of the block (or threads at different ones).
    BarrierDivergence,
    /// A read of shared memory that no thread of the block has written.
    UninitializedSharedRead,
}

impl fmt::Display for FindingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FindingKind::SharedRace => "shared-memory race",
            FindingKind::BarrierDivergence => "barrier divergence",
            FindingKind::UninitializedSharedRead => "uninitialised shared-memory read",
        })
    }
}

/// The second thread of a finding: the earlier access of a race, or a thread that did not
/// arrive at the barrier (where it exited, or the barrier it waits at).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtherThread {
    pub thread: [u32; 3],
    /// 1-based PTX line of its instruction, and the text.
    pub line: u32,
    pub text: String,
}

/// One sanitizer finding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "sanitizer: {kind} in kernel `{kernel}`, PTX line {line}{}, block {:?}, thread {:?}: {msg}: `{text}`",
    cuda_line.as_ref().map(|s| format!(" ({s})")).unwrap_or_default(),
    pos.block,
    pos.thread
)]
pub struct Finding {
    pub kind: FindingKind,
    pub kernel: String,
    /// 1-based PTX line of the instruction that completed the finding, and its text.
    pub line: u32,
    pub text: String,
    /// The CUDA source line when the PTX was compiled with `-lineinfo`.
    pub cuda_line: Option<String>,
    pub pos: ThreadPos,
    pub other: Option<OtherThread>,
    /// What happened, naming the shared offset and the other thread where there is one.
    pub msg: String,
}

/// A launch's sanitizer state: the shared-memory shadow and the findings so far.
pub(crate) struct Sanitizer {
    pub mode: SanitizerMode,
    pub shadow: SharedShadow,
    pub findings: Vec<Finding>,
    /// (kind, PTX line) pairs already reported, so a loop reports once.
    seen: HashSet<(FindingKind, u32)>,
}

impl Sanitizer {
    pub fn new(mode: SanitizerMode, shared_bytes: usize, warps: usize) -> Self {
        Sanitizer {
            mode,
            shadow: SharedShadow::new(shared_bytes, warps),
            findings: Vec::new(),
            seen: HashSet::new(),
        }
    }

    /// Records `finding`; in fail-fast mode returns it as the launch's error instead.
    pub fn report(&mut self, finding: Finding) -> Result<(), Box<Finding>> {
        if self.mode == SanitizerMode::FailFast {
            return Err(Box::new(finding));
        }
        if self.findings.len() < MAX_FINDINGS && self.seen.insert((finding.kind, finding.line)) {
            self.findings.push(finding);
        }
        Ok(())
    }
}

/// The first of `findings` as an error.
pub(crate) fn first_as_error(findings: &[Finding]) -> Result<(), EmuError> {
    match findings.first() {
        Some(f) => Err(EmuError::Sanitizer(Box::new(f.clone()))),
        None => Ok(()),
    }
}
