//! Decoding of arithmetic, logic, comparison, move and conversion instructions.

use super::mods::Mods;
use super::{arity, invalid, unsupported, DResult, KernelDecoder};
use crate::emu::ast::Operand;
use crate::emu::program::*;
use crate::emu::types::Ty;

pub(crate) fn int_ty(ty: Ty) -> DResult<IntTy> {
    Ok(match ty {
        Ty::B16 | Ty::U16 => IntTy::U16,
        Ty::S16 => IntTy::S16,
        Ty::B32 | Ty::U32 => IntTy::U32,
        Ty::S32 => IntTy::S32,
        Ty::B64 | Ty::U64 => IntTy::U64,
        Ty::S64 => IntTy::S64,
        other => return unsupported(format!("integer operation on .{other:?}")),
    })
}

pub(crate) fn float_ty(ty: Ty) -> Option<FloatTy> {
    Some(match ty {
        Ty::F16 => FloatTy::F16,
        Ty::F16x2 => FloatTy::F16x2,
        Ty::Bf16 => FloatTy::Bf16,
        Ty::Bf16x2 => FloatTy::Bf16x2,
        Ty::F32 => FloatTy::F32,
        Ty::F64 => FloatTy::F64,
        _ => return None,
    })
}

pub(super) fn rnd_of(name: &str) -> Rnd {
    match name {
        "rn" | "rni" => Rnd::Nearest,
        "rz" | "rzi" => Rnd::Zero,
        "rm" | "rmi" => Rnd::Down,
        _ => Rnd::Up,
    }
}

/// Reads `.rn`-style rounding, `.ftz` and `.sat`.
pub(super) fn float_mode(m: &mut Mods, ty: FloatTy) -> DResult<FloatMode> {
    let rnd = m
        .one_of(&["rn", "rz", "rm", "rp"])
        .map_or(Rnd::Nearest, rnd_of);
    let ftz = m.flag("ftz");
    let sat = m.flag("sat");
    if ty == FloatTy::F64 && (ftz || sat) {
        return unsupported(".ftz/.sat on .f64");
    }
    Ok(FloatMode {
        rnd,
        ftz,
        sat,
        nan: false,
    })
}

