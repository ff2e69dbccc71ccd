//! How a GEMM of the `Backend` trait (row-major, transposes, batch, shared or batched `b`, bias)
//! becomes calls of cuBLAS's column-major `cublasGemmStridedBatchedEx`. Pure arithmetic on
//! addresses and sizes, so it is tested without a GPU: the tests run the plans through a host
//! model of the cuBLAS call and compare with the Cpu backend.
//!
//! Forward: the bias is broadcast first as a rank-1 product `ones[rows, 1] · bias[1, N]`, then
//! the product is accumulated onto it (`beta = 1`), so bias and product are rounded once
//! together, as on the Cpu. Backward follows `ops::gemm`: `dĀ = dC·B̄ᵀ`, `dB̄ = Āᵀ·dC` (a shared
//! `b` folds the batch into the reduction, or accumulates per batch entry when `a` is read
//! transposed), `dbias = ones[1, rows] · dC`.

use crate::ops::gemm::{GemmDims, GemmSpec};

/// One row-major operand: its address, whether it is read transposed, and the distance between
/// batch entries in elements (0: shared by every entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Mat {
    pub addr: u64,
    pub trans: bool,
    pub stride: usize,
}

impl Mat {
    fn new(addr: u64, trans: bool, stride: usize) -> Mat {
        Mat { addr, trans, stride }
    }
}

/// `c = (accumulate ? c : 0) + op(a)·op(b)` for `batch` entries: `op(a)` `[m, k]`, `op(b)`
/// `[k, n]`, `c` `[m, n]` row-major, entries `m·n` apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RowGemm {
    pub a: Mat,
    pub b: Mat,
    pub c: u64,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub batch: usize,
    pub accumulate: bool,
}

/// One step of a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Set `elems` elements at `c` to zero (a product whose reduction is empty).
    Zero { c: u64, elems: usize },
    Gemm(RowGemm),
}

/// One call of `cublasGemmStridedBatchedEx` in cuBLAS's column-major terms (`a`, `b`, `c` as
/// cuBLAS names them; strides in elements).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ColGemm {
    pub trans_a: bool,
    pub trans_b: bool,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub a: u64,
    pub lda: usize,
    pub stride_a: usize,
    pub b: u64,
    pub ldb: usize,
    pub stride_b: usize,
    pub c: u64,
    pub ldc: usize,
    pub stride_c: usize,
    pub batch: usize,
    pub accumulate: bool,
}

impl RowGemm {
    /// The same product for a column-major library. A row-major `[r, c]` matrix is its
    /// transpose stored column-major with leading dimension `c`, so row-major `C = op(A)·op(B)`
    /// is column-major `Cᵀ = op(B)ᵀ·op(A)ᵀ` with `ldc = n`: `op(B)ᵀ` `[n, k]` is `b` as stored
    /// (ld `n`) when not transposed, else `b` transposed (stored `[n, k]`, ld `k`); likewise
    /// `op(A)ᵀ` `[k, m]`.
    pub(crate) fn col_major(&self) -> ColGemm {
        let (m, n, k) = (self.m, self.n, self.k);
        ColGemm {
            trans_a: self.b.trans,
            trans_b: self.a.trans,
            m: n,
            n: m,
            k,
            a: self.b.addr,
            lda: if self.b.trans { k } else { n },
            stride_a: self.b.stride,
            b: self.a.addr,
            ldb: if self.a.trans { m } else { k },
            stride_b: self.a.stride,
            c: self.c,
            ldc: n,
            stride_c: m * n,
            batch: self.batch,
            accumulate: self.accumulate,
        }
    }
}

/// A step for `g`, or none when it writes nothing; an empty reduction zeroes `c` (or leaves it
/// when accumulating).
fn step(g: RowGemm) -> Option<Step> {
    let elems = g.batch * g.m * g.n;
    if elems == 0 || (g.k == 0 && g.accumulate) {
        None
    } else if g.k == 0 {
        Some(Step::Zero { c: g.c, elems })
    } else {
        Some(Step::Gemm(g))
    }
}

/// Addresses of one GEMM's tensors and of a vector of at least `batch·m` ones (for the bias).
#[derive(Debug, Clone, Copy)]
pub(crate) struct FwdAddrs {
    pub a: u64,
    pub b: u64,
    pub bias: Option<u64>,
    pub c: u64,
    pub ones: u64,
}

