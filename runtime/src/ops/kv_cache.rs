//! Writing new keys or values into a KV cache.
//!
//! `cache` is `[B, Tmax, NKV, HS]`; `new` is `[B, Tn, NKV, HS]` of the same dtype and is copied
//! into rows `start..start + Tn` of every batch entry, unconverted (bf16 stays bf16). Decoding
//! allocates the cache once for the longest sequence and appends each step's keys and values, so
//! nothing is re-copied as the sequence grows. On GPU backends `kv_cache_fwd_write` copies one
//! element per thread (`kernels/src/kv_cache.cu`).

use super::check;
use crate::gpu::{self, Arg, GpuBackend, Launch};
use crate::{Backend, Cpu, CpuBuffer, Error, Result, Tensor};

const OP: &str = "kv_cache_write";

/// Checks the arguments and returns `(B, Tmax, Tn, NKV·HS)`.
pub fn check<B: Backend>(cache: &Tensor<B>, new: &Tensor<B>, start: usize) -> Result<(usize, usize, usize, usize)> {
    check::same_float(OP, &[("cache", cache), ("new", new)])?;
    check::rank(OP, "cache", cache, 4)?;
    check::rank(OP, "new", new, 4)?;
    let (cd, nd) = (cache.dims(), new.dims());
    if cd[0] != nd[0] || cd[2] != nd[2] || cd[3] != nd[3] || start + nd[1] > cd[1] {
        return Err(Error::shape(
            OP,
            format!(
                "cannot write new {} [B, Tn, NKV, HS] at row {start} of cache {} [B, Tmax, NKV, HS]",
                new.shape(),
                cache.shape()
            ),
        ));
    }
    Ok((cd[0], cd[1], nd[1], cd[2] * cd[3]))
}

fn copy_rows<T: Copy>(cache: &mut [T], new: &[T], (batch, tmax, tn, row): (usize, usize, usize, usize), start: usize) {
    for b in 0..batch {
        let dst = &mut cache[(b * tmax + start) * row..][..tn * row];
        dst.copy_from_slice(&new[b * tn * row..][..tn * row]);
    }
}

pub(crate) fn write_cpu(cache: &mut Tensor<Cpu>, new: &Tensor<Cpu>, start: usize) -> Result<()> {
    let sizes = check(cache, new, start)?;
    match (cache.buffer_mut(), new.buffer()) {
        (CpuBuffer::F32(c), CpuBuffer::F32(n)) => copy_rows(c, n, sizes, start),
        (CpuBuffer::BF16(c), CpuBuffer::BF16(n)) => copy_rows(c, n, sizes, start),
        _ => unreachable!("check::same_float admits only matching f32 or bf16 buffers"),
    }
    Ok(())
}

/// Threads per block of `kv_cache_fwd_write` (one element each).
const WRITE_THREADS: u32 = 256;

pub(crate) fn write_gpu<G: GpuBackend>(gpu: &G, cache: &mut Tensor<G>, new: &Tensor<G>, start: usize) -> Result<()> {
    let (batch, tmax, tn, row) = check(cache, new, start)?;
    gpu::dim_u32(OP, "B·Tmax·NKV·HS", batch * tmax * row)?;
    let n = gpu::dim_u32(OP, "B·Tn·NKV·HS", batch * tn * row)?;
    let args = [
        Arg::Out(cache),
        Arg::In(new),
        Arg::U32(n),
        Arg::U32(gpu::dim_u32(OP, "Tn·NKV·HS", tn * row)?),
        Arg::U32(gpu::dim_u32(OP, "Tmax·NKV·HS", tmax * row)?),
        Arg::U32(gpu::dim_u32(OP, "start·NKV·HS", start * row)?),
    ];
    let launch = Launch::linear(n.div_ceil(WRITE_THREADS), WRITE_THREADS);
    gpu::launch(gpu, "kv_cache_fwd_write", new.dtype(), launch, &args)
}
