//! Warp execution. A warp runs one decoded instruction at a time for a mask of lanes.
//!
//! Divergence uses per-lane program counters with *minimum-PC* scheduling: while lanes disagree,
//! the lanes at the smallest PC run together; everyone else waits. NVRTC lays code out so that a
//! branch's join point follows both sides, so the lanes that went ahead wait there until the
//! others catch up, and they reconverge as soon as all live lanes share one PC. While converged
//! (the common case) a warp keeps a single PC and skips the per-lane bookkeeping.

pub(crate) mod cvt;
pub(crate) mod float;
pub(crate) mod int;
pub(crate) mod lanes;
pub(crate) mod memory;
pub(crate) mod warp_ops;

use super::counters::Counters;
use super::float::Half;
use super::error::{EmuError, ThreadPos};
use super::memory::GlobalMemory;
use super::parser::line_text;
use super::program::*;
use super::types::{Space, Ty, LOCAL_WINDOW, SHARED_WINDOW};
use lanes::{lanes, lanes_where, load, map1, map2, map3, pred_mask, set_pred};
use memory::LaneState;

/// A fault in one lane, turned into [`EmuError::Runtime`] with the instruction's line.
#[derive(Debug)]
pub(crate) struct Fault {
    pub lane: usize,
    pub msg: String,
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
}

