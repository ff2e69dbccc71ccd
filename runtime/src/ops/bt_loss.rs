//! Reward-model losses: the Bradley–Terry pairwise loss (with per-pair margin, soft labels and
//! label smoothing) and the binary outcome loss for verifiable data.
//!
//! **Bradley–Terry.** Shapes: `reward_chosen` `r_c`, `reward_rejected` `r_r`, `margin` `m` and
//! `label` `y` all `[P]` (one entry per pair), float, one dtype; label smoothing `ε` in `[0, 1]`.
//! `y` is the target probability that the chosen response wins (1 for a hard label, in `(0, 1)`
//! for a soft one), `m` a per-pair margin (zeros for none). With `Δ = r_c − r_r − m` and the
//! smoothed target `t = (1 − ε)·y + ε/2`:
//!
//! ```text
//! loss_p = −[(1−ε)·y·log σ(Δ) + (1−ε)(1−y)·log σ(−Δ) + ε/2·(log σ(Δ) + log σ(−Δ))]
//!        = −[t·log σ(Δ) + (1 − t)·log σ(−Δ)]
//!        = t·softplus(−Δ) + (1 − t)·softplus(Δ)
//! ```
//!
//! For `y = 1`, `ε = 0` this is Llama 2's margin loss `−log σ(r_c − r_r − m)`; for `m = 0` the
//! plain Bradley–Terry negative log-likelihood. The smoothing of the Secrets-of-RLHF-II report
//! (target `1 − α`) is `ε = 2α`. `log σ` is never formed directly: `softplus(x) = max(x, 0) +
//! log1p(e^(−|x|))` is exact for large `|Δ|` in either direction, where `log(σ(Δ))` would round
//! `σ` to 0 or 1 first. Result: `loss` `[P]` f32.
//!
//! Backward (`=`): `d loss_p / dΔ = σ(Δ) − t`, so for upstream `dloss` `[P]` f32,
//! `d r_c = dloss·(σ(Δ) − t)` and `d r_r = −d r_c`, both `[P]` in the rewards' dtype. Margin and
//! label are data and get no gradient.
//!
//! **Binary outcome loss** (`binary_reward_loss_*`): for verifiable data, the reward `r` `[P]`
//! read as the logit of "this response is right" against an outcome label `y` `[P]` in `[0, 1]`
//! (0/1, or soft): `loss = −[y·log σ(r) + (1−y)·log σ(−r)]`, binary cross-entropy with logits —
//! the Bradley–Terry loss of `r` against a fixed reward of 0 with no margin or smoothing.
//! Backward: `d r = dloss·(σ(r) − y)`. Both losses are per element, so they combine by adding
//! their gradients on the rewards (with [`Backend::axpy`]).
//!
//! Labels outside `[0, 1]` and non-finite margins are errors naming the pair and value. `P` is the
//! batch's pair count (tens to thousands), so the Cpu backend runs one thread.

use super::check;
use crate::cpu::{f32_data, from_f32, from_host};
use crate::gpu::{self, Arg, GpuBackend, Launch};
use crate::{Backend, Cpu, DType, Error, Result, Tensor};

const BT_FWD: &str = "bt_loss_fwd";
const BT_BWD: &str = "bt_loss_bwd";
const BINARY_FWD: &str = "binary_reward_loss_fwd";
const BINARY_BWD: &str = "binary_reward_loss_bwd";

/// The pairwise inputs of [`Backend::bt_loss_fwd`] and [`Backend::bt_loss_bwd`], each `[P]`.
pub struct BtPairs<'a, B: Backend> {
    pub reward_chosen: &'a Tensor<B>,
    pub reward_rejected: &'a Tensor<B>,
    /// Subtracted from `r_c − r_r` (zeros for no margin).
    pub margin: &'a Tensor<B>,
    /// Target probability that the chosen response wins.
    pub label: &'a Tensor<B>,
}

impl<B: Backend> Clone for BtPairs<'_, B> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<B: Backend> Copy for BtPairs<'_, B> {}

/// Gradients of [`Backend::bt_loss_bwd`], each `[P]` in the rewards' dtype.
pub struct BtLossGrads<B: Backend> {
    pub reward_chosen: Tensor<B>,
    pub reward_rejected: Tensor<B>,
}

