//! Decoding of memory, warp-synchronous and control-flow instructions.

use super::mods::Mods;
use super::{arity, invalid, unsupported, DResult, KernelDecoder};
use crate::emu::ast::Operand;
use crate::emu::program::*;
use crate::emu::types::{Kind, Space, Ty};

/// Memory-ordering and cache qualifiers that do not change results in a sequential emulator.
fn is_memory_hint(p: &str) -> bool {
    matches!(
        p,
        "weak"
            | "volatile"
            | "relaxed"
            | "acquire"
            | "release"
            | "acq_rel"
            | "cta"
            | "gpu"
            | "sys"
            | "cluster"
            | "ca"
            | "cg"
            | "cs"
            | "lu"
            | "cv"
            | "wb"
            | "wt"
            | "nc"
            | "L2::64B"
            | "L2::128B"
            | "L2::256B"
    ) || p.starts_with("L1::")
        || p.starts_with("L2::")
}

impl KernelDecoder<'_> {
    pub(super) fn decode_memory(
        &self,
        base: &str,
        m: &mut Mods,
        ops: &[Operand],
    ) -> DResult<(Op, Class)> {
        if base == "cvta" {
            return self.decode_cvta(m, ops);
        }
        let space = match m.one_of(&["global", "shared", "local", "param", "const"]) {
            Some(s) => Space::parse(s).expect("listed spaces parse"),
            None => Space::Generic,
        };
        if m.flag("shared::cta") {
            return unsupported("shared::cta qualifier");
        }
        // Strong accesses (PTX memory model) do not race with each other, see `sanitizer`.
        let strong = m.has(&["volatile", "relaxed", "acquire", "release"]);
        m.ignore(is_memory_hint);
        let class = match space {
            Space::Global | Space::Const | Space::Generic => Class::Global,
            Space::Shared => Class::Shared,
            Space::Local => Class::Local,
            Space::Param => Class::Param,
        };
        match base {
            "ld" | "ldu" => {
                let count = match m.one_of(&["v2", "v4"]) {
                    Some("v2") => 2,
                    Some(_) => 4,
                    None => 1,
                };
                let ty = m.ty()?;
                arity(ops, 2)?;
                let mut d = [None; 4];
                match &ops[0] {
                    Operand::Vector(items) if items.len() == count => {
                        for (slot, item) in d.iter_mut().zip(items) {
                            *slot = self.dst_or_sink(item)?;
                        }
                    }
                    single if count == 1 => d[0] = Some(self.dst(single)?),
                    _ => return invalid("vector width and destination count differ"),
                }
                check_mem_ty(ty)?;
                let addr = self.addr(&ops[1], space)?;
                let signed = ty.kind() == Kind::Signed;
                let op = Op::Ld {
                    space,
                    size: ty.bytes() as u8,
                    count: count as u8,
                    signed,
                    strong,
                    d,
                    addr,
                };
                Ok((op, class))
            }
            "st" => {
                if space == Space::Param || space == Space::Const {
                    return unsupported(format!("st to {space:?} space"));
                }
                let count = match m.one_of(&["v2", "v4"]) {
                    Some("v2") => 2,
                    Some(_) => 4,
                    None => 1,
                };
                let ty = m.ty()?;
                check_mem_ty(ty)?;
                arity(ops, 2)?;
                let mut v = [Src::Imm(0); 4];
                match &ops[1] {
                    Operand::Vector(items) if items.len() == count => {
                        for (slot, item) in v.iter_mut().zip(items) {
                            *slot = self.src(item, ty)?;
                        }
                    }
                    single if count == 1 => v[0] = self.src(single, ty)?,
                    _ => return invalid("vector width and source count differ"),
                }
                let addr = self.addr(&ops[0], space)?;
                Ok((
                    Op::St {
                        space,
                        size: ty.bytes() as u8,
                        count: count as u8,
                        strong,
                        v,
                        addr,
                    },
                    class,
                ))
            }
            _ => self.decode_atomic(base, space, m, ops),
        }
    }

    fn decode_atomic(
        &self,
        base: &str,
        space: Space,
        m: &mut Mods,
        ops: &[Operand],
    ) -> DResult<(Op, Class)> {
        if !matches!(space, Space::Global | Space::Shared | Space::Generic) {
            return invalid(format!("{base} on {space:?} space"));
        }
        let op = match m.one_of(&[
            "add", "min", "max", "inc", "dec", "and", "or", "xor", "exch", "cas",
        ]) {
            Some("add") => AtomOp::Add,
            Some("min") => AtomOp::Min,
            Some("max") => AtomOp::Max,
            Some("inc") => AtomOp::Inc,
            Some("dec") => AtomOp::Dec,
            Some("and") => AtomOp::And,
            Some("or") => AtomOp::Or,
            Some("xor") => AtomOp::Xor,
            Some("exch") => AtomOp::Exch,
            Some(_) => AtomOp::Cas,
            None => return invalid(format!("{base} needs an operation")),
        };
        let ty = m.ty()?;
        let aty = match ty {
            Ty::B32 | Ty::U32 => AtomTy::U32,
            Ty::S32 => AtomTy::S32,
            Ty::B64 | Ty::U64 => AtomTy::U64,
            Ty::S64 => AtomTy::S64,
            Ty::F32 => AtomTy::F32,
            Ty::F64 => AtomTy::F64,
            other => return unsupported(format!("{base} on .{other:?}")),
        };
        let float = matches!(aty, AtomTy::F32 | AtomTy::F64);
        if float && op != AtomOp::Add {
            return unsupported(format!("{base} {op:?} on a float type"));
        }
        if matches!(op, AtomOp::Inc | AtomOp::Dec) && aty != AtomTy::U32 {
            return invalid("atom.inc/dec take .u32");
        }
        let is_red = base == "red";
        let n = if op == AtomOp::Cas { 4 } else { 3 } - usize::from(is_red);
        if is_red && op == AtomOp::Cas {
            return invalid("red.cas does not exist");
        }
        arity(ops, n)?;
        let (d, rest) = if is_red {
            (None, ops)
        } else {
            (Some(self.dst(&ops[0])?), &ops[1..])
        };
        let addr = self.addr(&rest[0], space)?;
        let b = self.src(&rest[1], ty)?;
        let c = if op == AtomOp::Cas {
            self.src(&rest[2], ty)?
        } else {
            Src::Imm(0)
        };
        Ok((
            Op::Atom {
                space,
                op,
                ty: aty,
                d,
                addr,
                b,
                c,
            },
            Class::Atomic,
        ))
    }

    fn decode_cvta(&self, m: &mut Mods, ops: &[Operand]) -> DResult<(Op, Class)> {
        let to = m.flag("to");
        let space = match m.one_of(&["global", "shared", "local", "const", "param"]) {
            Some(s) => Space::parse(s).expect("listed spaces parse"),
            None => return invalid("cvta needs a state space"),
        };
        let ty = m.ty()?;
        if !matches!(ty, Ty::U32 | Ty::U64 | Ty::B32 | Ty::B64) {
            return invalid("cvta takes .u32 or .u64");
        }
        if space == Space::Param {
            return unsupported("cvta on param space");
        }
        arity(ops, 2)?;
        let a = match &ops[1] {
            // `cvta.shared.u64 %rd, var`: a symbol's own-space address.
            Operand::Name(n) => self.src(&Operand::Name(n.clone()), ty)?,
            other => self.src(other, ty)?,
        };
        let op = Op::Cvta {
            space,
            to_generic: !to,
            bits: ty.bits() as u8,
            d: self.dst(&ops[0])?,
            a,
        };
        Ok((op, Class::Int))
    }

    pub(super) fn decode_control(
        &self,
        base: &str,
        m: &mut Mods,
        ops: &[Operand],
    ) -> DResult<(Op, Class)> {
        match base {
            "shfl" => {
                if !m.flag("sync") {
                    return unsupported("shfl without .sync (deprecated)");
                }
                let mode = match m.one_of(&["up", "down", "bfly", "idx"]) {
                    Some("up") => ShflMode::Up,
                    Some("down") => ShflMode::Down,
                    Some("bfly") => ShflMode::Bfly,
                    Some(_) => ShflMode::Idx,
                    None => return invalid("shfl needs a mode"),
                };
                if m.ty()? != Ty::B32 {
                    return invalid("shfl takes .b32");
                }
                arity(ops, 5)?;
                let (d, p) = match &ops[0] {
                    Operand::WithPred(r, p) => (self.val_reg(r)?.0, Some(self.pred_reg(p)?)),
                    other => (self.dst(other)?, None),
                };
                let op = Op::Shfl {
                    mode,
                    d,
                    p,
                    a: self.src(&ops[1], Ty::B32)?,
                    b: self.src(&ops[2], Ty::B32)?,
                    c: self.src(&ops[3], Ty::B32)?,
                    mask: self.src(&ops[4], Ty::B32)?,
                };
                Ok((op, Class::Warp))
            }
            "vote" => {
                if !m.flag("sync") {
                    return unsupported("vote without .sync (deprecated)");
                }
                let mode = match m.one_of(&["all", "any", "uni", "ballot"]) {
                    Some("all") => Some(VoteMode::All),
                    Some("any") => Some(VoteMode::Any),
                    Some("uni") => Some(VoteMode::Uni),
                    Some(_) => None,
                    None => return invalid("vote needs a mode"),
                };
                let ty = m.ty()?;
                arity(ops, 3)?;
                let a = self.pred_src(&ops[1])?;
                let mask = self.src(&ops[2], Ty::B32)?;
                let op = match mode {
                    None if ty == Ty::B32 => Op::Ballot {
                        d: self.dst(&ops[0])?,
                        a,
                        mask,
                    },
                    None => return invalid("vote.ballot takes .b32"),
                    Some(mode) if ty == Ty::Pred => Op::VotePred {
                        mode,
                        d: self.dst_pred(&ops[0])?,
                        a,
                        mask,
                    },
                    Some(_) => return invalid("vote.all/any/uni take .pred"),
                };
                Ok((op, Class::Warp))
            }
            "activemask" => {
                if m.ty()? != Ty::B32 {
                    return invalid("activemask takes .b32");
                }
                arity(ops, 1)?;
                Ok((
                    Op::Activemask {
                        d: self.dst(&ops[0])?,
                    },
                    Class::Warp,
                ))
            }
            "bar" | "barrier" => {
                if m.flag("warp") {
                    m.flag("sync");
                    arity(ops, 1)?;
                    return Ok((
                        Op::WarpSync {
                            mask: self.src(&ops[0], Ty::B32)?,
                        },
                        Class::Warp,
                    ));
                }
                m.flag("cta");
                m.flag("aligned");
                if !m.flag("sync") {
                    return unsupported(format!("{base} other than {base}.sync"));
                }
                if ops.len() != 1 {
                    return unsupported(format!("{base}.sync with a thread count"));
                }
                if !matches!(ops[0], Operand::Imm(_)) {
                    return unsupported(format!("{base}.sync with a register barrier id"));
                }
                Ok((Op::BarSync, Class::Barrier))
            }
            "membar" | "fence" => {
                m.ignore(|p| {
                    matches!(
                        p,
                        "cta" | "gl" | "gpu" | "sys" | "sc" | "acq_rel" | "cluster"
                    )
                });
                arity(ops, 0)?;
                Ok((Op::Nop, Class::Control))
            }
            "nanosleep" | "prefetch" | "prefetchu" => {
                m.ignore(|p| {
                    matches!(p, "u32" | "global" | "local" | "L1" | "L2") || is_memory_hint(p)
                });
                Ok((Op::Nop, Class::Control))
            }
            "bra" => {
                m.flag("uni");
                arity(ops, 1)?;
                Ok((
                    Op::Bra {
                        target: self.label(&ops[0])?,
                    },
                    Class::Control,
                ))
            }
            "ret" | "exit" => {
                m.flag("uni");
                arity(ops, 0)?;
                Ok((Op::Exit, Class::Control))
            }
            _ => unsupported(format!("opcode `{base}`")),
        }
    }
}

fn check_mem_ty(ty: Ty) -> DResult<()> {
    if ty == Ty::Pred {
        return invalid("memory access of .pred");
    }
    Ok(())
}
