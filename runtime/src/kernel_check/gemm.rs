//! GEMM, forward and backward, on each kernel (f32 SIMT, bf16 SIMT, bf16 tensor cores) over
//! awkward shapes: 1×1×1, M = 1, K = 1, sizes that are no multiple of the 64×64 tile or of the
//! 16/32 k-step (7×13×33, 65×129×70, 65×129×72), one exact tile, every transpose pair, shared
//! and batched B, bias.

use super::rng::Rng;
use super::Family;
use crate::ops::gemm::{GemmKernel, GemmSpec};
use crate::{Backend, DType, Result, Tensor};

/// `(M, N, K)` of the checks. The transposes rotate with the index (none, A, B, both), so the
/// last one, `A·Bᵀ` with K a multiple of 8, runs the tensor-core kernel's `cp.async` loader, with
/// partial tiles in M, N and K.
const SHAPES: [(usize, usize, usize); 7] =
    [(1, 1, 1), (7, 13, 33), (65, 129, 70), (1, 33, 70), (7, 13, 1), (64, 64, 64), (65, 129, 72)];
/// Leading dims of `a`, and whether `b` has them too.
const BATCHES: [(&[usize], bool); 3] = [(&[], false), (&[2], false), (&[3], true)];

#[derive(Debug, Clone, Copy)]
pub(super) struct Case {
    pub(super) kernel: GemmKernel,
    dtype: DType,
    backward: bool,
    batch: &'static [usize],
    b_batched: bool,
    m: usize,
    n: usize,
    k: usize,
    spec: GemmSpec,
    bias: bool,
}

impl Case {
    fn a_dims(&self) -> Vec<usize> {
        let mut d = self.batch.to_vec();
        d.extend(if self.spec.trans_a { [self.k, self.m] } else { [self.m, self.k] });
        d
    }

    fn b_dims(&self) -> Vec<usize> {
        let mut d = if self.b_batched { self.batch.to_vec() } else { vec![] };
        d.extend(if self.spec.trans_b { [self.n, self.k] } else { [self.k, self.n] });
        d
    }

    fn c_dims(&self) -> Vec<usize> {
        let mut d = self.batch.to_vec();
        d.extend([self.m, self.n]);
        d
    }

    fn name(&self) -> String {
        match (self.backward, self.kernel, self.dtype) {
            (true, _, dtype) => format!("gemm_bwd_{dtype}"),
            (false, GemmKernel::TensorCore, DType::BF16) => "gemm_fwd_mma_bf16".into(),
            (false, _, dtype) => format!("gemm_fwd_{dtype}"),
        }
    }

    fn shape(&self) -> String {
        let t = |on: bool| if on { "ᵀ" } else { "" };
        let kernel = match (self.kernel, self.dtype) {
            (GemmKernel::TensorCore, DType::BF16) => "mma",
            _ => "simt",
        };
        format!(
            "a {:?}{} · b {:?}{}{} ({kernel})",
            self.a_dims(),
            t(self.spec.trans_a),
            self.b_dims(),
            t(self.spec.trans_b),
            if self.bias { " + bias" } else { "" },
        )
    }
}

/// The family's cases, in report order: each kernel × batch layout × shape, the transposes
/// rotating over the shapes, bias on every other one; forward then backward.
pub(super) fn cases() -> Vec<super::Case> {
    let kernels = [
        (GemmKernel::Simt, DType::F32),
        (GemmKernel::Simt, DType::BF16),
        (GemmKernel::TensorCore, DType::BF16),
    ];
    let mut cases = vec![];
    for backward in [false, true] {
        for (kernel, dtype) in kernels {
            for (batch, b_batched) in BATCHES {
                for (i, (m, n, k)) in SHAPES.into_iter().enumerate() {
                    let spec = GemmSpec { trans_a: i % 2 == 1, trans_b: i / 2 % 2 == 1 };
                    let bias = i % 2 == 0;
                    cases.push(Case { kernel, dtype, backward, batch, b_batched, m, n, k, spec, bias });
                }
            }
        }
    }
    cases
        .into_iter()
        .map(|c| super::Case { name: c.name(), shape: c.shape(), seed: 0, family: Family::Gemm(c) })
        .collect()
}

/// Runs `case` on `b` and downloads each output with its dtype.
pub(super) fn run<B: Backend>(b: &B, case: &Case, rng: &mut Rng) -> Result<Vec<(Vec<f32>, DType)>> {
    let upload = |dims: &[usize], rng: &mut Rng| {
        b.upload_f32(dims, &rng.normal(dims.iter().product()), case.dtype)
    };
    let out = |t: &Tensor<B>| -> Result<(Vec<f32>, DType)> { Ok((b.download_f32(t)?, t.dtype())) };
    let a = upload(&case.a_dims(), rng)?;
    let bm = upload(&case.b_dims(), rng)?;
    if case.backward {
        let dc = upload(&case.c_dims(), rng)?;
        let g = b.gemm_bwd(&a, &bm, &dc, case.bias, case.spec)?;
        let mut outs = vec![out(&g.da)?, out(&g.db)?];
        if let Some(dbias) = &g.dbias {
            outs.push(out(dbias)?);
        }
        Ok(outs)
    } else {
        let bias = upload(&[case.n], rng)?;
        let c = b.gemm(&a, &bm, case.bias.then_some(&bias), case.spec)?;
        Ok(vec![out(&c)?])
    }
}
