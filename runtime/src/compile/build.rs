//! [`Compiler`]: NVRTC with the PTX cache and ptxas, and [`build_all`], which builds every
//! embedded kernel for a set of archs and reports each entry point's resources.
use std::fs;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::cache::{write_atomically, CacheKey, PtxCache};
use super::ptx::ptx_entries;
use super::ptxas::{self, FunctionResources};
use super::source::{expand_includes, system_includes};
use super::{Arch, CudaTools, Nvrtc};
use crate::{Error, Result};

/// Flags every kernel is compiled with, besides the arch and the include path. NVRTC optimises
/// by default (and rejects `-O3`); fused multiply-add, IEEE division and square root and
/// denormals are its defaults and are kept, so f32 kernels stay close to the Cpu reference.
pub const NVRTC_FLAGS: &[&str] = &["--std=c++17"];

/// PTX for one source and arch.
#[derive(Debug, Clone)]
pub struct CompiledPtx {
    pub ptx: String,
    /// NVRTC's warnings (empty when there were none, or when the PTX came from the cache).
    pub log: String,
    /// Whether the PTX came from the cache rather than from NVRTC.
    pub cached: bool,
}

/// The resources of one entry point built for one arch, and where its module was written.
#[derive(Debug, Clone)]
pub struct KernelBuildReport {
    /// The op stem of its source, e.g. `layernorm`.
    pub op: &'static str,
    /// The entry point, e.g. `layernorm_fwd_bf16`.
    pub entry: &'static str,
    pub arch: Arch,
    pub registers: u32,
    pub spill_store_bytes: u32,
    pub spill_load_bytes: u32,
    pub static_shared_bytes: u32,
    pub stack_frame_bytes: u32,
    pub ptx: PathBuf,
    pub cubin: PathBuf,
}

impl KernelBuildReport {
    pub fn spill_bytes(&self) -> u32 {
        self.spill_store_bytes + self.spill_load_bytes
    }
}

/// Compiles CUDA C++ to PTX (through the cache when there is one) and assembles PTX to cubins.
#[derive(Debug, Clone)]
pub struct Compiler {
    tools: CudaTools,
    nvrtc: Nvrtc,
    cache: Option<PtxCache>,
}

impl Compiler {
    /// A compiler using `tools`, caching PTX in `cache` (`None`: always run NVRTC).
    pub fn new(tools: CudaTools, cache: Option<PtxCache>) -> Result<Self> {
        let nvrtc = Nvrtc::load(&tools)?;
        Ok(Compiler {
            tools,
            nvrtc,
            cache,
        })
    }

    /// The tools from `$RLHF_CUDA_TOOLS` (or the default place) with the default PTX cache.
    pub fn locate() -> Result<Self> {
        Self::new(CudaTools::locate()?, Some(PtxCache::default_location()?))
    }

    pub fn tools(&self) -> &CudaTools {
        &self.tools
    }

    pub fn nvrtc_version(&self) -> (i32, i32) {
        self.nvrtc.version()
    }

    /// PTX for one embedded kernel source.
    pub fn compile_source(&self, source: &kernels::Source, arch: Arch) -> Result<CompiledPtx> {
        self.compile(source.op, source.file, source.code, arch)
    }

    /// PTX for CUDA C++ `code` from `file`, whose `#include "x.cuh"` lines name embedded
    /// headers; `stem` names the cache entry.
    pub fn compile(&self, stem: &str, file: &str, code: &str, arch: Arch) -> Result<CompiledPtx> {
        let expanded = expand_includes(file, code)?;
        let include_dir = self.tools.include_dir();
        // A header NVRTC cannot find fails the compile below, so a missing one keys as empty.
        let headers = system_includes(&expanded)
            .into_iter()
            .map(|name| (name, fs::read(include_dir.join(name)).unwrap_or_default()))
            .collect();
        let key = CacheKey {
            code: &expanded,
            headers,
            arch,
            flags: NVRTC_FLAGS,
            nvrtc_version: self.nvrtc.version(),
        };
        if let Some(ptx) = self.cache.as_ref().and_then(|cache| cache.load(stem, &key)) {
            return Ok(CompiledPtx {
                ptx,
                log: String::new(),
                cached: true,
            });
        }
        let output = self.nvrtc.compile(file, &expanded, arch, NVRTC_FLAGS)?;
        if let Some(cache) = &self.cache {
            cache.store(stem, &key, &output.ptx)?;
        }
        Ok(CompiledPtx {
            ptx: output.ptx,
            log: output.log,
            cached: false,
        })
    }

