//! The Cpu backend: host memory, rayon parallelism, GEMM through the `gemm` crate. It is the
//! specification the other backends are tested against and a fast backend in its own right. The
//! per-op code lives in `crate::ops::<op>`; this file holds the buffer type and the dispatch.

use std::borrow::Cow;

use half::bf16;
use rayon::prelude::*;

use crate::ops::adamw::{self, AdamW};
use crate::ops::attention::{self, AttentionGrads, AttentionOut};
use crate::ops::bt_loss::{self, BtLossGrads, BtPairs};
use crate::ops::cross_entropy::{self, CrossEntropyOut};
use crate::ops::gae::{self, GaeOut};
use crate::ops::gemm::{self, GemmGrads, GemmSpec};
use crate::ops::grpo_loss::{self, GrpoLossConfig, GrpoLossOut};
use crate::ops::kl::{self, KlEstimator};
use crate::ops::layernorm::{self, LayerNormGrads, LayerNormOut};
use crate::ops::linear_logprob::{self, Folded, SoftmaxChunkState, VocabChunk};
use crate::ops::logprob::{self, LogProbOut};
use crate::ops::masked_whiten::{self, WhitenOut};
use crate::ops::ppo_loss::{self, PpoLossConfig, PpoLossOut};
use crate::ops::rmsnorm::{self, RmsNormGrads, RmsNormOut};
use crate::ops::sample::{self, SampleDraw, SampleRule};
use crate::ops::swiglu::{self, SwiGluGrads};
use crate::ops::value_loss::{self, ValueLossConfig, ValueLossOut};
use crate::ops::{check, elementwise, embedding, gelu, grad_norm, kv_cache, rope};
use crate::{Backend, DType, Result, Shape, Tensor};

/// The Cpu backend. Work is spread over rayon's global pool (set its size with
/// `RAYON_NUM_THREADS`).
#[derive(Debug, Default, Clone, Copy)]
pub struct Cpu;

impl Cpu {
    pub fn new() -> Self {
        Cpu
    }
}

/// Host storage of a Cpu tensor.
#[derive(Debug, Clone)]
pub enum CpuBuffer {
    F32(Vec<f32>),
    BF16(Vec<bf16>),
    U32(Vec<u32>),
}

/// The elements of a float tensor as f32, borrowed when already f32.
pub(crate) fn f32_data(t: &Tensor<Cpu>) -> Cow<'_, [f32]> {
    match t.buffer() {
        CpuBuffer::F32(v) => Cow::Borrowed(v),
        CpuBuffer::BF16(v) => Cow::Owned(v.iter().map(|x| x.to_f32()).collect()),
        CpuBuffer::U32(v) => Cow::Owned(v.iter().map(|&x| x as f32).collect()),
    }
}

/// The elements of a u32 tensor; callers have checked the dtype, so any other dtype is empty.
pub(crate) fn u32_data(t: &Tensor<Cpu>) -> &[u32] {
    match t.buffer() {
        CpuBuffer::U32(v) => v,
        _ => &[],
    }
}

/// The elements of an f32 tensor, mutably; callers have checked the dtype, so any other dtype is
/// empty.
pub(crate) fn f32_data_mut(t: &mut Tensor<Cpu>) -> &mut [f32] {
    match t.buffer_mut() {
        CpuBuffer::F32(v) => v,
        _ => &mut [],
    }
}

/// The elements of a bf16 tensor; callers have checked the dtype, so any other dtype is empty.
pub(crate) fn bf16_data(t: &Tensor<Cpu>) -> &[bf16] {
    match t.buffer() {
        CpuBuffer::BF16(v) => v,
        _ => &[],
    }
}

/// The elements of a bf16 tensor, mutably; callers have checked the dtype, so any other dtype is
/// empty.
pub(crate) fn bf16_data_mut(t: &mut Tensor<Cpu>) -> &mut [bf16] {
    match t.buffer_mut() {
        CpuBuffer::BF16(v) => v,
        _ => &mut [],
    }
}

/// A float element type a Cpu buffer stores (f32 or bf16). Ops are written once, generic over
/// it, compute in f32, and read or write the stored type directly, so a bf16 tensor is never
/// converted to an f32 copy as a whole.
pub(crate) trait HostFloat: Copy + Send + Sync + 'static {
    fn to_f32(self) -> f32;
    /// Rounds to the stored type (nearest even for bf16).
    fn from_f32(x: f32) -> Self;
    fn into_buffer(data: Vec<Self>) -> (DType, CpuBuffer);
}

