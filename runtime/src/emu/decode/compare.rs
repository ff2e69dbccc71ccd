//! Decoding of bitwise/predicate logic and `setp`.

use super::alu::{float_ty, int_ty};
use super::mods::Mods;
use super::{arity, invalid, unsupported, DResult, KernelDecoder};
use crate::emu::ast::Operand;
use crate::emu::program::*;
use crate::emu::types::{Kind, Ty};

impl KernelDecoder<'_> {
    pub(super) fn decode_logic(
        &self,
        base: &str,
        m: &mut Mods,
        ops: &[Operand],
    ) -> DResult<(Op, Class)> {
        let ty = m.ty()?;
        let unary = matches!(base, "not" | "cnot");
        if ty == Ty::Pred {
            if base == "cnot" {
                return invalid("cnot on .pred");
            }
            if unary {
                arity(ops, 2)?;
                let a = self.pred_src(&ops[1])?;
                let a = PredSrc {
                    reg: a.reg,
                    negated: !a.negated,
                };
                return Ok((
                    Op::MovPred {
                        d: self.dst_pred(&ops[0])?,
                        a,
                    },
                    Class::Int,
                ));
            }
            arity(ops, 3)?;
            let op = match base {
                "and" => BoolOp::And,
                "or" => BoolOp::Or,
                _ => BoolOp::Xor,
            };
            let (d, a, b) = (
                self.dst_pred(&ops[0])?,
                self.pred_src(&ops[1])?,
                self.pred_src(&ops[2])?,
            );
            return Ok((Op::PredLogic { op, d, a, b }, Class::Int));
        }
        if ty.kind() != Kind::Bits && base != "cnot" {
            return invalid(format!("{base} needs a bit type (.b16/.b32/.b64/.pred)"));
        }
        let op = match base {
            "not" => return Ok((self.int_un(IntUnOp::Not, ty, ops)?, Class::Int)),
            "cnot" => return Ok((self.int_un(IntUnOp::Cnot, ty, ops)?, Class::Int)),
            "and" => IntBinOp::And,
            "or" => IntBinOp::Or,
            _ => IntBinOp::Xor,
        };
        Ok((self.int_bin(op, ty, ops)?, Class::Int))
    }

    pub(super) fn decode_setp(&self, m: &mut Mods, ops: &[Operand]) -> DResult<(Op, Class)> {
        let cmp_name = m.one_of(&[
            "eq", "ne", "lt", "le", "gt", "ge", "lo", "ls", "hi", "hs", "equ", "neu", "ltu", "leu",
            "gtu", "geu", "num", "nan",
        ]);
        let cmp = match cmp_name {
            Some("eq") => Cmp::Eq,
            Some("ne") => Cmp::Ne,
            Some("lt" | "lo") => Cmp::Lt,
            Some("le" | "ls") => Cmp::Le,
            Some("gt" | "hi") => Cmp::Gt,
            Some("ge" | "hs") => Cmp::Ge,
            Some("equ") => Cmp::Equ,
            Some("neu") => Cmp::Neu,
            Some("ltu") => Cmp::Ltu,
            Some("leu") => Cmp::Leu,
            Some("gtu") => Cmp::Gtu,
            Some("geu") => Cmp::Geu,
            Some("num") => Cmp::Num,
            Some("nan") => Cmp::Nan,
            _ => return invalid("setp needs a comparison"),
        };
        let bool_op = match m.one_of(&["and", "or", "xor"]) {
            Some("and") => Some(BoolOp::And),
            Some("or") => Some(BoolOp::Or),
            Some(_) => Some(BoolOp::Xor),
            None => None,
        };
        let ftz = m.flag("ftz");
        let ty = m.ty()?;
        let cmp_ty = match float_ty(ty) {
            Some(f @ (FloatTy::F16x2 | FloatTy::Bf16x2)) => {
                return unsupported(format!("setp on .{f:?}"))
            }
            Some(f) => CmpTy::Float(f),
            None => {
                let unordered = !matches!(
                    cmp,
                    Cmp::Eq | Cmp::Ne | Cmp::Lt | Cmp::Le | Cmp::Gt | Cmp::Ge
                );
                if unordered {
                    return invalid("unordered comparison on an integer type");
                }
                CmpTy::Int(int_ty(ty)?)
            }
        };
        arity(ops, if bool_op.is_some() { 4 } else { 3 })?;
        let (d, d2) = match &ops[0] {
            Operand::WithPred(p, q) => (self.pred_reg(p)?, Some(self.pred_reg(q)?)),
            other => (self.dst_pred(other)?, None),
        };
        let combine = match bool_op {
            Some(op) => Some((op, self.pred_src(&ops[3])?)),
            None => None,
        };
        let op = Op::Setp {
            cmp,
            ty: cmp_ty,
            ftz,
            d,
            d2,
            a: self.src(&ops[1], ty)?,
            b: self.src(&ops[2], ty)?,
            combine,
        };
        Ok((
            op,
            if cmp_ty == CmpTy::Float(FloatTy::F32) {
                Class::Float
            } else {
                Class::Int
            },
        ))
    }
}
