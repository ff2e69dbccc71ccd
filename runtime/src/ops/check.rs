//! Shape and dtype checks shared by every op and backend. Each returns an error that names the
//! op, the argument and the shapes involved.

use crate::{Backend, DType, Error, Result, Tensor};

pub(crate) fn dtype<B: Backend>(
    op: &'static str,
    arg: &'static str,
    t: &Tensor<B>,
    want: DType,
) -> Result<()> {
    if t.dtype() != want {
        return Err(Error::DType { op, arg, got: t.dtype(), expected: want.to_string() });
    }
    Ok(())
}

pub(crate) fn float<B: Backend>(op: &'static str, arg: &'static str, t: &Tensor<B>) -> Result<()> {
    float_dtype(op, arg, t.dtype())
}

/// A dtype argument (or a tensor's dtype) that must be f32 or bf16.
pub(crate) fn float_dtype(op: &'static str, arg: &'static str, dtype: DType) -> Result<()> {
    if !dtype.is_float() {
        return Err(Error::DType { op, arg, got: dtype, expected: "f32 or bf16".into() });
    }
    Ok(())
}

/// Host data of `len` elements for a tensor of `dims`.
pub(crate) fn element_count(op: &'static str, dims: &[usize], len: usize) -> Result<()> {
    let want: usize = dims.iter().product();
    if want != len {
        return Err(Error::shape(op, format!("shape {dims:?} needs {want} elements, got {len}")));
    }
    Ok(())
}

/// All arguments are floats of the first one's dtype; returns that dtype.
pub(crate) fn same_float<B: Backend>(
    op: &'static str,
    args: &[(&'static str, &Tensor<B>)],
) -> Result<DType> {
    let (first_name, first) = args[0];
    float(op, first_name, first)?;
    for &(name, t) in &args[1..] {
        if t.dtype() != first.dtype() {
            return Err(Error::DType {
                op,
                arg: name,
                got: t.dtype(),
                expected: format!("{} like `{first_name}`", first.dtype()),
            });
        }
    }
    Ok(first.dtype())
}

pub(crate) fn dims<B: Backend>(
    op: &'static str,
    arg: &'static str,
    t: &Tensor<B>,
    want: &[usize],
) -> Result<()> {
    if t.dims() != want {
        return Err(Error::shape(op, format!("`{arg}` has shape {}, expected {want:?}", t.shape())));
    }
    Ok(())
}

pub(crate) fn rank<B: Backend>(
    op: &'static str,
    arg: &'static str,
    t: &Tensor<B>,
    want: usize,
) -> Result<()> {
    if t.shape().rank() != want {
        return Err(Error::shape(
            op,
            format!("`{arg}` has shape {}, expected rank {want}", t.shape()),
        ));
    }
    Ok(())
}

pub(crate) fn same_shape<B: Backend>(
    op: &'static str,
    (a_name, a): (&'static str, &Tensor<B>),
    (b_name, b): (&'static str, &Tensor<B>),
) -> Result<()> {
    if a.dims() != b.dims() {
        return Err(Error::shape(
            op,
            format!("`{a_name}` {} and `{b_name}` {} must have the same shape", a.shape(), b.shape()),
        ));
    }
    Ok(())
}

pub(crate) fn finite(op: &'static str, name: &'static str, value: f32) -> Result<()> {
    if !value.is_finite() {
        return Err(Error::argument(op, format!("`{name}` must be finite, got {value}")));
    }
    Ok(())
}

pub(crate) fn positive(op: &'static str, name: &'static str, value: f32) -> Result<()> {
    if !(value.is_finite() && value > 0.0) {
        return Err(Error::argument(op, format!("`{name}` must be positive and finite, got {value}")));
    }
    Ok(())
}

/// The arguments of a masked RL op: `floats` of one float dtype and `dims`, and `mask` u32 of the
/// same dims. Returns the float dtype.
pub(crate) fn masked<B: Backend>(
    op: &'static str,
    floats: &[(&'static str, &Tensor<B>)],
    mask: &Tensor<B>,
) -> Result<DType> {
    let dtype = same_float(op, floats)?;
    for &arg in &floats[1..] {
        same_shape(op, floats[0], arg)?;
    }
    self::dtype(op, "mask", mask, DType::U32)?;
    same_shape(op, floats[0], ("mask", mask))?;
    Ok(dtype)
}

/// Fails on the first mask element that is neither 0 nor 1, naming its row (of `cols` elements),
/// column and value.
pub(crate) fn binary_mask(op: &'static str, mask: &[u32], cols: usize) -> Result<()> {
    match mask.iter().position(|&m| m > 1) {
        Some(i) => Err(Error::argument(
            op,
            format!("mask value {} at row {}, column {} is neither 0 nor 1", mask[i], i / cols.max(1), i % cols.max(1)),
        )),
        None => Ok(()),
    }
}

/// `value` in the half-open range `[lo, hi)`.
pub(crate) fn in_range(op: &'static str, name: &'static str, value: f32, lo: f32, hi: f32) -> Result<()> {
    if !(value >= lo && value < hi) {
        return Err(Error::argument(op, format!("`{name}` must be in [{lo}, {hi}), got {value}")));
    }
    Ok(())
}