    /// Assembles the PTX file `ptx` into `cubin` for `arch` and reports every function.
    pub fn assemble(&self, ptx: &Path, arch: Arch, cubin: &Path) -> Result<Vec<FunctionResources>> {
        ptxas::assemble(&self.tools.ptxas(), ptx, arch, cubin)
    }

    /// Writes `out_dir/<sm_XX>/<op>.ptx` and `.cubin` for every embedded source and arch, and
    /// returns one report per entry point and arch (sources in [`kernels::SOURCES`] order, then
    /// archs in the order given, then entries in list order). Fails when a source does not
    /// compile or assemble, or when its PTX does not declare exactly the listed entry points
    /// with the listed parameter sizes. Spills are reported, not failed on: that is the
    /// caller's policy.
    pub fn build_all(&self, archs: &[Arch], out_dir: &Path) -> Result<Vec<KernelBuildReport>> {
        let jobs: Vec<(&kernels::Source, Arch)> = kernels::SOURCES
            .iter()
            .flat_map(|s| archs.iter().map(move |&a| (s, a)))
            .collect();
        let reports: Vec<Vec<KernelBuildReport>> = jobs
            .par_iter()
            .map(|&(source, arch)| self.build_one(source, arch, out_dir))
            .collect::<Result<_>>()?;
        Ok(reports.into_iter().flatten().collect())
    }

    fn build_one(
        &self,
        source: &kernels::Source,
        arch: Arch,
        out_dir: &Path,
    ) -> Result<Vec<KernelBuildReport>> {
        let compiled = self.compile_source(source, arch)?;
        check_entries(source, &compiled.ptx)?;
        let dir = out_dir.join(arch.sm());
        let ptx_path = dir.join(format!("{}.ptx", source.op));
        let cubin_path = dir.join(format!("{}.cubin", source.op));
        write_atomically(&ptx_path, compiled.ptx.as_bytes())
            .map_err(|e| Error::compile("build", format!("{}: {e}", ptx_path.display())))?;
        let functions = self.assemble(&ptx_path, arch, &cubin_path)?;
        source
            .entries
            .iter()
            .map(|entry| {
                let f = functions
                    .iter()
                    .find(|f| f.is_entry && f.name == entry.name)
                    .ok_or_else(|| {
                        Error::compile(
                            "ptxas",
                            format!("no report for {} in {}", entry.name, ptx_path.display()),
                        )
                    })?;
                Ok(KernelBuildReport {
                    op: source.op,
                    entry: entry.name,
                    arch,
                    registers: f.registers,
                    spill_store_bytes: f.spill_store_bytes,
                    spill_load_bytes: f.spill_load_bytes,
                    static_shared_bytes: f.static_shared_bytes,
                    stack_frame_bytes: f.stack_frame_bytes,
                    ptx: ptx_path.clone(),
                    cubin: cubin_path.clone(),
                })
            })
            .collect()
    }
}

/// Checks that `ptx` declares exactly the entry points `source` lists, each with the listed
/// parameter sizes.
pub fn check_entries(source: &kernels::Source, ptx: &str) -> Result<()> {
    let declared = ptx_entries(ptx);
    let fail = |msg: String| Error::compile("entry list", format!("{}: {msg}", source.file));
    for entry in source.entries {
        let found = declared
            .iter()
            .find(|d| d.name == entry.name)
            .ok_or_else(|| fail(format!("{} is listed but not in the PTX", entry.name)))?;
        let listed: Vec<usize> = entry
            .params
            .iter()
            .map(|p| p.kind.size_in_bytes())
            .collect();
        if found.param_sizes != listed {
            return Err(fail(format!(
                "{} takes parameters of {:?} bytes in the PTX, {:?} in the list",
                entry.name, found.param_sizes, listed
            )));
        }
    }
    if let Some(extra) = declared
        .iter()
        .find(|d| !source.entries.iter().any(|e| e.name == d.name))
    {
        return Err(fail(format!("{} is in the PTX but not listed", extra.name)));
    }
    Ok(())
}

/// [`Compiler::build_all`] with the located tools and the default PTX cache.
pub fn build_all(archs: &[Arch], out_dir: &Path) -> Result<Vec<KernelBuildReport>> {
    Compiler::locate()?.build_all(archs, out_dir)
}
