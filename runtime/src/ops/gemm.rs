//! GEMM: `C = op(A) · op(B) + bias` with optional transposes, batch dims and a bias row.
//!
//! Shapes: `a` is `[.., M, K]` (`[.., K, M]` with `trans_a`); `b` is `[K, N]` shared by every
//! batch, or `[.., K, N]` with the same leading dims as `a` (`[N, K]` / `[.., N, K]` with
//! `trans_b`); bias `[N]`; `C` is `[.., M, N]`. A linear layer with Hugging Face's `[out, in]`
//! weight is `trans_b = true`; GPT-2's Conv1D `[in, out]` weight is `trans_b = false`.
//!
//! Backward, with `Ā = op(A)`, `B̄ = op(B)`: `dĀ = dC · B̄ᵀ`, `dB̄ = Āᵀ · dC`, `dbias = Σ_rows dC`;
//! a `b` shared across the batch sums its gradient over the batch.

use gemm::Parallelism;
use rayon::prelude::*;

use super::check;
use crate::cpu::{f32_data, from_f32};
use crate::{Backend, Cpu, Error, Result, Tensor};

mod gpu;

pub(crate) use gpu::{backward_gpu, forward_gpu};
pub use gpu::GemmKernel;

const OP: &str = "gemm";

/// Which operands are read transposed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GemmSpec {
    pub trans_a: bool,
    pub trans_b: bool,
}

impl GemmSpec {
    /// `A · Bᵀ`: a linear layer with an `[out, in]` weight.
    pub const fn nt() -> Self {
        GemmSpec { trans_a: false, trans_b: true }
    }
}

/// Gradients of [`Backend::gemm`]; `dbias` is present when asked for.
pub struct GemmGrads<B: Backend> {
    pub da: Tensor<B>,
    pub db: Tensor<B>,
    pub dbias: Option<Tensor<B>>,
}

/// The sizes of one GEMM call, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GemmDims {
    /// Number of `[M, K] · [K, N]` products (the product of `a`'s leading dims).
    pub batch: usize,
    /// Whether `b` has its own matrix per batch entry (otherwise it is shared).
    pub b_batched: bool,
    pub m: usize,
    pub n: usize,
    pub k: usize,
}

/// Checks shapes and dtypes of a GEMM and returns its sizes and the dims of `C`.
pub fn check<B: Backend>(
    a: &Tensor<B>,
    b: &Tensor<B>,
    bias: Option<&Tensor<B>>,
    spec: GemmSpec,
) -> Result<(GemmDims, Vec<usize>)> {
    match bias {
        Some(bias) => check::same_float(OP, &[("a", a), ("b", b), ("bias", bias)])?,
        None => check::same_float(OP, &[("a", a), ("b", b)])?,
    };
    let (ad, bd) = (a.dims(), b.dims());
    if ad.len() < 2 || bd.len() < 2 {
        return Err(Error::shape(OP, format!("a {} and b {} must have rank >= 2", a.shape(), b.shape())));
    }
    let lead = &ad[..ad.len() - 2];
    let b_batched = bd.len() > 2;
    if b_batched && &bd[..bd.len() - 2] != lead {
        return Err(Error::shape(
            OP,
            format!("batch dims of a {} and b {} differ", a.shape(), b.shape()),
        ));
    }
    let (ar, ac) = (ad[ad.len() - 2], ad[ad.len() - 1]);
    let (br, bc) = (bd[bd.len() - 2], bd[bd.len() - 1]);
    let (m, k) = if spec.trans_a { (ac, ar) } else { (ar, ac) };
    let (kb, n) = if spec.trans_b { (bc, br) } else { (br, bc) };
    if k != kb {
        return Err(Error::shape(
            OP,
            format!(
                "inner dims differ: a {} (trans_a={}) gives K={k}, b {} (trans_b={}) gives K={kb}",
                a.shape(),
                spec.trans_a,
                b.shape(),
                spec.trans_b
            ),
        ));
    }
    if let Some(bias) = bias {
        check::dims(OP, "bias", bias, &[n])?;
    }
    let mut out = lead.to_vec();
    out.extend([m, n]);
    Ok((GemmDims { batch: lead.iter().product(), b_batched, m, n, k }, out))
}

