//! [`CudaDevice`]: a CUDA context and stream behind the [`GpuDevice`] interface, on cudarc's
//! driver API, with the kernel modules loaded once per op and the functions once per entry point.
//!
//! Ordering: everything runs on the context's legacy default stream. Launches and stream-ordered
//! allocations (`cuMemAllocAsync` / `cuMemFreeAsync`, where the device has memory pools) are
//! queued on it; uploads and downloads are synchronous copies, which the legacy stream orders
//! after all queued work — so a download sees every kernel launched before it, and a kernel
//! failure surfaces at the next download (or the next call, through cudarc's recorded error).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use cudarc::driver::sys::{CUdevice_attribute, CUfunction_attribute, CUmemPool_attribute};
use cudarc::driver::{
    result, CudaContext, CudaFunction, CudaModule, CudaStream, DriverError, LaunchConfig,
    PushKernelArg,
};
use kernels::Entry;

use super::kernels::KernelLoader;
use crate::compile::Arch;
use crate::gpu::{ArgValue, GpuDevice, Launch};
use crate::{Error, Result};

/// The shared memory a block may use without opting in (the CUDA default for every arch).
pub(crate) const DEFAULT_SHARED_BYTES: u32 = 48 * 1024;

/// The launch limits of a device, read once from its attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    pub threads_per_block: u32,
    pub block: [u32; 3],
    pub grid: [u32; 3],
    /// Dynamic shared memory one block may opt in to.
    pub shared_bytes: u32,
}

/// The driver's launch configuration for `launch`, after checking it against `limits`: the
/// driver would reject a bad one too, but with a bare `CUDA_ERROR_INVALID_VALUE`, while this names
/// the kernel and the dimension.
pub(crate) fn launch_config(entry: &str, launch: &Launch, limits: &Limits) -> Result<LaunchConfig> {
    let bad = |msg: String| {
        Err(Error::Backend {
            backend: "cuda",
            msg: format!("launch of `{entry}`: {msg}"),
        })
    };
    let threads: u64 = launch.block.iter().map(|&b| u64::from(b)).product();
    if threads == 0 || threads > u64::from(limits.threads_per_block) {
        return bad(format!(
            "block {:?} has {threads} threads; the device allows 1 to {}",
            launch.block, limits.threads_per_block
        ));
    }
    for (axis, ((&g, &b), (&gmax, &bmax))) in launch
        .grid
        .iter()
        .zip(&launch.block)
        .zip(limits.grid.iter().zip(&limits.block))
        .enumerate()
    {
        if g == 0 || g > gmax {
            return bad(format!("grid dim {axis} is {g}; the device allows 1 to {gmax}"));
        }
        if b > bmax {
            return bad(format!("block dim {axis} is {b}; the device allows up to {bmax}"));
        }
    }
    if launch.shared_bytes > limits.shared_bytes {
        return bad(format!(
            "{} bytes of dynamic shared memory; the device allows {}",
            launch.shared_bytes, limits.shared_bytes
        ));
    }
    let [gx, gy, gz] = launch.grid;
    let [bx, by, bz] = launch.block;
    Ok(LaunchConfig {
        grid_dim: (gx, gy, gz),
        block_dim: (bx, by, bz),
        shared_mem_bytes: launch.shared_bytes,
    })
}

/// A loaded entry point and the dynamic shared memory it has been allowed so far.
struct Function {
    function: CudaFunction,
    shared_allowed: u32,
}

/// One CUDA device: its context and stream, the kernel loader, and the modules and functions
/// loaded so far.
pub struct CudaDevice {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    arch: Arch,
    name: String,
    limits: Limits,
    async_alloc: bool,
    loader: KernelLoader,
    modules: Mutex<HashMap<&'static str, Arc<CudaModule>>>,
    functions: Mutex<HashMap<&'static str, Function>>,
}

/// A poisoned lock only means another thread panicked mid-call; the maps stay consistent.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A driver error as the backend's error, saying what was being done.
pub(crate) fn driver_error(what: &str, e: DriverError) -> Error {
    Error::Backend {
        backend: "cuda",
        msg: format!("{what}: {e}"),
    }
}

