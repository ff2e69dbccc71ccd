//! The one list of `Backend` methods for the backends that run the CUDA kernels (Emu and Cuda).
//!
//! Both backends dispatch every op to the same generic launcher `ops::<op>::*_gpu`, so the list
//! is written once, as a macro expanded per backend, rather than kept twice in step. What differs
//! between them is behind [`GpuBackend`]: the device (memory, module loading, launch) and GEMM
//! (the project's kernel on Emu; cuBLAS or the kernel on Cuda). Every op runs a kernel: nothing
//! falls back to the Cpu, so a test that passes on a GPU backend really ran one.
//!
//! The `impl` inside the macro is written at the left margin, as it would be outside one.

use crate::gpu::{transfer, GpuBackend, GpuBuffer};
use crate::ops::adamw::{self, AdamW};
use crate::ops::attention::{self, AttentionGrads, AttentionOut};
use crate::ops::cross_entropy::{self, CrossEntropyOut};
use crate::ops::bt_loss::{self, BtLossGrads, BtPairs};
use crate::ops::gae::{self, GaeOut};
use crate::ops::gemm::{GemmGrads, GemmSpec};
use crate::ops::grpo_loss::{self, GrpoLossConfig, GrpoLossOut};
use crate::ops::kl::{self, KlEstimator};
use crate::ops::layernorm::{self, LayerNormGrads, LayerNormOut};
use crate::ops::linear_logprob::{self, Folded, SoftmaxChunkState, VocabChunk};
use crate::ops::logprob::{self, LogProbKlOut, LogProbOut};
use crate::ops::masked_whiten::{self, WhitenOut};
use crate::ops::ppo_loss::{self, PpoLossConfig, PpoLossOut};
use crate::ops::rmsnorm::{self, RmsNormGrads, RmsNormOut};
use crate::ops::sample::{self, SampleDraw, SampleRule};
use crate::ops::swiglu::{self, SwiGluGrads};
use crate::ops::value_loss::{self, ValueLossConfig, ValueLossOut};
use crate::ops::{elementwise, embedding, gelu, grad_norm, kv_cache, rope};
use crate::{Backend, DType, Result, Tensor};

