use std::fmt;

use crate::{Backend, DType, Error, Result};

/// The dimensions of a contiguous, row-major tensor.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Shape(Vec<usize>);

impl Shape {
    pub fn new(dims: &[usize]) -> Self {
        Shape(dims.to_vec())
    }

    pub fn dims(&self) -> &[usize] {
        &self.0
    }

    pub fn rank(&self) -> usize {
        self.0.len()
    }

    pub fn numel(&self) -> usize {
        self.0.iter().product()
    }

    /// The last dimension (1 for a scalar).
    pub fn last(&self) -> usize {
        self.0.last().copied().unwrap_or(1)
    }

    /// The product of all dimensions but the last: the number of rows of the tensor viewed as a
    /// matrix `[rows, last]`.
    pub fn rows(&self) -> usize {
        self.0.iter().rev().skip(1).product()
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// A tensor whose data lives in a buffer owned by backend `B` (host memory for Cpu, a device
/// allocation for Cuda, emulated device memory for Emu). Always contiguous and row-major; moving
/// data to or from the host goes through the backend explicitly.
pub struct Tensor<B: Backend> {
    shape: Shape,
    dtype: DType,
    buffer: B::Buffer,
    /// For a u32 tensor whose values the host wrote (an upload, zeros): the largest of them.
    /// The GPU launchers check ids, targets and masks against it instead of reading the data back
    /// (a device-to-host copy is a synchronisation). Sound because no `Backend` op writes into a
    /// u32 tensor after creating it: every in-place op takes float tensors, and `buffer_mut`
    /// forgets the bound.
    known_max: Option<u32>,
}

impl<B: Backend> Tensor<B> {
    /// Assembles a tensor from a buffer that holds exactly `shape.numel()` elements of `dtype`.
    /// Only backends construct tensors; they uphold that invariant.
    pub(crate) fn from_parts(shape: Shape, dtype: DType, buffer: B::Buffer) -> Self {
        Tensor { shape, dtype, buffer, known_max: None }
    }

    /// The same tensor with its largest value recorded (the caller wrote `values` into it).
    pub(crate) fn with_known_max(mut self, values: &[u32]) -> Self {
        self.known_max = Some(values.iter().copied().max().unwrap_or(0));
        self
    }

    /// The largest value of a u32 tensor when the host wrote its data, else `None`.
    pub(crate) fn known_max(&self) -> Option<u32> {
        self.known_max
    }

    pub fn shape(&self) -> &Shape {
        &self.shape
    }

    pub fn dims(&self) -> &[usize] {
        self.shape.dims()
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn numel(&self) -> usize {
        self.shape.numel()
    }

    pub fn size_in_bytes(&self) -> usize {
        self.numel() * self.dtype.size_in_bytes()
    }

    pub(crate) fn buffer(&self) -> &B::Buffer {
        &self.buffer
    }

    pub(crate) fn buffer_mut(&mut self) -> &mut B::Buffer {
        self.known_max = None;
        &mut self.buffer
    }

    /// The same data viewed with new dimensions of equal element count (free: no copy).
    pub fn reshape(self, dims: &[usize]) -> Result<Self> {
        let new = Shape::new(dims);
        if new.numel() != self.numel() {
            return Err(Error::shape(
                "reshape",
                format!("cannot view {} ({} elements) as {new}", self.shape, self.numel()),
            ));
        }
        Ok(Tensor { shape: new, ..self })
    }
}

impl<B: Backend> fmt::Debug for Tensor<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tensor<{}>({}, {})", std::any::type_name::<B>(), self.shape, self.dtype)
    }
}
