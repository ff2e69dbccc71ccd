use crate::ops::adamw::AdamW;
use crate::ops::attention::{AttentionGrads, AttentionOut};
use crate::ops::bt_loss::{BtLossGrads, BtPairs};
use crate::ops::cross_entropy::CrossEntropyOut;
use crate::ops::gae::GaeOut;
use crate::ops::gemm::{GemmGrads, GemmSpec};
use crate::ops::grpo_loss::{GrpoLossConfig, GrpoLossOut};
use crate::ops::kl::KlEstimator;
use crate::ops::layernorm::{LayerNormGrads, LayerNormOut};
use crate::ops::linear_logprob::{Folded, SoftmaxChunkState, VocabChunk};
use crate::ops::logprob::{LogProbKlOut, LogProbOut};
use crate::ops::masked_whiten::WhitenOut;
use crate::ops::ppo_loss::{PpoLossConfig, PpoLossOut};
use crate::ops::rmsnorm::{RmsNormGrads, RmsNormOut};
use crate::ops::sample::{SampleDraw, SampleRule};
use crate::ops::swiglu::SwiGluGrads;
use crate::ops::value_loss::{ValueLossConfig, ValueLossOut};
use crate::{DType, Result, Tensor};

/// Everything a decoder-only transformer and the RL losses need, on one device.
///
/// Each backend owns its buffers; ops take tensors of their backend and return new ones (or update
/// optimizer state in place). Every op validates shapes and dtypes with the shared checks in its
/// [`crate::ops`] module before touching data, and returns an error naming the op and the shapes.
///
/// Float arguments of one op share one dtype (f32 or bf16) and results come back in it, except
/// saved statistics (mean, rstd, log-sum-exp) and per-row losses, which are always f32. Ids,
/// positions and masks are u32. Shape letters: B batch, T time (Tq queries, Tk keys), C channels,
/// NH query heads, NKV key/value heads, HS head size, V vocabulary, N = rows (usually B·T).
///
/// Gradients are returned fresh (`=`); accumulate them with [`Backend::axpy`].
pub trait Backend: Send + Sync + Sized {
    type Buffer: Send + Sync;

    fn name(&self) -> &'static str;

    // ---- memory and host transfers ----

    /// Copies host f32 data in, converting to `dtype` (f32 or bf16; bf16 rounds to nearest even).
    fn upload_f32(&self, dims: &[usize], data: &[f32], dtype: DType) -> Result<Tensor<Self>>;
    fn upload_u32(&self, dims: &[usize], data: &[u32]) -> Result<Tensor<Self>>;
    /// Copies a float tensor out as f32.
    fn download_f32(&self, t: &Tensor<Self>) -> Result<Vec<f32>>;
    fn download_u32(&self, t: &Tensor<Self>) -> Result<Vec<u32>>;
    fn zeros(&self, dims: &[usize], dtype: DType) -> Result<Tensor<Self>>;
    /// Converts between f32 and bf16 (a copy when the dtype is already `dtype`).
    fn cast(&self, t: &Tensor<Self>, dtype: DType) -> Result<Tensor<Self>>;

    // ---- elementwise (crate::ops::elementwise) ----

    /// `a + b`, same shapes (the residual connection).
    fn add(&self, a: &Tensor<Self>, b: &Tensor<Self>) -> Result<Tensor<Self>>;
    /// `y += alpha * x` in place (gradient accumulation).
    fn axpy(&self, y: &mut Tensor<Self>, alpha: f32, x: &Tensor<Self>) -> Result<()>;
    /// `x *= alpha` in place (gradient clipping, loss scaling).
    fn scale_inplace(&self, x: &mut Tensor<Self>, alpha: f32) -> Result<()>;

    // ---- GELU, tanh form as GPT-2's gelu_new (crate::ops::gelu) ----

    fn gelu_fwd(&self, x: &Tensor<Self>) -> Result<Tensor<Self>>;
    fn gelu_bwd(&self, x: &Tensor<Self>, dy: &Tensor<Self>) -> Result<Tensor<Self>>;

