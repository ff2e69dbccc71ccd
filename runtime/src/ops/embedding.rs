//! Embedding: a row gather and its scatter-add.
//!
//! Forward: `y[i, :] = table[ids[i], :]` for ids `[..]` u32 (any shape, flattened index `i`) and
//! a float table `[V, C]`; `y` is `[.., C]` in the table's dtype. This is the token embedding, the
//! learned position embedding (ids = positions) and the read of hidden states at chosen rows. An
//! id `>= V` is an error naming the flat index and the value.
//!
//! Backward: `dtable[v, :] = Σ_{i : ids[i] = v} dy[i, :]` for `dy` `[.., C]`, giving `[V, C]` in
//! `dy`'s dtype with `V = vocab`: rows no id refers to are zero, repeated ids accumulate.
//!
//! The Cpu backward groups positions by id (a counting sort) and sums each table row's positions
//! in increasing order on one thread, so the result does not depend on the thread count.

use rayon::prelude::*;

use super::check;
use crate::cpu::{f32_data, from_f32, u32_data};
use crate::gpu::{self, Arg, GpuBackend, Launch};
use crate::{Backend, Cpu, CpuBuffer, DType, Error, Result, Shape, Tensor};

const OP_FWD: &str = "embedding_fwd";
const OP_BWD: &str = "embedding_bwd";

/// Threads per block of the GPU kernels: the forward's threads stride over one row's channels,
/// the backward's cover 128 consecutive channels of one vocabulary row, the ranking's take one
/// position each.
const GPU_THREADS: u32 = 128;

/// Checks the forward arguments: `ids` u32 of any shape, `table` a float `[V, C]`. Returns the
/// dims of the result, `ids.dims() ++ [C]`. The ids' values are checked by [`check_ids`].
pub fn check_forward<B: Backend>(ids: &Tensor<B>, table: &Tensor<B>) -> Result<Vec<usize>> {
    check::dtype(OP_FWD, "ids", ids, DType::U32)?;
    check::float(OP_FWD, "table", table)?;
    check::rank(OP_FWD, "table", table, 2)?;
    let mut out = ids.dims().to_vec();
    out.push(table.dims()[1]);
    Ok(out)
}

/// Checks the backward arguments: `ids` u32 `[..]`, `dy` float `[.., C]` with the ids' dims in
/// front, and a `vocab` whose `[vocab, C]` table fits in memory. Returns `C`.
pub fn check_backward<B: Backend>(ids: &Tensor<B>, dy: &Tensor<B>, vocab: usize) -> Result<usize> {
    check::dtype(OP_BWD, "ids", ids, DType::U32)?;
    check::float(OP_BWD, "dy", dy)?;
    let (id_dims, dy_dims) = (ids.dims(), dy.dims());
    if dy_dims.len() != id_dims.len() + 1 || &dy_dims[..id_dims.len()] != id_dims {
        return Err(Error::shape(
            OP_BWD,
            format!(
                "`dy` has shape {}, expected `ids` shape {} followed by C",
                dy.shape(),
                ids.shape()
            ),
        ));
    }
    let channels = dy.shape().last();
    if vocab.checked_mul(channels).is_none() {
        return Err(Error::argument(
            OP_BWD,
            format!("a table of {vocab} x {channels} is too large"),
        ));
    }
    Ok(channels)
}

/// Every id is below `vocab`; otherwise an error naming the first offending flat index and value.
pub fn check_ids(op: &'static str, ids: &[u32], vocab: usize) -> Result<()> {
    match ids.iter().position(|&id| id as usize >= vocab) {
        Some(i) => Err(Error::argument(
            op,
            format!("`ids[{i}]` = {} is out of range for a table of {vocab} rows", ids[i]),
        )),
        None => Ok(()),
    }
}

/// Copies `table[ids[i]]` (rows of `channels` elements) into row `i` of the result.
fn gather<T: Copy + Default + Send + Sync>(ids: &[u32], table: &[T], channels: usize) -> Vec<T> {
    let mut out = vec![T::default(); ids.len() * channels];
    if channels > 0 {
        out.par_chunks_mut(channels).zip(ids.par_iter()).with_min_len(64).for_each(|(row, &id)| {
            let start = id as usize * channels;
            row.copy_from_slice(&table[start..start + channels]);
        });
    }
    out
}

pub(crate) fn forward_cpu(ids: &Tensor<Cpu>, table: &Tensor<Cpu>) -> Result<Tensor<Cpu>> {
    let out_dims = check_forward(ids, table)?;
    let (vocab, channels) = (table.dims()[0], table.dims()[1]);
    let ids = u32_data(ids);
    check_ids(OP_FWD, ids, vocab)?;
    // Gather in the stored dtype: a bf16 table needs no round trip through f32.
    let buffer = match table.buffer() {
        CpuBuffer::F32(t) => CpuBuffer::F32(gather(ids, t, channels)),
        CpuBuffer::BF16(t) => CpuBuffer::BF16(gather(ids, t, channels)),
        CpuBuffer::U32(t) => CpuBuffer::U32(gather(ids, t, channels)),
    };
    Ok(Tensor::from_parts(Shape::new(&out_dims), table.dtype(), buffer))
}

