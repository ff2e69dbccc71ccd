//! The Emu backend: the project's CUDA kernels, compiled by NVRTC to PTX exactly as for a GPU,
//! run by the PTX emulator ([`crate::emu`]) on the CPU. It is how a machine without a GPU
//! executes the GPU code path: launch geometry, argument packing, shared memory, barriers and
//! warp shuffles are all exercised, and every global access is bounds-checked per allocation.
//!
//! Its `Backend` impl is the list shared with the Cuda backend (`gpu::dispatch`): each op with a
//! kernel dispatches to its generic launcher `ops::<op>::*_gpu`; ops without a kernel yet return
//! [`Error::Backend`] saying so rather than falling back to the Cpu. Host transfers are byte
//! copies ([`crate::gpu::transfer`]).
//! Tensors hold their allocation and an `Arc` of the device, and free the allocation on drop.

mod device;

use std::sync::Arc;

pub use device::{EmuDevice, KernelStats};

use crate::compile::{Compiler, SETUP_SCRIPT, TOOLS_ENV};
use crate::gpu::GpuBackend;
use crate::ops::gemm::{self, GemmGrads, GemmKernel, GemmSpec};
use crate::{Error, Result, Tensor};

/// The Emu backend. Cloning shares the device (its memory and loaded modules). One device runs
/// one kernel at a time; separate `Emu` instances run independently.
#[derive(Clone)]
pub struct Emu {
    device: Arc<EmuDevice>,
    /// The kernel behind bf16 GEMMs (f32 always runs the SIMT kernel).
    gemm_kernel: GemmKernel,
}

impl Emu {
    /// An emulated device using the CUDA tools from `$RLHF_CUDA_TOOLS` (or the default place)
    /// and the default PTX cache, with the emulator's sanitizer on (a shared-memory race, barrier
    /// divergence or uninitialised shared read fails the op); an error naming the variable and
    /// the setup script when NVRTC cannot be found or loaded.
    pub fn new() -> Result<Emu> {
        Emu::with_sanitizer(true)
    }

    /// As [`Emu::new`], choosing whether the sanitizer runs (off is faster).
    pub fn with_sanitizer(sanitize: bool) -> Result<Emu> {
        let compiler = Compiler::locate().map_err(|e| Error::Backend {
            backend: "emu",
            msg: format!(
                "NVRTC is needed to compile the kernels (installed by {SETUP_SCRIPT} into \
                 ${TOOLS_ENV}): {e}"
            ),
        })?;
        Ok(Emu {
            device: Arc::new(EmuDevice::new(compiler, sanitize)),
            gemm_kernel: GemmKernel::TensorCore,
        })
    }

    /// The same device, running bf16 GEMMs on `kernel` (the tensor-core kernel by default).
    pub fn with_gemm_kernel(self, kernel: GemmKernel) -> Emu {
        Emu { gemm_kernel: kernel, ..self }
    }

    /// Bytes of emulated device memory held by live tensors (and by module-level variables of
    /// the kernels loaded so far): what a leak check looks at.
    pub fn allocated_bytes(&self) -> usize {
        self.device.allocated_bytes()
    }

    /// The high-water mark of [`Emu::allocated_bytes`] since the last
    /// [`Emu::reset_peak_allocated_bytes`]: what shows a temporary buffer an op allocated and
    /// freed before returning.
    pub fn peak_allocated_bytes(&self) -> usize {
        self.device.peak_allocated_bytes()
    }

    /// Starts a new high-water mark at the bytes allocated now.
    pub fn reset_peak_allocated_bytes(&self) {
        self.device.reset_peak_allocated_bytes()
    }

    /// Device-to-host copies so far. On a GPU each one waits for the work queued before it, so
    /// the forward pass, the log-probs and a decoding step should make none until their result is
    /// read (tests/models/device_reads.rs).
    pub fn downloads(&self) -> u64 {
        self.device.downloads()
    }

    /// The emulator's counters summed per kernel entry point over every launch so far (global
    /// bytes, 32-byte sectors, shared wavefronts, barriers, ...), sorted by name.
    pub fn kernel_stats(&self) -> Vec<(&'static str, KernelStats)> {
        self.device.kernel_stats()
    }
}

impl GpuBackend for Emu {
    type Device = EmuDevice;

    fn device(&self) -> &Arc<EmuDevice> {
        &self.device
    }

    fn gemm_fwd(
        &self,
        a: &Tensor<Self>,
        b: &Tensor<Self>,
        bias: Option<&Tensor<Self>>,
        spec: GemmSpec,
    ) -> Result<Tensor<Self>> {
        gemm::forward_gpu(self, a, b, bias, spec, self.gemm_kernel)
    }

    fn gemm_bwd(
        &self,
        a: &Tensor<Self>,
        b: &Tensor<Self>,
        dc: &Tensor<Self>,
        with_bias: bool,
        spec: GemmSpec,
    ) -> Result<GemmGrads<Self>> {
        gemm::backward_gpu(self, a, b, dc, with_bias, spec, self.gemm_kernel)
    }
}