impl HostFloat for f32 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }

    #[inline(always)]
    fn from_f32(x: f32) -> Self {
        x
    }

    fn into_buffer(data: Vec<Self>) -> (DType, CpuBuffer) {
        (DType::F32, CpuBuffer::F32(data))
    }
}

impl HostFloat for bf16 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        bf16::to_f32(self)
    }

    #[inline(always)]
    fn from_f32(x: f32) -> Self {
        bf16::from_f32(x)
    }

    fn into_buffer(data: Vec<Self>) -> (DType, CpuBuffer) {
        (DType::BF16, CpuBuffer::BF16(data))
    }
}

/// A Cpu tensor holding `data` in its own element type; `data.len()` equals the element count.
pub(crate) fn from_host<T: HostFloat>(dims: &[usize], data: Vec<T>) -> Tensor<Cpu> {
    debug_assert_eq!(data.len(), dims.iter().product::<usize>());
    let (dtype, buffer) = T::into_buffer(data);
    Tensor::from_parts(Shape::new(dims), dtype, buffer)
}

/// A Cpu tensor of `dtype` (f32 or bf16) from f32 results; `data.len()` equals the element count.
pub(crate) fn from_f32(dims: &[usize], data: Vec<f32>, dtype: DType) -> Tensor<Cpu> {
    debug_assert_eq!(data.len(), dims.iter().product::<usize>());
    let buffer = match dtype {
        DType::BF16 => CpuBuffer::BF16(data.iter().map(|&x| bf16::from_f32(x)).collect()),
        _ => CpuBuffer::F32(data),
    };
    let dtype = if dtype == DType::BF16 { DType::BF16 } else { DType::F32 };
    Tensor::from_parts(Shape::new(dims), dtype, buffer)
}

/// Rows per task of [`par_rows_with_column_sums`]. A constant, so that how rows are grouped into
/// partial sums, and hence every rounding, is the same whatever the thread count.
const ROWS_PER_SUM_BLOCK: usize = 32;

/// Calls `row_fn(row_index, out_row, sums)` for every row of `out` viewed as `[rows, cols]`
/// (`cols > 0`), in parallel over blocks of consecutive rows, and returns the `width` column sums
/// the calls add into `sums`: for the weight gradients of a norm, summed over rows. Each block
/// accumulates its own f64 partial sums and the partials are added in block order, so the result
/// is deterministic.
pub(crate) fn par_rows_with_column_sums(
    out: &mut [f32],
    cols: usize,
    width: usize,
    row_fn: impl Fn(usize, &mut [f32], &mut [f64]) + Sync,
) -> Vec<f64> {
    debug_assert!(cols > 0 && out.len() % cols == 0);
    let partials: Vec<Vec<f64>> = out
        .par_chunks_mut(ROWS_PER_SUM_BLOCK * cols)
        .enumerate()
        .map(|(block, rows)| {
            let mut sums = vec![0f64; width];
            for (i, row) in rows.chunks_mut(cols).enumerate() {
                row_fn(block * ROWS_PER_SUM_BLOCK + i, row, &mut sums);
            }
            sums
        })
        .collect();
    let mut total = vec![0f64; width];
    for partial in partials {
        total.iter_mut().zip(partial).for_each(|(t, p)| *t += p);
    }
    total
}

impl Backend for Cpu {
    type Buffer = CpuBuffer;

