//! The emulator's error type. Every error that comes from PTX text names the PTX line and its
//! text; every error raised while a kernel runs also names the kernel, block and thread.

use super::sanitizer::Finding;

/// Where in the grid a runtime error happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThreadPos {
    pub block: [u32; 3],
    pub thread: [u32; 3],
}

/// A fault raised while a kernel ran, with the instruction and thread where it happened.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "kernel `{kernel}`, PTX line {line}{}, block {:?}, thread {:?}: {msg}: `{text}`",
    cuda_line.as_ref().map(|s| format!(" ({s})")).unwrap_or_default(),
    pos.block,
    pos.thread
)]
pub struct KernelFault {
    pub kernel: String,
    /// 1-based PTX line of the faulting instruction, and its text.
    pub line: u32,
    pub text: String,
    /// The CUDA source line (`file.cu:36`) when the PTX was compiled with `-lineinfo`.
    pub cuda_line: Option<String>,
    pub pos: ThreadPos,
    pub msg: String,
}

/// An error of the PTX emulator.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EmuError {
    /// PTX text the parser cannot read.
    #[error("PTX line {line}: {msg}: `{text}`")]
    Parse {
        line: u32,
        text: String,
        msg: String,
    },
    /// Well-formed PTX that the emulator does not implement (an opcode, type or modifier).
    #[error("kernel `{kernel}`, PTX line {line}: unsupported {what}: `{text}`")]
    Unsupported {
        kernel: String,
        line: u32,
        text: String,
        what: String,
    },
    /// A launch the kernel cannot take: unknown kernel, bad geometry, arguments that do not match
    /// the kernel's parameter list.
    #[error("kernel `{kernel}`: {msg}")]
    Launch { kernel: String, msg: String },
    /// A fault while the kernel ran: an access outside every allocation, a misaligned address,
    /// a warp-synchronous instruction with lanes missing, ... (boxed: it carries the most detail).
    #[error("{0}")]
    Runtime(Box<KernelFault>),
    /// A sanitizer finding: a shared-memory race, barrier divergence or uninitialised shared
    /// read (see [`crate::emu::sanitizer`]).
    #[error("{0}")]
    Sanitizer(Box<Finding>),
    /// A host-side memory operation on a pointer that is not a live allocation, or out of range.
    #[error("device memory: {msg}")]
    Memory { msg: String },
}
