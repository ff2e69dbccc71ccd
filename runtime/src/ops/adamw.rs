//! AdamW (Loshchilov & Hutter, decoupled weight decay) with PyTorch's `torch.optim.AdamW` semantics.
//!
//! Shapes: `param`, `grad`, `m`, `v` of one shape; `param`, `m`, `v` are f32 (master weights and
//! optimizer state), `grad` f32 or bf16. One step `t >= 1`, in place, elementwise:
//!
//! ```text
//! m = β1·m + (1 − β1)·g
//! v = β2·v + (1 − β2)·g²
//! m̂ = m / (1 − β1^t),  v̂ = v / (1 − β2^t)
//! p = p − lr·(m̂ / (√v̂ + eps) + wd·p)
//! ```
//!
//! evaluated as PyTorch does: `p·(1 − lr·wd)`, then `− (lr / (1 − β1^t))·m / (√v / √(1 − β2^t) +
//! eps)`, with the bias corrections in f64. There is no backward.
//!
//! [`Backend::adamw_step_copy`] also writes the updated parameter rounded to bf16 into a model
//! copy (the GPU kernel does it in the same pass; its default, used by the Cpu, casts after the
//! step). The GPU kernel (`kernels/src/adamw.cu`) rounds every operation explicitly in the Cpu's
//! order, so both backends give the same bits.

use rayon::prelude::*;

use super::check;
use crate::cpu::{bf16_data, f32_data, f32_data_mut, HostFloat};
use crate::gpu::{self, Arg, GpuBackend, Launch};
use crate::{Backend, Cpu, DType, Error, Result, Tensor};

const OP: &str = "adamw";
/// Elements per rayon task.
const CHUNK: usize = 1 << 14;

/// AdamW hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamW {
    /// Learning rate, `>= 0`.
    pub lr: f32,
    /// Decay of the first-moment average, in `[0, 1)`.
    pub beta1: f32,
    /// Decay of the second-moment average, in `[0, 1)`.
    pub beta2: f32,
    /// Added to `√v̂` so that parameters with tiny gradients take bounded steps; `> 0`.
    pub eps: f32,
    /// Decoupled weight decay, applied as `p −= lr·wd·p`; `>= 0`.
    pub weight_decay: f32,
}

impl Default for AdamW {
    /// PyTorch's defaults: lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight decay 0.01.
    fn default() -> Self {
        AdamW { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01 }
    }
}

impl AdamW {
    /// Fails with [`Error::Argument`] naming the first hyper-parameter out of its domain.
    pub fn validate(&self, step: u32) -> Result<()> {
        let AdamW { lr, beta1, beta2, eps, weight_decay } = *self;
        let bad = |msg: String| Err(Error::argument(OP, msg));
        if !(lr.is_finite() && lr >= 0.0) {
            return bad(format!("lr must be finite and >= 0, got {lr}"));
        }
        for (name, beta) in [("beta1", beta1), ("beta2", beta2)] {
            if !(0.0..1.0).contains(&beta) {
                return bad(format!("{name} must be in [0, 1), got {beta}"));
            }
        }
        if !(eps.is_finite() && eps > 0.0) {
            return bad(format!("eps must be finite and > 0, got {eps}"));
        }
        if !(weight_decay.is_finite() && weight_decay >= 0.0) {
            return bad(format!("weight_decay must be finite and >= 0, got {weight_decay}"));
        }
        if step == 0 {
            return bad("step counts from 1, got 0".into());
        }
        Ok(())
    }
}

/// Checks [`Backend::adamw_step`]'s arguments: `param`, `m`, `v` f32, `grad` float, one shape,
/// valid hyper-parameters.
pub fn check_step<B: Backend>(
    param: &Tensor<B>,
    grad: &Tensor<B>,
    m: &Tensor<B>,
    v: &Tensor<B>,
    hyper: &AdamW,
    step: u32,
) -> Result<()> {
    check::dtype(OP, "param", param, DType::F32)?;
    check::float(OP, "grad", grad)?;
    check::dtype(OP, "m", m, DType::F32)?;
    check::dtype(OP, "v", v, DType::F32)?;
    for other in [("grad", grad), ("m", m), ("v", v)] {
        check::same_shape(OP, ("param", param), other)?;
    }
    hyper.validate(step)
}

