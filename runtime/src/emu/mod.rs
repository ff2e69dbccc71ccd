//! A functional PTX emulator: runs the PTX that NVRTC emits for the project's kernels on the CPU,
//! so the GPU code path (launch geometry, argument packing, shared memory, barriers, warp
//! shuffles, atomics) is exercised without a GPU. It is not a general GPU simulator: it covers
//! the instructions our kernels use and rejects anything else when the module is loaded, naming
//! the PTX line, instead of computing a wrong answer.
//!
//! # Pipeline
//! - `lexer` and `parser` read PTX text into an AST (`ast`).
//! - `decode` turns each `.entry` into a `program::Kernel`: a flat vector of compact
//!   instructions whose operands are register-file indices or typed immediates, with labels
//!   resolved and shared/local/param symbols placed.
//! - [`Device::launch`] packs arguments and runs the grid; `exec` executes warps.
//!
//! # Execution model
//! Blocks run one after another. A block's warps are 32 lanes each; registers are stored
//! lane-major per warp (`regs[reg * 32 + lane]`, one `u64` slot per register, predicates as one
//! lane mask each) and every instruction executes for all active lanes in a tight loop.
//!
//! Divergence: per-lane PCs with minimum-PC scheduling (the lanes at the smallest PC run
//! together), which reconverges at the join point of NVRTC's structured control flow; a
//! converged warp keeps one PC. `exit`/`ret` retire lanes. `bar.sync` blocks the arriving lanes
//! until every live (non-exited) lane of the block has arrived; each warp runs until it exits or
//! all its live lanes wait, then the next warp runs, so results are deterministic. Warp-
//! synchronous instructions (`shfl.sync`, `vote.sync`) require every live lane of their
//! membermask to be converged with them, else the launch fails with a runtime error.
//!
//! Consequences of sequential execution: a kernel that spins waiting for another warp or block
//! (or, as on pre-Volta GPUs, for another lane of its own warp at a higher PC) cannot finish;
//! a per-warp instruction budget between barriers ([`Device::set_warp_instruction_limit`]) turns
//! that into an error. Atomics are applied lane by lane in lane order, so contended float
//! atomics give reproducible sums.
//!
//! # Memory
//! Global memory is a set of allocations at distinct 256-byte aligned addresses with unmapped
//! gaps; any access outside an allocation, or misaligned, is an error naming kernel, PTX line,
//! block and thread. Generic addresses map windows onto shared (`types::SHARED_WINDOW`) and
//! local (`types::LOCAL_WINDOW`) memory; `.global` module variables live at fixed per-module
//! addresses and are mapped into a device on first launch. Every warp memory request passes
//! through one hook in `exec::memory` that feeds the [`Counters`]. With `-lineinfo` PTX, faults
//! also name the CUDA source line from `.loc`.
//!
//! # Sanitizer
//! On by default ([`Device::new`]; [`Device::set_sanitizer`] turns it off): every lane's shared
//! access and every completed barrier are checked for shared-memory races, barrier divergence
//! and uninitialised shared reads; see [`sanitizer`] for the rules and modes.
//!
//! # Arithmetic
//! Integer operations follow PTX's definitions (wrapping, clamped shifts, `bfe`/`bfi`/`prmt`).
//! `add/sub/mul/fma/div/sqrt/rcp` with `.rn/.rz/.rm/.rp` are correctly rounded (directed modes
//! and 16-bit formats via round-to-odd, see `float`). Approximate functions (`ex2`, `lg2`,
//! `rsqrt`, `sin`, `cos`, `tanh`, `.approx` divisions) are computed in f64 and rounded, which is
//! within PTX's stated error. `cvt` handles every int/float pair with rounding, `.sat` and
//! `.ftz`, including bf16/f16 round-to-nearest-even with canonical NaN.
//!
//! # Tensor cores
//! `mma.sync.aligned.m16n8k16.row.col.f32.{bf16,f16}.{bf16,f16}.f32` and
//! `ldmatrix.sync.aligned.m8n8.x{1,2,4}[.trans].shared.b16`, with the PTX ISA's per-lane
//! fragment layouts; both require the whole warp converged. `mma` multiplies exactly and sums
//! in f64 (k ascending, then rounds once to f32); see `exec::tensor`. `cp.async` (4/8/16 bytes,
//! with the zero-filling `src-size` form) lands in shared memory at `cp.async.wait_group` /
//! `wait_all`, not at issue, so the sanitizer sees a read before the wait; the groups are kept
//! per warp (a warp's lanes commit and wait together). See `exec::async_copy`.
//!
//! # Not supported (rejected at load time)
//! `call` and `.func` bodies, other `mma` shapes and types, `cp.async.bulk`, `wgmma`, textures and
//! surfaces, `bar.sync` with a thread count or named barriers other
//! than as a whole-block barrier, carry-chain arithmetic (`add.cc`/`addc`), `%clock`-style
//! registers, directed rounding on f64 `fma`/`div`/`sqrt`/`rcp`, and the `.relu`/`.satfinite`
//! variants.