/// One row-major matrix operand: its data and whether it is read transposed.
#[derive(Clone, Copy)]
struct Operand<'a> {
    data: &'a [f32],
    trans: bool,
}

/// `c = (accumulate ? c : 0) + op(a) · op(b)` for row-major `c` `[m, n]`, `op(a)` `[m, k]`,
/// `op(b)` `[k, n]`.
fn sgemm(
    c: &mut [f32],
    accumulate: bool,
    a: Operand,
    b: Operand,
    (m, n, k): (usize, usize, usize),
    parallelism: Parallelism,
) {
    assert!(c.len() >= m * n && a.data.len() >= m * k && b.data.len() >= k * n);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c[..m * n].fill(0.0);
        }
        return;
    }
    // Row-major [rows, cols] read straight has (row stride, col stride) = (cols, 1); read
    // transposed, the stored matrix is [cols, rows] so the strides swap.
    let strides = |trans: bool, cols: usize, rows: usize| -> (isize, isize) {
        if trans {
            (1, rows as isize)
        } else {
            (cols as isize, 1)
        }
    };
    let (a_rs, a_cs) = strides(a.trans, k, m);
    let (b_rs, b_cs) = strides(b.trans, n, k);
    // SAFETY: the assert above guarantees every index the strides reach, (m-1)*rs + (k-1)*cs for
    // a, likewise for b and c, lies inside its slice; c does not alias a or b (it is a distinct
    // &mut borrow).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a_cs,
            a_rs,
            b.data.as_ptr(),
            b_cs,
            b_rs,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        )
    }
}

/// Runs `f(batch_index, c_chunk)` for every batch entry, spreading entries over threads when there
/// are enough of them and otherwise letting each GEMM use every thread.
fn for_each_batch(c: &mut [f32], chunk: usize, f: impl Fn(usize, &mut [f32], Parallelism) + Sync) {
    if chunk == 0 {
        return;
    }
    let batch = c.len() / chunk;
    if batch >= rayon::current_num_threads() {
        c.par_chunks_mut(chunk).enumerate().for_each(|(i, ci)| f(i, ci, Parallelism::None));
    } else {
        c.chunks_mut(chunk).enumerate().for_each(|(i, ci)| f(i, ci, Parallelism::Rayon(0)));
    }
}

fn add_bias(c: &mut [f32], bias: &[f32]) {
    c.par_chunks_mut(bias.len().max(1)).for_each(|row| {
        row.iter_mut().zip(bias).for_each(|(x, b)| *x += b);
    });
}

/// Sum of the rows of `x` viewed as `[rows, n]`.
fn sum_rows(x: &[f32], n: usize) -> Vec<f32> {
    let mut acc = vec![0f64; n];
    for row in x.chunks(n.max(1)) {
        acc.iter_mut().zip(row).for_each(|(s, &v)| *s += v as f64);
    }
    acc.into_iter().map(|s| s as f32).collect()
}

pub(crate) fn forward_cpu(
    a: &Tensor<Cpu>,
    b: &Tensor<Cpu>,
    bias: Option<&Tensor<Cpu>>,
    spec: GemmSpec,
) -> Result<Tensor<Cpu>> {
    let (d, out_dims) = check(a, b, bias, spec)?;
    let (ad, bd) = (f32_data(a), f32_data(b));
    let mut c = vec![0f32; d.batch * d.m * d.n];
    if !d.b_batched && !spec.trans_a {
        // Shared b and untransposed a: the batch folds into M, one large GEMM.
        let ao = Operand { data: &ad, trans: false };
        let bo = Operand { data: &bd, trans: spec.trans_b };
        sgemm(&mut c, false, ao, bo, (d.batch * d.m, d.n, d.k), Parallelism::Rayon(0));
    } else {
        let b_stride = if d.b_batched { d.k * d.n } else { 0 };
        for_each_batch(&mut c, d.m * d.n, |i, ci, par| {
            let ao = Operand { data: &ad[i * d.m * d.k..], trans: spec.trans_a };
            let bo = Operand { data: &bd[i * b_stride..], trans: spec.trans_b };
            sgemm(ci, false, ao, bo, (d.m, d.n, d.k), par);
        });
    }
    if let Some(bias) = bias {
        add_bias(&mut c, &f32_data(bias));
    }
    Ok(from_f32(&out_dims, c, a.dtype()))
}

