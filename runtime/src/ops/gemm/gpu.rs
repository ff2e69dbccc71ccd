//! The GEMM launchers of the GPU backends (`kernels/src/gemm.cu`): the forward is one launch of
//! `gemm_fwd`; the backward expresses dA and dB as GEMMs of the same kernel with other
//! transposes and batch flags, and dbias as the column sums of dC (`gemm_bwd_bias`).
//!
//! Which kernel: f32 runs the SIMT kernel; bf16 runs the tensor-core kernel
//! (`gemm_fwd_mma_bf16`) unless [`GemmKernel::Simt`] is asked for.

use super::{check, GemmDims, GemmGrads, GemmSpec, OP};
use crate::gpu::{self, Arg, GpuBackend, Launch};
use crate::ops::check as shared_check;
use crate::{DType, Error, Result, Tensor};

/// `flags` bits of the kernels (the `GEMM_*` defines of gemm.cu).
const TRANS_A: u32 = 1;
const TRANS_B: u32 = 2;
const A_BATCHED: u32 = 4;
const B_BATCHED: u32 = 8;
const BIAS: u32 = 16;
const REDUCE_BATCH: u32 = 32;

/// The C tile of one block (both kernels).
const TILE: u32 = 64;
/// Threads per block of the SIMT kernel and of the bias-gradient kernel.
const SIMT_THREADS: u32 = 256;
/// Threads per block of the tensor-core kernel (4 warps).
const MMA_THREADS: u32 = 128;
/// CUDA's limit on gridDim.y and gridDim.z.
const MAX_GRID_YZ: u32 = 65535;

/// Which GEMM kernel runs a bf16 GEMM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GemmKernel {
    /// `gemm_fwd`: SIMT fma, any dtype.
    Simt,
    /// `gemm_fwd_mma`: `mma.sync` m16n8k16 with `ldmatrix` (bf16 only; f32 falls back to Simt).
    TensorCore,
}

/// One GEMM launch: `c = op(a)·op(b) (+ bias)` over `batch` entries with `flags`.
struct Gemm<'a, G: GpuBackend> {
    a: &'a Tensor<G>,
    b: &'a Tensor<G>,
    bias: Option<&'a Tensor<G>>,
    m: usize,
    n: usize,
    k: usize,
    batch: usize,
    flags: u32,
}

fn flag(on: bool, bit: u32) -> u32 {
    if on {
        bit
    } else {
        0
    }
}

impl<G: GpuBackend> Gemm<'_, G> {
    /// Launches into `c`, which holds `batch` (or, with `REDUCE_BATCH`, one) `[m, n]` matrices.
    fn run(&self, gpu: &G, c: &Tensor<G>, kernel: GemmKernel) -> Result<()> {
        let (m, n, k) = (
            gpu::dim_u32(OP, "M", self.m)?,
            gpu::dim_u32(OP, "N", self.n)?,
            gpu::dim_u32(OP, "K", self.k)?,
        );
        let batch = gpu::dim_u32(OP, "batch", self.batch)?;
        let blocks_z = if self.flags & REDUCE_BATCH != 0 { 1 } else { batch };
        let blocks_y = m.div_ceil(TILE);
        if blocks_y > MAX_GRID_YZ || blocks_z > MAX_GRID_YZ {
            return Err(Error::shape(
                OP,
                format!("M = {m} and batch = {batch} exceed the kernel's grid (at most {MAX_GRID_YZ} tiles of {TILE} rows, {MAX_GRID_YZ} batch entries)"),
            ));
        }
        let flags = self.flags | flag(self.bias.is_some(), BIAS);
        let args = [
            Arg::In(self.a),
            Arg::In(self.b),
            // Never read without the BIAS flag; any tensor of the dtype fills the slot.
            Arg::In(self.bias.unwrap_or(self.a)),
            Arg::Out(c),
            Arg::U32(m),
            Arg::U32(n),
            Arg::U32(k),
            Arg::U32(batch),
            Arg::U32(flags),
        ];
        let tensor_cores = kernel == GemmKernel::TensorCore && self.a.dtype() == DType::BF16;
        let (stem, threads) = if tensor_cores {
            ("gemm_fwd_mma", MMA_THREADS)
        } else {
            ("gemm_fwd", SIMT_THREADS)
        };
        let launch = Launch {
            grid: [n.div_ceil(TILE), blocks_y, blocks_z],
            block: [threads, 1, 1],
            shared_bytes: 0,
        };
        gpu::launch(gpu, stem, self.a.dtype(), launch, &args)
    }
}

