//! Placement of a kernel's parameters, shared and local variables, and its registers.

use std::collections::HashSet;

use super::{parse_err, KernelDecoder, RegRef, Symbol};
use crate::emu::ast::{Operand, RegName, Stmt, VarDecl};
use crate::emu::error::EmuError;
use crate::emu::program::Param;
use crate::emu::types::{Space, Ty};

impl KernelDecoder<'_> {
    pub(super) fn layout_params(&mut self) -> Result<(Vec<Param>, u32), EmuError> {
        let mut params = Vec::new();
        let mut offset = 0u32;
        for p in &self.func.params {
            if p.ty == Ty::Pred {
                return Err(parse_err(self.src, p.line, "predicate parameter"));
            }
            let len = p.len.unwrap_or(1);
            let size = p.ty.bytes() * len;
            let align = p.align.unwrap_or(p.ty.bytes()).max(1);
            offset = offset.next_multiple_of(align);
            self.symbols.insert(
                p.name.clone(),
                Symbol {
                    space: Space::Param,
                    addr: offset as u64,
                },
            );
            params.push(Param {
                name: p.name.clone(),
                ty: p.ty,
                len,
                offset,
                size,
            });
            offset += size;
        }
        Ok((params, offset))
    }

    /// Places the kernel's own `.shared` variables and the module-level ones it names; every
    /// `extern` (dynamic) array starts at the returned dynamic offset.
    pub(super) fn layout_shared(&mut self, module_shared: &[&VarDecl]) -> (u32, u32) {
        let mut used = HashSet::new();
        for stmt in &self.func.body {
            if let Stmt::Instr(i) = stmt {
                for op in &i.operands {
                    collect_names(op, &mut used);
                }
            }
        }
        let body_vars = self.func.body.iter().filter_map(|s| match s {
            Stmt::Var(v) if v.space == Space::Shared => Some(v),
            _ => None,
        });
        let vars: Vec<&VarDecl> = module_shared
            .iter()
            .copied()
            .filter(|v| used.contains(v.name.as_str()))
            .chain(body_vars)
            .collect();
        let mut offset = 0u64;
        let mut dynamic_align = 16u64;
        for var in vars.iter().filter(|v| !is_dynamic(v)) {
            offset = offset.next_multiple_of(var.alignment().max(1));
            self.symbols.insert(
                var.name.clone(),
                Symbol {
                    space: Space::Shared,
                    addr: offset,
                },
            );
            offset += var.size();
        }
        for var in vars.iter().filter(|v| is_dynamic(v)) {
            dynamic_align = dynamic_align.max(var.alignment());
        }
        let dynamic = offset.next_multiple_of(dynamic_align);
        for var in vars.iter().filter(|v| is_dynamic(v)) {
            self.symbols.insert(
                var.name.clone(),
                Symbol {
                    space: Space::Shared,
                    addr: dynamic,
                },
            );
        }
        (offset as u32, dynamic as u32)
    }

    pub(super) fn layout_local(&mut self) -> u32 {
        let mut offset = 0u64;
        for stmt in &self.func.body {
            if let Stmt::Var(v) = stmt {
                if v.space == Space::Local {
                    offset = offset.next_multiple_of(v.alignment().max(1));
                    self.symbols.insert(
                        v.name.clone(),
                        Symbol {
                            space: Space::Local,
                            addr: offset,
                        },
                    );
                    offset += v.size();
                }
            }
        }
        offset.next_multiple_of(8) as u32
    }

    pub(super) fn declare_regs(
        &mut self,
        ty: Ty,
        names: &[RegName],
        line: u32,
    ) -> Result<(), EmuError> {
        for name in names {
            let count = name.count.unwrap_or(1);
            for i in 0..count {
                let full = if name.count.is_some() {
                    format!("{}{}", name.base, i)
                } else {
                    name.base.clone()
                };
                let r = if ty == Ty::Pred {
                    self.num_preds += 1;
                    RegRef::Pred(self.num_preds - 1)
                } else {
                    self.num_regs += 1;
                    RegRef::Val {
                        idx: self.num_regs - 1,
                        ty,
                    }
                };
                let scope = self
                    .scopes
                    .last_mut()
                    .expect("the special-register scope is never popped");
                scope.insert(full, r);
            }
            if self.num_regs > 1 << 20 {
                return Err(parse_err(self.src, line, "too many registers"));
            }
        }
        Ok(())
    }
}

fn is_dynamic(v: &VarDecl) -> bool {
    v.is_extern || v.len == Some(None)
}

fn collect_names<'b>(op: &'b Operand, out: &mut HashSet<&'b str>) {
    match op {
        Operand::Name(n) | Operand::Not(n) => {
            out.insert(n);
        }
        Operand::Addr { base: Some(n), .. } => {
            out.insert(n);
        }
        Operand::Vector(items) => items.iter().for_each(|i| collect_names(i, out)),
        _ => {}
    }
}