impl<B: Backend> std::fmt::Debug for BtLossGrads<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BtLossGrads")
            .field("reward_chosen", &self.reward_chosen)
            .field("reward_rejected", &self.reward_rejected)
            .finish()
    }
}

/// `softplus(x) = log(1 + e^x)`, without overflow for large `x` or loss of digits for small.
fn softplus(x: f32) -> f32 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// `−[t·log σ(x) + (1 − t)·log σ(−x)]`.
fn logistic_loss(x: f32, target: f32) -> f32 {
    target * softplus(-x) + (1.0 - target) * softplus(x)
}

/// `σ(x) − t`, written as `(1 − t)·σ(x) − t·σ(−x)` so that a saturated pair keeps its tiny
/// gradient (`σ(50) − 1` would round to 0; `−σ(−50)` is `−2e−22`).
fn logistic_grad(x: f32, target: f32) -> f32 {
    (1.0 - target) * sigmoid(x) - target * sigmoid(-x)
}

fn check_smoothing(op: &'static str, label_smoothing: f32) -> Result<()> {
    if !(0.0..=1.0).contains(&label_smoothing) {
        return Err(Error::argument(op, format!("`label_smoothing` must be in [0, 1], got {label_smoothing}")));
    }
    Ok(())
}

/// Checks that every argument is a float of the first one's dtype and has shape `[P]`; returns `P`.
fn check_pair_shapes<B: Backend>(op: &'static str, args: &[(&'static str, &Tensor<B>)]) -> Result<usize> {
    check::same_float(op, args)?;
    let (first_name, first) = args[0];
    check::rank(op, first_name, first, 1)?;
    for &arg in &args[1..] {
        check::same_shape(op, args[0], arg)?;
    }
    Ok(first.dims()[0])
}

fn check_dloss<B: Backend>(op: &'static str, dloss: &Tensor<B>, p: usize) -> Result<()> {
    check::dtype(op, "dloss", dloss, DType::F32)?;
    check::dims(op, "dloss", dloss, &[p])
}

/// Checks [`Backend::bt_loss_fwd`]'s arguments; returns `P`.
pub fn check_bt_forward<B: Backend>(pairs: BtPairs<'_, B>, label_smoothing: f32) -> Result<usize> {
    check_bt(BT_FWD, pairs, label_smoothing)
}

/// Checks [`Backend::bt_loss_bwd`]'s arguments: those of the forward and `dloss` `[P]` f32.
pub fn check_bt_backward<B: Backend>(pairs: BtPairs<'_, B>, label_smoothing: f32, dloss: &Tensor<B>) -> Result<usize> {
    let p = check_bt(BT_BWD, pairs, label_smoothing)?;
    check_dloss(BT_BWD, dloss, p)?;
    Ok(p)
}

fn check_bt<B: Backend>(op: &'static str, pairs: BtPairs<'_, B>, label_smoothing: f32) -> Result<usize> {
    let p = check_pair_shapes(
        op,
        &[
            ("reward_chosen", pairs.reward_chosen),
            ("reward_rejected", pairs.reward_rejected),
            ("margin", pairs.margin),
            ("label", pairs.label),
        ],
    )?;
    check_smoothing(op, label_smoothing)?;
    Ok(p)
}

/// Checks [`Backend::binary_reward_loss_fwd`]'s arguments; returns `P`.
pub fn check_binary_forward<B: Backend>(reward: &Tensor<B>, label: &Tensor<B>) -> Result<usize> {
    check_pair_shapes(BINARY_FWD, &[("reward", reward), ("label", label)])
}

/// Checks [`Backend::binary_reward_loss_bwd`]'s arguments: those of the forward and `dloss` `[P]`
/// f32.
pub fn check_binary_backward<B: Backend>(reward: &Tensor<B>, label: &Tensor<B>, dloss: &Tensor<B>) -> Result<usize> {
    let p = check_pair_shapes(BINARY_BWD, &[("reward", reward), ("label", label)])?;
    check_dloss(BINARY_BWD, dloss, p)?;
    Ok(p)
}