pub(crate) fn forward_gpu<G: GpuBackend>(
    gpu: &G,
    a: &Tensor<G>,
    b: &Tensor<G>,
    bias: Option<&Tensor<G>>,
    spec: GemmSpec,
    kernel: GemmKernel,
) -> Result<Tensor<G>> {
    let (d, out_dims) = check(a, b, bias, spec)?;
    let c = gpu::alloc(gpu, &out_dims, a.dtype())?;
    let flags = A_BATCHED
        | flag(d.b_batched, B_BATCHED)
        | flag(spec.trans_a, TRANS_A)
        | flag(spec.trans_b, TRANS_B);
    let gemm = Gemm { a, b, bias, m: d.m, n: d.n, k: d.k, batch: d.batch, flags };
    gemm.run(gpu, &c, kernel)?;
    Ok(c)
}

pub(crate) fn backward_gpu<G: GpuBackend>(
    gpu: &G,
    a: &Tensor<G>,
    b: &Tensor<G>,
    dc: &Tensor<G>,
    with_bias: bool,
    spec: GemmSpec,
    kernel: GemmKernel,
) -> Result<GemmGrads<G>> {
    let (d, out_dims) = check(a, b, None, spec)?;
    shared_check::same_float(OP, &[("a", a), ("dc", dc)])?;
    shared_check::dims(OP, "dc", dc, &out_dims)?;
    let GemmDims { batch, b_batched, m, n, k } = d;
    let (ta, tb) = (spec.trans_a, spec.trans_b);
    let b_flag = flag(b_batched, B_BATCHED);

    // dĀ = dC·B̄ᵀ [m, k]; stored transposed (dA = B̄·dCᵀ [k, m]) when trans_a.
    let da = gpu::alloc(gpu, a.dims(), a.dtype())?;
    let grad_a = if ta {
        let flags = flag(b_batched, A_BATCHED) | B_BATCHED | flag(tb, TRANS_A) | TRANS_B;
        Gemm { a: b, b: dc, bias: None, m: k, n: m, k: n, batch, flags }
    } else {
        let flags = A_BATCHED | b_flag | flag(!tb, TRANS_B);
        Gemm { a: dc, b, bias: None, m, n: k, k: n, batch, flags }
    };
    grad_a.run(gpu, &da, kernel)?;

    // dB̄ = Āᵀ·dC [k, n]; stored transposed (dB = dCᵀ·Ā [n, k]) when trans_b. A `b` shared by
    // the batch sums over it inside the kernel (batch entries in order, one accumulator).
    let db = gpu::alloc(gpu, b.dims(), b.dtype())?;
    let batching = A_BATCHED | B_BATCHED | flag(!b_batched, REDUCE_BATCH);
    let grad_b = if tb {
        let flags = batching | TRANS_A | flag(ta, TRANS_B);
        Gemm { a: dc, b: a, bias: None, m: n, n: k, k: m, batch, flags }
    } else {
        let flags = batching | flag(!ta, TRANS_A);
        Gemm { a, b: dc, bias: None, m: k, n, k: m, batch, flags }
    };
    grad_b.run(gpu, &db, kernel)?;

    let dbias = if with_bias {
        let dbias = gpu::alloc(gpu, &[n], a.dtype())?;
        let rows = gpu::dim_u32(OP, "rows of dc", batch * m)?;
        let cols = gpu::dim_u32(OP, "N", n)?;
        let args = [Arg::In(dc), Arg::Out(&dbias), Arg::U32(rows), Arg::U32(cols)];
        // One thread per aligned 16-byte pack of dbias: one more than N / L when misaligned.
        let packs = cols.div_ceil(16 / a.dtype().size_in_bytes() as u32) + 1;
        let launch = Launch::linear(packs.div_ceil(SIMT_THREADS), SIMT_THREADS);
        gpu::launch(gpu, "gemm_bwd_bias", a.dtype(), launch, &args)?;
        Some(dbias)
    } else {
        None
    };
    Ok(GemmGrads { da, db, dbias })
}
