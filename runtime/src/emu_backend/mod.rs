//! The Emu backend: the project's CUDA kernels, compiled by NVRTC to PTX exactly as for a GPU,
//! run by the PTX emulator ([`crate::emu`]) on the CPU. It is how a machine without a GPU
//! executes the GPU code path: launch geometry, argument packing, shared memory, barriers and
//! warp shuffles are all exercised, and every global access is bounds-checked per allocation.
//!
//! Each op with a kernel dispatches to its generic launcher `ops::<op>::*_gpu` (shared with the
//! Cuda backend); ops without a kernel yet return [`Error::Backend`] saying so rather than
//! falling back to the Cpu. Host transfers are byte copies ([`crate::gpu::transfer`]).
//! Tensors hold their allocation and an `Arc` of the device, and free the allocation on drop.

mod device;

use std::sync::Arc;

pub use device::{EmuDevice, KernelStats};

use crate::compile::{Compiler, SETUP_SCRIPT, TOOLS_ENV};
use crate::gpu::{transfer, GpuBackend, GpuBuffer};
use crate::ops::adamw::AdamW;
use crate::ops::attention::{self, AttentionGrads, AttentionOut};
use crate::ops::cross_entropy::{self, CrossEntropyOut};
use crate::ops::bt_loss::{BtLossGrads, BtPairs};
use crate::ops::gae::GaeOut;
use crate::ops::gemm::{GemmGrads, GemmSpec};
use crate::ops::grpo_loss::{GrpoLossConfig, GrpoLossOut};
use crate::ops::kl::KlEstimator;
use crate::ops::layernorm::{self, LayerNormGrads, LayerNormOut};
use crate::ops::logprob::LogProbOut;
use crate::ops::masked_whiten::WhitenOut;
use crate::ops::ppo_loss::{PpoLossConfig, PpoLossOut};
use crate::ops::rmsnorm::{self, RmsNormGrads, RmsNormOut};
use crate::ops::swiglu::{self, SwiGluGrads};
use crate::ops::value_loss::{ValueLossConfig, ValueLossOut};
use crate::ops::{elementwise, embedding, gelu, kv_cache, rope};
use crate::{Backend, DType, Error, Result, Tensor};

/// The Emu backend. Cloning shares the device (its memory and loaded modules). One device runs
/// one kernel at a time; separate `Emu` instances run independently.
#[derive(Clone)]
pub struct Emu {
    device: Arc<EmuDevice>,
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
        })
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
}

/// The error of an op that has no CUDA kernel yet.
fn no_kernel<T>(op: &str) -> Result<T> {
    Err(Error::Backend {
        backend: "emu",
        msg: format!("no CUDA kernel for {op} yet"),
    })
}

impl Backend for Emu {
    type Buffer = GpuBuffer<EmuDevice>;

