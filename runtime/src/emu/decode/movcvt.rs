//! Decoding of `mov` (including vector packing/unpacking) and `cvt`.

use super::alu::{float_ty, rnd_of};
use super::mods::Mods;
use super::{arity, invalid, unsupported, DResult, KernelDecoder};
use crate::emu::ast::Operand;
use crate::emu::lexer::Literal;
use crate::emu::program::*;
use crate::emu::types::Ty;

/// The unsigned bit type of a width, for immediates in packed moves.
fn bits_ty(bits: u32) -> DResult<Ty> {
    Ok(match bits {
        8 => Ty::B8,
        16 => Ty::B16,
        32 => Ty::B32,
        64 => Ty::B64,
        _ => return invalid(format!("vector parts of {bits} bits")),
    })
}

impl KernelDecoder<'_> {
    pub(super) fn decode_mov(&self, m: &mut Mods, ops: &[Operand]) -> DResult<(Op, Class)> {
        arity(ops, 2)?;
        let ty = m.ty()?;
        if ty == Ty::Pred {
            // NVRTC writes constant predicates as `mov.pred %p, -1;` (true) or `0` (false).
            if let Operand::Imm(Literal::Int(value)) = ops[1] {
                return Ok((Op::SetPred { d: self.dst_pred(&ops[0])?, value: value != 0 }, Class::Move));
            }
            return Ok((
                Op::MovPred {
                    d: self.dst_pred(&ops[0])?,
                    a: self.pred_src(&ops[1])?,
                },
                Class::Move,
            ));
        }
        match (&ops[0], &ops[1]) {
            (Operand::Vector(ds), a) => {
                if !(2..=4).contains(&ds.len()) || ty.bits() % ds.len() as u32 != 0 {
                    return invalid("bad vector destination of mov");
                }
                let mut d = [None; 4];
                for (slot, item) in d.iter_mut().zip(ds) {
                    *slot = self.dst_or_sink(item)?;
                }
                let op = Op::Unpack {
                    d,
                    count: ds.len() as u8,
                    bits: (ty.bits() / ds.len() as u32) as u8,
                    a: self.src(a, ty)?,
                };
                Ok((op, Class::Move))
            }
            (d, Operand::Vector(parts)) => {
                if !(2..=4).contains(&parts.len()) || ty.bits() % parts.len() as u32 != 0 {
                    return invalid("bad vector source of mov");
                }
                let bits = ty.bits() / parts.len() as u32;
                let part_ty = bits_ty(bits)?;
                let mut srcs = [Src::Imm(0); 4];
                for (slot, item) in srcs.iter_mut().zip(parts) {
                    *slot = self.src(item, part_ty)?;
                }
                let op = Op::Pack {
                    d: self.dst(d)?,
                    parts: srcs,
                    count: parts.len() as u8,
                    bits: bits as u8,
                };
                Ok((op, Class::Move))
            }
            (d, a) => Ok((
                Op::Mov {
                    d: self.dst(d)?,
                    a: self.src(a, ty)?,
                },
                Class::Move,
            )),
        }
    }

    pub(super) fn decode_cvt(&self, m: &mut Mods, ops: &[Operand]) -> DResult<(Op, Class)> {
        let int_rnd = m.one_of(&["rni", "rzi", "rmi", "rpi"]);
        let float_rnd = m.one_of(&["rn", "rz", "rm", "rp"]);
        let ftz = m.flag("ftz");
        let sat = m.flag("sat");
        let tys = m.types();
        let [dst, src] = tys[..] else {
            return invalid("cvt needs a destination and a source type");
        };
        if int_rnd.is_some() && float_rnd.is_some() {
            return invalid("cvt with two rounding modes");
        }
        let rnd = int_rnd.or(float_rnd).map(rnd_of);
        let conv = Conv {
            dst,
            src,
            rnd,
            int_rnd: int_rnd.is_some(),
            sat,
            ftz,
        };
        if matches!(dst, Ty::Bf16x2 | Ty::F16x2) {
            if src != Ty::F32 {
                return unsupported(format!("cvt to .{dst:?} from .{src:?}"));
            }
            arity(ops, 3)?;
            let op = Op::CvtPack {
                conv,
                d: self.dst(&ops[0])?,
                a: self.src(&ops[1], src)?,
                b: self.src(&ops[2], src)?,
            };
            return Ok((op, Class::Convert));
        }
        if matches!(src, Ty::Bf16x2 | Ty::F16x2 | Ty::Pred) || dst == Ty::Pred {
            return unsupported(format!("cvt from .{src:?} to .{dst:?}"));
        }
        arity(ops, 2)?;
        let (d, a) = (self.dst(&ops[0])?, self.src(&ops[1], src)?);
        if dst == src && dst.is_float() {
            let fty = float_ty(dst).expect("checked to be a float type");
            let op = if int_rnd.is_some() {
                FloatUnOp::RoundInt
            } else {
                FloatUnOp::Identity
            };
            let mode = FloatMode {
                rnd: rnd.unwrap_or(Rnd::Nearest),
                ftz,
                sat,
                nan: false,
            };
            return Ok((
                Op::FloatUn {
                    op,
                    ty: fty,
                    mode,
                    d,
                    a,
                },
                Class::Convert,
            ));
        }
        if int_rnd.is_some() && !src.is_float() {
            return invalid("integer rounding on a conversion from an integer");
        }
        Ok((Op::Cvt { conv, d, a }, Class::Convert))
    }
}