pub(crate) fn backward_cpu(
    ids: &Tensor<Cpu>,
    dy: &Tensor<Cpu>,
    vocab: usize,
) -> Result<Tensor<Cpu>> {
    let channels = check_backward(ids, dy, vocab)?;
    let ids = u32_data(ids);
    check_ids(OP_BWD, ids, vocab)?;
    let mut dtable = vec![0f32; vocab * channels];
    if channels > 0 {
        let dyd = f32_data(dy);
        // Counting sort of the positions by id: positions of id v are
        // `order[starts[v]..starts[v + 1]]`, in increasing order.
        let mut starts = vec![0usize; vocab + 1];
        for &id in ids {
            starts[id as usize + 1] += 1;
        }
        for v in 0..vocab {
            starts[v + 1] += starts[v];
        }
        let mut next = starts.clone();
        let mut order = vec![0usize; ids.len()];
        for (i, &id) in ids.iter().enumerate() {
            order[next[id as usize]] = i;
            next[id as usize] += 1;
        }
        dtable.par_chunks_mut(channels).enumerate().with_min_len(64).for_each(|(v, row)| {
            for &i in &order[starts[v]..starts[v + 1]] {
                let dy_row = &dyd[i * channels..(i + 1) * channels];
                row.iter_mut().zip(dy_row).for_each(|(d, &g)| *d += g);
            }
        });
    }
    Ok(from_f32(&[vocab, channels], dtable, dy.dtype()))
}

/// The kernel writes NaN rows for ids out of range rather than reporting them, so the ids are
/// checked on the host first (one download of `N` u32), giving the Cpu backend's error.
pub(crate) fn forward_gpu<G: GpuBackend>(
    gpu: &G,
    ids: &Tensor<G>,
    table: &Tensor<G>,
) -> Result<Tensor<G>> {
    let out_dims = check_forward(ids, table)?;
    let (vocab, channels) = (table.dims()[0], table.dims()[1]);
    gpu::transfer::check_u32_values(gpu, ids, vocab, |v| check_ids(OP_FWD, v, vocab))?;
    let n = gpu::dim_u32(OP_FWD, "N", ids.numel())?;
    let (v, c) = (gpu::dim_u32(OP_FWD, "V", vocab)?, gpu::dim_u32(OP_FWD, "C", channels)?);
    let out = gpu::alloc(gpu, &out_dims, table.dtype())?;
    let args =
        [Arg::In(ids), Arg::In(table), Arg::Out(&out), Arg::U32(n), Arg::U32(v), Arg::U32(c)];
    gpu::launch(gpu, OP_FWD, table.dtype(), Launch::linear(n, GPU_THREADS), &args)?;
    Ok(out)
}

/// Two launches: `embedding_bwd_rank_u32` sorts the positions by id (stable), then
/// `embedding_bwd` has one thread per `(v, c)` gather its rows in increasing position. Ids are
/// checked on the host first, as in the forward.
pub(crate) fn backward_gpu<G: GpuBackend>(
    gpu: &G,
    ids: &Tensor<G>,
    dy: &Tensor<G>,
    vocab: usize,
) -> Result<Tensor<G>> {
    let channels = check_backward(ids, dy, vocab)?;
    gpu::transfer::check_u32_values(gpu, ids, vocab, |v| check_ids(OP_BWD, v, vocab))?;
    let positions = ids.numel();
    let n = gpu::dim_u32(OP_BWD, "N", positions)?;
    let (v, c) = (gpu::dim_u32(OP_BWD, "V", vocab)?, gpu::dim_u32(OP_BWD, "C", channels)?);
    let order = gpu::alloc(gpu, &[positions], DType::U32)?;
    let sorted_ids = gpu::alloc(gpu, &[positions], DType::U32)?;
    let args = [Arg::In(ids), Arg::Out(&order), Arg::Out(&sorted_ids), Arg::U32(n)];
    let rank = Launch::linear(n.div_ceil(GPU_THREADS), GPU_THREADS);
    gpu::launch(gpu, "embedding_bwd_rank", DType::U32, rank, &args)?;
    let dtable = gpu::alloc(gpu, &[vocab, channels], dy.dtype())?;
    let args = [
        Arg::In(&order),
        Arg::In(&sorted_ids),
        Arg::In(dy),
        Arg::Out(&dtable),
        Arg::U32(n),
        Arg::U32(v),
        Arg::U32(c),
    ];
    // One thread per aligned 16-byte pack of a dtable row: a misaligned row spans one more pack
    // than its C / L of L = 16 / S elements.
    let packs = c.div_ceil(16 / dy.dtype().size_in_bytes() as u32) + 1;
    let gather = Launch {
        grid: [v, packs.div_ceil(GPU_THREADS), 1],
        block: [GPU_THREADS, 1, 1],
        shared_bytes: 0,
    };
    gpu::launch(gpu, OP_BWD, dy.dtype(), gather, &args)?;
    Ok(dtable)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::tests::in_pool;

    #[test]
    fn backward_does_not_depend_on_thread_count() {
        let (vocab, channels, n) = (5, 3, 4000);
        let ids: Vec<u32> = (0..n).map(|i| (i * i % 7 % vocab) as u32).collect();
        // Gradients spanning many magnitudes, so any change of summation order changes the bits.
        let dy: Vec<f32> = (0..n * channels)
            .map(|i| ((i * 7919) % 1013) as f32 * 10f32.powi((i % 13) as i32 - 6) - 3.0)
            .collect();
        let cpu = Cpu;
        let run = |threads| {
            in_pool(threads, || {
                let ids = cpu.upload_u32(&[n], &ids)?;
                let dy = cpu.upload_f32(&[n, channels], &dy, DType::F32)?;
                let dtable = cpu.download_f32(&cpu.embedding_bwd(&ids, &dy, vocab)?)?;
                Ok::<_, Error>(dtable.iter().map(|v| v.to_bits()).collect::<Vec<_>>())
            })
            .expect("embedding_bwd")
        };
        let one = run(1);
        for threads in [2, 3, 8] {
            assert!(run(threads) == one, "{threads} threads give another dtable than 1 thread");
        }
    }
}
