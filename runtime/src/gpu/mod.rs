//! The GPU side shared by the backends that run the CUDA kernels of `kernels/` (Emu now, Cuda
//! later), so that launch geometry and argument packing are written once per op.
//!
//! Three layers:
//! - [`GpuDevice`]: what a device offers — untyped memory (allocate, free, copy bytes in and
//!   out, zero) and launching an entry point of [`kernels::SOURCES`] with a grid, a block, dynamic
//!   shared memory and packed arguments. The emulator implements it
//!   ([`crate::EmuDevice`]); a cudarc device will.
//! - [`GpuBuffer`]: one allocation of a device, freed when dropped; the `Buffer` of a GPU backend.
//! - `GpuBackend` (crate-internal): a [`Backend`] whose buffers are [`GpuBuffer`]s. Each op's
//!   launcher, `ops::<op>::*_gpu`, is generic over it: it runs the op's shared checks, allocates
//!   outputs with `alloc`, and calls `launch` with the kernel stem, the dtype, a [`Launch`] and
//!   its `Arg`s. `launch` checks the arguments against the parameter list in `kernels` (count,
//!   order, pointer element types, read-only vs written) before the device sees them, so a
//!   launcher that disagrees with its kernel fails loudly instead of corrupting memory.
//!
//! Host transfers for every GPU backend are in `transfer`; the `Backend` impl both GPU backends
//! share (one dispatch list) is in `dispatch`.

mod dispatch;
pub(crate) mod transfer;

use std::sync::Arc;

use kernels::{Elem, Entry, ParamKind};

use crate::ops::gemm::{GemmGrads, GemmSpec};
use crate::{Backend, DType, Error, Result, Shape, Tensor};

/// A device that holds memory and runs the project's kernels. Addresses are plain `u64` device
/// addresses (what a kernel's pointer parameters receive).
pub trait GpuDevice: Send + Sync + 'static {
    /// The backend's name in errors (`"emu"`, `"cuda"`).
    fn backend_name(&self) -> &'static str;
    /// Allocates `bytes` bytes (contents unspecified) and returns their address.
    fn alloc(&self, bytes: usize) -> Result<u64>;
    /// Frees an allocation made by [`GpuDevice::alloc`]. Called once per allocation, from
    /// [`GpuBuffer`]'s `drop`, so it cannot report failure.
    fn free(&self, addr: u64);
    fn upload(&self, addr: u64, bytes: &[u8]) -> Result<()>;
    fn download(&self, addr: u64, len: usize) -> Result<Vec<u8>>;
    fn zero(&self, addr: u64, len: usize) -> Result<()>;
    /// The most dynamic shared memory one block of a launch may ask for.
    fn max_dynamic_shared_bytes(&self) -> u32;
    /// Runs `entry` (compiling and loading its module on first use) with arguments already
    /// checked against `entry.params` and a non-empty grid.
    fn launch(&self, entry: &'static Entry, launch: &Launch, args: &[ArgValue]) -> Result<()>;
}

/// One allocation on device `D`, freed when dropped.
pub struct GpuBuffer<D: GpuDevice> {
    device: Arc<D>,
    addr: u64,
}

impl<D: GpuDevice> Drop for GpuBuffer<D> {
    fn drop(&mut self) {
        self.device.free(self.addr);
    }
}

/// A backend whose tensors live on a [`GpuDevice`]. Its `Backend` impl comes from `dispatch`;
/// GEMM, where the backends differ (a library on a real GPU), is chosen here.
pub(crate) trait GpuBackend: Backend<Buffer = GpuBuffer<Self::Device>> {
    type Device: GpuDevice;
    fn device(&self) -> &Arc<Self::Device>;
    /// [`Backend::gemm`] on this backend.
    fn gemm_fwd(
        &self,
        a: &Tensor<Self>,
        b: &Tensor<Self>,
        bias: Option<&Tensor<Self>>,
        spec: GemmSpec,
    ) -> Result<Tensor<Self>>;
    /// [`Backend::gemm_bwd`] on this backend.
    fn gemm_bwd(
        &self,
        a: &Tensor<Self>,
        b: &Tensor<Self>,
        dc: &Tensor<Self>,
        with_bias: bool,
        spec: GemmSpec,
    ) -> Result<GemmGrads<Self>>;
}

/// Grid and block dimensions and dynamic shared memory of one launch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Launch {
    pub grid: [u32; 3],
    pub block: [u32; 3],
    pub shared_bytes: u32,
}

impl Launch {
    /// A 1-D launch of `blocks` blocks of `threads` threads, no dynamic shared memory.
    pub fn linear(blocks: u32, threads: u32) -> Self {
        Launch {
            grid: [blocks, 1, 1],
            block: [threads, 1, 1],
            shared_bytes: 0,
        }
    }

    /// The same launch with `bytes` of dynamic shared memory per block.
    pub fn with_shared(self, bytes: u32) -> Self {
        Launch {
            shared_bytes: bytes,
            ..self
        }
    }
}

/// Threads per block of the elementwise kernels (any size works; 256 is the usual choice).
const ELEMENTWISE_THREADS: u32 = 256;

/// The launch of an elementwise kernel over `n` elements: one thread per 16-byte pack
/// (`16 / sizeof(T)` elements), as `common.cuh`'s `map_elements` expects.
pub(crate) fn elementwise_launch(n: u32, dtype: DType) -> Launch {
    let per_thread = 16 / dtype.size_in_bytes() as u32;
    Launch::linear(
        n.div_ceil(ELEMENTWISE_THREADS * per_thread),
        ELEMENTWISE_THREADS,
    )
}