impl CudaDevice {
    /// Reads the device's limits and wraps a context created by the caller (after the driver
    /// library was found to be present).
    pub(crate) fn new(ctx: Arc<CudaContext>, arch: Arch, loader: KernelLoader) -> Result<Self> {
        let attr = |a: CUdevice_attribute| -> Result<u32> {
            let v = ctx
                .attribute(a)
                .map_err(|e| driver_error("reading a device attribute", e))?;
            Ok(u32::try_from(v).unwrap_or(0))
        };
        use CUdevice_attribute::*;
        let limits = Limits {
            threads_per_block: attr(CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK)?,
            block: [
                attr(CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_X)?,
                attr(CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Y)?,
                attr(CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Z)?,
            ],
            grid: [
                attr(CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_X)?,
                attr(CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Y)?,
                attr(CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Z)?,
            ],
            shared_bytes: attr(CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN)?,
        };
        let name = ctx.name().map_err(|e| driver_error("reading the device name", e))?;
        let async_alloc = ctx.has_async_alloc();
        if async_alloc {
            keep_freed_memory_pooled(&ctx)?;
        }
        let stream = ctx.default_stream();
        Ok(CudaDevice {
            ctx,
            stream,
            arch,
            name,
            limits,
            async_alloc,
            loader,
            modules: Mutex::new(HashMap::new()),
            functions: Mutex::new(HashMap::new()),
        })
    }

    /// The device's name as the driver reports it, e.g. `NVIDIA H100 80GB HBM3`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The arch whose kernels this device loads.
    pub fn arch(&self) -> Arch {
        self.arch
    }

    pub(crate) fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// Makes the context current on the calling thread (every driver call needs it; cheap when
    /// it already is), and reports an error an earlier asynchronous call recorded.
    pub(crate) fn bind(&self) -> Result<()> {
        self.ctx
            .bind_to_thread()
            .map_err(|e| driver_error("binding the context", e))
    }

    /// Blocks until every queued kernel and copy has finished.
    pub fn synchronize(&self) -> Result<()> {
        self.bind()?;
        self.stream
            .synchronize()
            .map_err(|e| driver_error("synchronizing the stream", e))
    }

    fn module(&self, op: &'static str) -> Result<Arc<CudaModule>> {
        let mut modules = lock(&self.modules);
        if let Some(module) = modules.get(op) {
            return Ok(Arc::clone(module));
        }
        let image = self.loader.image(op, self.arch)?;
        let module = self
            .ctx
            .load_module(image.into_ptx()?)
            .map_err(|e| driver_error(&format!("loading the module of `{op}`"), e))?;
        modules.insert(op, Arc::clone(&module));
        Ok(module)
    }

    /// The function of `entry`, loaded on first use, allowed at least `shared_bytes` of dynamic
    /// shared memory (above 48 KiB a kernel must opt in through its function attribute).
    fn function(&self, entry: &'static Entry, shared_bytes: u32) -> Result<CudaFunction> {
        let module = self.module(entry.op)?;
        let mut functions = lock(&self.functions);
        if !functions.contains_key(entry.name) {
            let function = module
                .load_function(entry.name)
                .map_err(|e| driver_error(&format!("finding `{}`", entry.name), e))?;
            functions.insert(
                entry.name,
                Function {
                    function,
                    shared_allowed: DEFAULT_SHARED_BYTES,
                },
            );
        }
        let Some(f) = functions.get_mut(entry.name) else {
            unreachable!("inserted above")
        };
        if shared_bytes > f.shared_allowed {
            let bytes = i32::try_from(shared_bytes).unwrap_or(i32::MAX);
            f.function
                .set_attribute(
                    CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                    bytes,
                )
                .map_err(|e| driver_error(&format!("allowing `{}` {shared_bytes} bytes of shared memory", entry.name), e))?;
            f.shared_allowed = shared_bytes;
        }
        Ok(f.function.clone())
    }
}

/// Keeps memory freed by `cuMemFreeAsync` in the device's default pool instead of returning it
/// to the driver at every synchronisation (the pool's default release threshold is 0): tensors
/// are freed and reallocated at every step, and each download synchronises.
fn keep_freed_memory_pooled(ctx: &CudaContext) -> Result<()> {
    let mut threshold = u64::MAX;
    // SAFETY: `cu_device` is the context's device; the release threshold attribute is a u64,
    // which `threshold` is, and the driver reads it before returning.
    unsafe {
        result::device::get_default_mem_pool(ctx.cu_device()).and_then(|pool| {
            result::mem_pool::set_attribute(
                pool,
                CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD,
                (&mut threshold as *mut u64).cast(),
            )
        })
    }
    .map_err(|e| driver_error("setting the memory pool's release threshold", e))
}