pub(crate) fn backward_cpu(
    a: &Tensor<Cpu>,
    b: &Tensor<Cpu>,
    dc: &Tensor<Cpu>,
    with_bias: bool,
    spec: GemmSpec,
) -> Result<GemmGrads<Cpu>> {
    let (d, out_dims) = check(a, b, None, spec)?;
    check::same_float(OP, &[("a", a), ("dc", dc)])?;
    check::dims(OP, "dc", dc, &out_dims)?;
    let (ad, bd, dcd) = (f32_data(a), f32_data(b), f32_data(dc));
    let (m, n, k) = (d.m, d.n, d.k);
    let (ta, tb) = (spec.trans_a, spec.trans_b);

    // dA: dĀ = dC·B̄ᵀ [m, k]; stored transposed (dA = B̄·dCᵀ [k, m]) when trans_a.
    let mut da = vec![0f32; a.numel()];
    let b_stride = if d.b_batched { k * n } else { 0 };
    let grad_a = |i: usize, dai: &mut [f32], par: Parallelism| {
        let dci = Operand { data: &dcd[i * m * n..], trans: false };
        let bi = &bd[i * b_stride..];
        if ta {
            let bo = Operand { data: bi, trans: tb };
            sgemm(dai, false, bo, Operand { trans: true, ..dci }, (k, m, n), par);
        } else {
            sgemm(dai, false, dci, Operand { data: bi, trans: !tb }, (m, k, n), par);
        }
    };
    if !d.b_batched && !ta {
        let dco = Operand { data: &dcd, trans: false };
        sgemm(&mut da, false, dco, Operand { data: &bd, trans: !tb }, (d.batch * m, k, n), Parallelism::Rayon(0));
    } else {
        for_each_batch(&mut da, m * k, grad_a);
    }

    // dB: dB̄ = Āᵀ·dC [k, n]; stored transposed (dB = dCᵀ·Ā [n, k]) when trans_b.
    let grad_b = |i: usize, dbi: &mut [f32], accumulate: bool, par: Parallelism| {
        let ai = Operand { data: &ad[i * m * k..], trans: ta };
        let dci = Operand { data: &dcd[i * m * n..], trans: false };
        if tb {
            sgemm(dbi, accumulate, Operand { trans: true, ..dci }, ai, (n, k, m), par);
        } else {
            sgemm(dbi, accumulate, Operand { trans: !ta, ..ai }, dci, (k, n, m), par);
        }
    };
    let mut db = vec![0f32; b.numel()];
    if d.b_batched {
        for_each_batch(&mut db, k * n, |i, dbi, par| grad_b(i, dbi, false, par));
    } else if !ta {
        // Shared b: fold the batch into the reduction dimension, one GEMM.
        let ao = Operand { data: &ad, trans: false };
        let dco = Operand { data: &dcd, trans: false };
        let mm = d.batch * m;
        if tb {
            sgemm(&mut db, false, Operand { trans: true, ..dco }, ao, (n, k, mm), Parallelism::Rayon(0));
        } else {
            sgemm(&mut db, false, Operand { trans: true, ..ao }, dco, (k, n, mm), Parallelism::Rayon(0));
        }
    } else {
        for i in 0..d.batch {
            grad_b(i, &mut db, i > 0, Parallelism::Rayon(0));
        }
    }

    let dbias = with_bias.then(|| from_f32(&[n], sum_rows(&dcd, n), a.dtype()));
    Ok(GemmGrads {
        da: from_f32(a.dims(), da, a.dtype()),
        db: from_f32(b.dims(), db, b.dtype()),
        dbias,
    })
}