    fn name(&self) -> &'static str {
        "cpu"
    }

    fn upload_f32(&self, dims: &[usize], data: &[f32], dtype: DType) -> Result<Tensor<Self>> {
        check::element_count("upload_f32", dims, data.len())?;
        check::float_dtype("upload_f32", "dtype", dtype)?;
        Ok(from_f32(dims, data.to_vec(), dtype))
    }

    fn upload_u32(&self, dims: &[usize], data: &[u32]) -> Result<Tensor<Self>> {
        check::element_count("upload_u32", dims, data.len())?;
        Ok(Tensor::from_parts(Shape::new(dims), DType::U32, CpuBuffer::U32(data.to_vec())))
    }

    fn download_f32(&self, t: &Tensor<Self>) -> Result<Vec<f32>> {
        check::float("download_f32", "t", t)?;
        Ok(f32_data(t).into_owned())
    }

    fn download_u32(&self, t: &Tensor<Self>) -> Result<Vec<u32>> {
        check::dtype("download_u32", "t", t, DType::U32)?;
        Ok(u32_data(t).to_vec())
    }

    fn zeros(&self, dims: &[usize], dtype: DType) -> Result<Tensor<Self>> {
        let n = dims.iter().product();
        let buffer = match dtype {
            DType::F32 => CpuBuffer::F32(vec![0.0; n]),
            DType::BF16 => CpuBuffer::BF16(vec![bf16::ZERO; n]),
            DType::U32 => CpuBuffer::U32(vec![0; n]),
        };
        Ok(Tensor::from_parts(Shape::new(dims), dtype, buffer))
    }

    fn cast(&self, t: &Tensor<Self>, dtype: DType) -> Result<Tensor<Self>> {
        check::float("cast", "t", t)?;
        check::float_dtype("cast", "dtype", dtype)?;
        Ok(from_f32(t.dims(), f32_data(t).into_owned(), dtype))
    }

    fn add(&self, a: &Tensor<Self>, b: &Tensor<Self>) -> Result<Tensor<Self>> {
        elementwise::add_cpu(a, b)
    }

    fn axpy(&self, y: &mut Tensor<Self>, alpha: f32, x: &Tensor<Self>) -> Result<()> {
        elementwise::axpy_cpu(y, alpha, x)
    }

    fn scale_inplace(&self, x: &mut Tensor<Self>, alpha: f32) -> Result<()> {
        elementwise::scale_inplace_cpu(x, alpha)
    }

    fn gelu_fwd(&self, x: &Tensor<Self>) -> Result<Tensor<Self>> {
        gelu::forward_cpu(x)
    }

    fn gelu_bwd(&self, x: &Tensor<Self>, dy: &Tensor<Self>) -> Result<Tensor<Self>> {
        gelu::backward_cpu(x, dy)
    }

    fn swiglu_fwd(&self, gate: &Tensor<Self>, up: &Tensor<Self>) -> Result<Tensor<Self>> {
        swiglu::forward_cpu(gate, up)
    }

    fn swiglu_bwd(
        &self,
        gate: &Tensor<Self>,
        up: &Tensor<Self>,
        dy: &Tensor<Self>,
    ) -> Result<SwiGluGrads<Self>> {
        swiglu::backward_cpu(gate, up, dy)
    }

    fn gemm(
        &self,
        a: &Tensor<Self>,
        b: &Tensor<Self>,
        bias: Option<&Tensor<Self>>,
        spec: GemmSpec,
    ) -> Result<Tensor<Self>> {
        gemm::forward_cpu(a, b, bias, spec)
    }

    fn gemm_bwd(
        &self,
        a: &Tensor<Self>,
        b: &Tensor<Self>,
        dc: &Tensor<Self>,
        with_bias: bool,
        spec: GemmSpec,
    ) -> Result<GemmGrads<Self>> {
        gemm::backward_cpu(a, b, dc, with_bias, spec)
    }

    fn embedding_fwd(&self, ids: &Tensor<Self>, table: &Tensor<Self>) -> Result<Tensor<Self>> {
        embedding::forward_cpu(ids, table)
    }

    fn embedding_bwd(
        &self,
        ids: &Tensor<Self>,
        dy: &Tensor<Self>,
        vocab: usize,
    ) -> Result<Tensor<Self>> {
        embedding::backward_cpu(ids, dy, vocab)
    }

    fn layernorm_fwd(
        &self,
        x: &Tensor<Self>,
        weight: &Tensor<Self>,
        bias: &Tensor<Self>,
        eps: f32,
    ) -> Result<LayerNormOut<Self>> {
        layernorm::forward_cpu(x, weight, bias, eps)
    }

    fn layernorm_bwd(
        &self,
        dy: &Tensor<Self>,
        x: &Tensor<Self>,
        weight: &Tensor<Self>,
        mean: &Tensor<Self>,
        rstd: &Tensor<Self>,
    ) -> Result<LayerNormGrads<Self>> {
        layernorm::backward_cpu(dy, x, weight, mean, rstd)
    }

    fn rmsnorm_fwd(
        &self,
        x: &Tensor<Self>,
        weight: &Tensor<Self>,
        eps: f32,
    ) -> Result<RmsNormOut<Self>> {
        rmsnorm::forward_cpu(x, weight, eps)
    }

    fn rmsnorm_bwd(
        &self,
        dy: &Tensor<Self>,
        x: &Tensor<Self>,
        weight: &Tensor<Self>,
        rstd: &Tensor<Self>,
    ) -> Result<RmsNormGrads<Self>> {
        rmsnorm::backward_cpu(dy, x, weight, rstd)
    }

    fn rope_fwd(
        &self,
        x: &Tensor<Self>,
        positions: &Tensor<Self>,
        theta: f32,
    ) -> Result<Tensor<Self>> {
        rope::forward_cpu(x, positions, theta)
    }

    fn rope_bwd(
        &self,
        dy: &Tensor<Self>,
        positions: &Tensor<Self>,
        theta: f32,
    ) -> Result<Tensor<Self>> {
        rope::backward_cpu(dy, positions, theta)
    }

    fn attention_fwd(
        &self,
        q: &Tensor<Self>,
        k: &Tensor<Self>,
        v: &Tensor<Self>,
        key_valid: &Tensor<Self>,
        softmax_scale: f32,
    ) -> Result<AttentionOut<Self>> {
        attention::forward_cpu(q, k, v, key_valid, softmax_scale)
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
        attention::decode_cpu(q, k_cache, v_cache, key_valid, kv_len, softmax_scale)
    }

    fn kv_cache_write(&self, cache: &mut Tensor<Self>, new: &Tensor<Self>, start: usize) -> Result<()> {
        kv_cache::write_cpu(cache, new, start)
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
        attention::backward_cpu(q, k, v, key_valid, out, lse, dout, softmax_scale)
    }

    fn cross_entropy_fwd(
        &self,
        logits: &Tensor<Self>,
        targets: &Tensor<Self>,
        ignore_index: u32,
    ) -> Result<CrossEntropyOut<Self>> {
        cross_entropy::forward_cpu(logits, targets, ignore_index)
    }

    fn cross_entropy_bwd(
        &self,
        logits: &Tensor<Self>,
        targets: &Tensor<Self>,
        lse: &Tensor<Self>,
        dloss: &Tensor<Self>,
        ignore_index: u32,
    ) -> Result<Tensor<Self>> {
        cross_entropy::backward_cpu(logits, targets, lse, dloss, ignore_index)
    }

    fn logprob_fwd(
        &self,
        logits: &Tensor<Self>,
        targets: &Tensor<Self>,
        inv_temperature: f32,
    ) -> Result<LogProbOut<Self>> {
        logprob::forward_cpu(logits, targets, inv_temperature)
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
        logprob::backward_cpu(logits, targets, lse, entropy, dlogprob, dentropy, inv_temperature)
    }

    fn linear_logprob_fold(
        &self,
        chunk: &Tensor<Self>,
        targets: &Tensor<Self>,
        state: Option<&SoftmaxChunkState<Self>>,
        span: VocabChunk,
        inv_temperature: f32,
    ) -> Result<Folded<Self>> {
        linear_logprob::fold_cpu(chunk, targets, state, span, inv_temperature)
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
        linear_logprob::chunk_bwd_cpu(chunk, targets, lse, entropy, dlogprob, dentropy, span, inv_temperature)
    }

    fn kl_fwd(
        &self,
        logprob: &Tensor<Self>,
        ref_logprob: &Tensor<Self>,
        estimator: KlEstimator,
    ) -> Result<Tensor<Self>> {
        kl::forward_cpu(logprob, ref_logprob, estimator)
    }

    fn kl_bwd(
        &self,
        logprob: &Tensor<Self>,
        ref_logprob: &Tensor<Self>,
        estimator: KlEstimator,
        dkl: &Tensor<Self>,
    ) -> Result<Tensor<Self>> {
        kl::backward_cpu(logprob, ref_logprob, estimator, dkl)
    }

    fn ppo_loss(
        &self,
        logprob: &Tensor<Self>,
        old_logprob: &Tensor<Self>,
        advantages: &Tensor<Self>,
        mask: &Tensor<Self>,
        config: &PpoLossConfig,
    ) -> Result<PpoLossOut<Self>> {
        ppo_loss::ppo_loss_cpu(logprob, old_logprob, advantages, mask, config)
    }

    fn value_loss(
        &self,
        values: &Tensor<Self>,
        old_values: &Tensor<Self>,
        returns: &Tensor<Self>,
        mask: &Tensor<Self>,
        config: &ValueLossConfig,
    ) -> Result<ValueLossOut<Self>> {
        value_loss::value_loss_cpu(values, old_values, returns, mask, config)
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
        grpo_loss::grpo_loss_cpu(logprob, old_logprob, ref_logprob, advantages, mask, config)
    }

    fn gae(
        &self,
        rewards: &Tensor<Self>,
        values: &Tensor<Self>,
        mask: &Tensor<Self>,
        gamma: f32,
        lambda: f32,
    ) -> Result<GaeOut<Self>> {
        gae::gae_cpu(rewards, values, mask, gamma, lambda)
    }

    fn masked_whiten(
        &self,
        x: &Tensor<Self>,
        mask: &Tensor<Self>,
        keep_mean: bool,
        eps: f32,
    ) -> Result<WhitenOut<Self>> {
        masked_whiten::masked_whiten_cpu(x, mask, keep_mean, eps)
    }

    fn bt_loss_fwd(&self, pairs: BtPairs<'_, Self>, label_smoothing: f32) -> Result<Tensor<Self>> {
        bt_loss::bt_forward_cpu(pairs, label_smoothing)
    }

    fn bt_loss_bwd(
        &self,
        pairs: BtPairs<'_, Self>,
        label_smoothing: f32,
        dloss: &Tensor<Self>,
    ) -> Result<BtLossGrads<Self>> {
        bt_loss::bt_backward_cpu(pairs, label_smoothing, dloss)
    }

    fn binary_reward_loss_fwd(&self, reward: &Tensor<Self>, label: &Tensor<Self>) -> Result<Tensor<Self>> {
        bt_loss::binary_forward_cpu(reward, label)
    }

    fn binary_reward_loss_bwd(
        &self,
        reward: &Tensor<Self>,
        label: &Tensor<Self>,
        dloss: &Tensor<Self>,
    ) -> Result<Tensor<Self>> {
        bt_loss::binary_backward_cpu(reward, label, dloss)
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
        adamw::step_cpu(param, grad, m, v, hyper, step)
    }

    fn sample(&self, logits: &Tensor<Self>, rule: SampleRule, draw: SampleDraw) -> Result<Tensor<Self>> {
        sample::sample_cpu(logits, rule, draw)
    }

    fn sum_squares(&self, x: &Tensor<Self>) -> Result<f64> {
        grad_norm::sum_squares_cpu(x)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Runs `f` on a fresh rayon pool of `threads` threads.
    pub(crate) fn in_pool<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build();
        pool.expect("a thread pool").install(f)
    }

    #[test]
    fn column_sums_do_not_depend_on_thread_count() {
        let (rows, cols) = (1000, 7);
        // Terms spanning 16 orders of magnitude: any change of summation order changes the bits.
        let term = |r: usize, j: usize| {
            ((r * 7919 + j * 104_729) % 1013) as f64 * 10f64.powi((r % 17) as i32 - 8)
        };
        let run = |threads| {
            in_pool(threads, || {
                let mut out = vec![0f32; rows * cols];
                let sums = par_rows_with_column_sums(&mut out, cols, cols, |r, row, sums| {
                    for (j, (o, s)) in row.iter_mut().zip(sums).enumerate() {
                        *o = r as f32;
                        *s += term(r, j);
                    }
                });
                (out, sums.iter().map(|s| s.to_bits()).collect::<Vec<_>>())
            })
        };
        let one = run(1);
        for threads in [2, 3, 8] {
            assert!(run(threads) == one, "{threads} threads give other sums than 1 thread");
        }
        let rows_seen =
            one.0.chunks(cols).enumerate().all(|(r, row)| row.iter().all(|&v| v == r as f32));
        assert!(rows_seen, "every row is passed to row_fn once, with its own index");
    }
}
