//! Execution of one non-control instruction for a mask of lanes: the dispatch from [`Op`] to
//! the per-family executors.

use super::compare::{bool_op, compare};
use super::lanes::{lanes, lanes_where, load, map1, map2, map3, pred_mask, set_pred};
use super::memory::LaneState;
use super::{cvt, float, int, memory, tensor, warp_ops, BlockEnv, Trap, Warp};
use crate::emu::float::Half;
use crate::emu::program::*;
use crate::emu::types::{Space, Ty, LOCAL_WINDOW, SHARED_WINDOW};

impl Warp {
    /// Executes the non-control instruction at `pc` for the lanes of `exec`.
    pub(super) fn execute(
        &mut self,
        env: &mut BlockEnv,
        op: &Op,
        exec: u32,
        pc: u32,
    ) -> Result<(), Trap> {
        let regs = &mut self.regs[..];
        match *op {
            Op::Mov { d, a } => map1(regs, exec, d, a, |x| x),
            Op::MovPred { d, a } => {
                let bits = pred_mask(&self.preds, a);
                set_pred(&mut self.preds, d, exec, bits);
            }
            Op::SetPred { d, value } => {
                set_pred(&mut self.preds, d, exec, if value { u32::MAX } else { 0 })
            }
            Op::Pack {
                d,
                parts,
                count,
                bits,
            } => {
                let mut values = [[0u64; 32]; 4];
                for (slot, p) in values.iter_mut().zip(&parts[..count as usize]) {
                    *slot = load(regs, *p);
                }
                let part_mask = if bits >= 64 {
                    u64::MAX
                } else {
                    (1u64 << bits) - 1
                };
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
                let part_mask = if bits >= 64 {
                    u64::MAX
                } else {
                    (1u64 << bits) - 1
                };
                for (i, r) in d.iter().enumerate().take(count as usize) {
                    if let Some(r) = r {
                        for lane in lanes(exec) {
                            regs[*r as usize * 32 + lane] =
                                (av[lane] >> (i as u32 * bits as u32)) & part_mask;
                        }
                    }
                }
            }
            Op::IntUn { op, ty, d, a } => int::exec_un(op, ty, regs, exec, d, a),
            Op::IntBin { op, ty, d, a, b } => int::exec_bin(op, ty, regs, exec, d, a, b),
            Op::IntTri { op, ty, d, a, b, c } => int::exec_tri(op, ty, regs, exec, d, [a, b, c]),
            Op::Wide { ty, d, a, b, c } => int::exec_wide(ty, regs, exec, d, a, b, c),
            Op::Bfi {
                ty,
                d,
                a,
                b,
                pos,
                len,
            } => {
                let bits = int::int_ty_bits(ty);
                let (av, bv, pv, lv) = (
                    load(regs, a),
                    load(regs, b),
                    load(regs, pos),
                    load(regs, len),
                );
                for lane in lanes(exec) {
                    let r = int::bfi(
                        av[lane],
                        bv[lane],
                        pv[lane] as u32 & 0xff,
                        lv[lane] as u32 & 0xff,
                        bits,
                    );
                    regs[d as usize * 32 + lane] = r;
                }
            }
            Op::Prmt { d, a, b, c } => map3(regs, exec, d, a, b, c, |x, y, z| {
                int::prmt(x as u32, y as u32, z as u32) as u64
            }),
            Op::Lop3 { d, a, b, c, lut } => map3(regs, exec, d, a, b, c, |x, y, z| {
                int::lop3(x as u32, y as u32, z as u32, lut) as u64
            }),
            Op::Shf {
                d,
                a,
                b,
                c,
                left,
                clamp,
            } => map3(regs, exec, d, a, b, c, |x, y, z| {
                int::shf(x as u32, y as u32, z as u32, left, clamp) as u64
            }),
            Op::FloatUn { op, ty, mode, d, a } => float::exec_un(op, ty, mode, regs, exec, d, a),
            Op::FloatBin {
                op,
                ty,
                mode,
                d,
                a,
                b,
            } => float::exec_bin(op, ty, mode, regs, exec, d, [a, b]),
            Op::Fma {
                ty,
                mode,
                d,
                a,
                b,
                c,
            } => float::exec_fma(ty, mode, regs, exec, d, [a, b, c]),
            Op::Testp { op, ty, d, a } => {
                let av = load(regs, a);
                let bits = lanes_where(|l| float::testp(op, ty, av[l]));
                set_pred(&mut self.preds, d, exec, bits);
            }
            Op::Setp {
                cmp,
                ty,
                ftz,
                d,
                d2,
                a,
                b,
                combine,
            } => {
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
                    regs[d as usize * 32 + lane] = if choose >> lane & 1 != 0 {
                        av[lane]
                    } else {
                        bv[lane]
                    };
                }
            }
            Op::Slct { d, a, b, c, float } => map3(regs, exec, d, a, b, c, |x, y, z| {
                let pick_a = if float {
                    f32::from_bits(z as u32) >= 0.0
                } else {
                    z as u32 as i32 >= 0
                };
                if pick_a {
                    x
                } else {
                    y
                }
            }),
            Op::Cvt { ref conv, d, a } => exec_cvt(conv, regs, exec, d, a),
            Op::CvtPack { ref conv, d, a, b } => {
                let half = if conv.dst == Ty::Bf16x2 {
                    Ty::Bf16
                } else {
                    Ty::F16
                };
                let one = Conv { dst: half, ..*conv };
                map2(regs, exec, d, a, b, |x, y| {
                    (cvt::convert(&one, x) << 16) | cvt::convert(&one, y)
                })
            }
            Op::Cvta {
                space,
                to_generic,
                bits,
                d,
                a,
            } => {
                let window = match space {
                    Space::Shared => SHARED_WINDOW,
                    Space::Local => LOCAL_WINDOW,
                    _ => 0,
                };
                let out_mask = if bits >= 64 {
                    u64::MAX
                } else {
                    (1u64 << bits) - 1
                };
                map1(regs, exec, d, a, |x| {
                    (if to_generic {
                        x.wrapping_add(window)
                    } else {
                        x.wrapping_sub(window)
                    }) & out_mask
                })
            }
            Op::Ld {
                space,
                size,
                count,
                signed,
                strong,
                ref d,
                addr,
            } => {
                let mut state = LaneState {
                    regs,
                    local: &mut self.local,
                    local_bytes: self.local_bytes,
                    warp: self.index,
                    pc,
                };
                memory::exec_ld(
                    env, &mut state, exec, space, size, count, signed, strong, d, addr,
                )?
            }
            Op::St {
                space,
                size,
                count,
                strong,
                ref v,
                addr,
            } => {
                let mut state = LaneState {
                    regs,
                    local: &mut self.local,
                    local_bytes: self.local_bytes,
                    warp: self.index,
                    pc,
                };
                memory::exec_st(env, &mut state, exec, space, size, count, strong, v, addr)?
            }
            Op::Atom {
                space,
                op,
                ty,
                d,
                addr,
                b,
                c,
            } => {
                let mut state = LaneState {
                    regs,
                    local: &mut self.local,
                    local_bytes: self.local_bytes,
                    warp: self.index,
                    pc,
                };
                memory::exec_atom(env, &mut state, exec, space, op, ty, d, addr, b, c)?
            }
            Op::Shfl {
                mode,
                d,
                p,
                a,
                b,
                c,
                mask,
            } => {
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
                if let Some(s) = env.sanitizer.as_deref_mut() {
                    s.shadow.warp_sync(self.index);
                }
            }
            Op::Activemask { d } => {
                for lane in lanes(exec) {
                    regs[d as usize * 32 + lane] = exec as u64;
                }
            }
            Op::Mma { input, d, a, b, c } => tensor::mma(regs, exec, self.live, input, d, a, b, c)?,
            Op::Ldmatrix {
                count,
                trans,
                ref d,
                addr,
            } => {
                let live = self.live;
                let mut state = LaneState {
                    regs,
                    local: &mut self.local,
                    local_bytes: self.local_bytes,
                    warp: self.index,
                    pc,
                };
                tensor::ldmatrix(env, &mut state, exec, live, count, trans, d, addr)?
            }
            Op::CpAsync {
                size,
                src_size,
                dst,
                src,
            } => {
                let mut state = LaneState {
                    regs,
                    local: &mut self.local,
                    local_bytes: self.local_bytes,
                    warp: self.index,
                    pc,
                };
                self.copies.issue(env, &mut state, exec, size, src_size, dst, src)?
            }
            Op::CpAsyncCommit => self.copies.commit(),
            Op::CpAsyncWait { keep, commit } => {
                if commit {
                    self.copies.commit();
                }
                let mut state = LaneState {
                    regs,
                    local: &mut self.local,
                    local_bytes: self.local_bytes,
                    warp: self.index,
                    pc,
                };
                self.copies.wait(env, &mut state, keep as usize)?
            }
            Op::Nop => {}
            Op::Bra { .. } | Op::BarSync | Op::Exit => {
                unreachable!("control instructions are handled by the scheduler")
            }
        }
        Ok(())
    }
}

