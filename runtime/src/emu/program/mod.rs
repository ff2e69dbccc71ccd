//! The decoded form of a kernel: a flat vector of [`Instr`] whose operands are register-file
//! indices or immediates, with branch targets resolved to instruction indices.
//!
//! Register files (per warp, lane-major): value registers are `u64` slots, `regs[r * 32 + lane]`;
//! a register of any width keeps its value in the low bits and every reader truncates to the
//! width of the instruction type. Predicate registers are one `u32` lane mask each. The first
//! [`SPECIAL_COUNT`] value registers hold the special registers (`%tid.x`, ...), filled at warp
//! start.

mod kinds;

pub use kinds::*;

use super::types::{Space, Ty};

/// Index into the value register file.
pub type Reg = u32;
/// Index into the predicate register file.
pub type Pred = u32;

/// A source operand: a register or an immediate already converted to the instruction's type.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Src {
    Reg(Reg),
    Imm(u64),
}

/// A predicate source, possibly negated (`!%p`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PredSrc {
    pub reg: Pred,
    pub negated: bool,
}

/// The special registers, in the order of their reserved value-register indices.
pub const SPECIALS: [&str; 25] = [
    "%tid.x",
    "%tid.y",
    "%tid.z",
    "%ntid.x",
    "%ntid.y",
    "%ntid.z",
    "%ctaid.x",
    "%ctaid.y",
    "%ctaid.z",
    "%nctaid.x",
    "%nctaid.y",
    "%nctaid.z",
    "%laneid",
    "%warpid",
    "%nwarpid",
    "%lanemask_eq",
    "%lanemask_le",
    "%lanemask_lt",
    "%lanemask_ge",
    "%lanemask_gt",
    "%smid",
    "%nsmid",
    "%gridid",
    "%dynamic_smem_size",
    "%total_smem_size",
];
pub const SPECIAL_COUNT: u32 = SPECIALS.len() as u32;

/// An address operand `[base+offset]`: base is a register or a resolved symbol address.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Addr {
    pub base: Src,
    pub offset: i64,
}

