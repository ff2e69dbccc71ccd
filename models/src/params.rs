//! A flat, named set of tensors: the parameters of a model, or anything shaped like them
//! (gradients, AdamW moments). Models refer to their parameters by index, so optimizer steps,
//! gradient norms and checkpoints are plain loops over one `Vec`.

use runtime::{Backend, DType, Tensor};

use crate::Result;

/// Tensors with names, in a fixed order.
pub struct ParamSet<B: Backend> {
    names: Vec<String>,
    tensors: Vec<Tensor<B>>,
}

impl<B: Backend> Default for ParamSet<B> {
    fn default() -> Self {
        ParamSet { names: Vec::new(), tensors: Vec::new() }
    }
}

impl<B: Backend> ParamSet<B> {
    /// Appends a tensor and returns its index.
    pub fn push(&mut self, name: impl Into<String>, tensor: Tensor<B>) -> usize {
        self.names.push(name.into());
        self.tensors.push(tensor);
        self.tensors.len() - 1
    }

    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    pub fn name(&self, i: usize) -> &str {
        &self.names[i]
    }

    pub fn get(&self, i: usize) -> &Tensor<B> {
        &self.tensors[i]
    }

    pub fn get_mut(&mut self, i: usize) -> &mut Tensor<B> {
        &mut self.tensors[i]
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Tensor<B>)> {
        self.names.iter().map(String::as_str).zip(&self.tensors)
    }

    pub fn tensors_mut(&mut self) -> &mut [Tensor<B>] {
        &mut self.tensors
    }

    /// Zeros with the same names and shapes, in `dtype`.
    pub fn zeros_like(&self, backend: &B, dtype: DType) -> Result<Self> {
        let tensors = self
            .tensors
            .iter()
            .map(|t| backend.zeros(t.dims(), dtype))
            .collect::<runtime::Result<Vec<_>>>()?;
        Ok(ParamSet { names: self.names.clone(), tensors })
    }

    /// Total number of scalar parameters.
    pub fn numel(&self) -> usize {
        self.tensors.iter().map(Tensor::numel).sum()
    }
}

/// Gradients collected during a backward pass: one slot per parameter, filled the first time a
/// gradient arrives and accumulated (`+=`) after that (tied weights receive two).
pub struct GradSlots<B: Backend> {
    slots: Vec<Option<Tensor<B>>>,
}

impl<B: Backend> GradSlots<B> {
    pub fn new(len: usize) -> Self {
        GradSlots { slots: (0..len).map(|_| None).collect() }
    }

    pub fn add(&mut self, backend: &B, index: usize, grad: Tensor<B>) -> Result<()> {
        match &mut self.slots[index] {
            Some(acc) => backend.axpy(acc, 1.0, &grad)?,
            slot @ None => *slot = Some(grad),
        }
        Ok(())
    }

    /// The gradients as a set named like `params`; parameters that received none get zeros.
    pub fn into_param_set(self, backend: &B, params: &ParamSet<B>) -> Result<ParamSet<B>> {
        let mut out = ParamSet::default();
        for (i, slot) in self.slots.into_iter().enumerate() {
            let t = match slot {
                Some(t) => t,
                None => backend.zeros(params.get(i).dims(), params.get(i).dtype())?,
            };
            out.push(params.name(i), t);
        }
        Ok(out)
    }
}
