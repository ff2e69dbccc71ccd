//! Warp execution. A warp runs one decoded instruction at a time for a mask of lanes.
//!
//! Divergence uses per-lane program counters with *minimum-PC* scheduling: while lanes disagree,
//! the lanes at the smallest PC run together; everyone else waits. NVRTC lays code out so that a
//! branch's join point follows both sides, so the lanes that went ahead wait there until the
//! others catch up, and they reconverge as soon as all live lanes share one PC. While converged
//! (the common case) a warp keeps a single PC and skips the per-lane bookkeeping.

pub(crate) mod async_copy;
mod compare;
pub(crate) mod cvt;
mod dispatch;
pub(crate) mod float;
pub(crate) mod int;
pub(crate) mod lanes;
pub(crate) mod memory;
mod sanitize;
pub(crate) mod tensor;
pub(crate) mod warp_ops;

use super::counters::Counters;
use super::error::{EmuError, KernelFault, ThreadPos};
use super::memory::GlobalMemory;
use super::parser::line_text;
use super::program::*;
use super::sanitizer::{Finding, FindingKind, OtherThread, Sanitizer};
use lanes::{lanes, lanes_where, pred_mask};
pub(crate) use sanitize::barrier as sanitize_barrier;

/// A fault in one lane, turned into [`EmuError::Runtime`] with the instruction's line.
#[derive(Debug)]
pub(crate) struct Fault {
    pub lane: usize,
    pub msg: String,
}

/// Why an instruction stopped the launch: a fault, or a sanitizer finding in fail-fast mode.
#[derive(Debug)]
pub(crate) enum Trap {
    Fault(Fault),
    Finding(Box<Finding>),
}

impl From<Fault> for Trap {
    fn from(f: Fault) -> Self {
        Trap::Fault(f)
    }
}

/// Why a warp stopped running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    Exited,
    /// All live lanes wait at a barrier.
    Barrier,
}

/// What a block's warps share.
pub(crate) struct BlockEnv<'a> {
    pub kernel: &'a Kernel,
    pub src: &'a str,
    pub params: &'a [u8],
    pub global: &'a mut GlobalMemory,
    pub shared: &'a mut [u8],
    pub counters: &'a mut Counters,
    pub block: [u32; 3],
    pub block_dim: [u32; 3],
    /// Most instructions one warp may run between barriers before the launch is declared hung.
    pub instruction_limit: u64,
    /// The sanitizer's state when it is on.
    pub sanitizer: Option<&'a mut Sanitizer>,
}

impl BlockEnv<'_> {
    pub fn thread_of(&self, warp: u32, lane: usize) -> [u32; 3] {
        let t = warp * 32 + lane as u32;
        let [bx, by, _] = self.block_dim;
        [t % bx, (t / bx) % by, t / (bx * by)]
    }

    /// The thread with linear index `t` in the block.
    fn thread_at(&self, t: u32) -> [u32; 3] {
        self.thread_of(t / 32, (t % 32) as usize)
    }

    /// The PTX line and text of the instruction at `pc` (the last one for the implicit `ret`
    /// past the end of the code).
    fn line_at(&self, pc: u32) -> (u32, String) {
        let pc = (pc as usize).min(self.kernel.code.len().saturating_sub(1));
        let line = self.kernel.code.get(pc).map_or(0, |i| i.line);
        (line, line_text(self.src, line))
    }

    /// A sanitizer finding at instruction `pc` of thread `thread` (linear index in the block).
    pub fn finding(
        &self,
        kind: FindingKind,
        thread: u32,
        pc: u32,
        other: Option<(u32, u32)>,
        msg: String,
    ) -> Finding {
        let (line, text) = self.line_at(pc);
        let cuda_line = self.kernel.source_lines.get(pc as usize).cloned().flatten();
        Finding {
            kind,
            kernel: self.kernel.name.clone(),
            line,
            text,
            cuda_line,
            pos: ThreadPos {
                block: self.block,
                thread: self.thread_at(thread),
            },
            other: other.map(|(t, pc)| {
                let (line, text) = self.line_at(pc);
                OtherThread {
                    thread: self.thread_at(t),
                    line,
                    text,
                }
            }),
            msg,
        }
    }

    /// Hands a finding to the sanitizer: an error in fail-fast mode, else recorded.
    pub fn report(&mut self, finding: Finding) -> Result<(), Box<Finding>> {
        match self.sanitizer.as_deref_mut() {
            Some(s) => s.report(finding),
            None => Ok(()),
        }
    }

    fn trap_error(&self, warp: u32, pc: u32, trap: Trap) -> EmuError {
        match trap {
            Trap::Fault(f) => self.error(warp, pc, f),
            Trap::Finding(f) => EmuError::Sanitizer(f),
        }
    }

    fn error(&self, warp: u32, pc: u32, fault: Fault) -> EmuError {
        let line = self.kernel.code[pc as usize].line;
        EmuError::Runtime(Box::new(KernelFault {
            kernel: self.kernel.name.clone(),
            line,
            text: line_text(self.src, line),
            cuda_line: self.kernel.source_lines[pc as usize].clone(),
            pos: ThreadPos {
                block: self.block,
                thread: self.thread_of(warp, fault.lane),
            },
            msg: fault.msg,
        }))
    }
}