/// Fails on the first label outside `[0, 1]` (NaN included), naming its pair.
pub(crate) fn check_labels(op: &'static str, labels: &[f32]) -> Result<()> {
    match labels.iter().position(|y| !(0.0..=1.0).contains(y)) {
        Some(p) => Err(Error::argument(op, format!("`label` of pair {p} is {}, a probability must be in [0, 1]", labels[p]))),
        None => Ok(()),
    }
}

/// Fails on the first non-finite margin, naming its pair.
pub(crate) fn check_margins(op: &'static str, margins: &[f32]) -> Result<()> {
    match margins.iter().position(|m| !m.is_finite()) {
        Some(p) => Err(Error::argument(op, format!("`margin` of pair {p} is {}, it must be finite", margins[p]))),
        None => Ok(()),
    }
}

/// Per pair, `(Δ, t)`: the margin-shifted reward difference and the smoothed target.
fn bt_terms(op: &'static str, pairs: BtPairs<'_, Cpu>, label_smoothing: f32) -> Result<Vec<(f32, f32)>> {
    let (chosen, rejected) = (f32_data(pairs.reward_chosen), f32_data(pairs.reward_rejected));
    let (margin, label) = (f32_data(pairs.margin), f32_data(pairs.label));
    check_labels(op, &label)?;
    check_margins(op, &margin)?;
    let keep = 1.0 - label_smoothing;
    let floor = 0.5 * label_smoothing;
    Ok((0..chosen.len()).map(|p| (chosen[p] - rejected[p] - margin[p], keep * label[p] + floor)).collect())
}

pub(crate) fn bt_forward_cpu(pairs: BtPairs<'_, Cpu>, label_smoothing: f32) -> Result<Tensor<Cpu>> {
    let p = check_bt_forward(pairs, label_smoothing)?;
    let terms = bt_terms(BT_FWD, pairs, label_smoothing)?;
    Ok(from_host(&[p], terms.into_iter().map(|(delta, t)| logistic_loss(delta, t)).collect()))
}

pub(crate) fn bt_backward_cpu(pairs: BtPairs<'_, Cpu>, label_smoothing: f32, dloss: &Tensor<Cpu>) -> Result<BtLossGrads<Cpu>> {
    let p = check_bt_backward(pairs, label_smoothing, dloss)?;
    let dloss = f32_data(dloss);
    let terms = bt_terms(BT_BWD, pairs, label_smoothing)?;
    let dchosen: Vec<f32> = terms.iter().zip(dloss.iter()).map(|(&(delta, t), &g)| g * logistic_grad(delta, t)).collect();
    let drejected = dchosen.iter().map(|&g| -g).collect();
    let dtype = pairs.reward_chosen.dtype();
    Ok(BtLossGrads { reward_chosen: from_f32(&[p], dchosen, dtype), reward_rejected: from_f32(&[p], drejected, dtype) })
}

pub(crate) fn binary_forward_cpu(reward: &Tensor<Cpu>, label: &Tensor<Cpu>) -> Result<Tensor<Cpu>> {
    let p = check_binary_forward(reward, label)?;
    let (reward, label) = (f32_data(reward), f32_data(label));
    check_labels(BINARY_FWD, &label)?;
    Ok(from_host(&[p], reward.iter().zip(label.iter()).map(|(&r, &y)| logistic_loss(r, y)).collect()))
}

pub(crate) fn binary_backward_cpu(reward: &Tensor<Cpu>, label: &Tensor<Cpu>, dloss: &Tensor<Cpu>) -> Result<Tensor<Cpu>> {
    let p = check_binary_backward(reward, label, dloss)?;
    let (r, y, g) = (f32_data(reward), f32_data(label), f32_data(dloss));
    check_labels(BINARY_BWD, &y)?;
    let grad = (0..p).map(|i| g[i] * logistic_grad(r[i], y[i])).collect();
    Ok(from_f32(&[p], grad, reward.dtype()))
}

/// Threads per block of the per-pair kernels (one thread per pair).
const GPU_THREADS: u32 = 256;