/// `impl Backend for $backend` (buffers on `$device`), whose errors name the backend `$name`.
macro_rules! gpu_backend {
    ($backend:ty, $device:ty, $name:literal) => {
impl Backend for $backend {
    type Buffer = GpuBuffer<$device>;

    fn name(&self) -> &'static str {
        $name
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
        a: &Tensor<Self>,
        b: &Tensor<Self>,
        bias: Option<&Tensor<Self>>,
        spec: GemmSpec,
    ) -> Result<Tensor<Self>> {
        GpuBackend::gemm_fwd(self, a, b, bias, spec)
    }

    fn gemm_bwd(
        &self,
        a: &Tensor<Self>,
        b: &Tensor<Self>,
        dc: &Tensor<Self>,
        with_bias: bool,
        spec: GemmSpec,
    ) -> Result<GemmGrads<Self>> {
        GpuBackend::gemm_bwd(self, a, b, dc, with_bias, spec)
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
        logits: &Tensor<Self>,
        targets: &Tensor<Self>,
        inv_temperature: f32,
    ) -> Result<LogProbOut<Self>> {
        logprob::forward_gpu(self, logits, targets, inv_temperature)
    }

    fn logprob_kl_fwd(
        &self,
        logits: &Tensor<Self>,
        ref_logits: &Tensor<Self>,
        targets: &Tensor<Self>,
        inv_temperature: f32,
        estimator: KlEstimator,
    ) -> Result<LogProbKlOut<Self>> {
        logprob::forward_kl_gpu(self, logits, ref_logits, targets, inv_temperature, estimator)
    }

    fn logprob_bwd(
        &self,
        logits: &Tensor<Self>,
        targets: &Tensor<Self>,
        lse: &Tensor<Self>,
        entropy: &Tensor<Self>,
        dlogprob: &Tensor<Self>,
        dentropy: Option<&Tensor<Self>>,
        inv_temperature: f32,
    ) -> Result<Tensor<Self>> {
        logprob::backward_gpu(self, logits, targets, lse, entropy, dlogprob, dentropy, inv_temperature)
    }

    fn linear_logprob_fold(
        &self,
        chunk: &Tensor<Self>,
        targets: &Tensor<Self>,
        state: Option<&SoftmaxChunkState<Self>>,
        span: VocabChunk,
        inv_temperature: f32,
    ) -> Result<Folded<Self>> {
        linear_logprob::fold_gpu(self, chunk, targets, state, span, inv_temperature)
    }

    fn linear_logprob_chunk_bwd(
        &self,
        chunk: &Tensor<Self>,
        targets: &Tensor<Self>,
        lse: &Tensor<Self>,
        entropy: &Tensor<Self>,
        dlogprob: &Tensor<Self>,
        dentropy: Option<&Tensor<Self>>,
        span: VocabChunk,
        inv_temperature: f32,
    ) -> Result<Tensor<Self>> {
        linear_logprob::chunk_bwd_gpu(self, chunk, targets, lse, entropy, dlogprob, dentropy, span, inv_temperature)
    }

    fn kl_fwd(
        &self,
        logprob: &Tensor<Self>,
        ref_logprob: &Tensor<Self>,
        estimator: KlEstimator,
    ) -> Result<Tensor<Self>> {
        kl::forward_gpu(self, logprob, ref_logprob, estimator)
    }

    fn kl_bwd(
        &self,
        logprob: &Tensor<Self>,
        ref_logprob: &Tensor<Self>,
        estimator: KlEstimator,
        dkl: &Tensor<Self>,
    ) -> Result<Tensor<Self>> {
        kl::backward_gpu(self, logprob, ref_logprob, estimator, dkl)
    }

    fn ppo_loss(
        &self,
        logprob: &Tensor<Self>,
        old_logprob: &Tensor<Self>,
        advantages: &Tensor<Self>,
        mask: &Tensor<Self>,
        config: &PpoLossConfig,
    ) -> Result<PpoLossOut<Self>> {
        ppo_loss::ppo_loss_gpu(self, logprob, old_logprob, advantages, mask, config)
    }

    fn value_loss(
        &self,
        values: &Tensor<Self>,
        old_values: &Tensor<Self>,
        returns: &Tensor<Self>,
        mask: &Tensor<Self>,
        config: &ValueLossConfig,
    ) -> Result<ValueLossOut<Self>> {
        value_loss::value_loss_gpu(self, values, old_values, returns, mask, config)
    }

    fn grpo_loss(
        &self,
        logprob: &Tensor<Self>,
        old_logprob: &Tensor<Self>,
        ref_logprob: Option<&Tensor<Self>>,
        advantages: &Tensor<Self>,
        mask: &Tensor<Self>,
        config: &GrpoLossConfig,
    ) -> Result<GrpoLossOut<Self>> {
        grpo_loss::grpo_loss_gpu(self, logprob, old_logprob, ref_logprob, advantages, mask, config)
    }

    fn gae(
        &self,
        rewards: &Tensor<Self>,
        values: &Tensor<Self>,
        mask: &Tensor<Self>,
        gamma: f32,
        lambda: f32,
    ) -> Result<GaeOut<Self>> {
        gae::gae_gpu(self, rewards, values, mask, gamma, lambda)
    }

    fn masked_whiten(
        &self,
        x: &Tensor<Self>,
        mask: &Tensor<Self>,
        keep_mean: bool,
        eps: f32,
    ) -> Result<WhitenOut<Self>> {
        masked_whiten::masked_whiten_gpu(self, x, mask, keep_mean, eps)
    }

    fn bt_loss_fwd(&self, pairs: BtPairs<'_, Self>, label_smoothing: f32) -> Result<Tensor<Self>> {
        bt_loss::bt_forward_gpu(self, pairs, label_smoothing)
    }

    fn bt_loss_bwd(
        &self,
        pairs: BtPairs<'_, Self>,
        label_smoothing: f32,
        dloss: &Tensor<Self>,
    ) -> Result<BtLossGrads<Self>> {
        bt_loss::bt_backward_gpu(self, pairs, label_smoothing, dloss)
    }

    fn binary_reward_loss_fwd(&self, reward: &Tensor<Self>, label: &Tensor<Self>) -> Result<Tensor<Self>> {
        bt_loss::binary_forward_gpu(self, reward, label)
    }

    fn binary_reward_loss_bwd(
        &self,
        reward: &Tensor<Self>,
        label: &Tensor<Self>,
        dloss: &Tensor<Self>,
    ) -> Result<Tensor<Self>> {
        bt_loss::binary_backward_gpu(self, reward, label, dloss)
    }

    fn adamw_step(
        &self,
        param: &mut Tensor<Self>,
        grad: &Tensor<Self>,
        m: &mut Tensor<Self>,
        v: &mut Tensor<Self>,
        hyper: &AdamW,
        step: u32,
    ) -> Result<()> {
        adamw::step_gpu(self, param, grad, m, v, None, hyper, step)
    }

    fn adamw_step_copy(
        &self,
        param: &mut Tensor<Self>,
        grad: &Tensor<Self>,
        m: &mut Tensor<Self>,
        v: &mut Tensor<Self>,
        copy: &mut Tensor<Self>,
        hyper: &AdamW,
        step: u32,
    ) -> Result<()> {
        adamw::step_gpu(self, param, grad, m, v, Some(copy), hyper, step)
    }

    fn sample(&self, logits: &Tensor<Self>, rule: SampleRule, draw: SampleDraw) -> Result<Tensor<Self>> {
        sample::sample_gpu(self, logits, rule, draw)
    }

    fn sum_squares(&self, x: &Tensor<Self>) -> Result<f64> {
        grad_norm::sum_squares_gpu(self, x)
    }
}
    };
}

gpu_backend!(crate::Emu, crate::EmuDevice, "emu");
gpu_backend!(crate::Cuda, crate::CudaDevice, "cuda");
