//! Kernel compilation without a GPU: the CUDA tools, NVRTC, the PTX cache and ptxas.
//!
//! * [`CudaTools`] finds NVRTC, the CUDA runtime headers and ptxas in `$RLHF_CUDA_TOOLS`, or in
//!   `${XDG_CACHE_HOME:-$HOME/.cache}/rlhf-rs/cuda-tools` when it is unset; both are filled by
//!   `scripts/setup-cuda-tools.sh` from NVIDIA's PyPI wheels. A missing directory is an error
//!   that names the variable and the script.
//! * [`Nvrtc`] compiles CUDA C++ to PTX for `compute_80` / `compute_90`, with the runtime headers
//!   on `-I` (`cuda_bf16.h` is not built into NVRTC). **How NVRTC is loaded, and why:** through
//!   cudarc (the crate the Cuda backend will use for the driver and cuBLAS), whose `nvrtc`
//!   bindings `dlopen` `libnvrtc.so.12` by name and read no variable. Rather than binding the
//!   NVRTC functions a second time, [`Nvrtc::load`] opens the wheel's library by full path first
//!   (`RTLD_GLOBAL`, kept open for the process) so cudarc's by-name open resolves to it, checks
//!   `is_culib_present()` before cudarc is used (cudarc panics when the library is absent; this
//!   returns an error), and checks that cudarc resolved the very same library. We call cudarc's
//!   thin `result` layer rather than its `compile_ptx` so that the compile log is kept on success
//!   too and nothing on the error path can panic.
//! * The project's own headers (`kernels::HEADERS`) are inlined into each source before NVRTC sees
//!   it ([`expand_includes`]), with `#line` directives so diagnostics stay accurate.
//! * [`PtxCache`] keeps PTX on disk, keyed by a hash of the compiled text, the included CUDA
//!   headers, the arch, the flags and the NVRTC version, in `$RLHF_CACHE_DIR/ptx` or
//!   `${XDG_CACHE_HOME:-$HOME/.cache}/rlhf-rs/ptx`, written atomically.
//! * [`ptxas`] assembles PTX to a cubin for `sm_80` / `sm_90` and parses `-v`: registers, spill
//!   bytes, static shared memory, stack frame per function.
//! * [`build_all`] does all of it for every embedded kernel and returns a [`KernelBuildReport`]
//!   per entry point and arch.
mod build;
mod cache;
mod nvrtc;
mod ptx;
pub mod ptxas;
mod source;
mod tools;

use std::fmt;
use std::str::FromStr;

pub use build::{build_all, check_entries, CompiledPtx, Compiler, KernelBuildReport, NVRTC_FLAGS};
pub use cache::{CacheKey, PtxCache};
pub use nvrtc::{Nvrtc, NvrtcOutput};
pub use ptx::{ptx_entries, PtxEntry};
pub use ptxas::FunctionResources;
pub use source::{expand_includes, system_includes};
pub use tools::{
    default_cache_root, default_ptx_cache_dir, CudaTools, CACHE_ENV, SETUP_SCRIPT, TOOLS_ENV,
};

use crate::Error;

/// A GPU architecture kernels are built for: PTX for `compute_XX`, cubins for `sm_XX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Arch {
    /// Ampere: A100.
    Sm80,
    /// Hopper: H100, H200.
    Sm90,
}

impl Arch {
    /// Every arch the project builds for.
    pub const ALL: [Arch; 2] = [Arch::Sm80, Arch::Sm90];

    /// The virtual architecture NVRTC compiles for, e.g. `compute_90`.
    pub fn compute(self) -> &'static str {
        match self {
            Arch::Sm80 => "compute_80",
            Arch::Sm90 => "compute_90",
        }
    }

    /// The real architecture ptxas assembles for, e.g. `sm_90`.
    pub fn sm(self) -> &'static str {
        match self {
            Arch::Sm80 => "sm_80",
            Arch::Sm90 => "sm_90",
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.sm())
    }
}

impl FromStr for Arch {
    type Err = Error;

    /// Accepts `sm_90`, `compute_90` or `90` (and the same for 80).
    fn from_str(s: &str) -> Result<Self, Error> {
        let digits = s.trim_start_matches("sm_").trim_start_matches("compute_");
        match digits {
            "80" => Ok(Arch::Sm80),
            "90" => Ok(Arch::Sm90),
            _ => Err(Error::compile(
                "arch",
                format!("unknown arch {s:?}; expected sm_80 or sm_90"),
            )),
        }
    }
}
