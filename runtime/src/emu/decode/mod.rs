//! Turns a parsed function into a [`Kernel`]: registers become register-file indices, symbols
//! become addresses in their state space, labels become instruction indices, and each opcode with
//! its modifiers becomes one [`Op`]. Anything not implemented is rejected here, naming the line.

mod alu;
mod arith;
mod compare;
mod layout;
mod mem;
mod mods;
mod movcvt;
mod operands;
mod tensor;

use std::collections::HashMap;

use super::ast::{FunctionAst, ModuleAst, Operand, Stmt, VarDecl};
use super::error::EmuError;
use super::lexer::Literal;
use super::parser::line_text;
use super::program::*;
use super::types::{Space, Ty, MODULE_GLOBAL_BASE, WINDOW_SIZE};
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

pub(crate) fn decode_module(
    src: &str,
    ast: &ModuleAst,
    module_id: u64,
) -> Result<DecodedModule, EmuError> {
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
                module_symbols.insert(
                    var.name.clone(),
                    Symbol {
                        space: Space::Global,
                        addr,
                    },
                );
                globals.push(GlobalVar {
                    name: var.name.clone(),
                    addr,
                    init: pad(init, size),
                });
            }
            Space::Shared => module_shared.push(var),
            _ => {
                return Err(parse_err(
                    src,
                    var.line,
                    "module-level variable in this state space",
                ))
            }
        }
    }
    let mut kernels = Vec::new();
    for func in ast.functions.iter().filter(|f| f.is_entry) {
        kernels.push(
            KernelDecoder::new(src, func, &module_symbols).decode(&module_shared, &ast.files)?,
        );
    }
    Ok(DecodedModule { kernels, globals })
}

fn parse_err(src: &str, line: u32, msg: &str) -> EmuError {
    EmuError::Parse {
        line,
        text: line_text(src, line),
        msg: msg.into(),
    }
}

fn pad(mut bytes: Vec<u8>, size: u64) -> Vec<u8> {
    bytes.resize(size as usize, 0);
    bytes
}

/// The little-endian bytes of a variable's initializer, one element per literal.
fn init_bytes(src: &str, var: &VarDecl) -> Result<Vec<u8>, EmuError> {
    let mut out = Vec::new();
    for lit in &var.init {
        let bits =
            imm_bits(*lit, var.ty).map_err(|_| parse_err(src, var.line, "bad initializer"))?;
        out.extend_from_slice(&bits.to_le_bytes()[..var.ty.bytes() as usize]);
    }
    Ok(out)
}

/// Converts a literal to the bits of `ty`: integers are truncated for integer and bit types and
/// converted by value for float types; `0f`/`0d` literals are float bits.
pub(crate) fn imm_bits(lit: Literal, ty: Ty) -> DResult<u64> {
    let mask = if ty.bits() >= 64 {
        u64::MAX
    } else {
        (1u64 << ty.bits()) - 1
    };
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
        Literal::Int(v) if ty.is_float() && !matches!(ty, Ty::F16x2 | Ty::Bf16x2) => {
            from_f64(v as f64)
        }
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
            specials.insert(
                name.to_string(),
                RegRef::Val {
                    idx: i as Reg,
                    ty: Ty::U32,
                },
            );
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

    fn decode(
        mut self,
        module_shared: &[&VarDecl],
        files: &[(u32, String)],
    ) -> Result<Kernel, EmuError> {
        let func = self.func;
        let (params, param_bytes) = self.layout_params()?;
        let (static_shared, dynamic_shared_offset) = self.layout_shared(module_shared);
        let local_bytes = self.layout_local();
        let mut index = 0u32;
        for stmt in &func.body {
            match stmt {
                // PTX scopes labels to their `{ }` block; one flat table is right only while
                // names are unique, so a repeated name is rejected rather than misresolved.
                Stmt::Label { name, line } if self.labels.insert(name.clone(), index).is_some() => {
                    return Err(EmuError::Unsupported {
                        kernel: func.name.clone(),
                        line: *line,
                        text: line_text(self.src, *line),
                        what: format!("label `{name}` defined more than once (scoped labels)"),
                    });
                }
                Stmt::Instr(_) => index += 1,
                _ => {}
            }
        }
        let mut code = Vec::with_capacity(index as usize);
        let mut source_lines = Vec::with_capacity(index as usize);
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
                        Ok(i) => {
                            code.push(i);
                            source_lines.push(source_line(files, instr.loc));
                        }
                        Err(DecodeError::Unsupported(what)) => {
                            return Err(EmuError::Unsupported {
                                kernel: func.name.clone(),
                                line,
                                text: err_text(),
                                what,
                            })
                        }
                        Err(DecodeError::Invalid(msg)) => {
                            return Err(EmuError::Parse {
                                line,
                                text: err_text(),
                                msg,
                            })
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
            source_lines,
        })
    }

    pub(crate) fn lookup(&self, name: &str) -> Option<RegRef> {
        self.scopes.iter().rev().find_map(|s| s.get(name).copied())
    }

    fn decode_instr(&self, instr: &super::ast::InstrAst) -> DResult<Instr> {
        let guard = match &instr.guard {
            Some((name, negated)) => Some(PredSrc {
                reg: self.pred_reg(name)?,
                negated: *negated,
            }),
            None => None,
        };
        let mut mods = Mods::new(&instr.opcode);
        let base = mods.base();
        let ops = &instr.operands;
        let (op, class) = match base {
            "ld" | "ldu" | "st" | "atom" | "red" | "cvta" => {
                self.decode_memory(base, &mut mods, ops)?
            }
            "shfl" | "vote" | "activemask" | "bar" | "barrier" | "membar" | "fence" | "bra"
            | "ret" | "exit" | "nanosleep" | "prefetch" | "prefetchu" => {
                self.decode_control(base, &mut mods, ops)?
            }
            "mma" | "ldmatrix" => self.decode_tensor(base, &mut mods, ops)?,
            "cp" => self.decode_cp_async(&mut mods, ops)?,
            _ => self.decode_alu(base, &mut mods, ops)?,
        };
        mods.finish()?;
        Ok(Instr {
            op,
            guard,
            line: instr.line,
            class,
        })
    }
}

/// `file:line` of a `.loc` position, with the file's name as NVRTC recorded it.
fn source_line(files: &[(u32, String)], loc: Option<(u32, u32)>) -> Option<String> {
    let (file, line) = loc?;
    let name = files
        .iter()
        .find(|(n, _)| *n == file)
        .map_or("?", |(_, path)| path.as_str());
    Some(format!("{name}:{line}"))
}

/// Checks an operand count.
pub(crate) fn arity(ops: &[Operand], n: usize) -> DResult<()> {
    if ops.len() == n {
        Ok(())
    } else {
        invalid(format!("expected {n} operands, found {}", ops.len()))
    }
}