/// Checks the bf16 model copy of [`Backend::adamw_step_copy`]: bf16, `param`'s shape.
pub fn check_copy<B: Backend>(param: &Tensor<B>, copy: &Tensor<B>) -> Result<()> {
    check::dtype(OP, "copy", copy, DType::BF16)?;
    check::same_shape(OP, ("param", param), ("copy", copy))
}

/// The per-step scalars, from f64 bias corrections.
#[derive(Clone, Copy)]
struct StepScalars {
    beta1: f32,
    beta2: f32,
    decay: f32,
    step_size: f32,
    inv_sqrt_correction2: f32,
    eps: f32,
}

impl StepScalars {
    fn new(h: &AdamW, step: u32) -> Self {
        let t = f64::from(step);
        let correction1 = 1.0 - f64::from(h.beta1).powf(t);
        let correction2 = 1.0 - f64::from(h.beta2).powf(t);
        StepScalars {
            beta1: h.beta1,
            beta2: h.beta2,
            decay: (1.0 - f64::from(h.lr) * f64::from(h.weight_decay)) as f32,
            step_size: (f64::from(h.lr) / correction1) as f32,
            inv_sqrt_correction2: (1.0 / correction2.sqrt()) as f32,
            eps: h.eps,
        }
    }
}

fn step_slices<G: HostFloat>(param: &mut [f32], grad: &[G], m: &mut [f32], v: &mut [f32], s: StepScalars) {
    param
        .par_chunks_mut(CHUNK)
        .zip(grad.par_chunks(CHUNK))
        .zip(m.par_chunks_mut(CHUNK).zip(v.par_chunks_mut(CHUNK)))
        .for_each(|((p, g), (m, v))| {
            for (((p, g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
                let g = g.to_f32();
                *m = s.beta1 * *m + (1.0 - s.beta1) * g;
                *v = s.beta2 * *v + (1.0 - s.beta2) * g * g;
                let denom = v.sqrt() * s.inv_sqrt_correction2 + s.eps;
                *p = *p * s.decay - s.step_size * *m / denom;
            }
        });
}

pub(crate) fn step_cpu(
    param: &mut Tensor<Cpu>,
    grad: &Tensor<Cpu>,
    m: &mut Tensor<Cpu>,
    v: &mut Tensor<Cpu>,
    hyper: &AdamW,
    step: u32,
) -> Result<()> {
    check_step(param, grad, m, v, hyper, step)?;
    let scalars = StepScalars::new(hyper, step);
    let (param, m, v) = (f32_data_mut(param), f32_data_mut(m), f32_data_mut(v));
    match grad.dtype() {
        DType::BF16 => step_slices(param, bf16_data(grad), m, v, scalars),
        _ => step_slices(param, &f32_data(grad), m, v, scalars),
    }
    Ok(())
}

/// Threads per block of the AdamW kernel (one element per thread).
const GPU_THREADS: u32 = 256;

/// One AdamW step on a GPU backend (`adamw_fwd`, or `adamw_fwd_copy` when a bf16 copy of the
/// updated parameter is written too); the kernel's dtype suffix is the gradient's.
#[allow(clippy::too_many_arguments)]
pub(crate) fn step_gpu<G: GpuBackend>(
    gpu: &G,
    param: &mut Tensor<G>,
    grad: &Tensor<G>,
    m: &mut Tensor<G>,
    v: &mut Tensor<G>,
    copy: Option<&mut Tensor<G>>,
    hyper: &AdamW,
    step: u32,
) -> Result<()> {
    check_step(param, grad, m, v, hyper, step)?;
    if let Some(copy) = &copy {
        check_copy(param, copy)?;
    }
    let s = StepScalars::new(hyper, step);
    let n = gpu::dim_u32(OP, "n", param.numel())?;
    let mut args = vec![Arg::Out(param), Arg::In(grad), Arg::Out(m), Arg::Out(v)];
    let stem = match &copy {
        Some(copy) => {
            args.push(Arg::Out(copy));
            "adamw_fwd_copy"
        }
        None => "adamw_fwd",
    };
    args.extend([
        Arg::U32(n),
        Arg::F32(s.beta1),
        Arg::F32(s.beta2),
        Arg::F32(s.decay),
        Arg::F32(s.step_size),
        Arg::F32(s.inv_sqrt_correction2),
        Arg::F32(s.eps),
    ]);
    let launch = Launch::linear(n.div_ceil(GPU_THREADS), GPU_THREADS);
    gpu::launch(gpu, stem, grad.dtype(), launch, &args)
}
