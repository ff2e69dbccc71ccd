//! Turns a parsed function into a [`Kernel`]: registers become register-file indices, symbols
//! become addresses in their state space, labels become instruction indices, and each opcode with
//! its modifiers becomes one [`Op`]. Anything not implemented is rejected here, naming the line.

mod alu;
mod mem;
mod mods;

use std::collections::{HashMap, HashSet};

use super::ast::{FunctionAst, ModuleAst, Operand, RegName, Stmt, VarDecl};
use super::error::EmuError;
use super::lexer::Literal;
use super::parser::line_text;
use super::program::*;
use super::types::{Space, Ty, LOCAL_WINDOW, MODULE_GLOBAL_BASE, SHARED_WINDOW, WINDOW_SIZE};
use mods::Mods;

/// Why one instruction could not be decoded.
pub(crate) enum DecodeError {
    /// Valid PTX the emulator does not implement.
    Unsupported(String),
    /// Text that is not valid PTX (an undeclared register, a wrong operand count, ...).
    Invalid(String),
}

pub(crate) type DResult<T> = Result<T, DecodeError>;

pub(crate) fn unsupported<T>(what: impl Into<String>) -> DResult<T> {
    Err(DecodeError::Unsupported(what.into()))
}

pub(crate) fn invalid<T>(msg: impl Into<String>) -> DResult<T> {
    Err(DecodeError::Invalid(msg.into()))
}

/// The decoded kernels and the module-level global variables of one module.
pub(crate) struct DecodedModule {
    pub kernels: Vec<Kernel>,
    pub globals: Vec<GlobalVar>,
}

pub(crate) fn decode_module(src: &str, ast: &ModuleAst, module_id: u64) -> Result<DecodedModule, EmuError> {
    let slot = MODULE_GLOBAL_BASE + module_id * WINDOW_SIZE;
    let mut globals = Vec::new();
    let mut module_symbols = HashMap::new();
    let mut module_shared = Vec::new();
    let mut next = slot;
    for var in &ast.variables {
        match var.space {
            Space::Global | Space::Const => {
                let addr = next.next_multiple_of(var.alignment().max(1));
                let size = var.size();
                let init = init_bytes(src, var)?;
                next = addr + size.max(1);
                if next - slot > WINDOW_SIZE {
                    return Err(parse_err(src, var.line, "module globals exceed 4 GiB"));
                }
                module_symbols.insert(var.name.clone(), Symbol { space: Space::Global, addr });
                globals.push(GlobalVar { name: var.name.clone(), addr, init: pad(init, size) });
            }
            Space::Shared => module_shared.push(var),
            _ => return Err(parse_err(src, var.line, "module-level variable in this state space")),
        }
    }
    let mut kernels = Vec::new();
    for func in ast.functions.iter().filter(|f| f.is_entry) {
        kernels.push(KernelDecoder::new(src, func, &module_symbols).decode(&module_shared)?);
    }
    Ok(DecodedModule { kernels, globals })
}

fn parse_err(src: &str, line: u32, msg: &str) -> EmuError {
    EmuError::Parse { line, text: line_text(src, line), msg: msg.into() }
}

fn pad(mut bytes: Vec<u8>, size: u64) -> Vec<u8> {
    bytes.resize(size as usize, 0);
    bytes
}

/// The little-endian bytes of a variable's initializer, one element per literal.
fn init_bytes(src: &str, var: &VarDecl) -> Result<Vec<u8>, EmuError> {
    let mut out = Vec::new();
    for lit in &var.init {
        let bits = imm_bits(*lit, var.ty).map_err(|_| parse_err(src, var.line, "bad initializer"))?;
        out.extend_from_slice(&bits.to_le_bytes()[..var.ty.bytes() as usize]);
    }
    Ok(out)
}

