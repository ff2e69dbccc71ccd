//! [`Device`]: emulated global memory plus kernel launches. A launch checks its geometry and
//! packs the arguments per the kernel's `.param` list, then runs the grid one block after
//! another (x fastest, then y, then z); within a block, each warp runs until it exits or reaches
//! a barrier, in warp order, and a barrier releases once every live warp has arrived. The
//! sanitizer (on by default) watches shared memory and barriers; see [`super::sanitizer`].

use std::collections::HashSet;

use super::counters::Counters;
use super::error::EmuError;
use super::exec::{sanitize_barrier, BlockEnv, Geometry, Stop, Warp};
use super::memory::{DevicePtr, GlobalMemory};
use super::program::{Kernel, Param, CLASS_COUNT};
use super::sanitizer::{first_as_error, Finding, Sanitizer, SanitizerMode};
use super::types::{Kind, Ty};
use super::Module;

/// Shared memory one block may use (the sm_90 limit with opt-in).
pub const MAX_SHARED_BYTES: u32 = 227 * 1024;
pub const MAX_THREADS_PER_BLOCK: u32 = 1024;

/// Grid and block dimensions and the dynamic shared-memory size of a launch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaunchConfig {
    pub grid: [u32; 3],
    pub block: [u32; 3],
    pub dynamic_shared_bytes: u32,
}

impl LaunchConfig {
    /// A 1-D launch.
    pub fn linear(blocks: u32, threads: u32) -> Self {
        LaunchConfig {
            grid: [blocks, 1, 1],
            block: [threads, 1, 1],
            dynamic_shared_bytes: 0,
        }
    }
}

/// One kernel argument, packed into the `.param` slot at the same position.
#[derive(Debug, Clone, PartialEq)]
pub enum KernelArg {
    Ptr(DevicePtr),
    U32(u32),
    I32(i32),
    U64(u64),
    F32(f32),
    F64(f64),
    /// Raw bytes for a by-value struct parameter (`.param .align 8 .b8 p[24]`).
    Bytes(Vec<u8>),
}

/// What a launch executed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LaunchReport {
    pub warp_instructions: u64,
    /// Lanes active (converged) at each issued instruction, summed; lanes whose guard predicate
    /// is false still count, as they are issued.
    pub thread_instructions: u64,
    pub blocks: u64,
    pub counters: Counters,
    /// Sanitizer findings, in the order found. Always empty unless the device's mode is
    /// [`SanitizerMode::Collect`]: in the default fail-fast mode the first finding fails the
    /// launch instead.
    pub findings: Vec<Finding>,
}

impl LaunchReport {
    /// The first finding as [`EmuError::Sanitizer`], or `Ok` when there are none.
    pub fn check(&self) -> Result<(), EmuError> {
        first_as_error(&self.findings)
    }
}

/// Emulated device memory and the launch entry point.
pub struct Device {
    global: GlobalMemory,
    /// Modules whose `.global` variables are mapped into this device.
    mapped_modules: HashSet<u64>,
    warp_instruction_limit: u64,
    sanitizer: SanitizerMode,
}

/// Default for [`Device::set_warp_instruction_limit`]: minutes of emulation for one warp.
pub const DEFAULT_WARP_INSTRUCTION_LIMIT: u64 = 1 << 28;

impl Default for Device {
    fn default() -> Self {
        Self::new()
    }
}

impl Device {
    /// An empty device with the sanitizer on ([`SanitizerMode::FailFast`]).
    pub fn new() -> Self {
        Device {
            global: GlobalMemory::new(),
            mapped_modules: HashSet::new(),
            warp_instruction_limit: DEFAULT_WARP_INSTRUCTION_LIMIT,
            sanitizer: SanitizerMode::default(),
        }
    }

    /// Turns the sanitizer on (fail-fast: the first finding fails the launch) or off (faster
    /// when a kernel does much shared-memory work; faults are still caught).
    pub fn set_sanitizer(&mut self, on: bool) {
        self.sanitizer = if on {
            SanitizerMode::FailFast
        } else {
            SanitizerMode::Off
        };
    }

    pub fn set_sanitizer_mode(&mut self, mode: SanitizerMode) {
        self.sanitizer = mode;
    }

    pub fn sanitizer_mode(&self) -> SanitizerMode {
        self.sanitizer
    }

    /// Sets how many instructions one warp may execute between two barriers (or start and
    /// exit) before a launch fails as hung. Warps and blocks run one after another, so a kernel
    /// that spins waiting for another warp or block to make progress would otherwise never end.
    pub fn set_warp_instruction_limit(&mut self, limit: u64) {
        self.warp_instruction_limit = limit;
    }

