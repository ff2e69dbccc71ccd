//! The small enums that parametrise [`super::Op`]: operand types, rounding and modifiers,
//! and the operation selectors of each instruction family.

use crate::emu::types::Ty;

/// Integer operand types (bit types decode to the unsigned type of their width).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntTy {
    U16,
    S16,
    U32,
    S32,
    U64,
    S64,
}

/// Float operand types. The packed `x2` types apply the operation to both 16-bit halves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloatTy {
    F16,
    F16x2,
    Bf16,
    Bf16x2,
    F32,
    F64,
}

/// IEEE rounding of a float result (`.rn`, `.rz`, `.rm`, `.rp`); `.rni`-style integer roundings
/// of `cvt` use the same values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rnd {
    Nearest,
    Zero,
    Down,
    Up,
}

/// Float modifiers beyond rounding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FloatMode {
    pub rnd: Rnd,
    /// `.ftz`: subnormal inputs and results flush to sign-preserving zero (f32 only).
    pub ftz: bool,
    /// `.sat`: results clamp to [0, 1], NaN becomes 0.
    pub sat: bool,
    /// `.NaN` on min/max: NaN inputs propagate.
    pub nan: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntUnOp {
    Not,
    Neg,
    Abs,
    Popc,
    Clz,
    Brev,
    /// Bit position of the most significant non-sign bit, or `0xffffffff`.
    Bfind,
    /// `bfind.shiftamt`: the left shift that puts that bit at the top.
    BfindShiftAmt,
    Cnot,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntBinOp {
    Add,
    Sub,
    AddSat,
    SubSat,
    MulLo,
    MulHi,
    Div,
    Rem,
    Min,
    Max,
    And,
    Or,
    Xor,
    Shl,
    Shr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntTriOp {
    MadLo,
    MadHi,
    /// `bfe d, a, pos, len`.
    Bfe,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloatUnOp {
    Abs,
    Neg,
    Sqrt,
    Rsqrt,
    Rcp,
    Ex2,
    Lg2,
    Sin,
    Cos,
    Tanh,
    /// `cvt.rni.f32.f32`-style rounding to an integral value (in [`FloatMode::rnd`]).
    RoundInt,
    /// `cvt.f32.f32` with only `.sat`/`.ftz`: a copy with those modifiers applied.
    Identity,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloatBinOp {
    Add,
    Sub,
    Mul,
    Div,
    Min,
    Max,
    /// `copysign d, a, b`: b's magnitude with a's sign.
    CopySign,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// Unordered variants are true when either input is NaN.
    Equ,
    Neu,
    Ltu,
    Leu,
    Gtu,
    Geu,
    Num,
    Nan,
}

/// How `setp` reads its inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpTy {
    Int(IntTy),
    Float(FloatTy),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BoolOp {
    And,
    Or,
    Xor,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestOp {
    Finite,
    Infinite,
    Number,
    NotANumber,
    Normal,
    Subnormal,
}

/// `cvt` source/destination classes; rounding, `.sat` and `.ftz` are in [`Conv`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Conv {
    pub dst: Ty,
    pub src: Ty,
    pub rnd: Option<Rnd>,
    /// `.rni`/`.rzi`/...: round a float to an integral value.
    pub int_rnd: bool,
    pub sat: bool,
    pub ftz: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AtomOp {
    Add,
    Min,
    Max,
    Inc,
    Dec,
    And,
    Or,
    Xor,
    Exch,
    Cas,
}

/// Operand type of an atomic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AtomTy {
    U32,
    S32,
    U64,
    S64,
    F32,
    F64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShflMode {
    Up,
    Down,
    Bfly,
    Idx,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoteMode {
    All,
    Any,
    Uni,
}

/// The input element type of `mma` (both A and B; accumulation is f32).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MmaInput {
    Bf16,
    F16,
}
