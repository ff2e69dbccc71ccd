//! Where the Cuda backend's kernel modules come from: a prebuilt bundle (what
//! `rlhf kernels build --out DIR` writes: `DIR/sm_XX/<op>.cubin` and `<op>.ptx`), or NVRTC with
//! the PTX cache, as on Emu.
//!
//! Which image a device loads, by compute capability:
//! - 8.x: `sm_80` — its cubin runs on every 8.x device; otherwise `compute_80` PTX;
//! - 9.0: `sm_90` — cubin, otherwise `compute_90` PTX;
//! - 10.0 and newer: `compute_90` PTX, compiled for the device by the driver (an sm_90 cubin does
//!   not run there);
//! - older than 8.0: refused (the kernels use bf16 arithmetic and instructions of sm_80).
//!
//! A cubin needs only the driver; PTX from NVRTC 12.9 (ISA 8.8) needs a driver for CUDA 12.9 or
//! newer to compile it. A bundle's module is used only when the PTX beside it declares exactly the
//! entry points and parameter sizes this binary lists, so a stale bundle is refused rather than
//! launched with the wrong arguments.

use std::fs;
use std::path::{Path, PathBuf};

use cudarc::nvrtc::Ptx;

use crate::compile::{check_entries, Arch, Compiler};
use crate::{Error, Result};

/// The variable naming a prebuilt kernel bundle directory.
pub const KERNELS_DIR_ENV: &str = "RLHF_KERNELS_DIR";

/// The arch a device of compute capability `major.minor` loads, and whether that arch's cubin
/// runs on it (otherwise its PTX is compiled by the driver).
pub(crate) fn target_for(major: i32, minor: i32) -> Result<(Arch, bool)> {
    match major {
        8 => Ok((Arch::Sm80, true)),
        9 => Ok((Arch::Sm90, true)),
        m if m > 9 => Ok((Arch::Sm90, false)),
        _ => Err(Error::Backend {
            backend: "cuda",
            msg: format!(
                "compute capability {major}.{minor} is not supported: the kernels need 8.0 or newer"
            ),
        }),
    }
}

/// A module image for the driver: PTX text (compiled by the driver for the device) or a cubin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ModuleImage {
    Ptx(String),
    Cubin(Vec<u8>),
}

impl ModuleImage {
    /// The image as cudarc loads it. The driver reads PTX as a C string, so a NUL inside is
    /// refused here (cudarc would panic on it).
    pub(crate) fn into_ptx(self) -> Result<Ptx> {
        match self {
            ModuleImage::Ptx(ptx) if ptx.contains('\0') => Err(Error::Backend {
                backend: "cuda",
                msg: "PTX text contains a NUL byte".into(),
            }),
            ModuleImage::Ptx(ptx) => Ok(Ptx::from_src(ptx)),
            ModuleImage::Cubin(cubin) => Ok(Ptx::from_binary(cubin)),
        }
    }
}

/// The sources of kernel modules: a bundle directory, NVRTC, or both (the bundle first).
pub(crate) struct KernelLoader {
    bundle: Option<PathBuf>,
    compiler: Option<Compiler>,
    cubin_ok: bool,
}

impl KernelLoader {
    pub(crate) fn new(bundle: Option<PathBuf>, compiler: Option<Compiler>, cubin_ok: bool) -> Self {
        KernelLoader {
            bundle,
            compiler,
            cubin_ok,
        }
    }

    /// The module image of `op` for `arch`.
    pub(crate) fn image(&self, op: &str, arch: Arch) -> Result<ModuleImage> {
        let source = kernels::source(op).ok_or_else(|| Error::Backend {
            backend: "cuda",
            msg: format!("no CUDA source for op `{op}`"),
        })?;
        if let Some(dir) = &self.bundle {
            if let Some(image) = bundle_image(dir, source, arch, self.cubin_ok)? {
                return Ok(image);
            }
        }
        match &self.compiler {
            Some(compiler) => Ok(ModuleImage::Ptx(compiler.compile_source(source, arch)?.ptx)),
            None => Err(Error::Backend {
                backend: "cuda",
                msg: format!(
                    "no module for `{op}`: {} has no {}/{op}.ptx and NVRTC is not available",
                    self.bundle.as_deref().map_or("no bundle".into(), |d| d.display().to_string()),
                    arch.sm()
                ),
            }),
        }
    }
}

/// The paths of `op`'s PTX and cubin for `arch` in bundle `dir`.
pub(crate) fn bundle_paths(dir: &Path, op: &str, arch: Arch) -> (PathBuf, PathBuf) {
    let sub = dir.join(arch.sm());
    (sub.join(format!("{op}.ptx")), sub.join(format!("{op}.cubin")))
}

/// `source`'s module from the bundle: the cubin when there is one and it runs on the device,
/// else the PTX; `None` when the bundle has no PTX for it. A PTX that disagrees with the entry
/// list is an error naming the file.
pub(crate) fn bundle_image(
    dir: &Path,
    source: &kernels::Source,
    arch: Arch,
    cubin_ok: bool,
) -> Result<Option<ModuleImage>> {
    let (ptx_path, cubin_path) = bundle_paths(dir, source.op, arch);
    let read_error = |path: &Path, e: std::io::Error| Error::Backend {
        backend: "cuda",
        msg: format!("reading {}: {e}", path.display()),
    };
    let ptx = match fs::read_to_string(&ptx_path) {
        Ok(ptx) => ptx,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(read_error(&ptx_path, e)),
    };
    check_entries(source, &ptx).map_err(|e| Error::Backend {
        backend: "cuda",
        msg: format!("kernel bundle {} is stale: {e}", ptx_path.display()),
    })?;
    if cubin_ok && cubin_path.is_file() {
        let cubin = fs::read(&cubin_path).map_err(|e| read_error(&cubin_path, e))?;
        return Ok(Some(ModuleImage::Cubin(cubin)));
    }
    Ok(Some(ModuleImage::Ptx(ptx)))
}
