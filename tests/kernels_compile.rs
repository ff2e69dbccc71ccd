//! Every embedded kernel compiles with NVRTC for compute_80 and compute_90, assembles with ptxas
//! for sm_80 and sm_90 without spilling, and declares exactly the entry points the kernels crate
//! lists. Needs the CUDA tools (`scripts/setup-cuda-tools.sh`), not a GPU; without them these
//! tests fail with the error that says how to install them.
use std::path::PathBuf;

use runtime::compile::{ptx_entries, Arch, Compiler, CudaTools, PtxCache, SETUP_SCRIPT, TOOLS_ENV};

/// A fresh directory for one test, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("rlhf-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn compiler(cache: Option<PtxCache>) -> Compiler {
    let tools = CudaTools::locate().unwrap_or_else(|e| panic!("{e}"));
    Compiler::new(tools, cache).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn every_kernel_compiles_and_assembles_without_spills() {
    let scratch = TempDir::new("kernels-build");
    let compiler = compiler(Some(PtxCache::new(scratch.0.join("cache"))));
    let reports = compiler
        .build_all(&Arch::ALL, &scratch.0.join("out"))
        .unwrap_or_else(|e| panic!("{e}"));

    let listed: usize = kernels::SOURCES.iter().map(|s| s.entries.len()).sum();
    assert_eq!(reports.len(), listed * Arch::ALL.len());
    for report in &reports {
        println!(
            "{:<8} {:<30} {:>3} registers {:>5} B smem {:>3} B stack",
            report.arch.sm(),
            report.entry,
            report.registers,
            report.static_shared_bytes,
            report.stack_frame_bytes
        );
        assert_eq!(
            report.spill_bytes(),
            0,
            "{} spills on {}",
            report.entry,
            report.arch
        );
        assert!(
            report.registers > 0,
            "{} on {}: no register count",
            report.entry,
            report.arch
        );
        assert!(report
            .cubin
            .metadata()
            .map(|m| m.len() > 0)
            .unwrap_or(false));
    }

    for source in kernels::SOURCES {
        for arch in Arch::ALL {
            let ptx_path = scratch
                .0
                .join("out")
                .join(arch.sm())
                .join(format!("{}.ptx", source.op));
            let ptx = std::fs::read_to_string(&ptx_path).unwrap();
            assert!(
                ptx.contains(&format!(".target {}", arch.sm())),
                "{}",
                ptx_path.display()
            );
            let declared = ptx_entries(&ptx);
            assert_eq!(
                declared.len(),
                source.entries.len(),
                "{}",
                ptx_path.display()
            );
            for entry in source.entries {
                let found = declared
                    .iter()
                    .find(|d| d.name == entry.name)
                    .unwrap_or_else(|| {
                        panic!("{} missing from {}", entry.name, ptx_path.display())
                    });
                assert_eq!(
                    found.param_sizes.len(),
                    entry.params.len(),
                    "{}",
                    entry.name
                );
            }
        }
    }
}

#[test]
fn ptx_cache_serves_the_second_compile_and_is_keyed_by_arch() {
    let scratch = TempDir::new("ptx-cache");
    let cache = PtxCache::new(scratch.0.join("ptx"));
    let compiler = compiler(Some(cache.clone()));
    let code = "#include \"common.cuh\"\n\
                extern \"C\" __global__ void probe_fwd_bf16(bf16* y) { y[0] = from_f32<bf16>(1.0f); }\n";

    let first = compiler
        .compile("probe", "probe.cu", code, Arch::Sm80)
        .unwrap();
    let second = compiler
        .compile("probe", "probe.cu", code, Arch::Sm80)
        .unwrap();
    let other_arch = compiler
        .compile("probe", "probe.cu", code, Arch::Sm90)
        .unwrap();
    assert!(!first.cached);
    assert!(second.cached);
    assert_eq!(first.ptx, second.ptx);
    assert!(!other_arch.cached);
    assert!(other_arch.ptx.contains(".target sm_90"));

    let files: Vec<String> = std::fs::read_dir(cache.dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        files.len(),
        2,
        "two entries and no temporary files: {files:?}"
    );
    assert!(files
        .iter()
        .all(|f| f.starts_with("probe-compute_") && f.ends_with(".ptx")));

    let uncached = compiler
        .compile(
            "probe",
            "probe.cu",
            &code.replace("1.0f", "2.0f"),
            Arch::Sm80,
        )
        .unwrap();
    assert!(!uncached.cached, "a changed source must miss the cache");
}

#[test]
fn compile_errors_carry_the_nvrtc_log() {
    let compiler = compiler(None);
    let code =
        "extern \"C\" __global__ void broken_fwd_f32(float* y) { y[0] = undeclared_name; }\n";
    let err = compiler
        .compile("broken", "broken.cu", code, Arch::Sm90)
        .unwrap_err()
        .to_string();
    assert!(err.contains("broken.cu"), "{err}");
    assert!(
        err.contains("undeclared_name"),
        "the log is missing from: {err}"
    );
}

#[test]
fn missing_tools_name_the_variable_and_the_setup_script() {
    let err = CudaTools::at(&std::env::temp_dir().join("rlhf-no-such-tools"))
        .unwrap_err()
        .to_string();
    assert!(err.contains(TOOLS_ENV), "{err}");
    assert!(err.contains(SETUP_SCRIPT), "{err}");
}
