//! Launchers of the attention kernels (`kernels/src/attention.cu`, and the decode kernel of
//! `kernels/src/kv_cache.cu`), generic over [`GpuBackend`], and the I/O model of the flash
//! kernels that `rlhf kernels report` compares the emulator's counted bytes with.

use super::{
    check_backward, check_decode, check_forward, check_mask, AttentionDims, AttentionGrads,
    AttentionOut, OP,
};
use crate::gpu::{self, Arg, GpuBackend, Launch};
use crate::{DType, Error, Result, Tensor};

/// Largest head size the kernels handle (their register tiles are sized at compile time).
pub const MAX_HEAD_SIZE: usize = 128;
/// Queries per block of `attention_fwd` and `attention_bwd_dq` (4 threads per query; K and V
/// stream through shared memory 32 keys at a time).
pub const QUERY_TILE: usize = 64;
/// Keys per block of `attention_bwd` (dK, dV; 8 threads per key).
pub const BWD_KEY_TILE: usize = 32;
/// At most this many queries go to `kv_cache_fwd_decode` (one block per query); more use the
/// flash forward with the cache's row stride.
pub const DECODE_MAX_QUERIES: usize = 4;
const THREADS: u32 = 256;
const DECODE_THREADS: u32 = 128;

/// Global bytes the attention kernels move by the flash I/O model of `attention.cu`'s header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttentionIo {
    /// `attention_fwd`.
    pub forward: u64,
    /// `attention_bwd_prep` + `attention_bwd` + `attention_bwd_dq`.
    pub backward: u64,
}

/// The flash I/O model for unpadded inputs of `dims` stored as `dtype` (formula in
/// `kernels/src/attention.cu`): Q and O once; K, V and key_valid once per query tile and query
/// head, up to the tile's last visible key; in the backward, Q, dO, lse and D once per key tile
/// and query head from the first query that sees the tile, K, V, dK, dV once, and the dq pass
/// like the forward. Padding only lowers what the kernels read.
pub fn io_model_bytes(dims: &AttentionDims, dtype: DType) -> AttentionIo {
    let s = dtype.size_in_bytes() as u64;
    let [b, tq, tk, nh, nkv, hs] = [
        dims.batch,
        dims.q_len,
        dims.kv_len,
        dims.heads,
        dims.kv_heads,
        dims.head_size,
    ]
    .map(|x| x as u64);
    let shift = tk - tq;
    let (qt, kt) = (QUERY_TILE as u64, BWD_KEY_TILE as u64);
    // Keys visible to each forward/dq query tile: up to the tile's last query's position.
    let visible: u64 = (0..tq)
        .step_by(qt as usize)
        .map(|i0| shift + (i0 + qt).min(tq))
        .sum();
    let kv_stream = b * nh * visible * (2 * hs * s + 4);
    let rows = b * nh * tq;
    let forward = rows * (2 * hs * s + 4) + kv_stream;
    // Queries that see each dK/dV key tile's first key.
    let seen: u64 = (0..tk)
        .step_by(kt as usize)
        .map(|j0| tq - j0.saturating_sub(shift).min(tq))
        .sum();
    let prep = rows * (2 * hs * s + 4);
    let dkdv = b * nkv * tk * (4 * hs * s + 4) + b * nh * seen * (2 * hs * s + 8);
    let dq = rows * (3 * hs * s + 8) + kv_stream;
    AttentionIo {
        forward,
        backward: prep + dkdv + dq,
    }
}

/// The kernels' size arguments `Tq, Tk, cap, NH, NKV, HS`, after checking HS and 32-bit sizes.
fn shape_args(d: &AttentionDims) -> Result<[u32; 6]> {
    if d.head_size > MAX_HEAD_SIZE {
        return Err(Error::shape(
            OP,
            format!(
                "head size HS={} exceeds the kernels' maximum of {MAX_HEAD_SIZE}",
                d.head_size
            ),
        ));
    }
    // Heads and batch entries index the grid's y and z, which CUDA caps at 65535.
    if d.heads > 65535 || d.batch > 65535 {
        return Err(Error::shape(
            OP,
            format!(
                "B={} and NH={} must be at most 65535 (grid y and z)",
                d.batch, d.heads
            ),
        ));
    }
    gpu::dim_u32(
        OP,
        "B·cap·NKV·HS",
        d.batch * d.kv_capacity * d.kv_heads * d.head_size,
    )?;
    gpu::dim_u32(OP, "B·Tq·NH·HS", d.batch * d.q_len * d.heads * d.head_size)?;
    let u = |name, v| gpu::dim_u32(OP, name, v);
    Ok([
        u("Tq", d.q_len)?,
        u("Tk", d.kv_len)?,
        u("cap", d.kv_capacity)?,
        u("NH", d.heads)?,
        u("NKV", d.kv_heads)?,
        u("HS", d.head_size)?,
    ])
}

