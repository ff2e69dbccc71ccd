//! Throughput of the emulator on the NVRTC LayerNorm kernel (ignored by default; run with
//! `cargo test --release -p runtime --test emu speed -- --ignored --nocapture`).

use std::time::Instant;

use runtime::emu::{Device, KernelArg, LaunchConfig, Module};

#[test]
#[ignore = "a measurement, not a check"]
fn layernorm_throughput() {
    let module = Module::parse(include_str!("../fixtures/layernorm.ptx")).unwrap();
    for (kernel, elem) in [("layernorm_fwd_f32", 4), ("layernorm_fwd_bf16", 2)] {
        let (n, c) = (2048usize, 768usize);
        let mut dev = Device::new();
        let x = dev.alloc(n * c * elem);
        let y = dev.alloc(n * c * elem);
        let (w, b) = (dev.alloc(c * 4), dev.alloc(c * 4));
        let (mean, rstd) = (dev.alloc(n * 4), dev.alloc(n * 4));
        dev.write(w, &vec![0u8; c * 4]).unwrap();
        let args = [
            KernelArg::Ptr(y),
            KernelArg::Ptr(mean),
            KernelArg::Ptr(rstd),
            KernelArg::Ptr(x),
            KernelArg::Ptr(w),
            KernelArg::Ptr(b),
            KernelArg::I32(n as i32),
            KernelArg::I32(c as i32),
            KernelArg::F32(1e-5),
        ];
        let start = Instant::now();
        let report = dev
            .launch(
                &module,
                kernel,
                LaunchConfig::linear(n as u32 / 8, 256),
                &args,
            )
            .unwrap();
        let secs = start.elapsed().as_secs_f64();
        println!(
            "{kernel}: {} thread-instructions in {:.3} s = {:.1} M thread-instr/s ({:.1} M warp-instr/s)",
            report.thread_instructions,
            secs,
            report.thread_instructions as f64 / secs / 1e6,
            report.warp_instructions as f64 / secs / 1e6
        );
    }
}