/// Converts a literal to the bits of `ty`: integers are truncated for integer and bit types and
/// converted by value for float types; `0f`/`0d` literals are float bits.
pub(crate) fn imm_bits(lit: Literal, ty: Ty) -> DResult<u64> {
    let mask = if ty.bits() >= 64 { u64::MAX } else { (1u64 << ty.bits()) - 1 };
    let from_f64 = |v: f64| -> DResult<u64> {
        Ok(match ty {
            Ty::F32 => (v as f32).to_bits() as u64,
            Ty::F64 => v.to_bits(),
            Ty::F16 => half::f16::from_f64(v).to_bits() as u64,
            Ty::Bf16 => half::bf16::from_f64(v).to_bits() as u64,
            _ => return invalid(format!("float literal for a .{ty:?} operand")),
        })
    };
    match lit {
        Literal::Int(v) if ty.is_float() && !matches!(ty, Ty::F16x2 | Ty::Bf16x2) => from_f64(v as f64),
        Literal::Int(v) => Ok((v as u64) & mask),
        Literal::Float(v) => from_f64(v),
        Literal::F32Bits(b) => match ty {
            Ty::F32 | Ty::B32 | Ty::U32 | Ty::S32 => Ok(b as u64),
            _ => from_f64(f32::from_bits(b) as f64),
        },
        Literal::F64Bits(b) => match ty {
            Ty::F64 | Ty::B64 | Ty::U64 | Ty::S64 => Ok(b),
            _ => from_f64(f64::from_bits(b)),
        },
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum RegRef {
    Val { idx: Reg, ty: Ty },
    Pred(Pred),
}

/// A variable's address in its own state space (absolute for global, an offset otherwise).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Symbol {
    pub space: Space,
    pub addr: u64,
}

pub(crate) struct KernelDecoder<'a> {
    src: &'a str,
    func: &'a FunctionAst,
    scopes: Vec<HashMap<String, RegRef>>,
    symbols: HashMap<String, Symbol>,
    labels: HashMap<String, u32>,
    num_regs: u32,
    num_preds: u32,
}

impl<'a> KernelDecoder<'a> {
    fn new(src: &'a str, func: &'a FunctionAst, module_symbols: &HashMap<String, Symbol>) -> Self {
        let mut specials = HashMap::new();
        for (i, name) in SPECIALS.iter().enumerate() {
            specials.insert(name.to_string(), RegRef::Val { idx: i as Reg, ty: Ty::U32 });
        }
        KernelDecoder {
            src,
            func,
            scopes: vec![specials],
            symbols: module_symbols.clone(),
            labels: HashMap::new(),
            num_regs: SPECIAL_COUNT,
            num_preds: 0,
        }
    }

    fn decode(mut self, module_shared: &[&VarDecl]) -> Result<Kernel, EmuError> {
        let func = self.func;
        let (params, param_bytes) = self.layout_params()?;
        let (static_shared, dynamic_shared_offset) = self.layout_shared(module_shared);
        let local_bytes = self.layout_local();
        let mut index = 0u32;
        for stmt in &func.body {
            match stmt {
                Stmt::Label { name } => {
                    self.labels.insert(name.clone(), index);
                }
                Stmt::Instr(_) => index += 1,
                _ => {}
            }
        }
        let mut code = Vec::with_capacity(index as usize);
        for stmt in &func.body {
            match stmt {
                Stmt::Open => self.scopes.push(HashMap::new()),
                Stmt::Close => {
                    self.scopes.pop();
                }
                Stmt::Reg { ty, names, line } => self.declare_regs(*ty, names, *line)?,
                Stmt::Instr(instr) => {
                    let line = instr.line;
                    let result = self.decode_instr(instr);
                    let err_text = || line_text(self.src, line);
                    match result {
                        Ok(i) => code.push(i),
                        Err(DecodeError::Unsupported(what)) => {
                            return Err(EmuError::Unsupported {
                                kernel: func.name.clone(),
                                line,
                                text: err_text(),
                                what,
                            })
                        }
                        Err(DecodeError::Invalid(msg)) => {
                            return Err(EmuError::Parse { line, text: err_text(), msg })
                        }
                    }
                }
                Stmt::Label { .. } | Stmt::Var(_) => {}
            }
        }
        Ok(Kernel {
            name: func.name.clone(),
            params,
            param_bytes,
            code,
            num_regs: self.num_regs,
            num_preds: self.num_preds,
            static_shared,
            dynamic_shared_offset,
            local_bytes,
            reqntid: func.reqntid,
            maxntid: func.maxntid,
        })
    }