    // ---- SwiGLU: silu(gate) * up (crate::ops::swiglu) ----

    fn swiglu_fwd(&self, gate: &Tensor<Self>, up: &Tensor<Self>) -> Result<Tensor<Self>>;
    fn swiglu_bwd(
        &self,
        gate: &Tensor<Self>,
        up: &Tensor<Self>,
        dy: &Tensor<Self>,
    ) -> Result<SwiGluGrads<Self>>;

    // ---- GEMM with transposes, batch and bias (crate::ops::gemm) ----

    /// `op(a) · op(b) + bias`, `a` `[.., M, K]`, `b` `[K, N]` or `[.., K, N]` (transposed when the
    /// spec says so), bias `[N]`, result `[.., M, N]`.
    fn gemm(
        &self,
        a: &Tensor<Self>,
        b: &Tensor<Self>,
        bias: Option<&Tensor<Self>>,
        spec: GemmSpec,
    ) -> Result<Tensor<Self>>;
    fn gemm_bwd(
        &self,
        a: &Tensor<Self>,
        b: &Tensor<Self>,
        dc: &Tensor<Self>,
        with_bias: bool,
        spec: GemmSpec,
    ) -> Result<GemmGrads<Self>>;

    // ---- embedding: row gather and scatter-add (crate::ops::embedding) ----

    /// `table[ids]`: ids `[..]` u32, table `[V, C]`, result `[.., C]`. Also the learned position
    /// embedding (ids = positions) and reading hidden states at chosen rows.
    fn embedding_fwd(&self, ids: &Tensor<Self>, table: &Tensor<Self>) -> Result<Tensor<Self>>;
    /// `dtable[ids[i]] += dy[i]`, result `[V, C]` with `V = vocab`.
    fn embedding_bwd(
        &self,
        ids: &Tensor<Self>,
        dy: &Tensor<Self>,
        vocab: usize,
    ) -> Result<Tensor<Self>>;

    // ---- LayerNorm over the last dim (crate::ops::layernorm) ----

    fn layernorm_fwd(
        &self,
        x: &Tensor<Self>,
        weight: &Tensor<Self>,
        bias: &Tensor<Self>,
        eps: f32,
    ) -> Result<LayerNormOut<Self>>;
    fn layernorm_bwd(
        &self,
        dy: &Tensor<Self>,
        x: &Tensor<Self>,
        weight: &Tensor<Self>,
        mean: &Tensor<Self>,
        rstd: &Tensor<Self>,
    ) -> Result<LayerNormGrads<Self>>;

    // ---- RMSNorm over the last dim (crate::ops::rmsnorm) ----

    fn rmsnorm_fwd(&self, x: &Tensor<Self>, weight: &Tensor<Self>, eps: f32)
        -> Result<RmsNormOut<Self>>;
    fn rmsnorm_bwd(
        &self,
        dy: &Tensor<Self>,
        x: &Tensor<Self>,
        weight: &Tensor<Self>,
        rstd: &Tensor<Self>,
    ) -> Result<RmsNormGrads<Self>>;

    // ---- rotary position embedding, rotate-half layout (crate::ops::rope) ----

    /// x `[B, T, NH, HS]` rotated by angle `pos · theta^(-2i/HS)`, positions `[B, T]` u32.
    fn rope_fwd(&self, x: &Tensor<Self>, positions: &Tensor<Self>, theta: f32)
        -> Result<Tensor<Self>>;
    fn rope_bwd(&self, dy: &Tensor<Self>, positions: &Tensor<Self>, theta: f32)
        -> Result<Tensor<Self>>;

    // ---- causal grouped-query attention with key padding (crate::ops::attention) ----

