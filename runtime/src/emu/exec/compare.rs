//! `setp` comparisons and predicate logic over whole warps.

use super::float::read_float;
use super::int::Int;
use super::lanes::lanes_where;
use crate::emu::program::{BoolOp, Cmp, CmpTy, IntTy};

pub(super) fn bool_op(op: BoolOp, a: u32, b: u32) -> u32 {
    match op {
        BoolOp::And => a & b,
        BoolOp::Or => a | b,
        BoolOp::Xor => a ^ b,
    }
}

fn cmp_ord(cmp: Cmp, o: std::cmp::Ordering) -> bool {
    use std::cmp::Ordering::*;
    match cmp {
        Cmp::Eq => o == Equal,
        Cmp::Ne => o != Equal,
        Cmp::Lt => o == Less,
        Cmp::Le => o != Greater,
        Cmp::Gt => o == Greater,
        Cmp::Ge => o != Less,
        _ => false,
    }
}

fn cmp_float(cmp: Cmp, x: f64, y: f64) -> bool {
    let unordered = x.is_nan() || y.is_nan();
    match cmp {
        Cmp::Eq => x == y,
        Cmp::Ne => !unordered && x != y,
        Cmp::Lt => x < y,
        Cmp::Le => x <= y,
        Cmp::Gt => x > y,
        Cmp::Ge => x >= y,
        Cmp::Equ => unordered || x == y,
        Cmp::Neu => x != y,
        Cmp::Ltu => unordered || x < y,
        Cmp::Leu => unordered || x <= y,
        Cmp::Gtu => unordered || x > y,
        Cmp::Geu => unordered || x >= y,
        Cmp::Num => !unordered,
        Cmp::Nan => unordered,
    }
}

fn compare_int<T: Int>(cmp: Cmp, av: &[u64; 32], bv: &[u64; 32]) -> u32 {
    lanes_where(|l| cmp_ord(cmp, T::from_reg(av[l]).cmp(&T::from_reg(bv[l]))))
}

pub(super) fn compare(cmp: Cmp, ty: CmpTy, ftz: bool, av: &[u64; 32], bv: &[u64; 32]) -> u32 {
    match ty {
        CmpTy::Int(IntTy::U16) => compare_int::<u16>(cmp, av, bv),
        CmpTy::Int(IntTy::S16) => compare_int::<i16>(cmp, av, bv),
        CmpTy::Int(IntTy::U32) => compare_int::<u32>(cmp, av, bv),
        CmpTy::Int(IntTy::S32) => compare_int::<i32>(cmp, av, bv),
        CmpTy::Int(IntTy::U64) => compare_int::<u64>(cmp, av, bv),
        CmpTy::Int(IntTy::S64) => compare_int::<i64>(cmp, av, bv),
        CmpTy::Float(f) => {
            lanes_where(|l| cmp_float(cmp, read_float(f, av[l], ftz), read_float(f, bv[l], ftz)))
        }
    }
}