    /// Allocates `bytes` zeroed bytes at a 256-byte aligned address.
    pub fn alloc(&mut self, bytes: usize) -> DevicePtr {
        DevicePtr(self.global.alloc(bytes))
    }

    pub fn write(&mut self, ptr: DevicePtr, bytes: &[u8]) -> Result<(), EmuError> {
        self.global.host_write(ptr.0, bytes)
    }

    pub fn read(&self, ptr: DevicePtr, len: usize) -> Result<Vec<u8>, EmuError> {
        self.global.host_read(ptr.0, len)
    }

    pub fn free(&mut self, ptr: DevicePtr) -> Result<(), EmuError> {
        self.global.free(ptr.0)
    }

    /// Bytes held by live allocations (module variables included).
    pub fn allocated_bytes(&self) -> usize {
        self.global.allocated_bytes()
    }

    /// The high-water mark of [`Device::allocated_bytes`] since the last
    /// [`Device::reset_peak_allocated_bytes`] (or since the device was made).
    pub fn peak_allocated_bytes(&self) -> usize {
        self.global.peak_bytes()
    }

    /// Starts a new high-water mark at the bytes allocated now.
    pub fn reset_peak_allocated_bytes(&mut self) {
        self.global.reset_peak();
    }

    pub fn launch(
        &mut self,
        module: &Module,
        kernel: &str,
        cfg: LaunchConfig,
        args: &[KernelArg],
    ) -> Result<LaunchReport, EmuError> {
        let Some(k) = module.kernel(kernel) else {
            let names: Vec<&str> = module.kernels().collect();
            return Err(launch_error(
                kernel,
                format!(
                    "no such kernel in the module (it has: {})",
                    names.join(", ")
                ),
            ));
        };
        let shared_bytes = check_config(k, &cfg)?;
        let params = pack_args(k, args)?;
        if !module.globals.is_empty() && self.mapped_modules.insert(module.id) {
            for var in &module.globals {
                self.global.map_at(var.addr, var.init.clone());
            }
        }
        let geo = Geometry {
            grid: cfg.grid,
            block: cfg.block,
            dynamic_shared: cfg.dynamic_shared_bytes,
            total_shared: shared_bytes,
        };
        let mut counters = Counters::default();
        let threads = cfg.block.iter().product::<u32>();
        let mut warps: Vec<Warp> = (0..threads.div_ceil(32)).map(|_| Warp::new(k)).collect();
        let mut shared = vec![0u8; shared_bytes as usize];
        let mut sanitizer = (self.sanitizer != SanitizerMode::Off)
            .then(|| Sanitizer::new(self.sanitizer, shared.len(), warps.len()));
        for z in 0..cfg.grid[2] {
            for y in 0..cfg.grid[1] {
                for x in 0..cfg.grid[0] {
                    let block = [x, y, z];
                    shared.fill(0);
                    if let Some(s) = sanitizer.as_mut() {
                        s.shadow.start_block();
                    }
                    let mut env = BlockEnv {
                        kernel: k,
                        src: &module.src,
                        params: &params,
                        global: &mut self.global,
                        shared: &mut shared,
                        counters: &mut counters,
                        block,
                        block_dim: cfg.block,
                        instruction_limit: self.warp_instruction_limit,
                        sanitizer: sanitizer.as_mut(),
                    };
                    for (w, warp) in (0u32..).zip(warps.iter_mut()) {
                        let lanes = (threads - w * 32).min(32);
                        let live = if lanes == 32 {
                            u32::MAX
                        } else {
                            (1u32 << lanes) - 1
                        };
                        warp.start(w, live, block, &geo);
                    }
                    run_block(&mut env, &mut warps)?;
                }
            }
        }
        let blocks = cfg.grid.iter().map(|&g| g as u64).product();
        let warp_instructions = counters.by_class.iter().take(CLASS_COUNT).sum();
        Ok(LaunchReport {
            warp_instructions,
            thread_instructions: counters.thread_instructions,
            blocks,
            counters,
            findings: sanitizer.map(|s| s.findings).unwrap_or_default(),
        })
    }
}

fn run_block(env: &mut BlockEnv, warps: &mut [Warp]) -> Result<(), EmuError> {
    loop {
        let mut at_barrier = false;
        for w in warps.iter_mut() {
            if w.live == 0 {
                continue;
            }
            if w.live & !w.waiting != 0 && w.run(env)? == Stop::Exited {
                continue;
            }
            at_barrier = true;
        }
        if !at_barrier {
            return Ok(());
        }
        env.counters.barriers += 1;
        sanitize_barrier(env, warps).map_err(EmuError::Sanitizer)?;
        for w in warps.iter_mut() {
            w.release();
        }
    }
}