    fn layout_params(&mut self) -> Result<(Vec<Param>, u32), EmuError> {
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
            self.symbols.insert(p.name.clone(), Symbol { space: Space::Param, addr: offset as u64 });
            params.push(Param { name: p.name.clone(), ty: p.ty, len, offset, size });
            offset += size;
        }
        Ok((params, offset))
    }

    /// Places the kernel's own `.shared` variables and the module-level ones it names; every
    /// `extern` (dynamic) array starts at the returned dynamic offset.
    fn layout_shared(&mut self, module_shared: &[&VarDecl]) -> (u32, u32) {
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
            self.symbols.insert(var.name.clone(), Symbol { space: Space::Shared, addr: offset });
            offset += var.size();
        }
        for var in vars.iter().filter(|v| is_dynamic(v)) {
            dynamic_align = dynamic_align.max(var.alignment());
        }
        let dynamic = offset.next_multiple_of(dynamic_align);
        for var in vars.iter().filter(|v| is_dynamic(v)) {
            self.symbols.insert(var.name.clone(), Symbol { space: Space::Shared, addr: dynamic });
        }
        (offset as u32, dynamic as u32)
    }

    fn layout_local(&mut self) -> u32 {
        let mut offset = 0u64;
        for stmt in &self.func.body {
            if let Stmt::Var(v) = stmt {
                if v.space == Space::Local {
                    offset = offset.next_multiple_of(v.alignment().max(1));
                    self.symbols.insert(v.name.clone(), Symbol { space: Space::Local, addr: offset });
                    offset += v.size();
                }
            }
        }
        offset.next_multiple_of(8) as u32
    }

    fn declare_regs(&mut self, ty: Ty, names: &[RegName], line: u32) -> Result<(), EmuError> {
        for name in names {
            let count = name.count.unwrap_or(1);
            for i in 0..count {
                let full = if name.count.is_some() { format!("{}{}", name.base, i) } else { name.base.clone() };
                let r = if ty == Ty::Pred {
                    self.num_preds += 1;
                    RegRef::Pred(self.num_preds - 1)
                } else {
                    self.num_regs += 1;
                    RegRef::Val { idx: self.num_regs - 1, ty }
                };
                let scope = self.scopes.last_mut().expect("the special-register scope is never popped");
                scope.insert(full, r);
            }
            if self.num_regs > 1 << 20 {
                return Err(parse_err(self.src, line, "too many registers"));
            }
        }
        Ok(())
    }

    fn lookup(&self, name: &str) -> Option<RegRef> {
        self.scopes.iter().rev().find_map(|s| s.get(name).copied())
    }

    fn decode_instr(&self, instr: &super::ast::InstrAst) -> DResult<Instr> {
        let guard = match &instr.guard {
            Some((name, negated)) => Some(PredSrc { reg: self.pred_reg(name)?, negated: *negated }),
            None => None,
        };
        let mut mods = Mods::new(&instr.opcode);
        let base = mods.base();
        let ops = &instr.operands;
        let (op, class) = match base {
            "ld" | "ldu" | "st" | "atom" | "red" | "cvta" => self.decode_memory(base, &mut mods, ops)?,
            "shfl" | "vote" | "activemask" | "bar" | "barrier" | "membar" | "fence" | "bra" | "ret"
            | "exit" | "nanosleep" | "prefetch" | "prefetchu" => self.decode_control(base, &mut mods, ops)?,
            _ => self.decode_alu(base, &mut mods, ops)?,
        };
        mods.finish()?;
        Ok(Instr { op, guard, line: instr.line, class })
    }

    // ---- operands ----

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
            Some(_) => invalid(format!("`{name}` is a predicate, a value register is needed")),
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
            Operand::Name(n) => Ok(PredSrc { reg: self.pred_reg(n)?, negated: false }),
            Operand::Not(n) => Ok(PredSrc { reg: self.pred_reg(n)?, negated: true }),
            other => invalid(format!("expected a predicate, found {other:?}")),
        }
    }

    /// A source read as `ty`: a register, an immediate converted to `ty`, or a symbol's address
    /// in its own state space.
    pub(crate) fn src(&self, op: &Operand, ty: Ty) -> DResult<Src> {
        match op {
            Operand::Imm(lit) => Ok(Src::Imm(imm_bits(*lit, ty)?)),
            Operand::Name(n) => {
                if let Some(sym) = self.symbols.get(n) {
                    return Ok(Src::Imm(sym.addr));
                }
                Ok(Src::Reg(self.val_reg(n)?.0))
            }
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
            Some(name) => match self.symbols.get(name) {
                Some(sym) => Src::Imm(self.symbol_address(name, *sym, space)?),
                None => Src::Reg(self.val_reg(name)?.0),
            },
        };
        Ok(Addr { base, offset: *offset })
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
            _ => invalid(format!("`{name}` is in {:?} space, the access is {space:?}", sym.space)),
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

/// Checks an operand count.
pub(crate) fn arity(ops: &[Operand], n: usize) -> DResult<()> {
    if ops.len() == n {
        Ok(())
    } else {
        invalid(format!("expected {n} operands, found {}", ops.len()))
    }
}