/// Appends the size arguments and the softmax scale, the tail of every attention kernel's list.
fn push_shape<G: GpuBackend>(args: &mut Vec<Arg<'_, G>>, shape: [u32; 6], scale: f32) {
    args.extend(shape.map(Arg::U32));
    args.push(Arg::F32(scale));
}

/// A launch of `threads`-thread blocks over `(tiles, heads, B)`.
fn grid(tiles: usize, heads: usize, batch: usize, threads: u32) -> Launch {
    let dim = |x: usize| u32::try_from(x).unwrap_or(u32::MAX);
    Launch {
        grid: [dim(tiles), dim(heads), dim(batch)],
        block: [threads, 1, 1],
        shared_bytes: 0,
    }
}

/// Checks the key mask's values (the kernels read any nonzero as a token), with the Cpu's
/// message; the device is read only when the host did not write the mask.
fn check_mask_gpu<G: GpuBackend>(
    gpu: &G,
    key_valid: &Tensor<G>,
    dims: &AttentionDims,
) -> Result<()> {
    gpu::transfer::check_u32_values(gpu, key_valid, 2, |v| check_mask(v, dims))
}

pub(crate) fn forward_gpu<G: GpuBackend>(
    gpu: &G,
    q: &Tensor<G>,
    k: &Tensor<G>,
    v: &Tensor<G>,
    key_valid: &Tensor<G>,
    scale: f32,
) -> Result<AttentionOut<G>> {
    let dims = check_forward(q, k, v, key_valid, scale)?;
    check_mask_gpu(gpu, key_valid, &dims)?;
    flash_forward(gpu, &dims, [q, k, v, key_valid], scale)
}

/// `attention_fwd` for validated `dims` (keys `0..kv_len` of rows `kv_capacity` apart).
fn flash_forward<G: GpuBackend>(
    gpu: &G,
    dims: &AttentionDims,
    inputs: [&Tensor<G>; 4],
    scale: f32,
) -> Result<AttentionOut<G>> {
    let launch = grid(dims.q_len.div_ceil(QUERY_TILE), dims.heads, dims.batch, THREADS);
    launch_forward(gpu, "attention_fwd", dims, inputs, scale, launch)
}

/// Allocates `out` and `lse` and launches `stem`, a kernel with the forward's signature
/// (`q, k, v, key_valid, out, lse`, the shape arguments, the scale).
fn launch_forward<G: GpuBackend>(
    gpu: &G,
    stem: &str,
    dims: &AttentionDims,
    [q, k, v, key_valid]: [&Tensor<G>; 4],
    scale: f32,
    launch: Launch,
) -> Result<AttentionOut<G>> {
    let shape = shape_args(dims)?;
    let out = gpu::alloc(gpu, q.dims(), q.dtype())?;
    let lse = gpu::alloc(gpu, &dims.lse_dims(), DType::F32)?;
    let mut args = vec![
        Arg::In(q),
        Arg::In(k),
        Arg::In(v),
        Arg::In(key_valid),
        Arg::Out(&out),
        Arg::Out(&lse),
    ];
    push_shape(&mut args, shape, scale);
    gpu::launch(gpu, stem, q.dtype(), launch, &args)?;
    Ok(AttentionOut { out, lse })
}

/// Up to [`DECODE_MAX_QUERIES`] queries: `kv_cache_fwd_decode`, one 4-warp block per query
/// splitting the cache over its warps; more: the flash forward over the cache rows.
pub(crate) fn decode_gpu<G: GpuBackend>(
    gpu: &G,
    q: &Tensor<G>,
    k_cache: &Tensor<G>,
    v_cache: &Tensor<G>,
    key_valid: &Tensor<G>,
    kv_len: usize,
    scale: f32,
) -> Result<AttentionOut<G>> {
    let dims = check_decode(q, k_cache, v_cache, key_valid, kv_len, scale)?;
    check_mask_gpu(gpu, key_valid, &dims)?;
    let inputs = [q, k_cache, v_cache, key_valid];
    if dims.q_len > DECODE_MAX_QUERIES {
        return flash_forward(gpu, &dims, inputs, scale);
    }
    let group = dims.heads / dims.kv_heads;
    let blocks = group * dims.kv_heads.div_ceil(decode_kv_heads(&dims));
    let launch = grid(dims.q_len, blocks, dims.batch, DECODE_THREADS);
    launch_forward(gpu, "kv_cache_fwd_decode", &dims, inputs, scale, launch)
}