fn exec_cvt(conv: &Conv, regs: &mut [u64], exec: u32, d: Reg, a: Src) {
    match (conv.dst, conv.src, conv.rnd, conv.sat, conv.ftz) {
        (Ty::F32, Ty::S32, Some(Rnd::Nearest) | None, false, false) => {
            map1(regs, exec, d, a, |x| {
                (x as u32 as i32 as f32).to_bits() as u64
            })
        }
        (Ty::F32, Ty::U32, Some(Rnd::Nearest) | None, false, false) => {
            map1(regs, exec, d, a, |x| (x as u32 as f32).to_bits() as u64)
        }
        (Ty::F32, Ty::Bf16, _, false, false) => map1(regs, exec, d, a, |x| (x & 0xffff) << 16),
        (Ty::Bf16, Ty::F32, Some(Rnd::Nearest), false, false) => map1(regs, exec, d, a, |x| {
            Half::Bf16.round_f32(f32::from_bits(x as u32), Rnd::Nearest) as u64
        }),
        (Ty::S64, Ty::S32, _, false, _) => {
            map1(regs, exec, d, a, |x| x as u32 as i32 as i64 as u64)
        }
        (Ty::U64, Ty::U32, _, false, _) => map1(regs, exec, d, a, |x| x & 0xffff_ffff),
        _ => map1(regs, exec, d, a, |x| cvt::convert(conv, x)),
    }
}