/// One kernel argument as an op's launcher names it.
pub(crate) enum Arg<'a, G: GpuBackend> {
    /// A tensor the kernel only reads (`const T*`).
    In(&'a Tensor<G>),
    /// A tensor the kernel writes (`T*`).
    Out(&'a Tensor<G>),
    U32(u32),
    F32(f32),
}

/// One packed kernel argument, as the device receives it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ArgValue {
    Ptr(u64),
    U32(u32),
    F32(f32),
}

/// The kernel element type that stores `dtype`.
pub(crate) fn elem(dtype: DType) -> Elem {
    match dtype {
        DType::F32 => Elem::F32,
        DType::BF16 => Elem::BF16,
        DType::U32 => Elem::U32,
    }
}

/// A size passed to a kernel as a 32-bit scalar; larger sizes are a shape error of `op`.
pub(crate) fn dim_u32(op: &'static str, name: &str, value: usize) -> Result<u32> {
    u32::try_from(value).map_err(|_| {
        Error::shape(
            op,
            format!("{name} = {value} exceeds the kernels' 32-bit sizes"),
        )
    })
}

/// A new tensor on `gpu` whose contents are unspecified until a kernel writes them.
pub(crate) fn alloc<G: GpuBackend>(gpu: &G, dims: &[usize], dtype: DType) -> Result<Tensor<G>> {
    let bytes = dims.iter().product::<usize>() * dtype.size_in_bytes();
    let device = gpu.device();
    let addr = device.alloc(bytes)?;
    let buffer = GpuBuffer {
        device: Arc::clone(device),
        addr,
    };
    Ok(Tensor::from_parts(Shape::new(dims), dtype, buffer))
}

/// The address of `t`'s buffer, after checking that it lives on `gpu`'s device (a tensor of
/// another instance of the same backend has an address that means nothing here).
pub(crate) fn addr_on<G: GpuBackend>(gpu: &G, t: &Tensor<G>) -> Result<u64> {
    if !Arc::ptr_eq(&t.buffer().device, gpu.device()) {
        return Err(backend_error(
            gpu,
            "a tensor of another device instance was passed".into(),
        ));
    }
    Ok(t.buffer().addr)
}

fn backend_error<G: GpuBackend>(gpu: &G, msg: String) -> Error {
    Error::Backend {
        backend: gpu.device().backend_name(),
        msg,
    }
}

/// Launches entry point `<stem>_<dtype>` (e.g. `layernorm_fwd` and bf16 give
/// `layernorm_fwd_bf16`). A launch whose grid is empty does nothing (there is no work, and CUDA
/// rejects empty grids). Arguments are checked against the kernel's parameter list first.
pub(crate) fn launch<G: GpuBackend>(
    gpu: &G,
    stem: &str,
    dtype: DType,
    launch: Launch,
    args: &[Arg<'_, G>],
) -> Result<()> {
    let name = format!("{stem}_{}", elem(dtype).suffix());
    let Some((_, entry)) = kernels::entry(&name) else {
        return Err(backend_error(
            gpu,
            format!("no kernel entry point `{name}`"),
        ));
    };
    let values = pack_args(gpu, entry, args)?;
    if launch.grid.contains(&0) {
        return Ok(());
    }
    let max_shared = gpu.device().max_dynamic_shared_bytes();
    if launch.shared_bytes > max_shared {
        return Err(Error::argument(
            entry.op,
            format!(
                "`{}` needs {} bytes of shared memory per block; the device allows {max_shared}",
                entry.name, launch.shared_bytes
            ),
        ));
    }
    gpu.device().launch(entry, &launch, &values)
}

/// Checks `args` against `entry.params` and packs them; a mismatch is a launcher bug, reported
/// with the parameter's name.
fn pack_args<G: GpuBackend>(gpu: &G, entry: &Entry, args: &[Arg<'_, G>]) -> Result<Vec<ArgValue>> {
    if args.len() != entry.params.len() {
        let msg = format!(
            "`{}` takes {} arguments, the launcher passed {}",
            entry.name,
            entry.params.len(),
            args.len()
        );
        return Err(backend_error(gpu, msg));
    }
    let mut values = Vec::with_capacity(args.len());
    for (param, arg) in entry.params.iter().zip(args) {
        let value = match (param.kind, arg) {
            (ParamKind::ConstPtr(want), Arg::In(t)) | (ParamKind::MutPtr(want), Arg::Out(t))
                if elem(t.dtype()) == want =>
            {
                ArgValue::Ptr(addr_on(gpu, t)?)
            }
            (ParamKind::U32, Arg::U32(v)) => ArgValue::U32(*v),
            (ParamKind::F32, Arg::F32(v)) => ArgValue::F32(*v),
            (kind, arg) => {
                let got = match arg {
                    Arg::In(t) => format!("a read-only {} tensor", t.dtype()),
                    Arg::Out(t) => format!("a written {} tensor", t.dtype()),
                    Arg::U32(_) => "a u32".into(),
                    Arg::F32(_) => "an f32".into(),
                };
                let msg = format!(
                    "`{}` parameter `{}` is {kind:?}, the launcher passed {got}",
                    entry.name, param.name
                );
                return Err(backend_error(gpu, msg));
            }
        };
        values.push(value);
    }
    Ok(values)
}