    /// q `[B, Tq, NH, HS]`, k and v `[B, Tk, NKV, HS]` with `NH % NKV == 0`, `Tq <= Tk`;
    /// key_valid `[B, Tk]` u32 (1 = real token, 0 = padding). Query `i` sits at position
    /// `Tk - Tq + i` and sees keys at positions `<=` its own that are valid. Result
    /// `[B, Tq, NH, HS]` and the log-sum-exp `[B, NH, Tq]` (f32); a query that sees no key gets
    /// zeros and a log-sum-exp of -inf.
    fn attention_fwd(
        &self,
        q: &Tensor<Self>,
        k: &Tensor<Self>,
        v: &Tensor<Self>,
        key_valid: &Tensor<Self>,
        softmax_scale: f32,
    ) -> Result<AttentionOut<Self>>;
    /// Attention of `Tq` new queries against a KV cache: `k_cache` and `v_cache`
    /// `[B, Tmax, NKV, HS]` hold keys at positions `0..kv_len` (`Tq <= kv_len <= Tmax`), and
    /// `key_valid` `[B, Tmax]` marks the real ones (entries past `kv_len` are not read). Query `i`
    /// sits at position `kv_len - Tq + i`; otherwise as [`Backend::attention_fwd`].
    fn attention_decode(
        &self,
        q: &Tensor<Self>,
        k_cache: &Tensor<Self>,
        v_cache: &Tensor<Self>,
        key_valid: &Tensor<Self>,
        kv_len: usize,
        softmax_scale: f32,
    ) -> Result<AttentionOut<Self>>;
    /// Writes `new` `[B, Tn, NKV, HS]` into rows `start..start + Tn` of `cache`
    /// `[B, Tmax, NKV, HS]` (crate::ops::kv_cache).
    fn kv_cache_write(&self, cache: &mut Tensor<Self>, new: &Tensor<Self>, start: usize) -> Result<()>;
    #[allow(clippy::too_many_arguments)]
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
    ) -> Result<AttentionGrads<Self>>;

    // ---- softmax cross-entropy with an ignore index (crate::ops::cross_entropy) ----

    /// logits `[N, V]`, targets `[N]` u32; rows whose target is `ignore_index` get loss 0.
    fn cross_entropy_fwd(
        &self,
        logits: &Tensor<Self>,
        targets: &Tensor<Self>,
        ignore_index: u32,
    ) -> Result<CrossEntropyOut<Self>>;
    /// d(logits) for upstream `dloss` `[N]`; ignored rows get zeros.
    fn cross_entropy_bwd(
        &self,
        logits: &Tensor<Self>,
        targets: &Tensor<Self>,
        lse: &Tensor<Self>,
        dloss: &Tensor<Self>,
        ignore_index: u32,
    ) -> Result<Tensor<Self>>;

    // ---- fused token log-prob and entropy (crate::ops::logprob) ----

    /// For logits `[N, V]` scaled by `inv_temperature`: `log_softmax[target]`, the entropy and the
    /// log-sum-exp per row, all `[N]` f32, with no `[N, V]` intermediate.
    fn logprob_fwd(
        &self,
        logits: &Tensor<Self>,
        targets: &Tensor<Self>,
        inv_temperature: f32,
    ) -> Result<LogProbOut<Self>>;
    /// The policy's [`Backend::logprob_fwd`] on `logits`, the reference's log-prob of the same
    /// targets on `ref_logits` (same shape and dtype) and the per-token KL estimate `[N]` f32 from
    /// the two (`ops::logprob::LogProbKlOut`). GPU backends read both rows in one launch; by
    /// default it is the three ops.
    fn logprob_kl_fwd(
        &self,
        logits: &Tensor<Self>,
        ref_logits: &Tensor<Self>,
        targets: &Tensor<Self>,
        inv_temperature: f32,
        estimator: KlEstimator,
    ) -> Result<LogProbKlOut<Self>> {
        crate::ops::logprob::check_forward_kl(logits, ref_logits, targets, inv_temperature)?;
        let policy = self.logprob_fwd(logits, targets, inv_temperature)?;
        let reference = self.logprob_fwd(ref_logits, targets, inv_temperature)?;
        let kl = self.kl_fwd(&policy.logprob, &reference.logprob, estimator)?;
        Ok(LogProbKlOut { policy, ref_logprob: reference.logprob, kl })
    }
    /// d(logits) from upstream gradients of the log-prob and (optionally) the entropy.
    #[allow(clippy::too_many_arguments)]
    fn logprob_bwd(
        &self,
        logits: &Tensor<Self>,
        targets: &Tensor<Self>,
        lse: &Tensor<Self>,
        entropy: &Tensor<Self>,
        dlogprob: &Tensor<Self>,
        dentropy: Option<&Tensor<Self>>,
        inv_temperature: f32,
    ) -> Result<Tensor<Self>>;

    // ---- the LM head and log-prob by vocabulary chunks (crate::ops::linear_logprob) ----

    /// Folds the logits `chunk` `[N, Vc]`, columns `span.offset..span.offset + Vc` of logits
    /// `[N, span.vocab]`, into `state`, the rows' softmax state over the columns before them
    /// (`None` for the first chunk), scaled by `inv_temperature`; targets `[N]` u32 `< vocab`.
    /// The chunk that reaches `vocab` gives [`Backend::logprob_fwd`]'s results on the whole row.
    fn linear_logprob_fold(
        &self,
        chunk: &Tensor<Self>,
        targets: &Tensor<Self>,
        state: Option<&SoftmaxChunkState<Self>>,
        span: VocabChunk,
        inv_temperature: f32,
    ) -> Result<Folded<Self>>;
    /// Columns `span.offset..span.offset + Vc` of [`Backend::logprob_bwd`]'s d(logits), from the
    /// chunk's logits `[N, Vc]` and the whole rows' saved `lse` and `entropy`.
    #[allow(clippy::too_many_arguments)]
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
    ) -> Result<Tensor<Self>>;

    // ---- next-token choice for generation (crate::ops::sample) ----

    /// For logits `[B, V]`, each row's token `[B]` u32 by `rule` (greedy, or temperature, top-k,
    /// top-p), row `r` drawing with the counter `(draw.seed, draw.first_sequence + r, draw.step)`.
    /// A row's id depends only on its logits and its counter, identically on every backend.
    fn sample(&self, logits: &Tensor<Self>, rule: SampleRule, draw: SampleDraw) -> Result<Tensor<Self>>;

    // ---- KL estimators between policy and reference log-probs (crate::ops::kl) ----

    fn kl_fwd(
        &self,
        logprob: &Tensor<Self>,
        ref_logprob: &Tensor<Self>,
        estimator: KlEstimator,
    ) -> Result<Tensor<Self>>;
    /// d(logprob) of the estimator for upstream `dkl` (the reference gets no gradient).
    fn kl_bwd(
        &self,
        logprob: &Tensor<Self>,
        ref_logprob: &Tensor<Self>,
        estimator: KlEstimator,
        dkl: &Tensor<Self>,
    ) -> Result<Tensor<Self>>;

    // ---- RL losses and advantages (crate::ops::{ppo_loss, value_loss, grpo_loss, gae,
    // masked_whiten}) ----
    //
    // The losses reduce to a scalar, so each returns the loss, its gradient with respect to the
    // trained input (`=`) and statistics together. Inputs `[B, T]` of one float dtype; `mask`
    // `[B, T]` u32, 1 for the tokens that count.

    /// PPO's clipped surrogate (optional dual clip) and `d(logprob)`.
    fn ppo_loss(
        &self,
        logprob: &Tensor<Self>,
        old_logprob: &Tensor<Self>,
        advantages: &Tensor<Self>,
        mask: &Tensor<Self>,
        config: &PpoLossConfig,
    ) -> Result<PpoLossOut<Self>>;
    /// The clipped value loss `max((v − R)², (clip(v, v_old ± ε) − R)²) / 2` and `d(values)`.
    fn value_loss(
        &self,
        values: &Tensor<Self>,
        old_values: &Tensor<Self>,
        returns: &Tensor<Self>,
        mask: &Tensor<Self>,
        config: &ValueLossConfig,
    ) -> Result<ValueLossOut<Self>>;
    /// GRPO's clipped surrogate plus `β·k3` KL to the reference (needed when `β > 0`), and
    /// `d(logprob)`.
    fn grpo_loss(
        &self,
        logprob: &Tensor<Self>,
        old_logprob: &Tensor<Self>,
        ref_logprob: Option<&Tensor<Self>>,
        advantages: &Tensor<Self>,
        mask: &Tensor<Self>,
        config: &GrpoLossConfig,
    ) -> Result<GrpoLossOut<Self>>;
    /// Advantages and λ-returns `[B, T]` by a reverse scan over each row's masked tokens.
    fn gae(
        &self,
        rewards: &Tensor<Self>,
        values: &Tensor<Self>,
        mask: &Tensor<Self>,
        gamma: f32,
        lambda: f32,
    ) -> Result<GaeOut<Self>>;
    /// `(x − μ)/√(σ² + eps)` (`+ μ` when `keep_mean`) over the masked elements of `x` (any shape);
    /// 0 elsewhere.
    fn masked_whiten(&self, x: &Tensor<Self>, mask: &Tensor<Self>, keep_mean: bool, eps: f32)
        -> Result<WhitenOut<Self>>;

    // ---- reward-model losses: Bradley–Terry and binary outcome (crate::ops::bt_loss) ----

    /// Per-pair Bradley–Terry loss `t·softplus(−Δ) + (1 − t)·softplus(Δ)` with
    /// `Δ = r_c − r_r − margin` and `t = (1 − ε)·label + ε/2`; every input `[P]`, result `[P]` f32.
    fn bt_loss_fwd(&self, pairs: BtPairs<'_, Self>, label_smoothing: f32) -> Result<Tensor<Self>>;
    /// d(reward_chosen) `= dloss·(σ(Δ) − t)` and d(reward_rejected) `= −`that, for `dloss` `[P]` f32.
    fn bt_loss_bwd(
        &self,
        pairs: BtPairs<'_, Self>,
        label_smoothing: f32,
        dloss: &Tensor<Self>,
    ) -> Result<BtLossGrads<Self>>;
    /// Binary cross-entropy of `reward` `[P]` read as a logit against `label` `[P]` in `[0, 1]`;
    /// result `[P]` f32.
    fn binary_reward_loss_fwd(&self, reward: &Tensor<Self>, label: &Tensor<Self>) -> Result<Tensor<Self>>;
    /// d(reward) `= dloss·(σ(reward) − label)`.
    fn binary_reward_loss_bwd(
        &self,
        reward: &Tensor<Self>,
        label: &Tensor<Self>,
        dloss: &Tensor<Self>,
    ) -> Result<Tensor<Self>>;

    // ---- optimizer (crate::ops::adamw, crate::ops::grad_norm) ----

    /// One AdamW step in place on f32 `param`, `m`, `v`; `step` counts from 1.
    fn adamw_step(
        &self,
        param: &mut Tensor<Self>,
        grad: &Tensor<Self>,
        m: &mut Tensor<Self>,
        v: &mut Tensor<Self>,
        hyper: &AdamW,
        step: u32,
    ) -> Result<()>;
    /// [`Backend::adamw_step`], also writing the updated `param` rounded to bf16 into `copy`
    /// (bf16, `param`'s shape): the model copy a bf16 forward reads. GPU backends do it in the
    /// same pass; by default it is the step followed by a cast.
    #[allow(clippy::too_many_arguments)]
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
        crate::ops::adamw::check_step(param, grad, m, v, hyper, step)?;
        crate::ops::adamw::check_copy(param, copy)?;
        self.adamw_step(param, grad, m, v, hyper, step)?;
        *copy = self.cast(param, DType::BF16)?;
        Ok(())
    }
    /// `sum(x^2)` over a float tensor, accumulated in f64 on the host side of the reduction.
    fn sum_squares(&self, x: &Tensor<Self>) -> Result<f64>;
}
