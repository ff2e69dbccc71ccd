//! Global memory traffic of the memory-critical kernels against their I/O models
//! (`rlhf kernels report`): each case runs one op on a fresh emulated device at a shape where
//! the model matters and compares the bytes the emulator counted (every lane's loads and stores)
//! with the bytes the op cannot avoid moving, written as a formula beside the case.
//!
//! A ratio near 1 says the kernel reads each input and writes each output once; a kernel that
//! re-reads its rows, spills a `[N, V]` or `T×T` intermediate to global memory, or reads
//! uncoalesced shows up here as a ratio well above 1 or low coalescing.

use crate::ops::attention::{io_model_bytes, AttentionDims};
use crate::ops::ppo_loss::PpoLossConfig;
use crate::ops::sample::{SampleDraw, SampleRule};
use crate::{Backend, DType, Emu, Result};

/// One op at one shape: what the emulator counted against the model.
#[derive(Debug, Clone, PartialEq)]
pub struct IoCheck {
    /// The op's main entry point (the others it launches are counted with it).
    pub kernel: String,
    pub shape: String,
    /// Global bytes loaded and stored by every launch of the op, as the emulator counted them.
    pub counted_bytes: u64,
    /// The I/O model: bytes the op must move.
    pub model_bytes: u64,
    /// Useful bytes over the bytes of the 32-byte sectors fetched (1.0 = fully coalesced).
    pub coalescing: f64,
    /// Floating-point operations counted on the CUDA cores and on the tensor cores.
    pub float_ops: u64,
    pub tensor_ops: u64,
}

impl IoCheck {
    /// Counted bytes over the model's bytes.
    pub fn ratio(&self) -> f64 {
        self.counted_bytes as f64 / self.model_bytes as f64
    }
}

/// Runs a case's op on a device.
type RunOp = Box<dyn Fn(&Emu) -> Result<()>>;

/// A case: its report names, the model's bytes, and the op run on a fresh device.
struct IoCase {
    kernel: String,
    /// The entry points counted: those whose names start with this (an op's helper kernels
    /// count with it; kernels that only prepare the inputs do not).
    counted: &'static str,
    shape: String,
    model_bytes: u64,
    run: RunOp,
}

/// Every case, in report order.
fn cases() -> Vec<IoCase> {
    let mut cases = vec![];
    for dtype in [DType::F32, DType::BF16] {
        cases.push(cross_entropy_fwd(64, 50257, dtype));
        cases.push(logprob_fwd(64, 50257, dtype));
        for t in [512, 1024] {
            cases.push(attention(t, dtype, false));
            cases.push(attention(t, dtype, true));
        }
        for t in [1000, 1024] {
            cases.push(ppo_loss(64, t, dtype));
        }
        cases.push(sample_greedy(8, 50257, dtype));
        cases.push(decode(8, 12, 64, 512, dtype));
    }
    cases
}

/// Runs every case (sanitizer off: counting, not checking) and collects its counters.
pub fn run_all() -> Result<Vec<IoCheck>> {
    cases()
        .into_iter()
        .map(|case| {
            let emu = Emu::with_sanitizer(false)?;
            (case.run)(&emu)?;
            let mut counters = crate::emu::Counters::default();
            for (name, stats) in emu.kernel_stats() {
                if name.starts_with(case.counted) {
                    counters.accumulate(&stats.counters);
                }
            }
            Ok(IoCheck {
                kernel: case.kernel,
                shape: case.shape,
                counted_bytes: counters.global_load_bytes + counters.global_store_bytes,
                model_bytes: case.model_bytes,
                coalescing: counters.global_coalescing(),
                float_ops: counters.float_ops,
                tensor_ops: counters.tensor_ops,
            })
        })
        .collect()
}

/// Cross-entropy forward over `[N, V]` logits: the logits and targets read once, loss and
/// log-sum-exp written once: `N·V·sizeof(T) + 4N + 8N` bytes.
fn cross_entropy_fwd(rows: usize, vocab: usize, dtype: DType) -> IoCase {
    let model = rows * vocab * dtype.size_in_bytes() + 4 * rows + 8 * rows;
    IoCase {
        kernel: format!("cross_entropy_fwd_{dtype}"),
        counted: "cross_entropy_fwd",
        shape: format!("[{rows}, {vocab}]"),
        model_bytes: model as u64,
        run: Box::new(move |emu| {
            let logits = emu.zeros(&[rows, vocab], dtype)?;
            let targets = emu.upload_u32(&[rows], &vec![1; rows])?;
            emu.cross_entropy_fwd(&logits, &targets, u32::MAX).map(drop)
        }),
    }
}

/// Fused log-prob forward over `[N, V]` logits: the logits and targets read once; log-prob,
/// entropy and log-sum-exp written once: `N·V·sizeof(T) + 4N + 12N` bytes.
fn logprob_fwd(rows: usize, vocab: usize, dtype: DType) -> IoCase {
    let model = rows * vocab * dtype.size_in_bytes() + 4 * rows + 12 * rows;
    IoCase {
        kernel: format!("logprob_fwd_{dtype}"),
        counted: "logprob_fwd",
        shape: format!("[{rows}, {vocab}]"),
        model_bytes: model as u64,
        run: Box::new(move |emu| {
            let logits = emu.zeros(&[rows, vocab], dtype)?;
            let targets = emu.upload_u32(&[rows], &vec![1; rows])?;
            emu.logprob_fwd(&logits, &targets, 1.0).map(drop)
        }),
    }
}