mod ast;
mod counters;
mod decode;
mod error;
mod exec;
mod float;
mod launch;
mod lexer;
mod memory;
mod parser;
mod program;
pub mod sanitizer;
mod types;

use std::sync::atomic::{AtomicU64, Ordering};

pub use counters::Counters;
pub use error::{EmuError, KernelFault, ThreadPos};
pub use launch::{
    Device, KernelArg, LaunchConfig, LaunchReport, DEFAULT_WARP_INSTRUCTION_LIMIT,
    MAX_SHARED_BYTES, MAX_THREADS_PER_BLOCK,
};
pub use memory::DevicePtr;
pub use program::Class;
pub use sanitizer::{Finding, FindingKind, OtherThread, SanitizerMode, MAX_FINDINGS};

use program::{GlobalVar, Kernel};

/// Slots for module-level `.global` variables; only modules that declare some use one.
const MAX_MODULES_WITH_GLOBALS: u64 = 4096;
static NEXT_GLOBALS_SLOT: AtomicU64 = AtomicU64::new(0);

/// A parsed and decoded PTX module: one or more `.entry` kernels.
pub struct Module {
    id: u64,
    src: String,
    kernels: Vec<Kernel>,
    globals: Vec<GlobalVar>,
}

impl Module {
    /// Parses and decodes `ptx`; any syntax error or unsupported instruction is an error naming
    /// the line.
    pub fn parse(ptx: &str) -> Result<Module, EmuError> {
        let ast = parser::parse_module(ptx)?;
        let id = if ast
            .variables
            .iter()
            .any(|v| v.space != types::Space::Shared)
        {
            let id = NEXT_GLOBALS_SLOT.fetch_add(1, Ordering::Relaxed);
            if id >= MAX_MODULES_WITH_GLOBALS {
                return Err(EmuError::Parse {
                    line: 0,
                    text: String::new(),
                    msg: format!(
                        "more than {MAX_MODULES_WITH_GLOBALS} modules with .global variables"
                    ),
                });
            }
            id
        } else {
            u64::MAX
        };
        let decoded = decode::decode_module(ptx, &ast, id)?;
        Ok(Module {
            id,
            src: ptx.to_string(),
            kernels: decoded.kernels,
            globals: decoded.globals,
        })
    }

    /// Names of the module's kernels, in PTX order.
    pub fn kernels(&self) -> impl Iterator<Item = &str> {
        self.kernels.iter().map(|k| k.name.as_str())
    }

    fn kernel(&self, name: &str) -> Option<&Kernel> {
        self.kernels.iter().find(|k| k.name == name)
    }

    /// Number of decoded instructions of a kernel.
    pub fn instruction_count(&self, kernel: &str) -> Option<usize> {
        self.kernel(kernel).map(|k| k.code.len())
    }
}
