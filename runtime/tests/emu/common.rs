//! Helpers: wrap a PTX body in a one-block kernel, run it, read results back per thread.

use runtime::emu::{
    Device, EmuError, KernelArg, LaunchConfig, LaunchReport, Module, SanitizerMode,
};

pub const HEADER: &str = ".version 8.8\n.target sm_80\n.address_size 64\n";

/// Registers every test body may use.
const POOL: &str = "\t.reg .pred %p<8>;\n\t.reg .b16 %h<8>;\n\t.reg .b32 %r<16>;\n\t.reg .f32 %f<16>;\n\t.reg .b64 %rd<16>;\n\t.reg .f64 %fd<8>;\n";

/// A kernel `k(out, in)` whose prologue sets `%oa = out + tid * slots * 4` and
/// `%ia = in + tid * 4` (`tid` = linear thread index in a 1-D grid), followed by `body`.
pub fn kernel(body: &str, slots: u32) -> String {
    format!(
        "{HEADER}.visible .entry k(\n\t.param .u64 p_out,\n\t.param .u64 p_in\n)\n{{\n{POOL}\t.reg .b64 %out, %in, %oa, %ia, %t64;\n\t.reg .b32 %gtid, %ntid0, %ctaid0;\n\
         \tld.param.u64 %out, [p_out];\n\tld.param.u64 %in, [p_in];\n\tmov.u32 %ntid0, %ntid.x;\n\tmov.u32 %ctaid0, %ctaid.x;\n\
         \tmov.u32 %gtid, %tid.x;\n\tmad.lo.s32 %gtid, %ctaid0, %ntid0, %gtid;\n\
         \tmul.wide.u32 %t64, %gtid, {};\n\tadd.s64 %oa, %out, %t64;\n\tmul.wide.u32 %t64, %gtid, 4;\n\tadd.s64 %ia, %in, %t64;\n{body}\n\tret;\n}}\n",
        slots * 4
    )
}

pub struct Outcome {
    /// Per thread, its `slots` output words.
    pub out: Vec<Vec<u32>>,
    pub report: LaunchReport,
}

/// Runs `body` on `threads` threads in blocks of `block` threads with input words `input`
/// (padded with zeros to one word per thread), with the sanitizer on.
pub fn try_run(
    body: &str,
    slots: u32,
    threads: u32,
    block: u32,
    input: &[u32],
) -> Result<Outcome, EmuError> {
    try_run_with(SanitizerMode::FailFast, body, slots, threads, block, input)
}

/// [`try_run`] with the given sanitizer mode.
pub fn try_run_with(
    mode: SanitizerMode,
    body: &str,
    slots: u32,
    threads: u32,
    block: u32,
    input: &[u32],
) -> Result<Outcome, EmuError> {
    let module = Module::parse(&kernel(body, slots))?;
    let mut dev = Device::new();
    dev.set_sanitizer_mode(mode);
    let n_in = input.len().max(threads as usize);
    let in_ptr = dev.alloc(n_in * 4);
    let mut words = input.to_vec();
    words.resize(n_in, 0);
    dev.write(in_ptr, &to_bytes(&words))?;
    let out_ptr = dev.alloc((threads * slots * 4) as usize);
    let cfg = LaunchConfig::linear(threads.div_ceil(block), block);
    let report = dev.launch(
        &module,
        "k",
        cfg,
        &[KernelArg::Ptr(out_ptr), KernelArg::Ptr(in_ptr)],
    )?;
    let out = from_bytes(&dev.read(out_ptr, (threads * slots * 4) as usize)?);
    Ok(Outcome {
        out: out.chunks(slots as usize).map(|c| c.to_vec()).collect(),
        report,
    })
}

pub fn run(body: &str, slots: u32, threads: u32, input: &[u32]) -> Vec<Vec<u32>> {
    match try_run(body, slots, threads, threads.min(1024), input) {
        Ok(o) => o.out,
        Err(e) => panic!("{e}"),
    }
}

/// Runs a one-thread body with no input and returns its output words.
pub fn run1(body: &str, slots: u32) -> Vec<u32> {
    run(body, slots, 1, &[]).remove(0)
}

pub fn to_bytes(words: &[u32]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

pub fn from_bytes(bytes: &[u8]) -> Vec<u32> {
    bytes
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

pub fn f32s(words: &[u32]) -> Vec<f32> {
    words.iter().map(|w| f32::from_bits(*w)).collect()
}

pub fn bits(values: &[f32]) -> Vec<u32> {
    values.iter().map(|v| v.to_bits()).collect()
}

/// A small deterministic generator (xorshift) for test inputs.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in [-1, 1).
    pub fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}
