//! Decoding of arithmetic, logic, comparison, move and conversion instructions.

use super::mods::Mods;
use super::{arity, invalid, unsupported, DResult, KernelDecoder};
use crate::emu::ast::Operand;
use crate::emu::program::*;
use crate::emu::types::{Kind, Ty};

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

fn rnd_of(name: &str) -> Rnd {
    match name {
        "rn" | "rni" => Rnd::Nearest,
        "rz" | "rzi" => Rnd::Zero,
        "rm" | "rmi" => Rnd::Down,
        _ => Rnd::Up,
    }
}

/// Reads `.rn`-style rounding, `.ftz` and `.sat`.
fn float_mode(m: &mut Mods, ty: FloatTy) -> DResult<FloatMode> {
    let rnd = m.one_of(&["rn", "rz", "rm", "rp"]).map_or(Rnd::Nearest, rnd_of);
    let ftz = m.flag("ftz");
    let sat = m.flag("sat");
    if ty == FloatTy::F64 && (ftz || sat) {
        return unsupported(".ftz/.sat on .f64");
    }
    Ok(FloatMode { rnd, ftz, sat, nan: false })
}

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
    fn int_bin(&self, op: IntBinOp, ty: Ty, ops: &[Operand]) -> DResult<Op> {
        arity(ops, 3)?;
        let b_ty = if matches!(op, IntBinOp::Shl | IntBinOp::Shr) { Ty::U32 } else { ty };
        Ok(Op::IntBin {
            op,
            ty: int_ty(ty)?,
            d: self.dst(&ops[0])?,
            a: self.src(&ops[1], ty)?,
            b: self.src(&ops[2], b_ty)?,
        })
    }

    fn float_bin(&self, op: FloatBinOp, ty: Ty, fty: FloatTy, mode: FloatMode, ops: &[Operand]) -> DResult<Op> {
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

    fn fma(&self, ty: Ty, fty: FloatTy, mode: FloatMode, ops: &[Operand]) -> DResult<Op> {
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

    pub(super) fn decode_alu(&self, base: &str, m: &mut Mods, ops: &[Operand]) -> DResult<(Op, Class)> {
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
                    let op = if base == "abs" { FloatUnOp::Abs } else { FloatUnOp::Neg };
                    let (d, a) = (self.dst(&ops[0])?, self.src(&ops[1], ty)?);
                    return Ok((Op::FloatUn { op, ty: fty, mode, d, a }, C::Float));
                }
                let op = if base == "abs" { IntUnOp::Abs } else { IntUnOp::Neg };
                Ok((self.int_un(op, ty, ops)?, C::Int))
            }
            "not" | "cnot" | "and" | "or" | "xor" => self.decode_logic(base, m, ops),
            "shl" | "shr" => {
                let ty = m.ty()?;
                let op = if base == "shl" { IntBinOp::Shl } else { IntBinOp::Shr };
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
                Ok((Op::Lop3 { d, a, b, c, lut: lut as u8 }, C::Int))
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
                let [dty, cty] = tys[..] else { return invalid("slct needs two types") };
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
                let Some(fty) = float_ty(ty) else { return invalid(format!("{base} on .{ty:?}")) };
                let explicit_rnd = m.one_of(&["rn", "rz", "rm", "rp"]);
                let mut mode = FloatMode { rnd: explicit_rnd.map_or(Rnd::Nearest, rnd_of), ftz: m.flag("ftz"), sat: false, nan: false };
                if approx == explicit_rnd.is_some() {
                    return invalid(format!("{base} needs exactly one of .approx or a rounding mode"));
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
                Ok((Op::FloatUn { op, ty: fty, mode, d, a }, C::Special))
            }
            "testp" => {
                arity(ops, 2)?;
                let op = match m.one_of(&["finite", "infinite", "number", "notanumber", "normal", "subnormal"]) {
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
                let op = Op::Testp { op, ty: fty, d: self.dst_pred(&ops[0])?, a: self.src(&ops[1], ty)? };
                Ok((op, C::Float))
            }
            "copysign" => {
                let ty = m.ty()?;
                let fty = match ty {
                    Ty::F32 => FloatTy::F32,
                    Ty::F64 => FloatTy::F64,
                    _ => return invalid("copysign takes .f32 or .f64"),
                };
                let mode = FloatMode { rnd: Rnd::Nearest, ftz: false, sat: false, nan: false };
                Ok((self.float_bin(FloatBinOp::CopySign, ty, fty, mode, ops)?, C::Float))
            }
            _ => unsupported(format!("opcode `{base}`")),
        }
    }

    fn int_un(&self, op: IntUnOp, ty: Ty, ops: &[Operand]) -> DResult<Op> {
        arity(ops, 2)?;
        Ok(Op::IntUn { op, ty: int_ty(ty)?, d: self.dst(&ops[0])?, a: self.src(&ops[1], ty)? })
    }

    fn decode_arith(&self, base: &str, m: &mut Mods, ops: &[Operand]) -> DResult<(Op, Class)> {
        use Class as C;
        let int_variant = m.one_of(&["lo", "hi", "wide"]);
        let approx = m.one_of(&["approx", "full"]);
        let nan = m.flag("NaN");
        let ty = m.ty()?;
        if let Some(fty) = float_ty(ty) {
            if int_variant.is_some() {
                return invalid(format!("{base}.{} on a float type", int_variant.unwrap_or("")));
            }
            let mut mode = float_mode(m, fty)?;
            mode.nan = nan;
            let class = if approx.is_some() { C::Special } else { C::Float };
            if approx.is_some() && !(base == "div" && fty == FloatTy::F32) {
                return unsupported(format!("{base}.{} on .{ty:?}", approx.unwrap_or("")));
            }
            if fty == FloatTy::F64 && mode.rnd != Rnd::Nearest && matches!(base, "fma" | "mad" | "div") {
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
            let class = if op == FloatBinOp::Div { C::Special } else { class };
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
            ("add", None) => if sat { IntBinOp::AddSat } else { IntBinOp::Add },
            ("sub", None) => if sat { IntBinOp::SubSat } else { IntBinOp::Sub },
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
                let c = if base == "mad" { Some(self.src(&ops[3], wide)?) } else { None };
                let op = Op::Wide { ty: ity, d: self.dst(&ops[0])?, a: self.src(&ops[1], ty)?, b: self.src(&ops[2], ty)?, c };
                return Ok((op, C::Int));
            }
            ("mad", Some(v)) => {
                arity(ops, 4)?;
                let op = Op::IntTri {
                    op: if v == "lo" { IntTriOp::MadLo } else { IntTriOp::MadHi },
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

    fn decode_logic(&self, base: &str, m: &mut Mods, ops: &[Operand]) -> DResult<(Op, Class)> {
        let ty = m.ty()?;
        let unary = matches!(base, "not" | "cnot");
        if ty == Ty::Pred {
            if base == "cnot" {
                return invalid("cnot on .pred");
            }
            if unary {
                arity(ops, 2)?;
                let a = self.pred_src(&ops[1])?;
                let a = PredSrc { reg: a.reg, negated: !a.negated };
                return Ok((Op::MovPred { d: self.dst_pred(&ops[0])?, a }, Class::Int));
            }
            arity(ops, 3)?;
            let op = match base {
                "and" => BoolOp::And,
                "or" => BoolOp::Or,
                _ => BoolOp::Xor,
            };
            let (d, a, b) = (self.dst_pred(&ops[0])?, self.pred_src(&ops[1])?, self.pred_src(&ops[2])?);
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

    fn decode_setp(&self, m: &mut Mods, ops: &[Operand]) -> DResult<(Op, Class)> {
        let cmp_name = m.one_of(&[
            "eq", "ne", "lt", "le", "gt", "ge", "lo", "ls", "hi", "hs", "equ", "neu", "ltu", "leu", "gtu", "geu",
            "num", "nan",
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
            Some(f @ (FloatTy::F16x2 | FloatTy::Bf16x2)) => return unsupported(format!("setp on .{f:?}")),
            Some(f) => CmpTy::Float(f),
            None => {
                let unordered = !matches!(cmp, Cmp::Eq | Cmp::Ne | Cmp::Lt | Cmp::Le | Cmp::Gt | Cmp::Ge);
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
        let op = Op::Setp { cmp, ty: cmp_ty, ftz, d, d2, a: self.src(&ops[1], ty)?, b: self.src(&ops[2], ty)?, combine };
        Ok((op, if cmp_ty == CmpTy::Float(FloatTy::F32) { Class::Float } else { Class::Int }))
    }

    fn decode_mov(&self, m: &mut Mods, ops: &[Operand]) -> DResult<(Op, Class)> {
        arity(ops, 2)?;
        let ty = m.ty()?;
        if ty == Ty::Pred {
            return Ok((Op::MovPred { d: self.dst_pred(&ops[0])?, a: self.pred_src(&ops[1])? }, Class::Move));
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
                let op = Op::Unpack { d, count: ds.len() as u8, bits: (ty.bits() / ds.len() as u32) as u8, a: self.src(a, ty)? };
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
                let op = Op::Pack { d: self.dst(d)?, parts: srcs, count: parts.len() as u8, bits: bits as u8 };
                Ok((op, Class::Move))
            }
            (d, a) => Ok((Op::Mov { d: self.dst(d)?, a: self.src(a, ty)? }, Class::Move)),
        }
    }

    fn decode_cvt(&self, m: &mut Mods, ops: &[Operand]) -> DResult<(Op, Class)> {
        let int_rnd = m.one_of(&["rni", "rzi", "rmi", "rpi"]);
        let float_rnd = m.one_of(&["rn", "rz", "rm", "rp"]);
        let ftz = m.flag("ftz");
        let sat = m.flag("sat");
        let tys = m.types();
        let [dst, src] = tys[..] else { return invalid("cvt needs a destination and a source type") };
        if int_rnd.is_some() && float_rnd.is_some() {
            return invalid("cvt with two rounding modes");
        }
        let rnd = int_rnd.or(float_rnd).map(rnd_of);
        let conv = Conv { dst, src, rnd, int_rnd: int_rnd.is_some(), sat, ftz };
        if matches!(dst, Ty::Bf16x2 | Ty::F16x2) {
            if src != Ty::F32 {
                return unsupported(format!("cvt to .{dst:?} from .{src:?}"));
            }
            arity(ops, 3)?;
            let op = Op::CvtPack { conv, d: self.dst(&ops[0])?, a: self.src(&ops[1], src)?, b: self.src(&ops[2], src)? };
            return Ok((op, Class::Convert));
        }
        if matches!(src, Ty::Bf16x2 | Ty::F16x2 | Ty::Pred) || dst == Ty::Pred {
            return unsupported(format!("cvt from .{src:?} to .{dst:?}"));
        }
        arity(ops, 2)?;
        let (d, a) = (self.dst(&ops[0])?, self.src(&ops[1], src)?);
        if dst == src && dst.is_float() {
            let fty = float_ty(dst).expect("checked to be a float type");
            let op = if int_rnd.is_some() { FloatUnOp::RoundInt } else { FloatUnOp::Identity };
            let mode = FloatMode { rnd: rnd.unwrap_or(Rnd::Nearest), ftz, sat, nan: false };
            return Ok((Op::FloatUn { op, ty: fty, mode, d, a }, Class::Convert));
        }
        if int_rnd.is_some() && !src.is_float() {
            return invalid("integer rounding on a conversion from an integer");
        }
        Ok((Op::Cvt { conv, d, a }, Class::Convert))
    }
}
