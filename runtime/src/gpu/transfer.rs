//! Host transfers of the GPU backends: plain byte copies, with f32 ↔ bf16 conversion on the host
//! (round to nearest even, as the Cpu backend rounds).

use half::bf16;

use super::{addr_on, alloc, GpuBackend, GpuDevice};
use crate::ops::check;
use crate::{DType, Result, Tensor};

pub(crate) fn upload_f32<G: GpuBackend>(
    gpu: &G,
    dims: &[usize],
    data: &[f32],
    dtype: DType,
) -> Result<Tensor<G>> {
    check::element_count("upload_f32", dims, data.len())?;
    check::float_dtype("upload_f32", "dtype", dtype)?;
    let bytes: Vec<u8> = match dtype {
        DType::BF16 => data
            .iter()
            .flat_map(|&x| bf16::from_f32(x).to_le_bytes())
            .collect(),
        _ => data.iter().flat_map(|x| x.to_le_bytes()).collect(),
    };
    upload_bytes(gpu, dims, dtype, &bytes)
}

pub(crate) fn upload_u32<G: GpuBackend>(
    gpu: &G,
    dims: &[usize],
    data: &[u32],
) -> Result<Tensor<G>> {
    check::element_count("upload_u32", dims, data.len())?;
    let bytes: Vec<u8> = data.iter().flat_map(|x| x.to_le_bytes()).collect();
    Ok(upload_bytes(gpu, dims, DType::U32, &bytes)?.with_known_max(data))
}

fn upload_bytes<G: GpuBackend>(
    gpu: &G,
    dims: &[usize],
    dtype: DType,
    bytes: &[u8],
) -> Result<Tensor<G>> {
    let t = alloc(gpu, dims, dtype)?;
    gpu.device().upload(addr_on(gpu, &t)?, bytes)?;
    Ok(t)
}

fn download_bytes<G: GpuBackend>(gpu: &G, t: &Tensor<G>) -> Result<Vec<u8>> {
    gpu.device().download(addr_on(gpu, t)?, t.size_in_bytes())
}

pub(crate) fn download_f32<G: GpuBackend>(gpu: &G, t: &Tensor<G>) -> Result<Vec<f32>> {
    check::float("download_f32", "t", t)?;
    let bytes = download_bytes(gpu, t)?;
    Ok(match t.dtype() {
        DType::BF16 => bytes
            .chunks_exact(2)
            .map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        _ => bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
    })
}

/// Runs `check` on the values of the u32 tensor `t`, unless its known largest value is below
/// `bound`, in which case every value is, and the device is not read (see `Tensor::known_max`).
/// `check` gives the precise message for a bad value (or accepts values at or above `bound` that
/// are allowed, such as an ignore index).
pub(crate) fn check_u32_values<G: GpuBackend>(
    gpu: &G,
    t: &Tensor<G>,
    bound: usize,
    check: impl FnOnce(&[u32]) -> Result<()>,
) -> Result<()> {
    match t.known_max() {
        Some(max) if (max as usize) < bound => Ok(()),
        _ => check(&download_u32(gpu, t)?),
    }
}

pub(crate) fn download_u32<G: GpuBackend>(gpu: &G, t: &Tensor<G>) -> Result<Vec<u32>> {
    check::dtype("download_u32", "t", t, DType::U32)?;
    let bytes = download_bytes(gpu, t)?;
    Ok(bytes
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

pub(crate) fn zeros<G: GpuBackend>(gpu: &G, dims: &[usize], dtype: DType) -> Result<Tensor<G>> {
    let t = alloc(gpu, dims, dtype)?;
    gpu.device().zero(addr_on(gpu, &t)?, t.size_in_bytes())?;
    Ok(if dtype == DType::U32 { t.with_known_max(&[0]) } else { t })
}

/// Converts on the host: a cast is rare (loading weights, mixed-precision copies) and the
/// round trip keeps the rounding identical to the Cpu backend's.
pub(crate) fn cast<G: GpuBackend>(gpu: &G, t: &Tensor<G>, dtype: DType) -> Result<Tensor<G>> {
    check::float("cast", "t", t)?;
    check::float_dtype("cast", "dtype", dtype)?;
    upload_f32(gpu, t.dims(), &download_f32(gpu, t)?, dtype)
}
