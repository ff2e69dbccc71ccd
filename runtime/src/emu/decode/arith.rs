//! Decoding of `add/sub/mul/mad/fma/div/rem/min/max` on integer and float types.

use super::alu::{float_mode, float_ty, int_ty};
use super::mods::Mods;
use super::{arity, invalid, unsupported, DResult, KernelDecoder};
use crate::emu::ast::Operand;
use crate::emu::program::*;
use crate::emu::types::Ty;

impl KernelDecoder<'_> {
    pub(super) fn decode_arith(
        &self,
        base: &str,
        m: &mut Mods,
        ops: &[Operand],
    ) -> DResult<(Op, Class)> {
        use Class as C;
        let int_variant = m.one_of(&["lo", "hi", "wide"]);
        let approx = m.one_of(&["approx", "full"]);
        let nan = m.flag("NaN");
        let ty = m.ty()?;
        if let Some(fty) = float_ty(ty) {
            if int_variant.is_some() {
                return invalid(format!(
                    "{base}.{} on a float type",
                    int_variant.unwrap_or("")
                ));
            }
            let mut mode = float_mode(m, fty)?;
            mode.nan = nan;
            let class = if approx.is_some() {
                C::Special
            } else {
                C::Float
            };
            if approx.is_some() && !(base == "div" && fty == FloatTy::F32) {
                return unsupported(format!("{base}.{} on .{ty:?}", approx.unwrap_or("")));
            }
            if fty == FloatTy::F64
                && mode.rnd != Rnd::Nearest
                && matches!(base, "fma" | "mad" | "div")
            {
                return unsupported(format!("{base}.f64 with directed rounding"));
            }
            let op = match base {
                "add" => FloatBinOp::Add,
                "sub" => FloatBinOp::Sub,
                "mul" => FloatBinOp::Mul,
                "div" => FloatBinOp::Div,
                "min" => FloatBinOp::Min,
                "max" => FloatBinOp::Max,
                "fma" | "mad" => return Ok((self.fma(ty, fty, mode, ops)?, C::Float)),
                _ => return invalid(format!("{base} on a float type")),
            };
            let class = if op == FloatBinOp::Div {
                C::Special
            } else {
                class
            };
            return Ok((self.float_bin(op, ty, fty, mode, ops)?, class));
        }
        if approx.is_some() || nan {
            return invalid(format!("float modifier on integer {base}"));
        }
        let sat = m.flag("sat");
        if sat && !(ty == Ty::S32 && matches!(base, "add" | "sub")) {
            return unsupported(format!(".sat on {base}.{ty:?}"));
        }
        let ity = int_ty(ty)?;
        let op = match (base, int_variant) {
            ("add", None) => {
                if sat {
                    IntBinOp::AddSat
                } else {
                    IntBinOp::Add
                }
            }
            ("sub", None) => {
                if sat {
                    IntBinOp::SubSat
                } else {
                    IntBinOp::Sub
                }
            }
            ("mul", Some("lo")) => IntBinOp::MulLo,
            ("mul", Some("hi")) => IntBinOp::MulHi,
            ("div", None) => IntBinOp::Div,
            ("rem", None) => IntBinOp::Rem,
            ("min", None) => IntBinOp::Min,
            ("max", None) => IntBinOp::Max,
            ("mul" | "mad", Some("wide")) => {
                if matches!(ity, IntTy::U64 | IntTy::S64) {
                    return invalid(format!("{base}.wide on a 64-bit type"));
                }
                arity(ops, if base == "mad" { 4 } else { 3 })?;
                let wide = Ty::parse(match ity {
                    IntTy::U16 => "u32",
                    IntTy::S16 => "s32",
                    IntTy::U32 => "u64",
                    _ => "s64",
                })
                .expect("a valid type name");
                let c = if base == "mad" {
                    Some(self.src(&ops[3], wide)?)
                } else {
                    None
                };
                let op = Op::Wide {
                    ty: ity,
                    d: self.dst(&ops[0])?,
                    a: self.src(&ops[1], ty)?,
                    b: self.src(&ops[2], ty)?,
                    c,
                };
                return Ok((op, C::Int));
            }
            ("mad", Some(v)) => {
                arity(ops, 4)?;
                let op = Op::IntTri {
                    op: if v == "lo" {
                        IntTriOp::MadLo
                    } else {
                        IntTriOp::MadHi
                    },
                    ty: ity,
                    d: self.dst(&ops[0])?,
                    a: self.src(&ops[1], ty)?,
                    b: self.src(&ops[2], ty)?,
                    c: self.src(&ops[3], ty)?,
                };
                return Ok((op, C::Int));
            }
            (_, v) => return invalid(format!("integer {base} with {:?}", v)),
        };
        Ok((self.int_bin(op, ty, ops)?, C::Int))
    }
}