impl GpuDevice for CudaDevice {
    fn backend_name(&self) -> &'static str {
        "cuda"
    }

    fn alloc(&self, bytes: usize) -> Result<u64> {
        self.bind()?;
        // A zero-byte request is an invalid value to the driver; one byte keeps every tensor
        // a distinct live allocation.
        let bytes = bytes.max(1);
        // SAFETY: the context is current; the memory is uninitialised, which `GpuDevice::alloc`
        // promises its callers (kernels write before reading, or `zero` runs first). The stream
        // is the context's default stream, valid for the device's lifetime.
        let ptr = unsafe {
            if self.async_alloc {
                result::malloc_async(self.stream.cu_stream(), bytes)
            } else {
                result::malloc_sync(bytes)
            }
        };
        ptr.map_err(|e| driver_error(&format!("allocating {bytes} bytes"), e))
    }

    fn free(&self, addr: u64) {
        let freed = self.bind().and_then(|()| {
            // SAFETY: `addr` came from `alloc` on this device and `GpuBuffer` frees it once;
            // stream-ordered freeing waits for the kernels queued before it on the same
            // stream, and a synchronous free waits for the device.
            unsafe {
                if self.async_alloc {
                    result::free_async(addr, self.stream.cu_stream())
                } else {
                    result::free_sync(addr)
                }
            }
            .map_err(|e| driver_error("freeing", e))
        });
        // Drop cannot report: a failed free is a driver fault, which the next call sees too.
        debug_assert!(freed.is_ok(), "freeing a CUDA allocation: {freed:?}");
    }

    fn upload(&self, addr: u64, bytes: &[u8]) -> Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.bind()?;
        // SAFETY: `addr` is a live allocation of at least `bytes.len()` bytes (the callers copy
        // a whole tensor into its own buffer); the copy is synchronous, so `bytes` outlives it.
        unsafe { result::memcpy_htod_sync(addr, bytes) }
            .map_err(|e| driver_error("copying to the device", e))
    }

    fn download(&self, addr: u64, len: usize) -> Result<Vec<u8>> {
        let mut out = vec![0u8; len];
        if len == 0 {
            return Ok(out);
        }
        self.bind()?;
        // SAFETY: `addr` is a live allocation of at least `len` bytes; the copy is synchronous
        // and writes only `out`.
        unsafe { result::memcpy_dtoh_sync(&mut out, addr) }
            .map_err(|e| driver_error("copying from the device (or a kernel before it failed)", e))?;
        Ok(out)
    }

    fn zero(&self, addr: u64, len: usize) -> Result<()> {
        if len == 0 {
            return Ok(());
        }
        self.bind()?;
        // SAFETY: `addr` is a live allocation of at least `len` bytes.
        unsafe { result::memset_d8_async(addr, 0, len, self.stream.cu_stream()) }
            .map_err(|e| driver_error("zeroing device memory", e))
    }

    fn max_dynamic_shared_bytes(&self) -> u32 {
        self.limits.shared_bytes
    }

    fn launch(&self, entry: &'static Entry, launch: &Launch, args: &[ArgValue]) -> Result<()> {
        let config = launch_config(entry.name, launch, &self.limits)?;
        self.bind()?;
        let function = self.function(entry, launch.shared_bytes)?;
        let mut builder = self.stream.launch_builder(&function);
        for arg in args {
            match arg {
                ArgValue::Ptr(p) => builder.arg(p),
                ArgValue::U32(v) => builder.arg(v),
                ArgValue::F32(v) => builder.arg(v),
            };
        }
        // SAFETY: `gpu::launch` checked `args` against the entry's parameter list (count, order,
        // pointer vs 32-bit scalar), and every pointer is a live allocation of this device
        // holding a tensor of the listed element type; each value lives in `args`, which
        // outlives the call (the driver copies the parameters when the launch is queued).
        unsafe { builder.launch(config) }
            .map_err(|e| driver_error(&format!("launching `{}`", entry.name), e))?;
        Ok(())
    }
}
