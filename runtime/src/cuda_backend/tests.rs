//! What of the Cuda backend can be checked without a GPU: launch limits, the choice of kernel
//! image per compute capability, bundle loading, and the cuBLAS plans (run through a host model
//! of `cublasGemmStridedBatchedEx` and compared with the Cpu backend).

use std::path::PathBuf;

use super::device::{launch_config, Limits};
use super::gemm_plan::{self, BwdAddrs, ColGemm, FwdAddrs, Step};
use super::kernels::{bundle_image, bundle_paths, target_for, KernelLoader, ModuleImage};
use crate::compile::Arch;
use crate::gpu::Launch;
use crate::ops::gemm::{self, GemmSpec};
use crate::{Backend, Cpu, DType, Error};

fn sm80() -> Limits {
    Limits {
        threads_per_block: 1024,
        block: [1024, 1024, 64],
        grid: [i32::MAX as u32, 65535, 65535],
        shared_bytes: 163 * 1024,
    }
}

#[test]
fn launch_configs_are_checked_against_the_device_limits() {
    let ok = Launch::linear(70_000, 256).with_shared(100 * 1024);
    let config = launch_config("k", &ok, &sm80()).expect("a valid launch");
    assert_eq!(config.grid_dim, (70_000, 1, 1));
    assert_eq!(config.block_dim, (256, 1, 1));
    assert_eq!(config.shared_mem_bytes, 100 * 1024);

    let bad = [
        (Launch::linear(1, 2048), "2048 threads"),
        (Launch::linear(1, 0), "0 threads"),
        (Launch { grid: [1, 70_000, 1], block: [32, 1, 1], shared_bytes: 0 }, "grid dim 1"),
        (Launch { grid: [1, 1, 1], block: [1, 1, 128], shared_bytes: 0 }, "block dim 2"),
        (Launch::linear(1, 32).with_shared(200 * 1024), "204800 bytes"),
    ];
    for (launch, want) in bad {
        let err = launch_config("layernorm_fwd_f32", &launch, &sm80()).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("layernorm_fwd_f32") && msg.contains(want), "{msg}");
    }
}

#[test]
fn each_compute_capability_loads_the_right_image() {
    assert_eq!(target_for(8, 0).unwrap(), (Arch::Sm80, true));
    assert_eq!(target_for(8, 9).unwrap(), (Arch::Sm80, true));
    assert_eq!(target_for(9, 0).unwrap(), (Arch::Sm90, true));
    assert_eq!(target_for(10, 0).unwrap(), (Arch::Sm90, false));
    assert_eq!(target_for(12, 0).unwrap(), (Arch::Sm90, false));
    let err = target_for(7, 5).unwrap_err().to_string();
    assert!(err.contains("7.5") && err.contains("8.0"), "{err}");
}