/// The launch-wide values of the special registers.
pub(crate) struct Geometry {
    pub grid: [u32; 3],
    pub block: [u32; 3],
    pub dynamic_shared: u32,
    pub total_shared: u32,
}

pub(crate) struct Warp {
    pub index: u32,
    pub(super) regs: Vec<u64>,
    pub(super) preds: Vec<u32>,
    pub(super) local: Vec<u8>,
    pub(super) local_bytes: usize,
    pc: [u32; 32],
    upc: u32,
    diverged: bool,
    pub live: u32,
    pub waiting: u32,
    /// Per lane, the `bar.sync` it waits at (valid for the lanes of `waiting`).
    pub bar_pc: [u32; 32],
    /// Lanes that exited since the last barrier completed, and where.
    pub exited: u32,
    pub exit_pc: [u32; 32],
    /// `cp.async` copies issued and not yet landed.
    pub(super) copies: async_copy::AsyncCopies,
}

impl Warp {
    /// Register files and local memory for a warp of `kernel`; [`Warp::start`] readies it for a
    /// block, so one set of buffers serves every block of a launch.
    pub fn new(kernel: &Kernel) -> Warp {
        let local_bytes = kernel.local_bytes as usize;
        Warp {
            index: 0,
            regs: vec![0; kernel.num_regs as usize * 32],
            preds: vec![0; kernel.num_preds as usize],
            local: vec![0; local_bytes * 32],
            local_bytes,
            pc: [0; 32],
            upc: 0,
            diverged: false,
            live: 0,
            waiting: 0,
            bar_pc: [0; 32],
            exited: 0,
            exit_pc: [0; 32],
            copies: async_copy::AsyncCopies::default(),
        }
    }

    /// Resets the warp to the start of the kernel as warp `index` of block `block_idx`, with
    /// lanes `live` present. Registers and local memory start zeroed, so runs are reproducible.
    pub fn start(&mut self, index: u32, live: u32, block_idx: [u32; 3], geo: &Geometry) {
        self.regs.fill(0);
        self.preds.fill(0);
        self.local.fill(0);
        self.index = index;
        self.upc = 0;
        self.diverged = false;
        self.live = live;
        self.waiting = 0;
        self.exited = 0;
        self.copies.clear();
        let regs = &mut self.regs;
        let warps_per_block = (geo.block.iter().product::<u32>()).div_ceil(32);
        for lane in 0..32u32 {
            let t = index * 32 + lane;
            let [bx, by, _] = geo.block;
            let values: [u32; SPECIAL_COUNT as usize] = [
                t % bx,
                (t / bx) % by,
                t / (bx * by),
                geo.block[0],
                geo.block[1],
                geo.block[2],
                block_idx[0],
                block_idx[1],
                block_idx[2],
                geo.grid[0],
                geo.grid[1],
                geo.grid[2],
                lane,
                index,
                warps_per_block,
                1 << lane,
                ((1u64 << (lane + 1)) - 1) as u32,
                (1u32 << lane) - 1,
                !((1u32 << lane) - 1),
                ((!((1u64 << (lane + 1)) - 1)) & 0xffff_ffff) as u32,
                0,
                1,
                0,
                geo.dynamic_shared,
                geo.total_shared,
            ];
            for (r, v) in values.iter().enumerate() {
                regs[r * 32 + lane as usize] = *v as u64;
            }
        }
    }

    /// The PC and lanes to run next while diverged; `None` when every live lane waits.
    fn pick(&mut self) -> Option<(u32, u32)> {
        let candidates = self.live & !self.waiting;
        if candidates == 0 {
            return None;
        }
        let min = lanes(candidates).map(|l| self.pc[l]).min().unwrap_or(0);
        let mask = lanes_where(|l| candidates >> l & 1 != 0 && self.pc[l] == min);
        if mask == self.live {
            self.diverged = false;
            self.upc = min;
        }
        Some((min, mask))
    }

