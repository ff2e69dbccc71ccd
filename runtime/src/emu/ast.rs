//! The parsed (not yet decoded) form of a PTX module: functions as lists of statements whose
//! instructions still carry their opcode text and operand names.

use super::lexer::Literal;
use super::types::{Space, Ty};

#[derive(Debug)]
pub struct ModuleAst {
    pub functions: Vec<FunctionAst>,
    /// Module-level `.global`, `.const` and `.shared` variables.
    pub variables: Vec<VarDecl>,
    /// `.file` entries (present with `-lineinfo`): file number and path.
    pub files: Vec<(u32, String)>,
}

#[derive(Debug)]
pub struct FunctionAst {
    pub name: String,
    /// `.entry` (a kernel) rather than `.func`.
    pub is_entry: bool,
    pub params: Vec<ParamDecl>,
    pub reqntid: Option<[u32; 3]>,
    pub maxntid: Option<[u32; 3]>,
    pub body: Vec<Stmt>,
}

#[derive(Debug)]
pub struct ParamDecl {
    pub name: String,
    pub ty: Ty,
    pub align: Option<u32>,
    /// Element count of an array parameter (`.param .align 8 .b8 p[24]`).
    pub len: Option<u32>,
    pub line: u32,
}

#[derive(Debug)]
pub struct VarDecl {
    pub space: Space,
    pub name: String,
    pub ty: Ty,
    pub align: Option<u32>,
    /// `None` for a scalar, `Some(None)` for an unsized array (`extern .shared ... x[]`).
    pub len: Option<Option<u32>>,
    pub is_extern: bool,
    pub init: Vec<Literal>,
    pub line: u32,
}

impl VarDecl {
    /// Size in bytes; zero for an unsized array.
    pub fn size(&self) -> u64 {
        let count = match self.len {
            None => 1,
            Some(n) => n.unwrap_or(0) as u64,
        };
        count * self.ty.bytes() as u64
    }

    pub fn alignment(&self) -> u64 {
        self.align.unwrap_or(self.ty.bytes()) as u64
    }
}

#[derive(Debug)]
pub enum Stmt {
    Label {
        name: String,
        line: u32,
    },
    Instr(InstrAst),
    /// `{` opening a scope (an inline-asm block); its `.reg` declarations end at the `}`.
    Open,
    Close,
    Reg {
        ty: Ty,
        names: Vec<RegName>,
        line: u32,
    },
    Var(VarDecl),
}

/// `%r<93>` declares `%r0`..`%r92`; `c` declares just `c`.
#[derive(Debug)]
pub struct RegName {
    pub base: String,
    pub count: Option<u32>,
}

#[derive(Debug)]
pub struct InstrAst {
    pub line: u32,
    /// `@%p1` is `("%p1", false)`, `@!%p1` is `("%p1", true)`.
    pub guard: Option<(String, bool)>,
    pub opcode: String,
    pub operands: Vec<Operand>,
    /// The CUDA source position of the last `.loc` before it: file number and line.
    pub loc: Option<(u32, u32)>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    /// A register, symbol or label name.
    Name(String),
    /// `!%p`: a negated predicate.
    Not(String),
    Imm(Literal),
    /// `[base+offset]` where base is a name or absent (`[imm]`).
    Addr {
        base: Option<String>,
        offset: i64,
    },
    /// `{a, b, ...}`.
    Vector(Vec<Operand>),
    /// `%r|%p`: a value and a predicate destination.
    WithPred(String, String),
    /// `_`: a discarded destination.
    Sink,
}
