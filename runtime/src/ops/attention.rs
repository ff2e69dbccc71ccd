//! Causal grouped-query attention with key padding.
//!
//! Shapes: `q` `[B, Tq, NH, HS]`, `k` and `v` `[B, Tk, NKV, HS]` with `NH % NKV == 0` and
//! `Tq <= Tk`, `key_valid` `[B, Tk]` u32 (1 real token, 0 padding). Query head `h` reads key/value
//! head `h / (NH / NKV)`. The queries are the last `Tq` of the `Tk` positions, so query `i` sits
//! at position `p_i = Tk − Tq + i` (training has `Tq = Tk`; decoding with a KV cache has
//! `Tq < Tk`). It sees the keys `j <= p_i` with `key_valid[b, j] = 1`, which covers left- and
//! right-padded batches alike. For each batch entry and query head:
//!
//! ```text
//! s_ij   = scale · q_i · k_j                      (visible j only)
//! lse_i  = log Σ_j exp(s_ij)
//! P_ij   = exp(s_ij − lse_i)
//! out_i  = Σ_j P_ij v_j
//! ```
//!
//! Results: `out` `[B, Tq, NH, HS]` in the input dtype and `lse` `[B, NH, Tq]` in f32. A query that
//! sees no key (a left-padding row, or a sequence of padding only) gets `out = 0`, `lse = −inf`.
//!
//! Backward recomputes `P` from the saved `lse` and returns fresh gradients:
//! `dv_j = Σ_i P_ij dout_i`, `dP_ij = dout_i · v_j`, `D_i = dout_i · out_i`,
//! `dS_ij = P_ij (dP_ij − D_i)`, `dq_i = scale Σ_j dS_ij k_j`, `dk_j = scale Σ_i dS_ij q_i`, where
//! `dk` and `dv` of a key/value head sum over the query heads of its group. Queries that see no
//! key contribute nothing and get `dq = 0`.
//!
//! Cpu: queries are processed in blocks of [`QUERY_BLOCK`] against only the keys the block can
//! see (so the causal upper triangle is mostly skipped), with a `[block, Tk]` score buffer. The
//! forward runs in parallel over (batch, query head, block); the backward over (batch, key/value
//! head), each task summing its group's heads and blocks in a fixed order, so results do not
//! depend on the number of threads.
//!
//! GPU backends (`gpu.rs`): the flash kernels of `kernels/src/attention.cu` (forward; backward as
//! D = dO·O, then dK/dV per key tile, then dQ per query tile, no atomics and no T×T buffer) and,
//! for at most [`DECODE_MAX_QUERIES`] queries against a cache, `kv_cache_fwd_decode`.
//! [`io_model_bytes`] is the kernels' I/O model, which the emulator's counters are checked
//! against.

mod blocked;
mod gpu;

use std::fmt;

use rayon::prelude::*;

pub use self::gpu::{io_model_bytes, AttentionIo, DECODE_MAX_QUERIES, MAX_HEAD_SIZE};
pub(crate) use self::gpu::{backward_gpu, decode_gpu, forward_gpu};

use self::blocked::{backward_block, forward_block, BackwardScratch, HeadInputs, HeadSaved, Mat};
use super::check;
use crate::cpu::{f32_data, from_f32, u32_data};
use crate::{Backend, Cpu, DType, Error, Result, Tensor};

const OP: &str = "attention";

/// Queries processed together on Cpu: large enough for efficient matrix products, small enough
/// that little of the causal upper triangle is computed and thrown away.
pub const QUERY_BLOCK: usize = 64;

/// Output of [`Backend::attention_fwd`].
pub struct AttentionOut<B: Backend> {
    /// `[B, Tq, NH, HS]`, the dtype of `q`.
    pub out: Tensor<B>,
    /// `[B, NH, Tq]` f32; −inf for queries that see no key.
    pub lse: Tensor<B>,
}

/// Gradients of [`Backend::attention_bwd`], each shaped and typed like its input.
pub struct AttentionGrads<B: Backend> {
    pub dq: Tensor<B>,
    pub dk: Tensor<B>,
    pub dv: Tensor<B>,
}

// By hand rather than derived: a derive would require `B: Debug`.
impl<B: Backend> fmt::Debug for AttentionOut<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AttentionOut").field("out", &self.out).field("lse", &self.lse).finish()
    }
}

impl<B: Backend> fmt::Debug for AttentionGrads<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("AttentionGrads");
        s.field("dq", &self.dq).field("dk", &self.dk).field("dv", &self.dv).finish()
    }
}

