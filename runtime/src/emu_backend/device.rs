//! [`EmuDevice`]: the PTX emulator's [`Device`] behind the [`GpuDevice`] interface, with the
//! kernel modules compiled by NVRTC (for `compute_80`) and parsed once per op.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use kernels::Entry;

use crate::compile::{Arch, Compiler};
use crate::emu::{Counters, Device, DevicePtr, KernelArg, LaunchConfig, Module, MAX_SHARED_BYTES};
use crate::gpu::{ArgValue, GpuDevice, Launch};
use crate::{Error, Result};

/// Emulated device memory, the compiler, the modules loaded so far (keyed by op stem), and the
/// emulator's counters summed per kernel entry point.
pub struct EmuDevice {
    memory: Mutex<Device>,
    compiler: Compiler,
    modules: Mutex<HashMap<&'static str, Arc<Module>>>,
    stats: Mutex<HashMap<&'static str, KernelStats>>,
    downloads: AtomicU64,
}

/// What the launches of one kernel entry point did, summed.
#[derive(Debug, Clone, Default)]
pub struct KernelStats {
    pub launches: u64,
    pub counters: Counters,
}

/// A poisoned lock only means another thread panicked mid-call; the emulator's state is still
/// memory, so carry on with it.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl EmuDevice {
    pub(crate) fn new(compiler: Compiler, sanitize: bool) -> Self {
        let mut memory = Device::new();
        memory.set_sanitizer(sanitize);
        EmuDevice {
            memory: Mutex::new(memory),
            compiler,
            modules: Mutex::new(HashMap::new()),
            stats: Mutex::new(HashMap::new()),
            downloads: AtomicU64::new(0),
        }
    }

    /// The counters of every kernel launched so far, by entry point, sorted by name.
    pub(crate) fn kernel_stats(&self) -> Vec<(&'static str, KernelStats)> {
        let mut stats: Vec<_> = lock(&self.stats).iter().map(|(k, v)| (*k, v.clone())).collect();
        stats.sort_by_key(|(name, _)| *name);
        stats
    }

    /// Device-to-host copies so far.
    pub(crate) fn downloads(&self) -> u64 {
        self.downloads.load(Ordering::Relaxed)
    }

    /// Bytes held by live allocations.
    pub(crate) fn allocated_bytes(&self) -> usize {
        lock(&self.memory).allocated_bytes()
    }

    /// The most bytes held at once since the last reset (or since the device was made).
    pub(crate) fn peak_allocated_bytes(&self) -> usize {
        lock(&self.memory).peak_allocated_bytes()
    }

    pub(crate) fn reset_peak_allocated_bytes(&self) {
        lock(&self.memory).reset_peak_allocated_bytes()
    }

    /// The module of `op`'s source, compiled and parsed on first use.
    fn module(&self, op: &'static str) -> Result<Arc<Module>> {
        let mut modules = lock(&self.modules);
        if let Some(module) = modules.get(op) {
            return Ok(Arc::clone(module));
        }
        let source = kernels::source(op).ok_or_else(|| Error::Backend {
            backend: "emu",
            msg: format!("no CUDA source for op `{op}`"),
        })?;
        let ptx = self.compiler.compile_source(source, Arch::Sm80)?.ptx;
        let module = Arc::new(Module::parse(&ptx)?);
        modules.insert(op, Arc::clone(&module));
        Ok(module)
    }
}

impl GpuDevice for EmuDevice {
    fn backend_name(&self) -> &'static str {
        "emu"
    }

    fn alloc(&self, bytes: usize) -> Result<u64> {
        Ok(lock(&self.memory).alloc(bytes).0)
    }

    fn free(&self, addr: u64) {
        let freed = lock(&self.memory).free(DevicePtr(addr));
        debug_assert!(freed.is_ok(), "freeing an emulator allocation: {freed:?}");
    }

    fn upload(&self, addr: u64, bytes: &[u8]) -> Result<()> {
        Ok(lock(&self.memory).write(DevicePtr(addr), bytes)?)
    }

    fn download(&self, addr: u64, len: usize) -> Result<Vec<u8>> {
        self.downloads.fetch_add(1, Ordering::Relaxed);
        Ok(lock(&self.memory).read(DevicePtr(addr), len)?)
    }

    fn zero(&self, addr: u64, len: usize) -> Result<()> {
        self.upload(addr, &vec![0; len])
    }

    fn max_dynamic_shared_bytes(&self) -> u32 {
        MAX_SHARED_BYTES
    }

    fn launch(&self, entry: &'static Entry, launch: &Launch, args: &[ArgValue]) -> Result<()> {
        let module = self.module(entry.op)?;
        let config = LaunchConfig {
            grid: launch.grid,
            block: launch.block,
            dynamic_shared_bytes: launch.shared_bytes,
        };
        let args: Vec<KernelArg> = args
            .iter()
            .map(|arg| match *arg {
                ArgValue::Ptr(addr) => KernelArg::Ptr(DevicePtr(addr)),
                ArgValue::U32(v) => KernelArg::U32(v),
                ArgValue::F32(v) => KernelArg::F32(v),
            })
            .collect();
        let report = lock(&self.memory).launch(&module, entry.name, config, &args)?;
        let mut stats = lock(&self.stats);
        let entry_stats = stats.entry(entry.name).or_default();
        entry_stats.launches += 1;
        entry_stats.counters.accumulate(&report.counters);
        Ok(())
    }
}
