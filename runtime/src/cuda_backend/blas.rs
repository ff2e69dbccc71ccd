//! GEMM on the Cuda backend through cuBLAS (`cublasGemmStridedBatchedEx`, f32 or bf16 storage,
//! f32 accumulation with `CUBLAS_COMPUTE_32F`, so no TF32 rounding of f32 inputs). The plans are
//! in `gemm_plan`; this file owns the handle, the vector of ones the bias steps use, and the
//! calls. cuBLAS is loaded on first use (`libcublas.so.12`, by name, as cudarc does), so the
//! backend works without it until a GEMM is asked for.

use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::{Mutex, MutexGuard, PoisonError};

use cudarc::cublas::sys::{
    cublasComputeType_t, cublasGemmAlgo_t, cublasOperation_t, cudaDataType,
};
use cudarc::cublas::{result as cublas, CudaBlas};

use super::gemm_plan::{self, BwdAddrs, FwdAddrs, Step};
use super::Cuda;
use crate::gpu::{self, addr_on, transfer, GpuBackend, GpuDevice};
use crate::ops::gemm::{self, GemmGrads, GemmSpec};
use crate::{DType, Error, Result, Tensor};

/// The cuBLAS handle (on the device's stream) and, per dtype, a vector of ones at least as long
/// as the most rows a bias step has needed.
pub(crate) struct Blas {
    handle: CudaBlas,
    ones: HashMap<DType, Tensor<Cuda>>,
}

/// The lazily created cuBLAS state of a device; locked for a whole GEMM, which keeps the ones
/// vector alive while the calls that read it are queued.
#[derive(Default)]
pub(crate) struct BlasCell(Mutex<Option<Blas>>);

fn blas_error(msg: String) -> Error {
    Error::Backend {
        backend: "cuda",
        msg,
    }
}

impl BlasCell {
    fn get(&self, cuda: &Cuda) -> Result<MutexGuard<'_, Option<Blas>>> {
        let mut guard = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if guard.is_none() {
            // SAFETY: only tries to open the library; no cuBLAS function is called.
            if !unsafe { cudarc::cublas::sys::is_culib_present() } {
                return Err(blas_error(
                    "cuBLAS (libcublas.so.12) was not found on the library path; install it \
                     (e.g. the nvidia-cublas-cu12 wheel, its lib dir on LD_LIBRARY_PATH) or use \
                     the project's GEMM kernel (Cuda::with_gemm(GemmImpl::Kernel))"
                        .into(),
                ));
            }
            cuda.device().bind()?;
            let handle = CudaBlas::new(cuda.device().stream().clone())
                .map_err(|e| blas_error(format!("creating the cuBLAS handle: {e}")))?;
            *guard = Some(Blas {
                handle,
                ones: HashMap::new(),
            });
        }
        Ok(guard)
    }
}

impl Blas {
    /// The address of at least `len` ones of `dtype` (grown by doubling, never shrunk).
    fn ones(&mut self, cuda: &Cuda, dtype: DType, len: usize) -> Result<u64> {
        let have = self.ones.get(&dtype).map_or(0, |t| t.numel());
        if have < len {
            let len = len.max(2 * have).max(1024);
            let ones = transfer::upload_f32(cuda, &[len], &vec![1.0; len], dtype)?;
            self.ones.insert(dtype, ones);
        }
        let Some(ones) = self.ones.get(&dtype) else {
            unreachable!("inserted above")
        };
        addr_on(cuda, ones)
    }