/// What an instruction does; see the module doc for the register model.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Mov {
        d: Reg,
        a: Src,
    },
    MovPred {
        d: Pred,
        a: PredSrc,
    },
    /// `mov.pred d, imm`: a constant predicate (nonzero is true).
    SetPred {
        d: Pred,
        value: bool,
    },
    /// `mov.b32 d, {a, b}`: parts from least to most significant, `bits` each.
    Pack {
        d: Reg,
        parts: [Src; 4],
        count: u8,
        bits: u8,
    },
    /// `mov.b32 {a, b}, s`: a `None` destination is a `_` sink.
    Unpack {
        d: [Option<Reg>; 4],
        count: u8,
        bits: u8,
        a: Src,
    },
    IntUn {
        op: IntUnOp,
        ty: IntTy,
        d: Reg,
        a: Src,
    },
    IntBin {
        op: IntBinOp,
        ty: IntTy,
        d: Reg,
        a: Src,
        b: Src,
    },
    IntTri {
        op: IntTriOp,
        ty: IntTy,
        d: Reg,
        a: Src,
        b: Src,
        c: Src,
    },
    /// `mul.wide`/`mad.wide`: `ty` is the source type, the result is twice as wide.
    Wide {
        ty: IntTy,
        d: Reg,
        a: Src,
        b: Src,
        c: Option<Src>,
    },
    Bfi {
        ty: IntTy,
        d: Reg,
        a: Src,
        b: Src,
        pos: Src,
        len: Src,
    },
    Prmt {
        d: Reg,
        a: Src,
        b: Src,
        c: Src,
    },
    Lop3 {
        d: Reg,
        a: Src,
        b: Src,
        c: Src,
        lut: u8,
    },
    /// Funnel shift of the 64-bit `{b, a}`.
    Shf {
        d: Reg,
        a: Src,
        b: Src,
        c: Src,
        left: bool,
        clamp: bool,
    },
    FloatUn {
        op: FloatUnOp,
        ty: FloatTy,
        mode: FloatMode,
        d: Reg,
        a: Src,
    },
    FloatBin {
        op: FloatBinOp,
        ty: FloatTy,
        mode: FloatMode,
        d: Reg,
        a: Src,
        b: Src,
    },
    Fma {
        ty: FloatTy,
        mode: FloatMode,
        d: Reg,
        a: Src,
        b: Src,
        c: Src,
    },
    Testp {
        op: TestOp,
        ty: FloatTy,
        d: Pred,
        a: Src,
    },
    /// `setp.cmp[.bool].ty p[|q], a, b[, c]`: `p = cmp(a, b) BOOL c`, `q = !cmp(a, b) BOOL c`.
    Setp {
        cmp: Cmp,
        ty: CmpTy,
        ftz: bool,
        d: Pred,
        d2: Option<Pred>,
        a: Src,
        b: Src,
        combine: Option<(BoolOp, PredSrc)>,
    },
    PredLogic {
        op: BoolOp,
        d: Pred,
        a: PredSrc,
        b: PredSrc,
    },
    Selp {
        d: Reg,
        a: Src,
        b: Src,
        p: PredSrc,
    },
    /// `slct d, a, b, c`: `a` if `c >= 0` else `b`; `c` is s32 or f32.
    Slct {
        d: Reg,
        a: Src,
        b: Src,
        c: Src,
        float: bool,
    },
    Cvt {
        conv: Conv,
        d: Reg,
        a: Src,
    },
    /// `cvt.rn.bf16x2.f32 d, a, b`: `a` goes to the upper half, `b` to the lower.
    CvtPack {
        conv: Conv,
        d: Reg,
        a: Src,
        b: Src,
    },
    /// `cvta` (to generic) or `cvta.to` (from generic); `bits` is the result width.
    Cvta {
        space: Space,
        to_generic: bool,
        bits: u8,
        d: Reg,
        a: Src,
    },
    Ld {
        space: Space,
        size: u8,
        count: u8,
        signed: bool,
        /// `.volatile`, `.relaxed` or `.acquire`: a strong access in PTX's memory model.
        strong: bool,
        d: [Option<Reg>; 4],
        addr: Addr,
    },
    St {
        space: Space,
        size: u8,
        count: u8,
        /// `.volatile`, `.relaxed` or `.release`: a strong access in PTX's memory model.
        strong: bool,
        v: [Src; 4],
        addr: Addr,
    },
    Atom {
        space: Space,
        op: AtomOp,
        ty: AtomTy,
        d: Option<Reg>,
        addr: Addr,
        b: Src,
        c: Src,
    },
    Shfl {
        mode: ShflMode,
        d: Reg,
        p: Option<Pred>,
        a: Src,
        b: Src,
        c: Src,
        mask: Src,
    },
    VotePred {
        mode: VoteMode,
        d: Pred,
        a: PredSrc,
        mask: Src,
    },
    Ballot {
        d: Reg,
        a: PredSrc,
        mask: Src,
    },
    Activemask {
        d: Reg,
    },
    /// `mma.sync.aligned.m16n8k16.row.col.f32.{bf16,f16}.{bf16,f16}.f32 d, a, b, c`: the
    /// per-lane fragments of a 16×16 A, a 16×8 B and 16×8 C/D (see `exec::tensor`).
    Mma {
        input: MmaInput,
        d: [Reg; 4],
        a: [Src; 4],
        b: [Src; 2],
        c: [Src; 4],
    },
    /// `ldmatrix.sync.aligned.m8n8.x{1,2,4}[.trans].shared.b16`: `count` 8×8 b16 matrices whose
    /// rows are addressed by lanes `8i..8i+8`.
    Ldmatrix {
        count: u8,
        trans: bool,
        d: [Reg; 4],
        addr: Addr,
    },
    /// `cp.async.{ca,cg}.shared.global [dst], [src], size[, src_size]` (see `exec::async_copy`).
    CpAsync {
        size: u8,
        src_size: Option<Src>,
        dst: Addr,
        src: Addr,
    },
    CpAsyncCommit,
    /// `cp.async.wait_group keep`; `wait_all` commits first and keeps none.
    CpAsyncWait {
        keep: u32,
        commit: bool,
    },
    Bra {
        target: u32,
    },
    BarSync,
    /// `bar.warp.sync mask`.
    WarpSync {
        mask: Src,
    },
    Exit,
    /// Fences and hints with no effect on a sequential emulator.
    Nop,
}

/// One decoded instruction.
#[derive(Debug, Clone, PartialEq)]
pub struct Instr {
    pub op: Op,
    pub guard: Option<PredSrc>,
    /// 1-based PTX source line.
    pub line: u32,
    pub class: Class,
}

/// Instruction classes for the per-launch counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Int,
    Float,
    /// Transcendentals and other special-function-unit work (`ex2`, `rsqrt`, `div.approx`, ...).
    Special,
    Convert,
    Move,
    Global,
    Shared,
    Local,
    Param,
    Atomic,
    Warp,
    Control,
    Barrier,
    /// Tensor-core instructions (`mma`).
    Tensor,
}

pub const CLASS_COUNT: usize = 14;

/// A kernel parameter in the packed parameter buffer.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    pub name: String,
    pub ty: Ty,
    /// Element count for array parameters (struct-by-value), 1 otherwise.
    pub len: u32,
    pub offset: u32,
    pub size: u32,
}

/// A module-level `.global`/`.const` variable, placed at a fixed address in its module's slot.
#[derive(Debug, Clone, PartialEq)]
pub struct GlobalVar {
    pub name: String,
    pub addr: u64,
    pub init: Vec<u8>,
}

/// A decoded `.entry`.
#[derive(Debug, Clone)]
pub struct Kernel {
    pub name: String,
    pub params: Vec<Param>,
    pub param_bytes: u32,
    pub code: Vec<Instr>,
    pub num_regs: u32,
    pub num_preds: u32,
    /// Bytes of statically declared shared memory; dynamic shared memory starts at
    /// `dynamic_shared_offset` (aligned past the static part).
    pub static_shared: u32,
    pub dynamic_shared_offset: u32,
    pub local_bytes: u32,
    pub reqntid: Option<[u32; 3]>,
    pub maxntid: Option<[u32; 3]>,
    /// Per instruction, its CUDA source position `file:line` when the PTX has `.loc` lines.
    pub source_lines: Vec<Option<String>>,
}