/// PTX text declaring `source`'s entry points with their listed parameter sizes (all a bundle
/// check reads).
fn declaring_ptx(source: &kernels::Source) -> String {
    let mut ptx = String::new();
    for entry in source.entries {
        ptx += &format!(".visible .entry {}(\n", entry.name);
        for (i, p) in entry.params.iter().enumerate() {
            let ty = if p.kind.is_pointer() { ".u64" } else { ".u32" };
            ptx += &format!("\t.param {ty} {}_param_{i},\n", entry.name);
        }
        ptx += ")\n{\n}\n";
    }
    ptx
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rlhf-cuda-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn bundles_give_cubins_where_they_run_and_refuse_stale_ptx() {
    let source = kernels::source("gelu").expect("gelu is embedded");
    let dir = temp_dir("bundle");
    assert_eq!(bundle_image(&dir, source, Arch::Sm90, true).unwrap(), None);

    let (ptx_path, cubin_path) = bundle_paths(&dir, "gelu", Arch::Sm90);
    std::fs::create_dir_all(ptx_path.parent().unwrap()).unwrap();
    let ptx = declaring_ptx(source);
    std::fs::write(&ptx_path, &ptx).unwrap();
    assert_eq!(
        bundle_image(&dir, source, Arch::Sm90, true).unwrap(),
        Some(ModuleImage::Ptx(ptx.clone()))
    );
    std::fs::write(&cubin_path, b"\x7fELF cubin").unwrap();
    assert_eq!(
        bundle_image(&dir, source, Arch::Sm90, true).unwrap(),
        Some(ModuleImage::Cubin(b"\x7fELF cubin".to_vec()))
    );
    // A newer GPU than the cubin's arch compiles the PTX instead.
    assert_eq!(
        bundle_image(&dir, source, Arch::Sm90, false).unwrap(),
        Some(ModuleImage::Ptx(ptx.clone()))
    );

    std::fs::write(&ptx_path, ptx.replace("gelu_bwd_bf16", "gelu_bwd_f16")).unwrap();
    let err = bundle_image(&dir, source, Arch::Sm90, true).unwrap_err().to_string();
    assert!(err.contains("stale") && err.contains("gelu_bwd_bf16"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);

    let nul = ModuleImage::Ptx("a\0b".into()).into_ptx();
    assert!(matches!(nul, Err(Error::Backend { backend: "cuda", .. })));
}

#[test]
fn without_a_bundle_entry_or_nvrtc_the_error_names_both() {
    let dir = temp_dir("empty-bundle");
    let loader = KernelLoader::new(Some(dir.clone()), None, true);
    let err = loader.image("layernorm", Arch::Sm80).unwrap_err().to_string();
    assert!(err.contains("sm_80/layernorm.ptx") && err.contains("NVRTC"), "{err}");
    let err = loader.image("no_such_op", Arch::Sm80).unwrap_err().to_string();
    assert!(err.contains("no_such_op"), "{err}");
}

/// Host memory addressed like the device in a plan: an address is an element index.
struct Arena(Vec<f64>);

impl Arena {
    fn put(&mut self, data: &[f32]) -> u64 {
        let addr = self.0.len() as u64;
        self.0.extend(data.iter().map(|&x| f64::from(x)));
        // A gap of NaNs: reading past a tensor poisons the result.
        self.0.extend([f64::NAN; 3]);
        addr
    }

    fn space(&mut self, len: usize) -> u64 {
        self.put(&vec![f32::NAN; len])
    }

    fn get(&self, addr: u64, len: usize) -> Vec<f32> {
        self.0[addr as usize..addr as usize + len].iter().map(|&x| x as f32).collect()
    }

    /// `cublasGemmStridedBatchedEx` as its documentation defines it (column-major, alpha 1,
    /// beta 0 or 1; with beta 0, C is not read).
    fn col_gemm(&mut self, g: &ColGemm) {
        for e in 0..g.batch {
            let (a, b, c) = (
                g.a as usize + e * g.stride_a,
                g.b as usize + e * g.stride_b,
                g.c as usize + e * g.stride_c,
            );
            for j in 0..g.n {
                for i in 0..g.m {
                    let mut sum = if g.accumulate { self.0[c + i + j * g.ldc] } else { 0.0 };
                    for l in 0..g.k {
                        let x = if g.trans_a { self.0[a + l + i * g.lda] } else { self.0[a + i + l * g.lda] };
                        let y = if g.trans_b { self.0[b + j + l * g.ldb] } else { self.0[b + l + j * g.ldb] };
                        sum += x * y;
                    }
                    self.0[c + i + j * g.ldc] = sum;
                }
            }
        }
    }

    fn run(&mut self, steps: &[Step]) {
        for step in steps {
            match step {
                Step::Zero { c, elems } => self.0[*c as usize..*c as usize + elems].fill(0.0),
                Step::Gemm(g) => self.col_gemm(&g.col_major()),
            }
        }
    }
}

fn close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= 1e-4 * (1.0 + w.abs()), "{what}[{i}]: {g} vs {w}");
    }
}

fn values(len: usize, seed: u32) -> Vec<f32> {
    (0..len).map(|i| (((i as u32 * 2654435761).wrapping_add(seed * 40503)) % 1000) as f32 / 500.0 - 1.0).collect()
}