/// The steps of `C = op(A)·op(B) + bias`.
pub(crate) fn forward(d: &GemmDims, spec: GemmSpec, t: FwdAddrs) -> Vec<Step> {
    let GemmDims { batch, b_batched, m, n, k } = *d;
    let rows = batch * m;
    let mut steps = Vec::new();
    if let Some(bias) = t.bias {
        steps.extend(step(RowGemm {
            a: Mat::new(t.ones, false, 0),
            b: Mat::new(bias, false, 0),
            c: t.c,
            m: rows,
            n,
            k: 1,
            batch: 1,
            accumulate: false,
        }));
    }
    let accumulate = t.bias.is_some();
    let product = if !b_batched && !spec.trans_a {
        // Shared b and untransposed a: the batch folds into M, one large product.
        RowGemm {
            a: Mat::new(t.a, false, 0),
            b: Mat::new(t.b, spec.trans_b, 0),
            c: t.c,
            m: rows,
            n,
            k,
            batch: 1,
            accumulate,
        }
    } else {
        RowGemm {
            a: Mat::new(t.a, spec.trans_a, m * k),
            b: Mat::new(t.b, spec.trans_b, if b_batched { k * n } else { 0 }),
            c: t.c,
            m,
            n,
            k,
            batch,
            accumulate,
        }
    };
    steps.extend(step(product));
    steps
}

/// Addresses of a GEMM backward's tensors; `elem_bytes` is the size of one element (batch
/// entries of a shared `b`'s gradient are separate calls at byte offsets).
#[derive(Debug, Clone, Copy)]
pub(crate) struct BwdAddrs {
    pub a: u64,
    pub b: u64,
    pub dc: u64,
    pub da: u64,
    pub db: u64,
    pub dbias: Option<u64>,
    pub ones: u64,
    pub elem_bytes: u64,
}

/// The steps of `dA`, `dB` (and `dbias`) for upstream `dC`.
pub(crate) fn backward(d: &GemmDims, spec: GemmSpec, t: BwdAddrs) -> Vec<Step> {
    let GemmDims { batch, b_batched, m, n, k } = *d;
    let (ta, tb) = (spec.trans_a, spec.trans_b);
    let rows = batch * m;
    let b_stride = if b_batched { k * n } else { 0 };
    let mut steps = Vec::new();

    // dĀ = dC·B̄ᵀ [m, k]; stored transposed (dA = B̄·dCᵀ [k, m]) when trans_a.
    let da = if ta {
        RowGemm {
            a: Mat::new(t.b, tb, b_stride),
            b: Mat::new(t.dc, true, m * n),
            c: t.da,
            m: k,
            n: m,
            k: n,
            batch,
            accumulate: false,
        }
    } else if !b_batched {
        RowGemm {
            a: Mat::new(t.dc, false, 0),
            b: Mat::new(t.b, !tb, 0),
            c: t.da,
            m: rows,
            n: k,
            k: n,
            batch: 1,
            accumulate: false,
        }
    } else {
        RowGemm {
            a: Mat::new(t.dc, false, m * n),
            b: Mat::new(t.b, !tb, b_stride),
            c: t.da,
            m,
            n: k,
            k: n,
            batch,
            accumulate: false,
        }
    };
    steps.extend(step(da));

    // dB̄ = Āᵀ·dC [k, n]; stored transposed (dB = dCᵀ·Ā [n, k]) when trans_b.
    let db_entry = |a: Mat, dc: Mat, batch: usize, m: usize, accumulate: bool| {
        if tb {
            RowGemm { a: Mat { trans: true, ..dc }, b: a, c: t.db, m: n, n: k, k: m, batch, accumulate }
        } else {
            RowGemm { a: Mat { trans: !a.trans, ..a }, b: dc, c: t.db, m: k, n, k: m, batch, accumulate }
        }
    };
    if b_batched {
        let a = Mat::new(t.a, ta, m * k);
        let dc = Mat::new(t.dc, false, m * n);
        steps.extend(step(db_entry(a, dc, batch, m, false)));
    } else if !ta {
        // Shared b: the batch folds into the reduction dimension, one product.
        let a = Mat::new(t.a, false, 0);
        let dc = Mat::new(t.dc, false, 0);
        steps.extend(step(db_entry(a, dc, 1, rows, false)));
    } else if batch == 0 {
        steps.extend(step(RowGemm { k: 0, ..db_entry(Mat::new(t.a, ta, 0), Mat::new(t.dc, false, 0), 1, m, false) }));
    } else {
        for i in 0..batch as u64 {
            let a = Mat::new(t.a + i * (m * k) as u64 * t.elem_bytes, ta, 0);
            let dc = Mat::new(t.dc + i * (m * n) as u64 * t.elem_bytes, false, 0);
            steps.extend(step(db_entry(a, dc, 1, m, i > 0)));
        }
    }

    if let Some(dbias) = t.dbias {
        steps.extend(step(RowGemm {
            a: Mat::new(t.ones, false, 0),
            b: Mat::new(t.dc, false, 0),
            c: dbias,
            m: 1,
            n,
            k: rows,
            batch: 1,
            accumulate: false,
        }));
    }
    steps
}