impl BlockEnv<'_> {
    pub fn thread_of(&self, warp: u32, lane: usize) -> [u32; 3] {
        let t = warp * 32 + lane as u32;
        let [bx, by, _] = self.block_dim;
        [t % bx, (t / bx) % by, t / (bx * by)]
    }

    fn error(&self, warp: u32, line: u32, fault: Fault) -> EmuError {
        EmuError::Runtime {
            kernel: self.kernel.name.clone(),
            line,
            text: line_text(self.src, line),
            pos: ThreadPos { block: self.block, thread: self.thread_of(warp, fault.lane) },
            msg: fault.msg,
        }
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
    regs: Vec<u64>,
    preds: Vec<u32>,
    local: Vec<u8>,
    local_bytes: usize,
    pc: [u32; 32],
    upc: u32,
    diverged: bool,
    pub live: u32,
    pub waiting: u32,
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
                self.live &= !mask;
                if self.live == 0 {
                    return Ok(Stop::Exited);
                }
                continue;
            };
            env.counters.by_class[instr.class as usize] += 1;
            env.counters.thread_instructions += mask.count_ones() as u64;
            let exec = match instr.guard {
                Some(g) => mask & pred_mask(&self.preds, g),
                None => mask,
            };
            match instr.op {
                Op::Bra { target } => {
                    self.move_lanes(exec, target);
                    self.move_lanes(mask & !exec, pc + 1);
                }
                Op::Exit => {
                    self.live &= !exec;
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
                    self.waiting |= exec;
                    self.move_lanes(exec, pc + 1);
                    self.move_lanes(mask & !exec, pc + 1);
                    if self.live & !self.waiting == 0 {
                        return Ok(Stop::Barrier);
                    }
                }
                _ => {
                    if exec != 0 {
                        self.execute(env, &instr.op, exec).map_err(|f| env.error(self.index, instr.line, f))?;
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

    /// Releases the lanes waiting at a barrier.
    pub fn release(&mut self) {
        self.waiting = 0;
    }

    /// Executes a non-control instruction for the lanes of `exec`.
    fn execute(&mut self, env: &mut BlockEnv, op: &Op, exec: u32) -> Result<(), Fault> {
        let regs = &mut self.regs[..];
        match *op {
            Op::Mov { d, a } => map1(regs, exec, d, a, |x| x),
            Op::MovPred { d, a } => {
                let bits = pred_mask(&self.preds, a);
                set_pred(&mut self.preds, d, exec, bits);
            }
            Op::Pack { d, parts, count, bits } => {
                let mut values = [[0u64; 32]; 4];
                for (slot, p) in values.iter_mut().zip(&parts[..count as usize]) {
                    *slot = load(regs, *p);
                }
                let part_mask = if bits >= 64 { u64::MAX } else { (1u64 << bits) - 1 };
                for lane in lanes(exec) {
                    let mut v = 0u64;
                    for (i, part) in values.iter().enumerate().take(count as usize) {
                        v |= (part[lane] & part_mask) << (i as u32 * bits as u32);
                    }
                    regs[d as usize * 32 + lane] = v;
                }
            }
            Op::Unpack { d, count, bits, a } => {
                let av = load(regs, a);
                let part_mask = if bits >= 64 { u64::MAX } else { (1u64 << bits) - 1 };
                for (i, r) in d.iter().enumerate().take(count as usize) {
                    if let Some(r) = r {
                        for lane in lanes(exec) {
                            regs[*r as usize * 32 + lane] = (av[lane] >> (i as u32 * bits as u32)) & part_mask;
                        }
                    }
                }
            }
            Op::IntUn { op, ty, d, a } => int::exec_un(op, ty, regs, exec, d, a),
            Op::IntBin { op, ty, d, a, b } => int::exec_bin(op, ty, regs, exec, d, a, b),
            Op::IntTri { op, ty, d, a, b, c } => int::exec_tri(op, ty, regs, exec, d, [a, b, c]),
            Op::Wide { ty, d, a, b, c } => int::exec_wide(ty, regs, exec, d, a, b, c),
            Op::Bfi { ty, d, a, b, pos, len } => {
                let bits = int::int_ty_bits(ty);
                let (av, bv, pv, lv) = (load(regs, a), load(regs, b), load(regs, pos), load(regs, len));
                for lane in lanes(exec) {
                    let r = int::bfi(av[lane], bv[lane], pv[lane] as u32 & 0xff, lv[lane] as u32 & 0xff, bits);
                    regs[d as usize * 32 + lane] = r;
                }
            }
            Op::Prmt { d, a, b, c } => map3(regs, exec, d, a, b, c, |x, y, z| int::prmt(x as u32, y as u32, z as u32) as u64),
            Op::Lop3 { d, a, b, c, lut } => {
                map3(regs, exec, d, a, b, c, |x, y, z| int::lop3(x as u32, y as u32, z as u32, lut) as u64)
            }
            Op::Shf { d, a, b, c, left, clamp } => {
                map3(regs, exec, d, a, b, c, |x, y, z| int::shf(x as u32, y as u32, z as u32, left, clamp) as u64)
            }
            Op::FloatUn { op, ty, mode, d, a } => float::exec_un(op, ty, mode, regs, exec, d, a),
            Op::FloatBin { op, ty, mode, d, a, b } => float::exec_bin(op, ty, mode, regs, exec, d, [a, b]),
            Op::Fma { ty, mode, d, a, b, c } => float::exec_fma(ty, mode, regs, exec, d, [a, b, c]),
            Op::Testp { op, ty, d, a } => {
                let av = load(regs, a);
                let bits = lanes_where(|l| float::testp(op, ty, av[l]));
                set_pred(&mut self.preds, d, exec, bits);
            }
            Op::Setp { cmp, ty, ftz, d, d2, a, b, combine } => {
                let (av, bv) = (load(regs, a), load(regs, b));
                let t = compare(cmp, ty, ftz, &av, &bv);
                let (p, q) = match combine {
                    None => (t, !t),
                    Some((op, c)) => {
                        let c = pred_mask(&self.preds, c);
                        (bool_op(op, t, c), bool_op(op, !t, c))
                    }
                };
                set_pred(&mut self.preds, d, exec, p);
                if let Some(d2) = d2 {
                    set_pred(&mut self.preds, d2, exec, q);
                }
            }
            Op::PredLogic { op, d, a, b } => {
                let bits = bool_op(op, pred_mask(&self.preds, a), pred_mask(&self.preds, b));
                set_pred(&mut self.preds, d, exec, bits);
            }
            Op::Selp { d, a, b, p } => {
                let choose = pred_mask(&self.preds, p);
                let (av, bv) = (load(regs, a), load(regs, b));
                for lane in lanes(exec) {
                    regs[d as usize * 32 + lane] = if choose >> lane & 1 != 0 { av[lane] } else { bv[lane] };
                }
            }
            Op::Slct { d, a, b, c, float } => map3(regs, exec, d, a, b, c, |x, y, z| {
                let pick_a = if float { f32::from_bits(z as u32) >= 0.0 } else { z as u32 as i32 >= 0 };
                if pick_a {
                    x
                } else {
                    y
                }
            }),
            Op::Cvt { ref conv, d, a } => exec_cvt(conv, regs, exec, d, a),
            Op::CvtPack { ref conv, d, a, b } => {
                let half = if conv.dst == Ty::Bf16x2 { Ty::Bf16 } else { Ty::F16 };
                let one = Conv { dst: half, ..*conv };
                map2(regs, exec, d, a, b, |x, y| (cvt::convert(&one, x) << 16) | cvt::convert(&one, y))
            }
            Op::Cvta { space, to_generic, bits, d, a } => {
                let window = match space {
                    Space::Shared => SHARED_WINDOW,
                    Space::Local => LOCAL_WINDOW,
                    _ => 0,
                };
                let out_mask = if bits >= 64 { u64::MAX } else { (1u64 << bits) - 1 };
                map1(regs, exec, d, a, |x| {
                    (if to_generic { x.wrapping_add(window) } else { x.wrapping_sub(window) }) & out_mask
                })
            }
            Op::Ld { space, size, count, signed, ref d, addr } => {
                let mut state = LaneState { regs, local: &mut self.local, local_bytes: self.local_bytes };
                memory::exec_ld(env, &mut state, exec, space, size, count, signed, d, addr)?
            }
            Op::St { space, size, count, ref v, addr } => {
                let mut state = LaneState { regs, local: &mut self.local, local_bytes: self.local_bytes };
                memory::exec_st(env, &mut state, exec, space, size, count, v, addr)?
            }
            Op::Atom { space, op, ty, d, addr, b, c } => {
                let mut state = LaneState { regs, local: &mut self.local, local_bytes: self.local_bytes };
                memory::exec_atom(env, &mut state, exec, space, op, ty, d, addr, b, c)?
            }
            Op::Shfl { mode, d, p, a, b, c, mask } => {
                warp_ops::member_mask(regs, mask, exec, self.live)?;
                warp_ops::shfl(regs, &mut self.preds, exec, mode, d, p, a, b, c);
            }
            Op::VotePred { mode, d, a, mask } => {
                warp_ops::member_mask(regs, mask, exec, self.live)?;
                warp_ops::vote(&mut self.preds, exec, mode, d, a);
            }
            Op::Ballot { d, a, mask } => {
                warp_ops::member_mask(regs, mask, exec, self.live)?;
                warp_ops::ballot(regs, &self.preds, exec, d, a);
            }
            Op::WarpSync { mask } => {
                warp_ops::member_mask(regs, mask, exec, self.live)?;
            }
            Op::Activemask { d } => {
                for lane in lanes(exec) {
                    regs[d as usize * 32 + lane] = exec as u64;
                }
            }
            Op::Nop => {}
            Op::Bra { .. } | Op::BarSync | Op::Exit => {
                unreachable!("control instructions are handled by the scheduler")
            }
        }
        Ok(())
    }
}

fn bool_op(op: BoolOp, a: u32, b: u32) -> u32 {
    match op {
        BoolOp::And => a & b,
        BoolOp::Or => a | b,
        BoolOp::Xor => a ^ b,
    }
}

fn cmp_ord(cmp: Cmp, o: std::cmp::Ordering) -> bool {
    use std::cmp::Ordering::*;
    match cmp {
        Cmp::Eq => o == Equal,
        Cmp::Ne => o != Equal,
        Cmp::Lt => o == Less,
        Cmp::Le => o != Greater,
        Cmp::Gt => o == Greater,
        Cmp::Ge => o != Less,
        _ => false,
    }
}

fn cmp_float(cmp: Cmp, x: f64, y: f64) -> bool {
    let unordered = x.is_nan() || y.is_nan();
    match cmp {
        Cmp::Eq => x == y,
        Cmp::Ne => !unordered && x != y,
        Cmp::Lt => x < y,
        Cmp::Le => x <= y,
        Cmp::Gt => x > y,
        Cmp::Ge => x >= y,
        Cmp::Equ => unordered || x == y,
        Cmp::Neu => x != y,
        Cmp::Ltu => unordered || x < y,
        Cmp::Leu => unordered || x <= y,
        Cmp::Gtu => unordered || x > y,
        Cmp::Geu => unordered || x >= y,
        Cmp::Num => !unordered,
        Cmp::Nan => unordered,
    }
}

fn compare_int<T: int::Int>(cmp: Cmp, av: &[u64; 32], bv: &[u64; 32]) -> u32 {
    lanes_where(|l| cmp_ord(cmp, T::from_reg(av[l]).cmp(&T::from_reg(bv[l]))))
}

fn compare(cmp: Cmp, ty: CmpTy, ftz: bool, av: &[u64; 32], bv: &[u64; 32]) -> u32 {
    match ty {
        CmpTy::Int(IntTy::U16) => compare_int::<u16>(cmp, av, bv),
        CmpTy::Int(IntTy::S16) => compare_int::<i16>(cmp, av, bv),
        CmpTy::Int(IntTy::U32) => compare_int::<u32>(cmp, av, bv),
        CmpTy::Int(IntTy::S32) => compare_int::<i32>(cmp, av, bv),
        CmpTy::Int(IntTy::U64) => compare_int::<u64>(cmp, av, bv),
        CmpTy::Int(IntTy::S64) => compare_int::<i64>(cmp, av, bv),
        CmpTy::Float(f) => lanes_where(|l| {
            cmp_float(cmp, float::read_float(f, av[l], ftz), float::read_float(f, bv[l], ftz))
        }),
    }
}

fn exec_cvt(conv: &Conv, regs: &mut [u64], exec: u32, d: Reg, a: Src) {
    match (conv.dst, conv.src, conv.rnd, conv.sat, conv.ftz) {
        (Ty::F32, Ty::S32, Some(Rnd::Nearest) | None, false, false) => {
            map1(regs, exec, d, a, |x| (x as u32 as i32 as f32).to_bits() as u64)
        }
        (Ty::F32, Ty::U32, Some(Rnd::Nearest) | None, false, false) => {
            map1(regs, exec, d, a, |x| (x as u32 as f32).to_bits() as u64)
        }
        (Ty::F32, Ty::Bf16, _, false, false) => map1(regs, exec, d, a, |x| (x & 0xffff) << 16),
        (Ty::Bf16, Ty::F32, Some(Rnd::Nearest), false, false) => {
            map1(regs, exec, d, a, |x| Half::Bf16.round_f32(f32::from_bits(x as u32), Rnd::Nearest) as u64)
        }
        (Ty::S64, Ty::S32, _, false, _) => map1(regs, exec, d, a, |x| x as u32 as i32 as i64 as u64),
        (Ty::U64, Ty::U32, _, false, _) => map1(regs, exec, d, a, |x| x & 0xffff_ffff),
        _ => map1(regs, exec, d, a, |x| cvt::convert(conv, x)),
    }
}