#[test]
fn cublas_plans_match_the_cpu_gemm() {
    let cpu = Cpu::new();
    // (batch dims, m, n, k, b batched)
    let shapes: &[(&[usize], usize, usize, usize, bool)] = &[
        (&[], 5, 7, 3, false),
        (&[3], 4, 6, 5, false),
        (&[2, 2], 3, 5, 7, true),
        (&[3], 1, 1, 9, true),
        (&[2], 4, 3, 0, false),
        (&[0], 4, 3, 2, false),
    ];
    for &(lead, m, n, k, b_batched) in shapes {
        for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
            let spec = GemmSpec { trans_a: ta, trans_b: tb };
            let what = format!("lead {lead:?} m {m} n {n} k {k} b_batched {b_batched} {spec:?}");
            let dims = |rows: usize, cols: usize, t: bool, batched: bool| {
                let mut d = if batched { lead.to_vec() } else { vec![] };
                d.extend(if t { [cols, rows] } else { [rows, cols] });
                d
            };
            let (a_dims, b_dims) = (dims(m, k, ta, true), dims(k, n, tb, b_batched));
            let numel = |d: &[usize]| d.iter().product::<usize>();
            let (av, bv, biasv) = (values(numel(&a_dims), 1), values(numel(&b_dims), 2), values(n, 3));
            let a = cpu.upload_f32(&a_dims, &av, DType::F32).unwrap();
            let b = cpu.upload_f32(&b_dims, &bv, DType::F32).unwrap();
            let bias = cpu.upload_f32(&[n], &biasv, DType::F32).unwrap();
            let (d, c_dims) = gemm::check(&a, &b, Some(&bias), spec).unwrap();
            let rows = d.batch * d.m;

            let mut mem = Arena(Vec::new());
            let (pa, pb, pbias) = (mem.put(&av), mem.put(&bv), mem.put(&biasv));
            let ones = mem.put(&vec![1.0; rows.max(1)]);
            let pc = mem.space(numel(&c_dims));
            let fwd = FwdAddrs { a: pa, b: pb, bias: Some(pbias), c: pc, ones };
            mem.run(&gemm_plan::forward(&d, spec, fwd));
            let want = cpu.download_f32(&cpu.gemm(&a, &b, Some(&bias), spec).unwrap()).unwrap();
            close(&mem.get(pc, want.len()), &want, &format!("forward with bias, {what}"));
            let pc2 = mem.space(numel(&c_dims));
            mem.run(&gemm_plan::forward(&d, spec, FwdAddrs { bias: None, c: pc2, ..fwd }));
            let want = cpu.download_f32(&cpu.gemm(&a, &b, None, spec).unwrap()).unwrap();
            close(&mem.get(pc2, want.len()), &want, &format!("forward, {what}"));

            let dcv = values(numel(&c_dims), 4);
            let dc = cpu.upload_f32(&c_dims, &dcv, DType::F32).unwrap();
            let pdc = mem.put(&dcv);
            let (pda, pdb, pdbias) = (mem.space(av.len()), mem.space(bv.len()), mem.space(n));
            let bwd = BwdAddrs { a: pa, b: pb, dc: pdc, da: pda, db: pdb, dbias: Some(pdbias), ones, elem_bytes: 1 };
            mem.run(&gemm_plan::backward(&d, spec, bwd));
            let grads = cpu.gemm_bwd(&a, &b, &dc, true, spec).unwrap();
            let dbias = grads.dbias.as_ref().unwrap();
            close(&mem.get(pda, av.len()), &cpu.download_f32(&grads.da).unwrap(), &format!("da, {what}"));
            close(&mem.get(pdb, bv.len()), &cpu.download_f32(&grads.db).unwrap(), &format!("db, {what}"));
            close(&mem.get(pdbias, n), &cpu.download_f32(dbias).unwrap(), &format!("dbias, {what}"));
        }
    }
}
