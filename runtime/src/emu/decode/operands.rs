//! Operand decoding: registers (scoped), predicates, typed immediates, symbols and addresses.

use super::{imm_bits, invalid, unsupported, DResult, KernelDecoder, RegRef, Symbol};
use crate::emu::ast::Operand;
use crate::emu::program::{Addr, Pred, PredSrc, Reg, Src};
use crate::emu::types::{Space, Ty, LOCAL_WINDOW, SHARED_WINDOW};

impl KernelDecoder<'_> {
    pub(crate) fn pred_reg(&self, name: &str) -> DResult<Pred> {
        match self.lookup(name) {
            Some(RegRef::Pred(p)) => Ok(p),
            Some(_) => invalid(format!("`{name}` is not a predicate register")),
            None => invalid(format!("undeclared register `{name}`")),
        }
    }

    pub(crate) fn val_reg(&self, name: &str) -> DResult<(Reg, Ty)> {
        match self.lookup(name) {
            Some(RegRef::Val { idx, ty }) => Ok((idx, ty)),
            Some(_) => invalid(format!(
                "`{name}` is a predicate, a value register is needed"
            )),
            None if name.starts_with("%clock") || name.starts_with("%globaltimer") => {
                unsupported(format!("special register `{name}` (not deterministic)"))
            }
            None if name.starts_with('%') => invalid(format!("undeclared register `{name}`")),
            None => invalid(format!("`{name}` is not a register")),
        }
    }

    pub(crate) fn dst(&self, op: &Operand) -> DResult<Reg> {
        match op {
            Operand::Name(n) => Ok(self.val_reg(n)?.0),
            other => invalid(format!("expected a destination register, found {other:?}")),
        }
    }

    /// A destination that may be a `_` sink.
    pub(crate) fn dst_or_sink(&self, op: &Operand) -> DResult<Option<Reg>> {
        match op {
            Operand::Sink => Ok(None),
            other => self.dst(other).map(Some),
        }
    }

    pub(crate) fn dst_pred(&self, op: &Operand) -> DResult<Pred> {
        match op {
            Operand::Name(n) => self.pred_reg(n),
            other => invalid(format!("expected a predicate destination, found {other:?}")),
        }
    }

    pub(crate) fn pred_src(&self, op: &Operand) -> DResult<PredSrc> {
        match op {
            Operand::Name(n) => Ok(PredSrc {
                reg: self.pred_reg(n)?,
                negated: false,
            }),
            Operand::Not(n) => Ok(PredSrc {
                reg: self.pred_reg(n)?,
                negated: true,
            }),
            other => invalid(format!("expected a predicate, found {other:?}")),
        }
    }

    /// A source read as `ty`: a register, an immediate converted to `ty`, or a symbol's address
    /// in its own state space.
    pub(crate) fn src(&self, op: &Operand, ty: Ty) -> DResult<Src> {
        match op {
            Operand::Imm(lit) => Ok(Src::Imm(imm_bits(*lit, ty)?)),
            // Registers (possibly scoped) shadow variables of the same name.
            Operand::Name(n) => match (self.lookup(n), self.symbols.get(n)) {
                (None, Some(sym)) => Ok(Src::Imm(sym.addr)),
                _ => Ok(Src::Reg(self.val_reg(n)?.0)),
            },
            other => invalid(format!("expected a source operand, found {other:?}")),
        }
    }

    /// An address operand for an access in `space`.
    pub(crate) fn addr(&self, op: &Operand, space: Space) -> DResult<Addr> {
        let Operand::Addr { base, offset } = op else {
            return invalid(format!("expected an address `[...]`, found {op:?}"));
        };
        let base = match base {
            None => Src::Imm(0),
            Some(name) => match (self.lookup(name), self.symbols.get(name)) {
                (None, Some(sym)) => Src::Imm(self.symbol_address(name, *sym, space)?),
                _ => Src::Reg(self.val_reg(name)?.0),
            },
        };
        Ok(Addr {
            base,
            offset: *offset,
        })
    }

    fn symbol_address(&self, name: &str, sym: Symbol, space: Space) -> DResult<u64> {
        let const_as_global = |s: Space| if s == Space::Const { Space::Global } else { s };
        if const_as_global(space) == sym.space {
            return Ok(sym.addr);
        }
        match (space, sym.space) {
            (Space::Generic, Space::Global) => Ok(sym.addr),
            (Space::Generic, Space::Shared) => Ok(SHARED_WINDOW + sym.addr),
            (Space::Generic, Space::Local) => Ok(LOCAL_WINDOW + sym.addr),
            _ => invalid(format!(
                "`{name}` is in {:?} space, the access is {space:?}",
                sym.space
            )),
        }
    }

    pub(crate) fn label(&self, op: &Operand) -> DResult<u32> {
        match op {
            Operand::Name(n) => match self.labels.get(n) {
                Some(&t) => Ok(t),
                None => invalid(format!("unknown label `{n}`")),
            },
            other => invalid(format!("expected a label, found {other:?}")),
        }
    }
}