/// The sizes of one attention call, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttentionDims {
    pub batch: usize,
    /// Tq.
    pub q_len: usize,
    /// Tk: the keys in use.
    pub kv_len: usize,
    /// Rows allocated per batch entry in `k`, `v` and `key_valid` (`Tmax` of a KV cache; equal to
    /// `kv_len` outside decoding).
    pub kv_capacity: usize,
    /// NH.
    pub heads: usize,
    /// NKV.
    pub kv_heads: usize,
    /// HS.
    pub head_size: usize,
}

impl AttentionDims {
    /// Query heads that share one key/value head (`NH / NKV`).
    pub fn group_size(&self) -> usize {
        self.heads / self.kv_heads
    }

    /// Dims of the log-sum-exp, `[B, NH, Tq]`.
    pub fn lse_dims(&self) -> [usize; 3] {
        [self.batch, self.heads, self.q_len]
    }
}

/// Checks the arguments of [`Backend::attention_fwd`] and returns the sizes.
pub fn check_forward<B: Backend>(
    q: &Tensor<B>,
    k: &Tensor<B>,
    v: &Tensor<B>,
    key_valid: &Tensor<B>,
    softmax_scale: f32,
) -> Result<AttentionDims> {
    check::same_float(OP, &[("q", q), ("k", k), ("v", v)])?;
    check::dtype(OP, "key_valid", key_valid, DType::U32)?;
    check::finite(OP, "softmax_scale", softmax_scale)?;
    check::rank(OP, "q", q, 4)?;
    check::rank(OP, "k", k, 4)?;
    check::same_shape(OP, ("k", k), ("v", v))?;
    let (qd, kd) = (q.dims(), k.dims());
    let (batch, q_len, heads, head_size) = (qd[0], qd[1], qd[2], qd[3]);
    let (kv_len, kv_heads) = (kd[1], kd[2]);
    let shapes = format!("q {} [B, Tq, NH, HS], k {} [B, Tk, NKV, HS]", q.shape(), k.shape());
    if kd[0] != batch || kd[3] != head_size {
        return Err(Error::shape(OP, format!("batch B and head size HS differ: {shapes}")));
    }
    if head_size == 0 {
        return Err(Error::shape(OP, format!("head size HS must be positive: {shapes}")));
    }
    if kv_heads == 0 || heads % kv_heads != 0 {
        return Err(Error::shape(
            OP,
            format!("query heads NH={heads} must be a multiple of key/value heads NKV={kv_heads}: {shapes}"),
        ));
    }
    if q_len > kv_len {
        return Err(Error::shape(
            OP,
            format!("more queries than keys (Tq={q_len} > Tk={kv_len}): {shapes}"),
        ));
    }
    check::dims(OP, "key_valid", key_valid, &[batch, kv_len])?;
    Ok(AttentionDims { batch, q_len, kv_len, kv_capacity: kv_len, heads, kv_heads, head_size })
}

/// Checks the arguments of [`Backend::attention_decode`]: the caches are `[B, Tmax, NKV, HS]`,
/// `key_valid` `[B, Tmax]`, and `Tq <= kv_len <= Tmax`.
pub fn check_decode<B: Backend>(
    q: &Tensor<B>,
    k_cache: &Tensor<B>,
    v_cache: &Tensor<B>,
    key_valid: &Tensor<B>,
    kv_len: usize,
    softmax_scale: f32,
) -> Result<AttentionDims> {
    let dims = check_forward(q, k_cache, v_cache, key_valid, softmax_scale)?;
    if kv_len < dims.q_len || kv_len > dims.kv_capacity {
        return Err(Error::shape(
            OP,
            format!(
                "kv_len={kv_len} must lie between Tq={} and the cache length Tmax={} (q {}, k_cache {})",
                dims.q_len,
                dims.kv_capacity,
                q.shape(),
                k_cache.shape()
            ),
        ));
    }
    Ok(AttentionDims { kv_len, ..dims })
}

/// Checks the arguments of [`Backend::attention_bwd`] and returns the sizes.
#[allow(clippy::too_many_arguments)]
pub fn check_backward<B: Backend>(
    q: &Tensor<B>,
    k: &Tensor<B>,
    v: &Tensor<B>,
    key_valid: &Tensor<B>,
    out: &Tensor<B>,
    lse: &Tensor<B>,
    dout: &Tensor<B>,
    softmax_scale: f32,
) -> Result<AttentionDims> {
    let dims = check_forward(q, k, v, key_valid, softmax_scale)?;
    check::same_float(OP, &[("q", q), ("out", out), ("dout", dout)])?;
    check::dims(OP, "out", out, q.dims())?;
    check::dims(OP, "dout", dout, q.dims())?;
    check::dtype(OP, "lse", lse, DType::F32)?;
    check::dims(OP, "lse", lse, &dims.lse_dims())?;
    Ok(dims)
}