/// Greedy next-token choice over `[B, V]` logits: the logits read once (aligned packs, each
/// once), the ids written: `B·V·sizeof(T) + 4B` bytes.
fn sample_greedy(rows: usize, vocab: usize, dtype: DType) -> IoCase {
    let model = rows * vocab * dtype.size_in_bytes() + 4 * rows;
    IoCase {
        kernel: format!("sample_fwd_{dtype}"),
        counted: "sample_fwd",
        shape: format!("[{rows}, {vocab}] greedy"),
        model_bytes: model as u64,
        run: Box::new(move |emu| {
            let logits = emu.zeros(&[rows, vocab], dtype)?;
            let draw = SampleDraw { seed: 0, first_sequence: 0, step: 0 };
            emu.sample(&logits, SampleRule::Greedy, draw).map(drop)
        }),
    }
}

/// One decoding step (`kv_cache_fwd_decode`, Tq = 1, NKV = NH) against a full cache of T keys:
/// per (batch entry, head) q and out read and written once (`2·HS·S`) and lse written (4), and
/// every key's K and V rows and its `key_valid` word read once: `B·NH·(T + 1)·(2·HS·S + 4)` bytes.
fn decode(batch: usize, heads: usize, hs: usize, t: usize, dtype: DType) -> IoCase {
    let model = batch * heads * (t + 1) * (2 * hs * dtype.size_in_bytes() + 4);
    IoCase {
        kernel: format!("kv_cache_fwd_decode_{dtype}"),
        counted: "kv_cache_fwd_decode",
        shape: format!("B {batch}, NH {heads}, HS {hs}, T {t}"),
        model_bytes: model as u64,
        run: Box::new(move |emu| {
            let q = emu.zeros(&[batch, 1, heads, hs], dtype)?;
            let cache = emu.zeros(&[batch, t, heads, hs], dtype)?;
            let valid = emu.upload_u32(&[batch, t], &vec![1; batch * t])?;
            emu.attention_decode(&q, &cache, &cache, &valid, t, 0.125).map(drop)
        }),
    }
}

/// PPO's masked loss with its gradient (`ppo_loss_fwd` + `ppo_loss_fwd_totals`) over `[B, T]`
/// with every token masked (a prompt's windows would skip their inputs and move less): the three
/// inputs and the mask read once, the gradient written once, plus the per-row terms — weights
/// read, partials written and read back (32 bytes a row each way), 7 totals written:
/// `B·T·(3S + 4 + S) + 4B + 64B + 28` bytes. T = 1000 puts the rows off the 32-byte grid.
fn ppo_loss(rows: usize, cols: usize, dtype: DType) -> IoCase {
    let s = dtype.size_in_bytes();
    let model = rows * cols * (3 * s + 4 + s) + 4 * rows + 64 * rows + 28;
    IoCase {
        kernel: format!("ppo_loss_fwd_{dtype}"),
        counted: "ppo_loss_fwd",
        shape: format!("[{rows}, {cols}]"),
        model_bytes: model as u64,
        run: Box::new(move |emu| {
            let input = || emu.zeros(&[rows, cols], dtype);
            let (logprob, old, advantages) = (input()?, input()?, input()?);
            let mask = emu.upload_u32(&[rows, cols], &vec![1; rows * cols])?;
            emu.ppo_loss(&logprob, &old, &advantages, &mask, &PpoLossConfig::new(0.2)).map(drop)
        }),
    }
}

/// Causal flash attention, B = 1, NH = 2 query heads sharing NKV = 1 key/value head, HS = 64, T
/// queries and keys, forward or backward (`attention_bwd_prep`, `_bwd`, `_bwd_dq`): the model of
/// `kernels/src/attention.cu` (`attention::io_model_bytes`): Q and O once, K and V once per query
/// tile up to the tile's last visible key; no `T×T` term, since no score matrix reaches global
/// memory.
fn attention(t: usize, dtype: DType, backward: bool) -> IoCase {
    let (heads, kv_heads, head_size) = (2, 1, 64);
    let dims = AttentionDims {
        batch: 1,
        q_len: t,
        kv_len: t,
        kv_capacity: t,
        heads,
        kv_heads,
        head_size,
    };
    let model = io_model_bytes(&dims, dtype);
    let (stem, counted, model_bytes) = if backward {
        ("attention_bwd", "attention_bwd", model.backward)
    } else {
        ("attention_fwd", "attention_fwd", model.forward)
    };
    IoCase {
        kernel: format!("{stem}_{dtype}"),
        counted,
        shape: format!("B 1, T {t}, NH {heads}, NKV {kv_heads}, HS {head_size}"),
        model_bytes,
        run: Box::new(move |emu| {
            let q = emu.zeros(&[1, t, heads, head_size], dtype)?;
            let kv = emu.zeros(&[1, t, kv_heads, head_size], dtype)?;
            let valid = emu.upload_u32(&[1, t], &vec![1; t])?;
            let scale = 1.0 / (head_size as f32).sqrt();
            let out = emu.attention_fwd(&q, &kv, &kv, &valid, scale)?;
            if backward {
                emu.attention_bwd(&q, &kv, &kv, &valid, &out.out, &out.lse, &q, scale)?;
            }
            Ok(())
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_is_counted_over_model_bytes() {
        let check = IoCheck {
            kernel: "k".into(),
            shape: "[1]".into(),
            counted_bytes: 105,
            model_bytes: 100,
            coalescing: 1.0,
            float_ops: 0,
            tensor_ops: 0,
        };
        assert!((check.ratio() - 1.05).abs() < 1e-12);
    }
}
