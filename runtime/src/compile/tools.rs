//! Where the CUDA tools and the PTX cache live.
//!
//! The tools (NVRTC, the CUDA runtime headers, ptxas) are unpacked from NVIDIA's PyPI wheels by
//! `scripts/setup-cuda-tools.sh` into `$RLHF_CUDA_TOOLS`, or by default into
//! `${XDG_CACHE_HOME:-$HOME/.cache}/rlhf-rs/cuda-tools`; this module reads the same places.
use std::env;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// The variable naming the CUDA tools directory.
pub const TOOLS_ENV: &str = "RLHF_CUDA_TOOLS";
/// The variable naming the project's cache root (PTX cache under `ptx/`).
pub const CACHE_ENV: &str = "RLHF_CACHE_DIR";
/// The script that installs the tools, relative to the repository root.
pub const SETUP_SCRIPT: &str = "scripts/setup-cuda-tools.sh";

const NVRTC_LIBRARY: &str = "nvidia/cuda_nvrtc/lib/libnvrtc.so.12";
const INCLUDE_DIR: &str = "nvidia/cuda_runtime/include";
const PTXAS: &str = "nvidia/cuda_nvcc/bin/ptxas";

/// An environment variable's value, with empty counting as unset (as `${VAR:-default}` does).
fn env_path(name: &str) -> Option<PathBuf> {
    env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// `${XDG_CACHE_HOME:-$HOME/.cache}/rlhf-rs`, or `None` when neither variable is set.
pub fn default_cache_root() -> Option<PathBuf> {
    env_path("XDG_CACHE_HOME")
        .or_else(|| env_path("HOME").map(|home| home.join(".cache")))
        .map(|cache| cache.join("rlhf-rs"))
}

/// The PTX cache directory: `$RLHF_CACHE_DIR/ptx`, else `<default cache root>/ptx`.
pub fn default_ptx_cache_dir() -> Result<PathBuf> {
    env_path(CACHE_ENV)
        .or_else(default_cache_root)
        .map(|root| root.join("ptx"))
        .ok_or_else(|| {
            Error::compile(
                "ptx cache",
                format!("set {CACHE_ENV}, XDG_CACHE_HOME or HOME"),
            )
        })
}

/// A directory holding NVRTC, the CUDA runtime headers and ptxas, laid out as the setup script
/// leaves it.
#[derive(Debug, Clone)]
pub struct CudaTools {
    root: PathBuf,
}

impl CudaTools {
    /// The tools at `$RLHF_CUDA_TOOLS`, or at the default place when it is unset.
    pub fn locate() -> Result<Self> {
        match env_path(TOOLS_ENV) {
            Some(root) => Self::at(&root).map_err(|e| explain(e, &format!("(from {TOOLS_ENV})"))),
            None => {
                let root = default_cache_root()
                    .map(|r| r.join("cuda-tools"))
                    .ok_or_else(|| {
                        Error::compile(
                            "cuda tools",
                            format!(
                                "{TOOLS_ENV} is unset and neither XDG_CACHE_HOME nor HOME is set; \
                             run {SETUP_SCRIPT} and set {TOOLS_ENV} to the directory it prints"
                            ),
                        )
                    })?;
                Self::at(&root)
                    .map_err(|e| explain(e, &format!("(the default place; {TOOLS_ENV} is unset)")))
            }
        }
    }

    /// The tools in `root`; an error naming what is missing and how to install it otherwise.
    pub fn at(root: &Path) -> Result<Self> {
        let tools = CudaTools {
            root: root.to_path_buf(),
        };
        let required = [
            tools.nvrtc_library(),
            tools.include_dir().join("cuda_bf16.h"),
            tools.ptxas(),
        ];
        if let Some(missing) = required.iter().find(|p| !p.exists()) {
            return Err(Error::compile(
                "cuda tools",
                format!(
                    "no CUDA tools in {}: {} is missing. Run {SETUP_SCRIPT} (it installs NVRTC, \
                     the CUDA headers and ptxas from NVIDIA's PyPI wheels, no GPU needed) and \
                     set {TOOLS_ENV} to the directory it prints if that is not the default",
                    root.display(),
                    missing.display()
                ),
            ));
        }
        Ok(tools)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `libnvrtc.so.12` (its builtins library sits beside it, found through its RUNPATH).
    pub fn nvrtc_library(&self) -> PathBuf {
        self.root.join(NVRTC_LIBRARY)
    }

    /// The CUDA runtime headers (`cuda_bf16.h`, `cuda_fp16.h`, ...), passed to NVRTC with `-I`.
    pub fn include_dir(&self) -> PathBuf {
        self.root.join(INCLUDE_DIR)
    }

    pub fn ptxas(&self) -> PathBuf {
        self.root.join(PTXAS)
    }
}

fn explain(error: Error, origin: &str) -> Error {
    match error {
        Error::Compile { stage, msg } => Error::Compile {
            stage,
            msg: format!("{msg} {origin}"),
        },
        other => other,
    }
}