fn launch_error(kernel: &str, msg: String) -> EmuError {
    EmuError::Launch {
        kernel: kernel.to_string(),
        msg,
    }
}

/// Validates the geometry; returns the block's shared-memory size.
fn check_config(k: &Kernel, cfg: &LaunchConfig) -> Result<u32, EmuError> {
    let err = |msg: String| Err(launch_error(&k.name, msg));
    if cfg.grid.contains(&0) || cfg.block.contains(&0) {
        return err(format!(
            "zero-sized launch: grid {:?}, block {:?}",
            cfg.grid, cfg.block
        ));
    }
    let threads = cfg.block.iter().map(|&b| b as u64).product::<u64>();
    if threads > MAX_THREADS_PER_BLOCK as u64 || cfg.block[2] > 64 {
        return err(format!(
            "block {:?} exceeds 1024 threads (or 64 in z)",
            cfg.block
        ));
    }
    if cfg.grid[1] > 65535 || cfg.grid[2] > 65535 {
        return err(format!("grid {:?} exceeds 65535 in y or z", cfg.grid));
    }
    if let Some(req) = k.reqntid {
        if req != cfg.block {
            return err(format!(
                "block {:?} differs from the kernel's .reqntid {:?}",
                cfg.block, req
            ));
        }
    }
    if let Some(max) = k.maxntid {
        if threads > max.iter().map(|&m| m as u64).product::<u64>() {
            return err(format!(
                "block {:?} exceeds the kernel's .maxntid {:?}",
                cfg.block, max
            ));
        }
    }
    let shared = if cfg.dynamic_shared_bytes == 0 {
        k.static_shared as u64
    } else {
        k.dynamic_shared_offset as u64 + cfg.dynamic_shared_bytes as u64
    };
    if shared > MAX_SHARED_BYTES as u64 {
        return err(format!(
            "{shared} bytes of shared memory ({} static + {} dynamic) exceed {MAX_SHARED_BYTES}",
            k.static_shared, cfg.dynamic_shared_bytes
        ));
    }
    Ok(shared as u32)
}

fn arg_fits(p: &Param, arg: &KernelArg) -> bool {
    let int_like = matches!(p.ty.kind(), Kind::Bits | Kind::Unsigned | Kind::Signed);
    match arg {
        KernelArg::Ptr(_) | KernelArg::U64(_) => p.len == 1 && p.size == 8 && int_like,
        KernelArg::U32(_) | KernelArg::I32(_) => p.len == 1 && p.size == 4 && int_like,
        KernelArg::F32(_) => p.len == 1 && matches!(p.ty, Ty::F32 | Ty::B32),
        KernelArg::F64(_) => p.len == 1 && matches!(p.ty, Ty::F64 | Ty::B64),
        KernelArg::Bytes(b) => b.len() == p.size as usize,
    }
}

fn pack_args(k: &Kernel, args: &[KernelArg]) -> Result<Vec<u8>, EmuError> {
    if args.len() != k.params.len() {
        let list: Vec<String> = k.params.iter().map(describe_param).collect();
        return Err(launch_error(
            &k.name,
            format!(
                "takes {} parameters ({}), got {} arguments",
                k.params.len(),
                list.join(", "),
                args.len()
            ),
        ));
    }
    let mut buf = vec![0u8; k.param_bytes as usize];
    for (i, (p, arg)) in k.params.iter().zip(args).enumerate() {
        if !arg_fits(p, arg) {
            return Err(launch_error(
                &k.name,
                format!(
                    "parameter {i} `{}` is {}, the argument is {arg:?}",
                    p.name,
                    describe_param(p)
                ),
            ));
        }
        let bytes = match arg {
            KernelArg::Ptr(ptr) => ptr.0.to_le_bytes().to_vec(),
            KernelArg::U64(v) => v.to_le_bytes().to_vec(),
            KernelArg::U32(v) => v.to_le_bytes().to_vec(),
            KernelArg::I32(v) => v.to_le_bytes().to_vec(),
            KernelArg::F32(v) => v.to_le_bytes().to_vec(),
            KernelArg::F64(v) => v.to_le_bytes().to_vec(),
            KernelArg::Bytes(b) => b.clone(),
        };
        buf[p.offset as usize..p.offset as usize + bytes.len()].copy_from_slice(&bytes);
    }
    Ok(buf)
}

fn describe_param(p: &Param) -> String {
    let ty = format!("{:?}", p.ty).to_lowercase();
    if p.len > 1 {
        format!(".{ty}[{}]", p.len)
    } else {
        format!(".{ty}")
    }
}