/// Checks that the key mask `[B, cap]` holds only 0 and 1 (shared by every backend).
pub(crate) fn check_mask(mask: &[u32], dims: &AttentionDims) -> Result<()> {
    if let Some(at) = mask.iter().position(|&m| m > 1) {
        let (b, j) = (at / dims.kv_capacity, at % dims.kv_capacity);
        return Err(Error::argument(
            OP,
            format!("key_valid[{b}, {j}] = {}, expected 0 (padding) or 1 (token)", mask[at]),
        ));
    }
    Ok(())
}

/// The key mask as a slice, after [`check_mask`].
fn key_mask<'a>(key_valid: &'a Tensor<Cpu>, dims: &AttentionDims) -> Result<&'a [u32]> {
    let mask = u32_data(key_valid);
    check_mask(mask, dims)?;
    Ok(mask)
}

/// Token-major f32 data of the inputs, `[B, T, heads, HS]` each.
struct Inputs<'a> {
    dims: AttentionDims,
    q: &'a [f32],
    k: &'a [f32],
    v: &'a [f32],
    key_valid: &'a [u32],
    scale: f32,
}

impl<'a> Inputs<'a> {
    /// The first `rows` rows `[rows, HS]` of head `head` of batch entry `b` in a token-major
    /// `[B, len, heads, HS]` slice.
    fn head_rows(
        data: &'a [f32],
        b: usize,
        head: usize,
        (len, heads, hs): (usize, usize, usize),
        rows: usize,
    ) -> Mat<'a> {
        Mat::new(data, (b * len * heads + head) * hs, rows, hs, heads * hs)
    }

    /// What query head `h` of batch entry `b` reads.
    fn head(&self, b: usize, h: usize) -> HeadInputs<'a> {
        let d = &self.dims;
        let kv_head = h / d.group_size();
        let kv_shape = (d.kv_capacity, d.kv_heads, d.head_size);
        HeadInputs {
            q: Self::head_rows(self.q, b, h, (d.q_len, d.heads, d.head_size), d.q_len),
            k: Self::head_rows(self.k, b, kv_head, kv_shape, d.kv_len),
            v: Self::head_rows(self.v, b, kv_head, kv_shape, d.kv_len),
            key_valid: &self.key_valid[b * d.kv_capacity..][..d.kv_len],
            scale: self.scale,
        }
    }
}

/// `[B, heads, T, HS]` → `[B, T, heads, HS]`.
fn heads_to_tokens(x: &[f32], batch: usize, len: usize, heads: usize, hs: usize) -> Vec<f32> {
    let mut y = vec![0f32; batch * len * heads * hs];
    y.par_chunks_mut((heads * hs).max(1)).enumerate().for_each(|(bt, row)| {
        let (b, t) = (bt / len, bt % len);
        for (h, dst) in row.chunks_mut(hs).enumerate() {
            dst.copy_from_slice(&x[((b * heads + h) * len + t) * hs..][..hs]);
        }
    });
    y
}

/// Query blocks `(start, end)` covering `0..len`.
fn query_blocks(len: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..len).step_by(QUERY_BLOCK).map(move |s| (s, (s + QUERY_BLOCK).min(len)))
}

pub(crate) fn forward_cpu(
    q: &Tensor<Cpu>,
    k: &Tensor<Cpu>,
    v: &Tensor<Cpu>,
    key_valid: &Tensor<Cpu>,
    scale: f32,
) -> Result<AttentionOut<Cpu>> {
    let dims = check_forward(q, k, v, key_valid, scale)?;
    forward_with_dims(dims, q, k, v, key_valid, scale)
}

pub(crate) fn decode_cpu(
    q: &Tensor<Cpu>,
    k_cache: &Tensor<Cpu>,
    v_cache: &Tensor<Cpu>,
    key_valid: &Tensor<Cpu>,
    kv_len: usize,
    scale: f32,
) -> Result<AttentionOut<Cpu>> {
    let dims = check_decode(q, k_cache, v_cache, key_valid, kv_len, scale)?;
    forward_with_dims(dims, q, k_cache, v_cache, key_valid, scale)
}