    /// Sends `lanes` to `pc`, leaving converged mode when they are not all the live lanes.
    fn move_lanes(&mut self, moving: u32, pc: u32) {
        if moving == 0 {
            return;
        }
        if !self.diverged {
            if moving == self.live {
                self.upc = pc;
                return;
            }
            for l in lanes(self.live) {
                self.pc[l] = self.upc;
            }
            self.diverged = true;
        }
        for l in lanes(moving) {
            self.pc[l] = pc;
        }
    }

    /// Runs until every live lane has exited or waits at a barrier.
    pub fn run(&mut self, env: &mut BlockEnv) -> Result<Stop, EmuError> {
        let kernel: &Kernel = env.kernel;
        let code = &kernel.code;
        let mut budget = env.instruction_limit;
        loop {
            let (pc, mask) = if self.diverged {
                match self.pick() {
                    Some(next) => next,
                    None => return Ok(Stop::Barrier),
                }
            } else {
                (self.upc, self.live)
            };
            let Some(instr) = code.get(pc as usize) else {
                // Running off the end of the kernel is an implicit `ret`.
                self.retire(mask, pc);
                if self.live == 0 {
                    return Ok(Stop::Exited);
                }
                continue;
            };
            if budget == 0 {
                let fault = Fault {
                    lane: mask.trailing_zeros() as usize,
                    msg: format!(
                        "warp ran {} instructions without reaching a barrier or exit; a spin-wait on \
                         another warp or block never ends when warps and blocks run one after another \
                         (see Device::set_warp_instruction_limit)",
                        env.instruction_limit
                    ),
                };
                return Err(env.error(self.index, pc, fault));
            }
            budget -= 1;
            env.counters.by_class[instr.class as usize] += 1;
            env.counters.thread_instructions += mask.count_ones() as u64;
            let exec = match instr.guard {
                Some(g) => mask & pred_mask(&self.preds, g),
                None => mask,
            };
            env.counters.float_ops += float_ops_per_lane(&instr.op) * exec.count_ones() as u64;
            if matches!(instr.op, Op::Mma { .. }) && exec != 0 {
                env.counters.tensor_ops += MMA_M16N8K16_OPS;
            }
            match instr.op {
                Op::Bra { target } => {
                    self.move_lanes(exec, target);
                    self.move_lanes(mask & !exec, pc + 1);
                }
                Op::Exit => {
                    self.retire(exec, pc);
                    if self.live == 0 {
                        return Ok(Stop::Exited);
                    }
                    if self.diverged {
                        self.move_lanes(mask & !exec, pc + 1);
                    } else {
                        self.upc = pc + 1;
                    }
                    if self.live & !self.waiting == 0 {
                        return Ok(Stop::Barrier);
                    }
                }
                Op::BarSync => {
                    for l in lanes(exec) {
                        self.bar_pc[l] = pc;
                    }
                    self.waiting |= exec;
                    self.move_lanes(exec, pc + 1);
                    self.move_lanes(mask & !exec, pc + 1);
                    if self.live & !self.waiting == 0 {
                        return Ok(Stop::Barrier);
                    }
                }
                _ => {
                    if exec != 0 {
                        self.execute(env, &instr.op, exec, pc)
                            .map_err(|t| env.trap_error(self.index, pc, t))?;
                    }
                    if self.diverged {
                        self.move_lanes(mask, pc + 1);
                    } else {
                        self.upc = pc + 1;
                    }
                }
            }
        }
    }

    /// Lanes `exiting` leave the block at instruction `pc`.
    fn retire(&mut self, exiting: u32, pc: u32) {
        for l in lanes(exiting & self.live) {
            self.exit_pc[l] = pc;
        }
        self.exited |= exiting & self.live;
        self.live &= !exiting;
    }

    /// Releases the lanes waiting at a barrier.
    pub fn release(&mut self) {
        self.waiting = 0;
        self.exited = 0;
    }
}

/// Multiply-adds of one m16n8k16 `mma.sync`, counted as two operations each.
const MMA_M16N8K16_OPS: u64 = 2 * 16 * 8 * 16;

/// Floating-point operations one lane performs executing `op` (see `Counters::float_ops`).
fn float_ops_per_lane(op: &Op) -> u64 {
    match op {
        Op::Fma { .. } => 2,
        Op::FloatBin { op, .. } if *op != FloatBinOp::CopySign => 1,
        _ => 0,
    }
}
