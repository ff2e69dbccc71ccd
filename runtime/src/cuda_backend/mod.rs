//! The Cuda backend: the project's kernels on an NVIDIA GPU through cudarc's driver API, GEMM
//! through cuBLAS (or the project's GEMM kernel).
//!
//! Its `Backend` impl is the list it shares with Emu (`gpu::dispatch`): every op runs the same
//! launcher `ops::<op>::*_gpu` as on the emulator, so launch geometry and argument packing are
//! the code the emulator has already checked; what only a GPU exercises is this module — the
//! context, memory, module loading and launch calls of `device.rs`, and the cuBLAS calls of
//! `blas.rs` (whose plans are tested on the host in `tests`).
//!
//! cudarc loads every library at run time (`dynamic-loading`), so the binary builds and runs
//! anywhere; [`Cuda::new`] checks for the driver library before calling cudarc (which panics
//! without it) and returns an error naming what is missing instead.

mod blas;
mod device;
mod gemm_plan;
mod kernels;
#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::Arc;

use cudarc::driver::CudaContext;

pub use device::CudaDevice;
pub use kernels::KERNELS_DIR_ENV;

use crate::compile::{Compiler, SETUP_SCRIPT, TOOLS_ENV};
use crate::gpu::GpuBackend;
use crate::ops::gemm::{self, GemmGrads, GemmKernel, GemmSpec};
use crate::{Error, Result, Tensor};
use blas::BlasCell;
use kernels::KernelLoader;

/// Which GEMM the Cuda backend runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum GemmImpl {
    /// cuBLAS (`cublasGemmStridedBatchedEx`, f32 accumulation): the default.
    #[default]
    Cublas,
    /// The project's own GEMM kernel (`kernels/src/gemm.cu`), as on Emu.
    Kernel,
}

/// How to open a Cuda device.
#[derive(Debug, Clone, Default)]
pub struct CudaOptions {
    /// The device ordinal.
    pub ordinal: usize,
    /// A prebuilt kernel bundle (`rlhf kernels build --out DIR`); its modules are loaded before
    /// NVRTC is asked, and with a complete bundle NVRTC is not needed at all.
    pub kernels_dir: Option<PathBuf>,
    pub gemm: GemmImpl,
}

/// The Cuda backend. Cloning shares the device (its memory, modules and cuBLAS handle).
#[derive(Clone)]
pub struct Cuda {
    device: Arc<CudaDevice>,
    blas: Arc<BlasCell>,
    gemm: GemmImpl,
}

fn unavailable(msg: String) -> Error {
    Error::Backend {
        backend: "cuda",
        msg,
    }
}

impl Cuda {
    /// Device `ordinal`, with the kernel bundle named by `$RLHF_KERNELS_DIR` if set (else NVRTC
    /// from `$RLHF_CUDA_TOOLS`) and cuBLAS for GEMM. Never panics: no driver library, no
    /// device, an ordinal out of range, a compute capability below 8.0 or no way to get the
    /// kernels are errors saying so.
    pub fn new(ordinal: usize) -> Result<Cuda> {
        let kernels_dir = std::env::var_os(KERNELS_DIR_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        Cuda::with_options(CudaOptions {
            ordinal,
            kernels_dir,
            gemm: GemmImpl::Cublas,
        })
    }

    pub fn with_options(options: CudaOptions) -> Result<Cuda> {
        // SAFETY: only tries to open the library; no driver function is called.
        if !unsafe { cudarc::driver::sys::is_culib_present() } {
            return Err(unavailable(
                "the NVIDIA driver library (libcuda.so) was not found: the Cuda backend needs an \
                 NVIDIA GPU and its driver (use the cpu or emu backend without one)"
                    .into(),
            ));
        }
        let count = CudaContext::device_count()
            .map_err(|e| unavailable(format!("the driver found no usable device: {e}")))?;
        let count = usize::try_from(count).unwrap_or(0);
        if count == 0 {
            return Err(unavailable("the driver reports no CUDA device".into()));
        }
        if options.ordinal >= count {
            return Err(unavailable(format!(
                "device ordinal {} is out of range: {count} device(s)",
                options.ordinal
            )));
        }
        let ctx = CudaContext::new(options.ordinal).map_err(|e| {
            unavailable(format!("creating a context on device {}: {e}", options.ordinal))
        })?;
        let (major, minor) = ctx
            .compute_capability()
            .map_err(|e| unavailable(format!("reading the compute capability: {e}")))?;
        let (arch, cubin_ok) = kernels::target_for(major, minor)?;
        let compiler = match Compiler::locate() {
            Ok(compiler) => Some(compiler),
            Err(_) if options.kernels_dir.is_some() => None,
            Err(e) => {
                return Err(unavailable(format!(
                    "the kernels need NVRTC (installed by {SETUP_SCRIPT} into ${TOOLS_ENV}) or a \
                     prebuilt bundle (`rlhf kernels build --out DIR`, then ${KERNELS_DIR_ENV}=DIR): {e}"
                )))
            }
        };
        let loader = KernelLoader::new(options.kernels_dir, compiler, cubin_ok);
        Ok(Cuda {
            device: Arc::new(CudaDevice::new(ctx, arch, loader)?),
            blas: Arc::new(BlasCell::default()),
            gemm: options.gemm,
        })
    }

    /// The same device with GEMM run by `gemm`.
    pub fn with_gemm(self, gemm: GemmImpl) -> Cuda {
        Cuda { gemm, ..self }
    }

    pub fn gemm_impl(&self) -> GemmImpl {
        self.gemm
    }

    /// The device's name, e.g. `NVIDIA H100 80GB HBM3`.
    pub fn device_name(&self) -> &str {
        self.device.name()
    }

    /// Blocks until every queued kernel and copy has finished (for timing; downloads wait by
    /// themselves).
    pub fn synchronize(&self) -> Result<()> {
        self.device.synchronize()
    }

    fn blas_cell(&self) -> &BlasCell {
        &self.blas
    }
}

impl GpuBackend for Cuda {
    type Device = CudaDevice;

    fn device(&self) -> &Arc<CudaDevice> {
        &self.device
    }

    fn gemm_fwd(
        &self,
        a: &Tensor<Self>,
        b: &Tensor<Self>,
        bias: Option<&Tensor<Self>>,
        spec: GemmSpec,
    ) -> Result<Tensor<Self>> {
        match self.gemm {
            GemmImpl::Cublas => blas::forward(self, a, b, bias, spec),
            GemmImpl::Kernel => gemm::forward_gpu(self, a, b, bias, spec, GemmKernel::TensorCore),
        }
    }

    fn gemm_bwd(
        &self,
        a: &Tensor<Self>,
        b: &Tensor<Self>,
        dc: &Tensor<Self>,
        with_bias: bool,
        spec: GemmSpec,
    ) -> Result<GemmGrads<Self>> {
        match self.gemm {
            GemmImpl::Cublas => blas::backward(self, a, b, dc, with_bias, spec),
            GemmImpl::Kernel => gemm::backward_gpu(self, a, b, dc, with_bias, spec, GemmKernel::TensorCore),
        }
    }
}