    /// Runs `steps` on tensors of `dtype`.
    fn run(&self, cuda: &Cuda, dtype: DType, steps: &[Step]) -> Result<()> {
        let data_type = match dtype {
            DType::F32 => cudaDataType::CUDA_R_32F,
            DType::BF16 => cudaDataType::CUDA_R_16BF,
            DType::U32 => unreachable!("gemm::check admits float dtypes only"),
        };
        let elem_bytes = dtype.size_in_bytes();
        cuda.device().bind()?;
        for step in steps {
            let g = match step {
                Step::Zero { c, elems } => {
                    cuda.device().zero(*c, elems * elem_bytes)?;
                    continue;
                }
                Step::Gemm(g) => g.col_major(),
            };
            let int = |name: &str, v: usize| {
                i32::try_from(v).map_err(|_| {
                    Error::shape("gemm", format!("{name} = {v} exceeds cuBLAS's 32-bit sizes"))
                })
            };
            let long = |v: usize| i64::try_from(v).unwrap_or(i64::MAX);
            let op = |t: bool| {
                if t {
                    cublasOperation_t::CUBLAS_OP_T
                } else {
                    cublasOperation_t::CUBLAS_OP_N
                }
            };
            let alpha = 1f32;
            let beta = if g.accumulate { 1f32 } else { 0f32 };
            // SAFETY: every address is a live allocation of this device holding a tensor of
            // `dtype` sized by `gemm::check` for these m, n, k, leading dimensions and strides
            // (the plans are tested against the Cpu through a host model of this call); alpha
            // and beta are host f32 values, as the handle's default host pointer mode and
            // CUBLAS_COMPUTE_32F expect; the call is queued on the device's stream and reads
            // alpha/beta before returning.
            unsafe {
                cublas::gemm_strided_batched_ex(
                    *self.handle.handle(),
                    op(g.trans_a),
                    op(g.trans_b),
                    int("m", g.m)?,
                    int("n", g.n)?,
                    int("k", g.k)?,
                    (&alpha as *const f32).cast::<c_void>(),
                    g.a as *const c_void,
                    data_type,
                    int("lda", g.lda)?,
                    long(g.stride_a),
                    g.b as *const c_void,
                    data_type,
                    int("ldb", g.ldb)?,
                    long(g.stride_b),
                    (&beta as *const f32).cast::<c_void>(),
                    g.c as *mut c_void,
                    data_type,
                    int("ldc", g.ldc)?,
                    long(g.stride_c),
                    int("batch", g.batch)?,
                    cublasComputeType_t::CUBLAS_COMPUTE_32F,
                    cublasGemmAlgo_t::CUBLAS_GEMM_DFALT,
                )
            }
            .map_err(|e| blas_error(format!("cublasGemmStridedBatchedEx: {e}")))?;
        }
        Ok(())
    }
}

pub(crate) fn forward(
    cuda: &Cuda,
    a: &Tensor<Cuda>,
    b: &Tensor<Cuda>,
    bias: Option<&Tensor<Cuda>>,
    spec: GemmSpec,
) -> Result<Tensor<Cuda>> {
    let (d, out_dims) = gemm::check(a, b, bias, spec)?;
    let c = gpu::alloc(cuda, &out_dims, a.dtype())?;
    let mut guard = cuda.blas_cell().get(cuda)?;
    let Some(blas) = guard.as_mut() else {
        unreachable!("BlasCell::get initialises the state")
    };
    let ones = blas.ones(cuda, a.dtype(), d.batch * d.m)?;
    let addrs = FwdAddrs {
        a: addr_on(cuda, a)?,
        b: addr_on(cuda, b)?,
        bias: bias.map(|t| addr_on(cuda, t)).transpose()?,
        c: addr_on(cuda, &c)?,
        ones,
    };
    blas.run(cuda, a.dtype(), &gemm_plan::forward(&d, spec, addrs))?;
    Ok(c)
}

pub(crate) fn backward(
    cuda: &Cuda,
    a: &Tensor<Cuda>,
    b: &Tensor<Cuda>,
    dc: &Tensor<Cuda>,
    with_bias: bool,
    spec: GemmSpec,
) -> Result<GemmGrads<Cuda>> {
    let (d, out_dims) = gemm::check(a, b, None, spec)?;
    crate::ops::check::same_float("gemm", &[("a", a), ("dc", dc)])?;
    crate::ops::check::dims("gemm", "dc", dc, &out_dims)?;
    let dtype = a.dtype();
    let da = gpu::alloc(cuda, a.dims(), dtype)?;
    let db = gpu::alloc(cuda, b.dims(), dtype)?;
    let dbias = with_bias
        .then(|| gpu::alloc(cuda, &[d.n], dtype))
        .transpose()?;
    let mut guard = cuda.blas_cell().get(cuda)?;
    let Some(blas) = guard.as_mut() else {
        unreachable!("BlasCell::get initialises the state")
    };
    let ones = blas.ones(cuda, dtype, d.batch * d.m)?;
    let addrs = BwdAddrs {
        a: addr_on(cuda, a)?,
        b: addr_on(cuda, b)?,
        dc: addr_on(cuda, dc)?,
        da: addr_on(cuda, &da)?,
        db: addr_on(cuda, &db)?,
        dbias: dbias.as_ref().map(|t| addr_on(cuda, t)).transpose()?,
        ones,
        elem_bytes: dtype.size_in_bytes() as u64,
    };
    blas.run(cuda, dtype, &gemm_plan::backward(&d, spec, addrs))?;
    Ok(GemmGrads { da, db, dbias })
}