fn pair_launch(p: u32) -> Launch {
    Launch::linear(p.div_ceil(GPU_THREADS), GPU_THREADS)
}

/// Labels and margins are data the kernels do not judge: they are checked on the host first
/// (one download of each), giving the Cpu's errors.
fn check_pair_data<G: GpuBackend>(gpu: &G, op: &'static str, pairs: BtPairs<'_, G>, p: usize) -> Result<u32> {
    check_labels(op, &gpu.download_f32(pairs.label)?)?;
    check_margins(op, &gpu.download_f32(pairs.margin)?)?;
    gpu::dim_u32(op, "P", p)
}

pub(crate) fn bt_forward_gpu<G: GpuBackend>(gpu: &G, pairs: BtPairs<'_, G>, label_smoothing: f32) -> Result<Tensor<G>> {
    let p = check_bt_forward(pairs, label_smoothing)?;
    let n = check_pair_data(gpu, BT_FWD, pairs, p)?;
    let loss = gpu::alloc(gpu, &[p], DType::F32)?;
    let args = [
        Arg::In(pairs.reward_chosen),
        Arg::In(pairs.reward_rejected),
        Arg::In(pairs.margin),
        Arg::In(pairs.label),
        Arg::Out(&loss),
        Arg::U32(n),
        Arg::F32(label_smoothing),
    ];
    gpu::launch(gpu, BT_FWD, pairs.reward_chosen.dtype(), pair_launch(n), &args)?;
    Ok(loss)
}

pub(crate) fn bt_backward_gpu<G: GpuBackend>(
    gpu: &G,
    pairs: BtPairs<'_, G>,
    label_smoothing: f32,
    dloss: &Tensor<G>,
) -> Result<BtLossGrads<G>> {
    let p = check_bt_backward(pairs, label_smoothing, dloss)?;
    let n = check_pair_data(gpu, BT_BWD, pairs, p)?;
    let dtype = pairs.reward_chosen.dtype();
    let grads = BtLossGrads { reward_chosen: gpu::alloc(gpu, &[p], dtype)?, reward_rejected: gpu::alloc(gpu, &[p], dtype)? };
    let args = [
        Arg::In(pairs.reward_chosen),
        Arg::In(pairs.reward_rejected),
        Arg::In(pairs.margin),
        Arg::In(pairs.label),
        Arg::In(dloss),
        Arg::Out(&grads.reward_chosen),
        Arg::Out(&grads.reward_rejected),
        Arg::U32(n),
        Arg::F32(label_smoothing),
    ];
    gpu::launch(gpu, BT_BWD, dtype, pair_launch(n), &args)?;
    Ok(grads)
}

pub(crate) fn binary_forward_gpu<G: GpuBackend>(gpu: &G, reward: &Tensor<G>, label: &Tensor<G>) -> Result<Tensor<G>> {
    let p = check_binary_forward(reward, label)?;
    check_labels(BINARY_FWD, &gpu.download_f32(label)?)?;
    let n = gpu::dim_u32(BINARY_FWD, "P", p)?;
    let loss = gpu::alloc(gpu, &[p], DType::F32)?;
    let args = [Arg::In(reward), Arg::In(label), Arg::Out(&loss), Arg::U32(n)];
    gpu::launch(gpu, "bt_loss_fwd_binary", reward.dtype(), pair_launch(n), &args)?;
    Ok(loss)
}

pub(crate) fn binary_backward_gpu<G: GpuBackend>(
    gpu: &G,
    reward: &Tensor<G>,
    label: &Tensor<G>,
    dloss: &Tensor<G>,
) -> Result<Tensor<G>> {
    let p = check_binary_backward(reward, label, dloss)?;
    check_labels(BINARY_BWD, &gpu.download_f32(label)?)?;
    let n = gpu::dim_u32(BINARY_BWD, "P", p)?;
    let dreward = gpu::alloc(gpu, &[p], reward.dtype())?;
    let args = [Arg::In(reward), Arg::In(label), Arg::In(dloss), Arg::Out(&dreward), Arg::U32(n)];
    gpu::launch(gpu, "bt_loss_bwd_binary", reward.dtype(), pair_launch(n), &args)?;
    Ok(dreward)
}
