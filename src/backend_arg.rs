//! `--backend cpu|emu|cuda`: which backend a command runs on.

use clap::{Args, ValueEnum};

/// The backends the command line can run on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum BackendKind {
    /// Native Rust on the CPU (rayon).
    #[default]
    Cpu,
    /// The CUDA kernels run by the PTX emulator (slow; needs the CUDA tools, no GPU).
    Emu,
    /// The CUDA kernels on NVIDIA GPU 0 (needs the driver).
    Cuda,
}

#[derive(Args, Debug, Clone, Copy)]
pub struct BackendArg {
    /// The backend to run on.
    #[arg(long, value_enum, default_value_t = BackendKind::Cpu)]
    pub backend: BackendKind,
}

/// Evaluates `$body` with `$b` bound to a reference to the chosen backend, opened here; a
/// backend that cannot be opened (no driver, no CUDA tools) returns its error from the enclosing
/// function.
macro_rules! with_backend {
    ($kind:expr, $b:ident => $body:expr) => {
        match $kind {
            $crate::backend_arg::BackendKind::Cpu => {
                let $b = &runtime::Cpu::new();
                $body
            }
            $crate::backend_arg::BackendKind::Emu => {
                let $b = &runtime::Emu::new()?;
                $body
            }
            $crate::backend_arg::BackendKind::Cuda => {
                let $b = &runtime::Cuda::new(0)?;
                $body
            }
        }
    };
}

pub(crate) use with_backend;