impl KernelDecoder<'_> {
    pub(super) fn int_bin(&self, op: IntBinOp, ty: Ty, ops: &[Operand]) -> DResult<Op> {
        arity(ops, 3)?;
        let b_ty = if matches!(op, IntBinOp::Shl | IntBinOp::Shr) {
            Ty::U32
        } else {
            ty
        };
        Ok(Op::IntBin {
            op,
            ty: int_ty(ty)?,
            d: self.dst(&ops[0])?,
            a: self.src(&ops[1], ty)?,
            b: self.src(&ops[2], b_ty)?,
        })
    }

    pub(super) fn float_bin(
        &self,
        op: FloatBinOp,
        ty: Ty,
        fty: FloatTy,
        mode: FloatMode,
        ops: &[Operand],
    ) -> DResult<Op> {
        arity(ops, 3)?;
        Ok(Op::FloatBin {
            op,
            ty: fty,
            mode,
            d: self.dst(&ops[0])?,
            a: self.src(&ops[1], ty)?,
            b: self.src(&ops[2], ty)?,
        })
    }

    pub(super) fn fma(
        &self,
        ty: Ty,
        fty: FloatTy,
        mode: FloatMode,
        ops: &[Operand],
    ) -> DResult<Op> {
        arity(ops, 4)?;
        Ok(Op::Fma {
            ty: fty,
            mode,
            d: self.dst(&ops[0])?,
            a: self.src(&ops[1], ty)?,
            b: self.src(&ops[2], ty)?,
            c: self.src(&ops[3], ty)?,
        })
    }

    pub(super) fn decode_alu(
        &self,
        base: &str,
        m: &mut Mods,
        ops: &[Operand],
    ) -> DResult<(Op, Class)> {
        use Class as C;
        match base {
            "add" | "sub" | "mul" | "mad" | "fma" | "div" | "rem" | "min" | "max" => {
                self.decode_arith(base, m, ops)
            }
            "abs" | "neg" => {
                arity(ops, 2)?;
                let ty = m.ty()?;
                if let Some(fty) = float_ty(ty) {
                    let mode = float_mode(m, fty)?;
                    let op = if base == "abs" {
                        FloatUnOp::Abs
                    } else {
                        FloatUnOp::Neg
                    };
                    let (d, a) = (self.dst(&ops[0])?, self.src(&ops[1], ty)?);
                    return Ok((
                        Op::FloatUn {
                            op,
                            ty: fty,
                            mode,
                            d,
                            a,
                        },
                        C::Float,
                    ));
                }
                let op = if base == "abs" {
                    IntUnOp::Abs
                } else {
                    IntUnOp::Neg
                };
                Ok((self.int_un(op, ty, ops)?, C::Int))
            }
            "not" | "cnot" | "and" | "or" | "xor" => self.decode_logic(base, m, ops),
            "shl" | "shr" => {
                let ty = m.ty()?;
                let op = if base == "shl" {
                    IntBinOp::Shl
                } else {
                    IntBinOp::Shr
                };
                Ok((self.int_bin(op, ty, ops)?, C::Int))
            }
            "popc" | "clz" | "brev" | "bfind" => {
                let shiftamt = base == "bfind" && m.flag("shiftamt");
                let ty = m.ty()?;
                let op = match base {
                    "popc" => IntUnOp::Popc,
                    "clz" => IntUnOp::Clz,
                    "brev" => IntUnOp::Brev,
                    _ if shiftamt => IntUnOp::BfindShiftAmt,
                    _ => IntUnOp::Bfind,
                };
                Ok((self.int_un(op, ty, ops)?, C::Int))
            }
            "bfe" => {
                arity(ops, 4)?;
                let ty = m.ty()?;
                let op = Op::IntTri {
                    op: IntTriOp::Bfe,
                    ty: int_ty(ty)?,
                    d: self.dst(&ops[0])?,
                    a: self.src(&ops[1], ty)?,
                    b: self.src(&ops[2], Ty::U32)?,
                    c: self.src(&ops[3], Ty::U32)?,
                };
                Ok((op, C::Int))
            }
            "bfi" => {
                arity(ops, 5)?;
                let ty = m.ty()?;
                let op = Op::Bfi {
                    ty: int_ty(ty)?,
                    d: self.dst(&ops[0])?,
                    a: self.src(&ops[1], ty)?,
                    b: self.src(&ops[2], ty)?,
                    pos: self.src(&ops[3], Ty::U32)?,
                    len: self.src(&ops[4], Ty::U32)?,
                };
                Ok((op, C::Int))
            }
            "prmt" | "lop3" => {
                if m.ty()? != Ty::B32 {
                    return unsupported(format!("{base} on a type other than .b32"));
                }
                arity(ops, if base == "prmt" { 4 } else { 5 })?;
                let (d, a, b, c) = (
                    self.dst(&ops[0])?,
                    self.src(&ops[1], Ty::B32)?,
                    self.src(&ops[2], Ty::B32)?,
                    self.src(&ops[3], Ty::B32)?,
                );
                if base == "prmt" {
                    return Ok((Op::Prmt { d, a, b, c }, C::Int));
                }
                let Src::Imm(lut) = self.src(&ops[4], Ty::B8)? else {
                    return invalid("lop3 needs an immediate lookup table");
                };
                Ok((
                    Op::Lop3 {
                        d,
                        a,
                        b,
                        c,
                        lut: lut as u8,
                    },
                    C::Int,
                ))
            }
            "shf" => {
                let left = match m.one_of(&["l", "r"]) {
                    Some(dir) => dir == "l",
                    None => return invalid("shf needs .l or .r"),
                };
                let clamp = match m.one_of(&["wrap", "clamp"]) {
                    Some(mode) => mode == "clamp",
                    None => return invalid("shf needs .wrap or .clamp"),
                };
                if m.ty()? != Ty::B32 {
                    return unsupported("shf on a type other than .b32");
                }
                arity(ops, 4)?;
                let op = Op::Shf {
                    d: self.dst(&ops[0])?,
                    a: self.src(&ops[1], Ty::B32)?,
                    b: self.src(&ops[2], Ty::B32)?,
                    c: self.src(&ops[3], Ty::U32)?,
                    left,
                    clamp,
                };
                Ok((op, C::Int))
            }
            "setp" => self.decode_setp(m, ops),
            "selp" => {
                arity(ops, 4)?;
                let ty = m.ty()?;
                let op = Op::Selp {
                    d: self.dst(&ops[0])?,
                    a: self.src(&ops[1], ty)?,
                    b: self.src(&ops[2], ty)?,
                    p: self.pred_src(&ops[3])?,
                };
                Ok((op, C::Move))
            }
            "slct" => {
                let ftz = m.flag("ftz");
                let tys = m.types();
                let [dty, cty] = tys[..] else {
                    return invalid("slct needs two types");
                };
                let float = match cty {
                    Ty::S32 => false,
                    Ty::F32 => true,
                    _ => return invalid("slct's selector type must be .s32 or .f32"),
                };
                if ftz && !float {
                    return invalid(".ftz on slct with an .s32 selector");
                }
                arity(ops, 4)?;
                let op = Op::Slct {
                    d: self.dst(&ops[0])?,
                    a: self.src(&ops[1], dty)?,
                    b: self.src(&ops[2], dty)?,
                    c: self.src(&ops[3], cty)?,
                    float,
                };
                Ok((op, C::Move))
            }
            "mov" => self.decode_mov(m, ops),
            "cvt" => self.decode_cvt(m, ops),
            "rcp" | "sqrt" | "rsqrt" | "ex2" | "lg2" | "sin" | "cos" | "tanh" => {
                arity(ops, 2)?;
                let approx = m.flag("approx");
                let ty = m.ty()?;
                let Some(fty) = float_ty(ty) else {
                    return invalid(format!("{base} on .{ty:?}"));
                };
                let explicit_rnd = m.one_of(&["rn", "rz", "rm", "rp"]);
                let mut mode = FloatMode {
                    rnd: explicit_rnd.map_or(Rnd::Nearest, rnd_of),
                    ftz: m.flag("ftz"),
                    sat: false,
                    nan: false,
                };
                if approx == explicit_rnd.is_some() {
                    return invalid(format!(
                        "{base} needs exactly one of .approx or a rounding mode"
                    ));
                }
                if fty == FloatTy::F64 && mode.rnd != Rnd::Nearest {
                    return unsupported(format!("{base}.f64 with directed rounding"));
                }
                if matches!(base, "sqrt" | "rcp") && fty != FloatTy::F32 && fty != FloatTy::F64 {
                    return unsupported(format!("{base} on .{ty:?}"));
                }
                mode.ftz &= fty != FloatTy::F64;
                let op = match base {
                    "rcp" => FloatUnOp::Rcp,
                    "sqrt" => FloatUnOp::Sqrt,
                    "rsqrt" => FloatUnOp::Rsqrt,
                    "ex2" => FloatUnOp::Ex2,
                    "lg2" => FloatUnOp::Lg2,
                    "sin" => FloatUnOp::Sin,
                    "cos" => FloatUnOp::Cos,
                    _ => FloatUnOp::Tanh,
                };
                let (d, a) = (self.dst(&ops[0])?, self.src(&ops[1], ty)?);
                Ok((
                    Op::FloatUn {
                        op,
                        ty: fty,
                        mode,
                        d,
                        a,
                    },
                    C::Special,
                ))
            }
            "testp" => {
                arity(ops, 2)?;
                let op = match m.one_of(&[
                    "finite",
                    "infinite",
                    "number",
                    "notanumber",
                    "normal",
                    "subnormal",
                ]) {
                    Some("finite") => TestOp::Finite,
                    Some("infinite") => TestOp::Infinite,
                    Some("number") => TestOp::Number,
                    Some("notanumber") => TestOp::NotANumber,
                    Some("normal") => TestOp::Normal,
                    Some(_) => TestOp::Subnormal,
                    None => return invalid("testp needs a test"),
                };
                let ty = m.ty()?;
                let fty = match ty {
                    Ty::F32 => FloatTy::F32,
                    Ty::F64 => FloatTy::F64,
                    _ => return invalid("testp takes .f32 or .f64"),
                };
                let op = Op::Testp {
                    op,
                    ty: fty,
                    d: self.dst_pred(&ops[0])?,
                    a: self.src(&ops[1], ty)?,
                };
                Ok((op, C::Float))
            }
            "copysign" => {
                let ty = m.ty()?;
                let fty = match ty {
                    Ty::F32 => FloatTy::F32,
                    Ty::F64 => FloatTy::F64,
                    _ => return invalid("copysign takes .f32 or .f64"),
                };
                let mode = FloatMode {
                    rnd: Rnd::Nearest,
                    ftz: false,
                    sat: false,
                    nan: false,
                };
                Ok((
                    self.float_bin(FloatBinOp::CopySign, ty, fty, mode, ops)?,
                    C::Float,
                ))
            }
            _ => unsupported(format!("opcode `{base}`")),
        }
    }

    pub(super) fn int_un(&self, op: IntUnOp, ty: Ty, ops: &[Operand]) -> DResult<Op> {
        arity(ops, 2)?;
        Ok(Op::IntUn {
            op,
            ty: int_ty(ty)?,
            d: self.dst(&ops[0])?,
            a: self.src(&ops[1], ty)?,
        })
    }
}