/// KV heads per `kv_cache_fwd_decode` block: the kernel gives each head HS lanes rounded up to a
/// power of two (its `decode_width`) and puts as many heads side by side as a warp holds, so that
/// heads of fewer than 32 bytes share their 32-byte sectors with their neighbours.
fn decode_kv_heads(dims: &AttentionDims) -> usize {
    let width = dims.head_size.next_power_of_two().min(32);
    dims.kv_heads.min(32 / width)
}

/// Three launches: `attention_bwd_prep` (D = dO·O per query), `attention_bwd` (dK, dV per key
/// tile, summing the group's heads and query tiles in a fixed order) and `attention_bwd_dq` (dQ
/// per query tile, a second pass over K and V). No atomics: the gradients are the same bit for
/// bit on every call.
#[allow(clippy::too_many_arguments)]
pub(crate) fn backward_gpu<G: GpuBackend>(
    gpu: &G,
    q: &Tensor<G>,
    k: &Tensor<G>,
    v: &Tensor<G>,
    key_valid: &Tensor<G>,
    out: &Tensor<G>,
    lse: &Tensor<G>,
    dout: &Tensor<G>,
    scale: f32,
) -> Result<AttentionGrads<G>> {
    let dims = check_backward(q, k, v, key_valid, out, lse, dout, scale)?;
    check_mask_gpu(gpu, key_valid, &dims)?;
    let shape = shape_args(&dims)?;
    let dtype = q.dtype();
    let d = gpu::alloc(gpu, &dims.lse_dims(), DType::F32)?;
    let rows = dims.batch * dims.q_len * dims.heads;
    let [tq, _, _, nh, _, hs] = shape;
    let n = gpu::dim_u32(OP, "B·Tq·NH", rows)?;
    let args = [
        Arg::In(out),
        Arg::In(dout),
        Arg::Out(&d),
        Arg::U32(n),
        Arg::U32(tq),
        Arg::U32(nh),
        Arg::U32(hs),
    ];
    // A block per 32 consecutive queries of one (b, h).
    let query_tiles = dims.batch * dims.heads * dims.q_len.div_ceil(32);
    let prep = Launch::linear(u32::try_from(query_tiles).unwrap_or(u32::MAX), THREADS);
    gpu::launch(gpu, "attention_bwd_prep", dtype, prep, &args)?;

    let dk = gpu::alloc(gpu, k.dims(), dtype)?;
    let dv = gpu::alloc(gpu, v.dims(), dtype)?;
    let mut args = vec![
        Arg::In(q),
        Arg::In(k),
        Arg::In(v),
        Arg::In(key_valid),
        Arg::In(lse),
        Arg::In(&d),
        Arg::In(dout),
    ];
    args.extend([Arg::Out(&dk), Arg::Out(&dv)]);
    push_shape(&mut args, shape, scale);
    let launch = grid(
        dims.kv_len.div_ceil(BWD_KEY_TILE),
        dims.kv_heads,
        dims.batch,
        THREADS,
    );
    gpu::launch(gpu, "attention_bwd", dtype, launch, &args)?;

    let dq = gpu::alloc(gpu, q.dims(), dtype)?;
    let mut args = vec![
        Arg::In(q),
        Arg::In(k),
        Arg::In(v),
        Arg::In(key_valid),
        Arg::In(lse),
        Arg::In(&d),
        Arg::In(dout),
    ];
    args.push(Arg::Out(&dq));
    push_shape(&mut args, shape, scale);
    let launch = grid(
        dims.q_len.div_ceil(QUERY_TILE),
        dims.heads,
        dims.batch,
        THREADS,
    );
    gpu::launch(gpu, "attention_bwd_dq", dtype, launch, &args)?;
    Ok(AttentionGrads { dq, dk, dv })
}