    fn name(&self) -> &'static str {
        "emu"
    }

    fn upload_f32(&self, dims: &[usize], data: &[f32], dtype: DType) -> Result<Tensor<Self>> {
        transfer::upload_f32(self, dims, data, dtype)
    }

    fn upload_u32(&self, dims: &[usize], data: &[u32]) -> Result<Tensor<Self>> {
        transfer::upload_u32(self, dims, data)
    }

    fn download_f32(&self, t: &Tensor<Self>) -> Result<Vec<f32>> {
        transfer::download_f32(self, t)
    }

    fn download_u32(&self, t: &Tensor<Self>) -> Result<Vec<u32>> {
        transfer::download_u32(self, t)
    }

    fn zeros(&self, dims: &[usize], dtype: DType) -> Result<Tensor<Self>> {
        transfer::zeros(self, dims, dtype)
    }

    fn cast(&self, t: &Tensor<Self>, dtype: DType) -> Result<Tensor<Self>> {
        transfer::cast(self, t, dtype)
    }

    fn add(&self, a: &Tensor<Self>, b: &Tensor<Self>) -> Result<Tensor<Self>> {
        elementwise::add_gpu(self, a, b)
    }

    fn axpy(&self, y: &mut Tensor<Self>, alpha: f32, x: &Tensor<Self>) -> Result<()> {
        elementwise::axpy_gpu(self, y, alpha, x)
    }

    fn scale_inplace(&self, x: &mut Tensor<Self>, alpha: f32) -> Result<()> {
        elementwise::scale_inplace_gpu(self, x, alpha)
    }

    fn gelu_fwd(&self, x: &Tensor<Self>) -> Result<Tensor<Self>> {
        gelu::forward_gpu(self, x)
    }

    fn gelu_bwd(&self, x: &Tensor<Self>, dy: &Tensor<Self>) -> Result<Tensor<Self>> {
        gelu::backward_gpu(self, x, dy)
    }

    fn swiglu_fwd(&self, gate: &Tensor<Self>, up: &Tensor<Self>) -> Result<Tensor<Self>> {
        swiglu::forward_gpu(self, gate, up)
    }

    fn swiglu_bwd(
        &self,
        gate: &Tensor<Self>,
        up: &Tensor<Self>,
        dy: &Tensor<Self>,
    ) -> Result<SwiGluGrads<Self>> {
        swiglu::backward_gpu(self, gate, up, dy)
    }

    fn gemm(
        &self,
        _a: &Tensor<Self>,
        _b: &Tensor<Self>,
        _bias: Option<&Tensor<Self>>,
        _spec: GemmSpec,
    ) -> Result<Tensor<Self>> {
        no_kernel("gemm")
    }

    fn gemm_bwd(
        &self,
        _a: &Tensor<Self>,
        _b: &Tensor<Self>,
        _dc: &Tensor<Self>,
        _with_bias: bool,
        _spec: GemmSpec,
    ) -> Result<GemmGrads<Self>> {
        no_kernel("gemm_bwd")
    }

    fn embedding_fwd(&self, ids: &Tensor<Self>, table: &Tensor<Self>) -> Result<Tensor<Self>> {
        embedding::forward_gpu(self, ids, table)
    }

    fn embedding_bwd(
        &self,
        ids: &Tensor<Self>,
        dy: &Tensor<Self>,
        vocab: usize,
    ) -> Result<Tensor<Self>> {
        embedding::backward_gpu(self, ids, dy, vocab)
    }

    fn layernorm_fwd(
        &self,
        x: &Tensor<Self>,
        weight: &Tensor<Self>,
        bias: &Tensor<Self>,
        eps: f32,
    ) -> Result<LayerNormOut<Self>> {
        layernorm::forward_gpu(self, x, weight, bias, eps)
    }

    fn layernorm_bwd(
        &self,
        dy: &Tensor<Self>,
        x: &Tensor<Self>,
        weight: &Tensor<Self>,
        mean: &Tensor<Self>,
        rstd: &Tensor<Self>,
    ) -> Result<LayerNormGrads<Self>> {
        layernorm::backward_gpu(self, dy, x, weight, mean, rstd)
    }

    fn rmsnorm_fwd(
        &self,
        x: &Tensor<Self>,
        weight: &Tensor<Self>,
        eps: f32,
    ) -> Result<RmsNormOut<Self>> {
        rmsnorm::forward_gpu(self, x, weight, eps)
    }

    fn rmsnorm_bwd(
        &self,
        dy: &Tensor<Self>,
        x: &Tensor<Self>,
        weight: &Tensor<Self>,
        rstd: &Tensor<Self>,
    ) -> Result<RmsNormGrads<Self>> {
        rmsnorm::backward_gpu(self, dy, x, weight, rstd)
    }

    fn rope_fwd(
        &self,
        x: &Tensor<Self>,
        pos: &Tensor<Self>,
        theta: f32,
    ) -> Result<Tensor<Self>> {
        rope::forward_gpu(self, x, pos, theta)
    }

    fn rope_bwd(
        &self,
        dy: &Tensor<Self>,
        pos: &Tensor<Self>,
        theta: f32,
    ) -> Result<Tensor<Self>> {
        rope::backward_gpu(self, dy, pos, theta)
    }

    fn attention_fwd(
        &self,
        q: &Tensor<Self>,
        k: &Tensor<Self>,
        v: &Tensor<Self>,
        key_valid: &Tensor<Self>,
        softmax_scale: f32,
    ) -> Result<AttentionOut<Self>> {
        attention::forward_gpu(self, q, k, v, key_valid, softmax_scale)
    }

    fn attention_decode(
        &self,
        q: &Tensor<Self>,
        k_cache: &Tensor<Self>,
        v_cache: &Tensor<Self>,
        key_valid: &Tensor<Self>,
        kv_len: usize,
        softmax_scale: f32,
    ) -> Result<AttentionOut<Self>> {
        attention::decode_gpu(self, q, k_cache, v_cache, key_valid, kv_len, softmax_scale)
    }

    fn kv_cache_write(
        &self,
        cache: &mut Tensor<Self>,
        new: &Tensor<Self>,
        start: usize,
    ) -> Result<()> {
        kv_cache::write_gpu(self, cache, new, start)
    }

    fn attention_bwd(
        &self,
        q: &Tensor<Self>,
        k: &Tensor<Self>,
        v: &Tensor<Self>,
        key_valid: &Tensor<Self>,
        out: &Tensor<Self>,
        lse: &Tensor<Self>,
        dout: &Tensor<Self>,
        softmax_scale: f32,
    ) -> Result<AttentionGrads<Self>> {
        attention::backward_gpu(self, q, k, v, key_valid, out, lse, dout, softmax_scale)
    }

    fn cross_entropy_fwd(
        &self,
        logits: &Tensor<Self>,
        targets: &Tensor<Self>,
        ignore_index: u32,
    ) -> Result<CrossEntropyOut<Self>> {
        cross_entropy::forward_gpu(self, logits, targets, ignore_index)
    }

    fn cross_entropy_bwd(
        &self,
        logits: &Tensor<Self>,
        targets: &Tensor<Self>,
        lse: &Tensor<Self>,
        dloss: &Tensor<Self>,
        ignore_index: u32,
    ) -> Result<Tensor<Self>> {
        cross_entropy::backward_gpu(self, logits, targets, lse, dloss, ignore_index)
    }

    fn logprob_fwd(
        &self,
        _logits: &Tensor<Self>,
        _targets: &Tensor<Self>,
        _inv_temperature: f32,
    ) -> Result<LogProbOut<Self>> {
        no_kernel("logprob_fwd")
    }

    fn logprob_bwd(
        &self,
        _logits: &Tensor<Self>,
        _targets: &Tensor<Self>,
        _lse: &Tensor<Self>,
        _entropy: &Tensor<Self>,
        _dlogprob: &Tensor<Self>,
        _dentropy: Option<&Tensor<Self>>,
        _inv_temperature: f32,
    ) -> Result<Tensor<Self>> {
        no_kernel("logprob_bwd")
    }

    fn kl_fwd(
        &self,
        _logprob: &Tensor<Self>,
        _ref_logprob: &Tensor<Self>,
        _estimator: KlEstimator,
    ) -> Result<Tensor<Self>> {
        no_kernel("kl_fwd")
    }

    fn kl_bwd(
        &self,
        _logprob: &Tensor<Self>,
        _ref_logprob: &Tensor<Self>,
        _estimator: KlEstimator,
        _dkl: &Tensor<Self>,
    ) -> Result<Tensor<Self>> {
        no_kernel("kl_bwd")
    }

    fn ppo_loss(
        &self,
        _logprob: &Tensor<Self>,
        _old_logprob: &Tensor<Self>,
        _advantages: &Tensor<Self>,
        _mask: &Tensor<Self>,
        _config: &PpoLossConfig,
    ) -> Result<PpoLossOut<Self>> {
        no_kernel("ppo_loss")
    }

    fn value_loss(
        &self,
        _values: &Tensor<Self>,
        _old_values: &Tensor<Self>,
        _returns: &Tensor<Self>,
        _mask: &Tensor<Self>,
        _config: &ValueLossConfig,
    ) -> Result<ValueLossOut<Self>> {
        no_kernel("value_loss")
    }

    fn grpo_loss(
        &self,
        _logprob: &Tensor<Self>,
        _old_logprob: &Tensor<Self>,
        _ref_logprob: Option<&Tensor<Self>>,
        _advantages: &Tensor<Self>,
        _mask: &Tensor<Self>,
        _config: &GrpoLossConfig,
    ) -> Result<GrpoLossOut<Self>> {
        no_kernel("grpo_loss")
    }

    fn gae(
        &self,
        _rewards: &Tensor<Self>,
        _values: &Tensor<Self>,
        _mask: &Tensor<Self>,
        _gamma: f32,
        _lambda: f32,
    ) -> Result<GaeOut<Self>> {
        no_kernel("gae")
    }

    fn masked_whiten(
        &self,
        _x: &Tensor<Self>,
        _mask: &Tensor<Self>,
        _keep_mean: bool,
        _eps: f32,
    ) -> Result<WhitenOut<Self>> {
        no_kernel("masked_whiten")
    }

    fn bt_loss_fwd(&self, _pairs: BtPairs<'_, Self>, _label_smoothing: f32) -> Result<Tensor<Self>> {
        no_kernel("bt_loss_fwd")
    }

    fn bt_loss_bwd(
        &self,
        _pairs: BtPairs<'_, Self>,
        _label_smoothing: f32,
        _dloss: &Tensor<Self>,
    ) -> Result<BtLossGrads<Self>> {
        no_kernel("bt_loss_bwd")
    }

    fn binary_reward_loss_fwd(&self, _reward: &Tensor<Self>, _label: &Tensor<Self>) -> Result<Tensor<Self>> {
        no_kernel("binary_reward_loss_fwd")
    }

    fn binary_reward_loss_bwd(
        &self,
        _reward: &Tensor<Self>,
        _label: &Tensor<Self>,
        _dloss: &Tensor<Self>,
    ) -> Result<Tensor<Self>> {
        no_kernel("binary_reward_loss_bwd")
    }

    fn adamw_step(
        &self,
        _param: &mut Tensor<Self>,
        _grad: &Tensor<Self>,
        _m: &mut Tensor<Self>,
        _v: &mut Tensor<Self>,
        _hyper: &AdamW,
        _step: u32,
    ) -> Result<()> {
        no_kernel("adamw_step")
    }

    fn sum_squares(&self, _x: &Tensor<Self>) -> Result<f64> {
        no_kernel("sum_squares")
    }
}