/// The forward for validated `dims`; only the first `kv_len` of the `kv_capacity` key rows are
/// read.
fn forward_with_dims(
    dims: AttentionDims,
    q: &Tensor<Cpu>,
    k: &Tensor<Cpu>,
    v: &Tensor<Cpu>,
    key_valid: &Tensor<Cpu>,
    scale: f32,
) -> Result<AttentionOut<Cpu>> {
    let key_valid = key_mask(key_valid, &dims)?;
    let (qd, kd, vd) = (f32_data(q), f32_data(k), f32_data(v));
    let inputs = Inputs { dims, q: &qd, k: &kd, v: &vd, key_valid, scale };
    let (tq, nh, hs) = (dims.q_len, dims.heads, dims.head_size);

    // Head-major output, so each (batch, head, block) task owns a contiguous chunk.
    let mut out = vec![0f32; dims.batch * nh * tq * hs];
    let mut lse = vec![0f32; dims.batch * nh * tq];
    out.par_chunks_mut((tq * hs).max(1)).zip(lse.par_chunks_mut(tq.max(1))).enumerate().for_each(
        |(bh, (out_head, lse_head))| {
            let head = inputs.head(bh / nh, bh % nh);
            out_head
                .par_chunks_mut(QUERY_BLOCK * hs)
                .zip(lse_head.par_chunks_mut(QUERY_BLOCK))
                .zip(query_blocks(tq).collect::<Vec<_>>())
                .for_each_init(Vec::new, |scores, ((out_block, lse_block), rows)| {
                    forward_block(&head, rows, out_block, lse_block, scores)
                });
        },
    );
    let out = heads_to_tokens(&out, dims.batch, tq, nh, hs);
    Ok(AttentionOut {
        out: from_f32(q.dims(), out, q.dtype()),
        lse: from_f32(&dims.lse_dims(), lse, DType::F32),
    })
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn backward_cpu(
    q: &Tensor<Cpu>,
    k: &Tensor<Cpu>,
    v: &Tensor<Cpu>,
    key_valid: &Tensor<Cpu>,
    out: &Tensor<Cpu>,
    lse: &Tensor<Cpu>,
    dout: &Tensor<Cpu>,
    scale: f32,
) -> Result<AttentionGrads<Cpu>> {
    let dims = check_backward(q, k, v, key_valid, out, lse, dout, scale)?;
    let key_valid = key_mask(key_valid, &dims)?;
    let (qd, kd, vd) = (f32_data(q), f32_data(k), f32_data(v));
    let (out_data, dout_data, lse_data) = (f32_data(out), f32_data(dout), f32_data(lse));
    let inputs = Inputs { dims, q: &qd, k: &kd, v: &vd, key_valid, scale };
    let (tq, tk, hs, group) = (dims.q_len, dims.kv_len, dims.head_size, dims.group_size());
    let q_shape = (tq, dims.heads, hs);

    // Head-major gradients: one task per (batch, key/value head) owns the dq of its group's query
    // heads (contiguous in this layout) and its dk, dv, which it accumulates in a fixed order.
    let mut dq = vec![0f32; qd.len()];
    let mut dk = vec![0f32; kd.len()];
    let mut dv = vec![0f32; vd.len()];
    dq.par_chunks_mut((group * tq * hs).max(1))
        .zip(dk.par_chunks_mut((tk * hs).max(1)))
        .zip(dv.par_chunks_mut((tk * hs).max(1)))
        .enumerate()
        .for_each(|(bg, ((dq_group, dk_head), dv_head))| {
            let (b, kv_head) = (bg / dims.kv_heads, bg % dims.kv_heads);
            // Touch the accumulators with writes first: `vec!` memory is mapped to the shared
            // zero page until written, and a first write after the accumulating GEMM has read it
            // is a copy-on-write fault with a TLB shootdown on every thread (measured: a third of
            // the backward's time).
            dk_head.fill(0.0);
            dv_head.fill(0.0);
            let mut scratch = BackwardScratch::default();
            for (g, dq_head) in dq_group.chunks_mut(tq * hs).enumerate() {
                let h = kv_head * group + g;
                let head = inputs.head(b, h);
                let saved = HeadSaved {
                    out: Inputs::head_rows(&out_data, b, h, q_shape, tq),
                    dout: Inputs::head_rows(&dout_data, b, h, q_shape, tq),
                    lse: &lse_data[(b * dims.heads + h) * tq..][..tq],
                };
                for rows in query_blocks(tq) {
                    let dq_block = &mut dq_head[rows.0 * hs..rows.1 * hs];
                    let dkv = (&mut *dk_head, &mut *dv_head);
                    backward_block(&head, &saved, rows, dq_block, dkv, &mut scratch);
                }
            }
        });
    Ok(AttentionGrads {
        dq: from_f32(q.dims(), heads_to_tokens(&dq, dims.batch, tq, dims.heads, hs), q.dtype()),
        dk: from_f32(k.dims(), heads_to_tokens(&dk, dims.batch, tk, dims.kv_heads, hs), k.dtype()),
        dv: from_f32(v.dims(), heads_to_tokens(&dv, dims.batch, tk, dims.kv_heads, hs), v.dtype()),
    })
}
