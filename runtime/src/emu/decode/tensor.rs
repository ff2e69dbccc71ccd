//! Decoding of the tensor-core instructions, `mma.sync` (m16n8k16, bf16/f16 inputs, f32
//! accumulators) and `ldmatrix`, and of the asynchronous copies that feed them (`cp.async`).

use super::mods::Mods;
use super::{arity, invalid, unsupported, DResult, KernelDecoder};
use crate::emu::ast::Operand;
use crate::emu::lexer::Literal;
use crate::emu::program::*;
use crate::emu::types::{Space, Ty};

impl KernelDecoder<'_> {
    /// The registers of a `{..}` operand, exactly `n` of them (a single register for `n = 1`).
    fn reg_list(&self, op: &Operand, n: usize) -> DResult<Vec<Reg>> {
        match op {
            Operand::Vector(items) if items.len() == n => items.iter().map(|i| self.dst(i)).collect(),
            Operand::Name(_) if n == 1 => Ok(vec![self.dst(op)?]),
            other => invalid(format!("expected {n} registers in braces, found {other:?}")),
        }
    }

    fn src_list(&self, op: &Operand, n: usize, ty: Ty) -> DResult<Vec<Src>> {
        match op {
            Operand::Vector(items) if items.len() == n => {
                items.iter().map(|i| self.src(i, ty)).collect()
            }
            other => invalid(format!("expected {n} operands in braces, found {other:?}")),
        }
    }

    pub(super) fn decode_tensor(
        &self,
        base: &str,
        m: &mut Mods,
        ops: &[Operand],
    ) -> DResult<(Op, Class)> {
        if !m.flag("sync") || !m.flag("aligned") {
            return unsupported(format!("{base} without .sync.aligned"));
        }
        match base {
            "mma" => {
                if !m.flag("m16n8k16") {
                    return unsupported("mma shapes other than m16n8k16");
                }
                if !m.flag("row") || !m.flag("col") {
                    return unsupported("mma layouts other than .row.col");
                }
                let input = match m.types().as_slice() {
                    [Ty::F32, Ty::Bf16, Ty::Bf16, Ty::F32] => MmaInput::Bf16,
                    [Ty::F32, Ty::F16, Ty::F16, Ty::F32] => MmaInput::F16,
                    other => return unsupported(format!("mma types {other:?} (only f32.bf16.bf16.f32 and f32.f16.f16.f32)")),
                };
                arity(ops, 4)?;
                let d = self.reg_list(&ops[0], 4)?;
                let a = self.src_list(&ops[1], 4, Ty::B32)?;
                let b = self.src_list(&ops[2], 2, Ty::B32)?;
                let c = self.src_list(&ops[3], 4, Ty::F32)?;
                let op = Op::Mma {
                    input,
                    d: [d[0], d[1], d[2], d[3]],
                    a: [a[0], a[1], a[2], a[3]],
                    b: [b[0], b[1]],
                    c: [c[0], c[1], c[2], c[3]],
                };
                Ok((op, Class::Tensor))
            }
            _ => {
                if !m.flag("m8n8") {
                    return unsupported("ldmatrix shapes other than m8n8");
                }
                let count = match m.one_of(&["x1", "x2", "x4"]) {
                    Some("x1") => 1,
                    Some("x2") => 2,
                    Some(_) => 4,
                    None => return invalid("ldmatrix needs .x1, .x2 or .x4"),
                };
                let trans = m.flag("trans");
                if m.one_of(&["shared", "shared::cta"]).is_none() {
                    return unsupported("ldmatrix outside .shared");
                }
                if m.ty()? != Ty::B16 {
                    return unsupported("ldmatrix types other than .b16");
                }
                arity(ops, 2)?;
                let regs = self.reg_list(&ops[0], count)?;
                let mut d = [regs[0]; 4];
                d[..count].copy_from_slice(&regs);
                let op = Op::Ldmatrix {
                    count: count as u8,
                    trans,
                    d,
                    addr: self.addr(&ops[1], Space::Shared)?,
                };
                Ok((op, Class::Shared))
            }
        }
    }

    /// `cp.async.{ca,cg}.shared.global [dst], [src], size[, src-size]`, `cp.async.commit_group`,
    /// `cp.async.wait_group N`, `cp.async.wait_all`.
    pub(super) fn decode_cp_async(&self, m: &mut Mods, ops: &[Operand]) -> DResult<(Op, Class)> {
        if !m.flag("async") {
            return unsupported("cp other than cp.async");
        }
        if m.flag("commit_group") {
            arity(ops, 0)?;
            return Ok((Op::CpAsyncCommit, Class::Control));
        }
        if m.flag("wait_all") {
            arity(ops, 0)?;
            return Ok((Op::CpAsyncWait { keep: 0, commit: true }, Class::Control));
        }
        if m.flag("wait_group") {
            arity(ops, 1)?;
            let keep = match &ops[0] {
                Operand::Imm(Literal::Int(n)) if (0..=1024).contains(n) => *n as u32,
                other => return invalid(format!("cp.async.wait_group takes a small constant, found {other:?}")),
            };
            return Ok((Op::CpAsyncWait { keep, commit: false }, Class::Control));
        }
        let cg = match m.one_of(&["ca", "cg"]) {
            Some(level) => level == "cg",
            None => return invalid("cp.async needs .ca or .cg"),
        };
        if m.one_of(&["shared", "shared::cta"]).is_none() || !m.flag("global") {
            return unsupported("cp.async other than .shared.global");
        }
        m.ignore(|p| matches!(p, "L2::64B" | "L2::128B" | "L2::256B"));
        if ops.len() != 3 && ops.len() != 4 {
            return invalid(format!("cp.async takes 3 or 4 operands, found {}", ops.len()));
        }
        let size = match &ops[2] {
            Operand::Imm(Literal::Int(n)) if matches!(*n, 4 | 8 | 16) => *n as u8,
            other => return invalid(format!("cp.async size must be 4, 8 or 16, found {other:?}")),
        };
        if cg && size != 16 {
            return invalid("cp.async.cg copies 16 bytes");
        }
        let src_size = match ops.get(3) {
            Some(op) => Some(self.src(op, Ty::U32)?),
            None => None,
        };
        let op = Op::CpAsync {
            size,
            src_size,
            dst: self.addr(&ops[0], Space::Shared)?,
            src: self.addr(&ops[1], Space::Global)?,
        };
        Ok((op, Class::Global))
    }
}
